//! `SanceAis`: how much work `sance_ebm_log_z`'s annealed importance sampling gets.
use crate::abi::config::{finite_gt, range_u32};
use crate::abi::status::Result;

/// Parameters of `sance_ebm_log_z`: annealed importance sampling from a normalised Gaussian
/// base to the model (docs/algorithm.md, "The normaliser"). Fill it with `sance_ais_init`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SanceAis {
    /// Independent AIS chains (2 to 1,000,000): the standard error falls as 1/√chains.
    pub chains: u32,
    /// Intermediate distributions between the base and the model (1 to 10,000,000).
    pub temperatures: u32,
    /// MALA steps per temperature (1 to 1,000).
    pub steps: u32,
    /// MALA's step λ at the model (finite, > 0); along the path it moves geometrically from a
    /// step suited to the base.
    pub step_size: f32,
}

/// Checks every field; the message names the first bad one as `field.name`.
pub fn validate_ais(a: &SanceAis, field: &str) -> Result<()> {
    range_u32(a.chains, 2, 1_000_000, &format!("{field}.chains"))?;
    range_u32(a.temperatures, 1, 10_000_000, &format!("{field}.temperatures"))?;
    range_u32(a.steps, 1, 1000, &format!("{field}.steps"))?;
    finite_gt(a.step_size, 0.0, &format!("{field}.step_size"))
}
