//! Annealed importance sampling (Neal 2001) of log Z = log ∫ exp(−E(x)) dx, for any energy
//! with an input gradient: the model's network, or (in tests) a quadratic with a known Z.
//!
//! Chains start as exact draws of a normalised Gaussian base π₀ and pass through the geometric
//! path f_β = π₀^(1−β) · exp(−E)^β, β from 0 to 1 on a sigmoid schedule (Grosse et al. 2015:
//! dense at both ends). At each temperature a chain's log weight grows by
//! (β_t − β_{t−1})·(−E(x) − log π₀(x)), then `steps` Metropolis-adjusted Langevin moves leave
//! f_{β_t} invariant. Ẑ = mean exp(log w) is unbiased for Z; log Ẑ and its standard error (by
//! the delta method, std(w)/(mean(w)·√n)) are returned. The MALA step at β is
//! λ_β = λ₀^(1−β)·λ^β: λ₀ suits the base, λ (the caller's) suits the model. Log weights are
//! kept in float64 whatever the energy's kind.
use crate::model::gaussian::Gaussian;
use crate::model::rng::Rng;
use tch::{Kind, TchError, Tensor};

/// How much work an estimate gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub chains: usize,
    pub temperatures: usize,
    /// MALA moves per temperature.
    pub steps: usize,
    /// MALA's λ at β = 1.
    pub step_size: f64,
}

/// An energy and its input gradient: x [n, ...] → (E [n], ∇ₓE [n, ...]).
pub type EnergyFn<'a> = dyn FnMut(&Tensor) -> Result<(Tensor, Tensor), TchError> + 'a;

/// β_0 = 0 < β_1 < … < β_T = 1: σ(δ(2t/T − 1)) rescaled to [0, 1], δ = 4.
pub fn temperatures(t: usize) -> Vec<f64> {
    let s = |u: f64| 1.0 / (1.0 + (-4.0 * (2.0 * u - 1.0)).exp());
    let (lo, hi) = (s(0.0), s(1.0));
    (0..=t).map(|i| if i == t { 1.0 } else { (s(i as f64 / t as f64) - lo) / (hi - lo) }).collect()
}

/// The MALA step that suits the base alone: about the optimal scaling 1.65²σ²/(2·D^⅓) of a
/// Gaussian with the base's mean variance σ², halved to be safe.
pub fn base_step(base: &Gaussian) -> Result<f64, TchError> {
    let d = base.dim() as f64;
    let var = if base.is_full() {
        base.scale.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])? / d
    } else {
        base.scale.f_square()?.f_mean(Kind::Double)?.f_double_value(&[])?
    };
    Ok(0.68 * var / d.cbrt())
}

/// One chain state with everything a MALA move and a weight update need.
struct State {
    x: Tensor,
    /// E(x) and ∇E(x); log π₀(x) and ∇ log π₀(x).
    e: Tensor,
    ge: Tensor,
    lb: Tensor,
    glb: Tensor,
}

fn state(x: Tensor, energy: &mut EnergyFn, base: &Gaussian) -> Result<State, TchError> {
    let (e, ge) = energy(&x)?;
    let lb = base.log_density(&x)?;
    let glb = base.grad_log_density(&x)?;
    Ok(State { x, e, ge, lb, glb })
}

impl State {
    /// log f_β(x) per chain, in float64.
    fn log_f(&self, beta: f64) -> Result<Tensor, TchError> {
        self.lb
            .f_to_kind(Kind::Double)?
            .f_mul_scalar(1.0 - beta)?
            .f_sub(&self.e.f_to_kind(Kind::Double)?.f_mul_scalar(beta)?)
    }

    /// ∇ log f_β(x).
    fn grad_log_f(&self, beta: f64) -> Result<Tensor, TchError> {
        self.glb.f_mul_scalar(1.0 - beta)?.f_sub(&self.ge.f_mul_scalar(beta)?)
    }
}

/// Per-row sum of squares of x [n, ...], in float64.
fn row_sq(x: &Tensor) -> Result<Tensor, TchError> {
    x.f_flatten(1, -1)?.f_to_kind(Kind::Double)?.f_square()?.f_sum_dim_intlist(
        [1i64].as_slice(),
        false,
        Kind::Double,
    )
}

