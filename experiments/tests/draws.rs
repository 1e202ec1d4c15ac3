//! `sance_ebm_draw` draws the model's own density: on a 2-D mixture of four Gaussians with a
//! 5 % component (a density no default was tuned on), the defaults' draws
//! (`sance_ebm_sample(…, NULL, …)`, SANCE_SAMPLER_AUTO: the population) and ANNEALED's give
//! each component within 0.02 of the model's own mass and a mean log-density within 0.05 nats
//! of exact draws of the model, both computed on a grid (the model's mass outside the grid's
//! box is checked to be negligible). ANNEALED does the same for a classic-NCE model, which has
//! no population, and its log Z matches the grid's. Many calls of 8 draws each add up to the
//! model as one call of as many draws does, with a population and without one (where the
//! first call anneals and the others draw from its particles until the model changes).
//!
//! Planted once (`SANCE_PLANT=fresh`): the sampler `sance_ebm_sample(…, NULL, …)` ran before
//! (fresh chains from the init box through the training sampler's 20 steps) fails the
//! share check.
use sance_experiments::lowd::mixture;

use mixture::Mixture;
use sance::abi::config::{SanceConfig, SanceNoise};
use sance::abi::sampling::{SanceSampler, SanceSampling};
use sance::model::rng::Rng;
use sance::Ebm;
use sance_experiments::grid::{energies, Grid, Mass};

const BATCH: usize = 256;
const DRAWS: usize = 8000;
/// ANNEALED's draws in these tests: as many particles (its error on a mode's weight falls as
/// 1/√particles: about 0.009 at its default 16,384, half the target; 0.006 here).
const ANNEALED_DRAWS: usize = 32_000;
/// Draws per call in the test of many small calls.
const SMALL_CALL: usize = 8;
/// The grid: [−W, W]² in PER² cells.
const W: f64 = 9.0;
const PER: usize = 400;

/// Weights 0.55 / 0.25 / 0.15 / 0.05, axis-aligned components of different widths.
fn mixture() -> Mixture {
    let diag = |a: f64, b: f64| vec![a, 0.0, 0.0, b];
    Mixture {
        name: "mix2-4",
        dim: 2,
        weights: vec![0.55, 0.25, 0.15, 0.05],
        means: vec![vec![-3.0, 0.0], vec![2.5, 2.0], vec![2.0, -2.5], vec![-0.5, 3.5]],
        chol: vec![diag(0.8, 0.5), diag(0.4, 0.7), diag(0.6, 0.3), diag(0.3, 0.3)],
    }
}

fn trained(m: &Mixture, noise: SanceNoise, steps: usize) -> Ebm {
    let cfg = SanceConfig {
        data_dim: 2,
        device: sance::abi::config::SANCE_DEVICE_CPU,
        noise,
        ..Default::default()
    };
    let mut ebm = Ebm::new(&cfg).unwrap();
    let mut rng = Rng::new(21);
    for _ in 0..steps {
        let x = m.sample(BATCH, &mut rng);
        ebm.train_step(&ebm.tensor_from(&x, BATCH).unwrap()).unwrap();
    }
    ebm
}

/// The model on the grid: log Z, each component's share of the mass (a cell belongs to the
/// component of largest weighted density at its centre) and E_model[log p_model].
fn on_grid(ebm: &Ebm, m: &Mixture) -> Mass {
    Grid::cube(2, W, PER).mass(ebm, m.weights.len(), |p| m.region(p))
}

/// The draws' largest share gap to the model's shares, and their mean log-density's gap.
fn judge(ebm: &Ebm, m: &Mixture, g: &Mass, draws: &tch::Tensor) -> (f64, f64) {
    let d = Vec::<f32>::try_from(draws.reshape([-1])).unwrap();
    let shares = m.point_shares(&d);
    let gap = shares.iter().zip(&g.shares).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let e = energies(ebm, &d, 2);
    let mean = e.iter().map(|v| -v - g.log_z).sum::<f64>() / e.len() as f64;
    eprintln!("draws' shares {shares:.3?} against the model's {:.3?}", g.shares);
    (gap, mean - g.mean_log_q)
}

