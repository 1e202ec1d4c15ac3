//! The NCE loss of one step, its gradients, and the step's statistics.
use super::Ebm;
use crate::abi::config::SanceNoise;
use crate::abi::stats::SanceStepStats;
use crate::abi::status::Result;
use crate::fault::torch_point;
use crate::model::flat;
use crate::model::langevin;
use tch::{Kind, Tensor};

/// How many statistics [`Ebm::step_statistics`] gives (and ranks average): loss, accuracy,
/// mean data energy, mean noise energy, the sampler's gradient norm, its acceptance rate.
/// A new statistic changes this file and `SanceStepStats` only: [`step_stats`] is the one
/// decoder (the single-process update and the data-parallel one both use it).
pub(super) const STEP_STATISTICS: usize = 6;

/// What a step keeps of the loss's pass.
pub struct NceLoss {
    /// The loss, differentiable in θ and c (on the host's path a value only).
    pub loss: Tensor,
    /// E_θ̄ of the noise rows (the snapshot's energies, which the population keeps); None for
    /// GAUSSIAN noise.
    pub snapshot_energies: Option<Tensor>,
    /// What the step's statistics are made from.
    pub stats: LossStats,
}

/// What [`Ebm::step_statistics`] makes the loss's statistics from.
pub enum LossStats {
    /// The logits h and E_θ over [data; noise], as tensors (libtorch's loss).
    Tensors { h: Tensor, e: Tensor },
    /// The loss, the accuracy and the mean data and noise energies, computed with the loss on
    /// the host ([`host_nce`]).
    Host([f64; 4]),
}

impl NceLoss {
    /// The logits h over [data; noise], where the loss was computed as tensors.
    pub fn logits(&self) -> Option<&Tensor> {
        match &self.stats {
            LossStats::Tensors { h, .. } => Some(h),
            LossStats::Host(_) => None,
        }
    }
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
        let neg_log_q = match e_snapshot {
            Some(e) => e,
            None => self.neg_log_q(x)?,
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
        let snapshot_energies = self.snapshot_energies(&neg_log_q, b)?;
        Ok(NceLoss { loss, snapshot_energies, stats: LossStats::Tensors { h, e } })
    }

