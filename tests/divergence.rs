//! A learning rate that blows training up: the diverging step returns SANCE_STATUS_NON_FINITE
//! and is undone completely, and after lowering the learning rate training continues exactly
//! as if the bad step had never been tried.
mod common;
use common::*;
use sance::ffi::api::*;
use sance::{SanceProgress, SanceStatus, SanceStepStats};
use std::ptr;

#[test]
fn a_diverging_step_is_rolled_back_and_sane_steps_continue() {
    let sane = small_config();
    let absurd = sance::SanceConfig { learning_rate: 1e30, ..sane };
    let h = new(&absurd);
    let reference = new(&sane);
    train(h, 0..0);
    let e0 = probe(h);
    let d = data("8gaussians", 32, 0);
    let s = unsafe { sance_ebm_train_step(h, d.as_ptr(), 32, ptr::null_mut()) };
    assert_eq!(s, SanceStatus::NonFinite, "{}", last_error());
    assert!(last_error().contains("non-finite"), "{}", last_error());
    assert_eq!(bits(&probe(h)), bits(&e0), "rolled back");
    let mut p = SanceProgress::default();
    unsafe { sance_ebm_progress(h, &mut p) };
    assert_eq!((p.step, p.refresh_count, p.replay_len), (0, 0, 0));

    // Lower the learning rate and go on: the run is the one a sane config gives from the start.
    assert_eq!(unsafe { sance_ebm_set_learning_rate(h, sane.learning_rate) }, SanceStatus::Ok);
    let mut st = SanceStepStats::default();
    for t in 0..20 {
        let d = data("8gaussians", 32, t);
        assert_eq!(
            unsafe { sance_ebm_train_step(h, d.as_ptr(), 32, &mut st) },
            SanceStatus::Ok,
            "{}",
            last_error()
        );
        assert!(st.loss.is_finite() && st.grad_norm.is_finite());
    }
    train(reference, 0..20);
    assert_eq!(st.step, 20);
    assert_eq!(bits(&probe(h)), bits(&probe(reference)), "continues exactly as a sane run");
    let mut cfg = sane;
    unsafe { sance_ebm_config(h, &mut cfg) };
    assert_eq!(cfg.learning_rate, sane.learning_rate);
    unsafe { sance_ebm_free(h) };
    unsafe { sance_ebm_free(reference) };
}

fn checkpoint(h: *mut sance::ffi::handle::SanceEbm, name: &str) -> Vec<u8> {
    let path = scratch(name).join("m.safetensors");
    assert_eq!(unsafe { sance_ebm_save(h, cpath(&path).as_ptr()) }, SanceStatus::Ok, "{}", last_error());
    std::fs::read(path).unwrap()
}

/// A step rejected in the middle of training — after 300 good steps, on a step where a refresh
/// is due, with a full replay buffer — through both failure paths leaves the whole state as it
/// was, bit for bit: the checkpoint (θ, θ̄, c, Adam m/v/t, the buffer's rows, the counters and
/// the random stream) is byte-identical. Training then continues exactly as a twin that never
/// saw the bad steps.
#[test]
fn a_rejected_step_mid_training_changes_nothing() {
    let cfg = sance::SanceConfig { noise_update_interval: 100, replay_capacity: 64, ..small_config() };
    let (h, twin) = (new(&cfg), new(&cfg));
    train(h, 0..300);
    train(twin, 0..300);
    let mut p = SanceProgress::default();
    unsafe { sance_ebm_progress(h, &mut p) };
    assert_eq!((p.step, p.refresh_count, p.replay_len), (300, 3, 64), "refresh due, buffer full");
    assert!(p.log_z_ratio != 0.0, "c is away from 0");
    let before = checkpoint(h, "mid-before");
    assert!(before == checkpoint(twin, "mid-twin"), "twins differ before the test");

    // Path 1: a non-finite loss or gradient (finite data so large that the energies overflow).
    let huge = vec![1e30f32; 2 * 32];
    let s = unsafe { sance_ebm_train_step(h, huge.as_ptr(), 32, ptr::null_mut()) };
    assert_eq!(s, SanceStatus::NonFinite, "{}", last_error());
    assert!(last_error().contains("the loss"), "path 1 expected: {}", last_error());
    assert!(checkpoint(h, "mid-after-1") == before, "the rejected step (loss) changed the state");

    // Path 2: a finite gradient whose update makes the energies non-finite.
    assert_eq!(unsafe { sance_ebm_set_learning_rate(h, 1e30) }, SanceStatus::Ok);
    let d = data("8gaussians", 32, 300);
    let s = unsafe { sance_ebm_train_step(h, d.as_ptr(), 32, ptr::null_mut()) };
    assert_eq!(s, SanceStatus::NonFinite, "{}", last_error());
    assert!(last_error().contains("made the energies non-finite"), "path 2 expected: {}", last_error());
    assert_eq!(unsafe { sance_ebm_set_learning_rate(h, cfg.learning_rate) }, SanceStatus::Ok);
    assert!(checkpoint(h, "mid-after-2") == before, "the rejected step (update) changed the state");

    train(h, 300..340);
    train(twin, 300..340);
    assert!(
        checkpoint(h, "mid-h-end") == checkpoint(twin, "mid-twin-end"),
        "training diverged from the twin"
    );
    unsafe {
        sance_ebm_free(h);
        sance_ebm_free(twin);
    }
}
