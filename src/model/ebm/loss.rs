//! The NCE loss of one step, its gradients, and the step's statistics.
use super::Ebm;
use crate::abi::config::SanceNoise;
use crate::abi::status::Result;
use crate::fault::torch_point;
use crate::model::langevin;
use tch::{Kind, Tensor};

/// How many statistics [`Ebm::step_statistics`] gives (and ranks average): loss, accuracy,
/// mean data energy, mean noise energy, the sampler's gradient norm, its acceptance rate.
pub(super) const STEP_STATISTICS: usize = 6;

impl Ebm {
    /// The NCE loss on given data and noise, differentiable in θ and c. Returns the loss and
    /// (h, E_θ) over the concatenation [data; noise].
    /// The logit is h = −E_θ(x) − log q(x) + c − ln ν, where log q = −E_θ̄ for the snapshot
    /// (its normaliser is absorbed by c) and the exact log density for GAUSSIAN noise.
    pub fn nce_loss(&self, data: &Tensor, noise: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let nu = self.cfg.noise_ratio as f64;
        let b = data.size()[0];
        let x = Tensor::f_cat(&[data, noise], 0)?;
        let n = x.size()[0] - b;
        let e = self.net.energy(&self.params, &x)?;
        let neg_log_q = match self.cfg.noise {
            SanceNoise::Snapshot => {
                let snapshot = self.snapshot.as_ref().expect("snapshot exists");
                crate::model::no_grad(|| self.net.energy(snapshot, &x))?
            }
            SanceNoise::Gaussian => {
                let g = self.gaussian.as_ref().expect("the Gaussian is fitted before a step");
                g.log_density(&x)?.f_neg()?
            }
        };
        let h = neg_log_q.f_sub(&e)?.f_add(&self.c)?.f_sub_scalar(nu.ln())?;
        let (h_d, h_n) = (h.f_narrow(0, 0, b)?, h.f_narrow(0, b, n)?);
        let mut loss = h_d
            .f_neg()?
            .f_softplus()?
            .f_mean(self.kind)?
            .f_add(&h_n.f_softplus()?.f_mean(self.kind)?.f_mul_scalar(nu)?)?;
        if self.cfg.energy_l2 > 0.0 {
            let (e_d, e_n) = (e.f_narrow(0, 0, b)?, e.f_narrow(0, b, n)?);
            let penalty = e_d.f_square()?.f_mean(self.kind)?.f_add(&e_n.f_square()?.f_mean(self.kind)?)?;
            loss = loss.f_add(&penalty.f_mul_scalar(self.cfg.energy_l2 as f64)?)?;
        }
        Ok((loss, h, e))
    }

    /// E_θ̄ of the noise rows, recovered from the logit h = E_θ̄ − E_θ + c − ln ν and E_θ over
    /// [data; noise] (call before the update changes c); None for GAUSSIAN noise. The replay
    /// buffer keeps them beside its chains, which saves a pass over it at the next refresh.
    pub(super) fn snapshot_energies(&self, h: &Tensor, e: &Tensor, b: i64) -> Result<Option<Tensor>> {
        if self.cfg.noise != SanceNoise::Snapshot {
            return Ok(None);
        }
        let n = h.size()[0] - b;
        let ln_nu = (self.cfg.noise_ratio as f64).ln();
        let v = crate::model::no_grad(|| {
            h.f_narrow(0, b, n)?.f_add(&e.f_narrow(0, b, n)?)?.f_sub(&self.c)?.f_add_scalar(ln_nu)
        })?;
        Ok(Some(v.f_detach()?))
    }

    /// The NCE loss on data [B, ...] and noise [M, ...], its logits and energies, and its
    /// gradients for θ (in `Params::named` order) then c.
    pub(super) fn loss_and_gradients(
        &self,
        data: &Tensor,
        noise: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor, Vec<Tensor>)> {
        let (loss, h, e) = self.nce_loss(data, noise)?;
        torch_point()?;
        let mut inputs: Vec<&Tensor> = self.params.iter().collect();
        inputs.push(&self.c);
        let grads = Tensor::f_run_backward(&[&loss], &inputs, false, false)?;
        torch_point()?;
        Ok((loss, h, e, grads))
    }

    /// The step's statistics on the device, in float64, [`STEP_STATISTICS`] of them: loss, accuracy of the
    /// classifier (ties count half), mean data energy, mean noise energy, the sampler's gradient norm and
    /// acceptance rate (Gaussian noise has no sampler: 0 and 1). `b` data rows come first in `h` and `e`, the
    /// noise after them.
    pub(super) fn step_statistics(
        &self,
        loss: &Tensor,
        h: &Tensor,
        e: &Tensor,
        b: i64,
        run: Option<&langevin::RunStats>,
    ) -> Result<Tensor> {
        let m = h.size()[0] - b;
        // A tie (h = 0, as everywhere right after a refresh with ν = 1) is a coin toss: half right.
        let correct = h
            .f_narrow(0, 0, b)?
            .f_gt(0.0)?
            .f_sum(Kind::Double)?
            .f_add(&h.f_narrow(0, b, m)?.f_lt(0.0)?.f_sum(Kind::Double)?)?
            .f_add(&h.f_eq(0.0)?.f_sum(Kind::Double)?.f_mul_scalar(0.5)?)?;
        let none;
        let run = match run {
            Some(r) => r,
            None => {
                none = langevin::RunStats::constant(0.0, 1.0, self.device)?;
                &none
            }
        };
        Ok(Tensor::f_stack(
            &[
                loss.detach().f_to_kind(Kind::Double)?,
                correct.f_div_scalar((b + m) as f64)?,
                e.f_narrow(0, 0, b)?.f_mean(Kind::Double)?.detach(),
                e.f_narrow(0, b, m)?.f_mean(Kind::Double)?.detach(),
                run.grad_norm.shallow_clone(),
                run.acceptance.shallow_clone(),
            ],
            0,
        )?)
    }
}
