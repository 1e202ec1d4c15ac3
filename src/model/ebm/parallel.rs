//! Data-parallel training through a reduction the host provides (docs/mpi.md).
//!
//! sance stays free of MPI: the host registers a function that sums a float buffer in place
//! over all ranks (`MPI_Allreduce` with `MPI_IN_PLACE`, NCCL, Gloo, …). A training step then
//! makes exactly the same reductions on every rank, in the same order and of the same sizes,
//! whatever happens locally — a rank that fails before or between them still takes part,
//! flagging the step as bad — so that no rank waits forever for another.
//!
//! This file owns the protocol whole: registration, where a step stands in its reductions
//! ([`Phase`], read and written here alone), the two reductions of a step, and what a failed
//! step still owes.
use super::loss::{step_stats, STEP_STATISTICS};
use super::Ebm;
use crate::abi::collective::SanceAllreduceFn;
use crate::abi::config::{SanceNoise, SANCE_DEVICE_CPU};
use crate::abi::stats::SanceStepStats;
use crate::abi::status::{Error, Result, SanceStatus};
use crate::fault::torch_point;
use crate::model::langevin;
use crate::model::replay::Draw;
use crate::model::rng::Rng;
use crate::model::scaling::{column_sums, scales_from};
use crate::panic::catch_torch;
use std::ffi::c_void;
use tch::{Device, Kind, Tensor};

/// The host's `user` pointer, passed back untouched. The host promises it may be used from
/// whichever thread calls sance (the handle serialises calls).
#[derive(Clone, Copy, Debug)]
pub struct UserPtr(pub *mut c_void);
// SAFETY: sance only hands the pointer back to the host's own function.
unsafe impl Send for UserPtr {}
unsafe impl Sync for UserPtr {}

/// A registered reduction: the host's function (never NULL here), its `user` pointer, this
/// rank and the world's size.
#[derive(Clone, Copy, Debug)]
pub struct Collective {
    f: unsafe extern "C" fn(buf: *mut f32, n: usize, user: *mut c_void) -> i32,
    user: UserPtr,
    pub rank: u32,
    pub world: u32,
}

impl Collective {
    /// The reduction `f` registers; None when `f` is NULL (unregistering).
    pub fn new(f: SanceAllreduceFn, user: UserPtr, rank: u32, world: u32) -> Option<Collective> {
        f.map(|f| Collective { f, user, rank, world })
    }

    /// Sums `buf` over ranks. A non-zero return is SANCE_STATUS_COLLECTIVE.
    pub fn reduce(&self, buf: &mut [f32], what: &str) -> Result<()> {
        // SAFETY: the host's function, on a buffer of exactly `buf.len()` floats.
        let rc = unsafe { (self.f)(buf.as_mut_ptr(), buf.len(), self.user.0) };
        if rc != 0 {
            return Err(Error::new(
                SanceStatus::Collective,
                format!(
                    "the host's allreduce returned {rc} during {what} (rank {} of {}); the step was \
                     abandoned and this rank's model left unchanged, but the other ranks may be inside \
                     the same reduction: the communicator is the host's to repair or abort (docs/mpi.md)",
                    self.rank, self.world
                ),
            ));
        }
        Ok(())
    }
}

/// Where a training step stands in its reductions, so that a failed step can still make the
/// ones the other ranks make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The step fits the data's scaling (the model's first step): its two reductions, the
    /// data's sums then their squared deviations, come before the gradient's.
    FitSums,
    FitSpread,
    /// No gradient reduction made yet this step: it is still owed.
    Start,
    /// The gradient reduction passed on every rank: the second (post-update check) is owed.
    Reduced,
    /// Nothing more is owed (the step finished, every rank skipped, or the host's reduction
    /// failed and must not be called again this step).
    Done,
}

/// A registered reduction and the reductions the current step still owes.
#[derive(Debug)]
pub(super) struct Reduction {
    collective: Collective,
    phase: Phase,
}

