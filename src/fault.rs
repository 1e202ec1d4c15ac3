//! Test-only fault injection: make the next save fail at a chosen point (as a full disk
//! would), the next call on a handle panic (as a bug would), or libtorch fail at the n-th of
//! the points marked with `torch_point` (as a CUDA out-of-memory error would, mid-call: either
//! as an error from a fallible op or as the panic an infallible tch op raises). The hooks exist only with
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

/// How an injected libtorch failure shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TorchFault {
    /// A fallible op returns `TchError::Torch`.
    Error,
    /// An infallible op panics with the libtorch error, as tch's unwrapping wrappers do.
    Panic,
}

/// The message of an injected libtorch failure.
pub const INJECTED_TORCH: &str = "injected libtorch failure (test hook)";

#[cfg(feature = "test-hooks")]
mod hooks {
    use super::{FaultPoint, TorchFault, INJECTED_TORCH};
    use std::cell::Cell;

    thread_local! {
        static SAVE_FAULT: Cell<Option<FaultPoint>> = const { Cell::new(None) };
        static PANIC: Cell<bool> = const { Cell::new(false) };
        static TORCH_FAULT: Cell<Option<(u32, TorchFault)>> = const { Cell::new(None) };
        static CHUNK_BYTES: Cell<Option<usize>> = const { Cell::new(None) };
        static THREADS_SEEN: Cell<Option<ThreadsSeen>> = const { Cell::new(None) };
    }

    /// The intra-op thread counts the torch points on this thread saw while watching.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ThreadsSeen {
        pub points: u64,
        pub min: i32,
        pub max: i32,
    }

    /// Starts (Some: empty) or stops (None) watching the thread count at each torch point
    /// passed on this thread; returns what was seen until now.
    pub fn watch_threads(on: bool) -> Option<ThreadsSeen> {
        let fresh = ThreadsSeen { points: 0, min: i32::MAX, max: i32::MIN };
        THREADS_SEEN.with(|t| t.replace(on.then_some(fresh)))
    }

    /// Working memory per chunk of the chunked calls on this thread (None: the default).
    pub fn set_chunk_bytes(b: Option<usize>) {
        CHUNK_BYTES.with(|c| c.set(b));
    }

    /// The test's chunk size on this thread, if it set one.
    pub(crate) fn chunk_bytes_override() -> Option<usize> {
        CHUNK_BYTES.with(|c| c.get())
    }

    /// libtorch fails at the (n+1)-th torch point passed on this thread from now (None: never).
    pub fn inject_torch_fault(f: Option<(u32, TorchFault)>) {
        TORCH_FAULT.with(|t| t.set(f));
    }

    /// Whether an injected libtorch failure is still waiting (the call passed too few points).
    pub fn torch_fault_pending() -> bool {
        TORCH_FAULT.with(|t| t.get().is_some())
    }

    pub(crate) fn torch_point() -> Result<(), tch::TchError> {
        if let Some(mut seen) = THREADS_SEEN.with(|t| t.get()) {
            let n = crate::runtime::threads::current().unwrap_or(0);
            seen.points += 1;
            seen.min = seen.min.min(n);
            seen.max = seen.max.max(n);
            THREADS_SEEN.with(|t| t.set(Some(seen)));
        }
        match TORCH_FAULT.with(|t| t.get()) {
            Some((0, how)) => {
                TORCH_FAULT.with(|t| t.set(None));
                match how {
                    TorchFault::Error => Err(tch::TchError::Torch(INJECTED_TORCH.into())),
                    // The text tch's infallible wrappers panic with.
                    TorchFault::Panic => {
                        panic!("called `Result::unwrap()` on an `Err` value: Torch(\"{INJECTED_TORCH}\")")
                    }
                }
            }
            Some((n, how)) => {
                TORCH_FAULT.with(|t| t.set(Some((n - 1, how))));
                Ok(())
            }
            None => Ok(()),
        }
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
pub(crate) use hooks::{chunk_bytes_override, panic_point, save_fault, torch_point};
#[cfg(feature = "test-hooks")]
pub use hooks::{
    inject_panic, inject_save_fault, inject_torch_fault, set_chunk_bytes, torch_fault_pending, watch_threads,
    ThreadsSeen,
};

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn save_fault(_: FaultPoint) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn panic_point() {}

/// A point where a test can make libtorch fail (a no-op in the release library).
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn torch_point() -> Result<(), tch::TchError> {
    Ok(())
}

/// No test override of the chunk size in the release library.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn chunk_bytes_override() -> Option<usize> {
    None
}
