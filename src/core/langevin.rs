//! Unadjusted Langevin dynamics on an energy network:
//! `x ← clamp(x − λ·clip(∇ₓE(x)) + σ·ξ)`, ξ ~ N(0, I).
use crate::config::{SanceInit, SanceLangevin};
use crate::core::net::Net;
use crate::core::rng::Rng;
use tch::{Device, Kind, Tensor};

/// Fresh chains from the sampler's init distribution, shape [n, ...sample_shape].
pub fn init_chains(l: &SanceLangevin, shape: &[i64], kind: Kind, device: Device, rng: &mut Rng) -> Tensor {
    let s = l.init_scale as f64;
    match l.init {
        SanceInit::Gaussian => rng.randn(shape, kind, device) * s,
        SanceInit::Uniform => rng.rand(shape, kind, device) * (2.0 * s) - s,
    }
}

/// Runs `l.steps` Langevin steps from `x` on E with parameters `p` (never differentiated).
/// Returns the final chains and the mean per-sample ‖∇ₓE‖ over all steps and chains.
pub fn run(net: &Net, p: &[Tensor], x: Tensor, l: &SanceLangevin, rng: &mut Rng) -> (Tensor, f64) {
    tch::no_grad(|| {
        let n = x.size()[0];
        if n == 0 {
            return (x, 0.0);
        }
        let shape = x.size();
        let mut bshape = vec![n];
        bshape.resize(shape.len(), 1);
        let mut x = x.detach().copy();
        let mut norm_sum = Tensor::zeros([], (Kind::Double, x.device()));
        let clamp = l.clamp_min < l.clamp_max;
        for _ in 0..l.steps {
            let (_, mut g) = net.energy_and_grad(p, &x);
            let norms = g.flatten(1, -1).norm_scalaropt_dim(2.0, [1i64].as_slice(), false);
            norm_sum += norms.sum(Kind::Double);
            if l.grad_clip > 0.0 {
                let scale = (norms.clamp_min(1e-12).reciprocal() * l.grad_clip as f64).clamp_max(1.0);
                g *= scale.view(bshape.as_slice());
            }
            x -= g * l.step_size as f64;
            if l.noise_std > 0.0 {
                x += rng.randn(&shape, x.kind(), x.device()) * l.noise_std as f64;
            }
            if clamp {
                x = x.clamp(l.clamp_min as f64, l.clamp_max as f64);
            }
        }
        let mean_norm = norm_sum.double_value(&[]) / (l.steps as f64 * n as f64);
        (x, mean_norm)
    })
}