impl Ebm {
    /// Whether training steps reduce over ranks.
    pub(super) fn is_data_parallel(&self) -> bool {
        self.reduction.is_some()
    }

    /// Registers the host's reduction (None unregisters); with one, training steps average
    /// the gradient, the statistics and the skip decisions over ranks. Registration is itself
    /// a reduction: it checks that all ranks hold the same θ, c, counters and config (the
    /// device aside). When every rank holds the same random stream (a model that has not
    /// trained yet, or every rank loaded one checkpoint), each rank but rank 0 then takes a
    /// stream of its own for its noise chains, at any step; ranks whose streams already differ
    /// (each resumed from its own checkpoint) keep theirs. On failure nothing changes.
    pub fn set_allreduce(&mut self, c: Option<Collective>) -> Result<()> {
        let Some(c) = c else {
            self.reduction = None;
            return Ok(());
        };
        let fingerprint = if c.world == 0 || c.rank >= c.world {
            Err(Error::invalid(format!(
                "set_allreduce: rank must be < world_size, world_size >= 1 (got rank {}, world_size {})",
                c.rank, c.world
            )))
        } else if self.cfg.noise == SanceNoise::Gaussian {
            Err(Error::invalid(
                "set_allreduce: a SANCE_NOISE_GAUSSIAN model cannot train data-parallel: each rank would \
                 fit its own noise density (and c) to its own data, and the ranks would drift apart",
            ))
        } else {
            self.fingerprint()
        };
        let fingerprint = match fingerprint {
            Ok(f) => f,
            Err(e) => {
                // The other ranks are entering the registration's reduction: take part with a
                // buffer that fails their check too (its size does not depend on the
                // arguments), so that every rank gets an error and none waits.
                let mut buf = registration_buffer(0, 0, 0, 1);
                buf[2] = f32::NAN;
                let _ = c.reduce(&mut buf, "registration");
                return Err(e);
            }
        };
        let stream = self.rng.state().iter().fold(FNV_OFFSET, |h, w| fnv1a(&w.to_le_bytes(), h));
        let mut buf = registration_buffer(fingerprint, stream, c.rank, c.world);
        c.reduce(&mut buf, "registration")?;
        check_registration(&buf)?;
        if same_streams(&buf) && c.rank > 0 {
            // Identical streams would draw identical noise chains on every rank: each rank but
            // rank 0 takes a stream of its own, derived from its rank and the shared stream.
            let seed = self
                .rng
                .state()
                .iter()
                .fold(fnv1a(&c.rank.to_le_bytes(), FNV_OFFSET), |h, w| fnv1a(&w.to_le_bytes(), h));
            self.rng = Rng::new(seed);
        }
        self.reduction = Some(Reduction { collective: c, phase: Phase::Done });
        Ok(())
    }

    /// What every rank must agree on: the config (its device aside), θ and c, the counters,
    /// the data's scaling.
    fn fingerprint(&self) -> Result<u64> {
        // The device index may differ (each rank its own GPU), its kind may not: the CPU and
        // CUDA round the update differently.
        let mut cfg = self.cfg;
        cfg.device = if self.device == Device::Cpu { SANCE_DEVICE_CPU } else { 0 };
        let mut h = fnv1a(crate::abi::config_json::to_json(&cfg).as_bytes(), FNV_OFFSET);
        let theta = Vec::<f32>::try_from(self.theta.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?)?;
        for v in theta {
            h = fnv1a(&v.to_bits().to_le_bytes(), h);
        }
        for n in [self.step, self.refresh_count, self.adam.t] {
            h = fnv1a(&n.to_le_bytes(), h);
        }
        if let Some(s) = &self.scaling {
            let both = Tensor::f_cat(&[&s.shift, &s.scale], 0)?;
            for v in Vec::<f32>::try_from(both.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?)? {
                h = fnv1a(&v.to_bits().to_le_bytes(), h);
            }
        }
        Ok(h)
    }

