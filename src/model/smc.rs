//! Adaptive tempered sequential Monte Carlo from a normalised Gaussian base π₀ to exp(−E/T)
//! (Del Moral, Doucet & Jasra 2006; the adaptive schedule of Jasra et al. 2011, as BlackJAX's
//! `adaptive_tempered_smc`): particles start as exact draws of π₀ and pass through
//! f_β ∝ π₀^(1−β)·exp(−E/T)^β. At each stage the next β is the largest whose incremental
//! weights exp((β' − β)·(−E/T − log π₀)) keep `target_ess` of the particles' effective sample
//! size (found by bisection), the particles are resampled in proportion (systematic) and moved
//! by MALA on f_β' (`langevin::run_path`, the kernel training uses). The product of the stages'
//! mean weights estimates Z = ∫ exp(−E/T) dx, a by-product. The MALA step at β moves
//! geometrically from the base's own step to the caller's, times a factor each stage adapts
//! towards an acceptance of 0.6.
use crate::abi::config::SanceLangevin;
use crate::model::ais::base_step;
use crate::model::gaussian::Gaussian;
use crate::model::langevin::{self, Clamp, PathTarget};
use crate::model::net::{Net, Params};
use crate::model::resample::systematic;
use crate::model::rng::Rng;
use tch::{Kind, TchError, Tensor};

/// What a run gives besides its particles.
#[derive(Clone, Copy, Debug)]
pub struct SmcRun {
    pub stages: u32,
    /// Effective sample size (a count) of the last stage's weights, before its resampling.
    pub ess: f64,
    /// Mean acceptance of the MALA moves over all stages.
    pub acceptance: f64,
    pub log_z: f64,
    /// Σ over stages of (1/ESS_share − 1)/N, the delta-method variance of each stage's mean
    /// weight (resampling at each stage makes the stages' errors close to independent), √.
    pub std_error: f64,
}

/// How a run goes.
pub struct SmcSettings<'a> {
    /// The moves: `steps` MALA steps per stage; `step_size` and `noise_std` give the target's
    /// temperature T and the step at β = 1.
    pub moves: &'a SanceLangevin,
    pub target_ess: f64,
    pub max_stages: u32,
    /// The box the target is restricted to (none: `Clamp::None`).
    pub clamp: &'a Clamp,
}

/// `n` particles of [...shape] (model coordinates) from `base` to exp(−E_p/T).
pub fn annealed(
    net: &Net,
    p: &Params,
    base: &Gaussian,
    n: usize,
    shape: &[i64],
    s: &SmcSettings,
    rng: &mut Rng,
) -> Result<(Tensor, SmcRun), TchError> {
    let l = s.moves;
    let temperature = (l.noise_std as f64).powi(2) / (2.0 * l.step_size as f64);
    // The step on f_β at temperature 1 that matches the caller's at β = 1: λ·T.
    let (lambda0, lambda1) = (base_step(base)?, l.step_size as f64 * temperature);
    let mut full = vec![n as i64];
    full.extend_from_slice(shape);
    let mut x = base.sample(&full, rng)?.f_to_kind(net_kind(p))?;
    let (mut beta, mut log_z, mut var, mut factor) = (0.0f64, 0.0f64, 0.0f64, 1.0f64);
    let (mut stages, mut ess, mut accepted, mut moves) = (0u32, f64::NAN, 0.0f64, 0.0f64);
    while beta < 1.0 {
        crate::fault::torch_point()?;
        // g(x) = −E(x)/T − log π₀(x): a stage's log weight per unit of β.
        let e = net.energies(p, &x)?;
        let g = host(
            &e.f_to_kind(Kind::Double)?
                .f_div_scalar(-temperature)?
                .f_sub(&base.log_density(&x)?.f_to_kind(Kind::Double)?)?,
        )?;
        // Particles outside the box have no density under the restricted target.
        let inside = match s.clamp.inside(&x)? {
            Some(ok) => Some(Vec::<bool>::try_from(ok.f_to_device(tch::Device::Cpu)?)?),
            None => None,
        };
        let g: Vec<f64> = g
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let out = inside.as_ref().is_some_and(|ok| !ok[i]);
                if out || v.is_nan() {
                    f64::NEG_INFINITY
                } else {
                    v
                }
            })
            .collect();
        let last = stages + 1 >= s.max_stages;
        let delta = if last { 1.0 - beta } else { next_delta(&g, 1.0 - beta, s.target_ess) };
        let log_w: Vec<f64> = g.iter().map(|v| delta * v).collect();
        let (mean_log, share) = log_mean_and_ess_share(&log_w);
        if !mean_log.is_finite() {
            return Err(TchError::Kind(format!(
                "the particles' weights are not finite at β = {beta:.4} (every weight vanished, or \
                 the model's energy is −∞ or NaN where the base puts its mass)"
            )));
        }
        log_z += mean_log;
        var += (1.0 / share - 1.0) / n as f64;
        ess = share * n as f64;
        let idx = systematic(&log_w, n, rng.uniform());
        x = x.f_index_select(0, &Tensor::f_from_slice(&idx)?.f_to_device(x.device())?)?;
        beta = if last { 1.0 } else { (beta + delta).min(1.0) };
        stages += 1;
        let lambda = factor * lambda0.powf(1.0 - beta) * lambda1.powf(beta);
        let step = SanceLangevin {
            step_size: lambda as f32,
            noise_std: (2.0 * lambda).sqrt() as f32,
            metropolis: 1,
            target_acceptance: 0.0,
            grad_clip: 0.0,
            grad_clamp: 0.0,
            ..*l
        };
        let target = PathTarget { base, beta, temperature };
        let (moved, run) = langevin::run_path(net, p, x, &step, &target, s.clamp, rng)?;
        x = moved;
        let a = run.acceptance.f_double_value(&[])?;
        accepted += a * n as f64 * l.steps as f64;
        moves += n as f64 * l.steps as f64;
        factor = (factor * (2.0 * (a - 0.6)).exp()).clamp(1e-4, 1e2);
    }
    let acceptance = if moves > 0.0 { accepted / moves } else { f64::NAN };
    Ok((x, SmcRun { stages, ess, acceptance, log_z, std_error: var.sqrt() }))
}

