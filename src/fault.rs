//! Test-only fault injection: make the next save fail at a chosen point (as a full disk
//! would), or the next call on a handle panic (as a bug would). The hooks exist only with
//! the `test-hooks` feature, which the test suite turns on (Cargo.toml's
//! dev-dependency on this crate); the release library has neither the hooks nor their checks.

/// Points where a test can make a save fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// After half the bytes reached the temporary file.
    MidWrite,
    /// After the temporary file was written, before fsync.
    BeforeSync,
    /// After fsync, before the rename.
    BeforeRename,
}

#[cfg(feature = "test-hooks")]
mod hooks {
    use super::FaultPoint;
    use std::cell::Cell;

    thread_local! {
        static SAVE_FAULT: Cell<Option<FaultPoint>> = const { Cell::new(None) };
        static PANIC: Cell<bool> = const { Cell::new(false) };
    }

    /// The next save on this thread fails at `p` (None: no fault).
    pub fn inject_save_fault(p: Option<FaultPoint>) {
        SAVE_FAULT.with(|f| f.set(p));
    }

    /// The next call on a handle from this thread panics inside the handle's lock.
    pub fn inject_panic() {
        PANIC.with(|p| p.set(true));
    }

    pub(crate) fn save_fault(at: FaultPoint) -> std::io::Result<()> {
        if SAVE_FAULT.with(|f| f.get()) == Some(at) {
            SAVE_FAULT.with(|f| f.set(None));
            return Err(std::io::Error::other(format!("injected fault at {at:?}")));
        }
        Ok(())
    }

    pub(crate) fn panic_point() {
        if PANIC.with(|p| p.replace(false)) {
            panic!("injected panic (test hook)");
        }
    }
}

#[cfg(feature = "test-hooks")]
pub use hooks::{inject_panic, inject_save_fault};
#[cfg(feature = "test-hooks")]
pub(crate) use hooks::{panic_point, save_fault};

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn save_fault(_: FaultPoint) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn panic_point() {}
