//! The one undo. Every call that may change a model runs under [`Ebm::undoable`]: it saves
//! what the call may change on entry and puts it back when the call fails — an error, a
//! libtorch failure raised as a panic, or a bug's panic — so that "a failed call leaves the
//! model exactly as it was" holds by construction, not by each call's care.
//!
//! What is saved: θ and c, their moving average θ̃ and Adam's moments as copies (they are updated in place), and the
//! rest as it is: the snapshot, the fitted Gaussian and the scaling are replaced whole, never written in
//! place, so keeping their handles keeps them. The replay buffer's rows are the exception: a
//! step writes them last (`ReplayBuffer::commit`, after every check has passed), so the
//! buffer's handle and length are saved and its rows need no copy.
use super::draw::DrawPool;
use super::Ebm;
use crate::abi::config::SanceConfig;
use crate::abi::status::Result;
use crate::model::gaussian::Gaussian;
use crate::model::net::{copy_of, Params};
use crate::model::replay::{Draw, ReplayBuffer};
use crate::model::rng::Rng;
use crate::model::scaling::Scaling;
use crate::panic::{catch_torch, restoring};
use std::panic::{self, AssertUnwindSafe};
use tch::Tensor;

/// What a call may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Undo {
    /// The random stream, the count of draws and AUTO's pool only: calls that read the model
    /// but draw from its stream (sample_from) or count their draws (draw).
    Stream,
    /// Everything: calls that train, refresh or fit.
    Model,
}

/// A model's changeable state, taken on entry to a call.
pub(crate) struct Saved {
    rng: Rng,
    draws: u64,
    draw_pool: Option<DrawPool>,
    model: Option<Box<SavedModel>>,
}

/// [`Undo::Model`]'s part: everything but the random stream.
struct SavedModel {
    /// Copies of θ and c (flat), then of Adam's moments (flat).
    theta: Tensor,
    average: Option<Tensor>,
    adam_m: Tensor,
    adam_v: Tensor,
    adam_t: u64,
    adam_lr: f64,
    cfg: SanceConfig,
    snapshot: Option<Params>,
    gaussian: Option<Gaussian>,
    scaling: Option<Scaling>,
    buffer: ReplayBuffer,
    last_draw: Option<Draw>,
    step: u64,
    refresh_count: u64,
    refresh_ess: f64,
    refresh_nonfinite: u64,
}

impl Saved {
    /// Saves what `what` names. Only the copies allocate; a failure here changes nothing.
    fn take(m: &Ebm, what: Undo) -> Result<Saved> {
        let model = match what {
            Undo::Stream => None,
            Undo::Model => Some(Box::new(SavedModel {
                theta: copy_of(&m.theta)?,
                average: m.average.as_ref().map(|(a, _)| copy_of(a)).transpose()?,
                adam_m: copy_of(&m.adam.m_flat)?,
                adam_v: copy_of(&m.adam.v_flat)?,
                adam_t: m.adam.t,
                adam_lr: m.adam.lr,
                cfg: m.cfg,
                snapshot: m.snapshot.as_ref().map(Params::shallow),
                gaussian: m.gaussian.as_ref().map(Gaussian::shallow),
                scaling: m.scaling.as_ref().map(Scaling::shallow),
                buffer: m.buffer.shallow(),
                last_draw: m.last_draw.clone(),
                step: m.step,
                refresh_count: m.refresh_count,
                refresh_ess: m.refresh_ess,
                refresh_nonfinite: m.refresh_nonfinite,
            })),
        };
        Ok(Saved {
            rng: m.rng.clone(),
            draws: m.draws,
            draw_pool: m.draw_pool.as_ref().map(DrawPool::shallow),
            model,
        })
    }

    /// Puts everything saved back. The tensors are copied into their existing storage (the
    /// views of θ and of the moments stay views): nothing here allocates. If a copy still
    /// fails (a sticky CUDA error), the panic goes on as one that is not a libtorch error, so
    /// that the C handle is marked unusable ([`restoring`]).
    fn restore(self, m: &mut Ebm) {
        m.rng = self.rng;
        m.draws = self.draws;
        m.draw_pool = self.draw_pool;
        let Some(s) = self.model else { return };
        restoring(|| {
            crate::model::no_grad(|| {
                m.theta.copy_(&s.theta);
                if let (Some((a, _)), Some(saved)) = (m.average.as_mut(), s.average.as_ref()) {
                    a.copy_(saved);
                }
                m.adam.m_flat.copy_(&s.adam_m);
                m.adam.v_flat.copy_(&s.adam_v);
            })
        });
        m.adam.t = s.adam_t;
        m.adam.lr = s.adam_lr;
        m.cfg = s.cfg;
        m.snapshot = s.snapshot;
        m.gaussian = s.gaussian;
        m.scaling = s.scaling;
        m.buffer = s.buffer;
        m.last_draw = s.last_draw;
        m.step = s.step;
        m.refresh_count = s.refresh_count;
        m.refresh_ess = s.refresh_ess;
        m.refresh_nonfinite = s.refresh_nonfinite;
    }
}

impl Ebm {
    /// Runs `f` on the model, on the handle's thread count ([`Ebm::call_threads`]); when it fails — an error, a libtorch error raised as a panic
    /// (returned as SANCE_STATUS_TORCH), or any other panic (which then goes on unwinding) —
    /// what `what` names is put back as it was on entry.
    pub(crate) fn undoable<T>(&mut self, what: Undo, f: impl FnOnce(&mut Ebm) -> Result<T>) -> Result<T> {
        let _threads = self.call_threads();
        let saved = Saved::take(self, what)?;
        if what == Undo::Model {
            // Annealed for the model as it was (crate::model::ebm::draw::DrawPool).
            self.draw_pool = None;
        }
        match panic::catch_unwind(AssertUnwindSafe(|| catch_torch(|| f(self)))) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                saved.restore(self);
                Err(e)
            }
            Err(payload) => {
                saved.restore(self);
                panic::resume_unwind(payload)
            }
        }
    }

    /// Runs `f`, a query (it reads the model; it may draw from the stream and count its draws),
    /// under the undo of the stream and the count: for callers (the C layer) whose own part of
    /// the call may still fail after the model's part succeeded.
    pub fn query<T>(&mut self, f: impl FnOnce(&mut Ebm) -> Result<T>) -> Result<T> {
        self.undoable(Undo::Stream, f)
    }
}
