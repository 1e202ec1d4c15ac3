//! Langevin dynamics on an energy network, unadjusted or Metropolis-adjusted:
//! - ULA (the default): `x ← clamp(x − λ·clip(∇ₓE(x)) + σ·ξ)`, ξ ~ N(0, I), biased by O(λ),
//!   where clip is the per-coordinate clamp (`grad_clamp`) then the per-sample norm clip;
//! - MALA (`metropolis == 1`): the same move, unclamped, is a proposal that a Metropolis–Hastings
//!   test accepts or rejects, so the chains target exp(−E/T), T = σ²/(2λ), restricted to the
//!   clamp box (`run_mala` gives the test).
use crate::abi::config::{SanceArch, SanceInit, SanceLangevin};
use crate::model::net::{copy_of, ConvGrad, MlpGrad, Net, Params};
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

/// What a run of the sampler reports besides the chains, left on the device (reading them
/// is a host sync; the training step reads them with its other statistics, in one go).
#[derive(Debug)]
pub struct RunStats {
    /// Mean per-sample ‖∇ₓE‖ (before the clip) over all steps and chains, a float64 scalar
    /// (0 when not asked for).
    pub grad_norm: Tensor,
    /// Share of moves accepted over all steps and chains (1 for unadjusted Langevin), a
    /// float64 scalar.
    pub acceptance: Tensor,
}

impl RunStats {
    /// Fixed values: what a run without chains, or a step without a sampler, reports.
    pub(crate) fn constant(
        grad_norm: f64,
        acceptance: f64,
        device: tch::Device,
    ) -> Result<RunStats, TchError> {
        let c = |v: f64| Tensor::f_full([], v, (Kind::Double, device));
        Ok(RunStats { grad_norm: c(grad_norm)?, acceptance: c(acceptance)? })
    }
}

/// E(x) and the (per-coordinate clamped, then per-sample clipped) ∇ₓE(x), plus the sum of the
/// norms before either.
fn clipped_grad(
    net: &Net,
    p: &Params,
    x: &Tensor,
    l: &SanceLangevin,
    bshape: &[i64],
) -> Result<(Tensor, Tensor, Tensor), TchError> {
    let (e, mut g) = net.energy_and_grad(p, x)?;
    let mut norms = g.f_flatten(1, -1)?.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), false)?;
    let raw = norms.f_sum(Kind::Double)?;
    if l.grad_clamp > 0.0 {
        let c = l.grad_clamp as f64;
        let _ = g.f_clamp_(-c, c)?;
        norms = g.f_flatten(1, -1)?.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), false)?;
    }
    if l.grad_clip > 0.0 {
        let scale =
            norms.f_clamp_min(1e-12)?.f_reciprocal()?.f_mul_scalar(l.grad_clip as f64)?.f_clamp_max(1.0)?;
        let _ = g.f_mul_(&scale.f_view(bshape)?)?;
    }
    Ok((e, g, raw))
}

/// At most this many random numbers are drawn at once. The sampler draws the noise of many
/// steps in one call (one reseed of libtorch's global generator, see `rng.rs`, instead of one
/// per step) but in blocks, so that a long run on a large batch never holds all its noise.
const NOISE_BLOCK_ELEMENTS: i64 = 1 << 22;

/// The sampler's noise, σ·ξ for each step (or U[0, 1) with `uniform`), drawn a block of
/// steps at a time.
struct Noise {
    shape: Vec<i64>,
    sigma: f64,
    uniform: bool,
    steps_left: u32,
    per_block: i64,
    block: Option<Tensor>,
    next: i64,
    kind: Kind,
    device: tch::Device,
}

impl Noise {
    fn new(shape: &[i64], sigma: f64, steps: u32, kind: Kind, device: tch::Device) -> Noise {
        let per_step: i64 = shape.iter().product::<i64>().max(1);
        let per_block = (NOISE_BLOCK_ELEMENTS / per_step).clamp(1, steps.max(1) as i64);
        Noise {
            shape: shape.to_vec(),
            sigma,
            uniform: false,
            steps_left: steps,
            per_block,
            block: None,
            next: 0,
            kind,
            device,
        }
    }

    fn uniform(shape: &[i64], steps: u32, kind: Kind, device: tch::Device) -> Noise {
        Noise { uniform: true, ..Noise::new(shape, 1.0, steps, kind, device) }
    }

