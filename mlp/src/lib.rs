//! sance-mlp: E(x) and ∇ₓE(x) of a sance MLP energy in plain Rust — libsance_eval's passes and
//! libsance's CPU fast path for the sampler (src/model/net.rs), one copy of the code.
//!
//! The network is libsance's (src/model/net.rs): data_dim → H × L → 1, each hidden layer
//! `a = act(W·a + b)`, the last layer `E = w·a` without bias, act SiLU or LeakyReLU(0.2);
//! with a fitted [`Scaling`] of the data (format version 4) the network sees standardised
//! points, and E and ∇ₓE are returned in the user's coordinates.
//!
//! Two paths give the same numbers to rounding:
//! - one point at a time ([`Net::point`]) below [`BATCH_FROM`] points, the inner loop of a
//!   simulation: each product is a combination of the matrix's rows (`z += a[i]·Wᵀ[i,:]`) in
//!   column blocks held in registers ([`rows_combination`]), which the compiler vectorises
//!   without reordering any sum; the pass is compiled a second time with AVX2 and FMA and
//!   chosen at run time (the crate is built for baseline x86-64);
//! - batches ([`Net::batch`]) through `matrixmultiply`'s GEMM (packed, cache-blocked, with its
//!   own AVX2/AVX-512 kernels), the formulation of libsance's hand-written backward pass, the
//!   element-wise work compiled for AVX-512 or AVX2 as the CPU allows.
//!
//! SiLU needs exp; libm's `expf` is a call per element that does not vectorise and would cost
//! about half of a one-point call at width 128, so [`Real::sigmoid`] uses a branch-free exp
//! (range reduction to |r| ≤ ln2/2 and a degree-6 polynomial, within 2.5e-7 of libm) that does,
//! and σ(z) is kept from the forward pass for the backward one.
//!
//! Tried and dropped: the backward pass as dots of Wᵀ's rows, last row first, so that the part
//! of Wᵀ the forward pass left in L1 is read again from there — written with a 4 × 16
//! accumulator the compiler did not vectorise, and the call took 4× longer.
mod batch;
pub mod blas;
mod kernels;
mod point;
mod real;
#[cfg(test)]
mod tests;
mod train;

pub use real::{exp_f32, Aligned, Real};
pub use train::{ParamGrads, Tape};

// The kernels both passes share (point.rs and batch.rs import them from here, as `super::`).
use kernels::{act_backward, act_forward, dot, rows_combination};

/// The activation of the hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    LeakyRelu,
}

const LEAKY_SLOPE: f64 = 0.2;

/// One hidden layer.
#[derive(Clone, Debug)]
pub struct Hidden<T> {
    pub fan_in: usize,
    pub width: usize,
    /// W, [width × fan_in] row-major (as stored).
    pub w: Aligned<T>,
    /// Wᵀ, [fan_in × width] row-major.
    pub wt: Aligned<T>,
    pub b: Aligned<T>,
}

impl<T: Real> Hidden<T> {
    pub fn new(fan_in: usize, width: usize, w: Vec<T>, b: Vec<T>) -> Hidden<T> {
        let mut wt = vec![T::ZERO; w.len()];
        for o in 0..width {
            for i in 0..fan_in {
                wt[i * width + o] = w[o * fan_in + i];
            }
        }
        Hidden { fan_in, width, w: Aligned::new(&w), wt: Aligned::new(&wt), b: Aligned::new(&b) }
    }
}

/// The model's fitted scaling of the data (checkpoint format version 4): the network works in
/// z = (x − shift) / scale, element-wise, and in the user's coordinates
/// E(x) = E_net(z) + Σᵢ ln scaleᵢ (the log-Jacobian) and ∇ₓE(x) = ∇_z E_net(z) / scale.
///
/// Applied as written, around the network, as libsance does, rather than folded into the first
/// layer (W₁/scale, b₁ − W₁·(shift/scale)). Folding would save nothing measurable — this costs
/// D subtractions and divisions per point in and D divisions out, against the network's
/// D·H + H² + … multiply-adds (3 → 128 → 128 → 1: 1.47 µs per point with or without a scaling,
/// 0.93 ms per 1,000) — and in float32 it loses digits on data far from the origin against
/// its spread: the first layer then sums terms of size |W₁·x/scale| that cancel against b₁'
/// down to |W₁·z|. With |shift|/scale = 1000 on one coordinate the folded float32 net was off
/// the f64 definition by 2.5e-5 to 6e-5 of the largest output, over the 1e-5 that libsance
/// and this crate are held to; applied as written, by under 1e-6 (the tests below).
/// Σ ln scale is added in f64 to each energy before its one rounding to float32 (the network
/// has no last bias to hold it, and one rounding instead of two is free).
#[derive(Clone, Debug)]
pub struct Scaling<T> {
    /// shift [dim].
    pub shift: Vec<T>,
    /// scale [dim], each finite and > 0.
    pub scale: Vec<T>,
    /// Σᵢ ln scaleᵢ.
    pub log_jacobian: f64,
}

impl<T: Real> Scaling<T> {
    pub fn new(shift: Vec<T>, scale: Vec<T>) -> Scaling<T> {
        let log_jacobian = scale.iter().map(|s| s.to_f64().ln()).sum();
        Scaling { shift, scale, log_jacobian }
    }
}

