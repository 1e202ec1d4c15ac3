//! Reads the energy of a sance checkpoint (docs/checkpoints.md): the network libsance's
//! `sance_ebm_energy_grad` evaluates, which is the parameters' moving average θ̃ when the
//! config's `ema_decay` > 0 (tensors `average.net.*`), else θ (`energy.net.*`; `theta.{i}` in
//! format version 1), and from format version 4 the model's fitted scaling of the data
//! (`scaling.shift`, `scaling.scale`: both or neither), which the evaluation applies
//! ([`crate::mlp::Scaling`]). Everything else in the file (snapshot, optimiser, replay
//! buffer) is ignored. The checks are the ones that matter for evaluation: format and version,
//! an MLP config, each tensor's dtype and shape against the config, finite values, scales > 0.
use crate::mlp::{Activation, Hidden, Net, Real, Scaling};
use safetensors::tensor::{Dtype, SafeTensors, TensorInfo};
use sance_cabi::status::{Error, Result};
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
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}: {e}", path.display())))?;
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
    if !(1..=5).contains(&version) {
        return Err(Error::corrupt(format!(
            "checkpoint format version {version}: this sance_eval reads versions 1 to 5"
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
        // A valid file whose activation this evaluator does not know (a newer libsance's):
        // the caller's choice of file, not damage.
        a => {
            return Err(Error::invalid(format!(
                "config activation {a} is not one this evaluator knows (0 SiLU, 1 LeakyReLU): a newer \
                 libsance's file? evaluate it with libsance"
            )))
        }
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
    // The fitted scaling (its config field `scaling`, AUTO or NONE, is not needed: the tensors
    // say whether there is one). Versions 1 to 3 have none.
    let scaled = version >= 4;
    match dtype {
        Dtype::F64 => Ok(Model::F64(build(&st, &names, scaled, dim, width, layers, activation, dtype)?)),
        _ => Ok(Model::F32(build(&st, &names, scaled, dim, width, layers, activation, dtype)?)),
    }
}

/// The file's tensors: where each lies in the data section.
struct Stored<'a> {
    tensors: HashMap<String, &'a TensorInfo>,
    data: &'a [u8],
}

#[allow(clippy::too_many_arguments)]
fn build<T: Real>(
    st: &Stored,
    names: &[String],
    scaled: bool,
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
        tensor(st, name, shape, dtype)?.ok_or_else(|| Error::corrupt(format!("tensor {name:?} is missing")))
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
    let scaling = if scaled { scaling(st, dim, dtype)? } else { None };
    Ok(Net { dim, activation, hidden, w_out: crate::mlp::Aligned::new(&w_out), scaling })
}

/// The fitted scaling, if the file has one: `scaling.shift` and `scaling.scale`, both [dim],
/// both or neither, every scale > 0.
fn scaling<T: Real>(st: &Stored, dim: usize, dtype: Dtype) -> Result<Option<Scaling<T>>> {
    const SHIFT: &str = "scaling.shift";
    const SCALE: &str = "scaling.scale";
    match (st.tensors.contains_key(SHIFT), st.tensors.contains_key(SCALE)) {
        (false, false) => return Ok(None),
        (true, false) => {
            return Err(Error::corrupt(format!("tensor {SCALE:?} is missing (the file has {SHIFT})")))
        }
        (false, true) => {
            return Err(Error::corrupt(format!("tensor {SHIFT:?} is missing (the file has {SCALE})")))
        }
        (true, true) => {}
    }
    let shift: Vec<T> = tensor(st, SHIFT, &[dim], dtype)?.expect("present");
    let scale: Vec<T> = tensor(st, SCALE, &[dim], dtype)?.expect("present");
    if let Some(i) = scale.iter().position(|&s| s <= T::ZERO) {
        return Err(Error::corrupt(format!("{SCALE}[{i}] is {}: a scale must be > 0", scale[i].to_f64())));
    }
    Ok(Some(Scaling::new(shift, scale)))
}

/// The tensor `name` after checking it ([`values`]); None if the file has no such tensor.
fn tensor<T: Real>(st: &Stored, name: &str, shape: &[usize], dtype: Dtype) -> Result<Option<Vec<T>>> {
    let Some(t) = st.tensors.get(name) else { return Ok(None) };
    let (a, b) = t.data_offsets;
    values(t, &st.data[a..b], name, shape, dtype).map(Some)
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

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use sance_cabi::SanceStatus;

    const D: usize = 3;
    const H: usize = 8;

    /// A tensor to add to a forged file: name, shape, values.
    type Extra = (&'static str, Vec<usize>, Vec<f64>);

    /// A forged checkpoint of a 3 → 8 → 8 → 1 SiLU energy (θ, no moving average) in `dtype`,
    /// format `version`, with the extra tensors `extra` (name, shape, values).
    fn forge(version: u32, dtype: Dtype, extra: &[Extra]) -> Vec<u8> {
        let mut s = 99u64;
        let mut r = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.8
        };
        let mut tensors: Vec<(String, Vec<usize>, Vec<f64>)> = Vec::new();
        for (name, shape) in [
            ("energy.net.0.weight", vec![H, D]),
            ("energy.net.0.bias", vec![H]),
            ("energy.net.2.weight", vec![H, H]),
            ("energy.net.2.bias", vec![H]),
            ("energy.net.4.weight", vec![1, H]),
        ] {
            let v = (0..shape.iter().product()).map(|_| r()).collect();
            tensors.push((name.to_string(), shape, v));
        }
        for (name, shape, v) in extra {
            tensors.push((name.to_string(), shape.clone(), v.clone()));
        }
        let bytes: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = tensors
            .into_iter()
            .map(|(name, shape, v)| {
                // A tensor named with a "F64:" prefix is stored as F64 whatever the file's dtype.
                let (name, dt) = match name.strip_prefix("F64:") {
                    Some(n) => (n.to_string(), Dtype::F64),
                    None => (name, dtype),
                };
                let b = match dt {
                    Dtype::F64 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    _ => v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect(),
                };
                (name, shape, dt, b)
            })
            .collect();
        let views: Vec<(String, TensorView)> = bytes
            .iter()
            .map(|(n, shape, dt, b)| (n.clone(), TensorView::new(*dt, shape.clone(), b).unwrap()))
            .collect();
        let config = format!(
            r#"{{"arch":0,"activation":0,"data_dim":{D},"hidden_width":{H},"hidden_layers":2,{}"#,
            r#""ema_decay":0.0,"scaling":0}"#
        );
        let meta: HashMap<String, String> = [
            ("format", "sance-checkpoint".to_string()),
            ("format_version", version.to_string()),
            ("config", config),
            ("dtype", if dtype == Dtype::F64 { "F64" } else { "F32" }.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        safetensors::tensor::serialize(views, &Some(meta)).unwrap()
    }

    fn shift(v: &[f64]) -> Extra {
        ("scaling.shift", vec![v.len()], v.to_vec())
    }
    fn scale(v: &[f64]) -> Extra {
        ("scaling.scale", vec![v.len()], v.to_vec())
    }

    fn corrupt(bytes: &[u8]) -> String {
        let e = from_bytes(bytes).unwrap_err();
        assert_eq!(e.status, SanceStatus::Corrupt, "{}", e.message);
        e.message
    }

    #[test]
    fn version_4_scaling_is_applied() {
        // Powers of two: z = (x − shift)/scale and ∇_z/scale are exact in float32, so the
        // scaled model at x and the same network unscaled at z differ only by Σ ln scale
        // (ln 0.5 here).
        let (sh, sc) = ([1.0, -2.0, 0.5], [0.25, 2.0, 1.0]);
        let log_jacobian: f64 = sc.iter().map(|s: &f64| s.ln()).sum();
        for dtype in [Dtype::F32, Dtype::F64] {
            let scaled = from_bytes(&forge(4, dtype, &[shift(&sh), scale(&sc)])).unwrap();
            let plain = from_bytes(&forge(4, dtype, &[])).unwrap();
            assert!(matches!((&scaled, dtype), (Model::F64(_), Dtype::F64) | (Model::F32(_), Dtype::F32)));
            let n = 20;
            let x: Vec<f32> = (0..n * D).map(|i| ((i * 37) % 29) as f32 / 8.0 - 1.5).collect();
            let z: Vec<f32> =
                x.iter().enumerate().map(|(i, &v)| (v - sh[i % D] as f32) / sc[i % D] as f32).collect();
            for k in [1, n] {
                // k = 1: the one-point path; n: the batch path.
                for c in 0..n / k {
                    let (xs, zs) = (&x[c * k * D..(c + 1) * k * D], &z[c * k * D..(c + 1) * k * D]);
                    let (mut e1, mut g1) = (vec![0f32; k], vec![0f32; k * D]);
                    let (mut e0, mut g0) = (vec![0f32; k], vec![0f32; k * D]);
                    scaled.energy_grad(xs, k, Some(&mut e1), Some(&mut g1));
                    plain.energy_grad(zs, k, Some(&mut e0), Some(&mut g0));
                    for i in 0..k {
                        let want = e0[i] as f64 + log_jacobian;
                        assert!((e1[i] as f64 - want).abs() <= 1e-6 * want.abs().max(1.0), "{e1:?} {e0:?}");
                        for j in 0..D {
                            assert_eq!(
                                g1[i * D + j],
                                g0[i * D + j] / sc[j] as f32,
                                "point {i} coordinate {j}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_libsance_checkpoint_upgraded_to_version_4() {
        // tests/corpus/v3/trained-mlp (2-D, moving average: `average.net.*`, a config without
        // "scaling") rewritten as version 4 with a scaling of powers of two.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/v3/trained-mlp.safetensors");
        let bytes = std::fs::read(path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut md = meta.metadata().clone().unwrap();
        assert!(!md["config"].contains("scaling"));
        md.insert("format_version".into(), "4".into());
        let (sh, sc) = ([3.0f32, -0.5], [0.5f32, 8.0]);
        let (shb, scb): (Vec<u8>, Vec<u8>) = (
            sh.iter().flat_map(|v| v.to_le_bytes()).collect(),
            sc.iter().flat_map(|v| v.to_le_bytes()).collect(),
        );
        let mut views: Vec<(String, TensorView)> = st.tensors();
        views.push(("scaling.shift".into(), TensorView::new(Dtype::F32, vec![2], &shb).unwrap()));
        views.push(("scaling.scale".into(), TensorView::new(Dtype::F32, vec![2], &scb).unwrap()));
        let v4 = safetensors::tensor::serialize(views, &Some(md)).unwrap();
        let (old, new) = (from_bytes(&bytes).unwrap(), from_bytes(&v4).unwrap());
        let x: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        let z: Vec<f32> = x.iter().enumerate().map(|(i, &v)| (v - sh[i % 2]) / sc[i % 2]).collect();
        let (mut e1, mut g1, mut e0, mut g0) = ([0f32; 20], [0f32; 40], [0f32; 20], [0f32; 40]);
        new.energy_grad(&x, 20, Some(&mut e1), Some(&mut g1));
        old.energy_grad(&z, 20, Some(&mut e0), Some(&mut g0));
        let lj = (0.5f64 * 8.0).ln();
        for i in 0..20 {
            assert!((e1[i] as f64 - (e0[i] as f64 + lj)).abs() <= 1e-6 * (e0[i] as f64 + lj).abs().max(1.0));
            assert_eq!([g1[2 * i], g1[2 * i + 1]], [g0[2 * i] / 0.5, g0[2 * i + 1] / 8.0]);
        }
    }

    #[test]
    fn scaling_is_optional_and_only_read_from_version_4() {
        let x = [0.3f32, -0.2, 1.0];
        let energy = |bytes: &[u8]| {
            let mut e = [0f32];
            from_bytes(bytes).unwrap().energy_grad(&x, 1, Some(&mut e), None);
            e[0]
        };
        let plain = energy(&forge(4, Dtype::F32, &[]));
        assert_eq!(plain, energy(&forge(3, Dtype::F32, &[])));
        // Versions before 4 define no scaling tensors: a file that had some would not apply them.
        assert_eq!(plain, energy(&forge(3, Dtype::F32, &[shift(&[1.0; 3]), scale(&[2.0; 3])])));
        assert_ne!(plain, energy(&forge(4, Dtype::F32, &[shift(&[1.0; 3]), scale(&[2.0; 3])])));
        // Version 5 adds only the replay buffer's energies, which the evaluator does not read.
        assert_ne!(plain, energy(&forge(5, Dtype::F32, &[shift(&[1.0; 3]), scale(&[2.0; 3])])));
        assert_eq!(plain, energy(&forge(5, Dtype::F32, &[])));
        let m = corrupt(&forge(6, Dtype::F32, &[]));
        assert!(m.contains("version 6") && m.contains("versions 1 to 5"), "{m}");
    }

    /// A valid file with an activation this evaluator does not know (a newer libsance's) is the
    /// caller's argument, not damage: INVALID_ARGUMENT, naming it.
    #[test]
    fn an_unknown_activation_is_an_invalid_argument() {
        let mut bytes = forge(5, Dtype::F32, &[]);
        // The config is JSON inside the header's JSON (its quotes escaped): the first digit after
        // its key is the activation's.
        let key = bytes.windows(10).position(|w| w == b"activation").expect("the forged config");
        let digit = key + bytes[key..].iter().position(u8::is_ascii_digit).expect("a value");
        assert_eq!(bytes[digit], b'0');
        bytes[digit] = b'7';
        let e = from_bytes(&bytes).unwrap_err();
        assert_eq!(e.status, SanceStatus::InvalidArgument, "{}", e.message);
        assert!(e.message.contains("activation 7"), "{}", e.message);
    }

    #[test]
    fn bad_scaling_is_corrupt_and_named() {
        let good_shift = shift(&[0.0, 1.0, 2.0]);
        let good_scale = scale(&[1.0, 2.0, 3.0]);
        let cases: Vec<(Vec<Extra>, &str)> = vec![
            (vec![good_shift.clone()], "tensor \"scaling.scale\" is missing"),
            (vec![good_scale.clone()], "tensor \"scaling.shift\" is missing"),
            (vec![good_shift.clone(), scale(&[1.0, 0.0, 3.0])], "scaling.scale[1] is 0"),
            (vec![good_shift.clone(), scale(&[1.0, 2.0, -3.0])], "scaling.scale[2] is -3"),
            (vec![good_shift.clone(), scale(&[f64::INFINITY, 2.0, 3.0])], "scaling.scale[0] is not finite"),
            (vec![shift(&[0.0, f64::NAN, 2.0]), good_scale.clone()], "scaling.shift[1] is not finite"),
            (vec![shift(&[0.0, 1.0]), good_scale.clone()], "scaling.shift has shape [2]"),
            (
                vec![good_shift.clone(), ("scaling.scale", vec![1, 3], vec![1.0; 3])],
                "scaling.scale has shape [1, 3]",
            ),
            (vec![good_shift.clone(), ("F64:scaling.scale", vec![3], vec![1.0; 3])], "scaling.scale is F64"),
        ];
        for (extra, want) in cases {
            let m = corrupt(&forge(4, Dtype::F32, &extra));
            assert!(m.contains(want), "{m:?} should contain {want:?}");
        }
    }
}
