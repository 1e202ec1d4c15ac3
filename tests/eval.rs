//! libsance_eval (eval/) against libsance: the same energies and gradients on trained models of
//! 1, 2 and 3 hidden layers and both activations, with and without the moving average, and on
//! checkpoints of every format version; one model shared by many threads; and bad input.
mod common;
use common::*;
use sance::abi::config::{SanceActivation, SanceConfig};
use sance::ffi::api::*;
use sance::ffi::handle::SanceEbm;
use sance::SanceStatus;
use sance_eval::ffi::*;
use sance_eval::SanceStatus as EvalStatus;
use std::ffi::CStr;
use std::path::Path;
use std::ptr;

fn eval_error() -> String {
    unsafe { CStr::from_ptr(sance_eval_last_error()) }.to_string_lossy().into_owned()
}

/// Loads a checkpoint into the evaluator, asserting success.
fn load(path: &Path) -> *mut SanceEval {
    let mut m = ptr::null_mut();
    let s = unsafe { sance_eval_load(cpath(path).as_ptr(), &mut m) };
    assert_eq!(s, EvalStatus::Ok, "{}", eval_error());
    m
}

/// Points spread over a box a few units wide, reproducibly.
fn points(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n * d)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
        })
        .collect()
}

/// libsance's (E, ∇E) of `x`.
fn reference(h: *mut SanceEbm, x: &[f32], n: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut e, mut g) = (vec![0f32; n], vec![0f32; n * d]);
    let s = unsafe { sance_ebm_energy_grad(h, x.as_ptr(), n, e.as_mut_ptr(), g.as_mut_ptr()) };
    assert_eq!(s, SanceStatus::Ok, "{}", last_error());
    (e, g)
}

/// The evaluator's (E, ∇E) of `x`, `per_call` points per call (1 exercises the one-point path).
fn evaluated(m: *const SanceEval, x: &[f32], n: usize, d: usize, per_call: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut e, mut g) = (vec![0f32; n], vec![0f32; n * d]);
    let mut i = 0;
    while i < n {
        let k = per_call.min(n - i);
        let s = unsafe {
            sance_eval_energy_grad(m, x[i * d..].as_ptr(), k, e[i..].as_mut_ptr(), g[i * d..].as_mut_ptr())
        };
        assert_eq!(s, EvalStatus::Ok, "{}", eval_error());
        i += k;
    }
    (e, g)
}

/// max |a − b| / max |b|: the error relative to the output's scale.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let err = a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
    err / scale.max(f64::MIN_POSITIVE)
}

/// Asserts the evaluator agrees with libsance within 1e-5 relative on `n` points, both
/// through batches and one point at a time.
fn assert_agrees(h: *mut SanceEbm, m: *const SanceEval, d: usize, what: &str) {
    let n = 600;
    let x = points(n, d, 7);
    let (e_ref, g_ref) = reference(h, &x, n, d);
    for per_call in [n, 3, 1] {
        let (e, g) = evaluated(m, &x, n, d, per_call);
        let (re, rg) = (rel_err(&e, &e_ref), rel_err(&g, &g_ref));
        assert!(re <= 1e-5 && rg <= 1e-5, "{what}, {per_call} per call: energy {re:.2e}, gradient {rg:.2e}");
    }
}

fn train_3d(h: *mut SanceEbm, steps: u64) {
    for t in 0..steps {
        // A correlated 3-D Gaussian: something for the energy to learn.
        let z = points(64, 3, 100 + t);
        let x: Vec<f32> = z
            .chunks(3)
            .flat_map(|p| [0.5 * p[0], 0.3 * p[0] + 0.4 * p[1], 0.2 * p[1] - 0.6 * p[2] + 1.0])
            .collect();
        let s = unsafe { sance_ebm_train_step(h, x.as_ptr(), 64, ptr::null_mut()) };
        assert_eq!(s, SanceStatus::Ok, "{}", last_error());
    }
}

#[test]
fn agrees_with_libsance_on_trained_models() {
    let dir = scratch("eval-agree");
    for layers in 1..=3u32 {
        for activation in [SanceActivation::Silu, SanceActivation::LeakyRelu] {
            for ema in [0.0f32, 0.9] {
                let cfg = SanceConfig {
                    data_dim: 3,
                    hidden_width: 48,
                    hidden_layers: layers,
                    activation,
                    ema_decay: ema,
                    learning_rate: 1e-2,
                    ..small_config()
                };
                let h = new(&cfg);
                train_3d(h, 15);
                let path = dir.join(format!("m{layers}-{activation:?}-{ema}.safetensors"));
                assert_eq!(
                    unsafe { sance_ebm_save(h, cpath(&path).as_ptr()) },
                    SanceStatus::Ok,
                    "{}",
                    last_error()
                );
                let m = load(&path);
                assert_eq!(unsafe { sance_eval_dim(m) }, 3);
                assert_agrees(h, m, 3, &format!("{layers} layers, {activation:?}, ema {ema}"));
                unsafe {
                    sance_eval_free(m);
                    sance_ebm_free(h);
                }
            }
        }
    }
}

