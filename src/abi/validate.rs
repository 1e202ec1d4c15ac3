//! Reading the config structs from C and checking their fields: each message names the first
//! offending field, as C users see it (`config.langevin.step_size`).
use crate::abi::config::*;
use crate::abi::status::{Error, Result};
use crate::abi::version::check_abi;
use std::ptr::addr_of;

const _: () = {
    // The raw reads below treat each C enum as a 4-byte integer.
    assert!(std::mem::size_of::<SanceArch>() == 4);
    assert!(std::mem::size_of::<SanceInit>() == 4);
    assert!(std::mem::size_of::<SanceActivation>() == 4);
    assert!(std::mem::size_of::<SanceNoise>() == 4);
    assert!(std::mem::size_of::<SanceScaling>() == 4);
    assert!(std::mem::size_of::<SanceConvHead>() == 4);
};

fn check_enum<T: TryFrom<u32>>(raw: u32, field: &str) -> Result<()> {
    T::try_from(raw).map(|_| ()).map_err(|_| Error::invalid(format!("{field} has unknown value {raw}")))
}

/// Reads a `SanceLangevin` from C memory, rejecting unknown enum values first.
///
/// # Safety
/// `p` must be non-null, aligned and point to readable memory of the struct's size.
pub unsafe fn read_langevin(p: *const SanceLangevin, field: &str) -> Result<SanceLangevin> {
    check_enum::<SanceInit>(addr_of!((*p).init).cast::<u32>().read(), &format!("{field}.init"))?;
    let l = p.read();
    validate_langevin(&l, field)?;
    Ok(l)
}

/// Reads a `SanceConfig` from C memory, rejecting unknown enum values, then validates it.
///
/// # Safety
/// `p` must be non-null, aligned and point to readable memory of the struct's size.
pub unsafe fn read_config(p: *const SanceConfig) -> Result<SanceConfig> {
    // abi_version first: a struct from another layout must not be read any further.
    check_abi(addr_of!((*p).abi_version).read(), "config.abi_version")?;
    check_enum::<SanceArch>(addr_of!((*p).arch).cast::<u32>().read(), "config.arch")?;
    check_enum::<SanceActivation>(addr_of!((*p).activation).cast::<u32>().read(), "config.activation")?;
    check_enum::<SanceInit>(addr_of!((*p).langevin.init).cast::<u32>().read(), "config.langevin.init")?;
    check_enum::<SanceNoise>(addr_of!((*p).noise).cast::<u32>().read(), "config.noise")?;
    check_enum::<SanceConvHead>(addr_of!((*p).conv_head).cast::<u32>().read(), "config.conv_head")?;
    check_enum::<SanceScaling>(addr_of!((*p).scaling).cast::<u32>().read(), "config.scaling")?;
    let c = p.read();
    validate_config(&c)?;
    Ok(c)
}

fn finite_ge(v: f32, lo: f32, field: &str) -> Result<()> {
    if !v.is_finite() || v < lo {
        return Err(Error::invalid(format!("{field} must be a finite number >= {lo} (got {v})")));
    }
    Ok(())
}

pub(crate) fn finite_gt(v: f32, lo: f32, field: &str) -> Result<()> {
    if !v.is_finite() || v <= lo {
        return Err(Error::invalid(format!("{field} must be a finite number > {lo} (got {v})")));
    }
    Ok(())
}

fn in_unit(v: f32, closed: bool, field: &str) -> Result<()> {
    let ok = v.is_finite() && v >= 0.0 && if closed { v <= 1.0 } else { v < 1.0 };
    if !ok {
        let range = if closed { "[0, 1]" } else { "[0, 1)" };
        return Err(Error::invalid(format!("{field} must lie in {range} (got {v})")));
    }
    Ok(())
}

pub(crate) fn range_u32(v: u32, lo: u32, hi: u32, field: &str) -> Result<()> {
    if v < lo || v > hi {
        return Err(Error::invalid(format!("{field} must lie in [{lo}, {hi}] (got {v})")));
    }
    Ok(())
}

