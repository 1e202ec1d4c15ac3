//! Checkpoints: exact resume, atomic saves under injected faults, and loads that reject every
//! kind of damaged file with SANCE_STATUS_CORRUPT (or IO for a missing/unreadable one).
mod common;
use common::*;
use safetensors::tensor::{Dtype, SafeTensors};
use sance::abi::config::{SANCE_DEVICE_AUTO, SANCE_DEVICE_CPU};
use sance::fault::{inject_save_fault as inject_fault, FaultPoint};
use sance::ffi::api::*;
use sance::ffi::handle::SanceEbm;
use sance::SanceStatus;
use std::collections::{BTreeMap, HashMap};
use std::ptr;

/// One named tensor of a safetensors file, for tests that take checkpoints apart (the
/// library's own entry type, so that the tests write tensors as it does).
struct Entry {
    name: String,
    tensor: sance::checkpoint::Entry,
}

impl std::ops::Deref for Entry {
    type Target = sance::checkpoint::Entry;
    fn deref(&self) -> &Self::Target {
        &self.tensor
    }
}

impl std::ops::DerefMut for Entry {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tensor
    }
}

impl Entry {
    fn new(name: &str, dtype: Dtype, shape: Vec<usize>, data: Vec<u8>) -> Entry {
        Entry { name: name.into(), tensor: sance::checkpoint::Entry { dtype, shape, data } }
    }
}

fn encode(entries: &[Entry], meta: &BTreeMap<String, String>) -> Vec<u8> {
    let meta: HashMap<String, String> = meta.clone().into_iter().collect();
    safetensors::tensor::serialize(entries.iter().map(|e| (e.name.as_str(), &e.tensor)), &Some(meta)).unwrap()
}

