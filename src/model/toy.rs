//! Built-in toy datasets, drawn i.i.d. from the handle-free generator so that a (name, n,
//! seed) triple always gives the same data: five 2-D sets following FFJORD's
//! `lib/toy_data.py` conventions, and a 16-D mixture of 8 Gaussians.
use crate::abi::status::{Error, Result};
use crate::model::rng::Rng;
use std::f64::consts::{PI, SQRT_2};

/// The 2-D sets accepted by [`toy_dataset`].
pub const TOY_DATASETS: [&str; 5] = ["8gaussians", "rings", "checkerboard", "2spirals", "pinwheel"];

/// The 16-D mixture: 8 isotropic Gaussians of std [`GAUSSIANS16D_STD`] with equal weights,
/// centred at [`gaussians16d_centre`].
pub const GAUSSIANS16D: &str = "gaussians16d";
pub const GAUSSIANS16D_DIM: usize = 16;
pub const GAUSSIANS16D_MODES: usize = 8;
pub const GAUSSIANS16D_STD: f64 = 0.5;

/// Coordinate j of the centre of mode k (k = 0..8, j = 0..16): row k + 1 of the 16×16
/// Sylvester–Hadamard matrix, (−1)^popcount((k+1) & j). Every centre has norm 4 and every two
/// are √32 ≈ 5.66 apart (8 standard deviations along the line between them).
pub fn gaussians16d_centre(k: usize, j: usize) -> f64 {
    if ((k + 1) & j).count_ones().is_multiple_of(2) {
        1.0
    } else {
        -1.0
    }
}

/// Floats per sample of toy dataset `name` (None for an unknown name).
pub fn toy_dataset_dim(name: &str) -> Option<usize> {
    if TOY_DATASETS.contains(&name) {
        Some(2)
    } else if name == GAUSSIANS16D {
        Some(GAUSSIANS16D_DIM)
    } else {
        None
    }
}

/// 8gaussians: modes on the circle of radius 4/√2 = 2√2, each with std 0.5/√2.
pub(crate) const EIGHT_GAUSSIANS_RADIUS: f64 = 4.0 / SQRT_2;
pub(crate) const EIGHT_GAUSSIANS_STD: f64 = 0.5 / SQRT_2;

/// Centre of the k-th 8gaussians mode (k = 0..8).
pub fn eight_gaussians_centre(k: usize) -> (f64, f64) {
    let a = k as f64 * PI / 4.0;
    (EIGHT_GAUSSIANS_RADIUS * a.cos(), EIGHT_GAUSSIANS_RADIUS * a.sin())
}