/// Checks a Langevin parameter set; `field` prefixes the messages ("config.langevin", "params").
pub fn validate_langevin(l: &SanceLangevin, field: &str) -> Result<()> {
    range_u32(l.steps, 1, 1_000_000, &format!("{field}.steps"))?;
    finite_gt(l.step_size, 0.0, &format!("{field}.step_size"))?;
    finite_ge(l.noise_std, 0.0, &format!("{field}.noise_std"))?;
    finite_ge(l.grad_clip, 0.0, &format!("{field}.grad_clip"))?;
    finite_ge(l.grad_clamp, 0.0, &format!("{field}.grad_clamp"))?;
    if !l.clamp_min.is_finite() || !l.clamp_max.is_finite() {
        return Err(Error::invalid(format!(
            "{field}.clamp_min/clamp_max must be finite (got [{}, {}]; clamp_min >= clamp_max disables \
             clamping)",
            l.clamp_min, l.clamp_max
        )));
    }
    finite_ge(l.init_scale, 0.0, &format!("{field}.init_scale"))?;
    range_u32(l.metropolis, 0, 1, &format!("{field}.metropolis"))?;
    if l.metropolis == 1 && l.noise_std == 0.0 {
        return Err(Error::invalid(format!(
            "{field}.metropolis = 1 (MALA) needs {field}.noise_std > 0: the target exp(−E/T) has \
             T = noise_std²/(2·step_size), and T = 0 has no density to correct towards"
        )));
    }
    in_unit(l.target_acceptance, false, &format!("{field}.target_acceptance"))?;
    if l.target_acceptance > 0.0 && l.metropolis != 1 {
        return Err(Error::invalid(format!(
            "{field}.target_acceptance = {} needs {field}.metropolis = 1: only MALA has an acceptance \
             rate to tune the step to (set target_acceptance = 0 for a fixed unadjusted step)",
            l.target_acceptance
        )));
    }
    Ok(())
}

/// Largest accepted per-sample size in floats (2^26: a 4096×4096×4 image).
pub(crate) const MAX_SAMPLE_SIZE: u64 = 1 << 26;

/// Checks every field of a config; the message names the first offending field.
pub fn validate_config(c: &SanceConfig) -> Result<()> {
    check_abi(c.abi_version, "config.abi_version")?;
    match c.arch {
        SanceArch::Mlp => range_u32(c.data_dim, 1, MAX_SAMPLE_SIZE as u32, "config.data_dim")?,
        SanceArch::Conv => {
            range_u32(c.channels, 1, 4096, "config.channels")?;
            range_u32(c.height, 1, 4096, "config.height")?;
            range_u32(c.width, 1, 4096, "config.width")?;
            let n = c.channels as u64 * c.height as u64 * c.width as u64;
            if n > MAX_SAMPLE_SIZE {
                return Err(Error::invalid(format!(
                    "config.channels*height*width is {n}, above the limit {MAX_SAMPLE_SIZE}"
                )));
            }
        }
    }
    range_u32(c.hidden_width, 1, 65_536, "config.hidden_width")?;
    match c.arch {
        SanceArch::Mlp => range_u32(c.hidden_layers, 1, 64, "config.hidden_layers")?,
        SanceArch::Conv => range_u32(c.hidden_layers, 0, 16, "config.hidden_layers")?,
    }
    if c.arch == SanceArch::Conv && (c.hidden_width as u64) << c.hidden_layers > 65_536 {
        return Err(Error::invalid(format!(
            "config.hidden_width << hidden_layers is {}, above 65536 channels",
            (c.hidden_width as u64) << c.hidden_layers
        )));
    }
    finite_gt(c.learning_rate, 0.0, "config.learning_rate")?;
    in_unit(c.adam_beta1, false, "config.adam_beta1")?;
    in_unit(c.adam_beta2, false, "config.adam_beta2")?;
    finite_ge(c.weight_decay, 0.0, "config.weight_decay")?;
    finite_ge(c.grad_clip, 0.0, "config.grad_clip")?;
    in_unit(c.ema_decay, false, "config.ema_decay")?;
    finite_gt(c.noise_ratio, 0.0, "config.noise_ratio")?;
    if c.noise_ratio > 1024.0 {
        return Err(Error::invalid(format!(
            "config.noise_ratio must be at most 1024 (got {})",
            c.noise_ratio
        )));
    }
    finite_ge(c.energy_l2, 0.0, "config.energy_l2")?;
    validate_langevin(&c.langevin, "config.langevin")?;
    in_unit(c.replay_reinit_prob, true, "config.replay_reinit_prob")?;
    finite_ge(c.data_noise_std, 0.0, "config.data_noise_std")?;
    range_u32(c.num_threads, 0, 1024, "config.num_threads")?;
    if c.device < SANCE_DEVICE_AUTO {
        return Err(Error::invalid(format!(
            "config.device must be -2 (auto), -1 (CPU) or a CUDA index >= 0 (got {})",
            c.device
        )));
    }
    Ok(())
}
