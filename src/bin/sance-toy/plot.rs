//! A tiny raster canvas and an uncompressed PNG writer: enough for the demo's picture without
//! an image dependency.
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
        chunk(&mut f, b"IDAT", &zlib_stored(&raw))?;
        chunk(&mut f, b"IEND", &[])?;
        f.flush()
    }
}

fn chunk(f: &mut impl Write, kind: &[u8; 4], data: &[u8]) -> std::io::Result<()> {
    f.write_all(&(data.len() as u32).to_be_bytes())?;
    f.write_all(kind)?;
    f.write_all(data)?;
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    f.write_all(&crc32(&crc_input).to_be_bytes())
}

/// A zlib stream of uncompressed ("stored") deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, b) in blocks.iter().enumerate() {
        out.push((i + 1 == blocks.len()) as u8);
        out.extend_from_slice(&(b.len() as u16).to_le_bytes());
        out.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        out.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &x in data {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
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
    #[test]
    fn crc_and_adler_known_values() {
        assert_eq!(super::crc32(b"IEND"), 0xAE42_6082);
        let z = super::zlib_stored(b"Wikipedia");
        assert_eq!(&z[z.len() - 4..], &0x11E6_0398u32.to_be_bytes());
    }
}
