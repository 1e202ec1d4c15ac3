//! Real datasets for the tools and tests (never the C API, which takes float arrays): the 8×8
//! digits shipped in data/digits and Fashion-MNIST from Debian's `dataset-fashion-mnist`.
//! A missing file is an error that names the package and the command that installs it.
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Images as floats in [0, 1], row-major [n, h·w], with their classes.
#[derive(Clone, Debug)]
pub struct Images {
    pub pixels: Vec<f32>,
    pub labels: Vec<u8>,
    pub height: usize,
    pub width: usize,
}

impl Images {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn dim(&self) -> usize {
        self.height * self.width
    }
    /// The images at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Images {
        let d = self.dim();
        Images {
            pixels: idx.iter().flat_map(|&i| self.pixels[i * d..(i + 1) * d].iter().copied()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            height: self.height,
            width: self.width,
        }
    }
}

/// data/digits/digits.csv.gz of this repository.
pub fn digits_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/digits/digits.csv.gz")
}

/// The 1,797 8×8 digits, pixels / 16.
pub fn load_digits(path: &Path) -> Result<Images, String> {
    let f = std::fs::File::open(path).map_err(|e| {
        format!("cannot open {}: {e} (it ships in the repository's data/digits)", path.display())
    })?;
    let mut text = String::new();
    GzDecoder::new(f).read_to_string(&mut text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut pixels = Vec::with_capacity(1797 * 64);
    let mut labels = Vec::with_capacity(1797);
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let v: Vec<u8> = line
            .split(',')
            .map(|x| x.trim().parse::<u8>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
        if v.len() != 65 || v[..64].iter().any(|&p| p > 16) || v[64] > 9 {
            return Err(format!(
                "{} line {}: expected 64 pixels in 0..=16 and a class 0..=9",
                path.display(),
                i + 1
            ));
        }
        pixels.extend(v[..64].iter().map(|&p| p as f32 / 16.0));
        labels.push(v[64]);
    }
    Ok(Images { pixels, labels, height: 8, width: 8 })
}

/// Where Debian's `dataset-fashion-mnist` puts the IDX files (override: SANCE_FASHION_MNIST).
pub fn fashion_dir() -> PathBuf {
    std::env::var_os("SANCE_FASHION_MNIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/datasets/fashion-mnist"))
}

fn read_maybe_gz(dir: &Path, stem: &str) -> Result<Vec<u8>, String> {
    for (name, gz) in [(stem.to_string(), false), (format!("{stem}.gz"), true)] {
        let p = dir.join(&name);
        if let Ok(f) = std::fs::File::open(&p) {
            let mut v = Vec::new();
            let r = if gz {
                GzDecoder::new(f).read_to_end(&mut v)
            } else {
                std::io::BufReader::new(f).read_to_end(&mut v)
            };
            r.map_err(|e| format!("{}: {e}", p.display()))?;
            return Ok(v);
        }
    }
    Err(format!(
        "Fashion-MNIST file {stem}[.gz] not found in {}: install Debian's dataset-fashion-mnist \
         (sudo apt-get install dataset-fashion-mnist), or set SANCE_FASHION_MNIST to a folder holding \
         the IDX files",
        dir.display()
    ))
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Fashion-MNIST's training (60,000) or test (10,000) split, pixels / 255.
pub fn load_fashion(dir: &Path, train: bool) -> Result<Images, String> {
    let split = if train { "train" } else { "t10k" };
    let img = read_maybe_gz(dir, &format!("{split}-images-idx3-ubyte"))?;
    let lab = read_maybe_gz(dir, &format!("{split}-labels-idx1-ubyte"))?;
    if img.len() < 16 || be32(&img, 0) != 0x803 || lab.len() < 8 || be32(&lab, 0) != 0x801 {
        return Err(format!("{split}: not IDX image/label files (bad magic numbers)"));
    }
    let (n, h, w) = (be32(&img, 4), be32(&img, 8), be32(&img, 12));
    if img.len() != 16 + n * h * w || be32(&lab, 4) != n || lab.len() != 8 + n {
        return Err(format!("{split}: IDX sizes do not match ({n} images of {h}×{w})"));
    }
    Ok(Images {
        pixels: img[16..].iter().map(|&p| p as f32 / 255.0).collect(),
        labels: lab[8..].to_vec(),
        height: h,
        width: w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_load_with_ten_balanced_classes() {
        let d = load_digits(&digits_path()).unwrap();
        assert_eq!((d.len(), d.dim()), (1797, 64));
        let mut counts = [0usize; 10];
        d.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert!(counts.iter().all(|&c| (174..=183).contains(&c)), "{counts:?}");
        assert!(d.pixels.iter().all(|&p| (0.0..=1.0).contains(&p)));
        // The first image is a 0 (scikit-learn's digits.images[0]).
        assert_eq!(d.labels[0], 0);
        assert_eq!(d.pixels[2], 5.0 / 16.0);
    }

    #[test]
    fn a_missing_fashion_folder_names_the_package() {
        let e = load_fashion(Path::new("/nonexistent"), true).unwrap_err();
        assert!(e.contains("apt-get install dataset-fashion-mnist"), "{e}");
    }
}
