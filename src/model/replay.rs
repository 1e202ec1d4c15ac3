//! Persistent replay buffer of Langevin chains.
//!
//! Each step draws M chains: each is fresh with probability ρ (always while the buffer is
//! empty), otherwise a distinct stored chain. With ρ = 0 the trainer fills the buffer at the
//! first refresh and keeps it a population of the snapshot (`Ebm::follow_snapshot`). After sampling, replayed chains go back to the
//! slots they came from and fresh chains are appended while there is room, then overwrite
//! random stored chains that were not replayed this step. The rule is what the undo
//! (crate::model::ebm::saved, which keeps the storage's handles and the length) can hide: a
//! step writes its rows last ([`ReplayBuffer::commit`], after every check has passed); a
//! refresh writes first, but only where the undo hides it — its resampling into new storage
//! ([`ReplayBuffer::resample`]) and its fill past the current length ([`ReplayBuffer::extend`]).
use crate::model::rng::Rng;
use std::collections::HashSet;
use tch::{TchError, Tensor};

#[derive(Debug)]
pub struct ReplayBuffer {
    capacity: usize,
    len: usize,
    /// [capacity, ...sample_shape], allocated on first write.
    data: Option<Tensor>,
    /// [capacity]: each stored chain's energy under the current snapshot, E_θ̄(x), when
    /// `energies_known` (the trainer's `follow_snapshot` then needs one pass over the buffer
    /// per refresh, for the new snapshot's energies, instead of two). Written beside the rows.
    energies: Option<Tensor>,
    energies_known: bool,
}

/// Where each of a step's chains comes from and goes to.
#[derive(Clone, Debug, PartialEq)]
pub struct Draw {
    /// Chains taken from the buffer (row j of the batch ↔ `replay_slots[j]`).
    pub replay_slots: Vec<i64>,
    /// Number of fresh chains (rows after the replayed ones).
    pub fresh: usize,
    /// Slots the first `fresh_slots.len()` fresh chains are written to; the rest are dropped
    /// (only when capacity < M).
    pub fresh_slots: Vec<i64>,
    /// Buffer length after commit.
    pub new_len: usize,
}

