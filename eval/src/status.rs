//! The status codes, shared with libsance: the same type, names and values, so that a program
//! including both headers sees one `SanceStatus` (both headers guard it with
//! `SANCE_STATUS_DEFINED`). This crate cannot depend on libsance's (it links libtorch), so the
//! enum is repeated here; `tests/eval.rs` (`both_headers_define_the_same_status`) fails when the
//! two headers' definitions differ.
use std::cell::RefCell;
use std::ffi::{c_char, CString};

/// Outcome of a fallible call. Values are explicit and never reused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SanceStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullPointer = 1,
    /// An argument or config field is out of range; the message names it.
    InvalidArgument = 2,
    /// NaN or infinity in the input, or training produced a non-finite loss or gradient
    /// (the update was skipped and the model left exactly as it was).
    NonFinite = 3,
    /// The requested device does not exist (e.g. CUDA asked for where there is none).
    Device = 4,
    /// A file could not be read or written.
    Io = 5,
    /// A file's contents are not a valid checkpoint.
    Corrupt = 6,
    /// libtorch reported an error (typically out of memory on a large batch); the message
    /// carries libtorch's text. The call changed nothing and the handle stays usable.
    Torch = 7,
    /// An internal panic was caught at the API boundary (a bug: please report it).
    Panic = 8,
    /// The host's allreduce (`sance_ebm_set_allreduce`) returned non-zero: the step was
    /// abandoned and this rank's model left unchanged; the communicator is the host's.
    Collective = 9,
}

/// A failure: a status and a message for `sance_eval_last_error`.
#[derive(Debug)]
pub struct Error {
    pub status: SanceStatus,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(status: SanceStatus, message: impl Into<String>) -> Error {
        Error { status, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(SanceStatus::InvalidArgument, message)
    }
    pub fn corrupt(message: impl Into<String>) -> Error {
        Error::new(SanceStatus::Corrupt, message)
    }
    pub fn null(name: &str) -> Error {
        Error::new(SanceStatus::NullPointer, format!("{name} is NULL"))
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error (interior NULs are replaced).
pub fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\u{FFFD}")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// This thread's last error; valid until the next failure on this thread.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}
