//! Annealed importance sampling (Neal 2001) of log Z = log ∫ exp(−E(x)) dx, for any energy
//! with an input gradient: the model's network, or (in tests) a quadratic with a known Z.
//!
//! Chains start as exact draws of a normalised Gaussian base π₀ and pass through the geometric
//! path f_β = π₀^(1−β) · exp(−E)^β, β from 0 to 1 on a sigmoid schedule (Grosse et al. 2015:
//! dense at both ends). At each temperature a chain's log weight grows by
//! (β_t − β_{t−1})·(−E(x) − log π₀(x)), then `steps` Metropolis-adjusted Langevin moves leave
//! f_{β_t} invariant: the training sampler's kernel (`langevin::run_path_fn`), fed each
//! chain's U and drift carried over from the last temperature, so that a temperature costs
//! one evaluation of E per step, as before the kernel was shared. Ẑ = mean exp(log w) is unbiased for Z; log Ẑ and its standard error (by
//! the delta method, std(w)/(mean(w)·√n)) are returned. The MALA step at β is
//! λ_β = λ₀^(1−β)·λ^β: λ₀ suits the base, λ (the caller's) suits the model. Log weights are
//! kept in float64 whatever the energy's kind.
use crate::abi::config::SanceLangevin;
use crate::model::gaussian::Gaussian;
use crate::model::langevin::{self, PathTarget};
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

/// The MALA transition at step λ and temperature 1 (σ = √(2λ)): the path densities are
/// tempered in U, not in T.
fn moves(lambda: f64, steps: usize) -> SanceLangevin {
    SanceLangevin {
        steps: steps as u32,
        step_size: lambda as f32,
        noise_std: (2.0 * lambda).sqrt() as f32,
        grad_clip: 0.0,
        grad_clamp: 0.0,
        clamp_min: 0.0,
        clamp_max: 0.0,
        metropolis: 1,
        target_acceptance: 0.0,
        ..SanceLangevin::default()
    }
}

/// Chains between temperatures: where they are, E there (float64), and their drift at the
/// last temperature, with that temperature's β and λ.
struct Chains {
    x: Tensor,
    e: Tensor,
    last: Option<(Tensor, f64, f64)>,
}

impl Chains {
    /// The chains' U and d at β and λ, from E and the last temperature's drift (which holds
    /// −λ'·(β'·∇E − (1 − β')·∇log π₀)): no evaluation of the energy. None at the first
    /// temperature, which evaluates.
    fn state_at(
        &self,
        beta: f64,
        lambda: f64,
        base: &Gaussian,
    ) -> Result<Option<(Tensor, Tensor)>, TchError> {
        let Some((d, b0, l0)) = &self.last else { return Ok(None) };
        let lb = base.log_density(&self.x)?.f_to_kind(Kind::Double)?;
        let glb = base.grad_log_density(&self.x)?.f_to_kind(Kind::Double)?;
        let grad_e = d
            .f_to_kind(Kind::Double)?
            .f_div_scalar(-l0)?
            .f_add(&glb.f_mul_scalar(1.0 - b0)?)?
            .f_div_scalar(*b0)?;
        let u = self.e.f_mul_scalar(beta)?.f_sub(&lb.f_mul_scalar(1.0 - beta)?)?;
        let d = grad_e.f_mul_scalar(beta)?.f_sub(&glb.f_mul_scalar(1.0 - beta)?)?.f_mul_scalar(-lambda)?;
        Ok(Some((u, d.f_to_kind(self.x.kind())?)))
    }
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
    let x = base.sample(&full, rng)?;
    // E at β = 0; after that, recovered from each move's U = β·E − (1 − β)·log π₀.
    let e = energy(&x)?.0.f_to_kind(Kind::Double)?;
    let mut c = Chains { x, e, last: None };
    let mut log_w = Tensor::f_zeros([n], (Kind::Double, c.x.device()))?;
    let mut accepted = 0.0;
    for t in 1..betas.len() {
        let (b0, b1) = (betas[t - 1], betas[t]);
        let lb = base.log_density(&c.x)?.f_to_kind(Kind::Double)?;
        log_w = log_w.f_add(&c.e.f_neg()?.f_sub(&lb)?.f_mul_scalar(b1 - b0)?)?;
        let lambda = lambda0.powf(1.0 - b1) * s.step_size.powf(b1);
        let target = PathTarget { base, beta: b1, temperature: 1.0 };
        let init = c.state_at(b1, lambda, base)?;
        let x = c.x.shallow_clone();
        let (moved, run) = langevin::run_path_fn(energy, x, init, &moves(lambda, s.steps), &target, rng)?;
        accepted += run.acceptance.f_double_value(&[])?;
        let lb = base.log_density(&moved.x)?.f_to_kind(Kind::Double)?;
        let e = moved.u.f_add(&lb.f_mul_scalar(1.0 - b1)?)?.f_div_scalar(b1)?;
        c = Chains { x: moved.x, e, last: Some((moved.d, b1, lambda)) };
        crate::fault::torch_point()?;
    }
    let w = Vec::<f64>::try_from(log_w.f_to_device(tch::Device::Cpu)?)?;
    let acceptance = accepted / s.temperatures as f64;
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
    let target = PathTarget { base, beta: 1.0, temperature: 1.0 };
    let half = s.steps / 2;
    let (x, init) = if half > 0 {
        let (c, _) = langevin::run_path_fn(energy, x, None, &moves(s.step_size, half), &target, rng)?;
        (c.x, Some((c.u, c.d)))
    } else {
        (x, None)
    };
    let (_, run) = langevin::run_path_fn(energy, x, init, &moves(s.step_size, s.steps - half), &target, rng)?;
    run.acceptance.f_double_value(&[])
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

#[cfg(test)]
mod carried_state {
    use super::*;
    use tch::Device;

