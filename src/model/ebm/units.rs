//! The data's units: when the scaling is fitted, how data, samples, energies and the sampler's
//! box cross between the caller's coordinates x and the model's standardised coordinates z
//! (crate::model::scaling), and how training tunes its sampler's step to the density.
use super::Ebm;
use crate::abi::config::{SanceArch, SanceInit, SanceLangevin, SanceScaling};
use crate::abi::stats::{
    SanceStepStats, SANCE_WARNING_COARSE_STEP, SANCE_WARNING_FROZEN_STEP, SANCE_WARNING_OUT_OF_REACH,
};
use crate::abi::status::Result;
use crate::model::langevin::Clamp;
use crate::model::scaling::{column_sums, scales_from, Scaling};
use tch::Tensor;

/// The tuned step's bounds, in the sampler's units (the data's std once scaled): below, the
/// chains no longer move; above, one step's noise would exceed the data's whole spread.
const TUNED_STEP_MIN: f64 = 1e-6;
const TUNED_STEP_MAX: f64 = 1.0;
/// Gain of the step's tuning: log λ moves by this times the gap to the target acceptance.
const TUNING_GAIN: f64 = 1.0;
/// The most the step changes in one training step (a factor).
const TUNING_MAX_FACTOR: f64 = 1.5;

impl Ebm {
    /// Whether the next call that sees data fits the scaling: an MLP with `scaling` AUTO that
    /// has not fitted one yet and has not trained (a model that trained without one, e.g. from
    /// an older checkpoint, keeps the units it was trained in).
    pub(crate) fn scaling_due(&self) -> bool {
        self.cfg.scaling == SanceScaling::Auto
            && self.cfg.arch == SanceArch::Mlp
            && self.scaling.is_none()
            && self.step == 0
    }

    /// The fitted scaling, if any.
    pub fn scaling(&self) -> Option<&Scaling> {
        self.scaling.as_ref()
    }

    /// Fits the scaling to the data `x` [N, D]: each coordinate's mean and std, over every
    /// rank's batch when training data-parallel (so that every rank works in the same
    /// coordinates).
    pub(super) fn fit_scaling(&mut self, x: &Tensor) -> Result<()> {
        if self.is_data_parallel() {
            let (shift, scale) = self.reduce_scaling_moments(x)?;
            self.install_scaling(&shift, &scale)
        } else {
            self.fit_scaling_locally(x)
        }
    }

    /// Fits the scaling to the data `x` [N, D] on this process: each coordinate's mean and std.
    pub(super) fn fit_scaling_locally(&mut self, x: &Tensor) -> Result<()> {
        let n = x.size()[0] as f64;
        let sums = column_sums(x, None)?;
        let mean: Vec<f64> = sums.iter().map(|s| s / n).collect();
        let m2 = column_sums(x, Some(&mean))?;
        self.install_scaling(&mean, &scales_from(&m2, n))
    }

    pub(super) fn install_scaling(&mut self, shift: &[f64], scale: &[f64]) -> Result<()> {
        self.scaling = Some(Scaling::from_host(shift, scale, self.kind, self.device)?);
        Ok(())
    }

    /// `f` of the scaling applied to `t`; `t` itself without a scaling.
    fn through(&self, t: &Tensor, f: fn(&Scaling, &Tensor) -> tch::Result<Tensor>) -> Result<Tensor> {
        Ok(match &self.scaling {
            Some(s) => f(s, t)?,
            None => t.shallow_clone(),
        })
    }

    /// Caller's coordinates → the model's.
    pub(crate) fn to_model(&self, x: &Tensor) -> Result<Tensor> {
        self.through(x, Scaling::to_model)
    }

    /// The model's coordinates → the caller's.
    pub(crate) fn to_data(&self, z: &Tensor) -> Result<Tensor> {
        self.through(z, Scaling::to_data)
    }

    /// E(x) from the network's E_net(z): the log-Jacobian of the scaling added.
    pub(crate) fn energy_to_data(&self, e: &Tensor) -> Result<Tensor> {
        self.through(e, Scaling::energy_to_data)
    }

    /// ∇ₓE from ∇_z E_net.
    pub(crate) fn grad_to_data(&self, g: &Tensor) -> Result<Tensor> {
        self.through(g, Scaling::grad_to_data)
    }

    /// E(x) − E_net(z): the log-Jacobian of the scaling (0 without one).
    pub(crate) fn log_det(&self) -> f64 {
        self.scaling.as_ref().map_or(0.0, Scaling::log_det)
    }

