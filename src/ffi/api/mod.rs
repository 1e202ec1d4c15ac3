//! Exported functions. Conventions, for every function here:
//! - pointers are checked (NULL → SANCE_STATUS_NULL_POINTER) and panics never cross the boundary;
//! - out-parameters are written only on success;
//! - on failure the model is exactly as it was, and `sance_last_error` explains why.
//!
//! Safety, for every function: each non-NULL pointer must point to memory of the documented
//! size that stays valid for the call, and a handle must come from `sance_ebm_new` and not be
//! freed yet. The header's comments state the sizes.
#![allow(clippy::missing_safety_doc)]
use crate::abi::ais::SanceAis;
use crate::abi::config::{read_config, read_langevin, SanceConfig, SanceLangevin};
use crate::abi::sampling::{read_sampling, SanceDrawReport, SanceSampler, SanceSampling};
use crate::abi::stats::{SanceProgress, SanceStepStats};
use crate::abi::status::{Error, Result, SanceStatus};
use crate::abi::version::{check_abi, SANCE_ABI_VERSION};
use crate::ffi::handle::SanceEbm;
use crate::model::ebm::parallel::{Collective, UserPtr};
use crate::model::ebm::Ebm;
use crate::panic::catch_panic;
use libc::c_void;
use sance_cabi::boundary::{
    all_finite, disjoint, element_count, floats, floats_mut, guard, guard_or, non_null,
};
use tch::{Device, Kind, Tensor};

fn handle<'a>(ebm: *const SanceEbm) -> Result<&'a SanceEbm> {
    non_null(ebm, "ebm")?;
    // SAFETY: non-null; the caller promises a live handle from sance_ebm_new.
    Ok(unsafe { &*ebm })
}

/// A tensor as contiguous float32 on the CPU, ready for [`write_out`]: every allocation
/// happens here, so that a failure comes before anything is written to the caller's memory.
fn to_host(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?)
}

/// Copies a tensor from [`to_host`] into a C buffer of exactly its size.
fn write_out(t: &Tensor, out: &mut [f32]) -> Result<()> {
    t.f_copy_data(out, out.len())?;
    Ok(())
}

/// The checks every entry point that takes `n` samples makes before touching the model: `n`
/// is non-zero, `n × sample_size` floats are addressable and the work (one chunk's when the
/// call works in chunks) fits in the device's memory. Returns the number of floats.
fn sample_floats(m: &Ebm, n: usize, what: &str, chunked: bool) -> Result<usize> {
    let count = element_count(n, m.sample_size(), what)?;
    m.check_work_size(n, what, chunked)?;
    Ok(count)
}

/// [`sample_floats`], then borrows the caller's `n` samples at `p` and checks they are finite.
unsafe fn input_samples<'a>(
    m: &Ebm,
    p: *const f32,
    n: usize,
    what: &str,
    name: &str,
    chunked: bool,
) -> Result<&'a [f32]> {
    let count = sample_floats(m, n, what, chunked)?;
    let x = floats(p, count, name)?;
    all_finite(x, m.sample_size(), name)?;
    Ok(x)
}

/// Langevin parameters from C, or the config's sampler when NULL.
unsafe fn langevin_or_default(params: *const SanceLangevin, ebm: &Ebm) -> Result<SanceLangevin> {
    if params.is_null() {
        Ok(ebm.config().langevin)
    } else {
        non_null(params, "params")?;
        read_langevin(params, "params")
    }
}

/// Fills `*cfg` with the defaults, suited to 2-D toy data (see docs/algorithm.md). Call it as
/// `sance_config_init(&cfg, SANCE_ABI_VERSION)`: `abi_version` states the header the caller
/// was compiled against, and any value other than this library's is refused with
/// SANCE_STATUS_INVALID_ARGUMENT (the message names both versions) without writing to `cfg`,
/// so a program built against another header fails here instead of misreading the struct.
#[no_mangle]
pub unsafe extern "C" fn sance_config_init(cfg: *mut SanceConfig, abi_version: u32) -> SanceStatus {
    guard("sance_config_init", || {
        non_null(cfg, "cfg")?;
        check_abi(abi_version, "abi_version")?;
        cfg.write(SanceConfig::default());
        Ok(())
    })
}

