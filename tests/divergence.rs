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
