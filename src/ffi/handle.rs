//! The opaque handle behind `SanceEbm *`.
use crate::core::ebm::Ebm;
use crate::ffi::boundary::catch_panic;
use crate::status::{Error, Result, SanceStatus};
use parking_lot::Mutex;
use std::cell::Cell;

thread_local! {
    static INJECT_PANIC: Cell<bool> = const { Cell::new(false) };
}

/// Test hook: the next call on a handle from this thread panics inside the handle's lock,
/// as a bug would.
#[doc(hidden)]
pub fn inject_panic() {
    INJECT_PANIC.with(|p| p.set(true));
}

/// A model and its trainer. Calls on one handle are serialized by the lock inside it.
pub struct SanceEbm {
    state: Mutex<State>,
}

struct State {
    ebm: Ebm,
    /// Set when a call panicked part-way: the model may be inconsistent, so every later call
    /// fails with SANCE_STATUS_PANIC until the handle is freed.
    poisoned: Option<String>,
}

impl SanceEbm {
    pub fn new(ebm: Ebm) -> SanceEbm {
        SanceEbm { state: Mutex::new(State { ebm, poisoned: None }) }
    }

    /// Runs `f` on the model under the handle's lock. A panic inside poisons the handle.
    pub fn with<T>(&self, f: impl FnOnce(&mut Ebm) -> Result<T>) -> Result<T> {
        let mut st = self.state.lock();
        if let Some(why) = &st.poisoned {
            return Err(Error::new(
                SanceStatus::Panic,
                format!("this handle is unusable since an earlier call failed part-way ({why}); free it"),
            ));
        }
        match catch_panic(|| {
            if INJECT_PANIC.with(|p| p.replace(false)) {
                panic!("injected panic (test hook)");
            }
            f(&mut st.ebm)
        }) {
            Ok(r) => r,
            Err(e) => {
                st.poisoned = Some(e.message.clone());
                Err(e)
            }
        }
    }
}
