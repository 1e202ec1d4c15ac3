//! Self-adapting NCE learns the 8×8 digits at a short budget: with the image settings of
//! sance-hd (experiments/src/images/setup.rs), 1,000 samples of the trained MLP energy are
//! classified into at least 9 of the 10 classes (≥ 2 % each) by a classifier trained on the
//! real training digits, and their pixel-space MMD² to held-out digits is below half of
//! what classic NCE reaches with the same network, sampler and steps. docs/results.md has the
//! full comparison (`sance-hd digits`).
use sance_experiments::cli::test_device;
use sance_experiments::images::score;
use sance_experiments::images::setup;

use sance::abi::config::{SanceConfig, SanceConvHead, SanceLangevin, SanceNoise};
use sance::Ebm;
use sance_experiments::datasets;
use sance_experiments::metrics::{self, Classifier};
use setup::{batch_of, image_config, split, to_model, to_pixels};
use tch::{Device, Kind};

const STEPS: u64 = 600;
const BATCH: usize = 128;

fn train_and_sample(noise: SanceNoise, train: &datasets::Images) -> Vec<f32> {
    let mut cfg = image_config("mlp", 8, 8).unwrap();
    cfg.noise = noise;
    cfg.device = test_device();
    let mut ebm = Ebm::new(&cfg).unwrap();
    if noise == SanceNoise::Gaussian {
        ebm.fit_noise(&ebm.tensor_from(&to_model(&train.pixels), train.len()).unwrap()).unwrap();
    }
    for t in 0..STEPS {
        let x = batch_of(train, BATCH, 11 + t);
        ebm.train_step(&ebm.tensor_from(&x, BATCH).unwrap()).unwrap();
    }
    let l = SanceLangevin { steps: 300, ..cfg.langevin };
    let x = ebm.sample(1000, &l).unwrap();
    to_pixels(&Vec::<f32>::try_from(x.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1)).unwrap())
}

#[test]
fn self_adapting_nce_learns_digits_that_classic_nce_does_not() {
    let all = datasets::load_digits(&datasets::digits_path()).unwrap();
    let (train, test) = split(&all, 297, 2024);
    let judge = Classifier::train(&train, &test, 60, 0);
    assert!(judge.test_accuracy >= 0.95, "the judge itself: accuracy {}", judge.test_accuracy);
    let median = metrics::median_distance(&test.pixels, 64);
    let sa = train_and_sample(SanceNoise::Snapshot, &train);
    let classic = train_and_sample(SanceNoise::Gaussian, &train);
    let (mmd_sa, mmd_classic) =
        (metrics::mmd2(&sa, &test.pixels, 64, median), metrics::mmd2(&classic, &test.pixels, 64, median));
    let (cls, conf) = judge.predict(&sa, 64);
    let mut seen = [0usize; 10];
    cls.iter().for_each(|&k| seen[k] += 1);
    let classes = seen.iter().filter(|&&n| n >= 20).count();
    println!("self-adapting: MMD² {mmd_sa:.4}, classes {seen:?}, mean confidence {conf:.3}; classic NCE: MMD² {mmd_classic:.4}");
    assert!(classes >= 9, "samples cover only {classes} classes (≥ 2 % each): {seen:?}");
    assert!(
        mmd_sa < 0.5 * mmd_classic,
        "MMD² {mmd_sa:.4} is not below half of classic NCE's {mmd_classic:.4}"
    );
}

/// The C API's image recipe (`sance_config_init_image`, nothing changed but the device) at a
/// short budget: the draws it trains on (replay-buffer chains run by its sampler) are closer to
/// held-out digits than exact draws of a Gaussian fitted to the training digits (pixel MMD²
/// under half of theirs), cover all ten classes, and are not copies of training digits. The
/// sum-pooling head of the earlier settings fails it (`SANCE_PLANT=sum-head`).
#[test]
fn the_image_recipe_beats_a_fitted_gaussian_on_digits() {
    let all = datasets::load_digits(&datasets::digits_path()).unwrap();
    let (train, test) = split(&all, 297, 2024);
    let real = ("500 training digits".to_string(), train.subset(&(1000..1500).collect::<Vec<_>>()));
    let judge = score::Judge::new(&train, &train.subset(&(0..1000).collect::<Vec<_>>()), &test, real, 60);
    let gaussian = judge.score(&judge.ladder()[1].1);
    let mut cfg = SanceConfig { device: test_device(), ..SanceConfig::image(1, 8, 8) };
    if std::env::var("SANCE_PLANT").as_deref() == Ok("sum-head") {
        cfg.conv_head = SanceConvHead::Sum;
    }
    let mut ebm = Ebm::new(&cfg).unwrap();
    for t in 0..CONV_STEPS {
        let x = batch_of(&train, 256, 29 + t);
        ebm.train_step(&ebm.tensor_from(&x, 256).unwrap()).unwrap();
    }
    let (x, _, _) = ebm.draw_noise(1000).unwrap();
    let x = to_pixels(
        &Vec::<f32>::try_from(x.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1)).unwrap(),
    );
    let s = judge.score(&x);
    println!(
        "image recipe, {CONV_STEPS} steps: MMD² {:.4} (Gaussian {:.4}), class entropy {:.3}, near-copies {:.3}",
        s.mmd2, gaussian.mmd2, s.entropy, s.memo.share_near_copies
    );
    assert!(
        s.mmd2 < 0.5 * gaussian.mmd2,
        "MMD² {:.4} is not below half of the fitted Gaussian's {:.4}",
        s.mmd2,
        gaussian.mmd2
    );
    assert!(s.entropy > 2.1, "class entropy {:.3} (ln 10 = 2.303 is uniform)", s.entropy);
    assert!(s.memo.share_near_copies < 0.05, "{:?}", s.memo);
}

const CONV_STEPS: u64 = 800;