/// Fills `*cfg` with the image recipe for `channels`×`height`×`width` images whose pixels the
/// caller scales to [−1, 1]: the CONV energy (one stride-2 convolution per halving of the
/// smaller side down to about 4 pixels), self-adapting NCE with K = 1, and the short-run
/// persistent sampler of image EBMs (a tempered Langevin sampler clamped to [−1, 1], a replay
/// buffer with 5 % fresh chains, a fixed unadjusted step, and `scaling` NONE: pixels come on a
/// fixed scale); docs/results.md, "What images need", gives the measurement
/// behind each setting. Samples drawn with the config's sampler are sharp images at a low
/// temperature, not draws of exp(−E) at temperature 1. `abi_version` as in
/// `sance_config_init`; a size out of range (zero, over 4096, or more than 2^26 floats per
/// image) is refused with SANCE_STATUS_INVALID_ARGUMENT naming the field, and then `cfg` is
/// not written.
#[no_mangle]
pub unsafe extern "C" fn sance_config_init_image(
    cfg: *mut SanceConfig,
    abi_version: u32,
    channels: u32,
    height: u32,
    width: u32,
) -> SanceStatus {
    guard("sance_config_init_image", || {
        non_null(cfg, "cfg")?;
        check_abi(abi_version, "abi_version")?;
        let c = SanceConfig::image(channels, height, width);
        crate::abi::config::validate_config(&c)?;
        cfg.write(c);
        Ok(())
    })
}

/// The ABI version this library was built with; equals `SANCE_ABI_VERSION` of the header the
/// caller compiled against when the two match.
#[no_mangle]
pub extern "C" fn sance_abi_version() -> u32 {
    SANCE_ABI_VERSION
}

/// Creates a model from `config` and stores the new handle in `*out` (owned by the caller:
/// release it with `sance_ebm_free`).
///
/// Returns SANCE_STATUS_INVALID_ARGUMENT for a config field out of range (the message names
/// it) or a wrong `abi_version`, SANCE_STATUS_DEVICE for a CUDA device that does not exist.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_new(config: *const SanceConfig, out: *mut *mut SanceEbm) -> SanceStatus {
    guard("sance_ebm_new", || {
        non_null(config, "config")?;
        non_null(out, "out")?;
        let cfg = read_config(config)?;
        let ebm = Ebm::new(&cfg)?;
        out.write(Box::into_raw(Box::new(SanceEbm::new(ebm))));
        Ok(())
    })
}

/// Frees a handle from `sance_ebm_new` or `sance_ebm_load`. NULL is a no-op. The handle must not be in use by
/// another thread.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_free(ebm: *mut SanceEbm) {
    if !ebm.is_null() {
        let _ = catch_panic(|| drop(Box::from_raw(ebm)));
    }
}

/// One self-adapting NCE step on `batch` samples (`batch × sample_size` floats, row-major).
/// `stats` may be NULL.
///
/// The step refreshes the noise snapshot when one is due (every `noise_update_interval` steps),
/// updates θ and c by Adam, then θ's moving average θ̃ (the model every other call uses when
/// `ema_decay` > 0), and, on the first batch, fits the data's scaling (`config.scaling`) and,
/// for classic NCE without `sance_ebm_fit_noise`, the Gaussian noise.
///
/// Returns SANCE_STATUS_NON_FINITE for NaN/Inf in `data`, or when the step's loss or gradient
/// is not finite: the update is then skipped and the model (θ, θ̃, snapshot, c, optimizer,
/// fitted noise and scaling, replay buffer, counters, random stream) is left exactly as it was.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_train_step(
    ebm: *mut SanceEbm,
    data: *const f32,
    batch: usize,
    stats: *mut SanceStepStats,
) -> SanceStatus {
    guard("sance_ebm_train_step", || {
        let h = handle(ebm)?;
        h.mutate(|m| {
            // The checks run inside the step: with a reduction registered, a step refused here
            // still makes the reductions the other ranks make (flagged bad), so that they skip
            // it too instead of waiting.
            let s = m.train_step_with(|m| {
                let data = input_samples(m, data, batch, "batch", "data", false)?;
                if !stats.is_null() {
                    non_null(stats, "stats")?; // alignment, checked before the model changes
                }
                m.tensor_from(data, batch)
            })?;
            if !stats.is_null() {
                stats.write(s);
            }
            Ok(())
        })
    })
}

