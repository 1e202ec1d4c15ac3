//! Checkpoints and copies of a handle: `sance_ebm_save`, `sance_ebm_load`, `sance_ebm_clone`.
use super::handle;
use crate::abi::config::SANCE_DEVICE_AUTO;
use crate::abi::status::{Error, Result, SanceStatus};
use crate::checkpoint;
use crate::ffi::handle::SanceEbm;
use libc::c_char;
use sance_cabi::boundary::{guard, non_null};
use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A path from C: any bytes but NUL (POSIX paths need not be UTF-8).
unsafe fn c_path<'a>(path: *const c_char) -> Result<&'a Path> {
    non_null(path, "path")?;
    let bytes = CStr::from_ptr(path).to_bytes();
    if bytes.is_empty() {
        return Err(Error::invalid("path is empty"));
    }
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

/// Saves everything training needs to continue exactly — θ, its moving average θ̃, the
/// snapshot, c, the optimizer's moments and step count, the fitted Gaussian noise and data
/// scaling, the counters, the replay buffer with its energies and the random stream — to one
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
        h.query(|m| checkpoint::save(m, path))
    })
}

/// Loads a checkpoint written by `sance_ebm_save` onto `device` (-1 CPU, k CUDA k,
/// SANCE_DEVICE_AUTO) and stores a new handle in `*out` (owned by the caller). Reads format
/// versions 1 to 5 (1: sance 0.1; 5, the population's energies, is what it writes); see
/// docs/checkpoints.md.
///
/// Returns SANCE_STATUS_IO for a missing or unreadable file, SANCE_STATUS_CORRUPT (naming the
/// problem) for anything that is not a valid checkpoint of a version it reads, and
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

/// A deep copy of `ebm` in a new handle on the same device: θ, the snapshot, c, the average,
/// the optimizer's state, the replay buffer, the random stream and the counters, so that the
/// copy trains and samples exactly as the original would from here (what a checkpoint holds,
/// copied in memory), and the draws' count and pool, so that it draws as the original would
/// too. The allreduce hook (`sance_ebm_set_allreduce`) is not copied: the copy
/// trains alone until one is set. On success `*out` holds the copy (free it with
/// `sance_ebm_free`); on failure `*out` is unchanged. The original is unchanged either way.
#[no_mangle]
pub unsafe extern "C" fn sance_ebm_clone(ebm: *const SanceEbm, out: *mut *mut SanceEbm) -> SanceStatus {
    guard("sance_ebm_clone", || {
        let h = handle(ebm)?;
        non_null(out, "out")?;
        let copy = h.query(|m| {
            let mut copy = checkpoint::from_bytes(checkpoint::to_bytes(m)?, m.config().device)?;
            // Not in a checkpoint; a clone draws as the original would.
            copy.draws = m.draws;
            copy.draw_pool = m.draw_pool.as_ref().map(|p| p.shallow());
            Ok(copy)
        })?;
        out.write(Box::into_raw(Box::new(SanceEbm::new(copy))));
        Ok(())
    })
}
