//! Metrics for 2-D models, used by this tool only (they are not part of the library): exact
//! normalisation on a grid, KL against a known density, MMD.
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

/// log ∫ exp(−E) over [lo, hi]² by the midpoint rule on a res × res grid.
pub fn grid_log_z(ebm: &Ebm, lo: f64, hi: f64, res: i64) -> f64 {
    let (g, area) = grid(lo, hi, res);
    let e = ebm.energy(&g.to_kind(ebm.kind()).to_device(ebm.device())).expect("grid energies").to_kind(Kind::Double);
    (-e).logsumexp([0i64].as_slice(), false).double_value(&[]) + area.ln()
}

/// KL(8gaussians ‖ model) in nats, estimated with `n` fresh true samples and the model
/// normalised on a 300 × 300 grid over [−6, 6]².
pub fn kl_8gaussians(ebm: &Ebm, n: usize, seed: u64) -> f64 {
    let log_z = grid_log_z(ebm, -6.0, 6.0, 300);
    let mut x = vec![0f32; 2 * n];
    toy::toy_dataset("8gaussians", n, seed, &mut x).expect("known dataset");
    let log_p: f64 =
        (0..n).map(|i| toy::eight_gaussians_log_density(x[2 * i] as f64, x[2 * i + 1] as f64)).sum();
    let x = ebm.tensor_from(&x, n).expect("sample tensor");
    let e = ebm.energy(&x).expect("energies").to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
    // mean(log p − log q) with log q = −E − log Z
    (log_p + e) / n as f64 + log_z
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
