//! The batched pass behind [`Net::batch`]: GEMM in blocks of points on a carved workspace.
use super::{
    act_backward, act_forward, dot, rows_combination, Activation, Hidden, Isa, Net, Real, BLOCK_ROWS,
};

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

/// One hidden layer's forward pass on `m` rows: Z = A·Wᵀ + b, then act(Z) into `a` and, for
/// SiLU, σ(Z) into `sig`, row by row (the batch pass and the training pass share it). A GEMM
/// with a handful of inputs (the first layer of a low-dimensional energy) is mostly packing:
/// that product goes by rows instead.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn hidden_forward<T: Real, const FMA: bool>(
    activation: Activation,
    l: &Hidden<T>,
    input: &[T],
    m: usize,
    z: &mut [T],
    sig: &mut [T],
    a: &mut [T],
) {
    let few = l.fan_in < 8;
    if few {
        for r in 0..m {
            let zr = &mut z[r * l.width..(r + 1) * l.width];
            rows_combination::<T, FMA>(zr, Some(&l.b), &input[r * l.fan_in..(r + 1) * l.fan_in], &l.wt);
        }
    } else {
        // SAFETY: A is m × fan_in, W is width × fan_in (read as Wᵀ through its strides), Z is
        // m × width (all in bounds).
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
        act_forward(activation, zr, &mut sig[span.clone()], &mut a[span]);
    }
}

impl<T: Real> Net<T> {
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
                hidden_forward::<T, FMA>(self.activation, l, input, m, zs[li], sig[li], this[0]);
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
}
