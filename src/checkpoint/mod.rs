//! Checkpoints: one safetensors file holding everything training needs to continue exactly.
//!
//! Tensors (format versions 2 and 3) are named as PyTorch's `state_dict()` names the model written
//! as `torch.nn` modules (tests/python/twin.py): `energy.net.0.weight`, … (θ), the same under
//! `snapshot.` (θ̄, absent before the first step), `c`, then what only training needs:
//! `optimizer.exp_avg.<name>` and `optimizer.exp_avg_sq.<name>` (AdamW's moments, named after
//! the parameter, `c` included) and `replay` (the filled rows of the buffer, absent when
//! empty), and for classic NCE (`SANCE_NOISE_GAUSSIAN`) the fitted noise: `noise.mean` [D] and
//! `noise.scale` (its Cholesky factor [D, D], or its std [D] when diagonal). Metadata:
//! `format` = "sance-checkpoint", `format_version`, `library`, `dtype`, `config` (JSON),
//! `step`, `refresh_count`, `adam_t`, `rng` (the handle's xoshiro256** state). libtorch's
//! global generator holds no state of a handle's (it is reseeded from the handle's stream for
//! every draw), so resuming is exact.
//!
//! Version 3 (ABI 4) adds `average.<name>`: the parameters' moving average θ̃, present
//! when `config.ema_decay` > 0. Version 2 files (no average; their config has no
//! `ema_decay`, so 0) and version 1 files (sance 0.1: tensors `theta.{i}`, `snapshot.{i}`,
//! `adam.m.{i}`, `adam.v.{i}` by position) load too; saving always writes version 3.
//!
//! Version 4 (ABI 5) adds the data's fitted scaling (`config.scaling` AUTO, MLP):
//! `scaling.shift` [D] and `scaling.scale` [D], present together once fitted (x = shift +
//! scale ⊙ z; the network, the snapshot, the replay rows and the fitted noise are in z). Files
//! of versions 1–3 have none, and their config no `scaling` field (so NONE): they load with the
//! energies they had.
//!
//! Version 5 adds `replay.energies` [len]: the replay rows' energies under the snapshot,
//! present when the buffer knows them (ρ = 0, the default). The next refresh resamples the
//! population with them; recomputed after a load they could differ in the last bits and pick
//! other chains, so a resumed run or a clone would not train as the original. Files of
//! versions 1–4 load without them (the refresh computes them).
//!
//! The file format itself is read and written by the `safetensors` crate (its reader checks
//! the header's size, JSON and offsets, and that the tensors tile the data exactly); this
//! module adds the checks of a sance checkpoint: names, dtypes, shapes, finite values,
//! counters, the config.
pub mod atomic;

use crate::abi::config::{validate_config, SanceConfig};
use crate::abi::config_json;
use crate::abi::status::{Error, Result};
use crate::abi::version::{version_string, SANCE_ABI_VERSION};
use crate::model::ebm::state::TrainerState;
use crate::model::ebm::Ebm;
use crate::model::rng::Rng;
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use tch::{Device, Kind, Tensor};

pub(crate) const FORMAT: &str = "sance-checkpoint";
/// The format version written; versions 1 to 3 are read too.
pub(crate) const FORMAT_VERSION: u32 = 5;

fn corrupt(msg: impl Into<String>) -> Error {
    Error::corrupt(msg)
}

fn dtype_of(kind: Kind) -> Result<Dtype> {
    match kind {
        Kind::Float => Ok(Dtype::F32),
        Kind::Double => Ok(Dtype::F64),
        k => Err(Error::invalid(format!("cannot checkpoint a model of kind {k:?}"))),
    }
}

/// A tensor's bytes on the host, for the safetensors writer (`safetensors::serialize` takes
/// `(name, &Entry)` pairs). Public so that tests which forge or rewrite checkpoints build their
/// tensors the same way.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub data: Vec<u8>,
}

