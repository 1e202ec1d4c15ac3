//! The kernels both passes share: the activation forward and backward, dot, rows_combination.
use super::{Activation, Real, LEAKY_SLOPE};

/// a = act(z), and for SiLU σ(z) into `sig`, kept for [`act_backward`].
#[inline(always)]
pub(super) fn act_forward<T: Real>(act: Activation, z: &[T], sig: &mut [T], a: &mut [T]) {
    match act {
        Activation::Silu => {
            for ((a, s), &z) in a.iter_mut().zip(sig.iter_mut()).zip(z) {
                *s = z.sigmoid();
                *a = z * *s;
            }
        }
        Activation::LeakyRelu => {
            let s = T::from_f64(LEAKY_SLOPE);
            for (a, &z) in a.iter_mut().zip(z) {
                let sz = s * z;
                *a = if z > sz { z } else { sz };
            }
        }
    }
}

/// g ← g ⊙ act'(z), with SiLU's σ(z) from [`act_forward`].
#[inline(always)]
pub(super) fn act_backward<T: Real>(act: Activation, z: &[T], sig: &[T], g: &mut [T]) {
    match act {
        Activation::Silu => {
            // d/dz z·σ(z) = σ(z)·(1 + z·(1 − σ(z))).
            for ((g, &z), &s) in g.iter_mut().zip(z).zip(sig) {
                *g = *g * (s * (T::ONE + z * (T::ONE - s)));
            }
        }
        Activation::LeakyRelu => {
            // As libtorch's leaky_relu_backward: slope where z ≤ 0.
            let s = T::from_f64(LEAKY_SLOPE);
            for (g, &z) in g.iter_mut().zip(z) {
                *g = if z > T::ZERO { *g } else { *g * s };
            }
        }
    }
}

/// Σ a[i]·b[i] with eight partial sums, so that the loop vectorises.
#[inline(always)]
pub(super) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] = acc[j] + x[j] * y[j];
        }
    }
    let mut s = T::ZERO;
    for (x, y) in ra.iter().zip(rb) {
        s = s + *x * *y;
    }
    let mut t = T::ZERO;
    for v in acc {
        t = t + v;
    }
    t + s
}

/// out = init + Σ_r c[r]·M[r, :] for M [c.len() × out.len()] row-major: a matrix–vector
/// product written as a combination of rows, in column blocks of 64 held in registers across
/// all rows (so each element of M is loaded once and the block is stored once), with no sum
/// reordered. 64 floats are eight AVX2 registers: eight independent chains of fused
/// multiply-adds, enough to hide their latency (with 32, four chains, a one-point call took
/// 2.2 µs against 1.85 with 64; docs/eval.md).
#[inline(always)]
pub(super) fn rows_combination<T: Real, const FMA: bool>(
    out: &mut [T],
    init: Option<&[T]>,
    c: &[T],
    m: &[T],
) {
    const B: usize = 64;
    let w = out.len();
    let full = w - w % B;
    let mut c0 = 0;
    while c0 < full {
        let mut acc = [T::ZERO; B];
        if let Some(b) = init {
            acc.copy_from_slice(&b[c0..c0 + B]);
        }
        for (r, &cr) in c.iter().enumerate() {
            let row: &[T; B] = m[r * w + c0..r * w + c0 + B].try_into().expect("a block of B");
            for j in 0..B {
                acc[j] = if FMA { cr.mul_add(row[j], acc[j]) } else { acc[j] + cr * row[j] };
            }
        }
        out[c0..c0 + B].copy_from_slice(&acc);
        c0 += B;
    }
    if full < w {
        let tail = &mut out[full..];
        match init {
            Some(b) => tail.copy_from_slice(&b[full..]),
            None => tail.fill(T::ZERO),
        }
        for (r, &cr) in c.iter().enumerate() {
            for (o, &v) in tail.iter_mut().zip(&m[r * w + full..(r + 1) * w]) {
                *o = if FMA { cr.mul_add(v, *o) } else { *o + cr * v };
            }
        }
    }
}
