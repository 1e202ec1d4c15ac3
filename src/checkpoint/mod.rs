//! Checkpoints: one safetensors file holding everything training needs to continue exactly.
//!
//! Tensors: `theta.{i}` (θ), `snapshot.{i}` (θ̄, absent before the first step), `c`,
//! `adam.m.{i}` / `adam.v.{i}` (θ's moments, then c's at index len(θ)), `replay` (the filled
//! rows of the buffer, absent when empty). Metadata: `format` = "sance-checkpoint",
//! `format_version`, `library`, `dtype`, `config` (JSON), `step`, `refresh_count`, `adam_t`,
//! `rng` (the handle's xoshiro256** state). libtorch's global generator holds no state of a
//! handle's (it is reseeded from the handle's stream for every draw), so resuming is exact.
pub mod atomic;
pub mod config_json;
pub mod safetensors;

use crate::config::validate_config;
use crate::core::ebm::Ebm;
use crate::core::rng::Rng;
use crate::status::{Error, Result, SanceStatus};
use safetensors::{Dtype, Entry, File};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

pub const FORMAT: &str = "sance-checkpoint";
pub const FORMAT_VERSION: u32 = 1;

fn corrupt(msg: impl Into<String>) -> Error {
    Error::new(SanceStatus::Corrupt, msg)
}

fn dtype_of(kind: Kind) -> Result<Dtype> {
    match kind {
        Kind::Float => Ok(Dtype::F32),
        Kind::Double => Ok(Dtype::F64),
        k => Err(Error::invalid(format!("cannot checkpoint a model of kind {k:?}"))),
    }
}

fn entry(name: String, t: &Tensor) -> Result<Entry> {
    let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let dtype = dtype_of(t.kind())?;
    let n = t.numel();
    let data = match dtype {
        Dtype::F64 => {
            let mut v = vec![0f64; n];
            t.f_copy_data(&mut v, n)?;
            v.iter().flat_map(|x| x.to_le_bytes()).collect()
        }
        _ => {
            let mut v = vec![0f32; n];
            t.f_copy_data(&mut v, n)?;
            v.iter().flat_map(|x| x.to_le_bytes()).collect()
        }
    };
    Ok(Entry { name, dtype, shape: t.size().iter().map(|&d| d as usize).collect(), data })
}

/// The checkpoint of a model, as bytes.
pub fn to_bytes(ebm: &Ebm) -> Result<Vec<u8>> {
    let mut entries = Vec::new();
    for (i, p) in ebm.params.iter().enumerate() {
        entries.push(entry(format!("theta.{i}"), p)?);
    }
    for (i, p) in ebm.snapshot.iter().flatten().enumerate() {
        entries.push(entry(format!("snapshot.{i}"), p)?);
    }
    entries.push(entry("c".into(), &ebm.c)?);
    for (i, (m, v)) in ebm.adam.m.iter().zip(&ebm.adam.v).enumerate() {
        entries.push(entry(format!("adam.m.{i}"), m)?);
        entries.push(entry(format!("adam.v.{i}"), v)?);
    }
    if let Some(rows) = ebm.buffer.contents() {
        entries.push(entry("replay".into(), &rows)?);
    }
    let s = ebm.rng.state();
    let meta: BTreeMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("library", crate::ffi::api::version_string().to_string()),
        ("dtype", dtype_of(ebm.kind)?.name().to_string()),
        ("config", config_json::to_json(&ebm.config())),
        ("step", ebm.step.to_string()),
        ("refresh_count", ebm.refresh_count.to_string()),
        ("adam_t", ebm.adam.t.to_string()),
        ("rng", format!("{},{},{},{}", s[0], s[1], s[2], s[3])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(safetensors::encode(&entries, &meta))
}

/// Saves atomically: the previous file at `path` survives any failure.
pub fn save(ebm: &Ebm, path: &Path) -> Result<()> {
    atomic::write_atomic(path, &to_bytes(ebm)?)
}

/// Loads a checkpoint onto `device` (-1 CPU, k CUDA k, -2 auto).
pub fn load(path: &Path, device: i32) -> Result<Ebm> {
    if path.is_dir() {
        return Err(Error::new(
            SanceStatus::Io,
            format!("cannot load {}: it is a directory", path.display()),
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Error::new(SanceStatus::Io, format!("cannot read {}: {e}", path.display())))?;
    from_bytes(bytes, device).map_err(|e| Error::new(e.status, format!("{}: {}", path.display(), e.message)))
}

fn meta<'a>(f: &'a File, key: &str) -> Result<&'a str> {
    f.meta.get(key).map(String::as_str).ok_or_else(|| corrupt(format!("metadata {key:?} is missing")))
}

fn meta_u64(f: &File, key: &str) -> Result<u64> {
    meta(f, key)?.parse().map_err(|_| corrupt(format!("metadata {key:?} is not an unsigned integer")))
}

/// Reads tensor `name`, which must have exactly `shape` and `dtype`, and finite values.
fn tensor(f: &File, name: &str, shape: &[i64], dtype: Dtype, kind: Kind, device: Device) -> Result<Tensor> {
    let (d, s, _) = f.tensors.get(name).ok_or_else(|| corrupt(format!("tensor {name} is missing")))?;
    let want: Vec<usize> = shape.iter().map(|&x| x as usize).collect();
    if *d != dtype || *s != want {
        return Err(corrupt(format!(
            "tensor {name} is {} {s:?}, expected {} {want:?}",
            d.name(),
            dtype.name()
        )));
    }
    let bytes = f.data(name).unwrap();
    let t = match dtype {
        Dtype::F64 => {
            let v: Vec<f64> =
                bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(corrupt(format!("tensor {name} holds non-finite values")));
            }
            Tensor::from_slice(&v)
        }
        _ => {
            let v: Vec<f32> =
                bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(corrupt(format!("tensor {name} holds non-finite values")));
            }
            Tensor::from_slice(&v)
        }
    };
    Ok(t.view(shape).to_kind(kind).to_device(device))
}

