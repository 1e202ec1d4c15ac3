//! Langevin dynamics on an energy network, unadjusted or Metropolis-adjusted:
//! - ULA: `x ← clamp(x − λ·clip(∇ₓE(x)) + σ·ξ)`, ξ ~ N(0, I), biased by O(λ),
//!   where clip is the per-coordinate clamp (`grad_clamp`) then the per-sample norm clip;
//! - MALA (`metropolis == 1`, the default): the same move, unclamped, is a proposal that a Metropolis–Hastings
//!   test accepts or rejects, so the chains target exp(−E/T), T = σ²/(2λ), restricted to the
//!   clamp box (`run_mala` gives the test).
use crate::abi::config::{SanceArch, SanceInit, SanceLangevin};
pub use crate::model::clamp::Clamp;
use crate::model::mala_host::{HostBox, HostChains};
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
    /// Mean per-sample ‖∇ₓE‖ (before the clip) over all steps and chains (MALA: over the
    /// chains at their start), a float64 scalar
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

/// The sampler's noise, σ·ξ for each step (or σ·log u, u ~ U[0, 1), with `uniform`), drawn a
/// block of steps at a time.
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

    /// T·log u, u ~ U[0, 1) in float64: the accept test's side, transformed a block at a time.
    fn log_uniform(shape: &[i64], temperature: f64, steps: u32, device: tch::Device) -> Noise {
        Noise { uniform: true, ..Noise::new(shape, temperature, steps, Kind::Double, device) }
    }

    /// The next step's σ·ξ (a view into the current block).
    fn next(&mut self, rng: &mut Rng) -> Result<Tensor, TchError> {
        if self.block.as_ref().is_none_or(|b| self.next == b.size()[0]) {
            let k = self.per_block.min(self.steps_left as i64);
            let mut shape = vec![k];
            shape.extend_from_slice(&self.shape);
            let mut b = if self.uniform {
                let mut u = rng.rand(&shape, self.kind, self.device)?;
                let _ = u.f_log_()?;
                u
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

    /// (E(x), scale·∇ₓE(x)); the MLP's gradient is its workspace, which the next call
    /// overwrites.
    fn with_energy(&mut self, x: &Tensor) -> Result<(Tensor, Tensor), TchError> {
        match self {
            ScaledGrad::Mlp(w) => {
                w.run(x, true)?;
                Ok((w.energy.take().expect("asked for"), w.gx.shallow_clone()))
            }
            ScaledGrad::Conv(w) => {
                let g = w.run(x, true)?;
                Ok((w.energy.take().expect("asked for"), g))
            }
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
    run_clamped(net, p, x, l, &Clamp::of(l), rng, stats)
}

/// [`run`] keeping the chains in `clamp` instead of the sampler's own box.
pub fn run_clamped(
    net: &Net,
    p: &Params,
    x: Tensor,
    l: &SanceLangevin,
    clamp: &Clamp,
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
            let drift = Drift::new(net, p, n, l, &batch_shape(&x))?;
            return run_mala(drift, x, l, clamp, rng, stats, true);
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
            clamp.apply_(&mut x)?;
        }
        let mut stats = RunStats::constant(0.0, 1.0, x.device())?;
        if let Some(s) = norm_sum {
            stats.grad_norm = s.f_sum(Kind::Double)?.f_div_scalar(lambda * l.steps as f64 * n as f64)?;
        }
        Ok((x, stats))
    })
}

/// The drift of MALA's proposal, d(x) = −λ·g(x) with g the clipped gradient, and E(x): the
/// hand-written backward passes on one workspace reused at every step when nothing clips the
/// gradient (the default), else [`clipped_grad`].
enum Drift<'a> {
    /// The workspace, which returns −λ·∇ₓE.
    Plain(ScaledGrad<'a>),
    Clipped {
        net: &'a Net,
        p: &'a Params,
        l: &'a SanceLangevin,
        bshape: Vec<i64>,
    },
    /// A density on the geometric path from a normalised Gaussian base π₀ to exp(−E/T)
    /// ([`PathTarget`]), at temperature 1: "E" is U = β·E/T − (1 − β)·log π₀, the drift
    /// −λ·∇U (the workspace gives −λ·(β/T)·∇E; the base's part is added to it).
    Path {
        energy: PathEnergy<'a>,
        scale: f64,
        target: &'a PathTarget<'a>,
        lambda: f64,
    },
}

/// What a path's drift evaluates: the network through its workspace (which returns
/// scale·∇ₓE), or any energy with its gradient (AIS's tests check a quadratic's exact log Z).
enum PathEnergy<'a> {
    Net(ScaledGrad<'a>),
    Fn(&'a mut crate::model::ais::EnergyFn<'a>),
}

/// The density f_β ∝ π₀^(1−β)·exp(−E/T)^β between a normalised Gaussian base π₀ and the
/// model at temperature T: the tempered SMC of crate::model::smc moves its particles on it.
pub struct PathTarget<'a> {
    pub base: &'a crate::model::gaussian::Gaussian,
    pub beta: f64,
    pub temperature: f64,
}

