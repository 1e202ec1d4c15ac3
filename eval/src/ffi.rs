//! The C API (include/sance_eval.h). As libsance's: pointers are checked (NULL →
//! SANCE_STATUS_NULL_POINTER), panics never cross the boundary, out-parameters are written
//! only on success, and `sance_eval_last_error` says why a call failed.
//!
//! Safety, for every function: each non-NULL pointer must point to memory of the documented
//! size that stays valid for the call, and a model must come from `sance_eval_load` and not be
//! freed yet.
#![allow(clippy::missing_safety_doc)]
use crate::checkpoint::{self, Model};
use sance_cabi::boundary::{
    all_finite, disjoint, element_count, floats, floats_mut, guard, guard_or, non_null,
};
use sance_cabi::status::{last_error_ptr, SanceStatus};
use std::ffi::{c_char, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A trained MLP energy, read from a sance checkpoint. Immutable once loaded: one model may be
/// used by any number of threads at once.
pub struct SanceEval {
    model: Model,
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
        non_null(checkpoint_path, "checkpoint_path")?;
        non_null(out, "out")?;
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
        non_null(model, "model")?;
        let m = &(*model).model;
        let d = m.dim();
        let len = element_count(n, d, "n")?;
        let xs = floats(x, len, "x")?;
        all_finite(xs, d, "x")?;
        // Outputs must not overlap the input or each other (checked on the pointers, before
        // an output is borrowed), in libsance's order: the input first, then the outputs.
        if !energy_out.is_null() {
            disjoint((energy_out, n), "energy_out", (x, len), "x")?;
        }
        if !grad_out.is_null() {
            disjoint((grad_out, len), "grad_out", (x, len), "x")?;
            if !energy_out.is_null() {
                disjoint((grad_out, len), "grad_out", (energy_out, n), "energy_out")?;
            }
        }
        let energy = if energy_out.is_null() { None } else { Some(floats_mut(energy_out, n, "energy_out")?) };
        let grad = if grad_out.is_null() { None } else { Some(floats_mut(grad_out, len, "grad_out")?) };
        m.energy_grad(xs, n, energy, grad);
        Ok(())
    })
}

/// Floats per point of `model`'s energy (its `data_dim`); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn sance_eval_dim(model: *const SanceEval) -> u32 {
    guard_or("sance_eval_dim", 0, || {
        non_null(model, "model")?;
        Ok((*model).model.dim() as u32)
    })
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
