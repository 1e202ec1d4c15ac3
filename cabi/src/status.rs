//! Status codes, the error type, and the thread-local "last error" message.
use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::fmt;

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

/// Every status, in value order.
const ALL_STATUSES: [SanceStatus; 10] = [
    SanceStatus::Ok,
    SanceStatus::NullPointer,
    SanceStatus::InvalidArgument,
    SanceStatus::NonFinite,
    SanceStatus::Device,
    SanceStatus::Io,
    SanceStatus::Corrupt,
    SanceStatus::Torch,
    SanceStatus::Panic,
    SanceStatus::Collective,
];

impl SanceStatus {
    /// The enumerator's name as it appears in the header, as a static C string.
    pub fn name(self) -> &'static CStr {
        match self {
            SanceStatus::Ok => c"SANCE_STATUS_OK",
            SanceStatus::NullPointer => c"SANCE_STATUS_NULL_POINTER",
            SanceStatus::InvalidArgument => c"SANCE_STATUS_INVALID_ARGUMENT",
            SanceStatus::NonFinite => c"SANCE_STATUS_NON_FINITE",
            SanceStatus::Device => c"SANCE_STATUS_DEVICE",
            SanceStatus::Io => c"SANCE_STATUS_IO",
            SanceStatus::Corrupt => c"SANCE_STATUS_CORRUPT",
            SanceStatus::Torch => c"SANCE_STATUS_TORCH",
            SanceStatus::Panic => c"SANCE_STATUS_PANIC",
            SanceStatus::Collective => c"SANCE_STATUS_COLLECTIVE",
        }
    }

    pub fn from_i32(v: i32) -> Option<SanceStatus> {
        ALL_STATUSES.iter().copied().find(|s| *s as i32 == v)
    }
}

/// A failure: the status the C API returns and a message for the library's last error.
#[derive(Clone, Debug, PartialEq)]
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
    pub fn null(what: &str) -> Error {
        Error::new(SanceStatus::NullPointer, format!("{what} is NULL"))
    }
    pub fn non_finite(message: impl Into<String>) -> Error {
        Error::new(SanceStatus::NonFinite, message)
    }
    pub fn device(message: impl Into<String>) -> Error {
        Error::new(SanceStatus::Device, message)
    }
    pub fn io(message: impl Into<String>) -> Error {
        Error::new(SanceStatus::Io, message)
    }
    pub fn corrupt(message: impl Into<String>) -> Error {
        Error::new(SanceStatus::Corrupt, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.name().to_string_lossy(), self.message)
    }
}

/// `?` on the error of a library below: an I/O error is IO, any other is libtorch's (TORCH,
/// its text after "libtorch: "), the only library whose errors libsance passes up with `?`.
/// Written for every error type because this crate cannot name `tch::TchError` (it must not
/// link libtorch) and libsance cannot implement `From` between two crates' types; errors
/// that mean something else (a corrupt file, a bad argument) are mapped where they arise.
/// `Error` itself is not a `std::error::Error`, as anyhow's is not, so that this impl does
/// not overlap `From<T> for T`.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Error {
        if (&e as &dyn Any).is::<std::io::Error>() {
            Error::io(e.to_string())
        } else {
            Error::new(SanceStatus::Torch, format!("libtorch: {e}"))
        }
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

/// Pointer to this thread's last error message; valid until the next failure on this thread.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// This thread's last error message, copied.
pub fn last_error() -> String {
    LAST_ERROR.with(|e| e.borrow().to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_errors_map_to_io_or_torch() {
        fn read() -> Result<Vec<u8>> {
            Ok(std::fs::read("/nonexistent/sance-cabi")?)
        }
        assert_eq!(read().unwrap_err().status, SanceStatus::Io);
        fn parse() -> Result<i32> {
            Ok("x".parse::<i32>()?)
        }
        let e = parse().unwrap_err();
        assert_eq!(e.status, SanceStatus::Torch);
        assert!(e.message.starts_with("libtorch: "), "{}", e.message);
    }

    #[test]
    fn statuses_round_trip() {
        for s in ALL_STATUSES {
            assert_eq!(SanceStatus::from_i32(s as i32), Some(s));
        }
        assert_eq!(SanceStatus::from_i32(10), None);
    }
}