pub use crate::abi::collective::SanceAllreduceFn;

/// Makes training data-parallel across ranks through the host's reduction `fn` (NULL
/// unregisters). Every rank calls it, with its `rank` in 0 .. `world_size` − 1: registration is
/// itself one reduction, which checks that all ranks hold the same θ, c, counters and config
/// (the device index may differ, not its kind) and fails on every rank with
/// SANCE_STATUS_INVALID_ARGUMENT otherwise; SANCE_NOISE_GAUSSIAN models are refused. When every
/// rank holds the same random stream (models made from one config, or every rank loaded one
/// checkpoint), each rank but rank 0 then draws its noise chains from a stream of its own, at
/// any step; ranks whose streams already differ keep theirs. From
/// then on each `sance_ebm_train_step` makes the same reductions on every rank: the gradient of θ
/// and c with the step's statistics (averaged: every rank applies the same update and reports
/// the same loss), then, unless every rank skipped there, a one-float check that the update kept
/// the energies finite everywhere; when any rank's data, loss, gradient or update is bad, every
/// rank skips or undoes the step (SANCE_STATUS_NON_FINITE). A non-zero return from `fn` is
/// SANCE_STATUS_COLLECTIVE, with this rank's model unchanged (docs/mpi.md says what the host must
/// do then). `user` must stay valid while registered; `fn` is called on the thread that calls
/// sance.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_set_allreduce(
    ebm: *mut SanceEbm,
    r#fn: SanceAllreduceFn,
    user: *mut c_void,
    rank: u32,
    world_size: u32,
) -> SanceStatus {
    guard("sance_ebm_set_allreduce", || {
        let c = Collective::new(r#fn, UserPtr(user), rank, world_size);
        handle(ebm)?.mutate(|m| m.set_allreduce(c))
    })
}

/// Refreshes the noise snapshot now: θ̄ ← θ, c ← 0. This is the only refresh when
/// `noise_update_interval` is 0 (besides the automatic one before the first step).
/// With `noise` = SANCE_NOISE_GAUSSIAN there is no snapshot: SANCE_STATUS_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_refresh_noise(ebm: *mut SanceEbm) -> SanceStatus {
    guard("sance_ebm_refresh_noise", || handle(ebm)?.mutate(|m| m.refresh_noise()))
}

/// Classic NCE (`noise` = SANCE_NOISE_GAUSSIAN): fits the noise Gaussian's mean and covariance
/// to `n` >= 2 samples (`n × sample_size` floats). The covariance is full, with a ridge of
/// 1e-3 × its mean variance + 1e-6 on the diagonal, up to SANCE_NOISE_FULL_COVARIANCE_MAX_DIM
/// (1024) floats per sample, and diagonal beyond; `data_noise_std`² is added to the diagonal
/// too, since training classifies the data with that noise added against q. Without this call
/// the first training batch is used. Before the first training step the fit also sets c to
/// the mean of log q over `data`, so that the model's log density −E + c starts on q's scale;
/// a later call replaces the fit and leaves c to adapt. The fit is saved in checkpoints.
/// SANCE_STATUS_INVALID_ARGUMENT with SANCE_NOISE_SNAPSHOT or for n < 2.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_fit_noise(ebm: *mut SanceEbm, data: *const f32, n: usize) -> SanceStatus {
    guard("sance_ebm_fit_noise", || {
        handle(ebm)?.mutate(|m| {
            let x = input_samples(m, data, n, "n", "data", false)?;
            m.fit_noise(&m.tensor_from(x, n)?)
        })
    })
}

