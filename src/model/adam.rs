//! Adam with decoupled weight decay (AdamW), kept in the open so that checkpoints can hold
//! its moments and a rejected step can leave them untouched.
//!
//! Update, per tensor, with t counted from 1:
//!   m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²
//!   p ← p·(1 − lr·wd) − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)
//! which is torch.optim.AdamW's formula (torch.optim.Adam when wd = 0).
use crate::model::flat;
use tch::{Device, Kind, TchError, Tensor};

pub(crate) const EPS: f64 = 1e-8;

#[derive(Debug)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    /// Number of updates taken.
    pub t: u64,
    /// The moments of every tensor end to end (crate::model::flat), in the caller's order.
    pub m_flat: Tensor,
    pub v_flat: Tensor,
    /// Views of `m_flat` and `v_flat`, one per tensor (checkpoints read and write these).
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl Adam {
    /// Zero moments for tensors of the given shapes.
    pub fn new(
        shapes: &[Vec<i64>],
        (kind, device): (Kind, Device),
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
    ) -> Result<Adam, TchError> {
        let (m_flat, m) = flat::zeros(shapes, kind, device)?;
        let (v_flat, v) = flat::zeros(shapes, kind, device)?;
        Ok(Adam { lr, beta1, beta2, weight_decay, t: 0, m_flat, v_flat, m, v })
    }

    /// One update of the flat parameters `p` by the flat gradient `g` (same layout as the
    /// moments); weight decay applies to the first `decayed` entries only. Element by element
    /// this is the per-tensor formula above, in the same order of operations. On an error
    /// (libtorch could not allocate, say) `p` or the moments may be half updated: the caller
    /// restores its backup.
    pub fn step(&mut self, p: &mut Tensor, g: &Tensor, decayed: i64) -> Result<(), TchError> {
        crate::model::no_grad(|| {
            self.t += 1;
            let bc1 = 1.0 - self.beta1.powi(self.t as i32);
            let bc2 = 1.0 - self.beta2.powi(self.t as i32);
            let _ = self.m_flat.f_lerp_(g, 1.0 - self.beta1)?;
            let _ = self.v_flat.f_mul_scalar_(self.beta2)?;
            let _ = self.v_flat.f_addcmul_(&g.f_mul_scalar(1.0 - self.beta2)?, g)?;
            let denom = self.v_flat.f_div_scalar(bc2)?.f_sqrt()?.f_add_scalar(EPS)?;
            if decayed > 0 && self.weight_decay > 0.0 {
                let _ = p.f_narrow(0, 0, decayed)?.f_mul_scalar_(1.0 - self.lr * self.weight_decay)?;
            }
            let _ = p.f_sub_(&self.m_flat.f_div(&denom)?.f_mul_scalar(self.lr / bc1)?)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scalar reference implementation in f64, written out independently.
    #[test]
    fn matches_scalar_reference() {
        let (lr, b1, b2, wd) = (0.01, 0.9, 0.99, 0.1);
        // Two entries, the second without weight decay (as c in the trainer).
        let mut p = Tensor::from_slice(&[1.0f64, -2.0]);
        let mut adam = Adam::new(&[vec![1], vec![1]], (Kind::Double, Device::Cpu), lr, b1, b2, wd).unwrap();
        let (mut rp, mut rm, mut rv) = ([1.0f64, -2.0], [0.0f64; 2], [0.0f64; 2]);
        for t in 1..=5 {
            let gv = [0.3 * t as f64, -0.7 + t as f64 * 0.1];
            let g = Tensor::from_slice(&gv);
            adam.step(&mut p, &g, 1).unwrap();
            for i in 0..2 {
                rm[i] = b1 * rm[i] + (1.0 - b1) * gv[i];
                rv[i] = b2 * rv[i] + (1.0 - b2) * gv[i] * gv[i];
                let mh = rm[i] / (1.0 - b1.powi(t));
                let vh = rv[i] / (1.0 - b2.powi(t));
                let decay = if i == 0 { 1.0 - lr * wd } else { 1.0 };
                rp[i] = rp[i] * decay - lr * mh / (vh.sqrt() + EPS);
            }
        }
        let got = Vec::<f64>::try_from(&p).unwrap();
        for i in 0..2 {
            assert!((got[i] - rp[i]).abs() < 1e-12, "{got:?} vs {rp:?}");
        }
        assert_eq!(adam.t, 5);
    }
}
