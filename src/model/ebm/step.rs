//! The training step: when the snapshot is refreshed, how the noise is drawn (chains on θ̄,
//! or the fitted Gaussian of classic NCE), and the step's bookkeeping. The loss is in
//! `loss.rs`, applying the update in `update.rs` (one process) and `parallel.rs` (ranks).
use super::saved::Undo;
use super::Ebm;
use crate::abi::config::SanceNoise;
use crate::abi::stats::SanceStepStats;
use crate::abi::status::{Error, Result};
use crate::fault::torch_point;
use crate::model::gaussian::Gaussian;
use crate::model::langevin;
use crate::model::replay::Draw;
use crate::model::resample::systematic;
use std::panic::{self, AssertUnwindSafe};
use tch::Tensor;

impl Ebm {
    /// One SA-NCE step on a data batch [B, ...] (one classic-NCE step with GAUSSIAN noise).
    /// On any failure — a non-finite loss or gradient (NonFinite), an update that makes the
    /// energies non-finite (NonFinite), or a libtorch error (Torch) — nothing changes: θ, θ̄,
    /// c, Adam, buffer, counters and the random stream are as before the call.
    pub fn train_step(&mut self, data: &Tensor) -> Result<SanceStepStats> {
        self.train_step_with(|_| Ok(data.shallow_clone()))
    }

