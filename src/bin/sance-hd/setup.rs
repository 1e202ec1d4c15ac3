//! The settings and data plumbing of the experiments, shared by sance-hd and the tests that
//! check its claims at a short budget (tests/digits.rs includes this file).
use sance::abi::config::{SanceArch, SanceConfig, SanceInit, SanceLangevin};
use sance::datasets::Images;
use sance::model::rng::Rng;

/// Defaults for the 16-D mixture: the library's defaults with data_dim 16.
pub fn mixture_config() -> SanceConfig {
    SanceConfig { data_dim: 16, ..Default::default() }
}

/// Pixels in [0, 1] ↔ the model's [−1, 1].
pub fn to_model(x: &[f32]) -> Vec<f32> {
    x.iter().map(|p| 2.0 * p - 1.0).collect()
}
pub fn to_pixels(x: &[f32]) -> Vec<f32> {
    x.iter().map(|p| ((p + 1.0) / 2.0).clamp(0.0, 1.0)).collect()
}

/// Defaults for images scaled to [−1, 1] (docs/results.md, "What images need", says why
/// each): a tempered short-run sampler (λ = 1, σ = 0.01, 40 steps, clamped to the pixel
/// range, persistent chains), data noise 0.03, Adam 1e-4, and K = 1.
pub fn image_config(arch: &str, h: usize, w: usize) -> Result<SanceConfig, String> {
    let langevin = SanceLangevin {
        steps: 40,
        step_size: 1.0,
        noise_std: 0.01,
        grad_clip: 0.0,
        grad_clamp: 0.0,
        clamp_min: -1.0,
        clamp_max: 1.0,
        init: SanceInit::Uniform,
        init_scale: 1.0,
        metropolis: 0,
    };
    let base = SanceConfig {
        langevin,
        data_noise_std: 0.03,
        learning_rate: 1e-4,
        noise_update_interval: 1,
        replay_capacity: 10000,
        // Restarts and no average, as measured in docs/results.md: in hundreds of dimensions
        // the buffer's importance-resampled fill from the box is degenerate (issue 20).
        replay_reinit_prob: 0.05,
        ema_decay: 0.0,
        ..Default::default()
    };
    Ok(match arch {
        "mlp" => SanceConfig {
            arch: SanceArch::Mlp,
            data_dim: (h * w) as u32,
            hidden_width: 256,
            hidden_layers: 2,
            ..base
        },
        "conv" => SanceConfig {
            arch: SanceArch::Conv,
            channels: 1,
            height: h as u32,
            width: w as u32,
            hidden_width: 32,
            hidden_layers: if h <= 8 { 1 } else { 2 },
            ..base
        },
        a => return Err(format!("--arch: mlp or conv, not {a}")),
    })
}

/// Fashion-MNIST (1×28×28): the image settings with a narrower conv net (16, 32, 64
/// channels) and 30 sampler steps, so that a run fits 45 minutes on two CPU cores.
pub fn fashion_config() -> SanceConfig {
    let mut c = image_config("conv", 28, 28).expect("conv is known");
    c.hidden_width = 16;
    c.langevin.steps = 30;
    c
}

/// A random split of `all` into (train, test) with `test_n` test images, fixed by `seed`.
pub fn split(all: &Images, test_n: usize, seed: u64) -> (Images, Images) {
    let mut idx: Vec<usize> = (0..all.len()).collect();
    let mut r = Rng::new(seed);
    for i in (1..idx.len()).rev() {
        idx.swap(i, r.below(i as u64 + 1) as usize);
    }
    (all.subset(&idx[test_n..]), all.subset(&idx[..test_n]))
}

pub fn batch_of(train: &Images, b: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    let idx: Vec<usize> = (0..b).map(|_| r.below(train.len() as u64) as usize).collect();
    to_model(&train.subset(&idx).pixels)
}