#[test]
fn reads_every_checkpoint_format_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for v in ["v1", "v2", "v3"] {
        for name in ["fresh-mlp", "trained-mlp"] {
            let path = root.join(v).join(format!("{name}.safetensors"));
            let mut h = ptr::null_mut();
            let s = unsafe { sance_ebm_load(cpath(&path).as_ptr(), -1, &mut h) };
            assert_eq!(s, SanceStatus::Ok, "{}", last_error());
            let d = unsafe { sance_ebm_sample_size(h) };
            let m = load(&path);
            assert_agrees(h, m, d, &format!("{v}/{name}"));
            unsafe {
                sance_eval_free(m);
                sance_ebm_free(h);
            }
        }
    }
}

#[test]
fn one_model_serves_many_threads() {
    let dir = scratch("eval-threads");
    let cfg = SanceConfig { data_dim: 3, hidden_width: 64, ..small_config() };
    let h = new(&cfg);
    train_3d(h, 5);
    let path = dir.join("m.safetensors");
    assert_eq!(unsafe { sance_ebm_save(h, cpath(&path).as_ptr()) }, SanceStatus::Ok);
    unsafe { sance_ebm_free(h) };
    let m = load(&path) as usize;
    // Every thread evaluates its own points, by both paths, many times; each answer must be
    // bit for bit what one thread alone computes.
    let expected: Vec<_> = (0..8)
        .map(|t| {
            let x = points(40, 3, t);
            (
                x.clone(),
                evaluated(m as *const SanceEval, &x, 40, 3, 40),
                evaluated(m as *const SanceEval, &x, 40, 3, 1),
            )
        })
        .collect();
    std::thread::scope(|s| {
        for (x, batch, single) in &expected {
            s.spawn(move || {
                for _ in 0..200 {
                    let m = m as *const SanceEval;
                    let b = evaluated(m, x, 40, 3, 40);
                    let o = evaluated(m, x, 40, 3, 1);
                    assert_eq!((bits(&b.0), bits(&b.1)), (bits(&batch.0), bits(&batch.1)));
                    assert_eq!((bits(&o.0), bits(&o.1)), (bits(&single.0), bits(&single.1)));
                }
            });
        }
    });
    unsafe { sance_eval_free(m as *mut SanceEval) };
}