fn decode(bytes: &[u8]) -> (Vec<Entry>, BTreeMap<String, String>) {
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let meta = header.metadata().clone().unwrap_or_default().into_iter().collect();
    let st = SafeTensors::deserialize(bytes).unwrap();
    let entries = st
        .tensors()
        .into_iter()
        .map(|(name, t)| Entry::new(&name, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    (entries, meta)
}

fn save(h: *mut SanceEbm, path: &std::path::Path) -> SanceStatus {
    unsafe { sance_ebm_save(h, cpath(path).as_ptr()) }
}

fn load(path: &std::path::Path) -> (SanceStatus, *mut SanceEbm) {
    let mut h = ptr::null_mut();
    let s = unsafe { sance_ebm_load(cpath(path).as_ptr(), SANCE_DEVICE_CPU, &mut h) };
    (s, h)
}

fn samples(h: *mut SanceEbm) -> Vec<f32> {
    let mut out = vec![0f32; 2 * 40];
    assert_eq!(unsafe { sance_ebm_sample(h, 40, ptr::null(), out.as_mut_ptr()) }, SanceStatus::Ok);
    out
}

#[test]
fn resume_is_bit_exact() {
    let dir = scratch("resume");
    let path = dir.join("model.safetensors");
    // N + M steps without stopping.
    let a = new(&small_config());
    train(a, 0..30);
    train(a, 30..55);
    let (e_a, s_a) = (probe(a), samples(a));
    // N steps, save, free, load, M steps.
    let b = new(&small_config());
    train(b, 0..30);
    assert_eq!(save(b, &path), SanceStatus::Ok, "{}", last_error());
    unsafe { sance_ebm_free(b) };
    let (st, c) = load(&path);
    assert_eq!(st, SanceStatus::Ok, "{}", last_error());
    train(c, 30..55);
    assert_eq!(bits(&probe(c)), bits(&e_a), "energies after resume");
    assert_eq!(bits(&samples(c)), bits(&s_a), "samples after resume");
    let mut stats = sance::SanceStepStats::default();
    let d = data("8gaussians", 32, 99);
    unsafe { sance_ebm_train_step(c, d.as_ptr(), 32, &mut stats) };
    assert_eq!(stats.step, 56);
    unsafe { sance_ebm_free(a) };
    unsafe { sance_ebm_free(c) };
}

/// At the default replay capacity (8,192 chains, the population each refresh reweights and
/// resamples): a loaded model resaves to the same bytes (the buffer's energies included:
/// recomputed after a load they could differ in the last bits, and in 5–10 % of resumes the
/// resampling then picked other chains), and a resumed run and a clone train as the original
/// through two refreshes (K = 50; saved at step 45, trained to 110).
#[test]
fn resume_and_clone_are_exact_at_the_default_capacity() {
    let cfg = sance::SanceConfig { device: test_device(), data_dim: 2, ..Default::default() };
    assert_eq!(cfg.replay_capacity, 8192);
    let steps = |h: *mut SanceEbm, range: std::ops::Range<u64>| {
        for t in range {
            let d = data("8gaussians", 256, t);
            let s = unsafe { sance_ebm_train_step(h, d.as_ptr(), 256, ptr::null_mut()) };
            assert_eq!(s, SanceStatus::Ok, "{}", last_error());
        }
    };
    let dir = scratch("resume-default");
    let a = new(&cfg);
    steps(a, 0..45);
    let (first, again) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    assert_eq!(save(a, &first), SanceStatus::Ok, "{}", last_error());
    let (entries, _) = decode(&std::fs::read(&first).unwrap());
    let rows = entries.iter().find(|e| e.name == "replay").expect("the population is saved");
    assert_eq!(rows.shape[0], 8192, "the population is full by step 45");
    assert!(entries.iter().any(|e| e.name == "replay.energies"), "its energies are saved");
    let (st, b) = load(&first);
    assert_eq!(st, SanceStatus::Ok, "{}", last_error());
    assert_eq!(save(b, &again), SanceStatus::Ok, "{}", last_error());
    assert!(
        std::fs::read(&first).unwrap() == std::fs::read(&again).unwrap(),
        "a loaded model resaves differently"
    );
    let mut c = ptr::null_mut();
    assert_eq!(unsafe { sance_ebm_clone(a, &mut c) }, SanceStatus::Ok, "{}", last_error());
    for h in [a, b, c] {
        steps(h, 45..110);
    }
    let (e_a, s_a) = (bits(&probe(a)), bits(&samples(a)));
    for (h, what) in [(b, "resumed"), (c, "cloned")] {
        assert_eq!(bits(&probe(h)), e_a, "energies of the {what} run");
        assert_eq!(bits(&samples(h)), s_a, "samples of the {what} run");
        unsafe { sance_ebm_free(h) };
    }
    unsafe { sance_ebm_free(a) };
}

/// A model without a population (classic NCE) keeps its first default draw's annealed
/// particles as a pool for later draws; a clone copies the pool, so it draws as the original
/// would (the same bits, from the pool).
#[test]
fn a_clone_draws_from_the_originals_pool() {
    let cfg = sance::SanceConfig {
        device: test_device(),
        data_dim: 2,
        noise: sance::abi::config::SanceNoise::Gaussian,
        ..Default::default()
    };
    let a = new(&cfg);
    for t in 0..20 {
        let d = data("8gaussians", 64, t);
        let s = unsafe { sance_ebm_train_step(a, d.as_ptr(), 64, ptr::null_mut()) };
        assert_eq!(s, SanceStatus::Ok, "{}", last_error());
    }
    let draw = |h: *mut SanceEbm| {
        let mut out = vec![0f32; 2 * 16];
        let mut r = std::mem::MaybeUninit::<sance::abi::sampling::SanceDrawReport>::uninit();
        let s = unsafe { sance_ebm_draw(h, 16, ptr::null(), out.as_mut_ptr(), r.as_mut_ptr()) };
        assert_eq!(s, SanceStatus::Ok, "{}", last_error());
        (bits(&out), unsafe { r.assume_init() }.sampler)
    };
    assert_eq!(draw(a).1, sance::abi::sampling::SanceSampler::Annealed as u32, "the first draw anneals");
    let mut c = ptr::null_mut();
    assert_eq!(unsafe { sance_ebm_clone(a, &mut c) }, SanceStatus::Ok, "{}", last_error());
    let (from_a, from_c) = (draw(a), draw(c));
    assert_eq!(from_a.1, sance::abi::sampling::SanceSampler::Population as u32, "later draws use the pool");
    assert_eq!(from_c, from_a, "the clone drew otherwise");
    unsafe { sance_ebm_free(a) };
    unsafe { sance_ebm_free(c) };
}

#[test]
fn a_fresh_model_round_trips_too() {
    let dir = scratch("fresh");
    let path = dir.join("m.safetensors");
    let a = new(&small_config());
    assert_eq!(save(a, &path), SanceStatus::Ok, "{}", last_error());
    let (st, b) = load(&path);
    assert_eq!(st, SanceStatus::Ok, "{}", last_error());
    let mut cfg = small_config();
    assert_eq!(unsafe { sance_ebm_config(b, &mut cfg) }, SanceStatus::Ok);
    assert_eq!(cfg, small_config(), "the config survives");
    // Both fit their scaling to the first batch and tune the same step.
    train(a, 0..5);
    train(b, 0..5);
    assert_eq!(bits(&probe(a)), bits(&probe(b)));
    unsafe { sance_ebm_free(a) };
    unsafe { sance_ebm_free(b) };
}

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn a_failed_save_leaves_the_previous_checkpoint_intact() {
    let dir = scratch("atomic");
    let path = dir.join("model.safetensors");
    let h = new(&small_config());
    train(h, 0..10);
    assert_eq!(save(h, &path), SanceStatus::Ok);
    let before = std::fs::read(&path).unwrap();
    let e_saved = probe(h);
    train(h, 10..20);
    for point in [FaultPoint::MidWrite, FaultPoint::BeforeSync, FaultPoint::BeforeRename] {
        inject_fault(Some(point));
        let s = save(h, &path);
        assert_eq!(s, SanceStatus::Io, "{point:?}");
        assert!(last_error().contains("injected fault"), "{}", last_error());
        assert_eq!(std::fs::read(&path).unwrap(), before, "{point:?}: previous file changed");
        assert_eq!(leftovers(&dir), vec!["model.safetensors"], "{point:?}: temporary file left behind");
        let (st, old) = load(&path);
        assert_eq!(st, SanceStatus::Ok);
        assert_eq!(bits(&probe(old)), bits(&e_saved));
        unsafe { sance_ebm_free(old) };
    }
    // Paths that cannot be written.
    let missing_dir = dir.join("no/such/dir/m.safetensors");
    assert_eq!(save(h, &missing_dir), SanceStatus::Io);
    assert!(last_error().contains("no/such/dir"), "{}", last_error());
    assert_eq!(save(h, &dir), SanceStatus::Io);
    assert!(last_error().contains("directory"), "{}", last_error());
    // And a save after the failures works and replaces the file.
    assert_eq!(save(h, &path), SanceStatus::Ok);
    assert_ne!(std::fs::read(&path).unwrap(), before);
    unsafe { sance_ebm_free(h) };
}

#[test]
fn non_utf8_paths_work() {
    use std::os::unix::ffi::OsStrExt;
    let dir = scratch("non-utf8");
    let path = dir.join(std::ffi::OsStr::from_bytes(b"m\xff\xfe.safetensors"));
    let h = new(&small_config());
    train(h, 0..3);
    assert_eq!(save(h, &path), SanceStatus::Ok, "{}", last_error());
    let (st, b) = load(&path);
    assert_eq!(st, SanceStatus::Ok, "{}", last_error());
    assert_eq!(bits(&probe(b)), bits(&probe(h)));
    unsafe { sance_ebm_free(h) };
    unsafe { sance_ebm_free(b) };
}

/// A valid checkpoint of a trained small model, as bytes.
fn checkpoint_bytes() -> Vec<u8> {
    let dir = scratch("bytes");
    let path = dir.join("m.safetensors");
    let h = new(&small_config());
    train(h, 0..12);
    assert_eq!(save(h, &path), SanceStatus::Ok);
    unsafe { sance_ebm_free(h) };
    std::fs::read(path).unwrap()
}

fn load_bytes(bytes: &[u8], name: &str) -> (SanceStatus, String) {
    let dir = scratch(&format!("load-{name}"));
    let path = dir.join("x.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let (st, h) = load(&path);
    unsafe { sance_ebm_free(h) };
    (st, last_error())
}

/// Rewrites a checkpoint's tensors and metadata.
fn rewrite(bytes: &[u8], edit: impl FnOnce(&mut Vec<Entry>, &mut BTreeMap<String, String>)) -> Vec<u8> {
    let (mut entries, mut meta) = decode(bytes);
    edit(&mut entries, &mut meta);
    encode(&entries, &meta)
}

#[test]
fn damaged_files_are_corrupt_with_a_reason() {
    let good = checkpoint_bytes();
    assert_eq!(load_bytes(&good, "good").0, SanceStatus::Ok);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "too short"),
        ("random", (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect(), "safetensors"),
        (
            "foreign",
            encode(&[Entry::new("weight", Dtype::F32, vec![2], vec![0; 8])], &BTreeMap::new()),
            "not a sance checkpoint",
        ),
        (
            "future",
            rewrite(&good, |_, m| {
                m.insert("format_version".into(), "6".into());
            }),
            "version 6",
        ),
        (
            "scale-not-positive",
            rewrite(&good, |e, _| {
                let t = e.iter_mut().find(|t| t.name == "scaling.scale").unwrap();
                t.data[..4].copy_from_slice(&0f32.to_le_bytes());
            }),
            "scaling.scale",
        ),
        (
            "scale-without-shift",
            rewrite(&good, |e, _| e.retain(|t| t.name != "scaling.shift")),
            "scaling.shift",
        ),
        (
            "scaling-of-an-unscaled-config",
            rewrite(&good, |_, m| {
                let c = m["config"].replace("\"scaling\":0", "\"scaling\":1");
                assert_ne!(c, m["config"]);
                m.insert("config".into(), c);
            }),
            "scaling",
        ),
        (
            "bad-config",
            rewrite(&good, |_, m| {
                let c = m["config"].replace("\"learning_rate\":0.001,", "\"learning_rate\":-1.0,");
                assert_ne!(c, m["config"]);
                m.insert("config".into(), c);
            }),
            "learning_rate",
        ),
        (
            "missing-config-field",
            rewrite(&good, |_, m| {
                let c = m["config"].replace("\"noise_ratio\":", "\"noise_ratiox\":");
                m.insert("config".into(), c);
            }),
            "noise_ratio",
        ),
        (
            "wrong-shape",
            rewrite(&good, |e, _| {
                let t = e.iter_mut().find(|t| t.name == "energy.net.0.weight").unwrap();
                t.shape = vec![t.shape[1], t.shape[0]];
            }),
            "energy.net.0.weight",
        ),
        (
            "wrong-dtype",
            rewrite(&good, |e, _| {
                let t = e.iter_mut().find(|t| t.name == "energy.net.0.bias").unwrap();
                t.dtype = Dtype::I64;
                t.shape = vec![t.shape[0] / 2];
            }),
            "energy.net.0.bias",
        ),
        (
            "missing-tensor",
            rewrite(&good, |e, _| e.retain(|t| t.name != "optimizer.exp_avg_sq.energy.net.2.weight")),
            "optimizer.exp_avg_sq.energy.net.2.weight",
        ),
        (
            "extra-tensor",
            rewrite(&good, |e, _| e.push(Entry::new("evil", Dtype::F32, vec![1], vec![0; 4]))),
            "evil",
        ),
        (
            "nan",
            rewrite(&good, |e, _| {
                let t = e.iter_mut().find(|t| t.name == "c").unwrap();
                t.data = f32::NAN.to_le_bytes().to_vec();
            }),
            "non-finite",
        ),
        (
            "zero-rng",
            rewrite(&good, |_, m| {
                m.insert("rng".into(), "0,0,0,0".into());
            }),
            "rng",
        ),
        (
            "bad-counter",
            rewrite(&good, |_, m| {
                m.insert("step".into(), "-3".into());
            }),
            "step",
        ),
        (
            "oversized-replay",
            rewrite(&good, |e, _| {
                let t = e.iter_mut().find(|t| t.name == "replay").unwrap();
                t.shape[0] = 65;
                t.data = vec![0; 65 * 2 * 4];
            }),
            "replay",
        ),
        (
            "replay-energies-short",
            rewrite(&good, |e, _| {
                let t = e.iter_mut().find(|t| t.name == "replay.energies").unwrap();
                t.shape[0] -= 1;
                let n = t.data.len() - 4;
                t.data.truncate(n);
            }),
            "replay.energies",
        ),
        (
            "replay-energies-nan",
            rewrite(&good, |e, _| {
                let t = e.iter_mut().find(|t| t.name == "replay.energies").unwrap();
                t.data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
            }),
            "non-finite",
        ),
        (
            "replay-energies-without-rows",
            rewrite(&good, |e, _| e.retain(|t| t.name != "replay")),
            "replay.energies",
        ),
    ];
    for (name, bytes, needle) in cases {
        let (st, msg) = load_bytes(&bytes, name);
        assert_eq!(st, SanceStatus::Corrupt, "{name}: {msg}");
        assert!(msg.contains(needle), "{name}: message {msg:?} lacks {needle:?}");
    }
    // Truncation at every byte: corrupt, and the message says the file is cut short.
    for cut in 0..good.len() {
        let (st, msg) = load_bytes(&good[..cut], "cut");
        assert_eq!(st, SanceStatus::Corrupt, "truncated at {cut}: {msg}");
        assert!(msg.contains("truncated") || msg.contains("too short"), "truncated at {cut}: {msg}");
    }
}

#[test]
fn missing_unreadable_and_bad_arguments() {
    let dir = scratch("io");
    let (st, h) = load(&dir.join("absent.safetensors"));
    assert_eq!((st, h.is_null()), (SanceStatus::Io, true));
    assert!(last_error().contains("absent.safetensors"));
    let (st, _) = load(&dir);
    assert_eq!(st, SanceStatus::Io);
    assert!(last_error().contains("directory"));
    let mut out = ptr::null_mut();
    assert_eq!(unsafe { sance_ebm_load(ptr::null(), SANCE_DEVICE_AUTO, &mut out) }, SanceStatus::NullPointer);
    assert_eq!(
        unsafe { sance_ebm_load(c"".as_ptr(), SANCE_DEVICE_AUTO, &mut out) },
        SanceStatus::InvalidArgument
    );
    assert_eq!(unsafe { sance_ebm_load(c"x".as_ptr(), -7, &mut out) }, SanceStatus::InvalidArgument);
    let path = dir.join("ok.safetensors");
    let h = new(&small_config());
    assert_eq!(save(h, &path), SanceStatus::Ok);
    assert_eq!(
        unsafe { sance_ebm_load(cpath(&path).as_ptr(), 0, ptr::null_mut()) },
        SanceStatus::NullPointer
    );
    assert_eq!(unsafe { sance_ebm_save(ptr::null(), cpath(&path).as_ptr()) }, SanceStatus::NullPointer);
    assert_eq!(unsafe { sance_ebm_save(h, ptr::null()) }, SanceStatus::NullPointer);
    if sance_cuda_device_count() == 0 {
        assert_eq!(unsafe { sance_ebm_load(cpath(&path).as_ptr(), 0, &mut out) }, SanceStatus::Device);
        assert!(out.is_null());
    }
    unsafe { sance_ebm_free(h) };
}

/// Version-1 files (sance 0.1: tensors named by position, `theta.{i}`, `adam.m.{i}`, …) still
/// load, every tensor lands where the version-2 name says, and saving writes version 3 (the
/// names of version 2; the config of a version-1 file has no average, so no `average.` tensors).
#[test]
fn version_1_checkpoints_load_and_resave_as_version_5() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/v1");
    let mut seen = 0;
    for e in std::fs::read_dir(&corpus).unwrap() {
        let path = e.unwrap().path();
        let v1 = std::fs::read(&path).unwrap();
        let (v1_entries, v1_meta) = decode(&v1);
        assert_eq!(v1_meta["format_version"], "1");
        let (st, h) = load(&path);
        assert_eq!(st, SanceStatus::Ok, "{}: {}", path.display(), last_error());
        let mut cfg = sance::SanceConfig::default();
        assert_eq!(unsafe { sance_ebm_config(h, &mut cfg) }, SanceStatus::Ok);
        let names = sance::model::net::Net::from_config(&cfg).param_names();
        let resaved = scratch("v1-resave").join("v2.safetensors");
        assert_eq!(save(h, &resaved), SanceStatus::Ok);
        unsafe { sance_ebm_free(h) };
        let (v2_entries, v2_meta) = decode(&std::fs::read(&resaved).unwrap());
        assert_eq!(v2_meta["format_version"], "5");
        for key in ["step", "refresh_count", "adam_t", "rng", "dtype"] {
            assert_eq!(v1_meta[key], v2_meta[key], "{key}");
        }
        let v2: BTreeMap<&str, &Entry> = v2_entries.iter().map(|e| (e.name.as_str(), e)).collect();
        // Each v1 name and the v2 name it must become.
        let n = names.len();
        let renamed = |old: &str| -> String {
            let (prefix, i) =
                old.rsplit_once('.').map(|(p, i)| (p, i.parse::<usize>().ok())).unwrap_or((old, None));
            match (prefix, i) {
                ("theta", Some(i)) => format!("energy.{}", names[i]),
                ("snapshot", Some(i)) => format!("snapshot.{}", names[i]),
                ("adam.m", Some(i)) if i == n => "optimizer.exp_avg.c".into(),
                ("adam.v", Some(i)) if i == n => "optimizer.exp_avg_sq.c".into(),
                ("adam.m", Some(i)) => format!("optimizer.exp_avg.energy.{}", names[i]),
                ("adam.v", Some(i)) => format!("optimizer.exp_avg_sq.energy.{}", names[i]),
                _ => old.to_string(), // c, replay
            }
        };
        assert_eq!(v1_entries.len(), v2_entries.len(), "{}: same tensors", path.display());
        for old in &v1_entries {
            let new =
                v2.get(renamed(&old.name).as_str()).unwrap_or_else(|| panic!("{} has no v2 twin", old.name));
            assert!(old.shape == new.shape && old.data == new.data, "{} → {} differs", old.name, new.name);
        }
        seen += 1;
    }
    assert_eq!(seen, 3, "the v1 corpus has three files");
}

/// Version-2 files (sance 0.2 to ABI 3) have no `ema_decay` in their config and no average: they
/// load with ema_decay = 0 (the model is θ, as it was), and resave without `average.` tensors.
/// A version-3 file of a model that averages holds θ̃, and loading it gives the same energies.
#[test]
fn version_2_checkpoints_load_without_an_average() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/v2");
    for e in std::fs::read_dir(&corpus).unwrap() {
        let path = e.unwrap().path();
        let (st, h) = load(&path);
        assert_eq!(st, SanceStatus::Ok, "{}: {}", path.display(), last_error());
        let mut cfg = sance::SanceConfig::default();
        assert_eq!(unsafe { sance_ebm_config(h, &mut cfg) }, SanceStatus::Ok);
        assert_eq!(cfg.ema_decay, 0.0, "{}", path.display());
        let resaved = scratch("v2-resave").join("v3.safetensors");
        assert_eq!(save(h, &resaved), SanceStatus::Ok);
        unsafe { sance_ebm_free(h) };
        let (entries, meta) = decode(&std::fs::read(&resaved).unwrap());
        assert_eq!(meta["format_version"], "5");
        assert!(entries.iter().all(|e| !e.name.starts_with("average.")), "{}", path.display());
    }
    // A model that averages: θ̃ is saved, and restored exactly.
    let d: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
    let (h, h2) = saved_and_loaded(&d, "v3-average", "average.net.0.weight");
    unsafe { sance_ebm_free(h) };
    unsafe { sance_ebm_free(h2) };
}