impl View for &Entry {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// The two element types a checkpoint stores, read and written by one generic path.
trait StoredFloat: tch::kind::Element + Copy + Default {
    const BYTES: usize;
    fn to_le(self) -> Vec<u8>;
    fn from_le(b: &[u8]) -> Self;
    fn finite(self) -> bool;
}

impl StoredFloat for f32 {
    const BYTES: usize = 4;
    fn to_le(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
    fn from_le(b: &[u8]) -> f32 {
        f32::from_le_bytes(b.try_into().expect("4 bytes"))
    }
    fn finite(self) -> bool {
        self.is_finite()
    }
}

impl StoredFloat for f64 {
    const BYTES: usize = 8;
    fn to_le(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
    fn from_le(b: &[u8]) -> f64 {
        f64::from_le_bytes(b.try_into().expect("8 bytes"))
    }
    fn finite(self) -> bool {
        self.is_finite()
    }
}

/// A contiguous host tensor's `n` elements as little-endian bytes.
fn le_bytes<T: StoredFloat>(t: &Tensor, n: usize) -> Result<Vec<u8>> {
    let mut v = vec![T::default(); n];
    t.f_copy_data(&mut v, n)?;
    Ok(v.into_iter().flat_map(T::to_le).collect())
}

/// Little-endian bytes as a host tensor, CORRUPT (naming the tensor) when a value is not finite.
fn from_le_bytes<T: StoredFloat>(bytes: &[u8], name: &str) -> Result<Tensor> {
    let v: Vec<T> = bytes.chunks_exact(T::BYTES).map(T::from_le).collect();
    if v.iter().any(|x| !x.finite()) {
        return Err(corrupt(format!("tensor {name} holds non-finite values")));
    }
    Ok(Tensor::f_from_slice(&v)?)
}

/// `t`'s bytes on the host (float32 or float64; other kinds are refused).
pub fn entry(t: &Tensor) -> Result<Entry> {
    let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let dtype = dtype_of(t.kind())?;
    let n = t.numel();
    let data = if dtype == Dtype::F64 { le_bytes::<f64>(&t, n)? } else { le_bytes::<f32>(&t, n)? };
    Ok(Entry { dtype, shape: t.size().iter().map(|&d| d as usize).collect(), data })
}

/// The tensor names of one format version, for a network whose parameters are `params`
/// ([`crate::model::net::Net::param_names`]).
struct Names {
    energy: Vec<String>,
    snapshot: Vec<String>,
    average: Vec<String>,
    /// θ's moments, then c's.
    exp_avg: Vec<String>,
    exp_avg_sq: Vec<String>,
}

impl Names {
    fn new(version: u64, params: &[String]) -> Names {
        let n = params.len();
        if version == 1 {
            let numbered = |prefix: &str, k: usize| (0..k).map(|i| format!("{prefix}.{i}")).collect();
            return Names {
                energy: numbered("theta", n),
                snapshot: numbered("snapshot", n),
                average: numbered("average", n),
                exp_avg: numbered("adam.m", n + 1),
                exp_avg_sq: numbered("adam.v", n + 1),
            };
        }
        let prefixed = |prefix: &str| params.iter().map(|p| format!("{prefix}.{p}")).collect::<Vec<_>>();
        let moments = |which: &str| {
            let mut v = prefixed(&format!("optimizer.{which}.energy"));
            v.push(format!("optimizer.{which}.c"));
            v
        };
        Names {
            energy: prefixed("energy"),
            snapshot: prefixed("snapshot"),
            average: prefixed("average"),
            exp_avg: moments("exp_avg"),
            exp_avg_sq: moments("exp_avg_sq"),
        }
    }
}

/// The checkpoint of a model, as bytes.
pub fn to_bytes(ebm: &Ebm) -> Result<Vec<u8>> {
    crate::fault::torch_point()?;
    let state = ebm.persistent_state();
    let names = Names::new(FORMAT_VERSION as u64, &ebm.net().param_names());
    let mut entries: Vec<(String, Entry)> = Vec::new();
    for (name, p) in names.energy.iter().zip(&state.theta) {
        entries.push((name.clone(), entry(p)?));
    }
    if let Some(snapshot) = &state.snapshot {
        for (name, p) in names.snapshot.iter().zip(snapshot) {
            entries.push((name.clone(), entry(p)?));
        }
    }
    if let Some(average) = &state.average {
        for (name, p) in names.average.iter().zip(average) {
            entries.push((name.clone(), entry(p)?));
        }
    }
    entries.push(("c".into(), entry(&state.c)?));
    for (i, (m, v)) in state.exp_avg.iter().zip(&state.exp_avg_sq).enumerate() {
        entries.push((names.exp_avg[i].clone(), entry(m)?));
        entries.push((names.exp_avg_sq[i].clone(), entry(v)?));
    }
    if let Some(rows) = &state.replay {
        entries.push(("replay".into(), entry(rows)?));
        if let Some(e) = &state.replay_energies {
            entries.push(("replay.energies".into(), entry(e)?));
        }
    }
    if let Some((mean, scale)) = &state.gaussian_noise {
        entries.push(("noise.mean".into(), entry(mean)?));
        entries.push(("noise.scale".into(), entry(scale)?));
    }
    if let Some((shift, scale)) = &state.scaling {
        entries.push(("scaling.shift".into(), entry(shift)?));
        entries.push(("scaling.scale".into(), entry(scale)?));
    }
    let s = state.rng.state();
    let meta: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("library", version_string().to_string()),
        ("dtype", format!("{:?}", dtype_of(ebm.kind())?)),
        ("config", config_json::to_json(&ebm.config())),
        ("step", state.step.to_string()),
        ("refresh_count", state.refresh_count.to_string()),
        ("adam_t", state.adam_t.to_string()),
        ("rng", format!("{},{},{},{}", s[0], s[1], s[2], s[3])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut bytes = safetensors::tensor::serialize(entries.iter().map(|(n, e)| (n.as_str(), e)), &Some(meta))
        .map_err(|e| Error::io(format!("cannot encode the checkpoint: {}", describe(&e))))?;
    sort_header(&mut bytes)?;
    Ok(bytes)
}

/// The safetensors crate writes the metadata from a HashMap, in an order that changes from
/// run to run; rewrite the header (same length) with its keys sorted, so that saving the same
/// model always gives the same bytes.
fn sort_header(bytes: &mut [u8]) -> Result<()> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        meta: BTreeMap<String, String>,
        #[serde(flatten)]
        tensors: BTreeMap<String, serde_json::Value>,
    }
    let fail = |what: String| Error::io(format!("cannot encode the checkpoint: {what}"));
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: Header = serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| fail(e.to_string()))?;
    let sorted = serde_json::to_vec(&header).map_err(|e| fail(e.to_string()))?;
    if sorted.len() > n {
        return Err(fail(format!("the sorted header is {} bytes, not {n}", sorted.len())));
    }
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + n].fill(b' ');
    Ok(())
}

