//! The trainer's persistent state as one value: what a checkpoint holds besides the config.
//! The checkpoint code (crate::checkpoint) encodes a model's [`TrainerState`], and decodes and
//! validates one (names, shapes, finite values, counters) that the trainer then installs: each
//! side keeps to itself. A new persistent field is added here (the struct, `persistent_state`,
//! `install_state`) and in the checkpoint's encoder and decoder.
use super::saved::Undo;
use super::Ebm;
use crate::abi::status::{Error, Result};
use crate::model::gaussian::Gaussian;
use crate::model::rng::Rng;
use tch::Tensor;

/// Everything training needs to continue exactly, besides the config.
#[derive(Debug)]
pub struct TrainerState {
    /// θ, in `Params::named` order.
    pub theta: Vec<Tensor>,
    /// θ̃ (the moving average) in the same order; None without an average, or from a file
    /// that has none (it then starts at θ).
    pub average: Option<Vec<Tensor>>,
    /// θ̄ in the same order; None before the first refresh.
    pub snapshot: Option<Vec<Tensor>>,
    /// c, 0-d.
    pub c: Tensor,
    /// AdamW's first and second moments: θ's in `Params::named` order, then c's.
    pub exp_avg: Vec<Tensor>,
    pub exp_avg_sq: Vec<Tensor>,
    /// AdamW's update count.
    pub adam_t: u64,
    /// The filled rows of the replay buffer, [len, ...sample_shape]; None when empty.
    pub replay: Option<Tensor>,
    /// Their energies under the snapshot, [len], when the buffer knows them (they decide the
    /// next refresh's resampling; recomputed, they could differ in the last bits).
    pub replay_energies: Option<Tensor>,
    /// Classic NCE's fitted noise: its mean [D] and scale (Cholesky factor [D, D] or std [D]).
    pub gaussian_noise: Option<(Tensor, Tensor)>,
    /// The data's fitted scaling: shift [D] and scale [D] (x = shift + scale ⊙ z).
    pub scaling: Option<(Tensor, Tensor)>,
    pub rng: Rng,
    pub step: u64,
    pub refresh_count: u64,
}

impl Ebm {
    /// The model's persistent state, sharing its tensors (no copy; read it before the model
    /// changes again).
    pub fn persistent_state(&self) -> TrainerState {
        TrainerState {
            theta: self.params.iter().map(Tensor::shallow_clone).collect(),
            average: self.average.as_ref().map(|(_, p)| p.iter().map(Tensor::shallow_clone).collect()),
            snapshot: self.snapshot.as_ref().map(|s| s.iter().map(Tensor::shallow_clone).collect()),
            c: self.c.shallow_clone(),
            exp_avg: self.adam.m.iter().map(Tensor::shallow_clone).collect(),
            exp_avg_sq: self.adam.v.iter().map(Tensor::shallow_clone).collect(),
            adam_t: self.adam.t,
            replay: self.buffer.contents(),
            replay_energies: self.buffer.known_energies(),
            gaussian_noise: self.gaussian.as_ref().map(|g| (g.mean.shallow_clone(), g.scale.shallow_clone())),
            scaling: self.scaling.as_ref().map(|s| (s.shift.shallow_clone(), s.scale.shallow_clone())),
            rng: self.rng.clone(),
            step: self.step,
            refresh_count: self.refresh_count,
        }
    }

    /// Replaces the model's persistent state with `s` (decoded and validated by the
    /// checkpoint code): the tensors are copied into the model's own storage, on its device and
    /// in its dtype. A state that does not fit this model (a tensor count or shape) is refused,
    /// and on any failure nothing changes.
    pub fn install_state(&mut self, s: TrainerState) -> Result<()> {
        let shapes: Vec<Vec<i64>> = self.params.iter().map(Tensor::size).collect();
        let mut moment_shapes = shapes.clone();
        moment_shapes.push(vec![]);
        let fits = |ts: &[Tensor], want: &[Vec<i64>]| {
            ts.len() == want.len() && ts.iter().zip(want).all(|(t, w)| t.size() == *w)
        };
        let replay_fits = s.replay.as_ref().is_none_or(|r| {
            r.size()[1..] == self.batch_shape(1)[1..]
                && (1..=self.buffer.capacity() as i64).contains(&r.size()[0])
        }) && match (&s.replay, &s.replay_energies) {
            (_, None) => true,
            (Some(r), Some(e)) => e.size() == [r.size()[0]],
            (None, Some(_)) => false,
        };
        if !fits(&s.theta, &shapes)
            || !s.snapshot.as_deref().is_none_or(|t| fits(t, &shapes))
            || !s.average.as_deref().is_none_or(|t| fits(t, &shapes))
            || !fits(std::slice::from_ref(&s.c), &[vec![]])
            || !fits(&s.exp_avg, &moment_shapes)
            || !fits(&s.exp_avg_sq, &moment_shapes)
            || !replay_fits
            || !s.scaling.as_ref().is_none_or(|(a, b)| {
                let d = vec![self.sample_size() as i64];
                a.size() == d && b.size() == d && self.cfg.arch == crate::abi::config::SanceArch::Mlp
            })
        {
            return Err(Error::invalid("install_state: the state's tensors do not fit this model's network"));
        }
        let (kind, device) = (self.kind, self.device);
        let here = move |t: &Tensor| -> Result<Tensor> { Ok(t.f_to_kind(kind)?.f_to_device(device)?) };
        self.undoable(Undo::Model, |m| {
            crate::model::no_grad(|| -> Result<()> {
                for (p, t) in m.params.iter_mut().zip(&s.theta) {
                    p.f_copy_(t)?;
                }
                m.c.f_copy_(&s.c)?;
                if let Some((flat, avg)) = m.average.as_mut() {
                    match &s.average {
                        Some(t) => {
                            for (a, v) in avg.iter_mut().zip(t) {
                                a.f_copy_(v)?;
                            }
                        }
                        None => {
                            flat.f_copy_(&m.theta)?;
                        }
                    }
                }
                for (i, (e, v)) in s.exp_avg.iter().zip(&s.exp_avg_sq).enumerate() {
                    m.adam.m[i].f_copy_(e)?;
                    m.adam.v[i].f_copy_(v)?;
                }
                Ok(())
            })?;
            m.snapshot = match &s.snapshot {
                None => None,
                Some(t) => {
                    let mut it = t.iter();
                    Some(m.params.try_map(|_| {
                        it.next().expect("one tensor per parameter").f_to_kind(kind)?.f_to_device(device)
                    })?)
                }
            };
            m.adam.t = s.adam_t;
            match &s.replay {
                Some(rows) => {
                    let energies = s.replay_energies.as_ref().map(&here).transpose()?;
                    m.buffer.restore(&here(rows)?, energies.as_ref())?
                }
                None => m.buffer = crate::model::replay::ReplayBuffer::new(m.buffer.capacity()),
            }
            m.gaussian = match &s.gaussian_noise {
                None => None,
                Some((mean, scale)) => Some(Gaussian::from_parts(here(mean)?, here(scale)?, kind, device)?),
            };
            m.scaling = match &s.scaling {
                None => None,
                Some((shift, scale)) => {
                    Some(crate::model::scaling::Scaling::from_tensors(here(shift)?, here(scale)?)?)
                }
            };
            m.rng = s.rng.clone();
            m.step = s.step;
            m.refresh_count = s.refresh_count;
            Ok(())
        })
    }
}