/// The energies of the 32 rows of `d`.
fn energies_of(h: *mut SanceEbm, d: &[f32]) -> Vec<f32> {
    let mut e = vec![0f32; 32];
    assert_eq!(unsafe { sance_ebm_energy(h, d.as_ptr(), 32, e.as_mut_ptr()) }, SanceStatus::Ok);
    e
}

/// A small model trained 5 steps on the 32 rows of `d`, saved in scratch dir `name` with tensor
/// `holds` among its tensors, and the model loaded back, with the same energies; both handles.
fn saved_and_loaded(d: &[f32], name: &str, holds: &str) -> (*mut SanceEbm, *mut SanceEbm) {
    let h = new(&small_config());
    for _ in 0..5 {
        assert_eq!(unsafe { sance_ebm_train_step(h, d.as_ptr(), 32, ptr::null_mut()) }, SanceStatus::Ok);
    }
    let path = scratch(name).join("m.safetensors");
    assert_eq!(save(h, &path), SanceStatus::Ok);
    let (entries, _) = decode(&std::fs::read(&path).unwrap());
    assert!(entries.iter().any(|e| e.name == holds), "{holds} is saved");
    let (st, h2) = load(&path);
    assert_eq!(st, SanceStatus::Ok, "{}", last_error());
    assert_eq!(energies_of(h, d), energies_of(h2, d), "the loaded model's energies are the saved model's");
    (h, h2)
}

