//! Panics and libtorch's errors raised as panics, for every layer: the guard itself
//! ([`catch_panic`], [`catch_torch`]) is sance-cabi's, shared with libsance_eval; what is
//! libsance's alone is [`restoring`], for the model's undo. Below both `model/` and `ffi/`,
//! so that the model never reaches up into the C boundary.
pub use sance_cabi::panic::{catch_panic, catch_torch, payload_text};
use std::panic::{self, AssertUnwindSafe};

/// Runs a restore made after a failure. Restores copy into existing storage and should not
/// fail; if one does (a sticky CUDA error, say) the model may be half-restored, so the panic
/// goes on as one that is not a libtorch error: `catch_torch` lets it through and the
/// handle's lock marks the handle unusable.
pub fn restoring<T>(f: impl FnOnce() -> T) -> T {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let text = payload_text(&*p).replace("Torch(", "libtorch error (");
            panic!("restoring the model after a failure failed, it may be half-restored: {text}")
        }
    }
}
