//! The C API driven from Rust: the convolutional model end to end, per-thread errors, a
//! handle shared by threads.
use sance::abi::config::{SanceArch, SanceConfig, SanceLangevin};
use sance::ffi::api::*;
use sance::ffi::handle::SanceEbm;
use sance::{SanceStatus, SanceStepStats};
use std::ptr;

mod common;
use common::test_device;
use common::{last_error, new};

#[test]
fn conv_model_trains_and_samples_with_image_shapes() {
    let mut cfg = SanceConfig {
        arch: SanceArch::Conv,
        channels: 3,
        height: 12,
        width: 10,
        hidden_width: 8,
        hidden_layers: 2,
        device: test_device(),
        ..Default::default()
    };
    cfg.langevin.steps = 5;
    cfg.langevin.clamp_min = -1.0;
    cfg.langevin.clamp_max = 1.0;
    cfg.langevin.init_scale = 1.0;
    let h = new(&cfg);
    let d = unsafe { sance_ebm_sample_size(h) };
    assert_eq!(d, 3 * 12 * 10);
    // Smooth "images": a per-image brightness plus a horizontal ramp, in [−1, 1].
    let batch = 16;
    let mut data = vec![0f32; batch * d];
    for (i, img) in data.chunks_mut(d).enumerate() {
        for (j, p) in img.iter_mut().enumerate() {
            *p = (0.5 * ((i as f32) / batch as f32 - 0.5) + 0.4 * ((j % 10) as f32 / 9.0 - 0.5))
                .clamp(-1.0, 1.0);
        }
    }
    let mut stats = SanceStepStats::default();
    for _ in 0..4 {
        let s = unsafe { sance_ebm_train_step(h, data.as_ptr(), batch, &mut stats) };
        assert_eq!(s, SanceStatus::Ok, "{}", last_error());
        assert!(stats.loss.is_finite() && stats.grad_norm.is_finite());
    }
    assert_eq!(stats.step, 4);
    let n = 5;
    let mut out = vec![f32::NAN; n * d];
    assert_eq!(
        unsafe { sance_ebm_sample(h, n, ptr::null(), out.as_mut_ptr()) },
        SanceStatus::Ok,
        "{}",
        last_error()
    );
    assert!(out.iter().all(|v| (-1.0..=1.0).contains(v)), "clamped to the pixel range");
    let mut e = vec![0f32; n];
    let mut g = vec![0f32; n * d];
    assert_eq!(
        unsafe { sance_ebm_energy_grad(h, out.as_ptr(), n, e.as_mut_ptr(), g.as_mut_ptr()) },
        SanceStatus::Ok
    );
    assert!(e.iter().chain(&g).all(|v| v.is_finite()));
    assert!(g.iter().any(|v| *v != 0.0));
    unsafe { sance_ebm_free(h) };
}

#[test]
fn last_error_is_per_thread() {
    assert_eq!(unsafe { sance_ebm_refresh_noise(ptr::null_mut()) }, SanceStatus::NullPointer);
    let mine = last_error();
    assert!(mine.contains("sance_ebm_refresh_noise") && mine.contains("ebm is NULL"), "{mine}");
    let theirs = std::thread::spawn(|| {
        let before = last_error();
        let s = unsafe { sance_toy_dataset(c"nope".as_ptr(), 3, 0, [0f32; 6].as_mut_ptr()) };
        assert_eq!(s, SanceStatus::InvalidArgument);
        (before, last_error())
    })
    .join()
    .unwrap();
    assert_eq!(theirs.0, "", "a new thread starts with no error");
    assert!(theirs.1.contains("nope"));
    assert_eq!(last_error(), mine, "another thread's failure leaves this thread's message alone");
}

#[test]
fn one_handle_shared_by_threads() {
    let cfg = SanceConfig { device: test_device(), hidden_width: 32, ..Default::default() };
    let h = new(&cfg) as usize;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let h = h as *mut SanceEbm;
                let mut data = vec![0f32; 64 * 2];
                let mut energies = vec![0f32; 64];
                for t in 0..10 {
                    unsafe { sance_toy_dataset(c"rings".as_ptr(), 64, w * 100 + t, data.as_mut_ptr()) };
                    let s = match (w + t) % 3 {
                        0 => unsafe { sance_ebm_train_step(h, data.as_ptr(), 64, ptr::null_mut()) },
                        1 => unsafe { sance_ebm_sample(h, 16, ptr::null(), data.as_mut_ptr()) },
                        // Outputs must not overlap the input (docs/c-api.md).
                        _ => unsafe { sance_ebm_energy(h, data.as_ptr(), 64, energies.as_mut_ptr()) },
                    };
                    assert_eq!(s, SanceStatus::Ok, "{}", last_error());
                    assert!(data.iter().chain(&energies).all(|v| v.is_finite()));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut got = SanceConfig::default();
    assert_eq!(unsafe { sance_ebm_config(h as *const SanceEbm, &mut got) }, SanceStatus::Ok);
    assert_eq!(got.hidden_width, 32);
    unsafe { sance_ebm_free(h as *mut SanceEbm) };
}

#[test]
fn sampler_params_validation_names_the_field() {
    let cfg = SanceConfig { device: test_device(), ..Default::default() };
    let h = new(&cfg);
    let mut out = [0f32; 4];
    let mut bad: SanceLangevin = cfg.langevin;
    bad.clamp_min = f32::NEG_INFINITY;
    bad.clamp_max = 1.0;
    let s = unsafe { sance_ebm_sample(h, 2, &bad, out.as_mut_ptr()) };
    assert_eq!(s, SanceStatus::InvalidArgument);
    assert!(last_error().contains("params.clamp_min"), "{}", last_error());
    // An unknown enum value in the struct is refused before Rust reads it as an enum.
    let mut raw = cfg.langevin;
    unsafe { (ptr::addr_of_mut!(raw.init) as *mut u32).write(9) };
    let s = unsafe { sance_ebm_sample(h, 2, &raw, out.as_mut_ptr()) };
    assert_eq!(s, SanceStatus::InvalidArgument);
    assert!(last_error().contains("params.init"), "{}", last_error());
    unsafe { sance_ebm_free(h) };
}
