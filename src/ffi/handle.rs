//! The opaque handle behind `SanceEbm *`.
use crate::abi::status::{Error, Result, SanceStatus};
use crate::model::ebm::Ebm;
use crate::panic::catch_panic;
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

impl State {
    /// The error every call on a poisoned handle returns.
    fn refuse_if_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(Error::new(
                SanceStatus::Panic,
                format!("this handle is unusable since an earlier call failed part-way ({why}); free it"),
            )),
            None => Ok(()),
        }
    }
}

impl SanceEbm {
    pub fn new(ebm: Ebm) -> SanceEbm {
        SanceEbm { state: Mutex::new(State { ebm, poisoned: None }) }
    }

    /// Runs `f`, a query — a call whose one lasting change is the count of draws that picks the
    /// next draw's stream (energies, draws, the normaliser, a save) — under the handle's lock.
    /// It gets `&mut Ebm` for that count and the stream, and runs under the model's undo of both
    /// (crate::model::ebm::saved): a failure anywhere in the
    /// call — the model's part or the C layer's copy-out, a libtorch error raised by an
    /// infallible op, or a bug's panic — leaves the model exactly as it was and does not
    /// poison the handle.
    pub fn query<T>(&self, f: impl FnOnce(&mut Ebm) -> Result<T>) -> Result<T> {
        let mut st = self.state.lock();
        st.refuse_if_poisoned()?;
        // The call's thread count, from here to its return (the C layer's copies included).
        let _threads = st.ebm.call_threads();
        catch_panic(|| {
            st.ebm.query(|m| {
                crate::fault::panic_point();
                f(m)
            })
        })
        .and_then(|r| r)
    }

    /// Runs `f`, a call that may change the model, under the handle's lock. The model undoes
    /// its own changes on an error, libtorch's included, and a training step settles what it
    /// owes the other ranks however it ends; a panic that still gets here is a bug that may
    /// have left the model half-updated, so it poisons the handle.
    pub fn mutate<T>(&self, f: impl FnOnce(&mut Ebm) -> Result<T>) -> Result<T> {
        let mut st = self.state.lock();
        st.refuse_if_poisoned()?;
        let _threads = st.ebm.call_threads();
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
