//! E(x) and ∇ₓE(x) of a sance MLP energy in plain Rust.
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
use std::ops::{Add, Div, Mul, Sub};

/// The activation of the hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    LeakyRelu,
}

const LEAKY_SLOPE: f64 = 0.2;

/// The element type the model computes in (its checkpoint's dtype).
pub trait Real:
    Copy
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Send
    + Sync
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f32(x: f32) -> Self;
    fn from_f64(x: f64) -> Self;
    fn to_f32(self) -> f32;
    fn to_f64(self) -> f64;
    fn is_finite(self) -> bool;
    /// Runs `f` on this thread's scratch buffer of at least `len` values (kept between calls,
    /// so that no call allocates or page-faults once the sizes have been seen; one per thread,
    /// so calls on many threads never share one).
    fn with_workspace<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
    /// self·a + b, fused (call only where the CPU has FMA).
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// 1 / (1 + e^(−x)).
    fn sigmoid(self) -> Self;
    /// C[m×n] = A[m×k]·B[k×n] with the given row and column strides (C overwritten).
    ///
    /// # Safety
    /// The pointers and strides must address valid matrices of those sizes.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        c: *mut Self,
        rsc: isize,
    );
}

/// e^x for f32 without a libm call, so that a loop over it vectorises: x = n·ln2 + r with
/// n = round(x/ln2) (the 1.5·2²³ trick: adding it rounds to an integer held in the low
/// mantissa bits), e^r by its Taylor polynomial to r⁶ (|r| ≤ 0.347: error ≤ 1.2e-7 relative),
/// 2ⁿ by building the exponent bits. x is clamped to where e^x is a normal float.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75; // ln 2 split so that n·LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let ni = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    p * f32::from_bits(((ni + 127) as u32) << 23)
}

thread_local! {
    static SCRATCH_F32: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    static SCRATCH_F64: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `f` on `cell`'s buffer grown to `len`, or on a fresh one if the buffer is in use.
fn scratch<T: Copy + Default, R>(
    cell: &std::cell::RefCell<Vec<T>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    // The slice starts on a cache line, as `Aligned` does for the weights.
    let slack = 64 / std::mem::size_of::<T>();
    match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len + slack {
                v.resize(len + slack, T::default());
            }
            let off = v.as_ptr().align_offset(64).min(slack);
            f(&mut v[off..off + len])
        }
        Err(_) => f(&mut vec![T::default(); len]),
    }
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    #[inline(always)]
    fn from_f32(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    fn with_workspace<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        SCRATCH_F32.with(|c| scratch(c, len, f))
    }
    #[inline(always)]
    fn mul_add(self, a: f32, b: f32) -> f32 {
        f32::mul_add(self, a, b)
    }
    #[inline(always)]
    fn sigmoid(self) -> f32 {
        1.0 / (1.0 + exp_f32(-self))
    }
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        c: *mut f32,
        rsc: isize,
    ) {
        matrixmultiply::sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, 1);
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    #[inline(always)]
    fn from_f32(x: f32) -> f64 {
        x as f64
    }
    #[inline(always)]
    fn from_f64(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    fn with_workspace<R>(len: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
        SCRATCH_F64.with(|c| scratch(c, len, f))
    }
    #[inline(always)]
    fn mul_add(self, a: f64, b: f64) -> f64 {
        f64::mul_add(self, a, b)
    }
    #[inline(always)]
    fn sigmoid(self) -> f64 {
        // Double-precision models are for accuracy, not speed: libm's exp.
        1.0 / (1.0 + (-self).exp())
    }
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        c: *mut f64,
        rsc: isize,
    ) {
        matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, 1);
    }
}

/// Values stored from a 64-byte boundary (a cache line), whatever the allocator returned: with
/// rows of 32-byte vector loads, a matrix that starts 16 bytes off a line splits every other
/// load across two lines. Measured: the one-point call took 1.83 or 2.25 µs depending only on
/// where the heap happened to put the weights (the length of the program's path moved it).
#[derive(Debug)]
pub struct Aligned<T> {
    buf: Vec<T>,
    off: usize,
    len: usize,
}

