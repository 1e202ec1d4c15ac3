//! sance-cabi: what libsance and libsance_eval do alike at the C boundary, written once —
//! [`SanceStatus`] (emitted as include/sance_status.h, which both headers include), the
//! [`Error`] type, the thread-local last-error message, the pointer and size checks, and the
//! panic guard. No libtorch: libsance_eval links it without linking libtorch.
//!
//! Each shared library links its own copy, so each keeps its own last error
//! (`sance_last_error`, `sance_eval_last_error`) and its own panic hook.
pub mod boundary;
pub mod panic;
pub mod status;

pub use status::{Error, Result, SanceStatus};