    /// Marks the start of a training step: with a reduction registered, its reductions are
    /// owed to the other ranks from here on.
    pub(super) fn open_step(&mut self) {
        // A deterministic function of what every rank holds alike (config, counters, scaling).
        let fits = self.scaling_due();
        if let Some(r) = &mut self.reduction {
            r.phase = if fits { Phase::FitSums } else { Phase::Start };
        }
    }

    /// At the end of a training step, however it ended: makes the reductions it still owes
    /// the other ranks, each flagged bad, so that every rank skips or undoes the step and none
    /// waits forever. Nothing when the step made them all.
    pub(super) fn settle_step(&mut self) {
        let len = self.gradient_buffer_len();
        let d = self.sample_size();
        let Some(r) = &mut self.reduction else { return };
        match std::mem::replace(&mut r.phase, Phase::Done) {
            // A bad flag in either fit reduction makes every rank abandon the step there.
            Phase::FitSums => {
                let mut buf = vec![0f32; d + 2];
                buf[d + 1] = 1.0;
                let _ = r.collective.reduce(&mut buf, "a skipped step's scaling fit");
            }
            Phase::FitSpread => {
                let mut buf = vec![0f32; d + 1];
                buf[d] = 1.0;
                let _ = r.collective.reduce(&mut buf, "a skipped step's scaling fit");
            }
            Phase::Start => {
                let mut buf = vec![0f32; len];
                *buf.last_mut().expect("non-empty") = 1.0;
                let _ = r.collective.reduce(&mut buf, "a skipped step's gradient reduction");
            }
            Phase::Reduced => {
                let _ = r.collective.reduce(&mut [1.0], "a skipped step's update check");
            }
            Phase::Done => {}
        }
    }

    /// Makes the reduction the step owes next, moving the phase past it first: a failure of
    /// the host's reduction owes nothing more (calling it again could hang).
    fn reduce_owed(&mut self, buf: &mut [f32], what: &str) -> Result<()> {
        let r = self.reduction.as_mut().expect("a reduction is registered");
        r.phase = Phase::Done;
        r.collective.reduce(buf, what)
    }