impl<'a> Drift<'a> {
    fn new(
        net: &'a Net,
        p: &'a Params,
        n: i64,
        l: &'a SanceLangevin,
        bshape: &[i64],
    ) -> Result<Drift<'a>, TchError> {
        Ok(if l.grad_clamp == 0.0 && l.grad_clip == 0.0 {
            Drift::Plain(ScaledGrad::new(net, p, n, -(l.step_size as f64))?)
        } else {
            Drift::Clipped { net, p, l, bshape: bshape.to_vec() }
        })
    }

    /// (E(x) in the model's kind, d(x) — possibly a workspace that the next call overwrites — and,
    /// when `norms`, λ times the sum over chains of ‖∇ₓE(x)‖ before any clip).
    fn at(&mut self, x: &Tensor, norms: bool) -> Result<(Tensor, Tensor, Option<Tensor>), TchError> {
        match self {
            Drift::Plain(w) => {
                let (e, d) = w.with_energy(x)?;
                // Σ‖d‖ = λ·Σ‖∇ₓE‖ (the run divides by λ once, at its end).
                let raw = if norms {
                    let flat = if d.dim() == 2 { d.shallow_clone() } else { d.f_flatten(1, -1)? };
                    Some(flat.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), false)?.f_sum(Kind::Double)?)
                } else {
                    None
                };
                Ok((e, d, raw))
            }
            Drift::Clipped { net, p, l, bshape } => {
                let (e, g, raw) = clipped_grad(net, p, x, l, bshape)?;
                let lambda = l.step_size as f64;
                Ok((e, g.f_mul_scalar(-lambda)?, Some(raw.f_mul_scalar(lambda)?)))
            }
            Drift::Path { energy, scale, target, lambda } => {
                let (e, d) = match energy {
                    PathEnergy::Net(g) => g.with_energy(x)?,
                    PathEnergy::Fn(f) => {
                        let (e, g) = f(x)?;
                        (e, g.f_mul_scalar(*scale)?)
                    }
                };
                let b = target.beta;
                // In float64: AIS recovers E from U at β near 0 (`ais::log_z`).
                let u = e
                    .f_to_kind(Kind::Double)?
                    .f_mul_scalar(b / target.temperature)?
                    .f_sub(&target.base.log_density(x)?.f_to_kind(Kind::Double)?.f_mul_scalar(1.0 - b)?)?;
                let d = d.f_add(&target.base.grad_log_density(x)?.f_mul_scalar(*lambda * (1.0 - b))?)?;
                let raw = if norms {
                    Some(
                        d.f_flatten(1, -1)?
                            .f_norm_scalaropt_dim(2.0, [1i64].as_slice(), false)?
                            .f_sum(Kind::Double)?,
                    )
                } else {
                    None
                };
                Ok((u, d, raw))
            }
        }
    }
}

/// MALA (`l.metropolis == 1`) on tensors only, never on host memory: what the CPU's host
/// path is checked against.
#[cfg(test)]
pub(crate) fn run_mala_on_tensors(
    net: &Net,
    p: &Params,
    x: Tensor,
    l: &SanceLangevin,
    clamp: &Clamp,
    rng: &mut Rng,
) -> Result<(Tensor, RunStats), TchError> {
    crate::model::no_grad(|| {
        let drift = Drift::new(net, p, x.size()[0], l, &batch_shape(&x))?;
        run_mala(drift, x, l, clamp, rng, true, false)
    })
}

/// [n, 1, 1, ...]: a per-chain value's shape against chains shaped like `x`.
fn batch_shape(x: &Tensor) -> Vec<i64> {
    let mut b = vec![x.size()[0]];
    b.resize(x.dim(), 1);
    b
}

