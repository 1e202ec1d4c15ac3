//! The defaults do not depend on the data's units (issue 27): the same density in other units,
//! per coordinate or all together, gives the same model up to that change of units; a density
//! whose basins are much narrower than its spread (Müller–Brown at kT = 20, in its own
//! coordinates) is learned with the right populations; and a sampler the user fixed that cannot
//! reach or resolve the data says so in `SanceStepStats::warnings`. Short budgets; the full ones
//! are `sance-lowd --scale …` (docs/results.md, "Data in other units").
//!
//! Planted once each (`SANCE_PLANT=…`): `no-scaling` (scaling NONE, the data's own units as in
//! sance 0.4) fails the Gaussian in other units (KL 0.30 at ×0.01, 4.2·10⁴ at ×(100, 0.01))
//! and the check that Müller–Brown's model fitted a scaling (the tuned sampler alone still got
//! its populations within 0.015 there); `fixed-ula` (0.4's sampler: ULA at a fixed λ = 0.005,
//! on the scaled data) fails the Gaussian (KL 0.17), Müller–Brown (populations 0.08 / 0.81 /
//! 0.11 against 0.81 / 0.13 / 0.06) and the ridge (KL 35.7).
use sance_experiments::lowd as density;

use density::{model_shares, point_shares, Density, Scaled};
use sance::abi::config::{SanceConfig, SanceScaling, SANCE_DEVICE_CPU};
use sance::abi::stats::{SANCE_WARNING_COARSE_STEP, SANCE_WARNING_FROZEN_STEP, SANCE_WARNING_OUT_OF_REACH};
use sance::model::rng::Rng;
use sance::Ebm;
use sance_experiments::grid::{energies, Grid};

const BATCH: usize = 256;

fn defaults(dim: usize) -> SanceConfig {
    let mut cfg = SanceConfig { data_dim: dim as u32, device: SANCE_DEVICE_CPU, ..Default::default() };
    match std::env::var("SANCE_PLANT").as_deref() {
        Ok("no-scaling") => cfg.scaling = SanceScaling::None,
        Ok("fixed-ula") => {
            cfg.langevin.metropolis = 0;
            cfg.langevin.target_acceptance = 0.0;
        }
        _ => {}
    }
    cfg
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// Trains `cfg` on draws of `m` for `steps`; returns the model, KL(data ‖ model) with log Z on
/// a grid of `per` cells a side over the set's box, the model's and the truth's shares, on
/// 20,000 held-out draws.
fn train(m: &dyn Density, cfg: &SanceConfig, steps: usize, per: usize) -> (Ebm, f64, Vec<f64>, Vec<f64>) {
    let mut ebm = Ebm::new(cfg).unwrap();
    let mut rng = Rng::new(11);
    for _ in 0..steps {
        let x = f32s(&m.draw(BATCH, &mut rng));
        ebm.train_step(&ebm.tensor_from(&x, BATCH).unwrap()).unwrap();
    }
    let (lo, hi) = m.bounds();
    let log_z = Grid::new(&lo, &hi, per).log_z(&ebm);
    let n = 20_000;
    let x = f32s(&m.draw(n, &mut Rng::new(12)));
    let e = energies(&ebm, &x, m.dim());
    let d = m.dim();
    let kl = (0..n)
        .map(|i| {
            let xi: Vec<f64> = x[i * d..(i + 1) * d].iter().map(|&v| v as f64).collect();
            m.log_p(&xi) + e[i] + log_z
        })
        .sum::<f64>()
        / n as f64;
    let (shares, truth) = (model_shares(m, &x, &e), point_shares(m, &x));
    (ebm, kl, shares, truth)
}

fn set(name: &str) -> Box<dyn Density> {
    density::sets(|n| n == name).pop().unwrap()
}

#[test]
fn a_gaussian_in_other_units_is_learned_alike() {
    // The correlated 2-D Gaussian ([[2, 1.2], [1.2, 1]]) in three sets of units.
    let mut kls = vec![];
    for factors in [vec![1.0], vec![0.01], vec![100.0, 0.01]] {
        let m = Scaled::new(set("gauss2-corr"), &factors);
        let (_, kl, _, _) = train(&m, &defaults(2), 1200, 300);
        eprintln!("gauss2-corr ×{factors:?}, 1,200 steps: KL {kl:.4} nats");
        kls.push(kl);
    }
    for (kl, f) in kls.iter().zip(["1", "0.01", "(100, 0.01)"]) {
        assert!(*kl < 0.03, "KL(data ‖ model) = {kl:.4} nats with the data ×{f}");
    }
    let spread = kls.iter().cloned().fold(f64::MIN, f64::max) - kls.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 0.01, "the KL depends on the units: {kls:.4?}");
}