    /// The data's scaling fitted to every rank's first batch, in two reductions of the same
    /// sizes on every rank: the sums of the coordinates and the count, then the squared
    /// deviations from the mean they give (two passes, so that data far from 0 lose no
    /// precision). Each buffer ends with a flag: a rank that fails, or whose share is not
    /// finite, makes every rank abandon the step. Returns (mean, std) per coordinate, the same
    /// bits on every rank.
    pub(super) fn reduce_scaling_moments(&mut self, x: &Tensor) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = x.size()[0] as f64;
        let sums = self.reduce_flagged(catch_torch(|| Ok(column_sums(x, None)?)), &[n], "sums")?;
        self.reduction.as_mut().expect("registered").phase = Phase::FitSpread;
        let (total, d) = (sums[sums.len() - 1], sums.len() - 1);
        let mean: Vec<f64> = sums[..d].iter().map(|v| v / total).collect();
        let m2 = self.reduce_flagged(catch_torch(|| Ok(column_sums(x, Some(&mean))?)), &[], "deviations")?;
        self.reduction.as_mut().expect("registered").phase = Phase::Start;
        Ok((mean, scales_from(&m2, total)))
    }

    /// One reduction of the scaling fit: this rank's `local` values (or, when computing them
    /// failed, zeros) then `tail`, then a bad-rank flag; every rank fails together when any
    /// rank flagged or the sums are not finite. Returns the summed values and tail.
    fn reduce_flagged(&mut self, local: Result<Vec<f64>>, tail: &[f64], what: &str) -> Result<Vec<f64>> {
        let d = self.sample_size();
        let mut buf = vec![0f32; d + tail.len() + 1];
        match &local {
            Ok(v) => {
                for (b, x) in buf.iter_mut().zip(v.iter().chain(tail)) {
                    *b = *x as f32;
                }
            }
            Err(_) => *buf.last_mut().expect("non-empty") = 1.0,
        }
        self.reduce_owed(&mut buf, &format!("the scaling fit's {what}"))?;
        local?;
        let bad = *buf.last().expect("non-empty");
        if bad != 0.0 || !buf.iter().all(|v| v.is_finite()) {
            return Err(Error::non_finite(format!(
                "step 1: {bad} rank(s) failed or saw non-finite data while fitting the data's scaling \
                 ({what}); every rank skipped the step and left its model unchanged"
            )));
        }
        Ok(buf[..buf.len() - 1].iter().map(|&v| v as f64).collect())
    }

    /// θ and c, then the statistics averaged over ranks, then the flag of a bad rank.
    fn gradient_buffer_len(&self) -> usize {
        self.theta.numel() + STEP_STATISTICS + 1
    }

    /// [`Ebm::update`] with the host's reduction: the flat gradient and the statistics are
    /// summed over ranks in one reduction and averaged, so every rank clips and applies the same
    /// update; any rank's non-finite loss or gradient makes every rank skip (a flag in the same
    /// buffer). After the update a one-float reduction says whether the energies stayed finite
    /// on every rank; if not, every rank undoes it. Every rank makes the same reductions: two,
    /// or one when every rank skips at the first (a rank that fails in between still makes
    /// them: [`Ebm::settle_step`]).
    pub(super) fn update_across_ranks(
        &mut self,
        data: &Tensor,
        noise: &Tensor,
        draw: Option<&Draw>,
        run: Option<&langevin::RunStats>,
    ) -> Result<SanceStepStats> {
        let b = data.size()[0];
        let (l, g) = self.loss_and_gradients(data, noise)?;
        let bad = l.loss.f_isfinite()?.f_logical_and(&g.f_isfinite()?.f_all()?)?.f_logical_not()?;
        let local = Tensor::f_cat(
            &[self.step_statistics(&l, b, run)?, bad.f_to_kind(Kind::Double)?.f_view([1])?],
            0,
        )?;
        let host = Tensor::f_cat(&[g.detach().f_to_kind(Kind::Float)?, local.f_to_kind(Kind::Float)?], 0)?;
        let mut buf = Vec::<f32>::try_from(host.f_to_device(Device::Cpu)?)?;
        debug_assert_eq!(buf.len(), self.gradient_buffer_len());
        self.reduce_owed(&mut buf, "the gradient reduction")?;
        let p = g.numel();
        let w = self.reduction.as_ref().expect("registered").collective.world as f64;
        if buf[p + STEP_STATISTICS] > 0.0 {
            return Err(Error::non_finite(format!(
                "step {}: {} rank(s) saw a non-finite loss or gradient (or failed before the reduction); \
                 every rank skipped the step and left its model unchanged",
                self.step + 1,
                buf[p + STEP_STATISTICS]
            )));
        }
        self.reduction.as_mut().expect("registered").phase = Phase::Reduced;
        let stats: Vec<f64> = buf[p..p + STEP_STATISTICS].iter().map(|&v| v as f64 / w).collect();
        // Every rank divides the same sums the same way: the same update everywhere.
        let mut g = Tensor::f_from_slice(&buf[..p])?
            .f_to_device(self.device)?
            .f_to_kind(self.kind)?
            .f_div_scalar(w)?;
        // The norm and the clip from the host's copy, summed in order: the same bits on every
        // rank (libtorch's sum rounds by its thread count, which follows each rank's batch).
        let gnorm_v = buf[..p].iter().map(|&v| (v as f64 / w) * (v as f64 / w)).sum::<f64>().sqrt();
        let clip = self.cfg.grad_clip as f64;
        if clip > 0.0 && gnorm_v > clip {
            let _ = g.f_mul_scalar_(clip / gnorm_v)?;
        }
        // This rank's verdict on its update (finite energies, replay buffer room reserved),
        // then every rank's: the step stands only if all kept theirs. A libtorch failure here
        // is this rank's "no", so the reduction below is still made.
        let local_ok = catch_torch(|| {
            let ok = self.adamw_then_check_energies(&g, data, noise)?;
            torch_point()?;
            if draw.is_some() {
                self.buffer.reserve(noise)?;
            }
            let read =
                Tensor::f_stack(&[ok.f_to_kind(Kind::Double)?, self.c.detach().f_to_kind(Kind::Double)?], 0)?;
            Ok(Vec::<f64>::try_from(read.f_to_device(Device::Cpu)?)?)
        });
        let mut flag = [match &local_ok {
            Ok(v) if v[0] == 1.0 => 0.0f32,
            _ => 1.0,
        }];
        let agreed = self.reduce_owed(&mut flag, "the update check");
        // This rank's own failure first, then the host's reduction's.
        let v = local_ok?;
        agreed?;
        if flag[0] > 0.0 {
            return Err(Error::non_finite(format!(
                "step {}: the update made the energies non-finite on {} rank(s) (learning_rate too large?); \
                 every rank undid it and left its model unchanged",
                self.step + 1,
                flag[0]
            )));
        }
        // Every rank has applied the update. Room in the replay buffer was reserved above, so
        // storing the chains cannot run out of memory; if it still failed, undoing θ here alone
        // would set this rank apart from the others, so the buffer just keeps its old chains.
        if let Some(d) = draw {
            let _ = catch_torch(|| Ok(self.buffer.commit(d, noise, l.snapshot_energies.as_ref())?));
        }
        Ok(SanceStepStats { log_z_ratio: v[1] as f32, grad_norm: gnorm_v as f32, ..step_stats(&stats) })
    }
}