/// MALA on the path density `target` (temperature 1: `l.noise_std` must be √(2·step_size)),
/// `l.steps` moves from `x`, with the plain gradient (no clamp or clip of ∇ₓE): the same
/// kernel as training's (`run_mala`), with its host path on the CPU.
pub fn run_path(
    net: &Net,
    p: &Params,
    x: Tensor,
    l: &SanceLangevin,
    target: &PathTarget,
    clamp: &Clamp,
    rng: &mut Rng,
) -> Result<(Tensor, RunStats), TchError> {
    crate::model::no_grad(|| {
        if x.size()[0] == 0 {
            let stats = RunStats::constant(0.0, 1.0, x.device())?;
            return Ok((x, stats));
        }
        let lambda = l.step_size as f64;
        let scale = -lambda * target.beta / target.temperature;
        let energy = PathEnergy::Net(ScaledGrad::new(net, p, x.size()[0], scale)?);
        let drift = Drift::Path { energy, scale, target, lambda };
        run_mala(drift, x, l, clamp, rng, false, true)
    })
}

/// The state of MALA chains on a path density: the chains, U(x) per chain (float64) and the
/// drift d(x) = −λ·∇U(x) of their last accepted points.
pub struct PathChains {
    pub x: Tensor,
    pub u: Tensor,
    pub d: Tensor,
}

/// [`run_path`] for any `energy` (E and ∇ₓE of a batch), without a box, from `x` or from the
/// chains' state at this very target and step (`init`: U and d, which then need no new
/// evaluation), returning the final state: what annealed importance sampling
/// (crate::model::ais) moves its chains with, one temperature at a time.
pub fn run_path_fn(
    energy: &mut crate::model::ais::EnergyFn,
    x: Tensor,
    init: Option<(Tensor, Tensor)>,
    l: &SanceLangevin,
    target: &PathTarget,
    rng: &mut Rng,
) -> Result<(PathChains, RunStats), TchError> {
    crate::model::no_grad(|| {
        let lambda = l.step_size as f64;
        let scale = -lambda * target.beta / target.temperature;
        let drift = Drift::Path { energy: PathEnergy::Fn(energy), scale, target, lambda };
        let (x, stats, u, d) = run_mala_state(drift, x, init, l, &Clamp::None, rng, false, true)?;
        Ok((PathChains { x, u, d }, stats))
    })
}

/// MALA: the move y = x + d(x) + σ·ξ, d = −λ·g (g the clipped gradient), is accepted with
/// probability min(1, π(y)·q(x | y) / (π(x)·q(y | x))), π = exp(−E/T), T = σ²/(2λ),
/// q(b | a) ∝ exp(−‖b − a − d(a)‖² / (2σ²)). With a = d(x) + d(y), x − y − d(y) = −(a + σξ),
/// so log of the ratio is (E(x) − E(y))/T − a·(a + 2σξ)/(2σ²), and T·(that) =
/// E(x) − E(y) − a·(a + 2σξ)/(4λ): the test is T·log u + a·(a + 2σξ)/(4λ) < E(x) − E(y). The
/// clip keeps g a function of the point, so the test stays exact; with a clamp box a move that
/// leaves it is rejected (the target is π restricted to the box). One uniform per chain and
/// step comes from the handle's stream. `host_path`: on the CPU, the elementwise work in
/// `mala_host`'s passes (the same arithmetic).
#[allow(clippy::too_many_arguments)]
fn run_mala(
    drift: Drift,
    x: Tensor,
    l: &SanceLangevin,
    clamp: &Clamp,
    rng: &mut Rng,
    stats: bool,
    host_path: bool,
) -> Result<(Tensor, RunStats), TchError> {
    let (x, run, _, _) = run_mala_state(drift, x, None, l, clamp, rng, stats, host_path)?;
    Ok((x, run))
}