#[test]
fn narrow_basins_in_their_own_coordinates() {
    // Müller–Brown at kT = 20: basins 0.05–0.2 wide, populations ≈ 0.80 / 0.13 / 0.07.
    let m = set("mueller-brown");
    let (ebm, kl, shares, truth) = train(m.as_ref(), &defaults(2), 2000, 400);
    let err = shares.iter().zip(&truth).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    eprintln!("mueller-brown, 2,000 steps: KL {kl:.4}, shares {shares:.3?} (truth {truth:.3?})");
    assert!(err < 0.04, "basin populations {shares:.3?} against {truth:.3?}");
    assert!(kl < 0.1, "KL(data ‖ model) = {kl:.4} nats on Müller–Brown");
    // The fitted scaling is the data's: a mean inside the potential's box, stds of ~0.5.
    let s = ebm.scaling().expect("AUTO fits a scaling for an MLP");
    let scale = Vec::<f64>::try_from(s.scale.to_kind(tch::Kind::Double)).unwrap();
    assert!(scale.iter().all(|&v| v > 0.1 && v < 0.5), "scale {scale:?}");
}

#[test]
fn a_curved_ridge_reaching_past_the_init_box() {
    let m = set("ridge");
    let (_, kl, _, _) = train(m.as_ref(), &defaults(2), 1500, 300);
    eprintln!("ridge, 1,500 steps: KL {kl:.4}");
    assert!(kl < 0.05, "KL(data ‖ model) = {kl:.4} nats on the ridge");
}

/// The bits of the last of `steps` steps on the Gaussian ×`factor` with `tweak` applied.
fn warnings(factor: f64, steps: usize, tweak: impl Fn(&mut SanceConfig)) -> u32 {
    let m = Scaled::new(set("gauss2-corr"), &[factor]);
    let mut cfg = SanceConfig { data_dim: 2, device: SANCE_DEVICE_CPU, ..Default::default() };
    tweak(&mut cfg);
    let mut ebm = Ebm::new(&cfg).unwrap();
    let mut rng = Rng::new(3);
    let mut w = 0;
    for _ in 0..steps {
        let x = f32s(&m.draw(BATCH, &mut rng));
        w = ebm.train_step(&ebm.tensor_from(&x, BATCH).unwrap()).unwrap().warnings;
    }
    w
}

#[test]
fn a_sampler_that_cannot_resolve_or_reach_the_data_says_so() {
    // sance 0.4's sampler in the data's own units: fixed ULA, λ = 0.005 (noise 0.1 a step).
    let old = |c: &mut SanceConfig| {
        c.scaling = SanceScaling::None;
        c.langevin.metropolis = 0;
        c.langevin.target_acceptance = 0.0;
    };
    // Data ×0.01: one step's noise is ten times the data's spread, and the drift explodes.
    assert_ne!(warnings(0.01, 30, old) & SANCE_WARNING_COARSE_STEP, 0);
    // Data ×100: 20 steps move the chains 0.45, a thousandth of the spread; the data lie far
    // outside the init box U(−4, 4).
    let w = warnings(100.0, 30, old);
    assert_ne!(w & SANCE_WARNING_FROZEN_STEP, 0, "{w:#b}");
    assert_ne!(w & SANCE_WARNING_OUT_OF_REACH, 0, "{w:#b}");
    // A clamp box that leaves out some of the data.
    let boxed = |c: &mut SanceConfig| {
        c.langevin.clamp_min = -1.0;
        c.langevin.clamp_max = 1.0;
    };
    assert_ne!(warnings(1.0, 5, boxed) & SANCE_WARNING_OUT_OF_REACH, 0);
    // The defaults, in any units: nothing to say.
    for f in [0.01, 1.0, 100.0] {
        assert_eq!(warnings(f, 60, |_| {}), 0, "defaults on data ×{f}");
    }
}