fn net_kind(p: &Params) -> Kind {
    p.iter().next().map_or(Kind::Float, Tensor::kind)
}

fn host(t: &Tensor) -> Result<Vec<f64>, TchError> {
    Vec::<f64>::try_from(t.f_to_device(tch::Device::Cpu)?)
}

/// log of the mean of exp(log_w), and the effective sample size's share of the particles,
/// (Σw)²/(N·Σw²); (−∞, 0) when every weight is zero.
pub(crate) fn log_mean_and_ess_share(log_w: &[f64]) -> (f64, f64) {
    let m = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return (f64::NEG_INFINITY, 0.0);
    }
    let (s1, s2) = log_w.iter().fold((0.0, 0.0), |(a, b), v| {
        let w = (v - m).exp();
        (a + w, b + w * w)
    });
    let n = log_w.len() as f64;
    (m + (s1 / n).ln(), s1 * s1 / (n * s2))
}

/// The largest δ in (0, `room`] whose weights exp(δ·g) keep `target` of the effective sample
/// size (all of `room` when even that keeps it), by bisection on δ: the share falls as δ grows.
pub(crate) fn next_delta(g: &[f64], room: f64, target: f64) -> f64 {
    let share = |d: f64| log_mean_and_ess_share(&g.iter().map(|v| d * v).collect::<Vec<_>>()).1;
    if share(room) >= target {
        return room;
    }
    let (mut lo, mut hi) = (0.0, room);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if share(mid) >= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // Never a zero step: the schedule must advance.
    lo.max(room * 1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_temperature_keeps_the_target_share() {
        let mut rng = Rng::new(4);
        let g: Vec<f64> = (0..4096).map(|_| 5.0 * rng.normal()).collect();
        for target in [0.3, 0.5, 0.9] {
            let d = next_delta(&g, 1.0, target);
            let share = log_mean_and_ess_share(&g.iter().map(|v| d * v).collect::<Vec<_>>()).1;
            assert!((share - target).abs() < 1e-6, "target {target}: share {share} at δ {d}");
        }
        // Weights that vary little take the whole step.
        let flat: Vec<f64> = (0..100).map(|i| 1e-3 * i as f64).collect();
        assert_eq!(next_delta(&flat, 0.7, 0.5), 0.7);
    }

    #[test]
    fn the_share_and_mean_match_a_direct_computation() {
        let log_w = [0.0, 1.0f64.ln(), 3.0f64.ln(), f64::NEG_INFINITY];
        let (m, share) = log_mean_and_ess_share(&log_w);
        // w = 1, 1, 3, 0: mean 5/4, ESS 25/11 of 4.
        assert!((m - (1.25f64).ln()).abs() < 1e-12);
        assert!((share - 25.0 / 44.0).abs() < 1e-12);
    }
}
