//! Every C call that computes on a handle runs libtorch's intra-op work on the handle's
//! `config.num_threads` (docs/c-api.md, "Threads"), whatever the calling thread's own count,
//! and puts the caller's count back. The count is read at each of the call's torch points (the
//! test hook `sance::fault::watch_threads`). `sance_ebm_refresh_noise` and
//! `sance_ebm_fit_noise` once ran on the caller's count (their Rust entries opened no thread
//! scope); with the scopes of crate::ffi::handle and `Ebm::undoable` removed, this test fails
//! for both.
mod common;
use common::{data, last_error, new, small_config};
use sance::abi::config::{SanceConfig, SanceNoise};
use sance::abi::sampling::{SanceSampler, SanceSampling};
use sance::ffi::api::*;
use sance::ffi::handle::SanceEbm;
use sance::runtime::threads;
use sance::SanceStatus;
use std::ptr;

/// The handle's count, and the caller's: different, so that either leaking shows.
const HANDLE: u32 = 3;
const CALLER: i32 = 1;

/// Runs `call` with the caller at CALLER threads; its torch points must all see HANDLE, and the
/// caller must get CALLER back.
fn on_handle_threads(what: &str, call: impl FnOnce() -> SanceStatus) {
    threads::set_current(CALLER);
    sance::fault::watch_threads(true);
    let s = call();
    let seen = sance::fault::watch_threads(false).expect("watching");
    assert_eq!(s, SanceStatus::Ok, "{what}: {}", last_error());
    assert!(seen.points > 0, "{what}: passed no torch point, so the test sees nothing");
    assert_eq!(
        (seen.min, seen.max),
        (HANDLE as i32, HANDLE as i32),
        "{what}: ran on {}..{} intra-op threads, config.num_threads = {HANDLE}",
        seen.min,
        seen.max
    );
    assert_eq!(threads::current(), Some(CALLER), "{what}: the caller's count is not restored");
}

fn handle(noise: SanceNoise) -> *mut SanceEbm {
    new(&SanceConfig { num_threads: HANDLE, noise, ..small_config() })
}

#[test]
fn every_computing_call_runs_on_the_handles_thread_count() {
    assert!(threads::current().is_some(), "the PyPI libtorch uses OpenMP");
    let h = handle(SanceNoise::Snapshot);
    let x = data("8gaussians", 64, 1);
    unsafe {
        on_handle_threads("sance_ebm_train_step", || {
            sance_ebm_train_step(h, x.as_ptr(), 64, ptr::null_mut())
        });
        on_handle_threads("sance_ebm_refresh_noise", || sance_ebm_refresh_noise(h));
        let mut out = vec![0f32; 2 * 16];
        on_handle_threads("sance_ebm_sample", || sance_ebm_sample(h, 16, ptr::null(), out.as_mut_ptr()));
        let mut s = std::mem::MaybeUninit::<SanceSampling>::zeroed().assume_init();
        assert_eq!(sance_sampling_init(&mut s, h), SanceStatus::Ok);
        s.sampler = SanceSampler::Annealed as u32;
        on_handle_threads("sance_ebm_draw (ANNEALED)", || {
            sance_ebm_draw(h, 16, &s, out.as_mut_ptr(), ptr::null_mut())
        });
        let l = SanceConfig::default().langevin;
        let mut moved = out.clone();
        on_handle_threads("sance_ebm_sample_from", || sance_ebm_sample_from(h, moved.as_mut_ptr(), 16, &l));
        let (mut e, mut g) = (vec![0f32; 16], vec![0f32; 32]);
        on_handle_threads("sance_ebm_energy", || sance_ebm_energy(h, out.as_ptr(), 16, e.as_mut_ptr()));
        on_handle_threads("sance_ebm_energy_grad", || {
            sance_ebm_energy_grad(h, out.as_ptr(), 16, e.as_mut_ptr(), g.as_mut_ptr())
        });
        let mut a = sance::abi::ais::SanceAis::default();
        on_handle_threads("sance_ais_init", || sance_ais_init(&mut a, h));
        a.chains = 16;
        a.temperatures = 10;
        let (mut lz, mut se) = (0.0f64, 0.0f64);
        on_handle_threads("sance_ebm_log_z", || sance_ebm_log_z(h, &a, &mut lz, &mut se));
        sance_ebm_free(h);

        let classic = handle(SanceNoise::Gaussian);
        let fit = data("8gaussians", 256, 2);
        on_handle_threads("sance_ebm_fit_noise", || sance_ebm_fit_noise(classic, fit.as_ptr(), 256));
        on_handle_threads("sance_ebm_train_step (classic)", || {
            sance_ebm_train_step(classic, x.as_ptr(), 64, ptr::null_mut())
        });
        sance_ebm_free(classic);
    }
}