/// FNV-1a, 64 bits: a fingerprint that is the same on every machine for the same bytes.
fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The registration buffer, the same size on every rank whatever each passed: a count, the world size and its
/// square, the rank and its square, the 16 nibbles of the fingerprint with their squares, then those of the
/// random stream's fingerprint. The verdict is a function of the sums alone, so every rank reaches the same
/// one: all ranks passed the same world size when count · Σworld² = (Σworld)², and it is the number of ranks
/// taking part when Σworld = count²; the ranks are 0 .. W − 1 when Σrank and Σrank² are those of 0 .. W − 1
/// (this catches the mistakes that happen — every rank 0, a rank twice — though not every permutation of
/// duplicates); every rank holds the same θ and config exactly when W · Σx² = (Σx)² for each nibble (small
/// integers, exact in float32 up to 74,000 ranks); the same test on the stream's nibbles says whether every
/// rank holds the same random stream ([`same_streams`]).
fn registration_buffer(fingerprint: u64, stream: u64, rank: u32, world: u32) -> Vec<f32> {
    let mut buf = vec![0f32; REGISTRATION_LEN];
    let (w, r) = (world as f32, rank as f32);
    buf[..5].copy_from_slice(&[1.0, w, w * w, r, r * r]);
    for (k, h) in [fingerprint, stream].into_iter().enumerate() {
        for j in 0..16 {
            let x = ((h >> (4 * j)) & 0xF) as f32;
            buf[5 + 32 * k + j] = x;
            buf[5 + 32 * k + 16 + j] = x * x;
        }
    }
    buf
}

pub(crate) const REGISTRATION_LEN: usize = 5 + 2 * 32;

/// Whether every rank's nibbles at `at` (the model's at 5, the stream's at 37) are the same.
fn same_nibbles(buf: &[f32], at: usize) -> bool {
    let n = buf[0] as f64;
    (0..16).all(|j| {
        let (s1, s2) = (buf[at + j] as f64, buf[at + 16 + j] as f64);
        s2 * n == s1 * s1
    })
}

/// Whether every rank registered with the same random stream (as after every rank loaded one
/// checkpoint, or made its model from the same config): read from the sums alone, so every
/// rank reaches the same verdict.
fn same_streams(buf: &[f32]) -> bool {
    same_nibbles(buf, 5 + 32)
}