/// Sets the Adam learning rate used from the next step on (e.g. to continue after a step was
/// rejected as non-finite). The config returned by `sance_ebm_config` and saved in checkpoints
/// shows the new value. `learning_rate` must be finite and > 0.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_set_learning_rate(ebm: *mut SanceEbm, learning_rate: f32) -> SanceStatus {
    guard("sance_ebm_set_learning_rate", || handle(ebm)?.mutate(|m| m.set_learning_rate(learning_rate)))
}

/// Draws `n` samples from the model into `out` (`n × sample_size` floats). `params` NULL is
/// `sance_ebm_draw(ebm, n, NULL, out, NULL)`: draws of the model's density by the sampler
/// AUTO picks. Explicit `params` keep sance 0.4's behaviour: fresh chains from `params`'
/// init distribution through its Langevin steps (SANCE_SAMPLER_FRESH with `params` as the
/// moves). Draws never consume the model's training stream (see `sance_ebm_draw`).
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_sample(
    ebm: *mut SanceEbm,
    n: usize,
    params: *const SanceLangevin,
    out: *mut f32,
) -> SanceStatus {
    guard("sance_ebm_sample", || {
        handle(ebm)?.query(|m| {
            let count = sample_floats(m, n, "n", true)?;
            let s = if params.is_null() {
                m.sampling_defaults()
            } else {
                let l = langevin_or_default(params, m)?;
                SanceSampling { sampler: SanceSampler::Fresh as u32, moves: l, ..m.sampling_defaults() }
            };
            let out = floats_mut(out, count, "out")?;
            let x = to_host(&m.draw(n, &s)?.0)?;
            write_out(&x, out)
        })
    })
}

/// Fills `*params` with the draw settings for `ebm`: SANCE_SAMPLER_AUTO, the config's sampler
/// as the moves (a trained MLP's tuned MALA step), `target_ess` 0.5 and at most 1,000
/// temperatures. The model is unchanged.
#[no_mangle]
pub unsafe extern "C" fn sance_sampling_init(
    params: *mut SanceSampling,
    ebm: *const SanceEbm,
) -> SanceStatus {
    guard("sance_sampling_init", || {
        non_null(params, "params")?;
        let s = handle(ebm)?.query(|m| Ok(m.sampling_defaults()))?;
        params.write(s);
        Ok(())
    })
}

/// Draws `n` samples of the model's density exp(−E(x)/T)/Z (T the moves' temperature, 1 by
/// default) into `out` (`n × sample_size` floats) with the sampler `params` names (NULL:
/// `sance_sampling_init`'s defaults), and says what it did in `*report` (may be NULL).
/// SANCE_SAMPLER_AUTO is POPULATION when the model keeps a population (a trained model, or one
/// loaded from a checkpoint that kept its replay buffer), else ANNEALED, whose particles the
/// handle keeps as a pool that later AUTO calls draw from as POPULATION does, until a call
/// changes the model (docs/algorithm.md, "Drawing from the model"). The draws come in random
/// order: any k of them are k draws. Draws use their own stream, derived from the model's and
/// from the number of draws this handle has made (a clone inherits the count and the pool; a
/// loaded model starts at 0, without a pool), so drawing never changes training and the same
/// model gives the same draws. POPULATION with no population
/// yet: SANCE_STATUS_INVALID_ARGUMENT. Weights that are not finite (a model whose energy
/// overflows): SANCE_STATUS_NON_FINITE. On failure nothing is written.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_draw(
    ebm: *mut SanceEbm,
    n: usize,
    params: *const SanceSampling,
    out: *mut f32,
    report: *mut SanceDrawReport,
) -> SanceStatus {
    guard("sance_ebm_draw", || {
        handle(ebm)?.query(|m| {
            let chunked = true;
            let count = sample_floats(m, n, "n", chunked)?;
            let s = if params.is_null() {
                m.sampling_defaults()
            } else {
                non_null(params, "params")?;
                read_sampling(params, "params")?.0
            };
            let out = floats_mut(out, count, "out")?;
            if !report.is_null() {
                non_null(report, "report")?;
            }
            let (x, r) = m.draw(n, &s)?;
            write_out(&to_host(&x)?, out)?;
            if !report.is_null() {
                report.write(r);
            }
            Ok(())
        })
    })
}