/// A whole energy network.
#[derive(Clone, Debug)]
pub struct Net<T> {
    pub dim: usize,
    pub activation: Activation,
    pub hidden: Vec<Hidden<T>>,
    /// The last layer's weight [H] (no bias).
    pub w_out: Aligned<T>,
    /// The fitted scaling of the data; None: the identity (checkpoints before version 4, or a
    /// model that fitted none).
    pub scaling: Option<Scaling<T>>,
}

/// Below this many points a call runs point by point; from it on, through GEMM. Measured
/// through the C API on a 3 → 128 → 128 → 1 energy (two cores with AVX-512): 1.82 µs per point
/// one at a time, through GEMM 1.85 at 8 points, 1.70 at 9, 1.00 at 16.
pub(crate) const BATCH_FROM: usize = 8;
/// Points per GEMM block: bounds the workspace (about 3·L·H values per point) whatever n is.
const BLOCK_ROWS: usize = 512;

impl<T: Real> Net<T> {
    /// The network's inputs `xt` from the user's points `x` (as many whole points as the
    /// shorter holds): z = (x − shift) / scale, or x itself without a scaling.
    #[inline(always)]
    fn inputs(&self, x: &[f32], xt: &mut [T]) {
        match &self.scaling {
            None => {
                for (t, &v) in xt.iter_mut().zip(x) {
                    *t = T::from_f32(v);
                }
            }
            Some(s) => {
                for (tr, xr) in xt.chunks_exact_mut(self.dim).zip(x.chunks_exact(self.dim)) {
                    for (((t, &v), &sh), &sc) in tr.iter_mut().zip(xr).zip(&s.shift).zip(&s.scale) {
                        *t = (T::from_f32(v) - sh) / sc;
                    }
                }
            }
        }
    }

    /// ∇ₓE into `g` from the network's ∇_z `gz` (whole points): ∇_z / scale.
    #[inline(always)]
    fn input_grads(&self, gz: &[T], g: &mut [f32]) {
        match &self.scaling {
            None => {
                for (o, &v) in g.iter_mut().zip(gz) {
                    *o = v.to_f32();
                }
            }
            Some(s) => {
                for (or, gr) in g.chunks_exact_mut(self.dim).zip(gz.chunks_exact(self.dim)) {
                    for ((o, &v), &sc) in or.iter_mut().zip(gr).zip(&s.scale) {
                        *o = (v / sc).to_f32();
                    }
                }
            }
        }
    }

    /// E(x) from the network's E_net(z): plus the log-Jacobian, in f64, rounded once.
    #[inline(always)]
    fn energy_out(&self, e_net: T) -> f32 {
        match &self.scaling {
            None => e_net.to_f32(),
            Some(s) => (e_net.to_f64() + s.log_jacobian) as f32,
        }
    }

    /// Values of workspace a one-point pass needs.
    pub fn point_workspace(&self) -> usize {
        let h: usize = self.hidden.iter().map(|l| l.width).sum();
        3 * h + self.hidden.iter().map(|l| l.width.max(l.fan_in)).max().unwrap_or(0) + self.dim
    }

    /// E(x) and ∇ₓE(x) of one point: `x` [dim] → `energy`, `grad` [dim] (each when asked).
    /// `ws` holds at least [`Net::point_workspace`] values. Dispatches to the AVX2+FMA build of
    /// the same code when the CPU has it.
    pub fn point(&self, x: &[f32], energy: Option<&mut f32>, grad: Option<&mut [f32]>, ws: &mut [T]) {
        self.point_isa(Isa::best(), x, energy, grad, ws)
    }

    /// E and ∇ₓE of `n` points (`x` [n × dim]) through GEMM, in blocks of [`BLOCK_ROWS`].
    pub fn batch(&self, x: &[f32], n: usize, energy: Option<&mut [f32]>, grad: Option<&mut [f32]>) {
        self.batch_isa(Isa::best(), x, n, energy, grad)
    }

    /// E and ∇ₓE of `n` points, by whichever path is faster for `n`.
    pub fn energy_grad(&self, x: &[f32], n: usize, energy: Option<&mut [f32]>, grad: Option<&mut [f32]>) {
        if n >= BATCH_FROM {
            return self.batch(x, n, energy, grad);
        }
        let d = self.dim;
        let (mut energy, mut grad) = (energy, grad);
        T::with_workspace(self.point_workspace(), |ws| {
            for i in 0..n {
                let e = energy.as_deref_mut().map(|e| &mut e[i]);
                let g = grad.as_deref_mut().map(|g| &mut g[i * d..(i + 1) * d]);
                self.point(&x[i * d..(i + 1) * d], e, g, ws);
            }
        })
    }
}

/// The builds of the passes, by the vector instructions they use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    Portable,
    Avx2,
    Avx512,
}

impl Isa {
    /// The best this CPU runs (AVX2 means AVX2 and FMA), found once.
    pub(crate) fn best() -> Isa {
        use std::sync::OnceLock;
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    return if is_x86_feature_detected!("avx512f") { Isa::Avx512 } else { Isa::Avx2 };
                }
            }
            Isa::Portable
        })
    }

    /// Every build this CPU runs.
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|&i| i <= Isa::best()).collect()
    }
}