    /// The box of sampler `l` in the model's coordinates: its clamp bounds are in the data's
    /// units.
    pub(crate) fn clamp_of(&self, l: &SanceLangevin) -> Result<Clamp> {
        Ok(match (&self.scaling, Clamp::of(l)) {
            (Some(s), Clamp::Scalar(lo, hi)) => {
                let (lo, hi) = s.bounds_to_model(lo, hi)?;
                Clamp::Coordinates(lo, hi)
            }
            (_, c) => c,
        })
    }

    /// `std`·ξ in the data's units, as a tensor of `shape` in the model's coordinates.
    pub(super) fn data_noise(&mut self, shape: &[i64], std: f64) -> Result<Tensor> {
        let noise = self.rng.randn(shape, self.kind, self.device)?;
        Ok(match &self.scaling {
            Some(s) => noise.f_mul(&s.length_to_model(std)?)?,
            None => noise.f_mul_scalar(std)?,
        })
    }

    /// After a training step whose noise chains were accepted at rate `acceptance`: with
    /// `langevin.target_acceptance` > 0, moves log λ by the gap to the target (at most a factor
    /// 1.5, within [1e-6, 1]), and σ with it at the sampler's temperature. The same on every
    /// rank: the rate is the one averaged over ranks.
    pub(super) fn tune_step(&mut self, acceptance: f32) {
        let l = &mut self.cfg.langevin;
        if l.target_acceptance <= 0.0 || !acceptance.is_finite() {
            return;
        }
        let lambda = l.step_size as f64;
        let temperature = (l.noise_std as f64).powi(2) / (2.0 * lambda);
        let gap = (acceptance as f64 - l.target_acceptance as f64) * TUNING_GAIN;
        let factor = gap.exp().clamp(1.0 / TUNING_MAX_FACTOR, TUNING_MAX_FACTOR);
        let new = (lambda * factor).clamp(TUNED_STEP_MIN, TUNED_STEP_MAX);
        l.step_size = new as f32;
        l.noise_std = (2.0 * temperature * new).sqrt() as f32;
    }

    /// The SANCE_WARNING_* bits of a step on `data` (model coordinates) whose noise chains
    /// ran sampler `l` with statistics `stats` (docs/algorithm.md, "Units"). Snapshot noise only.
    pub(super) fn warnings(&self, data: &Tensor, l: &SanceLangevin, stats: &SanceStepStats) -> Result<u32> {
        let mut w = 0;
        let d = self.sample_size() as f64;
        let flat = data.f_flatten(1, -1)?;
        // The data's spread: the batch's std per coordinate, averaged (0: unknown); a scaled
        // model knows it without a pass over the batch.
        let spread = if self.scaling.is_some() {
            crate::model::scaling::MODEL_STD
        } else if flat.size()[0] >= 2 {
            flat.f_std_dim([0i64].as_slice(), true, false)?.f_mean(tch::Kind::Double)?.f_double_value(&[])?
        } else {
            0.0
        };
        let sigma = l.noise_std as f64;
        let coarse = if l.metropolis == 1 {
            stats.acceptance_rate < 0.2
        } else {
            sigma > 0.0 && l.step_size as f64 * stats.langevin_grad_norm as f64 > 0.3 * sigma * d.sqrt()
        };
        // One step's noise wider than the data's whole spread resolves nothing of them.
        if coarse || (spread > 0.0 && sigma > spread) {
            w |= SANCE_WARNING_COARSE_STEP;
        }
        if spread > 0.0 && sigma * (l.steps as f64).sqrt() < 0.01 * spread {
            w |= SANCE_WARNING_FROZEN_STEP;
        }
        let outside_clamp = match self.clamp_of(l)?.inside(&flat)? {
            Some(inside) => inside.f_logical_not()?.f_any()?.f_int64_value(&[])? != 0,
            None => false,
        };
        // Chains start inside the init box (Gaussian ones within ~3 init_scales); a tuned step
        // carries them out of it, a fixed one may not.
        let beyond = if l.target_acceptance > 0.0 {
            0.0
        } else {
            let reach = match l.init {
                SanceInit::Uniform => l.init_scale as f64,
                SanceInit::Gaussian => 3.0 * l.init_scale as f64,
            };
            // The share of coordinates, not of rows: a Gaussian's tails leave 4.6 % of its
            // coordinates beyond the default box (±2 stds once scaled) in any dimension.
            flat.f_abs()?
                .f_gt(reach)?
                .f_to_kind(tch::Kind::Double)?
                .f_mean(tch::Kind::Double)?
                .f_double_value(&[])?
        };
        if outside_clamp || beyond > 0.1 {
            w |= SANCE_WARNING_OUT_OF_REACH;
        }
        Ok(w)
    }
}