/// Rebuilds a model from checkpoint bytes. Every problem is SANCE_STATUS_CORRUPT naming what
/// is wrong, except a device that does not exist (SANCE_STATUS_DEVICE).
pub fn from_bytes(bytes: Vec<u8>, device: i32) -> Result<Ebm> {
    let f = safetensors::decode(bytes).map_err(|e| corrupt(format!("not a valid safetensors file: {e}")))?;
    if f.meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(corrupt("not a sance checkpoint: metadata \"format\" is not \"sance-checkpoint\""));
    }
    let version = meta_u64(&f, "format_version")?;
    if version != FORMAT_VERSION as u64 {
        return Err(corrupt(format!(
            "checkpoint format version {version} is not supported: this library reads version {FORMAT_VERSION}{}",
            if version > FORMAT_VERSION as u64 { " (written by a newer sance)" } else { "" }
        )));
    }
    let mut cfg = config_json::from_json(meta(&f, "config")?).map_err(corrupt)?;
    validate_config(&cfg)
        .map_err(|e| corrupt(format!("the stored config fails validation: {}", e.message)))?;
    let dtype = match meta(&f, "dtype")? {
        "F32" => Dtype::F32,
        "F64" => Dtype::F64,
        d => return Err(corrupt(format!("metadata \"dtype\" is {d:?}, expected F32 or F64"))),
    };
    let kind = if dtype == Dtype::F64 { Kind::Double } else { Kind::Float };
    cfg.device = device;
    let mut ebm = Ebm::with_kind(&cfg, kind)?;
    let dev = ebm.device;

    let mut expected: Vec<String> = Vec::new();
    let shapes: Vec<Vec<i64>> = ebm.params.iter().map(|p| p.size()).collect();
    let mut theta = Vec::new();
    for (i, s) in shapes.iter().enumerate() {
        theta.push(tensor(&f, &format!("theta.{i}"), s, dtype, kind, dev)?);
        expected.push(format!("theta.{i}"));
    }
    let has_snapshot = f.tensors.contains_key("snapshot.0");
    let mut snapshot = None;
    if has_snapshot {
        let mut snap = Vec::new();
        for (i, s) in shapes.iter().enumerate() {
            snap.push(tensor(&f, &format!("snapshot.{i}"), s, dtype, kind, dev)?);
            expected.push(format!("snapshot.{i}"));
        }
        snapshot = Some(snap);
    }
    let c = tensor(&f, "c", &[], dtype, kind, dev)?;
    expected.push("c".into());
    let mut moments = Vec::new();
    for (i, s) in shapes.iter().chain(std::iter::once(&vec![])).enumerate() {
        let m = tensor(&f, &format!("adam.m.{i}"), s, dtype, kind, dev)?;
        let v = tensor(&f, &format!("adam.v.{i}"), s, dtype, kind, dev)?;
        if v.lt(0.0).any().int64_value(&[]) != 0 {
            return Err(corrupt(format!("tensor adam.v.{i} holds negative second moments")));
        }
        moments.push((m, v));
        expected.extend([format!("adam.m.{i}"), format!("adam.v.{i}")]);
    }
    let replay = match f.tensors.get("replay") {
        None => None,
        Some((_, s, _)) => {
            let len = s.first().copied().unwrap_or(0);
            if len == 0 || len > cfg.replay_capacity as usize {
                return Err(corrupt(format!(
                    "tensor replay has {len} rows; expected 1..={} (replay_capacity)",
                    cfg.replay_capacity
                )));
            }
            expected.push("replay".into());
            Some(tensor(&f, "replay", &ebm.batch_shape(len as i64), dtype, kind, dev)?)
        }
    };
    if let Some(extra) = f.tensors.keys().find(|k| !expected.contains(k)) {
        return Err(corrupt(format!("unexpected tensor {extra}")));
    }
    let step = meta_u64(&f, "step")?;
    let refresh_count = meta_u64(&f, "refresh_count")?;
    let adam_t = meta_u64(&f, "adam_t")?;
    if refresh_count > step + 1 + u32::MAX as u64 || adam_t > step || (step > 0 && !has_snapshot) {
        return Err(corrupt(format!(
            "counters are inconsistent: step {step}, refresh_count {refresh_count}, adam_t {adam_t}, snapshot {}",
            if has_snapshot { "present" } else { "absent" }
        )));
    }
    let rng: Vec<u64> = meta(&f, "rng")?
        .split(',')
        .map(|x| x.parse::<u64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| corrupt("metadata \"rng\" is not four unsigned integers"))?;
    let rng = <[u64; 4]>::try_from(rng)
        .ok()
        .and_then(Rng::from_state)
        .ok_or_else(|| corrupt("metadata \"rng\" is not a valid generator state"))?;

    tch::no_grad(|| {
        for (p, t) in ebm.params.iter_mut().zip(&theta) {
            p.copy_(t);
        }
        ebm.c.copy_(&c);
        for (i, (m, v)) in moments.iter().enumerate() {
            ebm.adam.m[i].copy_(m);
            ebm.adam.v[i].copy_(v);
        }
    });
    ebm.snapshot = snapshot;
    ebm.adam.t = adam_t;
    if let Some(rows) = replay {
        ebm.buffer.restore(&rows);
    }
    ebm.rng = rng;
    ebm.step = step;
    ebm.refresh_count = refresh_count;
    Ok(ebm)
}
