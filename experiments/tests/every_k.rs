//! No refresh interval ruins a model: every K in {1, 10, 25, 50, 100, 1000} on each of the five
//! 2-D sets, with the defaults, gives a test log-likelihood (normalised on [−20, 20]², so mass
//! that escapes the data's box counts against it) within `SLACK` nats of the best K on that
//! set, and keeps ≥ 99 % of its mass inside [−6, 6]². A short budget (600 steps of batch
//! 128) keeps this in the suite; `scripts/sweep-k --dataset all` gives the full table of
//! docs/results.md. Before the default step was halved (0.01 → 0.005) K = 25 ended rings at
//! −36 nats and 2spirals at −112 (4,000 steps), against −3.3 and −3.0 at K = 1000; the short
//! budget cannot see that (the runaway starts after ~3,000 steps), so the second test trains
//! rings at K = 25 for the full 4,000 steps.
use sance_experiments::cli::test_device;
use sance_experiments::toy as eval;

use sance::abi::config::SanceConfig;
use sance::model::toy::{toy_dataset, TOY_DATASETS};
use sance::Ebm;
use tch::Kind;

const KS: [u32; 6] = [1, 10, 25, 50, 100, 1000];
const STEPS: u64 = 600;
const BATCH: usize = 128;
/// How far below the best K's test log-likelihood a usable model may fall, in nats. A ruined
/// model is far below: −36.5 for rings at K = 25 with the old step, and a sampler planted to
/// walk uphill leaves K ≤ 100 4.5 to 46,000 nats behind. K = 1 (unregularised maximum
/// likelihood) trails most: on checkerboard by 1.65 on this test's stream and by up to 1.1
/// across seeds 0–3 of `sance-toy sweep --dataset checkerboard --ks 1,25 --seeds 0,1,2,3
/// --steps 600 --batch 128`.
const SLACK: f64 = 2.5;
/// The least share of the model's mass inside [−6, 6]² (of the [−20, 20]² grid). Healthy
/// short runs leak a little: checkerboard at K = 1 and 10 ranges over 0.9956–1.0000 across
/// seeds (`sance-toy sweep --dataset checkerboard --ks 1,10 --seeds 0,1,2,3 --steps 600
/// --batch 128`) and this test's stream gave 0.988 once; an escaping density loses far more.
const MIN_MASS_IN_BOX: f64 = 0.98;

fn data(name: &str, n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0f32; 2 * n];
    toy_dataset(name, n, seed, &mut v).unwrap();
    v
}

fn test_ll(name: &str, k: u32) -> (f64, f64) {
    let cfg = SanceConfig { noise_update_interval: k, device: test_device(), ..Default::default() };
    let mut ebm = Ebm::new(&cfg).unwrap();
    for t in 0..STEPS {
        let x = data(name, BATCH, 7 * t + 1);
        ebm.train_step(&ebm.tensor_from(&x, BATCH).unwrap()).unwrap();
    }
    let z = eval::normaliser(&ebm);
    let test = data(name, 4000, 1 << 40);
    let e = ebm.energy(&ebm.tensor_from(&test, 4000).unwrap()).unwrap().to_kind(Kind::Double);
    (-e.mean(Kind::Double).double_value(&[]) - z.log_z, z.mass_in_box)
}

/// Every K on each of `sets`, against the best K's test log-likelihood on that set.
fn every_refresh_interval_is_usable_on(sets: &[&str]) {
    let mut failures = Vec::new();
    for &name in sets {
        let rows: Vec<(u32, f64, f64)> = KS
            .iter()
            .map(|&k| {
                let (ll, mass) = test_ll(name, k);
                (k, ll, mass)
            })
            .collect();
        let best = rows.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
        for &(k, ll, mass) in &rows {
            println!("{name:>12} K = {k:>4}: test LL {ll:8.3} nats (best {best:.3}), mass in box {mass:.4}");
            if ll < best - SLACK || mass < MIN_MASS_IN_BOX || !ll.is_finite() {
                failures.push(format!("{name} K = {k}: LL {ll:.3} (best {best:.3}), mass in box {mass:.4}"));
            }
        }
    }
    assert!(failures.is_empty(), "refresh intervals that ruin a model:\n{}", failures.join("\n"));
}

// The five sets of TOY_DATASETS in three tests, so that the test threads share the work.
#[test]
fn every_refresh_interval_gives_a_usable_model_on_8gaussians_and_rings() {
    every_refresh_interval_is_usable_on(&["8gaussians", "rings"]);
}

#[test]
fn every_refresh_interval_gives_a_usable_model_on_checkerboard() {
    every_refresh_interval_is_usable_on(&["checkerboard"]);
}

#[test]
fn every_refresh_interval_gives_a_usable_model_on_2spirals_and_pinwheel() {
    every_refresh_interval_is_usable_on(&["2spirals", "pinwheel"]);
}

#[test]
fn the_tests_cover_every_2d_set() {
    let mut covered = ["8gaussians", "rings", "checkerboard", "2spirals", "pinwheel"];
    let mut all = TOY_DATASETS;
    covered.sort_unstable();
    all.sort_unstable();
    assert_eq!(covered, all);
}

/// The case that broke before: rings at K = 25 with the default sampler, over the full 4,000
/// steps of batch 256 (the runaway started after ~3,000 steps). With the old step λ = 0.01
/// this ends at −36.5 nats; with the default λ = 0.005 at −3.42 (K = 1000: −3.38).
#[test]
fn rings_at_k25_do_not_run_away() {
    let cfg = SanceConfig { noise_update_interval: 25, device: test_device(), ..Default::default() };
    let mut ebm = Ebm::new(&cfg).unwrap();
    for t in 0..4000u64 {
        let x = data("rings", 256, 0u64.wrapping_mul(1_000_003).wrapping_add(t));
        ebm.train_step(&ebm.tensor_from(&x, 256).unwrap()).unwrap();
    }
    let z = eval::normaliser(&ebm);
    let test = data("rings", 5000, 1 << 40);
    let e = ebm.energy(&ebm.tensor_from(&test, 5000).unwrap()).unwrap().to_kind(Kind::Double);
    let ll = -e.mean(Kind::Double).double_value(&[]) - z.log_z;
    println!("rings, K = 25, 4,000 steps: test LL {ll:.3} nats, mass in box {:.4}", z.mass_in_box);
    assert!(ll > -4.0 && z.mass_in_box > 0.99, "rings at K = 25 ran away: test LL {ll:.3}");
}