    /// The next step's σ·ξ (a view into the current block).
    fn next(&mut self, rng: &mut Rng) -> Result<Tensor, TchError> {
        if self.block.as_ref().is_none_or(|b| self.next == b.size()[0]) {
            let k = self.per_block.min(self.steps_left as i64);
            let mut shape = vec![k];
            shape.extend_from_slice(&self.shape);
            let mut b = if self.uniform {
                rng.rand(&shape, self.kind, self.device)?
            } else {
                rng.randn(&shape, self.kind, self.device)?
            };
            if self.sigma != 1.0 {
                let _ = b.f_mul_scalar_(self.sigma)?;
            }
            self.block = Some(b);
            self.next = 0;
        }
        self.steps_left = self.steps_left.saturating_sub(1);
        self.next += 1;
        self.block.as_ref().expect("drawn above").f_select(0, self.next - 1)
    }
}

/// scale·∇ₓE for one batch shape, over and over, by the hand-written backward passes.
enum ScaledGrad<'a> {
    Mlp(MlpGrad<'a>),
    Conv(ConvGrad<'a>),
}

impl<'a> ScaledGrad<'a> {
    fn new(net: &'a Net, p: &'a Params, n: i64, scale: f64) -> Result<ScaledGrad<'a>, TchError> {
        Ok(match net.arch {
            SanceArch::Mlp => ScaledGrad::Mlp(MlpGrad::new(net, p, n, scale)?),
            SanceArch::Conv => ScaledGrad::Conv(ConvGrad::new(net, p, scale)?),
        })
    }

    fn at(&mut self, x: &Tensor) -> Result<Tensor, TchError> {
        match self {
            ScaledGrad::Mlp(w) => {
                w.run(x, false)?;
                Ok(w.gx.shallow_clone())
            }
            ScaledGrad::Conv(w) => w.run(x, false),
        }
    }
}

/// Runs `l.steps` Langevin steps from `x` on E with parameters `p` (never differentiated):
/// unadjusted, or MALA when `l.metropolis == 1` (docs/algorithm.md gives the acceptance test).
/// With `stats` false the gradient norms are not computed (unless the clip needs them) and
/// `RunStats::grad_norm` is 0. Nothing reads a value back to the host.
pub fn run(
    net: &Net,
    p: &Params,
    x: Tensor,
    l: &SanceLangevin,
    rng: &mut Rng,
    stats: bool,
) -> Result<(Tensor, RunStats), TchError> {
    crate::model::no_grad(|| {
        let n = x.size()[0];
        if n == 0 {
            let stats = RunStats::constant(0.0, 1.0, x.device())?;
            return Ok((x, stats));
        }
        if l.metropolis == 1 {
            return run_mala(net, p, x, l, rng);
        }
        let shape = x.size();
        let mut bshape = vec![n];
        bshape.resize(shape.len(), 1);
        let lambda = l.step_size as f64;
        let mut x = copy_of(&x)?;
        let mut grad = ScaledGrad::new(net, p, n, -lambda)?;
        let mut noise = Noise::new(&shape, l.noise_std as f64, l.steps, x.kind(), x.device());
        // Σ over steps of λ·‖∇ₓE‖ per chain.
        let norm_sum = if stats { Some(Tensor::f_zeros([n], (x.kind(), x.device()))?) } else { None };
        let clip = l.grad_clip > 0.0;
        let clamp = l.clamp_min < l.clamp_max;
        // The per-coordinate clamp of ∇ₓE, on g = −λ·∇ₓE.
        let grad_clamp = (l.grad_clamp > 0.0).then_some(l.grad_clamp as f64 * lambda);
        for _ in 0..l.steps {
            crate::fault::torch_point()?;
            // g = −λ·∇ₓE: the step's drift.
            let mut g = grad.at(&x)?;
            let norm = |g: &Tensor| g.f_flatten(1, -1)?.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), false);
            // ‖∇ₓE‖ before the clamp and the clip (the statistic), reused by the clip when no
            // clamp changed g.
            let raw = if clip || stats { Some(norm(&g)?) } else { None };
            if let (Some(s), Some(n)) = (&norm_sum, &raw) {
                let _ = s.f_add_out(s, n)?;
            }
            if let Some(c) = grad_clamp {
                let _ = g.f_clamp_(-c, c)?;
            }
            if let Some(raw) = raw.filter(|_| clip) {
                let norms = if grad_clamp.is_some() { norm(&g)? } else { raw };
                // min(1, clip/‖∇E‖) with ‖∇E‖ = ‖g‖/λ.
                let scale = norms
                    .f_clamp_min(1e-12 * lambda)?
                    .f_reciprocal()?
                    .f_mul_scalar(l.grad_clip as f64 * lambda)?
                    .f_clamp_max(1.0)?;
                let _ = g.f_mul_(&scale.f_view(bshape.as_slice())?)?;
            }
            let _ = x.f_add_(&g)?;
            if l.noise_std > 0.0 {
                let _ = x.f_add_(&noise.next(rng)?)?;
            }
            if clamp {
                let _ = x.f_clamp_(l.clamp_min as f64, l.clamp_max as f64)?;
            }
        }
        let mut stats = RunStats::constant(0.0, 1.0, x.device())?;
        if let Some(s) = norm_sum {
            stats.grad_norm = s.f_sum(Kind::Double)?.f_div_scalar(lambda * l.steps as f64 * n as f64)?;
        }
        Ok((x, stats))
    })
}

