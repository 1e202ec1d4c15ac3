//! Exported functions. Conventions, for every function here:
//! - pointers are checked (NULL → SANCE_STATUS_NULL_POINTER) and panics never cross the boundary;
//! - out-parameters are written only on success;
//! - on failure the model is exactly as it was, and `sance_last_error` explains why.
//!
//! Safety, for every function: each non-NULL pointer must point to memory of the documented
//! size that stays valid for the call, and a handle must come from `sance_ebm_new` and not be
//! freed yet. The header's comments state the sizes.
#![allow(clippy::missing_safety_doc)]
use crate::checkpoint;
use crate::config::{
    read_config, read_langevin, SanceConfig, SanceLangevin, SANCE_ABI_VERSION, SANCE_DEVICE_AUTO,
};
use crate::core::ebm::{Ebm, SanceProgress, SanceStepStats};
use crate::core::toy;
use crate::ffi::boundary::{all_finite, catch_panic, element_count, floats, floats_mut, guard, non_null};
use crate::ffi::handle::SanceEbm;
use crate::status::{last_error_ptr, set_last_error, Error, Result, SanceStatus};
use libc::c_char;
use once_cell::sync::Lazy;
use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn handle<'a>(ebm: *const SanceEbm) -> Result<&'a SanceEbm> {
    non_null(ebm, "ebm")?;
    // SAFETY: non-null; the caller promises a live handle from sance_ebm_new.
    Ok(unsafe { &*ebm })
}

/// Copies a float tensor into a C buffer of exactly its size.
fn copy_out(t: &Tensor, out: &mut [f32]) -> Result<()> {
    let t = t.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
    t.f_copy_data(out, out.len())?;
    Ok(())
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

/// Fills `*out` with defaults suited to 2-D toy data (see docs/algorithm.md), including
/// `abi_version`. Does nothing when `out` is NULL.
#[no_mangle]
pub unsafe extern "C" fn sance_config_default(out: *mut SanceConfig) {
    if non_null(out, "out").is_ok() {
        out.write(SanceConfig::default());
    }
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
/// Returns SANCE_STATUS_NON_FINITE for NaN/Inf in `data`, or when the step's loss or gradient
/// is not finite: the update is then skipped and the model (θ, snapshot, c, optimizer, replay
/// buffer, counters, random stream) is left exactly as it was.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_train_step(
    ebm: *mut SanceEbm,
    data: *const f32,
    batch: usize,
    stats: *mut SanceStepStats,
) -> SanceStatus {
    guard("sance_ebm_train_step", || {
        let h = handle(ebm)?;
        h.with(|m| {
            let d = m.sample_size();
            let count = element_count(batch, d, "batch")?;
            m.check_work_size(batch, "batch")?;
            let data = floats(data, count, "data")?;
            all_finite(data, d, "data")?;
            if !stats.is_null() {
                non_null(stats, "stats")?; // alignment, checked before the model changes
            }
            let s = m.train_step(&m.tensor_from(data, batch))?;
            if !stats.is_null() {
                stats.write(s);
            }
            Ok(())
        })
    })
}

/// Refreshes the noise snapshot now: θ̄ ← θ, c ← 0. This is the only refresh when
/// `noise_update_interval` is 0 (besides the automatic one before the first step).
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_refresh_noise(ebm: *mut SanceEbm) -> SanceStatus {
    guard("sance_ebm_refresh_noise", || {
        handle(ebm)?.with(|m| {
            m.refresh_noise();
            Ok(())
        })
    })
}

/// Sets the Adam learning rate used from the next step on (e.g. to continue after a step was
/// rejected as non-finite). The config returned by `sance_ebm_config` and saved in checkpoints
/// shows the new value. `learning_rate` must be finite and > 0.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_set_learning_rate(ebm: *mut SanceEbm, learning_rate: f32) -> SanceStatus {
    guard("sance_ebm_set_learning_rate", || handle(ebm)?.with(|m| m.set_learning_rate(learning_rate)))
}