/// A copy aligned in its own buffer: a derived clone would keep `off`, which is right only for
/// the original buffer's address (a cloned net's one-point call ran 10–20% slower, its weights
/// off a line).
impl<T: Clone> Clone for Aligned<T> {
    fn clone(&self) -> Aligned<T> {
        let per_line = 64 / std::mem::size_of::<T>().max(1);
        // The buffer always holds at least a line of padding: something to fill with.
        let fill = self.buf[0].clone();
        let mut buf = vec![fill; self.len + per_line];
        let off = buf.as_ptr().align_offset(64).min(per_line);
        buf[off..off + self.len].clone_from_slice(&self.buf[self.off..self.off + self.len]);
        Aligned { buf, off, len: self.len }
    }
}

impl<T: Real> Aligned<T> {
    pub fn new(v: &[T]) -> Aligned<T> {
        let per_line = 64 / std::mem::size_of::<T>();
        let mut buf = vec![T::ZERO; v.len() + per_line];
        // The buffer never grows, so its address, and this offset, stay.
        let off = buf.as_ptr().align_offset(64).min(per_line);
        buf[off..off + v.len()].copy_from_slice(v);
        Aligned { buf, off, len: v.len() }
    }
}

impl<T> std::ops::Deref for Aligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[self.off..self.off + self.len]
    }
}

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

/// a = act(z), and for SiLU σ(z) into `sig`, kept for [`act_backward`].
#[inline(always)]
fn act_forward<T: Real>(act: Activation, z: &[T], sig: &mut [T], a: &mut [T]) {
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
fn act_backward<T: Real>(act: Activation, z: &[T], sig: &[T], g: &mut [T]) {
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
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
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

/// The batch pass's workspace, carved from one scratch buffer.
pub(crate) struct Work<'a, 'b, T> {
    xt: &'a mut [T],
    zs: &'b mut [&'a mut [T]],
    acts: &'b mut [&'a mut [T]],
    sig: &'b mut [&'a mut [T]],
    gin: &'a mut [T],
}

/// `buf` cut into consecutive slices of the given sizes.
fn carve<'a, T>(mut buf: &'a mut [T], sizes: &[usize]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(sizes.len());
    for &k in sizes {
        let (a, b) = std::mem::take(&mut buf).split_at_mut(k);
        out.push(a);
        buf = b;
    }
    out
}

