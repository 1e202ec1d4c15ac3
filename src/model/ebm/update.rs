//! Applying an update on one process: gradients, clip, AdamW, the finiteness checks, and the
//! one read-back of the step. With a reduction registered, `parallel.rs` applies it instead.
//! A failure here returns an error and changes nothing itself: the step's undo
//! (crate::model::ebm::saved) puts θ, c and Adam back.
use super::loss::{step_stats, STEP_STATISTICS};
use super::Ebm;
use crate::abi::stats::SanceStepStats;
use crate::abi::status::{Error, Result};
use crate::fault::torch_point;
use crate::model::langevin;
use crate::model::replay::Draw;
use tch::{Device, Kind, Tensor};

impl Ebm {
    /// Loss, gradients, clip, AdamW and the finiteness check on data [B, ...] and noise
    /// [M, ...]; then, when a draw is given, the chains go back to the replay buffer (the
    /// last act: nothing can fail after it). Returns the step's statistics.
    ///
    /// One host sync: everything is computed on the device, the update included, and the
    /// statistics and the finiteness checks are read back together at the end. A step whose
    /// loss or gradient turns out non-finite is then failed like one whose update blew up.
    pub(super) fn update(
        &mut self,
        data: &Tensor,
        noise: &Tensor,
        draw: Option<&Draw>,
        run: Option<&langevin::RunStats>,
    ) -> Result<SanceStepStats> {
        if self.is_data_parallel() {
            return self.update_across_ranks(data, noise, draw, run);
        }
        let b = data.size()[0];
        // One flat gradient in θ's layout (θ then c); clipping scales it.
        let (l, mut g) = self.loss_and_gradients(data, noise)?;
        let gnorm = g.f_square()?.f_sum(Kind::Double)?.f_sqrt()?;
        let clip = self.cfg.grad_clip as f64;
        if clip > 0.0 {
            // g·min(1, clip/‖g‖), on the device (no read of ‖g‖).
            let scale = gnorm.f_clamp_min(1e-300)?.f_reciprocal()?.f_mul_scalar(clip)?.f_clamp_max(1.0)?;
            let _ = g.f_mul_(&scale.f_to_kind(g.kind())?)?;
        }
        // A finite gradient times an absurd learning rate gives finite but useless parameters
        // whose energies overflow, and the next step could not recover: checked below.
        let energies_ok = self.adamw_then_check_energies(&g, data, noise)?;
        torch_point()?;
        let summary = Tensor::f_cat(
            &[
                self.step_statistics(&l, b, run)?,
                Tensor::f_stack(
                    &[
                        gnorm.shallow_clone(),
                        self.c.detach().f_to_kind(Kind::Double)?,
                        energies_ok.f_to_kind(Kind::Double)?,
                    ],
                    0,
                )?,
            ],
            0,
        )?;
        let read = Vec::<f64>::try_from(summary.f_to_device(Device::Cpu)?)?;
        let [gnorm_v, log_z, energies_ok] = <[f64; 3]>::try_from(&read[STEP_STATISTICS..])
            .expect("the statistics and three values were stacked");
        let loss_v = read[0];
        if !loss_v.is_finite() || !gnorm_v.is_finite() {
            return Err(Error::non_finite(format!(
                "step {}: the loss ({loss_v}) or gradient norm ({gnorm_v}) is not finite; the update \
                 was skipped and the model left unchanged (lower learning_rate or langevin.step_size, \
                 or set grad_clip / energy_l2)",
                self.step + 1
            )));
        }
        if energies_ok != 1.0 {
            return Err(Error::non_finite(format!(
                "step {}: the update made the energies non-finite (learning_rate too large?); it was \
                 undone and the model left unchanged",
                self.step + 1
            )));
        }
        if let Some(d) = draw {
            self.buffer.commit(d, noise, l.snapshot_energies.as_ref())?;
        }
        Ok(SanceStepStats { log_z_ratio: log_z as f32, grad_norm: gnorm_v as f32, ..step_stats(&read) })
    }

    /// Applies AdamW with the (clipped) flat gradient `g`, then says whether c and the
    /// energies of the batch are still finite: a bool tensor (no host read).
    pub(super) fn adamw_then_check_energies(
        &mut self,
        g: &Tensor,
        data: &Tensor,
        noise: &Tensor,
    ) -> Result<Tensor> {
        // Weight decay for θ, not for c (the last entry).
        let decayed = self.theta.size()[0] - 1;
        self.adam.step(&mut self.theta, g, decayed)?;
        torch_point()?;
        let x = Tensor::f_cat(&[data, noise], 0)?;
        let energies_ok = self.net.energies(&self.params, &x)?.f_isfinite()?.f_all()?;
        Ok(energies_ok.f_logical_and(&self.c.f_isfinite()?)?)
    }

    /// Test-only (the `test-hooks` feature): one update, as a training step makes it, on given
    /// data and noise chains — no refresh, no Langevin sampling, the replay buffer untouched.
    /// Returns the step's statistics and the gradient of the loss for θ (in `Params::named`
    /// order) then c, before clipping (computed apart, on the parameters before the update).
    /// tests/reference_step.rs compares all of it with a PyTorch reference.
    #[cfg(feature = "test-hooks")]
    pub fn update_on(&mut self, data: &Tensor, noise: &Tensor) -> Result<(SanceStepStats, Vec<Tensor>)> {
        let (_, g) = self.loss_and_gradients(data, noise)?;
        let mut shapes: Vec<Vec<i64>> = self.params.iter().map(Tensor::size).collect();
        shapes.push(vec![]);
        let grads = crate::model::flat::views(&g.f_detach()?, &shapes)?;
        let stats = self.undoable(super::saved::Undo::Model, |m| m.update(data, noise, None, None))?;
        self.step += 1;
        Ok((stats, grads))
    }
}
