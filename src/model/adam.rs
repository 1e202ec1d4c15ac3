//! Adam with decoupled weight decay (AdamW), kept in the open so that checkpoints can hold
//! its moments and a rejected step can leave them untouched.
//!
//! Update, per tensor, with t counted from 1:
//!   m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²
//!   p ← p·(1 − lr·wd) − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)
//! which is torch.optim.AdamW's formula (torch.optim.Adam when wd = 0).
use tch::{TchError, Tensor};

pub(crate) const EPS: f64 = 1e-8;

#[derive(Debug)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    /// Number of updates taken.
    pub t: u64,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl Adam {
    pub fn new(params: &[&Tensor], lr: f64, beta1: f64, beta2: f64, weight_decay: f64) -> Adam {
        let zeros = |p: &&Tensor| p.zeros_like().detach();
        Adam {
            lr,
            beta1,
            beta2,
            weight_decay,
            t: 0,
            m: params.iter().map(zeros).collect(),
            v: params.iter().map(zeros).collect(),
        }
    }

    /// One update. `decay[i]` says whether weight decay applies to `params[i]`. On an error
    /// (libtorch could not allocate, say) some tensors may be updated: the caller restores
    /// its backup.
    pub fn step(&mut self, params: &mut [&mut Tensor], grads: &[Tensor], decay: &[bool]) -> Result<(), TchError> {
        tch::no_grad(|| {
            self.t += 1;
            let bc1 = 1.0 - self.beta1.powi(self.t as i32);
            let bc2 = 1.0 - self.beta2.powi(self.t as i32);
            for i in 0..params.len() {
                let g = &grads[i];
                let m = &mut self.m[i];
                let v = &mut self.v[i];
                let _ = m.f_lerp_(g, 1.0 - self.beta1)?;
                let _ = v.f_mul_scalar_(self.beta2)?;
                let _ = v.f_addcmul_(&g.f_mul_scalar(1.0 - self.beta2)?, g)?;
                let denom = v.f_div_scalar(bc2)?.f_sqrt()?.f_add_scalar(EPS)?;
                let p = &mut params[i];
                if decay[i] && self.weight_decay > 0.0 {
                    let _ = p.f_mul_scalar_(1.0 - self.lr * self.weight_decay)?;
                }
                let _ = p.f_sub_(&m.f_div(&denom)?.f_mul_scalar(self.lr / bc1)?)?;
            }
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
        let mut p = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let mut adam = Adam::new(&[&p], lr, b1, b2, wd);
        let (mut rp, mut rm, mut rv) = ([1.0f64, -2.0], [0.0f64; 2], [0.0f64; 2]);
        for t in 1..=5 {
            let gv = [0.3 * t as f64, -0.7 + t as f64 * 0.1];
            let g = Tensor::from_slice(&gv);
            adam.step(&mut [&mut p], &[g], &[true]).unwrap();
            for i in 0..2 {
                rm[i] = b1 * rm[i] + (1.0 - b1) * gv[i];
                rv[i] = b2 * rv[i] + (1.0 - b2) * gv[i] * gv[i];
                let mh = rm[i] / (1.0 - b1.powi(t));
                let vh = rv[i] / (1.0 - b2.powi(t));
                rp[i] = rp[i] * (1.0 - lr * wd) - lr * mh / (vh.sqrt() + EPS);
            }
        }
        let got = Vec::<f64>::try_from(&p.detach()).unwrap();
        for i in 0..2 {
            assert!((got[i] - rp[i]).abs() < 1e-12, "{got:?} vs {rp:?}");
        }
        assert_eq!(adam.t, 5);
    }
}
