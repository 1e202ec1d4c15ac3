//! The opaque handle behind `SanceEbm *`.
use crate::model::ebm::Ebm;
use crate::ffi::boundary::catch_panic;
use crate::abi::status::{Error, Result, SanceStatus};
use parking_lot::Mutex;

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
            crate::fault::panic_point();
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