/// Saves atomically: the previous file at `path` survives any failure.
pub fn save(ebm: &Ebm, path: &Path) -> Result<()> {
    atomic::write_atomic(path, &to_bytes(ebm)?)
}

/// Loads a checkpoint onto `device` (-1 CPU, k CUDA k, -2 auto).
pub fn load(path: &Path, device: i32) -> Result<Ebm> {
    if path.is_dir() {
        return Err(Error::io(format!("cannot load {}: it is a directory", path.display())));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}: {e}", path.display())))?;
    from_bytes(bytes, device).map_err(|e| Error::new(e.status, format!("{}: {}", path.display(), e.message)))
}

/// What the safetensors reader found wrong, in words.
fn describe(e: &SafeTensorError) -> String {
    use SafeTensorError::*;
    match e {
        HeaderTooSmall => "the file is too short for a safetensors header".into(),
        HeaderTooLarge | InvalidHeaderLength => {
            "the header length exceeds the file: truncated or not safetensors".into()
        }
        InvalidHeader => "the header is not UTF-8".into(),
        InvalidHeaderStart => "the header is not a JSON object".into(),
        InvalidHeaderDeserialization => "the header is not valid safetensors JSON".into(),
        InvalidOffset(name) => format!("tensor {name}: data offsets are not contiguous"),
        TensorInvalidInfo => "a tensor's shape does not match its bytes".into(),
        MetadataIncompleteBuffer => "the data section does not match the tensors: truncated or padded".into(),
        ValidationOverflow => "a tensor's size overflows".into(),
        other => format!("{other:?}"),
    }
}

/// One tensor of a parsed file.
struct Stored<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    data: &'a [u8],
}

/// The parsed file: metadata, and the tensors with their bytes.
struct File<'a> {
    meta: HashMap<String, String>,
    tensors: HashMap<String, Stored<'a>>,
}