    /// −log q(x): E_θ̄(x) for the snapshot (the same operations as E_θ's, so that a refresh
    /// step's logits tie exactly), the fitted Gaussian's exact −log density for GAUSSIAN noise.
    fn neg_log_q(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.cfg.noise {
            SanceNoise::Snapshot => crate::model::no_grad(|| {
                self.net.energy(self.snapshot.as_ref().expect("snapshot exists"), x)
            })?,
            SanceNoise::Gaussian => {
                let g = self.gaussian.as_ref().expect("the Gaussian is fitted before a step");
                g.log_density(x)?.f_neg()?
            }
        })
    }

    /// The replay buffer keeps E_θ̄ beside its chains (the noise rows of −log q, after the `b`
    /// data rows): the next refresh reweights with them instead of a pass over the population.
    fn snapshot_energies(&self, neg_log_q: &Tensor, b: i64) -> Result<Option<Tensor>> {
        Ok(match self.cfg.noise {
            SanceNoise::Snapshot => Some(neg_log_q.f_narrow(0, b, neg_log_q.size()[0] - b)?.f_detach()?),
            SanceNoise::Gaussian => None,
        })
    }

    /// The NCE loss on data [B, ...] and noise [M, ...] and its gradient for θ then c, flat in
    /// `theta`'s layout.
    ///
    /// An MLP in float32 on the CPU runs its forward and backward passes on the fused kernels
    /// (crate::model::fast_mlp::train_pass) and the loss on the host ([`host_nce`]): at 512
    /// energies libtorch's loss and its autograd were about forty calls, each paying its
    /// dispatch rather than its arithmetic (docs/speed.md).
    pub(super) fn loss_and_gradients(&self, data: &Tensor, noise: &Tensor) -> Result<(NceLoss, Tensor)> {
        if let Some(fast) = self.net.native(&self.params)? {
            let x = Tensor::f_cat(&[data, noise], 0)?;
            let b = data.size()[0];
            let snapshot = match (self.cfg.noise, self.snapshot.as_ref()) {
                (SanceNoise::Snapshot, Some(s)) => self.net.native(s)?,
                _ => None,
            };
            let (mut g, (l, dc)) =
                crate::model::fast_mlp::train_pass(&fast, snapshot.as_ref(), &x, |e, es| {
                    let neg_log_q = match (self.cfg.noise, es) {
                        (SanceNoise::Snapshot, Some(es)) => es,
                        _ => self.neg_log_q(&x)?,
                    };
                    torch_point()?;
                    let c = f64::try_from(&self.c)?;
                    let nu = self.cfg.noise_ratio as f64;
                    let host = host_nce(
                        &host_f32(&e)?,
                        &host_f32(&neg_log_q)?,
                        b as usize,
                        c,
                        nu,
                        self.cfg.energy_l2 as f64,
                    );
                    let l = NceLoss {
                        loss: Tensor::f_from_slice(&[host.loss])?.f_view([])?,
                        snapshot_energies: self.snapshot_energies(&neg_log_q, b)?,
                        stats: LossStats::Host(host.stats),
                    };
                    Ok((host.de, (l, host.dc)))
                })?;
            g.push(dc as f32);
            return Ok((l, Tensor::f_from_slice(&g)?));
        }
        let l = self.nce_loss(data, noise)?;
        torch_point()?;
        let mut inputs: Vec<&Tensor> = self.params.iter().collect();
        inputs.push(&self.c);
        let grads = Tensor::f_run_backward(&[&l.loss], &inputs, false, false)?;
        torch_point()?;
        Ok((l, flat::concat(&grads)?))
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
        let none;
        let run = match run {
            Some(r) => r,
            None => {
                none = langevin::RunStats::constant(0.0, 1.0, self.device)?;
                &none
            }
        };
        let (h, e) = match &l.stats {
            LossStats::Tensors { h, e } => (h, e),
            LossStats::Host(s) => {
                // The host's loss runs on the CPU only, where the sampler's statistics are too.
                let head = Tensor::f_from_slice(s)?.f_to_device(self.device)?;
                let runs = [run.grad_norm.f_to_kind(Kind::Double)?, run.acceptance.f_to_kind(Kind::Double)?];
                return Ok(Tensor::f_cat(&[head, Tensor::f_stack(&runs, 0)?], 0)?);
            }
        };
        let loss = &l.loss;
        let m = h.size()[0] - b;
        // A tie (h = 0, as everywhere right after a refresh with ν = 1) is a coin toss: half right.
        let correct = h
            .f_narrow(0, 0, b)?
            .f_gt(0.0)?
            .f_sum(Kind::Double)?
            .f_add(&h.f_narrow(0, b, m)?.f_lt(0.0)?.f_sum(Kind::Double)?)?
            .f_add(&h.f_eq(0.0)?.f_sum(Kind::Double)?.f_mul_scalar(0.5)?)?;
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

/// What [`host_nce`] computes.
struct HostNce {
    loss: f64,
    /// ∂L/∂E_θ [N].
    de: Vec<f32>,
    /// ∂L/∂c.
    dc: f64,
    /// The loss, the classifier's accuracy (ties count half), mean data and noise energies.
    stats: [f64; 4],
}

/// NCE's loss on the host, in float64, with its derivatives in E_θ and c: the same formula as
/// [`Ebm::nce_loss_on`]'s tensors (`b` data rows, then the noise rows; `e` = E_θ, `neg_log_q`
/// = −log q, each [N]): h = −log q − E_θ + c − ln ν, L = mean_data softplus(−h) + ν·mean_noise
/// softplus(h) + l2·(mean_data E² + mean_noise E²). ∂L/∂h is −σ(−h)/B on a data row and
/// ν·σ(h)/M on a noise row; ∂L/∂E = −∂L/∂h + 2·l2·E/(B or M), ∂L/∂c = Σ ∂L/∂h.
fn host_nce(e: &[f32], neg_log_q: &[f32], b: usize, c: f64, nu: f64, l2: f64) -> HostNce {
    let n = e.len();
    let m = n - b;
    let shift = c - nu.ln();
    let softplus = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
    let sigmoid = |x: f64| {
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let t = x.exp();
            t / (1.0 + t)
        }
    };
    let (mut loss_d, mut loss_n, mut sq_d, mut sq_n, mut e_d, mut e_n, mut correct, mut dc) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let mut de = Vec::with_capacity(n);
    for (i, (&ei, &qi)) in e.iter().zip(neg_log_q).enumerate() {
        let ei = ei as f64;
        // h in float32, as the tensors' formula rounds it: a refresh step's ties stay exact.
        let hv = (qi as f64 - ei + shift) as f32 as f64;
        let (dh, l2_term) = if i < b {
            loss_d += softplus(-hv);
            sq_d += ei * ei;
            e_d += ei;
            correct += if hv > 0.0 {
                1.0
            } else if hv == 0.0 {
                0.5
            } else {
                0.0
            };
            (-sigmoid(-hv) / b as f64, 2.0 * l2 * ei / b as f64)
        } else {
            loss_n += softplus(hv);
            sq_n += ei * ei;
            e_n += ei;
            correct += if hv < 0.0 {
                1.0
            } else if hv == 0.0 {
                0.5
            } else {
                0.0
            };
            (nu * sigmoid(hv) / m as f64, 2.0 * l2 * ei / m as f64)
        };
        dc += dh;
        de.push((-dh + l2_term) as f32);
    }
    let mut loss = loss_d / b as f64 + nu * loss_n / m as f64;
    if l2 > 0.0 {
        loss += l2 * (sq_d / b as f64 + sq_n / m as f64);
    }
    HostNce { loss, de, dc, stats: [loss, correct / n as f64, e_d / b as f64, e_n / m as f64] }
}

/// A float32 CPU tensor's values (contiguous or not).
fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(t.f_contiguous()?)?)
}
