//! A checkpoint loads into its PyTorch twin (tests/python/twin.py, plain torch.nn modules) by
//! `load_state_dict` with no renaming, and the twin reproduces the library's energies, for
//! the MLP (both activations) and the conv net. Uses the project's virtual environment
//! (SANCE_PYTHON, set by scripts/env.sh).
mod common;
use common::*;
use sance::abi::config::{SanceActivation, SanceArch, SanceConfig, SanceConvHead};
use sance::ffi::api::{
    sance_ebm_energy, sance_ebm_free, sance_ebm_sample_size, sance_ebm_save, sance_ebm_train_step,
};
use sance::SanceStatus;
use std::process::Command;

fn check(cfg: SanceConfig, name: &str) {
    let python = std::env::var("SANCE_PYTHON").expect(
        "SANCE_PYTHON is unset: run the tests through scripts/test, which sets up the virtual environment",
    );
    let dir = scratch(name);
    let ckpt = dir.join("m.safetensors");
    let h = new(&cfg);
    let d = unsafe { sance_ebm_sample_size(h) };
    // Deterministic inputs of any sample size, spread over [-2, 2].
    let points =
        |n: usize, phase: f32| (0..n * d).map(|i| 2.0 * (i as f32 * 0.7 + phase).sin()).collect::<Vec<f32>>();
    for t in 0..12 {
        let batch = points(16, t as f32);
        let s = unsafe { sance_ebm_train_step(h, batch.as_ptr(), 16, std::ptr::null_mut()) };
        assert_eq!(s, SanceStatus::Ok, "{}", last_error());
    }
    assert_eq!(unsafe { sance_ebm_save(h, cpath(&ckpt).as_ptr()) }, SanceStatus::Ok);
    let x = points(40, 0.3);
    let mut e = vec![0f32; 40];
    assert_eq!(unsafe { sance_ebm_energy(h, x.as_ptr(), 40, e.as_mut_ptr()) }, SanceStatus::Ok);
    unsafe { sance_ebm_free(h) };
    let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(dir.join("probe.f32"), bytes(&x)).unwrap();
    std::fs::write(dir.join("energies.f32"), bytes(&e)).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_checkpoint.py");
    let out = Command::new(&python)
        .args(["-W", "ignore"]) // torch warns that numpy is absent; it is not needed
        .arg(script)
        .arg(&ckpt)
        .arg(dir.join("probe.f32"))
        .arg(dir.join("energies.f32"))
        .output()
        .expect("python runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    eprintln!("{name}: {}", text.trim());
}

#[test]
fn torch_twin_loads_the_state_dict_mlp_silu() {
    check(SanceConfig { activation: SanceActivation::Silu, ..small_config() }, "py-silu");
}

#[test]
fn torch_twin_loads_the_state_dict_mlp_leaky_relu() {
    check(
        SanceConfig { activation: SanceActivation::LeakyRelu, hidden_layers: 3, ..small_config() },
        "py-leaky",
    );
}

#[test]
fn torch_twin_loads_the_state_dict_conv() {
    let cfg = SanceConfig {
        arch: SanceArch::Conv,
        channels: 2,
        height: 8,
        width: 6,
        hidden_width: 4,
        hidden_layers: 2,
        replay_capacity: 32,
        ..small_config()
    };
    check(cfg, "py-conv");
}

#[test]
fn torch_twin_loads_the_state_dict_conv_dense_head() {
    // 7×5 images: the last map (two stride-2 convs) is 2×2, the head's weight [1, 16·2·2].
    let cfg = SanceConfig {
        arch: SanceArch::Conv,
        conv_head: SanceConvHead::Dense,
        channels: 1,
        height: 7,
        width: 5,
        hidden_width: 4,
        hidden_layers: 2,
        replay_capacity: 32,
        ..small_config()
    };
    check(cfg, "py-conv-dense");
}