#[test]
fn default_draws_follow_the_models_masses() {
    let m = mixture();
    let mut ebm = trained(&m, SanceNoise::Snapshot, 2000);
    let g = on_grid(&ebm, &m);
    // The grid holds the model's mass: a log Z over a box twice as wide agrees.
    let wide = Grid::cube(2, 2.0 * W, 2 * PER).log_z(&ebm);
    assert!((wide - g.log_z).abs() < 1e-3, "mass outside the grid: log Z {} vs {wide}", g.log_z);
    let defaults = ebm.sampling_defaults();
    let s = if std::env::var("SANCE_PLANT").as_deref() == Ok("fresh") {
        SanceSampling { sampler: SanceSampler::Fresh as u32, ..defaults }
    } else {
        defaults
    };
    let (x, report) = ebm.draw(DRAWS, &s).unwrap();
    let (gap, dlogp) = judge(&ebm, &m, &g, &x);
    eprintln!("default draws ({report:?}): share gap {gap:.4}, mean log p gap {dlogp:+.4}");
    assert_eq!(report.sampler, SanceSampler::Population as u32, "AUTO on a trained model");
    assert!(gap <= 0.02, "a component's share of the draws is {gap:.3} off the model's mass");
    assert!(dlogp.abs() <= 0.05, "the draws' mean log-density is {dlogp:+.3} nats off exact draws'");
    // The weights keep more effective proposals than there are draws.
    assert!(report.ess > DRAWS as f64, "the proposals' weights collapsed: ESS {}", report.ess);

    // Calls for a few draws each (their proposals, centres and pilot scale down with n) add up
    // to the model too: the way a simulation asks for a draw at a time.
    let few: Vec<tch::Tensor> =
        (0..DRAWS / SMALL_CALL).map(|_| ebm.draw(SMALL_CALL, &s).unwrap().0).collect();
    let (gap, dlogp) = judge(&ebm, &m, &g, &tch::Tensor::cat(&few, 0));
    eprintln!("{} calls of {SMALL_CALL} draws: share gap {gap:.4}, mean log p gap {dlogp:+.4}", few.len());
    assert!(
        gap <= 0.02 && dlogp.abs() <= 0.05,
        "calls of {SMALL_CALL}: share gap {gap:.3}, log p gap {dlogp:+.3}"
    );

    let annealed = SanceSampling { sampler: SanceSampler::Annealed as u32, ..defaults };
    let (x, report) = ebm.draw(ANNEALED_DRAWS, &annealed).unwrap();
    let (gap, dlogp) = judge(&ebm, &m, &g, &x);
    eprintln!("annealed draws ({report:?}): share gap {gap:.4}, mean log p gap {dlogp:+.4}");
    assert!(gap <= 0.02 && dlogp.abs() <= 0.05, "ANNEALED: share gap {gap:.3}, log p gap {dlogp:+.3}");
    assert!(
        (report.log_z - g.log_z).abs() <= 0.05,
        "ANNEALED's log Z {} ± {} against the grid's {}",
        report.log_z,
        report.log_z_std_error,
        g.log_z
    );
}

#[test]
fn annealed_draws_a_model_without_a_population() {
    let m = mixture();
    let mut ebm = trained(&m, SanceNoise::Gaussian, 1500);
    let g = on_grid(&ebm, &m);
    // The same model, for a host that asks for a few draws at a time.
    let bytes = sance::checkpoint::to_bytes(&ebm).unwrap();
    let mut few = sance::checkpoint::from_bytes(bytes, sance::abi::config::SANCE_DEVICE_CPU).unwrap();
    let (x, report) = ebm.draw(ANNEALED_DRAWS, &ebm.sampling_defaults()).unwrap();
    let (gap, dlogp) = judge(&ebm, &m, &g, &x);
    eprintln!("classic NCE, AUTO ({report:?}): share gap {gap:.4}, mean log p gap {dlogp:+.4}");
    assert_eq!(report.sampler, SanceSampler::Annealed as u32, "AUTO without a population");
    assert!(gap <= 0.02 && dlogp.abs() <= 0.05, "share gap {gap:.3}, log p gap {dlogp:+.3}");
    assert!(
        (report.log_z - g.log_z).abs() <= 0.05 && report.temperatures >= 2,
        "log Z {} ± {} against the grid's {} ({} temperatures)",
        report.log_z,
        report.log_z_std_error,
        g.log_z,
        report.temperatures
    );

    // The first of many small calls anneals (1,024 particles); the others draw from its
    // particles as POPULATION does, and all add up to the model.
    let s = few.sampling_defaults();
    let calls: Vec<tch::Tensor> = (0..DRAWS / SMALL_CALL)
        .map(|i| {
            let (x, r) = few.draw(SMALL_CALL, &s).unwrap();
            let expected = if i == 0 { SanceSampler::Annealed } else { SanceSampler::Population };
            assert_eq!(r.sampler, expected as u32, "call {i} of {SMALL_CALL} draws");
            x
        })
        .collect();
    let (gap, dlogp) = judge(&few, &m, &g, &tch::Tensor::cat(&calls, 0));
    eprintln!(
        "classic NCE, {} calls of {SMALL_CALL}: share gap {gap:.4}, mean log p gap {dlogp:+.4}",
        calls.len()
    );
    assert!(
        gap <= 0.02 && dlogp.abs() <= 0.05,
        "calls of {SMALL_CALL}: share gap {gap:.3}, log p gap {dlogp:+.3}"
    );
    // A step changes the model: the next call anneals anew.
    let x = few.tensor_from(&m.sample(BATCH, &mut Rng::new(3)), BATCH).unwrap();
    few.train_step(&x).unwrap();
    assert_eq!(few.draw(SMALL_CALL, &s).unwrap().1.sampler, SanceSampler::Annealed as u32, "after a step");
}

