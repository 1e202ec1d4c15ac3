//! The C API's image recipe learns Fashion-MNIST at a short budget: after 600 steps of
//! `sance_config_init_image(1, 28, 28)` (nothing changed but the device and two threads), the draws it trains on
//! are closer to test images in a judge's features than exact draws of a Gaussian fitted to the
//! training images are (Fréchet distance under half of theirs), spread over the classes, and
//! not copies of training images.
//! docs/results.md has the full run (`sance-hd fashion`, 2,000 steps). Needs Debian's
//! dataset-fashion-mnist (./scripts/test installs it) or SANCE_FASHION_MNIST.
//!
//! `SANCE_PLANT=sum-head` trains the same recipe with the sum-pooling head, whose samples are
//! textures; the test must fail then.
use sance_experiments::cli::test_device;
use sance_experiments::images::score;
use sance_experiments::images::setup;

use sance::abi::config::{SanceConfig, SanceConvHead};
use sance::Ebm;
use sance_experiments::datasets;
use setup::{batch_of, to_pixels};
use tch::{Device, Kind};

const STEPS: u64 = 600;

#[test]
fn the_image_recipe_learns_fashion_mnist_at_a_short_budget() {
    let dir = datasets::fashion_dir();
    let train =
        datasets::load_fashion(&dir, true).expect("Fashion-MNIST (apt-get install dataset-fashion-mnist)");
    let test = datasets::load_fashion(&dir, false).unwrap();
    let real = ("other test images".to_string(), test.subset(&(1000..2000).collect::<Vec<_>>()));
    // One epoch of the judge (the tool trains two): ~88 % on the test set, enough to rank sets.
    let judge = score::Judge::new(&train, &train, &test, real, 1);
    assert!(judge.classifier.test_accuracy > 0.8, "the judge itself: {}", judge.classifier.test_accuracy);
    let gaussian = judge.score(&judge.ladder()[1].1);
    // Two intra-op threads: this binary's one test has the suite's two cores to itself (the
    // count changes the speed, not the arithmetic's result beyond rounding).
    let mut cfg = SanceConfig { device: test_device(), num_threads: 2, ..SanceConfig::image(1, 28, 28) };
    if std::env::var("SANCE_PLANT").as_deref() == Ok("sum-head") {
        cfg.conv_head = SanceConvHead::Sum;
    }
    let mut ebm = Ebm::new(&cfg).unwrap();
    for t in 0..STEPS {
        let x = batch_of(&train, 64, 7919 + t);
        ebm.train_step(&ebm.tensor_from(&x, 64).unwrap()).unwrap();
    }
    let mut x = Vec::new();
    for _ in 0..2 {
        let (d, _, _) = ebm.draw_noise(500).unwrap();
        x.extend(Vec::<f32>::try_from(d.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1)).unwrap());
    }
    let s = judge.score(&to_pixels(&x));
    println!(
        "image recipe, {STEPS} steps: FD {:.2} (fitted Gaussian {:.2}), class entropy {:.3}, near-copies {:.3}, \
         nearest-train ratio {:.2}",
        s.frechet, gaussian.frechet, s.entropy, s.memo.share_near_copies, s.memo.median_ratio
    );
    assert!(
        s.frechet < FD_SHARE_OF_GAUSSIAN * gaussian.frechet,
        "FD {:.2} is not below {FD_SHARE_OF_GAUSSIAN} × the fitted Gaussian's {:.2}",
        s.frechet,
        gaussian.frechet
    );
    assert!(s.entropy > 1.8, "class entropy {:.3} (ln 10 = 2.303 is uniform)", s.entropy);
    assert!(s.memo.share_near_copies < 0.05, "{:?}", s.memo);
}

const FD_SHARE_OF_GAUSSIAN: f64 = 0.5;
