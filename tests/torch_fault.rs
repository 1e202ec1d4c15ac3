//! libtorch failing mid-call — as a CUDA out-of-memory error would, at any point of any call —
//! comes back as SANCE_STATUS_TORCH, leaves the model exactly as it was (its checkpoint bytes,
//! random stream included), never poisons the handle, and the handle then trains on bit for
//! bit like a twin that never saw a failure.
//!
//! The failure is injected (src/fault.rs) at the n-th of the points marked in the library, for
//! n = 0, 1, … until the call passes all of them, in both forms libtorch fails in: an error from
//! a fallible op, and the panic that tch's infallible ops raise.
mod common;
use common::*;
use sance::abi::config::{SanceConfig, SanceNoise};
use sance::fault::{inject_torch_fault, torch_fault_pending, TorchFault, INJECTED_TORCH};
use sance::ffi::api::*;
use sance::ffi::handle::SanceEbm;
use sance::SanceStatus;
use std::ptr;

fn checkpoint(h: *mut SanceEbm, dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("m.safetensors");
    assert_eq!(unsafe { sance_ebm_save(h, cpath(&path).as_ptr()) }, SanceStatus::Ok, "{}", last_error());
    std::fs::read(path).unwrap()
}

/// One call on a handle; `out` receives what the call writes to caller memory.
type Call<'a> = dyn Fn(*mut SanceEbm, &mut Vec<f32>) -> SanceStatus + 'a;

/// Fails `call` at every point it passes, in both forms, checking status, model and outputs
/// each time. Each form ends with one run that succeeds; `twin` makes the same two runs.
/// Returns how many points the call passed.
fn fail_everywhere(name: &str, h: *mut SanceEbm, twin: *mut SanceEbm, call: &Call) -> u32 {
    let dir = scratch(&format!("torch-fault-{name}"));
    let mut points = 0;
    for how in [TorchFault::Error, TorchFault::Panic] {
        for n in 0.. {
            let before = checkpoint(h, &dir);
            let mut out = Vec::new();
            inject_torch_fault(Some((n, how)));
            let s = call(h, &mut out);
            if torch_fault_pending() {
                // The call passed fewer than n + 1 points: it ran through.
                inject_torch_fault(None);
                assert_eq!(s, SanceStatus::Ok, "{name}: {}", last_error());
                points = n;
                break;
            }
            assert_eq!(s, SanceStatus::Torch, "{name}, {how:?} at point {n}: {}", last_error());
            let msg = last_error();
            assert!(msg.contains(INJECTED_TORCH), "{name}: the message carries libtorch's: {msg}");
            assert!(
                out.iter().all(|&v| v == SENTINEL),
                "{name}, {how:?} at point {n}: output written on failure"
            );
            assert!(checkpoint(h, &dir) == before, "{name}, {how:?} at point {n}: the model changed");
        }
    }
    for _ in 0..2 {
        let mut out = Vec::new();
        assert_eq!(call(twin, &mut out), SanceStatus::Ok, "{name} on the twin: {}", last_error());
    }
    points
}

const SENTINEL: f32 = -7.25;

fn train_call(t: u64) -> impl Fn(*mut SanceEbm, &mut Vec<f32>) -> SanceStatus {
    move |h, _| {
        let d = data("8gaussians", 32, t);
        unsafe { sance_ebm_train_step(h, d.as_ptr(), 32, ptr::null_mut()) }
    }
}

