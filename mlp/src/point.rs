//! The one-point pass behind [`Net::point`], portable and AVX2+FMA builds, by combinations of rows.
use super::{act_backward, act_forward, dot, rows_combination, Isa, Net, Real};

impl<T: Real> Net<T> {
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
}
