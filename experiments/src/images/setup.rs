//! The settings and data plumbing of the experiments, shared by sance-hd and the tests that
//! check its claims at a short budget (tests/digits.rs, tests/fashion.rs).
use crate::datasets::Images;
use sance::abi::config::{SanceArch, SanceConfig};
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

/// Settings for 8×8 digits (`arch` conv or mlp) scaled to [−1, 1]. The conv energy takes the
/// C API's image recipe as it is (`sance_config_init_image`, `SanceConfig::image`; docs/results.md,
/// "What images need", says why each setting); the MLP takes the same sampler and training
/// settings with a 64 → 256 → 256 → 1 network.
pub fn image_config(arch: &str, h: usize, w: usize) -> Result<SanceConfig, String> {
    let conv = SanceConfig::image(1, h as u32, w as u32);
    Ok(match arch {
        "conv" => conv,
        "mlp" => SanceConfig {
            arch: SanceArch::Mlp,
            data_dim: (h * w) as u32,
            hidden_width: 256,
            hidden_layers: 2,
            ..conv
        },
        a => return Err(format!("--arch: mlp or conv, not {a}")),
    })
}

/// Fashion-MNIST (1×28×28): the C API's image recipe for 28×28 images as it is.
pub fn fashion_config() -> SanceConfig {
    SanceConfig::image(1, 28, 28)
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