fn decode(bytes: &[u8]) -> Result<File<'_>> {
    let (n, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| corrupt(format!("not a valid safetensors file: {}", describe(&e))))?;
    // read_metadata has checked that the tensors tile the data section exactly.
    let data = &bytes[8 + n..];
    let tensors = header
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let (a, b) = t.data_offsets;
            (name, Stored { dtype: t.dtype, shape: t.shape.clone(), data: &data[a..b] })
        })
        .collect();
    Ok(File { meta: header.metadata().clone().unwrap_or_default(), tensors })
}

fn meta<'a>(f: &'a File, key: &str) -> Result<&'a str> {
    f.meta.get(key).map(String::as_str).ok_or_else(|| corrupt(format!("metadata {key:?} is missing")))
}

fn meta_u64(f: &File, key: &str) -> Result<u64> {
    meta(f, key)?.parse().map_err(|_| corrupt(format!("metadata {key:?} is not an unsigned integer")))
}

/// Reads tensor `name`, which must have exactly `shape` and `dtype`, and finite values.
fn tensor(f: &File, name: &str, shape: &[i64], dtype: Dtype, kind: Kind, device: Device) -> Result<Tensor> {
    let t = f.tensors.get(name).ok_or_else(|| corrupt(format!("tensor {name} is missing")))?;
    let want: Vec<usize> = shape.iter().map(|&x| x as usize).collect();
    if t.dtype != dtype || t.shape != want {
        return Err(corrupt(format!(
            "tensor {name} is {:?} {:?}, expected {dtype:?} {want:?}",
            t.dtype, t.shape
        )));
    }
    let host = if dtype == Dtype::F64 {
        from_le_bytes::<f64>(t.data, name)?
    } else {
        from_le_bytes::<f32>(t.data, name)?
    };
    Ok(host.f_view(shape)?.f_to_kind(kind)?.f_to_device(device)?)
}

/// Rebuilds a model from checkpoint bytes in three steps: the metadata (format, version,
/// config, dtype), a fresh model of the stored config, then the tensors and the counters,
/// decoded and validated into the [`TrainerState`] that the model installs. Every problem is
/// SANCE_STATUS_CORRUPT naming what is wrong, except a device that does not exist
/// (SANCE_STATUS_DEVICE).
pub fn from_bytes(bytes: Vec<u8>, device: i32) -> Result<Ebm> {
    let f = decode(&bytes)?;
    let (mut cfg, version, dtype) = header(&f)?;
    let kind = if dtype == Dtype::F64 { Kind::Double } else { Kind::Float };
    cfg.device = device;
    let mut ebm = Ebm::with_kind(&cfg, kind)?;
    let t = tensors(&f, &ebm, &cfg, version, dtype)?;
    let (step, refresh_count, adam_t, rng) = counters(&f, &cfg, &t)?;
    ebm.install_state(TrainerState {
        theta: t.theta,
        average: t.average,
        snapshot: t.snapshot,
        c: t.c,
        exp_avg: t.exp_avg,
        exp_avg_sq: t.exp_avg_sq,
        adam_t,
        replay: t.replay,
        replay_energies: t.replay_energies,
        gaussian_noise: t.noise,
        scaling: t.scaling,
        rng,
        step,
        refresh_count,
    })?;
    Ok(ebm)
}

/// The tensors of a checkpoint, each checked against the model's shapes.
struct Tensors {
    theta: Vec<Tensor>,
    snapshot: Option<Vec<Tensor>>,
    average: Option<Vec<Tensor>>,
    c: Tensor,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    replay: Option<Tensor>,
    replay_energies: Option<Tensor>,
    noise: Option<(Tensor, Tensor)>,
    scaling: Option<(Tensor, Tensor)>,
}

