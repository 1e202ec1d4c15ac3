//! The scoring ladder of the image experiments (docs/results.md): every set of generated
//! images is scored by the same judge, a classifier trained on the real training images, beside
//! reference sets that give the numbers a scale: real images, exact draws of a Gaussian fitted
//! to the training images, and the per-class mean images.
use crate::datasets::Images;
use crate::metrics::{self, Classifier};
use sance::model::gaussian::Gaussian;
use sance::model::rng::Rng;
use tch::{Device, Kind, Tensor};

use super::setup::{to_model, to_pixels};

pub struct Judge<'a> {
    pub classifier: Classifier,
    /// The generative model's training images (memorisation, the fitted Gaussian, class means).
    train: &'a Images,
    /// Real images that neither the judge nor the reference saw: the real-vs-real rung.
    real: (String, Images),
    /// The images every set is compared with: the first 1,000 test images (all of a smaller set).
    reference: Images,
    reference_features: Tensor,
    reference_classes: Vec<usize>,
    /// The training-set median distance scale of the pixel-space MMD (digits only).
    median: f64,
}

/// One set of images, scored.
pub struct Score {
    pub frechet: f64,
    pub kid: f64,
    pub mmd2: f64,
    pub entropy: f64,
    pub class_tv: f64,
    pub confidence: f64,
    pub memo: metrics::Memorisation,
}

impl<'a> Judge<'a> {
    /// The judge learns `judge_train` for `epochs` (its accuracy measured on `test`); sets are
    /// compared with the first 1,000 images of `test`; `real` (labelled) is the real-vs-real
    /// rung, images the judge did not learn, since its features of its own training images are
    /// tighter than of any unseen image.
    pub fn new(
        train: &'a Images,
        judge_train: &Images,
        test: &Images,
        real: (String, Images),
        epochs: usize,
    ) -> Judge<'a> {
        let classifier = Classifier::train(judge_train, test, epochs, 0);
        let reference = test.subset(&(0..test.len().min(1000)).collect::<Vec<_>>());
        let dim = reference.dim();
        let reference_features = classifier.features(&reference.pixels, dim);
        let reference_classes = classifier.predict(&reference.pixels, dim).0;
        let median = metrics::median_distance(&reference.pixels, dim);
        Judge { classifier, train, real, reference, reference_features, reference_classes, median }
    }

    pub fn reference(&self) -> &Images {
        &self.reference
    }

    /// Scores images `x` ([n, h·w], pixels in [0, 1]).
    pub fn score(&self, x: &[f32]) -> Score {
        let dim = self.reference.dim();
        let features = self.classifier.features(x, dim);
        let (cls, confidence) = self.classifier.predict(x, dim);
        Score {
            frechet: metrics::frechet(&features, &self.reference_features),
            kid: metrics::kid(&features, &self.reference_features),
            mmd2: metrics::mmd2(x, &self.reference.pixels, dim, self.median),
            entropy: metrics::class_entropy(&cls),
            class_tv: metrics::class_tv(&cls, &self.reference_classes),
            confidence,
            memo: metrics::memorisation(x, &self.train.pixels, &self.reference.pixels, dim),
        }
    }

    /// Prints the table's header and its reference rungs (the ladder).
    pub fn print_ladder(&self) {
        println!("{HEADER}");
        for (label, x) in self.ladder() {
            println!("{}", row(&label, &self.score(&x), None));
        }
    }

    /// The reference rungs: the real images, 1,000 exact draws of a Gaussian fitted to (up to
    /// 10,000) training images, and the ten per-class mean images (100 copies each).
    pub fn ladder(&self) -> Vec<(String, Vec<f32>)> {
        let dim = self.reference.dim();
        let m = self.train.len().min(10000);
        let fit_rows = to_model(&self.train.pixels[..m * dim]);
        let fitted = Gaussian::fit(
            &Tensor::from_slice(&fit_rows).view([m as i64, dim as i64]),
            0.0,
            Kind::Float,
            Device::Cpu,
        )
        .expect("a Gaussian fits the training images");
        let draws = fitted.sample(&[1000, dim as i64], &mut Rng::new(5)).expect("Gaussian draws");
        let draws = to_pixels(&Vec::<f32>::try_from(draws.flatten(0, -1)).unwrap());
        let mut means = vec![0f32; 10 * dim];
        let mut counts = [0f32; 10];
        for (img, &l) in self.train.pixels.chunks_exact(dim).zip(&self.train.labels) {
            counts[l as usize] += 1.0;
            means[l as usize * dim..(l as usize + 1) * dim].iter_mut().zip(img).for_each(|(a, b)| *a += b);
        }
        for (k, c) in counts.iter().enumerate() {
            means[k * dim..(k + 1) * dim].iter_mut().for_each(|a| *a /= c.max(1.0));
        }
        let class_means: Vec<f32> =
            (0..1000).flat_map(|i| means[(i % 10) * dim..(i % 10 + 1) * dim].to_vec()).collect();
        vec![
            (self.real.0.clone(), self.real.1.pixels.clone()),
            ("exact draws of a Gaussian fitted to the training images".into(), draws),
            ("the 10 class-mean images (100 copies each)".into(), class_means),
        ]
    }
}

pub const HEADER: &str = "| images | Fréchet distance | KID × 10³ | pixel MMD² | class entropy | class TV | \
                          confidence | nearest-train ratio | near-copies |\n|---|---|---|---|---|---|---|---|---|";

/// A table row; `seconds` is the training time (none for reference rungs).
pub fn row(label: &str, s: &Score, seconds: Option<f64>) -> String {
    let t = seconds.map(|t| format!(" ({t:.0} s)")).unwrap_or_default();
    format!(
        "| {label}{t} | {:.2} | {:.2} | {:.4} | {:.3} | {:.3} | {:.3} | {:.2} | {:.3} |",
        s.frechet,
        1e3 * s.kid,
        s.mmd2,
        s.entropy,
        s.class_tv,
        s.confidence,
        s.memo.median_ratio,
        s.memo.share_near_copies
    )
}
