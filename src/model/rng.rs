//! Per-handle randomness.
//!
//! libtorch has one process-wide generator and tch exposes no per-generator API, so every
//! handle owns a small counter-free PRNG (xoshiro256**) and each random tensor is drawn by
//! reseeding the global generator from it under a process-wide lock. A handle's random
//! stream therefore depends only on its own seed and calls, whatever other handles do.
use parking_lot::Mutex;
use tch::{Device, Kind, TchError, Tensor};

static TORCH_RNG: Mutex<()> = Mutex::new(());

/// xoshiro256** seeded through SplitMix64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        Rng { s: [splitmix64(&mut x), splitmix64(&mut x), splitmix64(&mut x), splitmix64(&mut x)] }
    }

    /// The full state, for checkpoints.
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// A stream restored from [`Rng::state`]. The all-zero state is a fixed point of
    /// xoshiro and is refused.
    pub fn from_state(s: [u64; 4]) -> Option<Rng> {
        (s != [0; 4]).then_some(Rng { s })
    }

    /// A new stream derived from this one's state and `tag`, without drawing from this one:
    /// for work that must be reproducible for a model yet leave its stream as it is.
    pub fn derived(&self, tag: u64) -> Rng {
        let mut x = tag;
        for w in self.s {
            x = splitmix64(&mut (x ^ w));
        }
        Rng::new(x)
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n), n > 0 (Lemire's method, unbiased).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            let lo = m as u64;
            if lo >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// Standard normal (Box–Muller; one of the pair is discarded for simplicity).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Runs `f` with libtorch's global generator seeded from this stream, holding the lock
    /// that keeps other handles from drawing in between.
    fn with_torch_seed<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let seed = (self.next_u64() >> 1) as i64;
        let _guard = TORCH_RNG.lock();
        tch::manual_seed(seed);
        f()
    }

    /// N(0, 1) tensor of the given shape (an allocation failure is an error, not a panic).
    pub fn randn(&mut self, shape: &[i64], kind: Kind, device: Device) -> Result<Tensor, TchError> {
        self.with_torch_seed(|| Tensor::f_randn(shape, (kind, device)))
    }

    /// U[0, 1) tensor of the given shape.
    pub fn rand(&mut self, shape: &[i64], kind: Kind, device: Device) -> Result<Tensor, TchError> {
        self.with_torch_seed(|| Tensor::f_rand(shape, (kind, device)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_in_range_and_covers() {
        let mut r = Rng::new(7);
        let mut seen = [0u32; 5];
        for _ in 0..5000 {
            seen[r.below(5) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 850 && c < 1150), "{seen:?}");
    }

    #[test]
    fn torch_draws_depend_only_on_own_stream() {
        let mut a = Rng::new(1);
        let mut b = Rng::new(2);
        let a1 = a.randn(&[4], Kind::Float, Device::Cpu).unwrap();
        let _ = b.randn(&[4], Kind::Float, Device::Cpu).unwrap();
        let a2 = a.randn(&[4], Kind::Float, Device::Cpu).unwrap();
        let mut a_alone = Rng::new(1);
        assert!(a_alone.randn(&[4], Kind::Float, Device::Cpu).unwrap().equal(&a1));
        assert!(a_alone.randn(&[4], Kind::Float, Device::Cpu).unwrap().equal(&a2));
    }
}
