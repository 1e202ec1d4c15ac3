//! The C API (include/sance_eval.h). As libsance's: pointers are checked (NULL →
//! SANCE_STATUS_NULL_POINTER), panics never cross the boundary, out-parameters are written
//! only on success, and `sance_eval_last_error` says why a call failed.
//!
//! Safety, for every function: each non-NULL pointer must point to memory of the documented
//! size that stays valid for the call, and a model must come from `sance_eval_load` and not be
//! freed yet.
#![allow(clippy::missing_safety_doc)]
use crate::checkpoint::{self, Model};
use crate::status::{last_error_ptr, set_last_error, Error, Result, SanceStatus};
use std::ffi::{c_char, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// A trained MLP energy, read from a sance checkpoint. Immutable once loaded: one model may be
/// used by any number of threads at once.
pub struct SanceEval {
    model: Model,
}

fn guard(fn_name: &str, f: impl FnOnce() -> Result<()>) -> SanceStatus {
    let r = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::new(SanceStatus::Panic, format!("internal panic (a bug, please report it): {what}")))
    });
    match r {
        Ok(()) => SanceStatus::Ok,
        Err(e) => {
            set_last_error(&format!("{fn_name}: {}", e.message));
            e.status
        }
    }
}

fn check_ptr<T>(p: *const T, name: &str) -> Result<()> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    if !(p as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::invalid(format!("{name} is not aligned for its type")));
    }
    Ok(())
}

/// Reads the MLP energy in the sance checkpoint at `checkpoint_path` (any format version
/// libsance writes or reads: 1 to 5; float32 or float64 models, evaluated in their own
/// precision). The energy is the one libsance's `sance_ebm_energy_grad` evaluates: the
/// parameters' moving average when the model keeps one (`ema_decay` > 0), else θ, with the
/// model's fitted scaling of the data when it has one (format version 4), so that energies
/// and gradients are in the user's coordinates.
/// Convolutional energies, and activations this evaluator does not know, are refused
/// (SANCE_STATUS_INVALID_ARGUMENT). On success `*out`
/// holds a new model (free it with `sance_eval_free`); on failure `*out` is unchanged and the
/// status says why: SANCE_STATUS_IO (unreadable file), SANCE_STATUS_CORRUPT (not a valid
/// sance checkpoint).
#[no_mangle]
pub unsafe extern "C" fn sance_eval_load(
    checkpoint_path: *const c_char,
    out: *mut *mut SanceEval,
) -> SanceStatus {
    guard("sance_eval_load", || {
        check_ptr(checkpoint_path, "checkpoint_path")?;
        check_ptr(out, "out")?;
        let path = Path::new(OsStr::from_bytes(CStr::from_ptr(checkpoint_path).to_bytes()));
        let model = checkpoint::load(path)?;
        out.write(Box::into_raw(Box::new(SanceEval { model })));
        Ok(())
    })
}

/// E(x) and ∇ₓE(x) of `n` points. `x` holds n × dim floats (row-major, dim =
/// `sance_eval_dim`); `energy_out` receives n energies and `grad_out` n × dim gradients
/// (the force is −∇ₓE); either may be NULL when not wanted. The outputs must not overlap `x`
/// or each other (SANCE_STATUS_INVALID_ARGUMENT, nothing written).
/// Reentrant: any number of threads may call this on one model at once. n ≥ 1; a NaN or
/// infinity in `x` gives SANCE_STATUS_NON_FINITE naming it, and nothing is written.
#[no_mangle]
pub unsafe extern "C" fn sance_eval_energy_grad(
    model: *const SanceEval,
    x: *const f32,
    n: usize,
    energy_out: *mut f32,
    grad_out: *mut f32,
) -> SanceStatus {
    guard("sance_eval_energy_grad", || {
        check_ptr(model, "model")?;
        let m = &(*model).model;
        let d = m.dim();
        if n == 0 {
            return Err(Error::invalid("n must be > 0"));
        }
        let len =
            n.checked_mul(d).filter(|&e| e <= isize::MAX as usize / std::mem::size_of::<f32>()).ok_or_else(
                || Error::invalid(format!("n = {n} points of {d} floats overflows the address space")),
            )?;
        check_ptr(x, "x")?;
        let xs = std::slice::from_raw_parts(x, len);
        if let Some(i) = xs.iter().position(|v| !v.is_finite()) {
            return Err(Error::new(
                SanceStatus::NonFinite,
                format!("x[{}][{}] is {} (inputs must be finite)", i / d, i % d, xs[i]),
            ));
        }
        // Outputs must not overlap the input or each other (checked on the pointers, before
        // any slice is borrowed), as in libsance.
        let overlap = |a: *const f32, a_len: usize, b: *const f32, b_len: usize| {
            let (a0, b0) = (a as usize, b as usize);
            a0 < b0 + 4 * b_len && b0 < a0 + 4 * a_len
        };
        let either = |name: &str, other: &str| {
            Error::invalid(format!("{name} overlaps {other} (outputs must not overlap inputs or each other)"))
        };
        if !energy_out.is_null() {
            check_ptr(energy_out, "energy_out")?;
            if overlap(energy_out, n, x, len) {
                return Err(either("energy_out", "x"));
            }
        }
        if !grad_out.is_null() {
            check_ptr(grad_out, "grad_out")?;
            if overlap(grad_out, len, x, len) {
                return Err(either("grad_out", "x"));
            }
            if !energy_out.is_null() && overlap(grad_out, len, energy_out, n) {
                return Err(either("grad_out", "energy_out"));
            }
        }
        let energy = (!energy_out.is_null()).then(|| std::slice::from_raw_parts_mut(energy_out, n));
        let grad = (!grad_out.is_null()).then(|| std::slice::from_raw_parts_mut(grad_out, len));
        m.energy_grad(xs, n, energy, grad);
        Ok(())
    })
}

/// Floats per point of `model`'s energy (its `data_dim`); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn sance_eval_dim(model: *const SanceEval) -> u32 {
    if model.is_null() {
        set_last_error("sance_eval_dim: model is NULL");
        return 0;
    }
    (*model).model.dim() as u32
}

/// Frees a model from `sance_eval_load`. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sance_eval_free(model: *mut SanceEval) {
    if !model.is_null() {
        drop(Box::from_raw(model));
    }
}

/// The message of the last failed sance_eval call on this thread ("" if none), naming the
/// function and what was wrong. The string is owned by the library and stays valid until the
/// next failing call on this thread.
#[no_mangle]
pub extern "C" fn sance_eval_last_error() -> *const c_char {
    last_error_ptr()
}
