//! Calls about the library and the process rather than a model: the toy datasets, the last
//! error, status names, versions, the CUDA device count.
use crate::abi::status::{last_error_ptr, Error, SanceStatus};
use crate::abi::version::version_cstr;
use crate::model::toy;
use libc::c_char;
use sance_cabi::boundary::{element_count, floats_mut, guard, guard_or, non_null};
use std::ffi::CStr;

/// Writes `n` samples (`n × sance_toy_dataset_dim(name)` floats) of the toy dataset `name`,
/// drawn with `seed`: the 2-D sets "8gaussians", "rings", "checkerboard", "2spirals",
/// "pinwheel" (FFJORD conventions) or "gaussians16d", 8 isotropic Gaussians (std 0.5) in 16-D
/// centred at rows 1–8 of the 16×16 Sylvester–Hadamard matrix (docs/results.md).
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
        let dim = toy::toy_dataset_dim(name).ok_or_else(|| {
            Error::invalid(format!(
                "unknown toy dataset {name:?}; known: {}, {}",
                toy::TOY_DATASETS.join(", "),
                toy::GAUSSIANS16D
            ))
        })?;
        let count = element_count(n, dim, "n")?;
        let out = floats_mut(out, count, "out")?;
        let mut buf = vec![0f32; count];
        toy::toy_dataset(name, n, seed, &mut buf)?;
        out.copy_from_slice(&buf);
        Ok(())
    })
}

/// Floats per sample of toy dataset `name` (2, or 16 for "gaussians16d"); 0 for an unknown
/// name or NULL (then `sance_last_error` says why).
#[no_mangle]
pub unsafe extern "C" fn sance_toy_dataset_dim(name: *const c_char) -> usize {
    guard_or("sance_toy_dataset_dim", 0, || {
        non_null(name, "name")?;
        let name = CStr::from_ptr(name).to_str().map_err(|_| Error::invalid("name is not valid UTF-8"))?;
        toy::toy_dataset_dim(name).ok_or_else(|| Error::invalid(format!("unknown toy dataset {name:?}")))
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

/// Library, tch and libtorch versions, e.g. "sance 0.5.0 (tch 0.24.0, libtorch 2.11.0+cu130)".
/// The string is static.
#[no_mangle]
pub extern "C" fn sance_version() -> *const c_char {
    version_cstr().as_ptr()
}

/// Number of CUDA devices libtorch can use (0 without a GPU or with a CPU-only libtorch).
#[no_mangle]
pub extern "C" fn sance_cuda_device_count() -> i32 {
    guard_or("sance_cuda_device_count", 0, || Ok(tch::Cuda::device_count() as i32))
}
