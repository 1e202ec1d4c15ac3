//! Sample-quality metrics for the tools and tests (not part of the C API): a multi-scale
//! kernel MMD², mode coverage of the 16-D mixture, a small classifier whose predictions and
//! penultimate features score generated images, and the Fréchet distance between features.
use sance::model::toy;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn rows(x: &[f32], dim: usize) -> Tensor {
    Tensor::from_slice(x).view([-1, dim as i64]).to_kind(Kind::Double)
}

fn sq_dists(a: &Tensor, b: &Tensor) -> Tensor {
    let sa = a.square().sum_dim_intlist([1i64].as_slice(), true, Kind::Double);
    let sb = b.square().sum_dim_intlist([1i64].as_slice(), true, Kind::Double);
    (sa + sb.tr() - a.mm(&b.tr()) * 2.0).clamp_min(0.0)
}

/// The median pairwise distance among (up to 1,000 of) the reference points.
pub fn median_distance(reference: &[f32], dim: usize) -> f64 {
    let r = rows(reference, dim);
    let r = r.narrow(0, 0, r.size()[0].min(1000));
    let n = r.size()[0];
    let d = sq_dists(&r, &r).sqrt();
    let iu = Tensor::ones([n, n], (Kind::Bool, Device::Cpu)).triu(1);
    d.masked_select(&iu).median().double_value(&[])
}

/// Unbiased MMD² between samples `a` and `b` ([n, dim] row-major) under the sum of RBF kernels
/// exp(−‖x−y‖²/(2h²)) with h = m·`median` for m in {0.5, 1, 2, 4}: a scale-free mix that
/// sees both the fine structure and the overall shape.
pub fn mmd2(a: &[f32], b: &[f32], dim: usize, median: f64) -> f64 {
    let (ta, tb) = (rows(a, dim), rows(b, dim));
    let (n, m) = (ta.size()[0] as f64, tb.size()[0] as f64);
    let (daa, dbb, dab) = (sq_dists(&ta, &ta), sq_dists(&tb, &tb), sq_dists(&ta, &tb));
    let mut total = 0.0;
    for mult in [0.5, 1.0, 2.0, 4.0] {
        let h2 = 2.0 * (mult * median) * (mult * median);
        let k = |d: &Tensor| (-(d / h2)).exp();
        let off = |d: &Tensor, n: f64| (k(d).sum(Kind::Double).double_value(&[]) - n) / (n * (n - 1.0));
        total += off(&daa, n) + off(&dbb, m) - 2.0 * k(&dab).mean(Kind::Double).double_value(&[]);
    }
    total
}

/// How samples of the 16-D mixture sit on its modes.
#[derive(Clone, Copy, Debug)]
pub struct Coverage {
    /// Modes holding at least a quarter of their share (n/32) of samples near them.
    pub modes: usize,
    /// Share of samples near some mode: ‖x − μ‖² below D·σ² + 4·σ²·√(2D), the χ²_D mean
    /// plus four standard deviations (9.66 for D = 16, σ = 0.5).
    pub near: f64,
}

