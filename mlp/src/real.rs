//! The element types a model computes in ([`Real`]: f32, f64), their scratch, [`Aligned`] weights.
use std::ops::{Add, Div, Mul, Sub};

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
        if let Some(f) = crate::blas::sgemm() {
            return crate::blas::row_major(f, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc);
        }
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
