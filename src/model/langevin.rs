//! Unadjusted Langevin dynamics on an energy network:
//! `x ← clamp(x − λ·clip(∇ₓE(x)) + σ·ξ)`, ξ ~ N(0, I).
use crate::abi::config::{SanceInit, SanceLangevin};
use crate::model::net::{copy_of, Net, Params};
use crate::model::rng::Rng;
use tch::{Device, Kind, TchError, Tensor};

/// Fresh chains from the sampler's init distribution, shape [n, ...sample_shape].
pub fn init_chains(
    l: &SanceLangevin,
    shape: &[i64],
    kind: Kind,
    device: Device,
    rng: &mut Rng,
) -> Result<Tensor, TchError> {
    let s = l.init_scale as f64;
    match l.init {
        SanceInit::Gaussian => rng.randn(shape, kind, device)?.f_mul_scalar(s),
        SanceInit::Uniform => rng.rand(shape, kind, device)?.f_mul_scalar(2.0 * s)?.f_sub_scalar(s),
    }
}

/// What a run of the sampler reports besides the chains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunStats {
    /// Mean per-sample ‖∇ₓE‖ (before the clip) over all steps and chains.
    pub grad_norm: f64,
    /// Share of moves accepted over all steps and chains (1 for unadjusted Langevin).
    pub acceptance: f64,
}

/// E(x) and the (per-sample clipped) ∇ₓE(x), plus the sum of the unclipped norms.
fn clipped_grad(net: &Net, p: &Params, x: &Tensor, l: &SanceLangevin, bshape: &[i64]) -> Result<(Tensor, Tensor, Tensor), TchError> {
    let (e, mut g) = net.energy_and_grad(p, x)?;
    let norms = g.f_flatten(1, -1)?.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), false)?;
    if l.grad_clip > 0.0 {
        let scale = norms.f_clamp_min(1e-12)?.f_reciprocal()?.f_mul_scalar(l.grad_clip as f64)?.f_clamp_max(1.0)?;
        let _ = g.f_mul_(&scale.f_view(bshape)?)?;
    }
    Ok((e, g, norms.f_sum(Kind::Double)?))
}

/// Runs `l.steps` Langevin steps from `x` on E with parameters `p` (never differentiated):
/// unadjusted, or MALA when `l.metropolis == 1` (docs/algorithm.md gives the acceptance test).
pub fn run(net: &Net, p: &Params, x: Tensor, l: &SanceLangevin, rng: &mut Rng) -> Result<(Tensor, RunStats), TchError> {
    tch::no_grad(|| {
        let n = x.size()[0];
        if n == 0 {
            return Ok((x, RunStats { grad_norm: 0.0, acceptance: 1.0 }));
        }
        if l.metropolis == 1 {
            return run_mala(net, p, x, l, rng);
        }
        let shape = x.size();
        let mut bshape = vec![n];
        bshape.resize(shape.len(), 1);
        let mut x = copy_of(&x)?;
        let mut norm_sum = Tensor::f_zeros([], (Kind::Double, x.device()))?;
        let clamp = l.clamp_min < l.clamp_max;
        for _ in 0..l.steps {
            let (_, g, norms) = clipped_grad(net, p, &x, l, &bshape)?;
            let _ = norm_sum.f_add_(&norms)?;
            let _ = x.f_sub_(&g.f_mul_scalar(l.step_size as f64)?)?;
            if l.noise_std > 0.0 {
                let _ = x.f_add_(&rng.randn(&shape, x.kind(), x.device())?.f_mul_scalar(l.noise_std as f64)?)?;
            }
            if clamp {
                x = x.f_clamp(l.clamp_min as f64, l.clamp_max as f64)?;
            }
        }
        let grad_norm = norm_sum.f_double_value(&[])? / (l.steps as f64 * n as f64);
        Ok((x, RunStats { grad_norm, acceptance: 1.0 }))
    })
}