impl ReplayBuffer {
    pub fn new(capacity: usize) -> ReplayBuffer {
        ReplayBuffer { capacity, len: 0, data: None, energies: None, energies_known: false }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The same buffer, sharing its storage: an undo keeps the length and the storage's
    /// handle, which is all a step changes before [`ReplayBuffer::commit`], its last act.
    pub fn shallow(&self) -> ReplayBuffer {
        ReplayBuffer {
            capacity: self.capacity,
            len: self.len,
            data: self.data.as_ref().map(Tensor::shallow_clone),
            energies: self.energies.as_ref().map(Tensor::shallow_clone),
            energies_known: self.energies_known,
        }
    }

    /// Replaces the stored chains by `rows[idx]` (idx: len indices into the stored chains), in
    /// new storage, with `energies[idx]` (energies: [len], the chains' energies under the new
    /// snapshot) as their known energies: the old storage is left as it was, so an undo that
    /// kept its handles puts the buffer back whole.
    pub fn resample(&mut self, idx: &[i64], energies: &Tensor) -> Result<(), TchError> {
        let (Some(data), Some(old_e)) = (self.data.as_ref(), self.energies.as_ref()) else { return Ok(()) };
        debug_assert_eq!(idx.len(), self.len);
        let i = Tensor::f_from_slice(idx)?.f_to_device(data.device())?;
        let fresh = data.f_zeros_like()?;
        fresh.f_narrow(0, 0, self.len as i64)?.f_copy_(&data.f_index_select(0, &i)?)?;
        let e = old_e.f_zeros_like()?;
        e.f_narrow(0, 0, self.len as i64)?.f_copy_(&energies.f_index_select(0, &i)?)?;
        self.data = Some(fresh);
        self.energies = Some(e);
        self.energies_known = true;
        Ok(())
    }

    /// The stored chains' energies under the current snapshot, [len], when known.
    pub fn known_energies(&self) -> Option<Tensor> {
        let e = self.energies.as_ref().filter(|_| self.energies_known && self.len > 0)?;
        Some(e.narrow(0, 0, self.len as i64))
    }

    /// Appends `rows` and their energies under the current snapshot after the stored chains
    /// (at most up to capacity). Writes only past the current length, so an undo that kept the
    /// length and the storage's handles hides them.
    pub fn extend(&mut self, rows: &Tensor, energies: &Tensor) -> Result<(), TchError> {
        self.reserve(rows)?;
        let (Some(data), Some(e)) = (self.data.as_ref(), self.energies.as_ref()) else { return Ok(()) };
        let n = (rows.size()[0] as usize).min(self.capacity - self.len);
        if n > 0 {
            data.f_narrow(0, self.len as i64, n as i64)?.f_copy_(&rows.f_narrow(0, 0, n as i64)?.detach())?;
            e.f_narrow(0, self.len as i64, n as i64)?
                .f_copy_(&energies.f_narrow(0, 0, n as i64)?.detach())?;
        }
        // An empty buffer's energies are all known once it is filled this way.
        self.energies_known = self.energies_known || self.len == 0;
        self.len += n;
        Ok(())
    }

    /// The stored chains, [len, ...].
    pub fn contents(&self) -> Option<Tensor> {
        // Storage may exist while empty (reserved by a step that was then rejected).
        self.data.as_ref().filter(|_| self.len > 0).map(|d| d.narrow(0, 0, self.len as i64))
    }

    /// Decides provenance and destination for `m` chains (consumes randomness, writes nothing).
    pub fn plan(&self, m: usize, reinit_prob: f64, rng: &mut Rng) -> Draw {
        let mut replay = 0usize;
        for _ in 0..m {
            let fresh = self.len == 0 || rng.uniform() < reinit_prob;
            if !fresh {
                replay += 1;
            }
        }
        let replay = replay.min(self.len);
        let replay_slots = distinct_below(self.len, replay, rng, &HashSet::new());
        let fresh = m - replay;

        let mut fresh_slots = Vec::with_capacity(fresh);
        let mut new_len = self.len;
        while fresh_slots.len() < fresh && new_len < self.capacity {
            fresh_slots.push(new_len as i64);
            new_len += 1;
        }
        let rest = fresh - fresh_slots.len();
        if rest > 0 {
            let used: HashSet<i64> = replay_slots.iter().copied().collect();
            fresh_slots.extend(distinct_below(self.len, rest.min(self.len - replay), rng, &used));
        }
        Draw { replay_slots, fresh, fresh_slots, new_len }
    }

    /// The replayed chains of a plan, [replay, ...].
    pub fn gather(&self, d: &Draw) -> Result<Option<Tensor>, TchError> {
        if d.replay_slots.is_empty() {
            return Ok(None);
        }
        let Some(data) = self.data.as_ref() else { return Ok(None) };
        let idx = Tensor::f_from_slice(&d.replay_slots)?.f_to_device(data.device())?;
        Ok(Some(data.f_index_select(0, &idx)?))
    }

    /// Allocates the storage for chains shaped like `chains` if it does not exist yet, so
    /// that [`ReplayBuffer::commit`] allocates nothing. Changes nothing visible.
    pub fn reserve(&mut self, chains: &Tensor) -> Result<(), TchError> {
        if self.capacity > 0 && self.data.is_none() {
            let mut shape = vec![self.capacity as i64];
            shape.extend_from_slice(&chains.size()[1..]);
            self.data = Some(Tensor::f_zeros(&shape, (chains.kind(), chains.device()))?);
            self.energies = Some(Tensor::f_zeros([self.capacity as i64], (chains.kind(), chains.device()))?);
        }
        Ok(())
    }

    /// Writes a step's final chains back (rows ordered as in the plan: replayed, then fresh).
    /// Call [`ReplayBuffer::reserve`] first.
    /// `energies` [M]: the chains' energies under the current snapshot, kept beside them; None
    /// leaves the buffer's energies unknown.
    pub fn commit(&mut self, d: &Draw, chains: &Tensor, energies: Option<&Tensor>) -> Result<(), TchError> {
        self.reserve(chains)?;
        let (Some(data), Some(e)) = (self.data.as_mut(), self.energies.as_mut()) else { return Ok(()) };
        let mut slots = d.replay_slots.clone();
        slots.extend_from_slice(&d.fresh_slots);
        let rows = slots.len() as i64;
        if rows > 0 {
            let idx = Tensor::f_from_slice(&slots)?.f_to_device(data.device())?;
            let _ = data.f_index_copy_(0, &idx, &chains.f_narrow(0, 0, rows)?.detach())?;
            match energies {
                Some(v) => {
                    let _ =
                        e.f_index_copy_(0, &idx, &v.f_narrow(0, 0, rows)?.detach().f_to_kind(e.kind())?)?;
                }
                None => self.energies_known = false,
            }
        }
        self.len = d.new_len;
        Ok(())
    }
}

impl ReplayBuffer {
    /// Restores the first `rows.size()[0]` chains from a checkpoint, with their energies under
    /// the current snapshot when the file kept them ([len]; format 5 on).
    pub fn restore(&mut self, rows: &Tensor, energies: Option<&Tensor>) -> Result<(), TchError> {
        let len = rows.size()[0] as usize;
        debug_assert!(len <= self.capacity);
        if len == 0 {
            self.data = None;
            self.energies = None;
        } else {
            let mut shape = rows.size();
            shape[0] = self.capacity as i64;
            let data = Tensor::f_zeros(&shape, (rows.kind(), rows.device()))?;
            data.f_narrow(0, 0, len as i64)?.f_copy_(rows)?;
            self.data = Some(data);
            self.energies = Some(Tensor::f_zeros([self.capacity as i64], (rows.kind(), rows.device()))?);
        }
        // Without them (files before format 5) the next refresh computes them, to within
        // rounding of the values an uninterrupted run kept.
        self.energies_known = false;
        if let (Some(e), Some(saved)) = (self.energies.as_ref(), energies) {
            e.f_narrow(0, 0, len as i64)?.f_copy_(saved)?;
            self.energies_known = true;
        }
        self.len = len;
        Ok(())
    }
}

/// `k` distinct integers in [0, n) not in `exclude` (requires k <= n − |exclude ∩ [0,n)|).
fn distinct_below(n: usize, k: usize, rng: &mut Rng, exclude: &HashSet<i64>) -> Vec<i64> {
    let available = n - exclude.len();
    debug_assert!(k <= available);
    if k == 0 {
        return Vec::new();
    }
    if 2 * k > available {
        // Dense case: partial Fisher–Yates over the allowed values.
        let mut pool: Vec<i64> = (0..n as i64).filter(|i| !exclude.contains(i)).collect();
        for i in 0..k {
            let j = i + rng.below((pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(k);
        return pool;
    }
    let mut chosen = HashSet::with_capacity(k);
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        let i = rng.below(n as u64) as i64;
        if !exclude.contains(&i) && chosen.insert(i) {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn fill(buf: &mut ReplayBuffer, m: usize, rho: f64, rng: &mut Rng, value: f64) -> Draw {
        let d = buf.plan(m, rho, rng);
        let chains = Tensor::full([m as i64, 2], value, (Kind::Float, Device::Cpu));
        buf.commit(&d, &chains, None).unwrap();
        d
    }

    #[test]
    fn empty_buffer_draws_all_fresh_and_fills_up_to_capacity() {
        let mut rng = Rng::new(0);
        let mut buf = ReplayBuffer::new(100);
        let d = fill(&mut buf, 64, 0.0, &mut rng, 1.0);
        assert_eq!((d.replay_slots.len(), d.fresh), (0, 64));
        assert_eq!(buf.len(), 64);
        let d = fill(&mut buf, 64, 1.0, &mut rng, 2.0);
        assert_eq!(d.fresh, 64);
        assert_eq!(buf.len(), 100, "never grows past capacity");
        // 36 appended, 28 overwrite distinct old slots.
        let all: HashSet<i64> = d.fresh_slots.iter().copied().collect();
        assert_eq!(all.len(), 64);
        assert!(all.iter().all(|&s| (0..100).contains(&s)));
        for _ in 0..20 {
            fill(&mut buf, 64, 0.3, &mut rng, 3.0);
            assert_eq!(buf.len(), 100);
        }
    }

    #[test]
    fn reinit_probability_sets_fresh_fraction() {
        let mut rng = Rng::new(1);
        let mut buf = ReplayBuffer::new(4096);
        fill(&mut buf, 4096, 0.0, &mut rng, 0.0);
        for &rho in &[0.0, 0.05, 0.5, 1.0] {
            let mut fresh = 0usize;
            let trials = 40;
            for _ in 0..trials {
                let d = buf.plan(256, rho, &mut rng);
                assert_eq!(d.replay_slots.len() + d.fresh, 256);
                let uniq: HashSet<i64> = d.replay_slots.iter().copied().collect();
                assert_eq!(uniq.len(), d.replay_slots.len(), "replayed slots are distinct");
                fresh += d.fresh;
            }
            let frac = fresh as f64 / (256 * trials) as f64;
            assert!((frac - rho).abs() < 0.02, "rho {rho}: fresh fraction {frac}");
        }
    }

    #[test]
    fn replayed_chains_return_to_their_slots() {
        let mut rng = Rng::new(2);
        let mut buf = ReplayBuffer::new(8);
        let d0 = buf.plan(8, 0.0, &mut rng);
        let rows = Tensor::arange(16, (Kind::Float, Device::Cpu)).view([8, 2]);
        buf.commit(&d0, &rows, None).unwrap();
        let d = buf.plan(3, 0.0, &mut rng);
        assert_eq!(d.fresh, 0);
        let got = buf.gather(&d).unwrap().unwrap();
        let moved = &got + 100.0;
        buf.commit(&d, &moved, None).unwrap();
        let contents = buf.contents().unwrap();
        for (j, &s) in d.replay_slots.iter().enumerate() {
            assert!(contents.get(s).equal(&moved.get(j as i64)));
        }
    }

    #[test]
    fn capacity_smaller_than_chain_count_keeps_what_fits() {
        let mut rng = Rng::new(3);
        let mut buf = ReplayBuffer::new(10);
        for _ in 0..5 {
            let d = fill(&mut buf, 32, 0.5, &mut rng, 1.0);
            assert!(d.replay_slots.len() + d.fresh_slots.len() <= 10);
            assert_eq!(buf.len(), 10);
        }
        let mut none = ReplayBuffer::new(0);
        let d = fill(&mut none, 16, 0.0, &mut rng, 1.0);
        assert_eq!((d.fresh, none.len()), (16, 0));
    }
}
