//! The NCE loss of one step, its gradients, and the step's statistics.
use super::Ebm;
use crate::abi::config::SanceNoise;
use crate::abi::stats::SanceStepStats;
use crate::abi::status::Result;
use crate::fault::torch_point;
use crate::model::langevin;
use tch::{Kind, Tensor};

/// How many statistics [`Ebm::step_statistics`] gives (and ranks average): loss, accuracy,
/// mean data energy, mean noise energy, the sampler's gradient norm, its acceptance rate.
/// A new statistic changes this file and `SanceStepStats` only: [`step_stats`] is the one
/// decoder (the single-process update and the data-parallel one both use it).
pub(super) const STEP_STATISTICS: usize = 6;

/// What a step keeps of the loss's pass.
pub struct NceLoss {
    /// The loss, differentiable in θ and c.
    pub loss: Tensor,
    /// The logits h over [data; noise].
    pub h: Tensor,
    /// E_θ over [data; noise].
    pub e: Tensor,
    /// E_θ̄ of the noise rows (the snapshot's energies, which the population keeps); None for
    /// GAUSSIAN noise.
    pub snapshot_energies: Option<Tensor>,
}

/// The statistics [`Ebm::step_statistics`] stacked, read back (and averaged over ranks), as
/// the C struct; the caller adds what is not among them (the gradient norm, log Z's ratio).
pub(super) fn step_stats(s: &[f64]) -> SanceStepStats {
    let [loss, accuracy, data_energy, noise_energy, langevin_grad_norm, acceptance_rate] =
        <[f64; STEP_STATISTICS]>::try_from(&s[..STEP_STATISTICS]).expect("STEP_STATISTICS values");
    SanceStepStats {
        loss: loss as f32,
        accuracy: accuracy as f32,
        data_energy: data_energy as f32,
        noise_energy: noise_energy as f32,
        langevin_grad_norm: langevin_grad_norm as f32,
        acceptance_rate: acceptance_rate as f32,
        ..Default::default()
    }
}

impl Ebm {
    /// The NCE loss on given data and noise, differentiable in θ and c, and what the step keeps
    /// of its pass (see [`NceLoss`]).
    /// The logit is h = −E_θ(x) − log q(x) + c − ln ν, where log q = −E_θ̄ for the snapshot
    /// (its normaliser is absorbed by c) and the exact log density for GAUSSIAN noise.
    pub fn nce_loss(&self, data: &Tensor, noise: &Tensor) -> Result<NceLoss> {
        let x = Tensor::f_cat(&[data, noise], 0)?;
        let e = self.net.energy(&self.params, &x)?;
        self.nce_loss_on(&x, data.size()[0], e, None)
    }

    /// [`Ebm::nce_loss`] on x = [data; noise] (`b` data rows first) with E_θ(x) = `e` given,
    /// and E_θ̄(x) when given (else computed here).
    fn nce_loss_on(&self, x: &Tensor, b: i64, e: Tensor, e_snapshot: Option<Tensor>) -> Result<NceLoss> {
        let nu = self.cfg.noise_ratio as f64;
        let n = x.size()[0] - b;
        let neg_log_q = match self.cfg.noise {
            SanceNoise::Snapshot => match e_snapshot {
                Some(e) => e,
                // The same operations as E_θ's (a refresh step's logits tie exactly).
                None => crate::model::no_grad(|| {
                    self.net.energy(self.snapshot.as_ref().expect("snapshot exists"), x)
                })?,
            },
            SanceNoise::Gaussian => {
                let g = self.gaussian.as_ref().expect("the Gaussian is fitted before a step");
                g.log_density(x)?.f_neg()?
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
        // The replay buffer keeps E_θ̄ beside its chains: the next refresh reweights with them
        // instead of a pass over the population.
        let snapshot_energies = match self.cfg.noise {
            SanceNoise::Snapshot => Some(neg_log_q.f_narrow(0, b, n)?.f_detach()?),
            SanceNoise::Gaussian => None,
        };
        Ok(NceLoss { loss, h, e, snapshot_energies })
    }

    /// The NCE loss on data [B, ...] and noise [M, ...] and its gradients for θ (in
    /// `Params::named` order) then c.
    ///
    /// An MLP in float32 on the CPU runs its forward and backward passes on the fused kernels
    /// (crate::model::fast_mlp::train_pass): libtorch differentiates the loss with respect to
    /// the N energies and c only.
    pub(super) fn loss_and_gradients(&self, data: &Tensor, noise: &Tensor) -> Result<(NceLoss, Vec<Tensor>)> {
        if let Some(fast) = self.net.native(&self.params)? {
            let x = Tensor::f_cat(&[data, noise], 0)?;
            let snapshot = match (self.cfg.noise, self.snapshot.as_ref()) {
                (SanceNoise::Snapshot, Some(s)) => self.net.native(s)?,
                _ => None,
            };
            let pass =
                crate::model::fast_mlp::train_pass(&fast, snapshot.as_ref(), &self.params, &x, |e, es| {
                    let e = e.set_requires_grad(true);
                    let l = self.nce_loss_on(&x, data.size()[0], e.shallow_clone(), es)?;
                    torch_point()?;
                    let mut g = Tensor::f_run_backward(&[&l.loss], &[&e, &self.c], false, false)?;
                    let dc = g.pop().expect("two inputs");
                    Ok((g.pop().expect("two inputs"), (l, dc)))
                });
            let (mut grads, (l, dc)) = pass?;
            torch_point()?;
            grads.push(dc);
            return Ok((l, grads));
        }
        let l = self.nce_loss(data, noise)?;
        torch_point()?;
        let mut inputs: Vec<&Tensor> = self.params.iter().collect();
        inputs.push(&self.c);
        let grads = Tensor::f_run_backward(&[&l.loss], &inputs, false, false)?;
        torch_point()?;
        Ok((l, grads))
    }

    /// The step's statistics on the device, in float64, [`STEP_STATISTICS`] of them: loss, accuracy of the
    /// classifier (ties count half), mean data energy, mean noise energy, the sampler's gradient norm and
    /// acceptance rate (Gaussian noise has no sampler: 0 and 1). `b` data rows come first in `h` and `e`, the
    /// noise after them.
    pub(super) fn step_statistics(
        &self,
        l: &NceLoss,
        b: i64,
        run: Option<&langevin::RunStats>,
    ) -> Result<Tensor> {
        let (loss, h, e) = (&l.loss, &l.h, &l.e);
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