/// The verdict on a summed registration buffer (the same on every rank: it reads only the sums).
fn check_registration(buf: &[f32]) -> Result<()> {
    let n = buf[0] as f64;
    let close = |a: f64, b: f64| a.is_finite() && (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    let (sw, sw2) = (buf[1] as f64, buf[2] as f64);
    if !close(n * sw2, sw * sw) || !close(sw, n * n) {
        return Err(Error::invalid(format!(
            "set_allreduce: the {n} ranks taking part did not all pass world_size = {n} (the world sizes \
             passed sum to {sw}): every rank of the communicator must call set_allreduce with the same \
             world_size, the number of ranks"
        )));
    }
    if !close(buf[3] as f64, n * (n - 1.0) / 2.0)
        || !close(buf[4] as f64, (n - 1.0) * n * (2.0 * n - 1.0) / 6.0)
    {
        return Err(Error::invalid(format!(
            "set_allreduce: the ranks passed are not 0 .. {} once each",
            n - 1.0
        )));
    }
    if !same_nibbles(buf, 5) {
        return Err(Error::invalid(
            "set_allreduce: the ranks do not hold the same model: θ, c, the step count, the config (seed, \
             sizes, learning rate, …) or the kind of device differ between ranks. Create every rank's \
             model from the same config and seed, or load the same checkpoint step on every rank",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums registration buffers as the host's reduction would, for `fps[r]` on rank r.
    fn verdicts(fps: &[u64], worlds: &[u32], ranks: &[u32]) -> Vec<bool> {
        let bufs: Vec<Vec<f32>> =
            (0..fps.len()).map(|i| registration_buffer(fps[i], 0, ranks[i], worlds[i])).collect();
        let sum: Vec<f32> = (0..bufs[0].len()).map(|k| bufs.iter().map(|b| b[k]).sum()).collect();
        (0..fps.len()).map(|_| check_registration(&sum).is_ok()).collect()
    }

    #[test]
    fn registration_accepts_identical_ranks_only() {
        let fp = fnv1a(b"theta and config", FNV_OFFSET);
        assert_eq!(verdicts(&[fp, fp, fp], &[3, 3, 3], &[0, 1, 2]), [true; 3]);
        // One rank differs in one bit of its fingerprint: every rank refuses.
        assert_eq!(verdicts(&[fp, fp ^ 0x100, fp], &[3, 3, 3], &[0, 1, 2]), [false; 3]);
        // Two ranks claim rank 1; every rank says 0; one rank thinks the world is larger.
        assert_eq!(verdicts(&[fp, fp, fp], &[3, 3, 3], &[0, 1, 1]), [false; 3]);
        assert_eq!(verdicts(&[fp, fp], &[2, 2], &[0, 0]), [false; 2]);
        assert_eq!(verdicts(&[fp, fp, fp], &[3, 4, 3], &[0, 1, 2]), [false; 3]);
        // World sizes 2, 3, 4 sum to 3²: the square sums tell them apart.
        assert_eq!(verdicts(&[fp, fp, fp], &[2, 3, 4], &[0, 1, 2]), [false; 3]);
        assert_eq!(verdicts(&[fp], &[1], &[0]), [true]);
    }

    #[test]
    fn identical_streams_are_told_from_the_sums() {
        let sum = |streams: &[u64]| -> Vec<f32> {
            let w = streams.len() as u32;
            let bufs: Vec<Vec<f32>> =
                streams.iter().enumerate().map(|(r, &s)| registration_buffer(1, s, r as u32, w)).collect();
            (0..REGISTRATION_LEN).map(|k| bufs.iter().map(|b| b[k]).sum()).collect()
        };
        assert!(same_streams(&sum(&[42, 42, 42])));
        assert!(!same_streams(&sum(&[42, 42, 43])));
        assert!(!same_streams(&sum(&[42 << 60, 42])));
        assert!(same_streams(&sum(&[7])));
    }

    #[test]
    fn fingerprints_differ_for_different_bytes() {
        assert_ne!(fnv1a(b"a", FNV_OFFSET), fnv1a(b"b", FNV_OFFSET));
        assert_eq!(fnv1a(b"abc", FNV_OFFSET), fnv1a(b"abc", FNV_OFFSET));
    }
}
