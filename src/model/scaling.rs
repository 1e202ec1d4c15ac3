//! The data's scaling: the affine change of units x = shift + scale ⊙ z (per coordinate) that
//! the model is trained in (`config.scaling`, docs/algorithm.md "Units").
//!
//! The network, the snapshot, the sampler, the replay buffer and the AIS base all live in the
//! standardised coordinates z, where the data have mean 0 and std [`MODEL_STD`] (2) per
//! coordinate; what a
//! caller sees is in x. The energy of x is the energy of z plus the log-Jacobian,
//! E(x) = E_net(z) + Σ log scale, so exp(−E(x)) is the density of x and has the same
//! normaliser over x as exp(−E_net(z)) over z: `sance_ebm_log_z` needs no correction.
//! ∇ₓE = ∇_z E_net / scale. Because the fit follows the data, the same data in other units give
//! the same z, and so the same model up to that change of units.
use tch::{Device, Kind, TchError, Tensor};

/// The data's std per coordinate in the model's coordinates. 2, not 1: the MLP's first layer
/// resolves the finer features of data at this scale in the same number of steps as the
/// defaults were tuned at (8gaussians, whose coordinates have std 2.03, learns a ring and not
/// its eight modes in 4,000 steps when standardised to std 1: KL 0.43 against 0.05).
pub(crate) const MODEL_STD: f64 = 2.0;

/// A fitted scaling of vectors of D floats.
#[derive(Debug)]
pub struct Scaling {
    /// [D], the data's mean per coordinate.
    pub shift: Tensor,
    /// [D], the data's std per coordinate (> 0).
    pub scale: Tensor,
    /// Σ log scale, the log-Jacobian |dx/dz|.
    log_det: f64,
}

/// Per-coordinate sums of a batch: (n, Σx) or Σ(x − mean)², in float64 on the host.
pub fn column_sums(x: &Tensor, centre: Option<&[f64]>) -> Result<Vec<f64>, TchError> {
    let x = x.f_flatten(1, -1)?.f_to_kind(Kind::Double)?;
    let s = match centre {
        None => x.f_sum_dim_intlist([0i64].as_slice(), false, Kind::Double)?,
        Some(c) => {
            let c = Tensor::f_from_slice(c)?.f_to_device(x.device())?;
            x.f_sub(&c)?.f_square()?.f_sum_dim_intlist([0i64].as_slice(), false, Kind::Double)?
        }
    };
    Vec::<f64>::try_from(s.f_to_device(Device::Cpu)?)
}

/// The scale of each coordinate from its sum of squared deviations `m2` over `n` points: the
/// std over [`MODEL_STD`], except where it is zero or not finite (a constant coordinate, a single point), which
/// gets the geometric mean of the others' (1 if every coordinate is constant) so that the
/// sampler still moves there on the data's scale.
pub fn scales_from(m2: &[f64], n: f64) -> Vec<f64> {
    let sd: Vec<f64> = m2.iter().map(|v| (v / n.max(1.0)).sqrt() / MODEL_STD).collect();
    let good: Vec<f64> = sd.iter().copied().filter(|s| s.is_finite() && *s > 0.0).collect();
    let fallback = if good.is_empty() {
        1.0
    } else {
        (good.iter().map(|s| s.ln()).sum::<f64>() / good.len() as f64).exp()
    };
    sd.iter().map(|&s| if s.is_finite() && s > 0.0 { s } else { fallback }).collect()
}

impl Scaling {
    /// From its parts (host values, checked by the caller: finite, scale > 0), stored in
    /// `kind` on `device`. The log-Jacobian is summed from the stored (rounded) scales, so a
    /// checkpoint, which stores them in `kind`, rebuilds exactly this scaling.
    pub fn from_host(shift: &[f64], scale: &[f64], kind: Kind, device: Device) -> Result<Scaling, TchError> {
        let shift = Tensor::f_from_slice(shift)?.f_to_kind(kind)?.f_to_device(device)?;
        let scale = Tensor::f_from_slice(scale)?.f_to_kind(kind)?.f_to_device(device)?;
        Scaling::from_tensors(shift, scale)
    }

