//! The panic guard, for both libraries: the C boundary stops every panic with [`catch_panic`];
//! libsance's model undoes a call on a libtorch failure with [`catch_torch`].
//!
//! tch's infallible ops panic with the libtorch error in the message (`... Err value:
//! Torch("...")`), reported as TORCH; libsance_eval has no such panics, so for it every panic
//! is PANIC. A hook installed once records the text of panics inside the library's calls
//! instead of printing it, and defers to the host's hook for panics elsewhere.
use crate::status::{Error, Result, SanceStatus};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Depth of exported calls on this thread: panics inside are caught, so the hook stays quiet.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The message and location of the last panic caught on this thread.
    static PANIC_TEXT: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs (once) a panic hook that records panics inside exported calls instead of printing
/// them, and defers to the previous hook for panics elsewhere in the host program.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(|d| d.get()) > 0 {
                let loc =
                    info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                PANIC_TEXT.with(|t| *t.borrow_mut() = Some(format!("{}{loc}", payload_text(info.payload()))));
            } else {
                previous(info);
            }
        }));
    });
}

/// The text a panic carries (`panic!`'s message).
pub fn payload_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs `f` as inside an exported call, so that the hook records a panic instead of printing
/// it; returns the result and the depth of exported calls outside this one.
fn quietly<T>(f: impl FnOnce() -> T) -> (std::thread::Result<T>, u32) {
    install_hook();
    let outer = DEPTH.with(|d| d.get());
    DEPTH.with(|d| d.set(outer + 1));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(outer));
    (r, outer)
}

/// The libtorch error a panic's text carries: tch's infallible ops panic with it
/// (`... Err value: Torch("...")`), and those are libtorch failures, reported as TORCH.
fn torch_error(text: &str) -> Option<Error> {
    text.find("Torch(").map(|i| Error::new(SanceStatus::Torch, format!("libtorch: {}", &text[i..])))
}

/// Turns a caught panic into an error: TORCH for a libtorch error, else PANIC.
fn panic_error(payload: Box<dyn Any + Send>) -> Error {
    let text = PANIC_TEXT.with(|t| t.borrow_mut().take()).unwrap_or_else(|| payload_text(&*payload));
    torch_error(&text).unwrap_or_else(|| {
        Error::new(SanceStatus::Panic, format!("internal panic (a bug in sance, please report it): {text}"))
    })
}

/// Runs `f`; Err only when it panicked.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T> {
    quietly(f).0.map_err(panic_error)
}

/// Runs `f`; a panic that carries a libtorch error (an infallible tch op failing: a CUDA
/// out-of-memory error, say) becomes that error, with status TORCH, so that the caller can
/// undo what the call changed. Any other panic is a bug and keeps unwinding.
pub fn catch_torch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let (r, outer) = quietly(f);
    let payload = match r {
        Ok(r) => return r,
        Err(payload) => payload,
    };
    if let Some(e) = torch_error(&payload_text(&*payload)) {
        PANIC_TEXT.with(|t| t.borrow_mut().take());
        return Err(e);
    }
    // Outside an exported call (a Rust caller) nothing else will report it: the hook only
    // recorded it, and resume_unwind does not run the hook.
    if outer == 0 {
        if let Some(t) = PANIC_TEXT.with(|t| t.borrow_mut().take()) {
            eprintln!("panicked: {t}");
        }
    }
    panic::resume_unwind(payload)
}