/// Version-3 files (ABI 4) have no `scaling` in their config and no fitted scaling: they load
/// with scaling NONE and the energies they were saved with (tests/eval.rs checks those against
/// libsance_eval, which reads the file on its own), resave as version 4 without `scaling.`
/// tensors, and keep training in the units they were trained in. A version-4 file of a scaled
/// model holds the scaling, and loading it gives the same energies.
#[test]
fn version_3_checkpoints_load_unscaled() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/v3");
    for e in std::fs::read_dir(&corpus).unwrap() {
        let path = e.unwrap().path();
        let (st, h) = load(&path);
        assert_eq!(st, SanceStatus::Ok, "{}: {}", path.display(), last_error());
        let mut cfg = sance::SanceConfig::default();
        assert_eq!(unsafe { sance_ebm_config(h, &mut cfg) }, SanceStatus::Ok);
        assert_eq!(cfg.scaling, sance::abi::config::SanceScaling::None, "{}", path.display());
        assert_eq!(cfg.langevin.target_acceptance, 0.0, "{}", path.display());
        let resaved = scratch("v3-resave").join("v4.safetensors");
        assert_eq!(save(h, &resaved), SanceStatus::Ok);
        let (entries, meta) = decode(&std::fs::read(&resaved).unwrap());
        assert_eq!(meta["format_version"], "5");
        assert!(entries.iter().all(|e| !e.name.starts_with("scaling.")), "{}", path.display());
        unsafe { sance_ebm_free(h) };
    }
    // A scaled model (data far from unit scale): the scaling is saved and restored exactly.
    let d: Vec<f32> = (0..64).map(|i| 300.0 + 40.0 * (i as f32 * 0.37).sin()).collect();
    let (h, h2) = saved_and_loaded(&d, "v4-scaling", "scaling.scale");
    // And both go on alike.
    for h in [h, h2] {
        assert_eq!(unsafe { sance_ebm_train_step(h, d.as_ptr(), 32, ptr::null_mut()) }, SanceStatus::Ok);
    }
    assert_eq!(energies_of(h, &d), energies_of(h2, &d), "training resumes exactly");
    unsafe { sance_ebm_free(h) };
    unsafe { sance_ebm_free(h2) };
}