/// [`run_mala`] from a known state (`init`: E(x) and d(x) at the start, which then need no
/// evaluation; the gradient statistic is then 0), returning the final E (float64) and d too.
#[allow(clippy::too_many_arguments)]
fn run_mala_state(
    mut drift: Drift,
    x: Tensor,
    init: Option<(Tensor, Tensor)>,
    l: &SanceLangevin,
    clamp: &Clamp,
    rng: &mut Rng,
    stats: bool,
    host_path: bool,
) -> Result<(Tensor, RunStats, Tensor, Tensor), TchError> {
    let n = x.size()[0];
    let shape = x.size();
    let mut bshape = vec![n];
    bshape.resize(shape.len(), 1);
    let (lambda, sigma) = (l.step_size as f64, l.noise_std as f64);
    let temperature = sigma * sigma / (2.0 * lambda);
    let mut x = copy_of(&x)?;
    // Chains must start inside the box that the target is restricted to.
    clamp.apply_(&mut x)?;
    // The statistic of ‖∇ₓE‖ is taken at the chains' starting points (one evaluation instead
    // of one a step). d(x) is copied out of the workspace that the first proposal overwrites,
    // and accepted moves are copied into it (host) or replace it (`where`'s own output).
    let (e, d0, norm_sum) = match init {
        Some((e, d)) => (e, d, None),
        None => drift.at(&x, stats)?,
    };
    let mut d = d0.copy();
    let mut accepted = Tensor::f_zeros([n], (Kind::Double, x.device()))?;
    let mut e = e.f_to_kind(Kind::Double)?.f_contiguous()?;
    // σ·ξ and T·log u of the accept test, a block of steps per draw (see `Noise`).
    let mut xis = Noise::new(&shape, sigma, l.steps, x.kind(), x.device());
    let mut us = Noise::log_uniform(&[n], temperature, l.steps, x.device());
    // On the CPU the elementwise work runs on host memory (`mala_host`), the proposal written
    // into one buffer; elsewhere, or if a buffer is not host-readable, on tensors.
    let dim = (x.numel() / n.max(1) as usize).max(1);
    let host = host_path && x.device() == tch::Device::Cpu && matches!(x.kind(), Kind::Float | Kind::Double);
    let bounds = if host { HostBox::of(clamp, dim)? } else { None };
    let mut y_buf = if bounds.is_some() { Some(x.f_empty_like()?) } else { None };
    let mut host_moved = 0u64;
    for _ in 0..l.steps {
        crate::fault::torch_point()?;
        let sxi = xis.next(rng)?;
        let t_log_u = us.next(rng)?;
        if let (Some(y), Some(bounds)) = (&mut y_buf, &bounds) {
            let kind = x.kind();
            let mut chains = HostChains { x: &mut x, d: &mut d, e: &mut e, y, n: n as usize, dim };
            let moved = match kind {
                Kind::Float => host_step::<f32>(&mut chains, &mut drift, &sxi, &t_log_u, lambda, bounds)?,
                _ => host_step::<f64>(&mut chains, &mut drift, &sxi, &t_log_u, lambda, bounds)?,
            };
            if let Some(m) = moved {
                host_moved += m;
                continue;
            }
        }
        let y = x.f_add(&d)?.f_add_(&sxi)?;
        let (e_y, d_y, _) = drift.at(&y, false)?;
        let e_y = e_y.f_to_kind(Kind::Double)?;
        let a = d.f_add(&d_y)?;
        let b = a.f_add(&sxi)?.f_add_(&sxi)?;
        let dot = a.f_mul(&b)?.f_flatten(1, -1)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)?;
        // NaN (a non-finite energy at y) compares false: the move is rejected.
        let mut accept = dot.f_mul_scalar(0.25 / lambda)?.f_add_(&t_log_u)?.f_lt_tensor(&e.f_sub(&e_y)?)?;
        if let Some(inside) = clamp.inside(&y)? {
            accept = accept.f_logical_and(&inside)?;
        }
        let _ = accepted.f_add_(&accept)?;
        let keep = accept.f_view(bshape.as_slice())?;
        // New tensors, never the host path's buffers: x, d and e stay tensors of their own.
        x = y.f_where_self(&keep, &x)?;
        d = d_y.f_where_self(&keep, &d)?;
        e = e_y.f_where_self(&accept, &e)?;
    }
    let total = l.steps as f64 * n as f64;
    let grad_norm = match norm_sum {
        Some(s) => s.f_div_scalar(n as f64 * lambda)?,
        None => Tensor::f_zeros([], (Kind::Double, x.device()))?,
    };
    let run = RunStats {
        grad_norm,
        acceptance: accepted.f_sum(Kind::Double)?.f_add_scalar(host_moved as f64)?.f_div_scalar(total)?,
    };
    Ok((x, run, e, d))
}

/// One MALA step on host memory as `T` (`mala_host`): the proposal into `chains.y`, the drift
/// there, and the accept test. None, before anything ran, when a buffer is not host-readable.
fn host_step<T: crate::model::mala_host::Elem>(
    chains: &mut HostChains,
    drift: &mut Drift,
    sxi: &Tensor,
    t_log_u: &Tensor,
    lambda: f64,
    bounds: &HostBox,
) -> Result<Option<u64>, TchError> {
    if !chains.ready::<T>(sxi, t_log_u) {
        return Ok(None);
    }
    chains.propose::<T>(sxi);
    let (mut e_y, mut d_y, _) = drift.at(chains.y, false)?;
    if !chains.accept_ready::<T>(&e_y, &d_y) {
        e_y = e_y.f_to_kind(T::KIND)?.f_contiguous()?;
        d_y = d_y.f_to_kind(T::KIND)?.f_contiguous()?;
    }
    Ok(Some(chains.accept::<T>(sxi, &e_y, &d_y, t_log_u, lambda, bounds)))
}