#[test]
fn refuses_bad_checkpoints_and_leaves_out_unchanged() {
    let dir = scratch("eval-bad");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/v3");
    let good = std::fs::read(corpus.join("trained-mlp.safetensors")).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // A tensor of the energy with a NaN in it: flip the first weight's bytes to NaN.
    let mut nan = good.clone();
    {
        let st = safetensors::SafeTensors::deserialize(&good).unwrap();
        let t = st.tensor("average.net.0.weight").unwrap();
        let base = t.data().as_ptr() as usize - good.as_ptr() as usize;
        nan[base..base + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    }
    let cases: Vec<(&str, std::path::PathBuf, EvalStatus, &str)> = vec![
        ("missing file", dir.join("absent.safetensors"), EvalStatus::Io, "cannot read"),
        (
            "not safetensors",
            write("garbage", b"this is not a checkpoint at all"),
            EvalStatus::Corrupt,
            "safetensors",
        ),
        ("truncated", write("truncated", &good[..good.len() / 2]), EvalStatus::Corrupt, "safetensors"),
        ("NaN weight", write("nan", &nan), EvalStatus::Corrupt, "not finite"),
        (
            "conv energy",
            corpus.join("trained-conv.safetensors"),
            EvalStatus::InvalidArgument,
            "MLP energies only",
        ),
    ];
    for (what, path, status, words) in cases {
        let sentinel = 0x1234usize as *mut SanceEval;
        let mut out = sentinel;
        let s = unsafe { sance_eval_load(cpath(&path).as_ptr(), &mut out) };
        assert_eq!(s, status, "{what}: {}", eval_error());
        assert_eq!(out, sentinel, "{what}: *out was written on failure");
        let msg = eval_error();
        assert!(msg.starts_with("sance_eval_load: ") && msg.contains(words), "{what}: {msg}");
    }
    let mut out = ptr::null_mut();
    assert_eq!(unsafe { sance_eval_load(ptr::null(), &mut out) }, EvalStatus::NullPointer);
    assert!(eval_error().contains("checkpoint_path is NULL"));
    let p = cpath(&corpus.join("trained-mlp.safetensors"));
    assert_eq!(unsafe { sance_eval_load(p.as_ptr(), ptr::null_mut()) }, EvalStatus::NullPointer);
}

#[test]
fn refuses_bad_calls_and_writes_nothing() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/v3");
    let m = load(&corpus.join("trained-mlp.safetensors"));
    let d = unsafe { sance_eval_dim(m) } as usize;
    let mut x = points(4, d, 1);
    let (mut e, mut g) = (vec![7f32; 4], vec![7f32; 4 * d]);
    let call = |x: &[f32], n: usize, e: &mut [f32], g: &mut [f32]| unsafe {
        sance_eval_energy_grad(m, x.as_ptr(), n, e.as_mut_ptr(), g.as_mut_ptr())
    };
    assert_eq!(call(&x, 0, &mut e, &mut g), EvalStatus::InvalidArgument);
    assert!(eval_error().contains("n must be > 0"));
    x[2 * d + 1] = f32::NAN;
    assert_eq!(call(&x, 4, &mut e, &mut g), EvalStatus::NonFinite);
    assert!(eval_error().contains("x[2][1] is NaN"), "{}", eval_error());
    assert!(e.iter().chain(&g).all(|&v| v == 7.0), "a refused call wrote its outputs");
    x[2 * d + 1] = 0.5;
    let s = unsafe { sance_eval_energy_grad(ptr::null(), x.as_ptr(), 4, e.as_mut_ptr(), g.as_mut_ptr()) };
    assert_eq!(s, EvalStatus::NullPointer);
    let s = unsafe { sance_eval_energy_grad(m, ptr::null(), 4, e.as_mut_ptr(), g.as_mut_ptr()) };
    assert_eq!(s, EvalStatus::NullPointer);
    assert!(eval_error().contains("x is NULL"));
    // Outputs over x, or over each other (grad_out's second row is energy_out's start).
    let s = unsafe { sance_eval_energy_grad(m, x.as_ptr(), 4, e.as_mut_ptr(), x.as_mut_ptr()) };
    assert_eq!(s, EvalStatus::InvalidArgument);
    assert!(eval_error().contains("grad_out overlaps x"), "{}", eval_error());
    let s = unsafe { sance_eval_energy_grad(m, x.as_ptr(), 4, x.as_mut_ptr().add(3), g.as_mut_ptr()) };
    assert_eq!(s, EvalStatus::InvalidArgument);
    assert!(eval_error().contains("energy_out overlaps x"), "{}", eval_error());
    let s = unsafe { sance_eval_energy_grad(m, x.as_ptr(), 4, g.as_mut_ptr().add(d), g.as_mut_ptr()) };
    assert_eq!(s, EvalStatus::InvalidArgument);
    assert!(eval_error().contains("grad_out overlaps energy_out"), "{}", eval_error());
    // The input is judged before the outputs, as libsance's sance_ebm_energy_grad does: a NaN
    // in x is NON_FINITE even when an output overlaps it.
    x[1] = f32::NAN;
    let s = unsafe { sance_eval_energy_grad(m, x.as_ptr(), 4, e.as_mut_ptr(), x.as_mut_ptr()) };
    assert_eq!(s, EvalStatus::NonFinite, "{}", eval_error());
    x[1] = 0.5;
    let s = unsafe { sance_eval_energy_grad(m, x.as_ptr(), usize::MAX / 2, e.as_mut_ptr(), g.as_mut_ptr()) };
    assert_eq!(s, EvalStatus::InvalidArgument);
    assert!(e.iter().chain(&g).all(|&v| v == 7.0), "a refused call wrote its outputs");
    // Either output may be left out, and each alone is what both give.
    let (e2, g2) = evaluated(m, &x, 4, d, 4);
    let mut e_only = vec![0f32; 4];
    let mut g_only = vec![0f32; 4 * d];
    unsafe {
        assert_eq!(
            sance_eval_energy_grad(m, x.as_ptr(), 4, e_only.as_mut_ptr(), ptr::null_mut()),
            EvalStatus::Ok
        );
        assert_eq!(
            sance_eval_energy_grad(m, x.as_ptr(), 4, ptr::null_mut(), g_only.as_mut_ptr()),
            EvalStatus::Ok
        );
    }
    assert_eq!((bits(&e_only), bits(&g_only)), (bits(&e2), bits(&g2)));
    assert_eq!(unsafe { sance_eval_dim(ptr::null()) }, 0);
    unsafe {
        sance_eval_free(ptr::null_mut());
        sance_eval_free(m);
    }
}
