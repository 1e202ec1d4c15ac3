//! A tiny raster canvas and a PNG writer (deflate and CRC from flate2, already in the tree):
//! enough for the tools' pictures without an image dependency.
use std::io::Write;

pub struct Canvas {
    pub w: usize,
    pub h: usize,
    px: Vec<[u8; 3]>,
}

impl Canvas {
    pub fn new(w: usize, h: usize, bg: [u8; 3]) -> Canvas {
        Canvas { w, h, px: vec![bg; w * h] }
    }

    pub fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            self.px[y as usize * self.w + x as usize] = c;
        }
    }

    /// Alpha-blends `c` over the pixel.
    pub fn blend(&mut self, x: i64, y: i64, c: [u8; 3], alpha: f32) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let p = &mut self.px[y as usize * self.w + x as usize];
            for i in 0..3 {
                p[i] = (p[i] as f32 * (1.0 - alpha) + c[i] as f32 * alpha).round() as u8;
            }
        }
    }

    /// A filled disc of radius `r` pixels.
    pub fn dot(&mut self, x: f64, y: f64, r: f64, c: [u8; 3], alpha: f32) {
        let (x0, y0) = (x.round() as i64, y.round() as i64);
        let ri = r.ceil() as i64;
        for dy in -ri..=ri {
            for dx in -ri..=ri {
                if ((dx * dx + dy * dy) as f64) <= r * r {
                    self.blend(x0 + dx, y0 + dy, c, alpha);
                }
            }
        }
    }

    pub fn rect_outline(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        for x in x0..=x1 {
            self.set(x, y0, c);
            self.set(x, y1, c);
        }
        for y in y0..=y1 {
            self.set(x0, y, c);
            self.set(x1, y, c);
        }
    }

    pub fn write_png(&self, path: &str) -> std::io::Result<()> {
        let mut raw = Vec::with_capacity(self.h * (1 + 3 * self.w));
        for y in 0..self.h {
            raw.push(0); // filter: none
            for x in 0..self.w {
                raw.extend_from_slice(&self.px[y * self.w + x]);
            }
        }
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&(self.w as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.h as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        f.write_all(b"\x89PNG\r\n\x1a\n")?;
        chunk(&mut f, b"IHDR", &ihdr)?;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&raw)?;
        chunk(&mut f, b"IDAT", &z.finish()?)?;
        chunk(&mut f, b"IEND", &[])?;
        f.flush()
    }
}

fn chunk(f: &mut impl Write, kind: &[u8; 4], data: &[u8]) -> std::io::Result<()> {
    f.write_all(&(data.len() as u32).to_be_bytes())?;
    f.write_all(kind)?;
    f.write_all(data)?;
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    f.write_all(&crc.sum().to_be_bytes())
}

/// A perceptually ordered dark-blue → yellow ramp (viridis-like), t in [0, 1].
pub fn ramp(t: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = t.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let mut c = [0u8; 3];
    for k in 0..3 {
        c[k] = (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f).round() as u8;
    }
    c
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    /// A 2×1 picture round-trips: the IDAT chunk inflates to the filter bytes and pixels, and
    /// the empty IEND chunk carries its well-known CRC.
    #[test]
    fn png_chunks_decode() {
        let mut c = super::Canvas::new(2, 1, [1, 2, 3]);
        c.set(1, 0, [250, 251, 252]);
        let path = std::env::temp_dir().join(format!("sance-plot-{}.png", std::process::id()));
        c.write_png(path.to_str().unwrap()).unwrap();
        let b = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
        let (mut i, mut idat, mut iend_crc) = (8, Vec::new(), 0u32);
        while i < b.len() {
            let n = u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as usize;
            let kind = &b[i + 4..i + 8];
            if kind == b"IDAT" {
                idat.extend_from_slice(&b[i + 8..i + 8 + n]);
            }
            if kind == b"IEND" {
                iend_crc = u32::from_be_bytes(b[i + 8 + n..i + 12 + n].try_into().unwrap());
            }
            i += 12 + n;
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
        assert_eq!(raw, [0, 1, 2, 3, 250, 251, 252]);
        assert_eq!(iend_crc, 0xAE42_6082);
    }
}
