//! With `replay_reinit_prob` = 0 the replay buffer is a population of chains that follows the
//! snapshot: at each refresh it is reweighted by q_new/q_old and resampled, which moves chains
//! between modes that Langevin moves alone barely cross. Without it the noise's mode weights
//! are the chains' history and the model learns p_data·q/r: on a two-mode mixture with
//! weights 0.7/0.3 the weights came out 0.07/0.93 (KL 1.2 nats), with it 0.60/0.41 (KL 0.02,
//! `sance-lowd --sets mix2-2 --reinit 0`). Checked here on a grid: the model's share of its
//! mass on the heavy mode's side.
mod common;
use common::*;
use sance::abi::config::SanceConfig;
use sance::ffi::api::*;
use sance::model::rng::Rng;
use sance::SanceStatus;
use std::ptr;

/// 0.7·N((−2, 0.5), diag(0.8², 0.4²)) + 0.3·N((2, −1), diag(0.5², 0.3²)).
fn mixture(n: usize, rng: &mut Rng) -> Vec<f32> {
    let mut v = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let (mx, my, sx, sy) =
            if rng.uniform() < 0.7 { (-2.0, 0.5, 0.8, 0.4) } else { (2.0, -1.0, 0.5, 0.3) };
        v.push((mx + sx * rng.normal()) as f32);
        v.push((my + sy * rng.normal()) as f32);
    }
    v
}

#[test]
fn persistent_chains_follow_the_snapshot_between_modes() {
    let cfg = SanceConfig { replay_reinit_prob: 0.0, ..small_config() };
    let cfg = SanceConfig { hidden_width: 64, replay_capacity: 4096, ..cfg };
    let h = new(&cfg);
    let mut rng = Rng::new(3);
    for _ in 0..3000 {
        let d = mixture(128, &mut rng);
        let s = unsafe { sance_ebm_train_step(h, d.as_ptr(), 128, ptr::null_mut()) };
        assert_eq!(s, SanceStatus::Ok, "{}", last_error());
    }
    // exp(−E) on a 400 × 400 grid over [−8, 8]²; the modes are split by the line x = 0.
    const RES: usize = 400;
    let cell = 16.0 / RES as f32;
    let (mut left, mut right) = (Vec::new(), Vec::new());
    let mut x = vec![0f32; 2 * RES];
    let mut e = vec![0f32; RES];
    for i in 0..RES {
        let a = -8.0 + cell * (i as f32 + 0.5);
        for j in 0..RES {
            x[2 * j] = a;
            x[2 * j + 1] = -8.0 + cell * (j as f32 + 0.5);
        }
        assert_eq!(unsafe { sance_ebm_energy(h, x.as_ptr(), RES, e.as_mut_ptr()) }, SanceStatus::Ok);
        let side = if a < 0.0 { &mut left } else { &mut right };
        side.extend(e.iter().map(|&v| -(v as f64)));
    }
    let m = left.iter().chain(&right).cloned().fold(f64::NEG_INFINITY, f64::max);
    let (zl, zr): (f64, f64) =
        (left.iter().map(|v| (v - m).exp()).sum(), right.iter().map(|v| (v - m).exp()).sum());
    let share = zl / (zl + zr);
    eprintln!("the heavy mode's share of the model's mass: {share:.3} (truth 0.700)");
    assert!((share - 0.7).abs() < 0.1, "heavy mode's share {share:.3}, truth 0.7");
    unsafe { sance_ebm_free(h) };
}

/// `SanceProgress.refresh_ess` is the effective sample size of the refresh's weights
/// exp(E_θ̄old(x) − E_θ̄new(x)) over the population, computed here from the chains and energies
/// the model kept before the refresh and the new snapshot's energies after it.
#[test]
fn the_refresh_reports_its_weights_effective_sample_size() {
    use sance::Ebm;
    let cfg = SanceConfig { replay_reinit_prob: 0.0, noise_update_interval: 10, ..small_config() };
    let mut ebm = Ebm::new(&cfg).unwrap();
    let mut rng = Rng::new(8);
    let mut step = |ebm: &mut Ebm| {
        let d = mixture(64, &mut rng);
        ebm.train_step(&ebm.tensor_from(&d, 64).unwrap()).unwrap();
    };
    for _ in 0..10 {
        step(&mut ebm);
    }
    assert_eq!(ebm.progress().refresh_ess, 0.0, "no refresh has reweighted yet");
    let before = ebm.persistent_state();
    let rows = before.replay.expect("a population").copy();
    let e_old = before.replay_energies.expect("its energies").copy();
    step(&mut ebm); // step 11 refreshes first
    assert_eq!(ebm.refresh_count(), 2);
    let e_new = ebm.net().energy(ebm.snapshot().unwrap(), &rows).unwrap();
    let w: Vec<f64> = Vec::try_from((e_old - e_new).to_kind(tch::Kind::Double)).unwrap();
    let m = w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let (s1, s2) = w.iter().fold((0.0, 0.0), |(a, b), v| ((a + (v - m).exp()), b + (2.0 * (v - m)).exp()));
    let ess = s1 * s1 / s2;
    let got = ebm.progress().refresh_ess;
    assert!((got - ess).abs() < 1e-6 * ess, "refresh_ess {got} against {ess}");
    assert!(ess > 1.0 && ess < rows.size()[0] as f64, "{ess}");
    assert_eq!(ebm.progress().refresh_nonfinite, 0);
}