    /// The U and drift carried from one temperature to the next (`Chains::state_at`) are what
    /// an evaluation at the new temperature gives: the kernel's accept test needs the drift
    /// of the point itself.
    #[test]
    fn the_carried_state_is_the_evaluated_one() {
        let a = Tensor::from_slice(&[1.0f64, -2.0]);
        let mut energy = |x: &Tensor| -> Result<(Tensor, Tensor), TchError> {
            // E = Σ (x − a)⁴/4 + x₁x₂: not quadratic, so ∇E varies.
            let d = x.f_sub(&a)?;
            let e = d
                .f_pow_tensor_scalar(4)?
                .f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)?
                .f_div_scalar(4.0)?;
            let cross = x.f_select(1, 0)?.f_mul(&x.f_select(1, 1)?)?;
            let g = d
                .f_pow_tensor_scalar(3)?
                .f_add(&Tensor::f_stack(&[x.f_select(1, 1)?, x.f_select(1, 0)?], 1)?)?;
            Ok((e.f_add(&cross)?, g))
        };
        let base = Gaussian::from_parts(
            Tensor::zeros([2], (Kind::Double, Device::Cpu)),
            Tensor::full([2], 2.0, (Kind::Double, Device::Cpu)),
            Kind::Double,
            Device::Cpu,
        )
        .unwrap();
        let mut rng = Rng::new(9);
        let x = base.sample(&[64, 2], &mut rng).unwrap();
        for (b0, l0, b1, l1) in [(1e-4, 0.3, 2e-4, 0.29), (0.4, 0.05, 0.45, 0.04), (0.99, 0.01, 1.0, 0.01)] {
            let target = PathTarget { base: &base, beta: b0, temperature: 1.0 };
            let (moved, _) =
                langevin::run_path_fn(&mut energy, x.shallow_clone(), None, &moves(l0, 3), &target, &mut rng)
                    .unwrap();
            let lb = base.log_density(&moved.x).unwrap();
            let e = (&moved.u + lb * (1.0 - b0)) / b0;
            let c = Chains { x: moved.x.shallow_clone(), e, last: Some((moved.d, b0, l0)) };
            let (u, d) = c.state_at(b1, l1, &base).unwrap().unwrap();
            // The same by evaluation: a run of zero moves returns its start's state.
            let target = PathTarget { base: &base, beta: b1, temperature: 1.0 };
            let (direct, _) =
                langevin::run_path_fn(&mut energy, moved.x, None, &moves(l1, 0), &target, &mut rng).unwrap();
            let du = f64::try_from((&u - &direct.u).abs().max()).unwrap();
            let dd = f64::try_from((&d - &direct.d).abs().max()).unwrap();
            assert!(
                du < 1e-6 && dd < 1e-6 * l1.max(1e-3) * 100.0,
                "β {b0} → {b1}: U off by {du:.2e}, drift by {dd:.2e}"
            );
        }
    }
}