/// Draws `n` samples from the model: fresh chains from the sampler's init distribution run
/// through its Langevin steps on E_θ. `params` NULL uses the config's sampler. Writes
/// `n × sample_size` floats to `out`.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_sample(
    ebm: *mut SanceEbm,
    n: usize,
    params: *const SanceLangevin,
    out: *mut f32,
) -> SanceStatus {
    guard("sance_ebm_sample", || {
        handle(ebm)?.with(|m| {
            let count = element_count(n, m.sample_size(), "n")?;
            m.check_work_size(n, "n")?;
            let l = langevin_or_default(params, m)?;
            let out = floats_mut(out, count, "out")?;
            let x = m.sample(n, &l)?;
            copy_out(&x, out)
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
        handle(ebm)?.with(|m| {
            let d = m.sample_size();
            let count = element_count(n, d, "n")?;
            m.check_work_size(n, "n")?;
            let l = langevin_or_default(params, m)?;
            let chains = floats_mut(chains, count, "chains")?;
            all_finite(chains, d, "chains")?;
            let x = m.sample_from(&m.tensor_from(chains, n), &l)?;
            copy_out(&x, chains)
        })
    })
}

/// Energies E_θ(x) of `n` samples into `out` (`n` floats).
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_energy(
    ebm: *mut SanceEbm,
    x: *const f32,
    n: usize,
    out: *mut f32,
) -> SanceStatus {
    guard("sance_ebm_energy", || {
        handle(ebm)?.with(|m| {
            let d = m.sample_size();
            let count = element_count(n, d, "n")?;
            m.check_work_size(n, "n")?;
            let x = floats(x, count, "x")?;
            all_finite(x, d, "x")?;
            let out = floats_mut(out, n, "out")?;
            copy_out(&m.energy(&m.tensor_from(x, n)), out)
        })
    })
}

/// Energies (into `energy`, `n` floats; may be NULL) and input gradients ∇ₓE_θ (into `grad`,
/// `n × sample_size` floats).
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_energy_grad(
    ebm: *mut SanceEbm,
    x: *const f32,
    n: usize,
    energy: *mut f32,
    grad: *mut f32,
) -> SanceStatus {
    guard("sance_ebm_energy_grad", || {
        handle(ebm)?.with(|m| {
            let d = m.sample_size();
            let count = element_count(n, d, "n")?;
            m.check_work_size(n, "n")?;
            let x = floats(x, count, "x")?;
            all_finite(x, d, "x")?;
            let grad = floats_mut(grad, count, "grad")?;
            let energy = if energy.is_null() { None } else { Some(floats_mut(energy, n, "energy")?) };
            let (e, g) = m.energy_grad(&m.tensor_from(x, n));
            // Stage both before writing either, so a failure writes neither.
            let mut g_buf = vec![0f32; count];
            copy_out(&g, &mut g_buf)?;
            if let Some(energy) = energy {
                copy_out(&e, energy)?;
            }
            grad.copy_from_slice(&g_buf);
            Ok(())
        })
    })
}

/// Copies where the model stands (steps, refreshes, replay buffer fill, c) into `*out`.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_progress(ebm: *const SanceEbm, out: *mut SanceProgress) -> SanceStatus {
    guard("sance_ebm_progress", || {
        let p = handle(ebm)?.with(|m| Ok(m.progress()))?;
        non_null(out, "out")?;
        out.write(p);
        Ok(())
    })
}

/// Floats per sample (data_dim for MLP, channels·height·width for CONV); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_sample_size(ebm: *const SanceEbm) -> usize {
    match handle(ebm).and_then(|h| h.with(|m| Ok(m.sample_size()))) {
        Ok(n) => n,
        Err(e) => {
            set_last_error(&format!("sance_ebm_sample_size: {}", e.message));
            0
        }
    }
}

/// Copies the model's config into `*out`, with `device` resolved to the device in use
/// (-1 for the CPU, else the CUDA index), so a SANCE_DEVICE_AUTO choice can be read back.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_config(ebm: *const SanceEbm, out: *mut SanceConfig) -> SanceStatus {
    guard("sance_ebm_config", || {
        let cfg = handle(ebm)?.with(|m| Ok(m.config()))?;
        non_null(out, "out")?;
        out.write(cfg);
        Ok(())
    })
}

