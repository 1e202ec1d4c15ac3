//! Data-parallel training through a reduction the host provides (docs/mpi.md).
//!
//! sance stays free of MPI: the host registers a function that sums a float buffer in place
//! over all ranks (`MPI_Allreduce` with `MPI_IN_PLACE`, NCCL, Gloo, …). A training step then
//! makes exactly the same reductions on every rank, in the same order and of the same sizes,
//! whatever happens locally — a rank that fails before or between them still takes part,
//! flagging the step as bad — so that no rank waits forever for another.
use crate::abi::status::{Error, Result, SanceStatus};
use std::ffi::c_void;

/// The host's reduction: sums `buf[..n]` over ranks, in place; 0 on success.
pub type ReduceFn = unsafe extern "C" fn(buf: *mut f32, n: usize, user: *mut c_void) -> i32;

/// The host's `user` pointer, passed back untouched. The host promises it may be used from
/// whichever thread calls sance (the handle serialises calls).
#[derive(Clone, Copy, Debug)]
pub struct UserPtr(pub *mut c_void);
// SAFETY: sance only hands the pointer back to the host's own function.
unsafe impl Send for UserPtr {}
unsafe impl Sync for UserPtr {}

#[derive(Clone, Copy, Debug)]
pub struct Collective {
    pub f: ReduceFn,
    pub user: UserPtr,
    pub rank: u32,
    pub world: u32,
}

impl Collective {
    /// Sums `buf` over ranks. A non-zero return is SANCE_STATUS_COLLECTIVE.
    pub fn reduce(&self, buf: &mut [f32], what: &str) -> Result<()> {
        // SAFETY: the host's function, on a buffer of exactly `buf.len()` floats.
        let rc = unsafe { (self.f)(buf.as_mut_ptr(), buf.len(), self.user.0) };
        if rc != 0 {
            return Err(Error::new(
                SanceStatus::Collective,
                format!(
                    "the host's allreduce returned {rc} during {what} (rank {} of {}); the step was abandoned \
                     and this rank's model left unchanged, but the other ranks may be inside the same \
                     reduction: the communicator is the host's to repair or abort (docs/mpi.md)",
                    self.rank, self.world
                ),
            ));
        }
        Ok(())
    }
}

/// Where a training step stands in its reductions, so that a failed step can still make the
/// ones the other ranks make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No reduction made yet this step: the first (gradient) one is still owed.
    Start,
    /// The gradient reduction passed on every rank: the second (post-update check) is owed.
    Reduced,
    /// Nothing more is owed (the step finished, every rank skipped, or the host's reduction
    /// failed and must not be called again this step).
    Done,
}

/// FNV-1a, 64 bits: a fingerprint that is the same on every machine for the same bytes.
pub fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The registration buffer, the same size on every rank whatever each passed: a count, the
/// world size and its square, the rank and its square, and the 16 nibbles of the fingerprint
/// with their squares. The verdict is a function of the sums alone, so every rank reaches the
/// same one: all ranks passed the same world size when count · Σworld² = (Σworld)², and it is
/// the number of ranks taking part when Σworld = count²; the ranks are 0 .. W − 1 when Σrank and
/// Σrank² are those of 0 .. W − 1 (this catches the mistakes that happen — every rank 0, a rank
/// twice — though not every permutation of duplicates); every rank holds the same θ and config
/// exactly when W · Σx² = (Σx)² for each nibble (small integers, exact in float32 up to 74,000
/// ranks).
pub fn registration_buffer(fingerprint: u64, rank: u32, world: u32) -> Vec<f32> {
    let mut buf = vec![0f32; REGISTRATION_LEN];
    let (w, r) = (world as f32, rank as f32);
    buf[..5].copy_from_slice(&[1.0, w, w * w, r, r * r]);
    for j in 0..16 {
        let x = ((fingerprint >> (4 * j)) & 0xF) as f32;
        buf[5 + j] = x;
        buf[5 + 16 + j] = x * x;
    }
    buf
}

pub(crate) const REGISTRATION_LEN: usize = 5 + 32;

/// The verdict on a summed registration buffer (the same on every rank: it reads only the sums).
pub fn check_registration(buf: &[f32]) -> Result<()> {
    let n = buf[0] as f64;
    let close = |a: f64, b: f64| a.is_finite() && (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    let (sw, sw2) = (buf[1] as f64, buf[2] as f64);
    if !close(n * sw2, sw * sw) || !close(sw, n * n) {
        return Err(Error::invalid(format!(
            "set_allreduce: the {n} ranks taking part did not all pass world_size = {n} (the world sizes passed \
             sum to {sw}): every rank of the communicator must call set_allreduce with the same world_size, the \
             number of ranks"
        )));
    }
    if !close(buf[3] as f64, n * (n - 1.0) / 2.0) || !close(buf[4] as f64, (n - 1.0) * n * (2.0 * n - 1.0) / 6.0) {
        return Err(Error::invalid(format!(
            "set_allreduce: the ranks passed are not 0 .. {} once each",
            n - 1.0
        )));
    }
    let same = (0..16).all(|j| {
        let (s1, s2) = (buf[5 + j] as f64, buf[5 + 16 + j] as f64);
        s2 * n == s1 * s1
    });
    if !same {
        return Err(Error::invalid(
            "set_allreduce: the ranks do not hold the same model: θ, c, the step count, the config (seed, \
             sizes, learning rate, …) or the kind of device differ between ranks. Create every rank's model \
             from the same config and seed, or load the same checkpoint step on every rank",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums registration buffers as the host's reduction would, for `fps[r]` on rank r.
    fn verdicts(fps: &[u64], worlds: &[u32], ranks: &[u32]) -> Vec<bool> {
        let bufs: Vec<Vec<f32>> =
            (0..fps.len()).map(|i| registration_buffer(fps[i], ranks[i], worlds[i])).collect();
        let sum: Vec<f32> = (0..bufs[0].len()).map(|k| bufs.iter().map(|b| b[k]).sum()).collect();
        (0..fps.len()).map(|_| check_registration(&sum).is_ok()).collect()
    }

    #[test]
    fn registration_accepts_identical_ranks_only() {
        let fp = fnv1a(b"theta and config", FNV_OFFSET);
        assert_eq!(verdicts(&[fp, fp, fp], &[3, 3, 3], &[0, 1, 2]), [true; 3]);
        // One rank differs in one bit of its fingerprint: every rank refuses.
        assert_eq!(verdicts(&[fp, fp ^ 0x100, fp], &[3, 3, 3], &[0, 1, 2]), [false; 3]);
        // Two ranks claim rank 1; every rank says 0; one rank thinks the world is larger.
        assert_eq!(verdicts(&[fp, fp, fp], &[3, 3, 3], &[0, 1, 1]), [false; 3]);
        assert_eq!(verdicts(&[fp, fp], &[2, 2], &[0, 0]), [false; 2]);
        assert_eq!(verdicts(&[fp, fp, fp], &[3, 4, 3], &[0, 1, 2]), [false; 3]);
        // World sizes 2, 3, 4 sum to 3²: the square sums tell them apart.
        assert_eq!(verdicts(&[fp, fp, fp], &[2, 3, 4], &[0, 1, 2]), [false; 3]);
        assert_eq!(verdicts(&[fp], &[1], &[0]), [true]);
    }

    #[test]
    fn fingerprints_differ_for_different_bytes() {
        assert_ne!(fnv1a(b"a", FNV_OFFSET), fnv1a(b"b", FNV_OFFSET));
        assert_eq!(fnv1a(b"abc", FNV_OFFSET), fnv1a(b"abc", FNV_OFFSET));
    }
}