    /// From tensors [D] already in the model's kind and on its device.
    pub fn from_tensors(shift: Tensor, scale: Tensor) -> Result<Scaling, TchError> {
        let log_det = scale.f_to_kind(Kind::Double)?.f_log()?.f_sum(Kind::Double)?.f_double_value(&[])?;
        Ok(Scaling { shift, scale, log_det })
    }

    /// A handle on the same tensors (they are never written in place).
    pub fn shallow(&self) -> Scaling {
        Scaling {
            shift: self.shift.shallow_clone(),
            scale: self.scale.shallow_clone(),
            log_det: self.log_det,
        }
    }

    /// Σ log scale: E(x) − E_net(z).
    pub fn log_det(&self) -> f64 {
        self.log_det
    }

    /// z = (x − shift) / scale, for x [N, D].
    pub fn to_model(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_sub(&self.shift)?.f_div(&self.scale)
    }

    /// x = shift + scale ⊙ z.
    pub fn to_data(&self, z: &Tensor) -> Result<Tensor, TchError> {
        z.f_mul(&self.scale)?.f_add(&self.shift)
    }

    /// E(x) from E_net(z) [N].
    pub fn energy_to_data(&self, e: &Tensor) -> Result<Tensor, TchError> {
        e.f_add_scalar(self.log_det)
    }

    /// ∇ₓE from ∇_z E_net [N, D].
    pub fn grad_to_data(&self, g: &Tensor) -> Result<Tensor, TchError> {
        g.f_div(&self.scale)
    }

    /// A per-coordinate length in data units (`std` of the data noise) in model units [D].
    pub fn length_to_model(&self, length: f64) -> Result<Tensor, TchError> {
        self.scale.f_reciprocal()?.f_mul_scalar(length)
    }

    /// The per-coordinate bounds [lo, hi] (data units) in model units, [D] each.
    pub fn bounds_to_model(&self, lo: f64, hi: f64) -> Result<(Tensor, Tensor), TchError> {
        let bound = |v: f64| self.to_model(&self.shift.f_full_like(v)?);
        Ok((bound(lo)?, bound(hi)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_the_std_with_a_fallback_for_constant_coordinates() {
        let s = scales_from(&[4.0 * 10.0, 0.0, 0.01 * 10.0], 10.0);
        let m = MODEL_STD;
        assert!((s[0] - 2.0 / m).abs() < 1e-12 && (s[2] - 0.1 / m).abs() < 1e-12);
        // The constant coordinate takes the geometric mean of the others: √(2 · 0.1).
        assert!((s[1] - (0.2f64).sqrt() / m).abs() < 1e-12, "{s:?}");
        assert_eq!(scales_from(&[0.0, 0.0], 1.0), vec![1.0, 1.0]);
    }

    #[test]
    fn energies_and_gradients_change_units_exactly() {
        let sc = Scaling::from_host(&[1.0, -2.0], &[0.5, 4.0], Kind::Double, Device::Cpu).unwrap();
        assert!((sc.log_det() - (2.0f64).ln()).abs() < 1e-12);
        let x = Tensor::from_slice(&[2.0f64, 2.0]).view([1, 2]);
        let z = sc.to_model(&x).unwrap();
        assert_eq!(Vec::<f64>::try_from(z.view([-1])).unwrap(), vec![2.0, 1.0]);
        let back = sc.to_data(&z).unwrap();
        assert!(back.allclose(&x, 0.0, 1e-12, false));
        let g = sc.grad_to_data(&Tensor::from_slice(&[1.0f64, 1.0]).view([1, 2])).unwrap();
        assert_eq!(Vec::<f64>::try_from(g.view([-1])).unwrap(), vec![2.0, 0.25]);
        let (lo, hi) = sc.bounds_to_model(0.0, 2.0).unwrap();
        assert_eq!(Vec::<f64>::try_from(lo).unwrap(), vec![-2.0, 0.5]);
        assert_eq!(Vec::<f64>::try_from(hi).unwrap(), vec![2.0, 1.0]);
    }
}