/// MALA: the move x' = x − λ·g(x) + σ·ξ (g the clipped gradient) is accepted with probability
/// min(1, π(x')·q(x | x') / (π(x)·q(x' | x))), π = exp(−E/T), T = σ²/(2λ),
/// q(b | a) ∝ exp(−‖b − a + λ·g(a)‖² / (2σ²)). The clip keeps g a function of the point, so
/// the test stays exact; with a clamp box a move that leaves it is rejected (the target is π
/// restricted to the box). One uniform per chain and step comes from the handle's stream.
fn run_mala(
    net: &Net,
    p: &Params,
    x: Tensor,
    l: &SanceLangevin,
    rng: &mut Rng,
) -> Result<(Tensor, RunStats), TchError> {
    let n = x.size()[0];
    let shape = x.size();
    let mut bshape = vec![n];
    bshape.resize(shape.len(), 1);
    let (lambda, sigma) = (l.step_size as f64, l.noise_std as f64);
    let temperature = sigma * sigma / (2.0 * lambda);
    let clamp = l.clamp_min < l.clamp_max;
    let sq_norm = |t: &Tensor| -> Result<Tensor, TchError> {
        t.f_flatten(1, -1)?.f_square()?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
    };
    let mut x = copy_of(&x)?;
    if clamp {
        // Chains must start inside the box that the target is restricted to.
        x = x.f_clamp(l.clamp_min as f64, l.clamp_max as f64)?;
    }
    let (e0, mut g, first_norms) = clipped_grad(net, p, &x, l, &bshape)?;
    let mut e = e0.f_to_kind(Kind::Double)?;
    let mut norm_sum = first_norms;
    let mut accepted = Tensor::f_zeros([], (Kind::Double, x.device()))?;
    // ξ and the uniforms of the accept test, a block of steps per draw (see `Noise`).
    let mut xis = Noise::new(&shape, 1.0, l.steps, x.kind(), x.device());
    let mut us = Noise::uniform(&[n], l.steps, Kind::Double, x.device());
    for step in 0..l.steps {
        crate::fault::torch_point()?;
        let xi = xis.next(rng)?;
        let u = us.next(rng)?;
        let y = x.f_sub(&g.f_mul_scalar(lambda)?)?.f_add(&xi.f_mul_scalar(sigma)?)?;
        let (e_y, g_y, norms_y) = clipped_grad(net, p, &y, l, &bshape)?;
        let e_y = e_y.f_to_kind(Kind::Double)?;
        if step + 1 < l.steps {
            let _ = norm_sum.f_add_(&norms_y)?;
        }
        // log q(y | x) = −‖ξ‖²/2 and log q(x | y) = −‖x − y + λ·g(y)‖²/(2σ²), up to the same
        // constant.
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
    let total = l.steps as f64 * n as f64;
    Ok((x, RunStats { grad_norm: norm_sum.f_div_scalar(total)?, acceptance: accepted.f_div_scalar(total)? }))
}
