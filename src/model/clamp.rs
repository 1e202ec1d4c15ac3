//! The box Langevin chains are kept in (`clamp_min`/`clamp_max`, or per coordinate in the
//! model's standardised coordinates).
use crate::abi::config::SanceLangevin;
use tch::{TchError, Tensor};

/// The box a run keeps its chains in: none, the sampler's own scalar bounds, or bounds per
/// coordinate (the sampler's box, given in the data's units, seen in the model's standardised
/// coordinates: crate::model::scaling).
#[derive(Debug)]
pub enum Clamp {
    None,
    Scalar(f64, f64),
    Coordinates(Tensor, Tensor),
}

impl Clamp {
    /// The sampler's own box (`clamp_min < clamp_max`), in the chains' coordinates.
    pub fn of(l: &SanceLangevin) -> Clamp {
        if l.clamp_min < l.clamp_max {
            Clamp::Scalar(l.clamp_min as f64, l.clamp_max as f64)
        } else {
            Clamp::None
        }
    }

    /// Clamps `x` into the box, in place (nothing without a box).
    pub(crate) fn apply_(&self, x: &mut Tensor) -> Result<(), TchError> {
        match self {
            Clamp::None => {}
            Clamp::Scalar(lo, hi) => {
                let _ = x.f_clamp_(*lo, *hi)?;
            }
            Clamp::Coordinates(lo, hi) => {
                let _ = x.f_clamp_tensor_(Some(lo), Some(hi))?;
            }
        }
        Ok(())
    }

    /// Whether each row of `y` lies inside the box, [N] booleans; None without a box.
    pub(crate) fn inside(&self, y: &Tensor) -> Result<Option<Tensor>, TchError> {
        let ok = match self {
            Clamp::None => return Ok(None),
            Clamp::Scalar(lo, hi) => y.f_ge(*lo)?.f_logical_and(&y.f_le(*hi)?)?,
            Clamp::Coordinates(lo, hi) => y.f_ge_tensor(lo)?.f_logical_and(&y.f_le_tensor(hi)?)?,
        };
        Ok(Some(ok.f_flatten(1, -1)?.f_all_dim(1, false)?))
    }
}
