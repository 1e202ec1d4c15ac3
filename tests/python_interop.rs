//! A checkpoint's weights load in Python with safetensors + PyTorch alone and reproduce the
//! library's energies to 1e-6. Uses the project's virtual environment (SANCE_PYTHON, set by
//! scripts/env.sh).
mod common;
use common::*;
use sance::config::SanceActivation;
use sance::ffi::api::{sance_ebm_free, sance_ebm_save};
use sance::SanceStatus;
use std::process::Command;

fn check(activation: SanceActivation, name: &str) {
    let python = std::env::var("SANCE_PYTHON").expect(
        "SANCE_PYTHON is unset: run the tests through scripts/test, which sets up the virtual environment",
    );
    let dir = scratch(name);
    let ckpt = dir.join("m.safetensors");
    let h = new(&sance::SanceConfig { activation, ..small_config() });
    train(h, 0..20);
    assert_eq!(unsafe { sance_ebm_save(h, cpath(&ckpt).as_ptr()) }, SanceStatus::Ok);
    let x = data("rings", 50, 12345);
    let e = probe(h);
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
fn python_reproduces_the_energies_silu() {
    check(SanceActivation::Silu, "py-silu");
}

#[test]
fn python_reproduces_the_energies_leaky_relu() {
    check(SanceActivation::LeakyRelu, "py-leaky");
}
