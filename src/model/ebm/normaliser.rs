//! The model's log-normaliser log Z_θ = log ∫ exp(−E_θ(x)) dx, by annealed importance sampling
//! (crate::model::ais), so that held-out data get a normalised log-likelihood −E_θ(x) − log Z_θ
//! in any dimension. Nothing here changes the model: the chains draw from a stream derived from
//! the model's, which stays as it is.
use super::Ebm;
use crate::abi::ais::{validate_ais, SanceAis};
use crate::abi::config::{SanceInit, SanceNoise};
use crate::abi::status::Result;
use crate::model::ais::{self, Estimate, Schedule};
use crate::model::gaussian::Gaussian;
use crate::model::rng::Rng;
use tch::Tensor;

/// Tags of the streams derived for the pilot run and the estimate.
const PILOT_STREAM: u64 = 0x5a1c_e000_0000_0001;
const ESTIMATE_STREAM: u64 = 0x5a1c_e000_0000_0002;

impl Ebm {
    /// The normalised base of the estimate, a Gaussian: classic NCE's fitted noise when there is
    /// one; else a Gaussian fitted to the replay buffer's chains (which follow the snapshot)
    /// with its scale doubled, to cover the model's tails; else, before any chain exists,
    /// N(0, init_scale²·I) from the sampler's init scale (at least 1).
    pub(crate) fn ais_base(&self) -> Result<Gaussian> {
        if self.cfg.noise == SanceNoise::Gaussian {
            if let Some(g) = &self.gaussian {
                return Ok(g.shallow());
            }
        }
        let d = self.sample_size() as i64;
        if let Some(rows) = self.buffer.contents().filter(|r| r.size()[0] >= 2) {
            let g = Gaussian::fit(&rows, 0.0, self.kind, self.device)?;
            return Ok(Gaussian::from_parts(
                g.mean.shallow_clone(),
                g.scale.f_mul_scalar(2.0)?,
                self.kind,
                self.device,
            )?);
        }
        let l = self.cfg.langevin;
        let s = if l.init == SanceInit::Uniform { l.init_scale as f64 } else { l.init_scale as f64 * 1.5 };
        let mean = Tensor::f_zeros([d], (self.kind, self.device))?;
        let std = Tensor::f_full([d], s.max(1.0), (self.kind, self.device))?;
        Ok(Gaussian::from_parts(mean, std, self.kind, self.device)?)
    }

    /// Defaults for this model: 512 chains (128 above 64 floats per sample), 1,000
    /// temperatures, one MALA step each, and the step size a pilot run finds at the model:
    /// MALA on exp(−E_θ) for 40 steps from 64 of the replay buffer's chains (base draws when
    /// it is empty), taking the largest of λ₀, λ₀/2, λ₀/4, … whose moves in the last 20 steps
    /// are accepted at least half the time, λ₀ being the base's own step. The model is
    /// unchanged.
    pub fn ais_defaults(&self) -> Result<SanceAis> {
        let _threads = self.call_threads();
        let d = self.sample_size();
        let chains = if d > 64 { 128 } else { 512 };
        let base = self.ais_base()?;
        let mut rng = self.rng.derived(PILOT_STREAM);
        let p = self.model_params().detached();
        let mut energy = |x: &Tensor| self.net.energy_and_grad(&p, x);
        // Start where the model's mass is when the replay buffer knows it.
        let start = match self.buffer.contents() {
            Some(rows) => Some(rows.f_narrow(0, 0, rows.size()[0].min(64))?.f_to_kind(self.kind)?),
            None => None,
        };
        let mut lambda = ais::base_step(&base)?;
        for _ in 0..40 {
            let pilot = Schedule { chains: 64, temperatures: 1, steps: 40, step_size: lambda };
            let shape = &self.batch_shape(1)[1..];
            let acc = ais::pilot_acceptance(&mut energy, &base, shape, start.as_ref(), &pilot, &mut rng)?;
            if acc >= 0.5 {
                break;
            }
            lambda /= 2.0;
        }
        Ok(SanceAis { chains: chains as u32, temperatures: 1000, steps: 1, step_size: lambda as f32 })
    }

    /// AIS estimate of log Z_θ = log ∫ exp(−E_θ(x)) dx (c not included) with `p`, from
    /// [`Ebm::ais_base`], reproducible for a model: the same model gives the same estimate.
    pub fn estimate_log_normaliser(&self, p: &SanceAis) -> Result<Estimate> {
        let _threads = self.call_threads();
        validate_ais(p, "params")?;
        self.check_work_size(p.chains as usize, "params.chains", false)?;
        let base = self.ais_base()?;
        let mut rng: Rng = self.rng.derived(ESTIMATE_STREAM);
        let params = self.model_params().detached();
        let mut energy = |x: &Tensor| self.net.energy_and_grad(&params, x);
        let s = Schedule {
            chains: p.chains as usize,
            temperatures: p.temperatures as usize,
            steps: p.steps as usize,
            step_size: p.step_size as f64,
        };
        Ok(ais::log_z(&mut energy, &base, &self.batch_shape(1)[1..], &s, &mut rng)?)
    }
}