/// Runs Langevin chains on E_θ in place, starting from the `n` samples in `chains`.
/// `params` NULL uses the config's sampler. NaN/Inf in `chains`: SANCE_STATUS_NON_FINITE,
/// `chains` untouched.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_sample_from(
    ebm: *mut SanceEbm,
    chains: *mut f32,
    n: usize,
    params: *const SanceLangevin,
) -> SanceStatus {
    guard("sance_ebm_sample_from", || {
        handle(ebm)?.query(|m| {
            let x0 = m.tensor_from(input_samples(m, chains, n, "n", "chains", true)?, n)?;
            let l = langevin_or_default(params, m)?;
            let x = to_host(&m.sample_from(&x0, &l)?)?;
            write_out(&x, floats_mut(chains, x.numel(), "chains")?)
        })
    })
}

/// Energies E_θ(x) of `n` samples into `out` (`n` floats), which must not overlap `x`.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_energy(
    ebm: *const SanceEbm,
    x: *const f32,
    n: usize,
    out: *mut f32,
) -> SanceStatus {
    guard("sance_ebm_energy", || {
        handle(ebm)?.query(|m| {
            let x = input_samples(m, x, n, "n", "x", true)?;
            disjoint((out, n), "out", (x.as_ptr(), x.len()), "x")?;
            let out = floats_mut(out, n, "out")?;
            write_out(&to_host(&m.energy(&m.tensor_from(x, n)?)?)?, out)
        })
    })
}

/// Energies (into `energy`, `n` floats; may be NULL) and input gradients ∇ₓE_θ (into `grad`,
/// `n × sample_size` floats). The outputs must not overlap `x` or each other
/// (SANCE_STATUS_INVALID_ARGUMENT, nothing written).
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_energy_grad(
    ebm: *const SanceEbm,
    x: *const f32,
    n: usize,
    energy: *mut f32,
    grad: *mut f32,
) -> SanceStatus {
    guard("sance_ebm_energy_grad", || {
        handle(ebm)?.query(|m| {
            let x = input_samples(m, x, n, "n", "x", true)?;
            let xs = (x.as_ptr(), x.len());
            disjoint((grad, x.len()), "grad", xs, "x")?;
            if !energy.is_null() {
                disjoint((energy, n), "energy", xs, "x")?;
                disjoint((energy, n), "energy", (grad, x.len()), "grad")?;
            }
            let grad = floats_mut(grad, x.len(), "grad")?;
            let energy = if energy.is_null() { None } else { Some(floats_mut(energy, n, "energy")?) };
            let (e, g) = m.energy_grad(&m.tensor_from(x, n)?)?;
            // Both reach the host before either is written, so a failure writes neither.
            let (e, g) = (to_host(&e)?, to_host(&g)?);
            write_out(&g, grad)?;
            if let Some(energy) = energy {
                write_out(&e, energy)?;
            }
            Ok(())
        })
    })
}

/// Fills `*params` with annealed-importance-sampling settings for `ebm`'s `sance_ebm_log_z`:
/// 512 chains (128 above 64 floats per sample), 1,000 temperatures, one MALA step each, and a
/// step size that a short pilot run on the model accepts at least half the time. The model is
/// unchanged (the pilot draws from a stream derived from the model's).
#[no_mangle]
pub unsafe extern "C" fn sance_ais_init(params: *mut SanceAis, ebm: *const SanceEbm) -> SanceStatus {
    guard("sance_ais_init", || {
        non_null(params, "params")?;
        let a = handle(ebm)?.query(|m| m.ais_defaults())?;
        params.write(a);
        Ok(())
    })
}