    /// [`Ebm::train_step`] on the batch that `batch` makes (the C layer's checks of the
    /// caller's data, then the copy). `batch` runs inside the step, so that with a reduction
    /// registered a batch refused on this rank still makes the reductions the other ranks make
    /// (flagged bad), whatever way the step ends: an error, a libtorch failure or a panic.
    pub fn train_step_with(&mut self, batch: impl FnOnce(&Ebm) -> Result<Tensor>) -> Result<SanceStepStats> {
        // The batch's copy and the step's reductions run on the call's threads too.
        let _threads = self.call_threads();
        self.open_step();
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            let data = batch(self)?;
            self.step_on(&data)
        }));
        self.settle_step();
        match r {
            Ok(r) => r,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    fn step_on(&mut self, data: &Tensor) -> Result<SanceStepStats> {
        self.check_population_temperature()?;
        let b = data.size().first().copied().unwrap_or(0);
        let refresh = self.refresh_due();
        let stats = self.undoable(Undo::Model, |m| {
            // The first batch fixes the model's coordinates (summed over ranks when
            // data-parallel), before anything else sees the data.
            if m.scaling_due() {
                m.fit_scaling(data)?;
            }
            let data = &m.to_model(data)?;
            match m.cfg.noise {
                SanceNoise::Snapshot if refresh => m.refresh_snapshot()?,
                SanceNoise::Snapshot => {}
                // Classic NCE fits its Gaussian to the first batch unless fit_noise came first.
                SanceNoise::Gaussian if m.gaussian.is_none() => {
                    if b < 2 {
                        return Err(Error::invalid(
                            "the first step of SANCE_NOISE_GAUSSIAN fits the noise to its batch, which \
                             needs n >= 2 (or call fit_noise first)",
                        ));
                    }
                    m.install_fit(data)?;
                }
                SanceNoise::Gaussian => {}
            }
            let sampler = m.cfg.langevin;
            let mut stats = m.noise_and_update(data)?;
            m.update_average()?;
            if m.cfg.noise == SanceNoise::Snapshot {
                stats.step_size = sampler.step_size;
                stats.warnings = m.warnings(data, &sampler, &stats)?;
                m.tune_step(stats.acceptance_rate);
            }
            // Energies in the caller's units, as sance_ebm_energy gives them.
            stats.data_energy += m.log_det() as f32;
            stats.noise_energy += m.log_det() as f32;
            Ok(stats)
        })?;
        Ok(self.count_step(stats, refresh))
    }

    /// The population that follows the snapshot (`follow_snapshot`: SA-NCE without restarts) is
    /// filled and reweighted as draws of exp(−E_θ̄), and NCE's logit takes log q = −E_θ̄: both
    /// hold at temperature 1 only, while the moves target exp(−E_θ̄/T), T = σ²/(2λ). Another T
    /// would make the noise follow another density than the logit's, and the model learn
    /// p_data·q/r instead of p_data, silently: refused.
    fn check_population_temperature(&self) -> Result<()> {
        let l = &self.cfg.langevin;
        let t = (l.noise_std as f64).powi(2) / (2.0 * l.step_size as f64);
        if self.cfg.noise == SanceNoise::Snapshot
            && self.cfg.replay_reinit_prob == 0.0
            && (t - 1.0).abs() > 1e-3
        {
            return Err(Error::invalid(format!(
                "config.langevin's temperature T = noise_std²/(2·step_size) is {t:.4}, but with \
                 replay_reinit_prob = 0 the noise chains are a population of the snapshot's density \
                 exp(−E_θ̄), T = 1, which NCE's logit assumes: set noise_std = √(2·step_size), or \
                 replay_reinit_prob > 0 for short-run chains that follow no density (the image recipe)"
            )));
        }
        Ok(())
    }

    /// The refresh schedule: before the first step, then every K = `noise_update_interval`
    /// steps (never again with K = 0). Classic NCE has no snapshot to refresh.
    fn refresh_due(&self) -> bool {
        let k = self.cfg.noise_update_interval as u64;
        self.cfg.noise == SanceNoise::Snapshot
            && (self.snapshot.is_none() || (k >= 1 && self.step.is_multiple_of(k)))
    }

    /// Counts a step that succeeded and stamps its statistics with the counters.
    fn count_step(&mut self, mut stats: SanceStepStats, refreshed: bool) -> SanceStepStats {
        self.step += 1;
        stats.step = self.step;
        stats.refresh_count = self.refresh_count;
        stats.refreshed = refreshed as i32;
        stats
    }

    /// The step after any refresh or fit: data noise added to the batch, the noise batch
    /// drawn, the update applied; the chains' provenance kept for diagnostics.
    fn noise_and_update(&mut self, data: &Tensor) -> Result<SanceStepStats> {
        let b = data.size()[0];
        let m = self.noise_rows(b) as usize;
        let data = if self.cfg.data_noise_std > 0.0 {
            data.f_add(&self.data_noise(&data.size(), self.cfg.data_noise_std as f64)?)?
        } else {
            data.shallow_clone()
        };
        if self.cfg.noise == SanceNoise::Gaussian {
            let g = self.gaussian.as_ref().expect("the Gaussian is fitted before a step");
            let noise = g.sample(&self.batch_shape(m as i64), &mut self.rng)?;
            let stats = self.update(&data, &noise, None, None)?;
            return Ok(stats);
        }
        let (noise, draw, run) = self.draw_noise(m)?;
        let stats = self.update(&data, &noise, Some(&draw), Some(&run))?;
        self.last_draw = Some(draw);
        Ok(stats)
    }

    /// M = round(ν·B) noise chains per step, at least one.
    pub(super) fn noise_rows(&self, b: i64) -> i64 {
        ((self.cfg.noise_ratio as f64 * b as f64).round() as i64).max(1)
    }

    /// θ̄ ← θ and c ← 0, and c's Adam momentum ← 0 (its second moment is kept). Right after
    /// a refresh ∂L/∂c = 0, so c stays at 0 instead of being pushed by the momentum it built up
    /// tracking the previous snapshot's normaliser; the kept second moment keeps its steps at
    /// their usual scale (docs/algorithm.md). On failure nothing changes.
    pub fn refresh_noise(&mut self) -> Result<()> {
        if self.cfg.noise == SanceNoise::Gaussian {
            return Err(Error::invalid(
                "refresh_noise: config.noise is SANCE_NOISE_GAUSSIAN, a fixed density with no snapshot to \
                 refresh (refit it with fit_noise)",
            ));
        }
        self.undoable(Undo::Model, |m| m.refresh_snapshot())
    }

    /// [`Ebm::refresh_noise`]'s work, inside the caller's undo.
    fn refresh_snapshot(&mut self) -> Result<()> {
        let snapshot = self.params.detached_copy()?;
        torch_point()?;
        self.follow_snapshot(&snapshot)?;
        let _ = crate::model::no_grad(|| self.c.f_zero_())?;
        torch_point()?;
        let _ = self.adam.m.last_mut().expect("c has moments").f_zero_()?;
        self.snapshot = Some(snapshot);
        self.refresh_count += 1;
        Ok(())
    }

    /// Keeps the replay buffer a population of the snapshot's density q = exp(−E_θ̄)/Z, as a
    /// particle filter does; only when `replay_reinit_prob` is 0 (restarted chains, fresh from
    /// the init box, follow no snapshot, so with restarts the buffer is no such population).
    /// At a refresh each stored chain, a draw of q_old, gets the weight q_new/q_old ∝
    /// exp(E_θ̄old(x) − E_θ̄new(x)) and the buffer is resampled in proportion (systematic, one
    /// uniform); then it is filled to capacity with draws of q_new (the first refresh fills it
    /// whole). Langevin moves keep each snapshot's density, so the chains follow the snapshot
    /// across refreshes — between modes too, which chains alone barely cross. The fill matters:
    /// the ratio q/r of each mode's mass in the snapshot and in the chains is carried unchanged
    /// by the reweighting, the model learns p_data·q/r, and a population of n chains adds
    /// errors of ~√(w(1 − w)/n) to that ratio at each resampling (docs/algorithm.md).
    fn follow_snapshot(&mut self, new: &crate::model::net::Params) -> Result<()> {
        if self.cfg.replay_reinit_prob != 0.0 {
            return Ok(());
        }
        if let (Some(old), Some(rows)) = (self.snapshot.as_ref(), self.buffer.contents()) {
            let rows = rows.f_to_kind(self.kind)?;
            // E_θ̄old is kept beside each chain as it is written (one pass saved per refresh).
            let e_old = match self.buffer.known_energies() {
                Some(e) => e,
                None => self.net.energies(old, &rows)?,
            };
            let e_new = self.net.energies(new, &rows)?;
            let u = self.rng.uniform();
            let log_w = host_f64(&e_old.f_sub(&e_new)?)?;
            // Weights that are not finite keep the population as it is (systematic's identity),
            // counted in SanceProgress.
            let max = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if max.is_finite() && !log_w.iter().any(|v| v.is_nan()) {
                let (_, share) = crate::model::smc::log_mean_and_ess_share(&log_w);
                self.refresh_ess = share * log_w.len() as f64;
            } else {
                self.refresh_nonfinite += 1;
            }
            let idx = systematic(&log_w, rows.size()[0] as usize, u);
            self.buffer.resample(&idx, &e_new)?;
        }
        let missing = self.buffer.capacity() - self.buffer.len();
        if missing > 0 {
            let (fresh, e) = self.draws_of(new, missing)?;
            self.buffer.extend(&fresh, &e)?;
        }
        Ok(())
    }

    /// `n` draws of the init distribution g tilted by the snapshot's density, ∝ exp(−E(x))·g(x):
    /// `n` draws of g resampled with weights exp(−E(x)) (systematic); and their energies. For
    /// the uniform init that is q restricted to the box; for the Gaussian init, q·g, whose
    /// weights are bounded where q's own, exp(−E)/g, grow like exp(|x|²/(2s²)) in g's tails
    /// (an effective sample size of 3–31 of 8,192). At the first refresh q is nearly flat and
    /// has no normalisable density of its own; the moves then carry the population to q.
    pub(crate) fn draws_of(
        &mut self,
        params: &crate::model::net::Params,
        n: usize,
    ) -> Result<(Tensor, Tensor)> {
        let l = self.cfg.langevin;
        let x =
            langevin::init_chains(&l, &self.batch_shape(n as i64), self.kind, self.device, &mut self.rng)?;
        let e = self.net.energies(params, &x)?;
        let idx = systematic(&host_f64(&e.f_neg()?)?, n, self.rng.uniform());
        let i = Tensor::f_from_slice(&idx)?.f_to_device(self.device)?;
        Ok((x.f_index_select(0, &i)?, e.f_index_select(0, &i)?))
    }

    /// Draws this step's noise: M chains from the replay buffer / init, `T` Langevin steps on
    /// E_θ̄. Writes nothing to the buffer.
    pub fn draw_noise(&mut self, m: usize) -> Result<(Tensor, Draw, langevin::RunStats)> {
        let l = self.cfg.langevin;
        let draw = self.buffer.plan(m, self.cfg.replay_reinit_prob as f64, &mut self.rng);
        // Without restarts a fresh chain (only when the buffer holds fewer than M) is a draw of
        // the snapshot too, like the buffer's.
        let fresh = if self.cfg.replay_reinit_prob == 0.0 && draw.fresh > 0 {
            let snapshot = self.snapshot.as_ref().expect("snapshot exists during a step").shallow();
            self.draws_of(&snapshot, draw.fresh)?.0
        } else {
            langevin::init_chains(
                &l,
                &self.batch_shape(draw.fresh as i64),
                self.kind,
                self.device,
                &mut self.rng,
            )?
        };
        let x0 = match self.buffer.gather(&draw)? {
            Some(r) => Tensor::f_cat(&[r.f_to_kind(self.kind)?, fresh], 0)?,
            None => fresh,
        };
        let snapshot = self.snapshot.as_ref().expect("snapshot exists during a step");
        let clamp = self.clamp_of(&l)?;
        let (x, run) = langevin::run_clamped(&self.net, snapshot, x0, &l, &clamp, &mut self.rng, true)?;
        Ok((x, draw, run))
    }

    /// GAUSSIAN noise: fits the noise density's mean and covariance to `x` [N, ...], N >= 2
    /// (docs/algorithm.md gives the ridge and when the covariance is diagonal). Replaces an
    /// earlier fit (c is set only before the first step, see `install_fit`). On failure
    /// nothing changes.
    pub fn fit_noise(&mut self, x: &Tensor) -> Result<()> {
        if self.cfg.noise != SanceNoise::Gaussian {
            return Err(Error::invalid(
                "fit_noise: config.noise is SANCE_NOISE_SNAPSHOT, whose noise is the model itself; a fitted \
                 Gaussian is used only with SANCE_NOISE_GAUSSIAN",
            ));
        }
        let n = x.size()[0];
        if n < 2 {
            return Err(Error::invalid(format!(
                "fit_noise: n must be at least 2 to estimate a covariance (got {n})"
            )));
        }
        self.undoable(Undo::Model, |m| {
            // Data given before the first step fix the model's coordinates too.
            if m.scaling_due() {
                m.fit_scaling_locally(x)?;
            }
            let x = m.to_model(x)?;
            m.install_fit(&x)
        })
    }

    /// Fits q to `x` and, before the first step, starts c at the mean of log q over `x`:
    /// the model's log density −E + c then starts on q's scale (E ≈ 0 at initialisation), so
    /// that c need not climb tens of nats at the learning rate's pace first. A later refit
    /// leaves c to adapt.
    fn install_fit(&mut self, x: &Tensor) -> Result<()> {
        // The trainer adds N(0, s²I) (data units) to every data batch; q is fitted to what it
        // classifies, in the model's coordinates: variance (s/scale)² per coordinate.
        let s = self.cfg.data_noise_std as f64;
        let d = self.sample_size() as i64;
        let added = match &self.scaling {
            Some(sc) => sc.length_to_model(s)?.f_square()?,
            None => Tensor::f_full([d], s * s, (self.kind, self.device))?,
        };
        let g = Gaussian::fit_added(x, &added, self.kind, self.device)?;
        torch_point()?;
        if self.step == 0 {
            let c0 = g.log_density(&x.f_to_device(self.device)?.f_to_kind(self.kind)?)?.f_mean(self.kind)?;
            crate::model::no_grad(|| self.c.f_copy_(&c0))?;
        }
        self.gaussian = Some(g);
        Ok(())
    }

    /// Test-only: the N(0, 1) tensor the next draw of this shape from the handle's stream
    /// would give, without consuming it (the sampler's ξ, for the reference Langevin step).
    #[cfg(feature = "test-hooks")]
    pub fn peek_normal(&self, shape: &[i64]) -> Result<Tensor> {
        Ok(self.rng.clone().randn(shape, self.kind, self.device)?)
    }
}

/// A tensor's values on the host, as f64.
fn host_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(t.f_to_kind(tch::Kind::Double)?.f_to_device(tch::Device::Cpu)?)?)
}
