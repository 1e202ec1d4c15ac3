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

/// Runs `l.steps` Langevin steps from `x` on E with parameters `p` (never differentiated).
/// Returns the final chains and the mean per-sample ‖∇ₓE‖ over all steps and chains.
pub fn run(net: &Net, p: &Params, x: Tensor, l: &SanceLangevin, rng: &mut Rng) -> Result<(Tensor, f64), TchError> {
    tch::no_grad(|| {
        let n = x.size()[0];
        if n == 0 {
            return Ok((x, 0.0));
        }
        let shape = x.size();
        let mut bshape = vec![n];
        bshape.resize(shape.len(), 1);
        let mut x = copy_of(&x)?;
        let mut norm_sum = Tensor::f_zeros([], (Kind::Double, x.device()))?;
        let clamp = l.clamp_min < l.clamp_max;
        for _ in 0..l.steps {
            let (_, mut g) = net.energy_and_grad(p, &x)?;
            let norms = g.f_flatten(1, -1)?.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), false)?;
            let _ = norm_sum.f_add_(&norms.f_sum(Kind::Double)?)?;
            if l.grad_clip > 0.0 {
                let scale =
                    norms.f_clamp_min(1e-12)?.f_reciprocal()?.f_mul_scalar(l.grad_clip as f64)?.f_clamp_max(1.0)?;
                let _ = g.f_mul_(&scale.f_view(bshape.as_slice())?)?;
            }
            let _ = x.f_sub_(&g.f_mul_scalar(l.step_size as f64)?)?;
            if l.noise_std > 0.0 {
                let _ = x.f_add_(&rng.randn(&shape, x.kind(), x.device())?.f_mul_scalar(l.noise_std as f64)?)?;
            }
            if clamp {
                x = x.f_clamp(l.clamp_min as f64, l.clamp_max as f64)?;
            }
        }
        let mean_norm = norm_sum.f_double_value(&[])? / (l.steps as f64 * n as f64);
        Ok((x, mean_norm))
    })
}