/// One MALA move of every chain on f_β with step λ; returns the number of accepted moves.
fn mala(
    s: State,
    beta: f64,
    lambda: f64,
    energy: &mut EnergyFn,
    base: &Gaussian,
    rng: &mut Rng,
) -> Result<(State, Tensor), TchError> {
    let xi = rng.randn(&s.x.size(), s.x.kind(), s.x.device())?;
    let g = s.grad_log_f(beta)?;
    let y = s.x.f_add(&g.f_mul_scalar(lambda)?)?.f_add(&xi.f_mul_scalar((2.0 * lambda).sqrt())?)?;
    let t = state(y, energy, base)?;
    // log q(y | x) = −‖ξ‖²/2; log q(x | y) = −‖x − y − λ∇log f(y)‖²/(4λ), the same constant.
    let back = s.x.f_sub(&t.x)?.f_sub(&t.grad_log_f(beta)?.f_mul_scalar(lambda)?)?;
    let log_alpha = t
        .log_f(beta)?
        .f_sub(&s.log_f(beta)?)?
        .f_add(&row_sq(&xi)?.f_mul_scalar(0.5)?)?
        .f_sub(&row_sq(&back)?.f_div_scalar(4.0 * lambda)?)?;
    let u = rng.rand(&[s.x.size()[0]], Kind::Double, s.x.device())?;
    // NaN (an overflowing proposal) is never accepted.
    let accept = u.f_log()?.f_lt_tensor(&log_alpha)?;
    let pick = |new: &Tensor, old: &Tensor| -> Result<Tensor, TchError> {
        let mut shape = vec![-1i64];
        shape.extend(std::iter::repeat_n(1, old.dim().saturating_sub(1)));
        new.f_where_self(&accept.f_view(shape.as_slice())?, old)
    };
    let next = State {
        x: pick(&t.x, &s.x)?,
        e: pick(&t.e, &s.e)?,
        ge: pick(&t.ge, &s.ge)?,
        lb: pick(&t.lb, &s.lb)?,
        glb: pick(&t.glb, &s.glb)?,
    };
    Ok((next, accept.f_sum(Kind::Double)?))
}

/// What an estimate gives: log Ẑ, its standard error, and MALA's acceptance rate.
#[derive(Clone, Copy, Debug)]
pub struct Estimate {
    pub log_z: f64,
    pub std_error: f64,
    pub acceptance: f64,
}

/// AIS estimate of log ∫ exp(−E(x)) dx from the normalised `base`, for samples of `shape`
/// ([...sample_shape], without the batch dimension), drawing from `rng`.
pub fn log_z(
    energy: &mut EnergyFn,
    base: &Gaussian,
    shape: &[i64],
    s: &Schedule,
    rng: &mut Rng,
) -> Result<Estimate, TchError> {
    let n = s.chains as i64;
    let mut full = vec![n];
    full.extend_from_slice(shape);
    let lambda0 = base_step(base)?;
    let betas = temperatures(s.temperatures);
    let mut st = state(base.sample(&full, rng)?, energy, base)?;
    let mut log_w = Tensor::f_zeros([n], (Kind::Double, st.x.device()))?;
    let mut accepted = Tensor::f_zeros([], (Kind::Double, st.x.device()))?;
    for t in 1..betas.len() {
        let (b0, b1) = (betas[t - 1], betas[t]);
        let gap = st.e.f_to_kind(Kind::Double)?.f_neg()?.f_sub(&st.lb.f_to_kind(Kind::Double)?)?;
        log_w = log_w.f_add(&gap.f_mul_scalar(b1 - b0)?)?;
        let lambda = lambda0.powf(1.0 - b1) * s.step_size.powf(b1);
        for _ in 0..s.steps {
            let (next, a) = mala(st, b1, lambda, energy, base, rng)?;
            st = next;
            accepted = accepted.f_add(&a)?;
        }
        crate::fault::torch_point()?;
    }
    let w = Vec::<f64>::try_from(log_w.f_to_device(tch::Device::Cpu)?)?;
    let acceptance = accepted.f_double_value(&[])? / (s.chains * s.steps * s.temperatures) as f64;
    Ok(summarise(&w, acceptance))
}