/// Step 1: the metadata — the format, a version this library reads, the stored config
/// (validated, in this library's layout) and the element type.
fn header(f: &File) -> Result<(SanceConfig, u64, Dtype)> {
    if f.meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(corrupt("not a sance checkpoint: metadata \"format\" is not \"sance-checkpoint\""));
    }
    let version = meta_u64(f, "format_version")?;
    if !(1..=FORMAT_VERSION as u64).contains(&version) {
        return Err(corrupt(format!(
            "checkpoint format version {version} is not supported: this library reads versions 1 to \
             {FORMAT_VERSION}{}",
            if version > FORMAT_VERSION as u64 { " (written by a newer sance)" } else { "" }
        )));
    }
    let mut cfg = config_json::from_json(meta(f, "config")?).map_err(corrupt)?;
    // The stored abi_version is that of the library that wrote the file; the layout in
    // memory is this library's.
    cfg.abi_version = SANCE_ABI_VERSION;
    validate_config(&cfg)
        .map_err(|e| corrupt(format!("the stored config fails validation: {}", e.message)))?;
    let dtype = match meta(f, "dtype")? {
        "F32" => Dtype::F32,
        "F64" => Dtype::F64,
        d => return Err(corrupt(format!("metadata \"dtype\" is {d:?}, expected F32 or F64"))),
    };
    Ok((cfg, version, dtype))
}

/// Step 2: every tensor the config and version call for, with its shape, element type and
/// values checked, and no tensor besides them.
fn tensors(f: &File, ebm: &Ebm, cfg: &SanceConfig, version: u64, dtype: Dtype) -> Result<Tensors> {
    let kind = if dtype == Dtype::F64 { Kind::Double } else { Kind::Float };
    let dev = ebm.device();
    let names = Names::new(version, &ebm.net().param_names());

    let mut expected: BTreeSet<String> = BTreeSet::new();
    let shapes: Vec<Vec<i64>> = ebm.params().iter().map(|p| p.size()).collect();
    let read_all = |names: &[String], shapes: &[Vec<i64>], expected: &mut BTreeSet<String>| {
        names
            .iter()
            .zip(shapes)
            .map(|(name, s)| {
                expected.insert(name.clone());
                tensor(f, name, s, dtype, kind, dev)
            })
            .collect::<Result<Vec<Tensor>>>()
    };
    let theta = read_all(&names.energy, &shapes, &mut expected)?;
    let has_snapshot = f.tensors.contains_key(&names.snapshot[0]);
    let snapshot = if has_snapshot { Some(read_all(&names.snapshot, &shapes, &mut expected)?) } else { None };
    // Only a model that averages reads its average; in any other file it is an unexpected tensor.
    let average = if cfg.ema_decay > 0.0 && f.tensors.contains_key(&names.average[0]) {
        Some(read_all(&names.average, &shapes, &mut expected)?)
    } else {
        None
    };
    let c = read_all(&["c".to_string()], &[vec![]], &mut expected)?.remove(0);
    let mut moment_shapes = shapes.clone();
    moment_shapes.push(vec![]);
    let exp_avg = read_all(&names.exp_avg, &moment_shapes, &mut expected)?;
    let exp_avg_sq = read_all(&names.exp_avg_sq, &moment_shapes, &mut expected)?;
    for (name, v) in names.exp_avg_sq.iter().zip(&exp_avg_sq) {
        if v.f_lt(0.0)?.f_any()?.f_int64_value(&[])? != 0 {
            return Err(corrupt(format!("tensor {name} holds negative second moments")));
        }
    }
    let replay = match f.tensors.get("replay") {
        None => None,
        Some(t) => {
            let len = t.shape.first().copied().unwrap_or(0);
            if len == 0 || len > cfg.replay_capacity as usize {
                return Err(corrupt(format!(
                    "tensor replay has {len} rows; expected 1..={} (replay_capacity)",
                    cfg.replay_capacity
                )));
            }
            let shape = ebm.batch_shape(len as i64);
            Some(read_all(&["replay".to_string()], &[shape], &mut expected)?.remove(0))
        }
    };
    // Only beside the rows it belongs to; anywhere else it is an unexpected tensor.
    let replay_energies = match (&replay, f.tensors.get("replay.energies")) {
        (Some(rows), Some(_)) => {
            let len = rows.size()[0];
            Some(read_all(&["replay.energies".to_string()], &[vec![len]], &mut expected)?.remove(0))
        }
        _ => None,
    };
    let gaussian_noise = cfg.noise == crate::abi::config::SanceNoise::Gaussian;
    let noise = match (f.tensors.get("noise.mean"), f.tensors.get("noise.scale")) {
        (None, None) => None,
        (Some(_), Some(scale)) if gaussian_noise => {
            let d = ebm.sample_size() as i64;
            let scale_shape = if scale.shape.len() == 2 { vec![d, d] } else { vec![d] };
            let t = read_all(
                &["noise.mean".to_string(), "noise.scale".to_string()],
                &[vec![d], scale_shape],
                &mut expected,
            )?;
            let scale = &t[1];
            let diag = if scale.dim() == 2 { scale.f_diagonal(0, 0, 1)? } else { scale.shallow_clone() };
            let bad_diag = diag.f_le(0.0)?.f_any()?.f_int64_value(&[])? != 0;
            let bad_tril = scale.dim() == 2 && scale.f_triu(1)?.f_ne(0.0)?.f_any()?.f_int64_value(&[])? != 0;
            if bad_diag || bad_tril {
                return Err(corrupt(
                    "tensor noise.scale is not a Cholesky factor (lower triangular, positive diagonal) or a \
                     positive std",
                ));
            }
            Some((t[0].shallow_clone(), t[1].shallow_clone()))
        }
        (Some(_), Some(_)) => {
            return Err(corrupt(
                "tensors noise.mean and noise.scale are present, but config.noise is SANCE_NOISE_SNAPSHOT",
            ))
        }
        _ => return Err(corrupt("tensors noise.mean and noise.scale must be present together")),
    };
    let scaling = match (f.tensors.get("scaling.shift"), f.tensors.get("scaling.scale")) {
        (None, None) => None,
        (Some(_), Some(_))
            if cfg.scaling == crate::abi::config::SanceScaling::Auto
                && cfg.arch == crate::abi::config::SanceArch::Mlp =>
        {
            let d = ebm.sample_size() as i64;
            let t = read_all(
                &["scaling.shift".to_string(), "scaling.scale".to_string()],
                &[vec![d], vec![d]],
                &mut expected,
            )?;
            if t[1].f_le(0.0)?.f_any()?.f_int64_value(&[])? != 0 {
                return Err(corrupt("tensor scaling.scale holds a scale <= 0"));
            }
            Some((t[0].shallow_clone(), t[1].shallow_clone()))
        }
        (Some(_), Some(_)) => {
            return Err(corrupt(
                "tensors scaling.shift and scaling.scale are present, but the config is not an MLP with \
                 scaling SANCE_SCALING_AUTO",
            ))
        }
        _ => return Err(corrupt("tensors scaling.shift and scaling.scale must be present together")),
    };
    if let Some(extra) = f.tensors.keys().find(|k| !expected.contains(*k)) {
        return Err(corrupt(format!("unexpected tensor {extra}")));
    }
    Ok(Tensors { theta, snapshot, average, c, exp_avg, exp_avg_sq, replay, replay_energies, noise, scaling })
}