/// Draws are reproducible for a model, differ from one call to the next, and never change
/// training: a model that drew trains exactly as one that did not.
#[test]
fn draws_leave_training_alone() {
    let m = mixture();
    let cfg = SanceConfig { data_dim: 2, device: sance::abi::config::SANCE_DEVICE_CPU, ..Default::default() };
    let (mut a, mut b) = (Ebm::new(&cfg).unwrap(), Ebm::new(&cfg).unwrap());
    let mut rng = Rng::new(5);
    for t in 0..60 {
        let x = m.sample(64, &mut rng);
        let x = a.tensor_from(&x, 64).unwrap();
        a.train_step(&x).unwrap();
        b.train_step(&x).unwrap();
        if t % 20 == 10 {
            for sampler in [SanceSampler::Auto, SanceSampler::Fresh, SanceSampler::Annealed] {
                let s = SanceSampling { sampler: sampler as u32, ..a.sampling_defaults() };
                let _ = a.draw(16, &s).unwrap();
            }
        }
    }
    let probe = a.tensor_from(&m.sample(32, &mut Rng::new(6)), 32).unwrap();
    assert!(a.energy(&probe).unwrap().equal(&b.energy(&probe).unwrap()), "drawing changed training");
    // Two models in the same state draw the same; the next call draws anew.
    let s = a.sampling_defaults();
    let (mut c, mut d) = (Ebm::new(&cfg).unwrap(), Ebm::new(&cfg).unwrap());
    for t in 0..3 {
        let x = c.tensor_from(&m.sample(64, &mut Rng::new(t)), 64).unwrap();
        c.train_step(&x).unwrap();
        d.train_step(&x).unwrap();
    }
    let first = c.draw(32, &s).unwrap().0;
    assert!(first.equal(&d.draw(32, &s).unwrap().0), "the same model drew differently");
    assert!(!first.equal(&c.draw(32, &s).unwrap().0), "a second call repeated the first's draws");
}

/// A model loaded from a format-1 checkpoint (sance 0.1's `tests/corpus/v1/trained-mlp`: no
/// average, no scaling, a buffer of chains that followed no snapshot, a few steps of training:
/// its density is nearly flat and has no finite mass without a box). Restricted to the box
/// [−12, 12]² (the moves' clamp), ANNEALED's draws give each quadrant the model's mass within
/// 0.02 and its log Z the grid's within 0.05.
#[test]
fn annealed_draws_a_model_from_a_format_1_file() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/v1/trained-mlp.safetensors");
    let mut ebm = sance::checkpoint::load(&path, sance::abi::config::SANCE_DEVICE_CPU).unwrap();
    assert_eq!(ebm.sample_size(), 2);
    let w = 12.0;
    // log Z and the quadrants' masses on the grid.
    let quadrant = |p: &[f32]| (p[0] >= 0.0) as usize + 2 * (p[1] >= 0.0) as usize;
    let grid = Grid::cube(2, w, 600).mass(&ebm, 4, quadrant);
    let (narrow, mass) = (grid.log_z, grid.shares);
    let mut s = SanceSampling { sampler: SanceSampler::Annealed as u32, ..ebm.sampling_defaults() };
    (s.moves.clamp_min, s.moves.clamp_max) = (-w as f32, w as f32);
    let (d, report) = ebm.draw(ANNEALED_DRAWS, &s).unwrap();
    let d = Vec::<f32>::try_from(d.reshape([-1])).unwrap();
    assert!(d.iter().all(|v| v.abs() <= w as f32), "a draw left the box");
    let mut shares = [0.0f64; 4];
    d.chunks(2).for_each(|p| shares[quadrant(p)] += 1.0 / ANNEALED_DRAWS as f64);
    let gap = shares.iter().zip(&mass).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    eprintln!("format 1: quadrants {shares:.3?} against {mass:.3?} ({report:?}); grid log Z {narrow}");
    assert!(gap <= 0.02, "a quadrant's share is {gap:.3} off the model's mass");
    assert!(
        (report.log_z - narrow).abs() <= 0.05,
        "log Z {} ± {} against {narrow}",
        report.log_z,
        report.log_z_std_error
    );
}