/// Estimates log Z = log ∫ exp(−E_θ(x)) dx, the log-normaliser of the model's density (c is not
/// part of it), by annealed importance sampling from a normalised Gaussian base (classic NCE's
/// fitted noise; else a Gaussian fitted to the replay buffer's chains, scale doubled; else
/// N(0, init_scale²·I)) along the geometric path to exp(−E_θ), with MALA moves at each
/// temperature. A held-out sample's normalised log-likelihood is then −E_θ(x) − log Z.
/// `params` NULL uses `sance_ais_init`'s defaults. Writes the estimate to `*out_log_z` and its
/// standard error (delta method over the chains' weights) to `*out_std_error` (may be NULL).
/// The same model gives the same estimate, and the model is unchanged: the chains draw from a
/// stream derived from the model's. SANCE_STATUS_NON_FINITE when the estimate overflows.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_log_z(
    ebm: *const SanceEbm,
    params: *const SanceAis,
    out_log_z: *mut f64,
    out_std_error: *mut f64,
) -> SanceStatus {
    guard("sance_ebm_log_z", || {
        let h = handle(ebm)?;
        non_null(out_log_z, "out_log_z")?;
        if !out_std_error.is_null() {
            non_null(out_std_error, "out_std_error")?;
        }
        if !params.is_null() {
            non_null(params, "params")?;
        }
        let est = h.query(|m| {
            let p = if params.is_null() { m.ais_defaults()? } else { params.read() };
            m.estimate_log_normaliser(&p)
        })?;
        if !est.log_z.is_finite() {
            return Err(Error::non_finite(format!(
                "the estimate of log Z is {} (the model's density overflows the base's scale, or every \
                 chain's weight underflowed): more temperatures or a smaller step_size may help",
                est.log_z
            )));
        }
        out_log_z.write(est.log_z);
        if !out_std_error.is_null() {
            out_std_error.write(est.std_error);
        }
        Ok(())
    })
}

/// Copies where the model stands (steps, refreshes, replay buffer fill, c) into `*out`.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_progress(ebm: *const SanceEbm, out: *mut SanceProgress) -> SanceStatus {
    guard("sance_ebm_progress", || {
        let p = handle(ebm)?.query(|m| Ok(m.progress()))?;
        non_null(out, "out")?;
        out.write(p);
        Ok(())
    })
}

/// Floats per sample (data_dim for MLP, channels·height·width for CONV); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_sample_size(ebm: *const SanceEbm) -> usize {
    guard_or("sance_ebm_sample_size", 0, || handle(ebm)?.query(|m| Ok(m.sample_size())))
}

/// Copies the model's config into `*out`, with `device` resolved to the device in use
/// (-1 for the CPU, else the CUDA index), so a SANCE_DEVICE_AUTO choice can be read back.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_config(ebm: *const SanceEbm, out: *mut SanceConfig) -> SanceStatus {
    guard("sance_ebm_config", || {
        let cfg = handle(ebm)?.query(|m| Ok(m.config()))?;
        non_null(out, "out")?;
        out.write(cfg);
        Ok(())
    })
}

/// The device the model runs on, as resolved when it was made or loaded: -1 for the CPU,
/// else the CUDA index. `SANCE_DEVICE_AUTO` becomes the CPU when libtorch sees no GPU (no
/// GPU, a driver too old for libtorch's CUDA, or a CPU-only libtorch), so a program that
/// needs the GPU checks this. The same value as `sance_ebm_config`'s `device`.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_device(ebm: *const SanceEbm, out_device: *mut i32) -> SanceStatus {
    guard("sance_ebm_device", || {
        let d = handle(ebm)?.query(|m| Ok(m.config().device))?;
        non_null(out_device, "out_device")?;
        out_device.write(d);
        Ok(())
    })
}

mod files;
mod process;
pub use files::*;
pub use process::*;
