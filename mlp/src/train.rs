//! The training pass: E of n points with what the backward pass needs kept (a [`Tape`]), then
//! the gradients of Σᵣ deᵣ·E(xᵣ) for every parameter, for a caller that gets de = ∂L/∂E from
//! its loss (libsance's NCE loss, src/model/ebm/loss.rs).
//!
//! Forward: Z = A·Wᵀ (GEMM), then bias, activation and σ(Z) in one pass per row. Backward:
//! G_L = de ⊗ w_out ⊙ act′(Z_L), then per layer ∂W = Gᵀ·A_in and ∂b = Σᵣ G (GEMM and a column
//! sum) and G ← (G·W) ⊙ act′(Z_below); ∂w_out = deᵀ·A_L.
use super::batch::hidden_forward;
use super::{act_backward, dot, Isa, Net, Real};
use std::collections::TryReserveError;

/// The forward pass's intermediates for n rows (the inputs, then per hidden layer Z, σ(Z) and
/// act(Z)) and the backward pass's two gradient buffers; kept between calls (they grow to the
/// largest n seen and are reused, so a training loop allocates once).
///
/// Every buffer starts on a cache line ([`Buf`]): a BLAS may sum in an order that depends on
/// its operands' alignment, and two passes of the same parameters on the same points (θ and a
/// snapshot just copied from it) must give the same bits.
#[derive(Debug, Default)]
pub struct Tape<T> {
    n: usize,
    x: Buf<T>,
    z: Vec<Buf<T>>,
    sig: Vec<Buf<T>>,
    a: Vec<Buf<T>>,
    g: Buf<T>,
    gin: Buf<T>,
}

/// A growable buffer whose values start on a 64-byte boundary.
#[derive(Debug, Default)]
pub(crate) struct Buf<T> {
    v: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Real> std::ops::Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.v[self.off..self.off + self.len]
    }
}

impl<T: Real> std::ops::DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.v[self.off..self.off + self.len]
    }
}

/// Gradients in the network's layout: per hidden layer ∂W [width × fan_in] and ∂b [width],
/// then ∂w_out [H].
#[derive(Debug, Default)]
pub struct ParamGrads<T> {
    pub w: Vec<Vec<T>>,
    pub b: Vec<Vec<T>>,
    pub w_out: Vec<T>,
}

/// Makes `b` hold at least `len` values (new ones zero), from a cache line; fails instead of
/// aborting when the memory is not there (a training step of a million rows needs gigabytes).
fn grow<T: Real>(b: &mut Buf<T>, len: usize) -> Result<(), TryReserveError> {
    if b.len >= len {
        return Ok(());
    }
    let slack = 64 / std::mem::size_of::<T>();
    if b.v.len() < len + slack {
        let mut v = Vec::new();
        v.try_reserve_exact(len + slack)?;
        v.resize(len + slack, T::ZERO);
        let off = v.as_ptr().align_offset(64).min(slack);
        v[off..off + b.len].copy_from_slice(&b.v[b.off..b.off + b.len]);
        *b = Buf { v, off, len: b.len };
    }
    b.len = len;
    Ok(())
}

impl<T: Real> Tape<T> {
    /// Sizes every buffer for `n` rows of `net` (forward and backward), or fails leaving the
    /// tape usable.
    fn reserve(&mut self, net: &Net<T>, n: usize) -> Result<(), TryReserveError> {
        let nl = net.hidden.len();
        grow(&mut self.x, n * net.dim)?;
        for v in [&mut self.z, &mut self.sig, &mut self.a] {
            v.resize_with(nl, Buf::default);
        }
        for (li, l) in net.hidden.iter().enumerate() {
            grow(&mut self.z[li], n * l.width)?;
            grow(&mut self.sig[li], n * l.width)?;
            grow(&mut self.a[li], n * l.width)?;
        }
        let widest = net.hidden.iter().map(|l| l.width.max(l.fan_in)).max().unwrap_or(0);
        grow(&mut self.g, n * widest)?;
        grow(&mut self.gin, n * widest)
    }
}