/// MALA: the move x' = x − λ·g(x) + σ·ξ (g the clipped gradient) is accepted with probability
/// min(1, π(x')·q(x | x') / (π(x)·q(x' | x))), π = exp(−E/T), T = σ²/(2λ),
/// q(b | a) ∝ exp(−‖b − a + λ·g(a)‖² / (2σ²)). The clip keeps g a function of the point, so
/// the test stays exact; with a clamp box a move that leaves it is rejected (the target is π
/// restricted to the box). One uniform per chain and step comes from the handle's stream.
fn run_mala(net: &Net, p: &Params, x: Tensor, l: &SanceLangevin, rng: &mut Rng) -> Result<(Tensor, RunStats), TchError> {
    let n = x.size()[0];
    let shape = x.size();
    let mut bshape = vec![n];
    bshape.resize(shape.len(), 1);
    let (lambda, sigma) = (l.step_size as f64, l.noise_std as f64);
    let temperature = sigma * sigma / (2.0 * lambda);
    let clamp = l.clamp_min < l.clamp_max;
    let sq_norm = |t: &Tensor| -> Result<Tensor, TchError> { t.f_flatten(1, -1)?.f_square()?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double) };
    let mut x = copy_of(&x)?;
    if clamp {
        // Chains must start inside the box that the target is restricted to.
        x = x.f_clamp(l.clamp_min as f64, l.clamp_max as f64)?;
    }
    let (e0, mut g, first_norms) = clipped_grad(net, p, &x, l, &bshape)?;
    let mut e = e0.f_to_kind(Kind::Double)?;
    let mut norm_sum = first_norms;
    let mut accepted = Tensor::f_zeros([], (Kind::Double, x.device()))?;
    for step in 0..l.steps {
        let xi = rng.randn(&shape, x.kind(), x.device())?;
        let u = rng.rand(&[n], Kind::Double, x.device())?;
        let y = x.f_sub(&g.f_mul_scalar(lambda)?)?.f_add(&xi.f_mul_scalar(sigma)?)?;
        let (e_y, g_y, norms_y) = clipped_grad(net, p, &y, l, &bshape)?;
        let e_y = e_y.f_to_kind(Kind::Double)?;
        if step + 1 < l.steps {
            let _ = norm_sum.f_add_(&norms_y)?;
        }
        // log q(y | x) = −‖ξ‖²/2 and log q(x | y) = −‖x − y + λ·g(y)‖²/(2σ²), up to the same constant.
        let back = x.f_sub(&y)?.f_add(&g_y.f_mul_scalar(lambda)?)?;
        let log_ratio = e
            .f_sub(&e_y)?
            .f_div_scalar(temperature)?
            .f_sub(&sq_norm(&back)?.f_div_scalar(2.0 * sigma * sigma)?)?
            .f_add(&sq_norm(&xi)?.f_div_scalar(2.0)?)?;
        let mut accept = u.f_log()?.f_lt_tensor(&log_ratio)?.f_logical_and(&e_y.f_isfinite()?)?;
        if clamp {
            let inside = y
                .f_ge(l.clamp_min as f64)?
                .f_logical_and(&y.f_le(l.clamp_max as f64)?)?
                .f_flatten(1, -1)?
                .f_all_dim(1, false)?;
            accept = accept.f_logical_and(&inside)?;
        }
        let _ = accepted.f_add_(&accept.f_sum(Kind::Double)?)?;
        let keep = accept.f_view(bshape.as_slice())?;
        x = y.f_where_self(&keep, &x)?;
        g = g_y.f_where_self(&keep, &g)?;
        e = e_y.f_where_self(&accept, &e)?;
    }
    let summary = Vec::<f64>::try_from(Tensor::f_stack(&[norm_sum, accepted], 0)?.f_to_device(tch::Device::Cpu)?)?;
    let total = l.steps as f64 * n as f64;
    Ok((x, RunStats { grad_norm: summary[0] / total, acceptance: summary[1] / total }))
}