/// out = init + Σ_r c[r]·M[r, :] for M [c.len() × out.len()] row-major: a matrix–vector
/// product written as a combination of rows, in column blocks of 64 held in registers across
/// all rows (so each element of M is loaded once and the block is stored once), with no sum
/// reordered. 64 floats are eight AVX2 registers: eight independent chains of fused
/// multiply-adds, enough to hide their latency (with 32, four chains, a one-point call took
/// 2.2 µs against 1.85 with 64; docs/eval.md).
#[inline(always)]
fn rows_combination<T: Real, const FMA: bool>(out: &mut [T], init: Option<&[T]>, c: &[T], m: &[T]) {
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

    /// [`Net::point`] by the build for `isa` (the tests run every one the CPU has).
    pub(crate) fn point_isa(
        &self,
        isa: Isa,
        x: &[f32],
        e: Option<&mut f32>,
        g: Option<&mut [f32]>,
        ws: &mut [T],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if isa >= Isa::Avx2 && Isa::best() >= Isa::Avx2 {
                // SAFETY: the CPU has AVX2 and FMA (checked at run time). 512-bit vectors gain
                // nothing here: blocks of 64 floats are four of them, too few chains to hide
                // the latency of their fused multiply-adds.
                return unsafe { self.point_avx2(x, e, g, ws) };
            }
        }
        self.point_impl::<false>(x, e, g, ws)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn point_avx2(&self, x: &[f32], energy: Option<&mut f32>, grad: Option<&mut [f32]>, ws: &mut [T]) {
        self.point_impl::<true>(x, energy, grad, ws)
    }

    /// The one-point pass; `FMA`: fused multiply-adds (only where the CPU has them, else each
    /// would be a libm call).
    #[inline(always)]
    fn point_impl<const FMA: bool>(
        &self,
        x: &[f32],
        energy: Option<&mut f32>,
        grad: Option<&mut [f32]>,
        ws: &mut [T],
    ) {
        let h_total: usize = self.hidden.iter().map(|l| l.width).sum();
        let (zs, rest) = ws.split_at_mut(h_total);
        let (sig, rest) = rest.split_at_mut(h_total);
        let (acts, rest) = rest.split_at_mut(h_total);
        let (xt, tmp) = rest.split_at_mut(self.dim);
        self.inputs(x, xt);
        // Forward: z_l = b_l + Σ_i a[i]·Wᵀ[i,:]; SiLU keeps σ(z) for the way back.
        let mut off = 0;
        for (li, l) in self.hidden.iter().enumerate() {
            let (done, cur) = acts.split_at_mut(off);
            let input: &[T] = if li == 0 { xt } else { &done[off - l.fan_in..] };
            let z = &mut zs[off..off + l.width];
            rows_combination::<T, FMA>(z, Some(&l.b), input, &l.wt);
            act_forward(self.activation, z, &mut sig[off..off + l.width], &mut cur[..l.width]);
            off += l.width;
        }
        let last = self.hidden.last().expect("an MLP has a hidden layer");
        let top = off - last.width;
        if let Some(e) = energy {
            *e = self.energy_out(dot(&self.w_out, &acts[top..off]));
        }
        let Some(grad) = grad else { return };
        // Backward: g = w_out ⊙ act'(z_L), then g_in = Wᵀ·g layer by layer (kept in `acts`,
        // which the forward pass no longer needs).
        acts[top..off].copy_from_slice(&self.w_out);
        act_backward(self.activation, &zs[top..off], &sig[top..off], &mut acts[top..off]);
        let mut off_hi = off;
        for li in (0..self.hidden.len()).rev() {
            let l = &self.hidden[li];
            let lo = off_hi - l.width;
            let gin = &mut tmp[..l.fan_in];
            if l.fan_in < 8 {
                // Few inputs (the first layer of a low-dimensional energy): dots of Wᵀ's rows.
                for (i, gi) in gin.iter_mut().enumerate() {
                    *gi = dot(&l.wt[i * l.width..(i + 1) * l.width], &acts[lo..off_hi]);
                }
            } else {
                rows_combination::<T, FMA>(gin, None, &acts[lo..off_hi], &l.w);
            }
            if li == 0 {
                self.input_grads(gin, grad);
            } else {
                let below = lo - l.fan_in;
                acts[below..lo].copy_from_slice(gin);
                act_backward(self.activation, &zs[below..lo], &sig[below..lo], &mut acts[below..lo]);
            }
            off_hi = lo;
        }
    }

    /// E and ∇ₓE of `n` points (`x` [n × dim]) through GEMM, in blocks of [`BLOCK_ROWS`].
    pub fn batch(&self, x: &[f32], n: usize, energy: Option<&mut [f32]>, grad: Option<&mut [f32]>) {
        self.batch_isa(Isa::best(), x, n, energy, grad)
    }

    /// [`Net::batch`] by the build for `isa` (the tests run every one the CPU has).
    pub(crate) fn batch_isa(
        &self,
        isa: Isa,
        x: &[f32],
        n: usize,
        energy: Option<&mut [f32]>,
        grad: Option<&mut [f32]>,
    ) {
        let isa = isa.min(Isa::best());
        let rows = n.min(BLOCK_ROWS);
        // One scratch buffer carved into: x, then per layer Z, act(Z), σ(Z) (SiLU's, kept from
        // the forward pass for the backward one), then the incoming gradient.
        let widths: Vec<usize> = self.hidden.iter().map(|l| rows * l.width).collect();
        let mut sizes = vec![rows * self.dim];
        for _ in 0..3 {
            sizes.extend(&widths);
        }
        sizes.push(rows * self.hidden.iter().map(|l| l.fan_in).max().unwrap_or(0));
        T::with_workspace(sizes.iter().sum(), |ws| {
            let mut parts = carve(ws, &sizes).into_iter();
            let xt = parts.next().expect("carved");
            let nl = self.hidden.len();
            let mut zs: Vec<&mut [T]> = parts.by_ref().take(nl).collect();
            let mut acts: Vec<&mut [T]> = parts.by_ref().take(nl).collect();
            let mut sig: Vec<&mut [T]> = parts.by_ref().take(nl).collect();
            let gin = parts.next().expect("carved");
            let w = Work { xt, zs: &mut zs, acts: &mut acts, sig: &mut sig, gin };
            // Dispatched here, inside the closure: a closure does not inherit its caller's
            // target features, so the AVX2 build must start within it.
            #[cfg(target_arch = "x86_64")]
            {
                if isa == Isa::Avx512 {
                    // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked at run time).
                    return unsafe { self.batch_avx512(x, n, rows, energy, grad, w) };
                }
                if isa == Isa::Avx2 {
                    // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                    return unsafe { self.batch_avx2(x, n, rows, energy, grad, w) };
                }
            }
            self.batch_blocks::<false>(x, n, rows, energy, grad, w)
        })
    }

    /// [`Net::batch_avx2`] with 512-bit vectors, where the CPU has them: the element-wise work
    /// (σ above all) was over a third of a batch's time at width 128 (perf, before this build).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn batch_avx512(
        &self,
        x: &[f32],
        n: usize,
        rows: usize,
        energy: Option<&mut [f32]>,
        grad: Option<&mut [f32]>,
        w: Work<'_, '_, T>,
    ) {
        self.batch_blocks::<true>(x, n, rows, energy, grad, w)
    }

    /// The batch pass with its element-wise work (bias, activations, σ) compiled for AVX2;
    /// the products are matrixmultiply's, which dispatches on its own.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn batch_avx2(
        &self,
        x: &[f32],
        n: usize,
        rows: usize,
        energy: Option<&mut [f32]>,
        grad: Option<&mut [f32]>,
        w: Work<'_, '_, T>,
    ) {
        self.batch_blocks::<true>(x, n, rows, energy, grad, w)
    }

    /// The batch pass on its carved workspace, `rows` points at a time.
    #[inline(always)]
    fn batch_blocks<const FMA: bool>(
        &self,
        x: &[f32],
        n: usize,
        rows: usize,
        mut energy: Option<&mut [f32]>,
        mut grad: Option<&mut [f32]>,
        w: Work<'_, '_, T>,
    ) {
        let Work { xt, zs, acts, sig, gin } = w;
        let d = self.dim;
        let mut start = 0;
        while start < n {
            let m = (n - start).min(rows);
            self.inputs(&x[start * d..(start + m) * d], xt);
            for (li, l) in self.hidden.iter().enumerate() {
                let (before, this) = acts.split_at_mut(li);
                let input: &[T] = if li == 0 { xt } else { before[li - 1] };
                let z = &mut zs[li];
                // Z = A·Wᵀ + b, then act, row by row. A GEMM with a handful of inputs (the first
                // layer of a low-dimensional energy) is mostly packing: by rows instead.
                let few = l.fan_in < 8;
                if few {
                    for r in 0..m {
                        let zr = &mut z[r * l.width..(r + 1) * l.width];
                        rows_combination::<T, FMA>(
                            zr,
                            Some(&l.b),
                            &input[r * l.fan_in..(r + 1) * l.fan_in],
                            &l.wt,
                        );
                    }
                } else {
                    // SAFETY: A is m × fan_in, W is width × fan_in (read as Wᵀ through its
                    // strides), Z is m × width (all in bounds).
                    unsafe {
                        T::gemm(
                            m,
                            l.fan_in,
                            l.width,
                            input.as_ptr(),
                            l.fan_in as isize,
                            1,
                            l.w.as_ptr(),
                            1,
                            l.fan_in as isize,
                            z.as_mut_ptr(),
                            l.width as isize,
                        );
                    }
                }
                for r in 0..m {
                    let span = r * l.width..(r + 1) * l.width;
                    let zr = &mut z[span.clone()];
                    if !few {
                        for (v, &b) in zr.iter_mut().zip(l.b.iter()) {
                            *v = *v + b;
                        }
                    }
                    act_forward(self.activation, zr, &mut sig[li][span.clone()], &mut this[0][span]);
                }
            }
            let nl = self.hidden.len();
            let h = self.hidden[nl - 1].width;
            if let Some(e) = energy.as_deref_mut() {
                for r in 0..m {
                    e[start + r] = self.energy_out(dot(&self.w_out, &acts[nl - 1][r * h..(r + 1) * h]));
                }
            }
            if let Some(g) = grad.as_deref_mut() {
                for r in 0..m {
                    let gr = &mut acts[nl - 1][r * h..(r + 1) * h];
                    gr.copy_from_slice(&self.w_out);
                    act_backward(
                        self.activation,
                        &zs[nl - 1][r * h..(r + 1) * h],
                        &sig[nl - 1][r * h..(r + 1) * h],
                        gr,
                    );
                }
                for li in (0..nl).rev() {
                    let l = &self.hidden[li];
                    let gi = &mut gin[..m * l.fan_in];
                    // G_in = G·W; with a handful of inputs, by dots of Wᵀ's rows.
                    if l.fan_in < 8 {
                        for r in 0..m {
                            let gr = &acts[li][r * l.width..(r + 1) * l.width];
                            for i in 0..l.fan_in {
                                gi[r * l.fan_in + i] = dot(&l.wt[i * l.width..(i + 1) * l.width], gr);
                            }
                        }
                    } else {
                        // SAFETY: G is m × width, W is width × fan_in, G_in is m × fan_in.
                        unsafe {
                            T::gemm(
                                m,
                                l.width,
                                l.fan_in,
                                acts[li].as_ptr(),
                                l.width as isize,
                                1,
                                l.w.as_ptr(),
                                l.fan_in as isize,
                                1,
                                gi.as_mut_ptr(),
                                l.fan_in as isize,
                            );
                        }
                    }
                    if li == 0 {
                        self.input_grads(gi, &mut g[start * d..(start + m) * d]);
                    } else {
                        let below = &mut acts[li - 1][..m * l.fan_in];
                        below.copy_from_slice(gi);
                        act_backward(
                            self.activation,
                            &zs[li - 1][..m * l.fan_in],
                            &sig[li - 1][..m * l.fan_in],
                            below,
                        );
                    }
                }
            }
            start += m;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_two_ulp_of_libm() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max(((a - b) / b).abs());
            x += 0.001_37;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
    }

    /// A small net with fixed pseudo-random weights.
    fn net<T: Real>(dim: usize, widths: &[usize], act: Activation) -> Net<T> {
        let mut s = 12345u64;
        let mut r = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            T::from_f64(((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.8)
        };
        let mut hidden = Vec::new();
        let mut fan_in = dim;
        for &w in widths {
            let wv: Vec<T> = (0..w * fan_in).map(|_| r()).collect();
            let bv: Vec<T> = (0..w).map(|_| r()).collect();
            hidden.push(Hidden::new(fan_in, w, wv, bv));
            fan_in = w;
        }
        let w_out: Vec<T> = (0..fan_in).map(|_| r()).collect();
        Net { dim, activation: act, hidden, w_out: Aligned::new(&w_out), scaling: None }
    }

    /// E by the definition in f64, for finite differences.
    fn energy_f64(n: &Net<f64>, x: &[f64]) -> f64 {
        let mut a = x.to_vec();
        for l in &n.hidden {
            a = (0..l.width)
                .map(|o| {
                    let z = l.b[o] + (0..l.fan_in).map(|i| l.w[o * l.fan_in + i] * a[i]).sum::<f64>();
                    match n.activation {
                        Activation::Silu => z / (1.0 + (-z).exp()),
                        Activation::LeakyRelu => z.max(0.2 * z),
                    }
                })
                .collect();
        }
        a.iter().zip(n.w_out.iter()).map(|(a, w)| a * w).sum()
    }

    #[test]
    fn point_gradient_matches_finite_differences() {
        for act in [Activation::Silu, Activation::LeakyRelu] {
            for widths in [&[16][..], &[20, 24], &[16, 16, 16]] {
                let n = net::<f64>(3, widths, act);
                let x = [0.3f32, -0.7, 1.1];
                let (mut e, mut g) = (0f32, [0f32; 3]);
                let mut ws = vec![0f64; n.point_workspace()];
                n.point_isa(Isa::Portable, &x, Some(&mut e), Some(&mut g), &mut ws);
                let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                assert!((e as f64 - energy_f64(&n, &xf)).abs() < 1e-6);
                for k in 0..3 {
                    let h = 1e-6;
                    let (mut p, mut m) = (xf.clone(), xf.clone());
                    p[k] += h;
                    m[k] -= h;
                    let fd = (energy_f64(&n, &p) - energy_f64(&n, &m)) / (2.0 * h);
                    assert!(
                        (g[k] as f64 - fd).abs() < 1e-5 * (1.0 + fd.abs()),
                        "{act:?} {widths:?} {k}: {} vs {fd}",
                        g[k]
                    );
                }
            }
        }
    }

    /// E and ∇ by the definition in f64 (forward, then backward by hand), of the network alone.
    fn energy_grad_f64(n: &Net<f64>, z: &[f64]) -> (f64, Vec<f64>) {
        let mut pre = Vec::new();
        let mut a = z.to_vec();
        for l in &n.hidden {
            let zl: Vec<f64> = (0..l.width)
                .map(|o| l.b[o] + (0..l.fan_in).map(|i| l.w[o * l.fan_in + i] * a[i]).sum::<f64>())
                .collect();
            a = zl
                .iter()
                .map(|&v| match n.activation {
                    Activation::Silu => v / (1.0 + (-v).exp()),
                    Activation::LeakyRelu => v.max(0.2 * v),
                })
                .collect();
            pre.push(zl);
        }
        let e = a.iter().zip(n.w_out.iter()).map(|(a, w)| a * w).sum();
        let mut g: Vec<f64> = n.w_out.to_vec();
        for (l, zl) in n.hidden.iter().zip(&pre).rev() {
            for (g, &v) in g.iter_mut().zip(zl) {
                *g *= match n.activation {
                    Activation::Silu => {
                        let s = 1.0 / (1.0 + (-v).exp());
                        s * (1.0 + v * (1.0 - s))
                    }
                    Activation::LeakyRelu => {
                        if v > 0.0 {
                            1.0
                        } else {
                            0.2
                        }
                    }
                };
            }
            g = (0..l.fan_in).map(|i| (0..l.width).map(|o| g[o] * l.w[o * l.fan_in + i]).sum()).collect();
        }
        (e, g)
    }

    /// A net of `T` with a fitted scaling against the definition: E_net((x − shift)/scale) +
    /// Σ ln scale and ∇_z E_net / scale in f64, over every path and build, coordinate by
    /// coordinate within `tol` of the largest |value| of that output.
    fn check_scaling<T: Real>(tol: f64) {
        // Scales from 0.01 to 100 and shifts of either sign, one far from the origin against
        // its scale (|shift|/scale = 1000). 5 inputs: the first layer by rows; 10: by GEMM.
        let all_shift = [0.3, -2.0, 1000.0, 0.05, -40.0, 7.0, 0.0, -0.01, 3.0, 250.0];
        let all_scale = [0.01, 100.0, 1.0, 0.02, 30.0, 0.5, 2.0, 0.01, 100.0, 4.0];
        for (dim, widths) in [(5usize, &[40usize, 33][..]), (10, &[128, 70])] {
            for act in [Activation::Silu, Activation::LeakyRelu] {
                let mut n = net::<T>(dim, widths, act);
                let shift: Vec<T> = all_shift[..dim].iter().map(|&v| T::from_f64(v)).collect();
                let scale: Vec<T> = all_scale[..dim].iter().map(|&v| T::from_f64(v)).collect();
                n.scaling = Some(Scaling::new(shift.clone(), scale.clone()));
                // The same network in f64 (T's values exactly), without the scaling.
                let to64 = |v: &[T]| -> Vec<f64> { v.iter().map(|x| x.to_f64()).collect() };
                let mut hidden = Vec::new();
                for l in &n.hidden {
                    hidden.push(Hidden::new(l.fan_in, l.width, to64(&l.w), to64(&l.b)));
                }
                let plain =
                    Net { dim, activation: act, hidden, w_out: Aligned::new(&to64(&n.w_out)), scaling: None };
                let (shift, scale) = (to64(&shift), to64(&scale));
                let log_jacobian: f64 = scale.iter().map(|s| s.ln()).sum();
                // Points where the data would be: shift + scale·u, u in [-2, 2).
                let pts = 600;
                let x: Vec<f32> = (0..pts * dim)
                    .map(|i| {
                        let u = ((i * 7919) % 113) as f64 / 28.25 - 2.0;
                        (shift[i % dim] + scale[i % dim] * u) as f32
                    })
                    .collect();
                let (mut e0, mut g0) = (vec![0f64; pts], vec![0f64; pts * dim]);
                for i in 0..pts {
                    let z: Vec<f64> =
                        (0..dim).map(|k| (x[i * dim + k] as f64 - shift[k]) / scale[k]).collect();
                    let (e, g) = energy_grad_f64(&plain, &z);
                    e0[i] = e + log_jacobian;
                    for k in 0..dim {
                        g0[i * dim + k] = g[k] / scale[k];
                    }
                }
                let scale_e = e0.iter().fold(0f64, |m, v| m.max(v.abs()));
                let scale_g: Vec<f64> =
                    (0..dim).map(|k| (0..pts).fold(0f64, |m, i| m.max(g0[i * dim + k].abs()))).collect();
                let mut ws = vec![T::ZERO; n.point_workspace()];
                let mut runs: Vec<(String, Vec<f32>, Vec<f32>)> = Vec::new();
                for isa in Isa::available() {
                    let (mut e, mut g) = (vec![0f32; pts], vec![0f32; pts * dim]);
                    n.batch_isa(isa, &x, pts, Some(&mut e), Some(&mut g));
                    runs.push((format!("batch {isa:?}"), e, g));
                    let (mut e, mut g) = (vec![0f32; pts], vec![0f32; pts * dim]);
                    for i in 0..pts {
                        let gi = &mut g[i * dim..(i + 1) * dim];
                        n.point_isa(isa, &x[i * dim..(i + 1) * dim], Some(&mut e[i]), Some(gi), &mut ws);
                    }
                    runs.push((format!("point {isa:?}"), e, g));
                }
                for k in [1, 3, BATCH_FROM, 600] {
                    let (mut e, mut g) = (vec![0f32; pts], vec![0f32; pts * dim]);
                    for c in 0..pts / k {
                        let span = c * k..(c + 1) * k;
                        n.energy_grad(
                            &x[span.start * dim..span.end * dim],
                            k,
                            Some(&mut e[span.clone()]),
                            Some(&mut g[span.start * dim..span.end * dim]),
                        );
                    }
                    runs.push((format!("energy_grad by {k}"), e, g));
                }
                for (path, e, g) in &runs {
                    for i in 0..pts {
                        let d = (e[i] as f64 - e0[i]).abs();
                        assert!(d <= tol * scale_e, "{dim} {act:?} {path} row {i}: E {} vs {}", e[i], e0[i]);
                        for k in 0..dim {
                            let (a, b) = (g[i * dim + k] as f64, g0[i * dim + k]);
                            assert!(
                                (a - b).abs() <= tol * scale_g[k],
                                "{dim} {act:?} {path} row {i} col {k}: ∇ {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn scaling_f64_matches_the_definition() {
        // The outputs are float32: one rounding of an f64 result, 2^-24 relative.
        check_scaling::<f64>(1e-7);
    }

    #[test]
    fn scaling_f32_matches_the_definition() {
        check_scaling::<f32>(1e-5);
    }

    #[test]
    fn batch_and_point_paths_agree() {
        // Few inputs and widths with partial blocks; then many inputs (the GEMM first layer)
        // and full blocks of 64.
        for (dim, widths) in [(5usize, &[40usize, 33][..]), (10, &[128, 70])] {
            for act in [Activation::Silu, Activation::LeakyRelu] {
                let n = net::<f32>(dim, widths, act);
                let pts = 600; // more than one GEMM block
                let x: Vec<f32> = (0..pts * dim).map(|i| ((i * 7919) % 113) as f32 / 40.0 - 1.4).collect();
                // The portable one-point pass against every build of both passes.
                let mut ws = vec![0f32; n.point_workspace()];
                let (mut e0, mut g0) = (vec![0f32; pts], vec![0f32; pts * dim]);
                for i in 0..pts {
                    let g = &mut g0[i * dim..(i + 1) * dim];
                    n.point_isa(
                        Isa::Portable,
                        &x[i * dim..(i + 1) * dim],
                        Some(&mut e0[i]),
                        Some(g),
                        &mut ws,
                    );
                }
                let scale_e = e0.iter().fold(0f32, |m, v| m.max(v.abs()));
                let scale_g = g0.iter().fold(0f32, |m, v| m.max(v.abs()));
                for isa in Isa::available() {
                    let (mut e1, mut g1) = (vec![0f32; pts], vec![0f32; pts * dim]);
                    n.batch_isa(isa, &x, pts, Some(&mut e1), Some(&mut g1));
                    let (mut e2, mut g2) = (vec![0f32; pts], vec![0f32; pts * dim]);
                    for i in 0..pts {
                        let g = &mut g2[i * dim..(i + 1) * dim];
                        n.point_isa(isa, &x[i * dim..(i + 1) * dim], Some(&mut e2[i]), Some(g), &mut ws);
                    }
                    for (e, g, path) in [(&e1, &g1, "batch"), (&e2, &g2, "point")] {
                        for i in 0..pts {
                            assert!((e[i] - e0[i]).abs() <= 1e-5 * scale_e, "{act:?} {isa:?} {path} row {i}");
                            for k in 0..dim {
                                let d = (g[i * dim + k] - g0[i * dim + k]).abs();
                                assert!(d <= 1e-5 * scale_g, "{act:?} {isa:?} {path} row {i} col {k}");
                            }
                        }
                    }
                }
            }
        }
    }
}