/// MALA on exp(−E) alone (β = 1) for `s.steps` moves of `s.chains` chains started at `start`
/// (or at base draws): the share of moves accepted in the second half, once the chains have
/// had the first half to reach the model's mass. For tuning `step_size`.
pub fn pilot_acceptance(
    energy: &mut EnergyFn,
    base: &Gaussian,
    shape: &[i64],
    start: Option<&Tensor>,
    s: &Schedule,
    rng: &mut Rng,
) -> Result<f64, TchError> {
    let x = match start {
        Some(x) => x.shallow_clone(),
        None => {
            let mut full = vec![s.chains as i64];
            full.extend_from_slice(shape);
            base.sample(&full, rng)?
        }
    };
    let n = x.size()[0] as f64;
    let mut st = state(x, energy, base)?;
    let mut accepted = 0.0;
    for k in 0..s.steps {
        let (next, a) = mala(st, 1.0, s.step_size, energy, base, rng)?;
        st = next;
        if 2 * k >= s.steps {
            accepted += a.f_double_value(&[])?;
        }
    }
    Ok(accepted / (n * (s.steps - s.steps / 2) as f64))
}

/// log of the mean of exp(w) and its delta-method standard error, computed stably.
fn summarise(w: &[f64], acceptance: f64) -> Estimate {
    let n = w.len() as f64;
    let m = w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return Estimate { log_z: m, std_error: f64::INFINITY, acceptance };
    }
    let r: Vec<f64> = w.iter().map(|&v| (v - m).exp()).collect();
    let mean = r.iter().sum::<f64>() / n;
    let var = r.iter().map(|&v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    Estimate { log_z: m + mean.ln(), std_error: (var / n).sqrt() / mean, acceptance }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// E(x) = ½ (x − a)ᵀ A (x − a) has log Z = D/2·log 2π − ½ log det A: AIS from a base far
    /// from it (offset, wider, isotropic) must land within a few standard errors and 0.05.
    #[test]
    fn matches_the_exact_log_z_of_a_quadratic() {
        let a = Tensor::from_slice(&[2.0f64, -1.0, 0.5]);
        // A = B Bᵀ + 0.5 I, anisotropic and correlated.
        let b = Tensor::from_slice(&[3.0f64, 0.0, 0.0, 1.0, 0.5, 0.0, -0.4, 0.3, 0.2]).view([3, 3]);
        let prec = b.matmul(&b.tr()) + Tensor::eye(3, (Kind::Double, Device::Cpu)) * 0.5;
        let exact = 1.5 * (2.0 * std::f64::consts::PI).ln() - 0.5 * prec.logdet().double_value(&[]);
        let mut energy = |x: &Tensor| -> Result<(Tensor, Tensor), TchError> {
            let d = x.f_sub(&a)?;
            let g = d.f_matmul(&prec)?;
            Ok((
                g.f_mul(&d)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)?.f_mul_scalar(0.5)?,
                g,
            ))
        };
        let base = Gaussian::from_parts(
            Tensor::zeros([3], (Kind::Double, Device::Cpu)),
            Tensor::full([3], 3.0, (Kind::Double, Device::Cpu)),
            Kind::Double,
            Device::Cpu,
        )
        .unwrap();
        let s = Schedule { chains: 256, temperatures: 500, steps: 1, step_size: 0.05 };
        let est = log_z(&mut energy, &base, &[3], &s, &mut Rng::new(5)).unwrap();
        let err = (est.log_z - exact).abs();
        assert!(err < 0.05 && err < 4.0 * est.std_error.max(0.005), "AIS {est:?} vs exact {exact}");
        assert!(est.acceptance > 0.3, "{est:?}");
        // Reproducible for a stream.
        let again = log_z(&mut energy, &base, &[3], &s, &mut Rng::new(5)).unwrap();
        assert_eq!(again.log_z, est.log_z);
    }

    #[test]
    fn the_schedule_runs_from_zero_to_one() {
        let b = temperatures(10);
        assert_eq!((b[0], b[10]), (0.0, 1.0));
        assert!(b.windows(2).all(|w| w[1] > w[0]));
    }
}
