//! Status codes, the error type and the thread-local last-error message: sance-cabi's,
//! shared with libsance_eval (`SanceStatus` is emitted once, as include/sance_status.h).
pub use sance_cabi::status::{last_error, last_error_ptr, set_last_error, Error, Result, SanceStatus};