/// A path from C: any bytes but NUL (POSIX paths need not be UTF-8).
unsafe fn c_path<'a>(path: *const c_char) -> Result<&'a Path> {
    non_null(path, "path")?;
    let bytes = CStr::from_ptr(path).to_bytes();
    if bytes.is_empty() {
        return Err(Error::invalid("path is empty"));
    }
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

/// Saves everything training needs to continue exactly — θ, the snapshot, c, the optimizer's
/// moments and step count, the counters, the replay buffer and the random stream — to one
/// safetensors file (see docs/checkpoints.md). The write is atomic: a temporary file in the
/// same directory is written, flushed, fsynced and renamed over `path`, and the directory is
/// fsynced; on any failure the previous file at `path` is intact.
///
/// Returns SANCE_STATUS_IO when the file cannot be written (the message has the OS reason).
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_save(ebm: *const SanceEbm, path: *const c_char) -> SanceStatus {
    guard("sance_ebm_save", || {
        let h = handle(ebm)?;
        let path = c_path(path)?;
        h.with(|m| checkpoint::save(m, path))
    })
}

/// Loads a checkpoint written by `sance_ebm_save` onto `device` (-1 CPU, k CUDA k,
/// SANCE_DEVICE_AUTO) and stores a new handle in `*out` (owned by the caller).
///
/// Returns SANCE_STATUS_IO for a missing or unreadable file, SANCE_STATUS_CORRUPT (naming the
/// problem) for anything that is not a valid checkpoint of this format version, and
/// SANCE_STATUS_DEVICE for a device that does not exist.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_load(
    path: *const c_char,
    device: i32,
    out: *mut *mut SanceEbm,
) -> SanceStatus {
    guard("sance_ebm_load", || {
        let path = c_path(path)?;
        non_null(out, "out")?;
        if device < SANCE_DEVICE_AUTO {
            return Err(Error::invalid(format!(
                "device must be -2 (auto), -1 (CPU) or a CUDA index (got {device})"
            )));
        }
        let ebm = checkpoint::load(path, device)?;
        out.write(Box::into_raw(Box::new(SanceEbm::new(ebm))));
        Ok(())
    })
}

/// Writes `n` samples (`n × 2` floats) of the 2-D toy dataset `name` — "8gaussians", "rings",
/// "checkerboard", "2spirals" or "pinwheel" (FFJORD conventions) — drawn with `seed`.
#[no_mangle]
pub unsafe extern "C" fn sance_toy_dataset(
    name: *const c_char,
    n: usize,
    seed: u64,
    out: *mut f32,
) -> SanceStatus {
    guard("sance_toy_dataset", || {
        non_null(name, "name")?;
        let name = CStr::from_ptr(name).to_str().map_err(|_| Error::invalid("name is not valid UTF-8"))?;
        let count = element_count(n, 2, "n")?;
        let out = floats_mut(out, count, "out")?;
        let mut buf = vec![0f32; count];
        toy::toy_dataset(name, n, seed, &mut buf)?;
        out.copy_from_slice(&buf);
        Ok(())
    })
}

/// The message of the last failed call on this thread ("" if none). The string is owned by
/// the library and stays valid until the next failing call on this thread.
#[no_mangle]
pub extern "C" fn sance_last_error() -> *const c_char {
    last_error_ptr()
}

/// The enumerator name of a status ("SANCE_STATUS_OK", ...), or "SANCE_STATUS_UNKNOWN".
/// Takes an int32_t so that any value, even one that is not a SanceStatus, is safe to pass.
/// The string is static.
#[no_mangle]
pub extern "C" fn sance_status_name(status: i32) -> *const c_char {
    match SanceStatus::from_i32(status) {
        Some(s) => s.name().as_ptr(),
        None => c"SANCE_STATUS_UNKNOWN".as_ptr(),
    }
}

static VERSION: Lazy<CString> = Lazy::new(|| {
    CString::new(format!(
        "sance {} (tch 0.24.0, libtorch {})",
        env!("CARGO_PKG_VERSION"),
        env!("SANCE_LIBTORCH_VERSION")
    ))
    .unwrap()
});

/// The version string of [`sance_version`].
pub fn version_string() -> &'static str {
    VERSION.to_str().unwrap_or("sance")
}

/// Library, tch and libtorch versions, e.g. "sance 0.1.0 (tch 0.24.0, libtorch 2.11.0+cu130)".
/// The string is static.
#[no_mangle]
pub extern "C" fn sance_version() -> *const c_char {
    VERSION.as_ptr()
}

/// Number of CUDA devices libtorch can use (0 without a GPU or with a CPU-only libtorch).
#[no_mangle]
pub extern "C" fn sance_cuda_device_count() -> i32 {
    match catch_panic(tch::Cuda::device_count) {
        Ok(n) => n as i32,
        Err(e) => {
            set_last_error(&format!("sance_cuda_device_count: {}", e.message));
            0
        }
    }
}
