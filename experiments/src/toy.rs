//! Metrics for 2-D models (sance-toy and tests/every_k.rs):
//! normalisation on a grid wide enough to see mass the model puts outside the data's box, KL
//! against a known density, MMD.
use crate::grid::Grid;
use sance::model::ebm::Ebm;
use sance::model::toy;
use tch::{Device, Kind, Tensor};

/// Grid of `res × res` cell centres over [lo, hi]², as an [res², 2] tensor, and the cell area.
pub fn grid(lo: f64, hi: f64, res: i64) -> (Tensor, f64) {
    let h = (hi - lo) / res as f64;
    let axis = Tensor::arange(res, (Kind::Double, Device::Cpu)) * h + (lo + h / 2.0);
    let xs = axis.repeat_interleave_self_int(res, 0, None);
    let ys = axis.repeat([res]);
    (Tensor::stack(&[xs, ys], 1), h * h)
}

/// The model's normaliser Z = ∫ exp(−E), and how its mass splits between the box where the
/// data are and the rest of the grid.
pub struct Normaliser {
    /// log Z over [−WIDE, WIDE]².
    pub log_z: f64,
    /// Z_box / Z: the share of the model's mass inside [−BOX, BOX]².
    pub mass_in_box: f64,
    /// 1 − mass_in_box, summed directly (so that a tiny share keeps its digits).
    pub mass_outside: f64,
}

/// Half-width of the box that holds the toy data (within radius ~4) and the sampler's fresh
/// chains (uniform on [−4, 4]²).
pub const BOX: f64 = 6.0;
/// Half-width of the grid the normaliser is taken over.
pub const WIDE: f64 = 20.0;
/// Cells per side of that grid.
pub const WIDE_RES: i64 = 800;

/// log Z by the midpoint rule on a WIDE_RES × WIDE_RES grid over [−WIDE, WIDE]², and its part
/// inside [−BOX, BOX]² (crate::grid).
///
/// Why so wide: training only shapes the energy where data and noise chains go, so a model can
/// put mass far outside the box; a normaliser over the box alone misses it and makes the
/// log-likelihood and KL look better than they are. [−20, 20]² is 11 times the box's area. The
/// cell, 40/800 = 0.05, resolves the data's modes: 8gaussians' std 0.35 is 7 cells, rings' 0.08
/// is 1.6 (2 on the former box-only grid of 0.04), and the midpoint rule's relative error on a
/// Gaussian of std σ falls like exp(−2π²σ²/h²), about 1e-22 at σ = 1.6h. ±6 fall on cell edges
/// (−20 + 280·0.05 and −20 + 520·0.05), so the 240 × 240 cells inside the box tile it exactly
/// and Z_box ≤ Z by construction.
pub fn normaliser(ebm: &Ebm) -> Normaliser {
    let inside = |p: &[f32]| p.iter().all(|&v| (v as f64).abs() < BOX);
    let m = Grid::cube(2, WIDE, WIDE_RES as usize).mass(ebm, 2, |p| if inside(p) { 0 } else { 1 });
    Normaliser { log_z: m.log_z, mass_in_box: m.shares[0], mass_outside: m.shares[1] }
}

/// KL(8gaussians ‖ model) in nats, estimated with `n` fresh true samples and the model
/// normalised by `log_z` (see [`normaliser`]).
/// The exact data log density where it has a closed form or a 1-D integral: 8gaussians;
/// rings (a uniform angle on four circles with Gaussian noise 0.08: the angle integrated
/// numerically, 2048 points); checkerboard (1/32 on the dark squares). None otherwise.
pub fn true_log_density(name: &str, x: f64, y: f64) -> Option<f64> {
    match name {
        "8gaussians" => Some(toy::eight_gaussians_log_density(x, y)),
        "rings" => {
            const S: f64 = 0.08;
            const A: usize = 2048;
            let mut p = 0.0;
            for r in [3.0, 2.25, 1.5, 0.75] {
                for i in 0..A {
                    let a = 2.0 * std::f64::consts::PI * (i as f64 + 0.5) / A as f64;
                    let d2 = (x - r * a.cos()).powi(2) + (y - r * a.sin()).powi(2);
                    p += (-d2 / (2.0 * S * S)).exp();
                }
            }
            Some((p / (4.0 * A as f64 * 2.0 * std::f64::consts::PI * S * S)).ln())
        }
        "checkerboard" => Some(-(32f64).ln()),
        _ => None,
    }
}

/// KL(data ‖ model) on `n` fresh points of `name`, where the data density is known.
pub fn kl(ebm: &Ebm, name: &str, n: usize, seed: u64, log_z: f64) -> Option<f64> {
    true_log_density(name, 0.0, 3.0)?;
    let mut x = vec![0f32; 2 * n];
    toy::toy_dataset(name, n, seed, &mut x).expect("known dataset");
    let log_p: f64 =
        (0..n).map(|i| true_log_density(name, x[2 * i] as f64, x[2 * i + 1] as f64).unwrap()).sum();
    let x = ebm.tensor_from(&x, n).expect("sample tensor");
    let e = ebm.energy(&x).expect("energies").to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
    // mean(log p − log q) with log q = −E − log Z
    Some((log_p + e) / n as f64 + log_z)
}

/// Unbiased estimate of the squared MMD between two sample sets ([n, d] row-major) under
/// the RBF kernel exp(−‖x − y‖² / (2·bandwidth²)).
pub fn mmd2_rbf(a: &[f32], b: &[f32], dim: usize, bandwidth: f64) -> f64 {
    let ta = Tensor::from_slice(a).view([-1, dim as i64]).to_kind(Kind::Double);
    let tb = Tensor::from_slice(b).view([-1, dim as i64]).to_kind(Kind::Double);
    let (n, m) = (ta.size()[0] as f64, tb.size()[0] as f64);
    let sq = |t: &Tensor| t.square().sum_dim_intlist([1i64].as_slice(), true, Kind::Double);
    let k = |x: &Tensor, y: &Tensor| {
        let d2 = (sq(x) + sq(y).tr() - x.mm(&y.tr()) * 2.0).clamp_min(0.0);
        (-d2 / (2.0 * bandwidth * bandwidth)).exp()
    };
    let off_diag = |t: &Tensor, n: f64| (k(t, t).sum(Kind::Double).double_value(&[]) - n) / (n * (n - 1.0));
    off_diag(&ta, n) + off_diag(&tb, m) - 2.0 * k(&ta, &tb).mean(Kind::Double).double_value(&[])
}
