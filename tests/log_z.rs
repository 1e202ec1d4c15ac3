//! `sance_ebm_log_z` against the exact answer: 2-D models normalised on a grid (the midpoint
//! rule on [−20, 20]² at 0.05, far finer than the models' modes) must agree with the AIS
//! estimate within 0.05 nats — a self-adapting model and a classic-NCE one, whose AIS bases
//! differ. The call leaves the model exactly as it was (checkpoint bytes, random stream
//! included) and gives the same estimate twice. (src/model/ais.rs checks the estimator itself
//! against the closed-form log Z of a quadratic energy.)
mod common;
use common::*;
use sance::abi::ais::SanceAis;
use sance::abi::config::{SanceConfig, SanceNoise};
use sance::ffi::api::*;
use sance::ffi::handle::SanceEbm;
use sance::SanceStatus;
use std::ptr;

/// log ∫ exp(−E) over [−20, 20]² by the midpoint rule on an 800 × 800 grid.
fn grid_log_z(h: *mut SanceEbm) -> f64 {
    const RES: usize = 800;
    let cell = 40.0 / RES as f64;
    let axis: Vec<f32> = (0..RES).map(|i| (-20.0 + cell * (i as f64 + 0.5)) as f32).collect();
    let mut e = Vec::with_capacity(RES * RES);
    let mut x = vec![0f32; 2 * RES];
    let mut out = vec![0f32; RES];
    for &a in &axis {
        for (j, &b) in axis.iter().enumerate() {
            x[2 * j] = a;
            x[2 * j + 1] = b;
        }
        assert_eq!(unsafe { sance_ebm_energy(h, x.as_ptr(), RES, out.as_mut_ptr()) }, SanceStatus::Ok);
        e.extend(out.iter().map(|&v| -(v as f64)));
    }
    let m = e.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + e.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + (cell * cell).ln()
}

fn checkpoint(h: *mut SanceEbm, name: &str) -> Vec<u8> {
    let path = scratch(name).join("m.safetensors");
    assert_eq!(unsafe { sance_ebm_save(h, cpath(&path).as_ptr()) }, SanceStatus::Ok, "{}", last_error());
    std::fs::read(path).unwrap()
}

fn log_z(h: *mut SanceEbm) -> (f64, f64) {
    let (mut z, mut se) = (0.0, 0.0);
    let s = unsafe { sance_ebm_log_z(h, ptr::null(), &mut z, &mut se) };
    assert_eq!(s, SanceStatus::Ok, "{}", last_error());
    (z, se)
}

fn check(name: &str, cfg: &SanceConfig, steps: u64) {
    let h = new(cfg);
    for t in 0..steps {
        let d = data(name, 128, t);
        let s = unsafe { sance_ebm_train_step(h, d.as_ptr(), 128, ptr::null_mut()) };
        assert_eq!(s, SanceStatus::Ok, "{}", last_error());
    }
    let before = checkpoint(h, &format!("log-z-{name}-before"));
    let (z, se) = log_z(h);
    let exact = grid_log_z(h);
    eprintln!("{name} ({:?} noise): AIS {z:.4} ± {se:.4}, grid {exact:.4}", cfg.noise);
    assert!((z - exact).abs() < 0.05, "{name}: AIS log Z {z} ± {se} vs grid {exact}");
    assert!(se > 0.0 && se < 0.05, "{name}: standard error {se}");
    assert!(checkpoint(h, &format!("log-z-{name}-after")) == before, "{name}: log_z changed the model");
    assert_eq!(log_z(h).0, z, "{name}: the same model gives the same estimate");
    let mut a = SanceAis::default();
    assert_eq!(unsafe { sance_ais_init(&mut a, h) }, SanceStatus::Ok);
    assert!(a.chains >= 2 && a.temperatures >= 1 && a.steps >= 1 && a.step_size > 0.0, "{a:?}");
    unsafe { sance_ebm_free(h) };
}

#[test]
fn log_z_matches_the_grid_on_a_self_adapting_model() {
    check("8gaussians", &SanceConfig { hidden_width: 32, ..small_config() }, 400);
}

#[test]
fn log_z_matches_the_grid_on_a_classic_nce_model() {
    check("rings", &SanceConfig { hidden_width: 32, noise: SanceNoise::Gaussian, ..small_config() }, 400);
}