#[test]
fn a_libtorch_failure_anywhere_leaves_the_model_as_it_was() {
    // K = 3: of the four training steps below (2, 3, 4, 5), step 3 refreshes the snapshot.
    let cfg = SanceConfig { noise_update_interval: 3, ..small_config() };
    let (h, twin) = (new(&cfg), new(&cfg));
    train(h, 0..2);
    train(twin, 0..2);
    let mut passed = Vec::new();
    passed.push(("train_step", fail_everywhere("train_step", h, twin, &train_call(2))));
    passed.push(("train_step", fail_everywhere("train_step-b", h, twin, &train_call(3))));
    passed.push((
        "refresh_noise",
        fail_everywhere("refresh_noise", h, twin, &|h, _| unsafe { sance_ebm_refresh_noise(h) }),
    ));
    let x = data("rings", 40, 9);
    passed.push((
        "sample",
        fail_everywhere("sample", h, twin, &|h, out| {
            *out = vec![SENTINEL; 80];
            unsafe { sance_ebm_sample(h, 40, ptr::null(), out.as_mut_ptr()) }
        }),
    ));
    passed.push((
        "draw",
        fail_everywhere("draw", h, twin, &|h, out| {
            // ANNEALED, kept short: two temperatures of two moves.
            let mut s = sance::abi::sampling::SanceSampling {
                sampler: 0,
                moves: SanceConfig::default().langevin,
                target_ess: 0.5,
                max_temperatures: 2,
            };
            assert_eq!(unsafe { sance_sampling_init(&mut s, h) }, SanceStatus::Ok);
            s.sampler = sance::abi::sampling::SanceSampler::Annealed as u32;
            s.max_temperatures = 2;
            s.moves.steps = 2;
            *out = vec![SENTINEL; 80];
            unsafe { sance_ebm_draw(h, 40, &s, out.as_mut_ptr(), ptr::null_mut()) }
        }),
    ));
    passed.push((
        "sample_from",
        fail_everywhere("sample_from", h, twin, &|h, out| {
            // The chains are the output: untouched on failure. Marked with the sentinel
            // except where they must differ from it.
            *out = x.iter().map(|&v| if v == SENTINEL { 0.0 } else { v }).collect();
            let s = unsafe { sance_ebm_sample_from(h, out.as_mut_ptr(), 40, ptr::null()) };
            if s != SanceStatus::Ok {
                assert!(bits(out) == bits(&x), "sample_from: chains written on failure");
            }
            out.clear();
            s
        }),
    ));
    passed.push((
        "energy",
        fail_everywhere("energy", h, twin, &|h, out| {
            *out = vec![SENTINEL; 40];
            unsafe { sance_ebm_energy(h, x.as_ptr(), 40, out.as_mut_ptr()) }
        }),
    ));
    passed.push((
        "energy_grad",
        fail_everywhere("energy_grad", h, twin, &|h, out| {
            *out = vec![SENTINEL; 120];
            let (e, g) = out.split_at_mut(40);
            unsafe { sance_ebm_energy_grad(h, x.as_ptr(), 40, e.as_mut_ptr(), g.as_mut_ptr()) }
        }),
    ));
    let dir = scratch("torch-fault-save-target");
    let target = dir.join("other.safetensors");
    passed.push((
        "save",
        fail_everywhere("save", h, twin, &|h, _| {
            let s = unsafe { sance_ebm_save(h, cpath(&target).as_ptr()) };
            if s == SanceStatus::Ok {
                std::fs::remove_file(&target).unwrap();
            } else {
                assert!(!target.exists(), "save: a file was left behind on failure");
            }
            s
        }),
    ));
    // Every call passed at least one point (the test covers them), the training step one per
    // Langevin step and more.
    eprintln!("fault points passed: {passed:?}");
    for (name, n) in &passed {
        assert!(*n >= 1, "{name} passed no fault point");
    }
    assert!(passed[0].1 > 20, "train_step passed {} points", passed[0].1);
    train(h, 4..7);
    train(twin, 4..7);
    let d1 = scratch("torch-fault-final-h");
    let d2 = scratch("torch-fault-final-twin");
    assert!(checkpoint(h, &d1) == checkpoint(twin, &d2), "the handle trains on exactly like its twin");
    unsafe {
        sance_ebm_free(h);
        sance_ebm_free(twin);
    }
}

/// Classic NCE's fit: a failure leaves the fit and c as they were.
#[test]
fn a_libtorch_failure_in_fit_noise_leaves_the_model_as_it_was() {
    let cfg = SanceConfig { noise: SanceNoise::Gaussian, ..small_config() };
    let (h, twin) = (new(&cfg), new(&cfg));
    let d = data("8gaussians", 64, 1);
    let n = fail_everywhere("fit_noise", h, twin, &|h, _| unsafe { sance_ebm_fit_noise(h, d.as_ptr(), 64) });
    assert!(n >= 1, "fit_noise passed no fault point");
    train(h, 0..3);
    train(twin, 0..3);
    let d1 = scratch("torch-fault-fit-h");
    let d2 = scratch("torch-fault-fit-twin");
    assert!(checkpoint(h, &d1) == checkpoint(twin, &d2), "the handle trains on exactly like its twin");
    unsafe {
        sance_ebm_free(h);
        sance_ebm_free(twin);
    }
}