impl<T: Real> Net<T> {
    /// E of the `n` points `x` [n × dim] into `energy` [n], keeping in `tape` what
    /// [`Net::param_grads`] needs.
    /// Fails, computing nothing, when the tape's memory cannot be had.
    pub fn forward_tape(
        &self,
        x: &[f32],
        n: usize,
        tape: &mut Tape<T>,
        energy: &mut [f32],
    ) -> Result<(), TryReserveError> {
        tape.reserve(self, n)?;
        #[cfg(target_arch = "x86_64")]
        {
            if Isa::best() >= Isa::Avx2 {
                // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                unsafe { self.forward_tape_avx2(x, n, tape, energy) };
                return Ok(());
            }
        }
        self.forward_tape_impl::<false>(x, n, tape, energy);
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_tape_avx2(&self, x: &[f32], n: usize, tape: &mut Tape<T>, energy: &mut [f32]) {
        self.forward_tape_impl::<true>(x, n, tape, energy)
    }

    /// `FMA`: fused multiply-adds in the by-rows products (only where the CPU has them).
    #[inline(always)]
    fn forward_tape_impl<const FMA: bool>(
        &self,
        x: &[f32],
        n: usize,
        tape: &mut Tape<T>,
        energy: &mut [f32],
    ) {
        let nl = self.hidden.len();
        tape.n = n;
        self.inputs(&x[..n * self.dim], &mut tape.x);
        for (li, l) in self.hidden.iter().enumerate() {
            let (below, this) = tape.a.split_at_mut(li);
            let input: &[T] = if li == 0 { &tape.x } else { &below[li - 1] };
            hidden_forward::<T, FMA>(
                self.activation,
                l,
                input,
                n,
                &mut tape.z[li],
                &mut tape.sig[li],
                &mut this[0],
            );
        }
        let h = self.hidden[nl - 1].width;
        for (r, e) in energy[..n].iter_mut().enumerate() {
            *e = self.energy_out(dot(&self.w_out, &tape.a[nl - 1][r * h..(r + 1) * h]));
        }
    }

    /// The gradients of Σᵣ de[r]·E(xᵣ) for every parameter into `out`, from the tape of the
    /// last [`Net::forward_tape`] (`de` has one value per row of it).
    pub fn param_grads(&self, tape: &mut Tape<T>, de: &[f32], out: &mut ParamGrads<T>) {
        #[cfg(target_arch = "x86_64")]
        {
            if Isa::best() >= Isa::Avx2 {
                // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                return unsafe { self.param_grads_avx2(tape, de, out) };
            }
        }
        self.param_grads_impl(tape, de, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn param_grads_avx2(&self, tape: &mut Tape<T>, de: &[f32], out: &mut ParamGrads<T>) {
        self.param_grads_impl(tape, de, out)
    }

    #[inline(always)]
    fn param_grads_impl(&self, tape: &mut Tape<T>, de: &[f32], out: &mut ParamGrads<T>) {
        let (n, nl) = (tape.n, self.hidden.len());
        let h = self.hidden[nl - 1].width;
        out.w.resize_with(nl, Vec::new);
        out.b.resize_with(nl, Vec::new);
        let de = &de[..n];
        // ∂w_out[j] = Σᵣ deᵣ·A_L[r, j].
        out.w_out.clear();
        out.w_out.resize(h, T::ZERO);
        for (r, d) in de.iter().map(|&v| T::from_f32(v)).enumerate() {
            for (o, &a) in out.w_out.iter_mut().zip(&tape.a[nl - 1][r * h..(r + 1) * h]) {
                *o = *o + d * a;
            }
        }
        // G_L = de ⊗ w_out ⊙ act′(Z_L).
        for (r, d) in de.iter().map(|&v| T::from_f32(v)).enumerate() {
            let span = r * h..(r + 1) * h;
            let gr = &mut tape.g[span.clone()];
            for (g, &w) in gr.iter_mut().zip(self.w_out.iter()) {
                *g = d * w;
            }
            act_backward(self.activation, &tape.z[nl - 1][span.clone()], &tape.sig[nl - 1][span], gr);
        }
        for li in (0..nl).rev() {
            let l = &self.hidden[li];
            let input: &[T] = if li == 0 { &tape.x } else { &tape.a[li - 1] };
            let g = &tape.g[..n * l.width];
            let dw = &mut out.w[li];
            dw.clear();
            dw.resize(l.width * l.fan_in, T::ZERO);
            // SAFETY: Gᵀ is width × n (G n × width read through its strides), A_in is
            // n × fan_in, ∂W is width × fan_in.
            unsafe {
                T::gemm(
                    l.width,
                    n,
                    l.fan_in,
                    g.as_ptr(),
                    1,
                    l.width as isize,
                    input.as_ptr(),
                    l.fan_in as isize,
                    1,
                    dw.as_mut_ptr(),
                    l.fan_in as isize,
                );
            }
            let db = &mut out.b[li];
            db.clear();
            db.resize(l.width, T::ZERO);
            for r in 0..n {
                for (o, &v) in db.iter_mut().zip(&g[r * l.width..(r + 1) * l.width]) {
                    *o = *o + v;
                }
            }
            if li > 0 {
                let gin = &mut tape.gin[..n * l.fan_in];
                // SAFETY: G is n × width, W is width × fan_in, G_in is n × fan_in.
                unsafe {
                    T::gemm(
                        n,
                        l.width,
                        l.fan_in,
                        g.as_ptr(),
                        l.width as isize,
                        1,
                        l.w.as_ptr(),
                        l.fan_in as isize,
                        1,
                        gin.as_mut_ptr(),
                        l.fan_in as isize,
                    );
                }
                act_backward(
                    self.activation,
                    &tape.z[li - 1][..n * l.fan_in],
                    &tape.sig[li - 1][..n * l.fan_in],
                    gin,
                );
                std::mem::swap(&mut tape.g, &mut tape.gin);
            }
        }
    }
}
