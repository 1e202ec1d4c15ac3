//! Reads the energy of a sance checkpoint (docs/checkpoints.md): the network libsance's
//! `sance_ebm_energy_grad` evaluates, which is the parameters' moving average θ̃ when the
//! config's `ema_decay` > 0 (tensors `average.net.*`), else θ (`energy.net.*`; `theta.{i}` in
//! format version 1). Everything else in the file (snapshot, optimiser, replay buffer) is
//! ignored. The checks are the ones that matter for evaluation: format and version, an MLP
//! config, each tensor's dtype and shape against the config, finite values.
use crate::mlp::{Activation, Hidden, Net, Real};
use crate::status::{Error, Result, SanceStatus};
use safetensors::tensor::{Dtype, SafeTensors, TensorInfo};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// A loaded energy, in its checkpoint's precision.
#[derive(Clone, Debug)]
pub enum Model {
    F32(Net<f32>),
    F64(Net<f64>),
}

impl Model {
    pub fn dim(&self) -> usize {
        match self {
            Model::F32(n) => n.dim,
            Model::F64(n) => n.dim,
        }
    }

    /// E and ∇ₓE of `n` points; see [`Net::energy_grad`].
    pub fn energy_grad(&self, x: &[f32], n: usize, e: Option<&mut [f32]>, g: Option<&mut [f32]>) {
        match self {
            Model::F32(net) => net.energy_grad(x, n, e, g),
            Model::F64(net) => net.energy_grad(x, n, e, g),
        }
    }
}

/// Reads the checkpoint at `path`.
pub fn load(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::new(SanceStatus::Io, format!("cannot read {}: {e}", path.display())))?;
    from_bytes(&bytes).map_err(|e| Error::new(e.status, format!("{}: {}", path.display(), e.message)))
}

/// Reads a checkpoint from its bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
    // One parse of the header, as libsance's loader does: read_metadata has checked that the
    // tensors tile the data section exactly.
    let (n, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::corrupt(format!("not a safetensors file ({e:?})")))?;
    let st = Stored { tensors: meta.tensors(), data: &bytes[8 + n..] };
    let md = meta.metadata().as_ref().ok_or_else(|| Error::corrupt("no metadata: not a sance checkpoint"))?;
    let get = |k: &str| md.get(k).ok_or_else(|| Error::corrupt(format!("metadata has no {k:?}")));
    if get("format")? != "sance-checkpoint" {
        return Err(Error::corrupt("metadata format is not \"sance-checkpoint\""));
    }
    let version: u32 =
        get("format_version")?.parse().map_err(|_| Error::corrupt("format_version is not a number"))?;
    if !(1..=3).contains(&version) {
        return Err(Error::corrupt(format!(
            "checkpoint format version {version}: this sance_eval reads versions 1 to 3"
        )));
    }
    let cfg: Value = serde_json::from_str(get("config")?)
        .map_err(|e| Error::corrupt(format!("the config is not JSON ({e})")))?;
    let field = |k: &str| -> Result<u64> {
        cfg.get(k)
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::corrupt(format!("config has no integer {k:?}")))
    };
    match field("arch")? {
        0 => {}
        1 => {
            return Err(Error::invalid(
                "a convolutional (SANCE_ARCH_CONV) energy: sance_eval evaluates MLP energies only; \
                 use libsance's sance_ebm_energy_grad for conv energies",
            ))
        }
        a => return Err(Error::corrupt(format!("config arch {a} is not an architecture"))),
    }
    let activation = match field("activation")? {
        0 => Activation::Silu,
        1 => Activation::LeakyRelu,
        a => return Err(Error::corrupt(format!("config activation {a} is not an activation"))),
    };
    let dim = field("data_dim")? as usize;
    let width = field("hidden_width")? as usize;
    let layers = field("hidden_layers")? as usize;
    if dim == 0 || width == 0 || layers == 0 || dim > 1 << 24 || width > 1 << 16 || layers > 64 {
        return Err(Error::corrupt(format!(
            "config data_dim {dim}, hidden_width {width}, hidden_layers {layers} out of range"
        )));
    }
    let ema = cfg.get("ema_decay").and_then(Value::as_f64).unwrap_or(0.0);
    let dtype = match get("dtype")?.as_str() {
        "F32" => Dtype::F32,
        "F64" => Dtype::F64,
        d => return Err(Error::corrupt(format!("dtype {d:?} is neither F32 nor F64"))),
    };
    // Tensor names in `Params::named` order: each hidden layer's weight and bias, then the
    // last weight.
    let mut names = Vec::new();
    for i in 0..=layers {
        names.push(format!("net.{}.weight", 2 * i));
        if i < layers {
            names.push(format!("net.{}.bias", 2 * i));
        }
    }
    let names: Vec<String> = if version == 1 {
        (0..names.len()).map(|i| format!("theta.{i}")).collect()
    } else {
        let prefix = if ema > 0.0 && version >= 3 { "average" } else { "energy" };
        names.iter().map(|n| format!("{prefix}.{n}")).collect()
    };
    match dtype {
        Dtype::F64 => Ok(Model::F64(build(&st, &names, dim, width, layers, activation, dtype)?)),
        _ => Ok(Model::F32(build(&st, &names, dim, width, layers, activation, dtype)?)),
    }
}

/// The file's tensors: where each lies in the data section.
struct Stored<'a> {
    tensors: HashMap<String, &'a TensorInfo>,
    data: &'a [u8],
}

fn build<T: Real>(
    st: &Stored,
    names: &[String],
    dim: usize,
    width: usize,
    layers: usize,
    activation: Activation,
    dtype: Dtype,
) -> Result<Net<T>> {
    let mut k = 0;
    let mut next = |shape: &[usize]| -> Result<Vec<T>> {
        let name = &names[k];
        k += 1;
        let t = st.tensors.get(name).ok_or_else(|| Error::corrupt(format!("tensor {name:?} is missing")))?;
        let (a, b) = t.data_offsets;
        values(t, &st.data[a..b], name, shape, dtype)
    };
    let mut hidden = Vec::new();
    let mut fan_in = dim;
    for _ in 0..layers {
        let w = next(&[width, fan_in])?;
        let b = next(&[width])?;
        hidden.push(Hidden::new(fan_in, width, w, b));
        fan_in = width;
    }
    let w_out = next(&[1, width])?;
    Ok(Net { dim, activation, hidden, w_out: crate::mlp::Aligned::new(&w_out) })
}

/// A tensor's values after checking its dtype, shape and finiteness.
fn values<T: Real>(t: &TensorInfo, data: &[u8], name: &str, shape: &[usize], dtype: Dtype) -> Result<Vec<T>> {
    if t.dtype != dtype {
        return Err(Error::corrupt(format!("{name} is {:?}, the checkpoint's dtype is {dtype:?}", t.dtype)));
    }
    if t.shape != shape {
        return Err(Error::corrupt(format!("{name} has shape {:?}, the config needs {shape:?}", t.shape)));
    }
    let v: Vec<T> = match dtype {
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| T::from_f64(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
            .collect(),
        _ => data
            .chunks_exact(4)
            .map(|c| T::from_f32(f32::from_le_bytes(c.try_into().expect("4 bytes"))))
            .collect(),
    };
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::corrupt(format!("{name}[{i}] is not finite")));
    }
    Ok(v)
}