pub fn coverage16(x: &[f32]) -> Coverage {
    let (d, s2) = (toy::GAUSSIANS16D_DIM, toy::GAUSSIANS16D_STD * toy::GAUSSIANS16D_STD);
    let radius2 = d as f64 * s2 + 4.0 * s2 * (2.0 * d as f64).sqrt();
    let n = x.len() / d;
    let mut counts = [0usize; toy::GAUSSIANS16D_MODES];
    for row in x.chunks_exact(d) {
        let (k, d2) = (0..toy::GAUSSIANS16D_MODES)
            .map(|k| {
                (k, (0..d).map(|j| (row[j] as f64 - toy::gaussians16d_centre(k, j)).powi(2)).sum::<f64>())
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("8 modes");
        if d2 < radius2 {
            counts[k] += 1;
        }
    }
    let share = n as f64 / toy::GAUSSIANS16D_MODES as f64;
    Coverage {
        modes: counts.iter().filter(|&&c| c as f64 >= share / 4.0).count(),
        near: counts.iter().sum::<usize>() as f64 / n as f64,
    }
}

/// A small image classifier, trained on real images, used as the judge of generated ones:
/// MLP 64→256→256→10 for 8×8 digits; for larger images two 5×5 convolutions (32, 64
/// channels, each followed by 2×2 max pooling), then 128 features, then 10 classes.
pub struct Classifier {
    _vs: nn::VarStore,
    features: nn::Sequential,
    head: nn::Linear,
    pub test_accuracy: f64,
}

impl Classifier {
    /// Trains with Adam (lr 1e-3, batch 128) for `epochs` on `train` (pixels [n, h·w] in [0, 1]),
    /// and measures the accuracy on `test`. Seeded: the same data give the same classifier.
    pub fn train(
        train: &crate::datasets::Images,
        test: &crate::datasets::Images,
        epochs: usize,
        seed: i64,
    ) -> Classifier {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let p = vs.root();
        let (h, w) = (train.height as i64, train.width as i64);
        let features = if h * w <= 64 {
            nn::seq()
                .add(nn::linear(&p / "f1", h * w, 256, Default::default()))
                .add_fn(|x| x.relu())
                .add(nn::linear(&p / "f2", 256, 256, Default::default()))
                .add_fn(|x| x.relu())
        } else {
            let flat = 64 * (h / 4) * (w / 4);
            nn::seq()
                .add_fn(move |x| x.view([-1, 1, h, w]))
                .add(nn::conv2d(&p / "c1", 1, 32, 5, nn::ConvConfig { padding: 2, ..Default::default() }))
                .add_fn(|x| x.relu().max_pool2d_default(2))
                .add(nn::conv2d(&p / "c2", 32, 64, 5, nn::ConvConfig { padding: 2, ..Default::default() }))
                .add_fn(move |x| x.relu().max_pool2d_default(2).view([-1, flat]))
                .add(nn::linear(&p / "f1", flat, 128, Default::default()))
                .add_fn(|x| x.relu())
        };
        let width = if h * w <= 64 { 256 } else { 128 };
        let head = nn::linear(&p / "head", width, 10, Default::default());
        let mut opt = nn::Adam::default().build(&vs, 1e-3).expect("Adam");
        let x = Tensor::from_slice(&train.pixels).view([train.len() as i64, h * w]);
        let y = Tensor::from_slice(&train.labels).to_kind(Kind::Int64);
        let n = train.len() as i64;
        for _ in 0..epochs {
            let perm = Tensor::randperm(n, (Kind::Int64, Device::Cpu));
            let mut i = 0;
            while i < n {
                let idx = perm.narrow(0, i, (n - i).min(128));
                let logits = head.forward(&features.forward(&x.index_select(0, &idx)));
                let loss = logits.cross_entropy_for_logits(&y.index_select(0, &idx));
                opt.backward_step(&loss);
                i += 128;
            }
        }
        let mut c = Classifier { _vs: vs, features, head, test_accuracy: 0.0 };
        let pred = c.predict(&test.pixels, test.dim()).0;
        let right = pred.iter().zip(&test.labels).filter(|(p, l)| **p == **l as usize).count();
        c.test_accuracy = right as f64 / test.len() as f64;
        c
    }

    /// Penultimate features [n, width] of images [n, dim].
    pub fn features(&self, x: &[f32], dim: usize) -> Tensor {
        sance::model::no_grad(|| {
            let t = Tensor::from_slice(x).view([-1, dim as i64]);
            let chunks: Vec<Tensor> = (0..t.size()[0])
                .step_by(1000)
                .map(|i| self.features.forward(&t.narrow(0, i, (t.size()[0] - i).min(1000))))
                .collect();
            Tensor::cat(&chunks, 0).to_kind(Kind::Double)
        })
    }

    /// Predicted classes and the mean confidence (the largest softmax probability).
    pub fn predict(&self, x: &[f32], dim: usize) -> (Vec<usize>, f64) {
        let p = sance::model::no_grad(|| {
            self.head.forward(&self.features(x, dim).to_kind(Kind::Float)).softmax(-1, Kind::Double)
        });
        let (conf, cls) = p.max_dim(1, false);
        (
            Vec::<i64>::try_from(cls).unwrap().into_iter().map(|c| c as usize).collect(),
            conf.mean(Kind::Double).double_value(&[]),
        )
    }
}

/// Total variation distance between the class histograms of two label lists.
pub fn class_tv(a: &[usize], b: &[usize]) -> f64 {
    let hist = |v: &[usize]| {
        let mut h = [0f64; 10];
        v.iter().for_each(|&c| h[c] += 1.0 / v.len() as f64);
        h
    };
    let (ha, hb) = (hist(a), hist(b));
    0.5 * (0..10).map(|i| (ha[i] - hb[i]).abs()).sum::<f64>()
}

/// Fréchet distance between Gaussians fitted to two feature sets [n, f]:
/// ‖μa − μb‖² + tr(Σa + Σb − 2(Σa^½ Σb Σa^½)^½), the square roots by symmetric
/// eigendecomposition.
pub fn frechet(a: &Tensor, b: &Tensor) -> f64 {
    let stats = |x: &Tensor| {
        let mu = x.mean_dim([0i64].as_slice(), false, Kind::Double);
        let c = x - mu.unsqueeze(0);
        let cov = c.tr().mm(&c) / (x.size()[0] as f64 - 1.0);
        (mu, cov)
    };
    let sqrtm = |m: &Tensor| {
        let (vals, vecs) = m.linalg_eigh("L");
        vecs.mm(&vals.clamp_min(0.0).sqrt().diag_embed(0, -2, -1)).mm(&vecs.tr())
    };
    let ((ma, ca), (mb, cb)) = (stats(a), stats(b));
    let sa = sqrtm(&ca);
    let cross = sqrtm(&sa.mm(&cb).mm(&sa));
    let tr = (&ca + &cb - cross * 2.0).trace().double_value(&[]);
    (ma - mb).square().sum(Kind::Double).double_value(&[]) + tr
}

/// Kernel inception distance between feature sets [n, f] and [m, f]: the unbiased MMD² under
/// the cubic polynomial kernel (x·y/f + 1)³ (Bińkowski et al. 2018). Unlike the Fréchet
/// distance it has no bias from the sample size, so small sets can be compared.
pub fn kid(a: &Tensor, b: &Tensor) -> f64 {
    let f = a.size()[1] as f64;
    let k = |x: &Tensor, y: &Tensor| (x.mm(&y.tr()) / f + 1.0).pow_tensor_scalar(3);
    let off = |x: &Tensor| {
        let n = x.size()[0] as f64;
        let kx = k(x, x);
        (kx.sum(Kind::Double).double_value(&[]) - kx.trace().double_value(&[])) / (n * (n - 1.0))
    };
    off(a) + off(b) - 2.0 * k(a, b).mean(Kind::Double).double_value(&[])
}

/// Entropy (nats) of the histogram of predicted classes; ln 10 = 2.303 when all ten are equally
/// frequent, 0 when every sample gets one class.
pub fn class_entropy(cls: &[usize]) -> f64 {
    let mut h = [0f64; 10];
    cls.iter().for_each(|&c| h[c] += 1.0 / cls.len() as f64);
    -h.iter().filter(|&&p| p > 0.0).map(|p| p * p.ln()).sum::<f64>()
}

/// Euclidean distance from each row of `a` to its nearest row of `reference` (both [·, dim]).
pub fn nearest_distances(a: &[f32], reference: &[f32], dim: usize) -> Vec<f64> {
    let r = Tensor::from_slice(reference).view([-1, dim as i64]);
    let rr = r.square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    a.chunks(dim * 250)
        .flat_map(|chunk| {
            let x = Tensor::from_slice(chunk).view([-1, dim as i64]);
            let xx = x.square().sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
            let d2 = (xx + rr.unsqueeze(0) - x.mm(&r.tr()) * 2.0).amin([1i64].as_slice(), false);
            Vec::<f32>::try_from(d2.clamp_min(0.0).sqrt()).unwrap()
        })
        .map(f64::from)
        .collect()
}

/// How close samples sit to the training set, against how close unseen real images do.
#[derive(Clone, Copy, Debug)]
pub struct Memorisation {
    /// Median distance of a sample to its nearest training image over the same median for test
    /// images (< 1: samples sit closer to the training set than unseen real images do).
    pub median_ratio: f64,
    /// Share of samples nearer to a training image than the closest 1 % of test images are to
    /// theirs (about 0.01 for samples that do not copy the training set; a copy scores 1).
    pub share_near_copies: f64,
}

pub fn memorisation(samples: &[f32], train: &[f32], test: &[f32], dim: usize) -> Memorisation {
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let (ds, mut dt) = (nearest_distances(samples, train, dim), nearest_distances(test, train, dim));
    let ratio = median(&ds) / median(&dt);
    dt.sort_by(f64::total_cmp);
    let q = dt[dt.len() / 100];
    Memorisation {
        median_ratio: ratio,
        share_near_copies: ds.iter().filter(|&&d| d < q).count() as f64 / ds.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frechet_of_two_gaussians_matches_the_closed_form() {
        // N(0, I) against N(m, 4I) in 3-D: ‖m‖² + tr(I + 4I − 2·2I) = ‖m‖² + 3.
        tch::manual_seed(0);
        let a = Tensor::randn([200000, 3], (Kind::Double, Device::Cpu));
        let b = Tensor::randn([200000, 3], (Kind::Double, Device::Cpu)) * 2.0
            + Tensor::from_slice(&[1.0, 2.0, 0.0]);
        let f = frechet(&a, &b);
        assert!((f - 8.0).abs() < 0.1, "{f}");
    }

    #[test]
    fn kid_is_zero_for_one_distribution_and_grows_with_a_shift() {
        tch::manual_seed(1);
        let a = Tensor::randn([2000, 8], (Kind::Double, Device::Cpu));
        let b = Tensor::randn([2000, 8], (Kind::Double, Device::Cpu));
        let same = kid(&a, &b);
        let far = kid(&(&a + 0.5), &b);
        assert!(same.abs() < 0.01 && far > 0.1, "{same} {far}");
    }

    #[test]
    fn class_entropy_spans_one_class_to_uniform() {
        assert!(class_entropy(&[3; 50]).abs() < 1e-12);
        let uniform: Vec<usize> = (0..1000).map(|i| i % 10).collect();
        assert!((class_entropy(&uniform) - 10f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn memorisation_flags_copies_of_the_training_set_only() {
        tch::manual_seed(2);
        let draw = |n: i64| {
            Vec::<f32>::try_from(Tensor::randn([n, 16], (Kind::Float, Device::Cpu)).flatten(0, -1)).unwrap()
        };
        let (train, test, fresh) = (draw(2000), draw(500), draw(500));
        let honest = memorisation(&fresh, &train, &test, 16);
        let copies = memorisation(&train[..500 * 16], &train, &test, 16);
        assert!((0.9..1.1).contains(&honest.median_ratio) && honest.share_near_copies < 0.05, "{honest:?}");
        assert!(copies.median_ratio < 0.01 && copies.share_near_copies == 1.0, "{copies:?}");
    }

    #[test]
    fn mmd_separates_shifted_samples_and_not_equal_ones() {
        let mut v = vec![0f32; 16 * 1000];
        toy::toy_dataset(toy::GAUSSIANS16D, 1000, 1, &mut v).unwrap();
        let mut w = vec![0f32; 16 * 1000];
        toy::toy_dataset(toy::GAUSSIANS16D, 1000, 2, &mut w).unwrap();
        let med = median_distance(&w, 16);
        let same = mmd2(&v, &w, 16, med);
        let shifted: Vec<f32> = v.iter().map(|x| x + 0.5).collect();
        let far = mmd2(&shifted, &w, 16, med);
        assert!(same.abs() < 0.01 && far > 10.0 * same.abs().max(1e-3), "{same} {far}");
        let c = coverage16(&v);
        assert_eq!(c.modes, 8);
        assert!(c.near > 0.99, "{}", c.near);
    }
}
