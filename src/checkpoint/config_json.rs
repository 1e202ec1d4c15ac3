//! SanceConfig ↔ JSON for checkpoint metadata, field by field, so that a missing or mistyped
//! field is named in the error.
use crate::config::{SanceActivation, SanceArch, SanceConfig, SanceInit, SanceLangevin};
use serde_json::{json, Map, Value};

pub fn to_json(c: &SanceConfig) -> String {
    let l = &c.langevin;
    json!({
        "abi_version": c.abi_version,
        "arch": c.arch as u32,
        "data_dim": c.data_dim,
        "channels": c.channels,
        "height": c.height,
        "width": c.width,
        "hidden_width": c.hidden_width,
        "hidden_layers": c.hidden_layers,
        "activation": c.activation as u32,
        "learning_rate": c.learning_rate,
        "adam_beta1": c.adam_beta1,
        "adam_beta2": c.adam_beta2,
        "weight_decay": c.weight_decay,
        "grad_clip": c.grad_clip,
        "noise_update_interval": c.noise_update_interval,
        "noise_ratio": c.noise_ratio,
        "energy_l2": c.energy_l2,
        "langevin": {
            "steps": l.steps,
            "step_size": l.step_size,
            "noise_std": l.noise_std,
            "grad_clip": l.grad_clip,
            "clamp_min": l.clamp_min,
            "clamp_max": l.clamp_max,
            "init": l.init as u32,
            "init_scale": l.init_scale,
        },
        "replay_capacity": c.replay_capacity,
        "replay_reinit_prob": c.replay_reinit_prob,
        "data_noise_std": c.data_noise_std,
        "device": c.device,
        // u64 as a string: JSON numbers are doubles in most readers.
        "seed": c.seed.to_string(),
    })
    .to_string()
}

struct Reader<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'a str,
}

impl Reader<'_> {
    fn get(&self, k: &str) -> Result<&Value, String> {
        self.obj.get(k).ok_or(format!("config field {}{k} is missing", self.prefix))
    }
    fn u32(&self, k: &str) -> Result<u32, String> {
        self.get(k)?
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(format!("config field {}{k} is not a u32", self.prefix))
    }
    fn i32(&self, k: &str) -> Result<i32, String> {
        self.get(k)?
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or(format!("config field {}{k} is not an i32", self.prefix))
    }
    /// f32 values round-trip exactly through their shortest decimal form.
    fn f32(&self, k: &str) -> Result<f32, String> {
        self.get(k)?
            .as_f64()
            .map(|v| v as f32)
            .ok_or(format!("config field {}{k} is not a number", self.prefix))
    }
}

fn arch(v: u32) -> Result<SanceArch, String> {
    [SanceArch::Mlp, SanceArch::Conv]
        .into_iter()
        .find(|a| *a as u32 == v)
        .ok_or(format!("config field arch has unknown value {v}"))
}
fn activation(v: u32) -> Result<SanceActivation, String> {
    [SanceActivation::Silu, SanceActivation::LeakyRelu]
        .into_iter()
        .find(|a| *a as u32 == v)
        .ok_or(format!("config field activation has unknown value {v}"))
}
fn init(v: u32) -> Result<SanceInit, String> {
    [SanceInit::Gaussian, SanceInit::Uniform]
        .into_iter()
        .find(|a| *a as u32 == v)
        .ok_or(format!("config field langevin.init has unknown value {v}"))
}

pub fn from_json(s: &str) -> Result<SanceConfig, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| format!("config is not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or("config is not a JSON object")?;
    let r = Reader { obj, prefix: "" };
    let lobj = r.get("langevin")?.as_object().ok_or("config field langevin is not an object")?;
    let l = Reader { obj: lobj, prefix: "langevin." };
    let seed = r
        .get("seed")?
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("config field seed is not a u64 string")?;
    Ok(SanceConfig {
        abi_version: r.u32("abi_version")?,
        arch: arch(r.u32("arch")?)?,
        data_dim: r.u32("data_dim")?,
        channels: r.u32("channels")?,
        height: r.u32("height")?,
        width: r.u32("width")?,
        hidden_width: r.u32("hidden_width")?,
        hidden_layers: r.u32("hidden_layers")?,
        activation: activation(r.u32("activation")?)?,
        learning_rate: r.f32("learning_rate")?,
        adam_beta1: r.f32("adam_beta1")?,
        adam_beta2: r.f32("adam_beta2")?,
        weight_decay: r.f32("weight_decay")?,
        grad_clip: r.f32("grad_clip")?,
        noise_update_interval: r.u32("noise_update_interval")?,
        noise_ratio: r.f32("noise_ratio")?,
        energy_l2: r.f32("energy_l2")?,
        langevin: SanceLangevin {
            steps: l.u32("steps")?,
            step_size: l.f32("step_size")?,
            noise_std: l.f32("noise_std")?,
            grad_clip: l.f32("grad_clip")?,
            clamp_min: l.f32("clamp_min")?,
            clamp_max: l.f32("clamp_max")?,
            init: init(l.u32("init")?)?,
            init_scale: l.f32("init_scale")?,
        },
        replay_capacity: r.u32("replay_capacity")?,
        replay_reinit_prob: r.f32("replay_reinit_prob")?,
        data_noise_std: r.f32("data_noise_std")?,
        device: r.i32("device")?,
        seed,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_bit_exactly() {
        let mut c = crate::config::SanceConfig {
            learning_rate: 3.0e-4,
            seed: u64::MAX - 5,
            device: -1,
            ..Default::default()
        };
        c.langevin.noise_std = (2.0f32 * 0.0123).sqrt();
        assert_eq!(super::from_json(&super::to_json(&c)).unwrap(), c);
    }
}
