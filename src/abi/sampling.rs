//! `SanceSampling` and `SanceDrawReport`: how `sance_ebm_draw` draws from the model, and what
//! it reports (docs/algorithm.md, "Drawing from the model").
use crate::abi::config::{read_langevin, validate_langevin, SanceLangevin};
use crate::abi::status::{Error, Result};
use std::ptr::addr_of;

/// Which sampler `sance_ebm_draw` runs (the `sampler` field of `SanceSampling`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SanceSampler {
    /// The best the model supports: POPULATION when the model keeps a population (the replay
    /// buffer of a trained or loaded model), else ANNEALED the first time and then POPULATION
    /// on its particles, kept until the model changes. `report.sampler` says which ran.
    Auto = 0,
    /// Fresh chains from `moves`' init distribution through `moves` (sance 0.4's
    /// `sance_ebm_sample`): draws of the model only once the chains have forgotten their start.
    Fresh = 1,
    /// The replay population: drawn in proportion to the model's density over the density
    /// the chains follow (the snapshot's; uniformly for a buffer with restarts, which follows
    /// no density), then moved by `moves`.
    Population = 2,
    /// Adaptive tempered SMC from a normalised Gaussian base to the model: each temperature is
    /// chosen so the particles keep `target_ess` of their effective sample size, then the
    /// particles are resampled and moved by `moves` at that temperature.
    Annealed = 3,
}

impl SanceSampler {
    pub fn from_u32(v: u32) -> Option<SanceSampler> {
        Some(match v {
            0 => SanceSampler::Auto,
            1 => SanceSampler::Fresh,
            2 => SanceSampler::Population,
            3 => SanceSampler::Annealed,
            _ => return None,
        })
    }
}

/// How `sance_ebm_draw` draws. Fill it with `sance_sampling_init`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SanceSampling {
    /// A `SanceSampler`.
    pub sampler: u32,
    /// The transition the sampler applies: FRESH runs it from its init distribution;
    /// POPULATION moves the drawn chains by it; ANNEALED applies it at every temperature
    /// (MALA with a step adapted to each temperature). Its temperature
    /// T = noise_std²/(2·step_size) sets the target, exp(−E/T).
    pub moves: SanceLangevin,
    /// ANNEALED: each temperature keeps this share of the particles' effective sample size,
    /// in (0, 1).
    pub target_ess: f32,
    /// ANNEALED: at most this many stages (1 to 100,000); the last one reaches the model
    /// whatever the effective sample size.
    pub max_temperatures: u32,
}

/// What a `sance_ebm_draw` did.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SanceDrawReport {
    /// The sampler that ran (AUTO resolved).
    pub sampler: u32,
    /// ANNEALED: stages used; else 0.
    pub temperatures: u32,
    /// Effective sample size (1/Σw², w the normalised weights) of the weighted particles before
    /// the final resampling: POPULATION over the population, ANNEALED over the last stage's
    /// particles; NaN where nothing is weighted (FRESH, a buffer with restarts).
    pub ess: f64,
    /// Mean Metropolis acceptance of the moves; NaN for unadjusted moves.
    pub acceptance: f64,
    /// ANNEALED: its estimate of log Z = log ∫ exp(−E(x)/T) dx in the data's units, a by-product
    /// (NaN otherwise).
    pub log_z: f64,
    /// ANNEALED: the estimate's standard error (NaN otherwise).
    pub log_z_std_error: f64,
}

impl SanceDrawReport {
    pub fn empty(sampler: SanceSampler) -> SanceDrawReport {
        SanceDrawReport {
            sampler: sampler as u32,
            temperatures: 0,
            ess: f64::NAN,
            acceptance: f64::NAN,
            log_z: f64::NAN,
            log_z_std_error: f64::NAN,
        }
    }
}

/// Checks every field; the message names the first bad one as `field.name`.
pub fn validate_sampling(s: &SanceSampling, field: &str) -> Result<SanceSampler> {
    let sampler = SanceSampler::from_u32(s.sampler).ok_or_else(|| {
        Error::invalid(format!(
            "{field}.sampler has invalid value {} (SANCE_SAMPLER_AUTO 0, FRESH 1, POPULATION 2, ANNEALED 3)",
            s.sampler
        ))
    })?;
    validate_langevin(&s.moves, &format!("{field}.moves"))?;
    if !(s.target_ess > 0.0 && s.target_ess < 1.0) {
        return Err(Error::invalid(format!(
            "{field}.target_ess must be in (0, 1) (got {}): the share of the effective sample size each \
             temperature keeps",
            s.target_ess
        )));
    }
    crate::abi::config::range_u32(s.max_temperatures, 1, 100_000, &format!("{field}.max_temperatures"))?;
    // ANNEALED and POPULATION target exp(−E/T): their moves need a temperature.
    if sampler != SanceSampler::Fresh && s.moves.noise_std == 0.0 {
        return Err(Error::invalid(format!(
            "{field}.moves.noise_std = 0 has no target density (T = 0): only SANCE_SAMPLER_FRESH runs \
             noiseless moves"
        )));
    }
    Ok(sampler)
}

/// Reads a `SanceSampling` from C memory, its moves' enum first (read_langevin), then
/// validates it.
///
/// # Safety
/// `p` must be non-null, aligned and point to readable memory of the struct's size.
pub unsafe fn read_sampling(p: *const SanceSampling, field: &str) -> Result<(SanceSampling, SanceSampler)> {
    let moves = read_langevin(addr_of!((*p).moves), &format!("{field}.moves"))?;
    let s = SanceSampling {
        sampler: addr_of!((*p).sampler).read(),
        moves,
        target_ess: addr_of!((*p).target_ess).read(),
        max_temperatures: addr_of!((*p).max_temperatures).read(),
    };
    let sampler = validate_sampling(&s, field)?;
    Ok((s, sampler))
}