/// Exact log-density of 8gaussians.
pub fn eight_gaussians_log_density(x: f64, y: f64) -> f64 {
    let s2 = EIGHT_GAUSSIANS_STD * EIGHT_GAUSSIANS_STD;
    let terms: Vec<f64> = (0..8)
        .map(|k| {
            let (cx, cy) = eight_gaussians_centre(k);
            -((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * s2)
        })
        .collect();
    let mx = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = mx + terms.iter().map(|t| (t - mx).exp()).sum::<f64>().ln();
    lse - (8.0f64).ln() - (2.0 * PI * s2).ln()
}

/// Fills `out` (n × dim, row-major; dim from [`toy_dataset_dim`]) with `n` samples of
/// dataset `name`.
pub fn toy_dataset(name: &str, n: usize, seed: u64, out: &mut [f32]) -> Result<()> {
    let Some(dim) = toy_dataset_dim(name) else {
        return Err(Error::invalid(format!(
            "unknown toy dataset {name:?}; known: {}, {GAUSSIANS16D}",
            TOY_DATASETS.join(", ")
        )));
    };
    assert_eq!(out.len(), dim * n);
    let mut rng = Rng::new(seed ^ 0x7a3c_5e11_d00d_f00d);
    if name == GAUSSIANS16D {
        for row in out.chunks_exact_mut(dim) {
            let k = rng.below(GAUSSIANS16D_MODES as u64) as usize;
            for (j, v) in row.iter_mut().enumerate() {
                *v = (gaussians16d_centre(k, j) + GAUSSIANS16D_STD * rng.normal()) as f32;
            }
        }
        return Ok(());
    }
    for i in 0..n {
        let (x, y) = match name {
            "8gaussians" => {
                let (cx, cy) = eight_gaussians_centre(rng.below(8) as usize);
                (cx + EIGHT_GAUSSIANS_STD * rng.normal(), cy + EIGHT_GAUSSIANS_STD * rng.normal())
            }
            "rings" => {
                // Four circles of radius 3, 2.25, 1.5, 0.75 with Gaussian noise 0.08.
                let r = 3.0 * (1.0 - 0.25 * rng.below(4) as f64);
                let a = 2.0 * PI * rng.uniform();
                (r * a.cos() + 0.08 * rng.normal(), r * a.sin() + 0.08 * rng.normal())
            }
            "checkerboard" => {
                // Uniform on the 8 dark squares of a 4×4 board over [−4, 4]².
                let x1 = rng.uniform() * 4.0 - 2.0;
                let x2 = rng.uniform() - 2.0 * rng.below(2) as f64 + (x1.floor().rem_euclid(2.0));
                (2.0 * x1, 2.0 * x2)
            }
            "2spirals" => {
                let t = rng.uniform().sqrt() * 540.0 * (2.0 * PI) / 360.0;
                let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
                let dx = -t.cos() * t + rng.uniform() * 0.5;
                let dy = t.sin() * t + rng.uniform() * 0.5;
                (sign * dx / 3.0 + 0.1 * rng.normal(), sign * dy / 3.0 + 0.1 * rng.normal())
            }
            "pinwheel" => {
                // 5 arms: radial std 0.3, tangential std 0.1, rate 0.25, scaled by 2.
                let (radial, tangential, rate) = (0.3, 0.1, 0.25);
                let class = rng.below(5) as f64;
                let f0 = rng.normal() * radial + 1.0;
                let f1 = rng.normal() * tangential;
                let a = class * 2.0 * PI / 5.0 + rate * f0.exp();
                let (c, s) = (a.cos(), a.sin());
                (2.0 * (f0 * c - f1 * s), 2.0 * (f0 * s + f1 * c))
            }
            _ => unreachable!(),
        };
        out[2 * i] = x as f32;
        out[2 * i + 1] = y as f32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_gaussians_moments_and_density() {
        let n = 20000;
        let mut v = vec![0f32; 2 * n];
        toy_dataset("8gaussians", n, 1, &mut v).unwrap();
        // E‖x‖² = R² + 2σ² = 8.25
        let r2: f64 =
            (0..n).map(|i| (v[2 * i] as f64).powi(2) + (v[2 * i + 1] as f64).powi(2)).sum::<f64>() / n as f64;
        let want = EIGHT_GAUSSIANS_RADIUS.powi(2) + 2.0 * EIGHT_GAUSSIANS_STD.powi(2);
        assert!((r2 - want).abs() < 0.05, "mean squared radius {r2} vs {want}");
        // Monte-Carlo E[log p] matches the analytic ceiling (−2.833 nats) from the notes.
        let ll: f64 =
            (0..n).map(|i| eight_gaussians_log_density(v[2 * i] as f64, v[2 * i + 1] as f64)).sum::<f64>()
                / n as f64;
        assert!((ll + 2.833).abs() < 0.03, "E log p = {ll}");
    }

    #[test]
    fn datasets_are_seeded_and_bounded() {
        for name in TOY_DATASETS {
            let mut a = vec![0f32; 2000];
            let mut b = vec![0f32; 2000];
            toy_dataset(name, 1000, 5, &mut a).unwrap();
            toy_dataset(name, 1000, 5, &mut b).unwrap();
            assert_eq!(a, b, "{name} deterministic");
            assert!(a.iter().all(|x| x.is_finite() && x.abs() < 6.0), "{name} within [-6, 6]");
        }
        let mut c = vec![0f32; 2000];
        toy_dataset("checkerboard", 1000, 5, &mut c).unwrap();
        for i in 0..1000 {
            let (x, y) = (c[2 * i], c[2 * i + 1]);
            let parity = ((x / 2.0).floor() as i64 + (y / 2.0).floor() as i64).rem_euclid(2);
            assert_eq!(parity, 0, "checkerboard point ({x}, {y}) on a light square");
        }
        assert!(toy_dataset("moons", 1, 0, &mut [0f32; 2]).is_err());
    }

    #[test]
    fn gaussians16d_modes_and_spread() {
        let n = 16000;
        let mut v = vec![0f32; 16 * n];
        toy_dataset(GAUSSIANS16D, n, 3, &mut v).unwrap();
        let mut counts = [0usize; 8];
        let mut sq = 0.0;
        for row in v.chunks_exact(16) {
            // Nearest centre, and the squared distance to it.
            let (k, d2) = (0..8)
                .map(|k| {
                    (k, (0..16).map(|j| (row[j] as f64 - gaussians16d_centre(k, j)).powi(2)).sum::<f64>())
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            counts[k] += 1;
            sq += d2;
        }
        assert!(counts.iter().all(|&c| (c as f64 - 2000.0).abs() < 200.0), "{counts:?}");
        // E‖x − μ‖² = D·σ² = 4.
        assert!((sq / n as f64 - 4.0).abs() < 0.1, "{}", sq / n as f64);
        for a in 0..8 {
            for b in 0..a {
                let d2: f64 =
                    (0..16).map(|j| (gaussians16d_centre(a, j) - gaussians16d_centre(b, j)).powi(2)).sum();
                assert_eq!(d2, 32.0);
            }
        }
    }
}