/// Step 3: the counters and the random stream, consistent with each other and with the
/// tensors (a trained model has its snapshot or its fitted noise).
fn counters(f: &File, cfg: &SanceConfig, t: &Tensors) -> Result<(u64, u64, u64, Rng)> {
    let gaussian_noise = cfg.noise == crate::abi::config::SanceNoise::Gaussian;
    let has_snapshot = t.snapshot.is_some();
    let step = meta_u64(f, "step")?;
    let refresh_count = meta_u64(f, "refresh_count")?;
    let adam_t = meta_u64(f, "adam_t")?;
    let noise_missing = if gaussian_noise { t.noise.is_none() } else { !has_snapshot };
    let refresh_bad = if gaussian_noise {
        refresh_count != 0 || has_snapshot
    } else {
        refresh_count > step + 1 + u32::MAX as u64
    };
    if refresh_bad || adam_t > step || (step > 0 && noise_missing) {
        return Err(corrupt(format!(
            "counters are inconsistent: step {step}, refresh_count {refresh_count}, adam_t {adam_t}, {} {}",
            if gaussian_noise { "fitted noise" } else { "snapshot" },
            if noise_missing { "absent" } else { "present" }
        )));
    }
    let rng: Vec<u64> = meta(f, "rng")?
        .split(',')
        .map(|x| x.parse::<u64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| corrupt("metadata \"rng\" is not four unsigned integers"))?;
    let rng = <[u64; 4]>::try_from(rng)
        .ok()
        .and_then(Rng::from_state)
        .ok_or_else(|| corrupt("metadata \"rng\" is not a valid generator state"))?;
    Ok((step, refresh_count, adam_t, rng))
}
