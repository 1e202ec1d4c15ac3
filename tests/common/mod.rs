//! Helpers shared by the integration tests: the C API called from Rust.
#![allow(dead_code)]
use sance::abi::config::{SanceConfig, SANCE_DEVICE_CPU};
use sance::ffi::api::*;
use sance::ffi::handle::SanceEbm;
use sance::SanceStatus;
use std::ffi::{CStr, CString};
use std::ptr;

pub fn last_error() -> String {
    unsafe { CStr::from_ptr(sance_last_error()) }.to_string_lossy().into_owned()
}

/// The device the tests put their models on: SANCE_TEST_DEVICE is `cpu` (the default),
/// `cuda` (CUDA device 0) or `cuda:K`; anything else stops the test, so that a typo cannot
/// quietly run the suite on the CPU.
pub fn test_device() -> i32 {
    match std::env::var("SANCE_TEST_DEVICE").as_deref() {
        Err(_) | Ok("") | Ok("cpu") => SANCE_DEVICE_CPU,
        Ok("cuda") => 0,
        Ok(v) => v
            .strip_prefix("cuda:")
            .and_then(|k| k.parse::<i32>().ok())
            .filter(|&k| k >= 0)
            .unwrap_or_else(|| panic!("SANCE_TEST_DEVICE={v}: expected cpu, cuda or cuda:K")),
    }
}

/// A small model on the test device, quick to train and to checkpoint.
pub fn small_config() -> SanceConfig {
    SanceConfig { device: test_device(), hidden_width: 16, replay_capacity: 64, ..Default::default() }
}

pub fn new(cfg: &SanceConfig) -> *mut SanceEbm {
    let mut h = ptr::null_mut();
    let s = unsafe { sance_ebm_new(cfg, &mut h) };
    assert_eq!(s, SanceStatus::Ok, "{}", last_error());
    h
}

pub fn data(name: &str, n: usize, seed: u64) -> Vec<f32> {
    let name = CString::new(name).unwrap();
    let dim = unsafe { sance_toy_dataset_dim(name.as_ptr()) };
    assert!(dim > 0, "{}", last_error());
    let mut v = vec![0f32; dim * n];
    assert_eq!(unsafe { sance_toy_dataset(name.as_ptr(), n, seed, v.as_mut_ptr()) }, SanceStatus::Ok);
    v
}

pub fn train(h: *mut SanceEbm, steps: std::ops::Range<u64>) {
    for t in steps {
        let d = data("8gaussians", 32, t);
        let s = unsafe { sance_ebm_train_step(h, d.as_ptr(), 32, ptr::null_mut()) };
        assert_eq!(s, SanceStatus::Ok, "{}", last_error());
    }
}

/// Energies on a fixed probe set: the model's fingerprint.
pub fn probe(h: *mut SanceEbm) -> Vec<f32> {
    let x = data("rings", 50, 12345);
    let mut e = vec![0f32; 50];
    let s = unsafe { sance_ebm_energy(h, x.as_ptr(), 50, e.as_mut_ptr()) };
    assert_eq!(s, SanceStatus::Ok, "{}", last_error());
    e
}

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

pub fn cpath(p: &std::path::Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// A fresh empty directory under the target dir.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
