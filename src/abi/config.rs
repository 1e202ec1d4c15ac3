//! The C-visible configuration structs, their defaults and their validation.
//!
//! Structs arriving from C are read with [`read_config`] / [`read_langevin`] (abi/validate.rs),
//! which check the enum fields' raw integer values *before* a Rust value of the struct exists:
//! an out-of-range enum read into a Rust enum would be undefined behaviour, not an error.
use crate::abi::version::SANCE_ABI_VERSION;
use serde::{Deserialize, Serialize};

// Reading from C and validation live in abi/validate.rs; their names stay reachable here.
pub(crate) use crate::abi::validate::{finite_gt, range_u32};
pub use crate::abi::validate::{read_config, read_langevin, validate_config, validate_langevin};

/// `SanceConfig::device`: run on the CPU.
pub const SANCE_DEVICE_CPU: i32 = -1;
/// `SanceConfig::device`: CUDA device 0 when one exists, else the CPU.
pub const SANCE_DEVICE_AUTO: i32 = -2;

/// Energy network architecture.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "u32")]
pub enum SanceArch {
    /// Multilayer perceptron on vectors of `data_dim` floats.
    Mlp = 0,
    /// Small convolutional net on images of `channels × height × width` (NCHW).
    Conv = 1,
}

/// Distribution of freshly initialised Langevin chains.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "u32")]
pub enum SanceInit {
    /// N(0, init_scale²) per coordinate.
    Gaussian = 0,
    /// U(−init_scale, init_scale) per coordinate.
    Uniform = 1,
}

/// Hidden-layer nonlinearity.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "u32")]
pub enum SanceActivation {
    /// x·sigmoid(x) (Swish).
    Silu = 0,
    /// max(x, 0.2·x).
    LeakyRelu = 1,
}

/// How the CONV energy turns its last feature map into a number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "u32")]
pub enum SanceConvHead {
    /// Global sum pooling, then a linear map to a scalar: the energy is a sum of local
    /// energies of overlapping patches, the same wherever a pattern sits (a texture model).
    #[default]
    Sum = 0,
    /// A linear map of the whole last feature map to a scalar (IGEBM, short-run EBMs): the
    /// energy knows where in the image a pattern sits, as centred objects need.
    Dense = 1,
}

/// How the data's units are handled (docs/algorithm.md, "Units").
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "u32")]
pub enum SanceScaling {
    /// MLP: the model works in standardised coordinates z = 2·(x − mean) / std per coordinate
    /// (the data's std is 2 there, the scale the defaults were tuned at), with the mean and std
    /// fitted to the first training batch (or to `sance_ebm_fit_noise`'s
    /// data, whichever comes first; summed over ranks when training data-parallel), and saved
    /// with the model. The sampler's step, noise and init box are then in those coordinates
    /// (the default box ±4 is ±2 data stds around the data's mean); its clamp box and
    /// `data_noise_std` stay in the data's units. Energies, gradients,
    /// samples and log Z are in the data's units. CONV: no scaling (pixels are already on a
    /// fixed scale, and constant border pixels have no spread to fit).
    #[default]
    Auto = 0,
    /// No scaling: the model and every sampler setting work in the data's own units.
    None = 1,
}

/// SANCE_NOISE_GAUSSIAN: the largest sample size (floats) whose fitted covariance is full;
/// above it the fit is diagonal.
pub const SANCE_NOISE_FULL_COVARIANCE_MAX_DIM: u32 = 1024;

/// The noise density that NCE contrasts the data with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "u32")]
pub enum SanceNoise {
    /// Self-adapting NCE: Langevin samples of a frozen copy of the model (the snapshot),
    /// refreshed every `noise_update_interval` steps.
    #[default]
    Snapshot = 0,
    /// Classic NCE (Gutmann & Hyvärinen): exact samples of a fixed Gaussian fitted to the data
    /// by `sance_ebm_fit_noise` (or to the first training batch), with its exact log density.
    Gaussian = 1,
}

/// Langevin sampler settings: `x ← clamp(x − step_size·∇ₓE(x) + noise_std·ξ)`, ξ ~ N(0, I).
///
/// The chains target exp(−E(x)/T) with temperature T = noise_std² / (2·step_size);
/// noise_std = √(2·step_size) gives T = 1, the model's own density. Unadjusted
/// (`metropolis = 0`) they are biased by O(step_size); with `metropolis = 1` (MALA, the
/// default) each move is a proposal that a Metropolis–Hastings test accepts or rejects, which
/// removes the bias. With a fitted scaling (`config.scaling`) the moves, the step, the noise and
/// the init box are in the model's coordinates (the data's std per coordinate is 2 there), the
/// clamp box in the data's units.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanceLangevin {
    /// Number of Langevin steps (>= 1).
    pub steps: u32,
    /// Gradient step λ (> 0).
    pub step_size: f32,
    /// Noise scale σ (>= 0).
    pub noise_std: f32,
    /// Per-sample clip of ‖∇ₓE‖ before the step; 0 = no clip.
    pub grad_clip: f32,
    /// Per-coordinate clamp of ∇ₓE to [−grad_clamp, grad_clamp] before the step (and before
    /// the per-sample clip), as image EBMs use (IGEBM ±0.01, short-run recipes ±0.03); 0 = none.
    #[serde(default)] // absent from checkpoints of ABI 3 and before: none
    pub grad_clamp: f32,
    /// Lower clamp bound; `clamp_min >= clamp_max` disables clamping.
    pub clamp_min: f32,
    /// Upper clamp bound.
    pub clamp_max: f32,
    /// Distribution of fresh chains.
    pub init: SanceInit,
    /// Standard deviation (Gaussian) or half-width (uniform, centred at 0) of fresh chains.
    pub init_scale: f32,
    /// 0: unadjusted Langevin (ULA). 1: MALA, a Metropolis–Hastings accept/reject of each move
    /// targeting exp(−E/T) exactly (needs noise_std > 0; with a clamp box, moves that leave the
    /// box are rejected, so the target is the density restricted to the box). Costs one
    /// extra energy-and-gradient evaluation per call, not per step.
    #[serde(default)] // absent from checkpoints of sance <= 0.2: unadjusted
    pub metropolis: u32,
    /// MALA only: 0 keeps `step_size` fixed; a value in (0, 1) makes training tune the step
    /// after every step towards this acceptance rate of its noise chains' moves (log λ moves by
    /// the gap between the step's acceptance rate and this target, at most ×1.5 a step, kept
    /// within [1e-6, 1] × the sampler's units), with `noise_std` following so that the
    /// temperature T = noise_std²/(2·step_size) stays as set. The tuned values are the
    /// config's (`sance_ebm_config`, checkpoints) and are what a sampling call with `params`
    /// NULL uses; a sampling call itself never changes its step.
    #[serde(default)] // absent from checkpoints of ABI 4 and before: fixed
    pub target_acceptance: f32,
}

/// Everything that defines a model and its training. Start from
/// `sance_config_init(&cfg, SANCE_ABI_VERSION)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanceConfig {
    /// The layout version this struct was made with (set by `sance_config_init`).
    pub abi_version: u32,
    /// Network architecture.
    pub arch: SanceArch,
    /// MLP: floats per sample.
    pub data_dim: u32,
    /// CONV: image channels.
    pub channels: u32,
    /// CONV: image height.
    pub height: u32,
    /// CONV: image width.
    pub width: u32,
    /// MLP: units per hidden layer. CONV: channels of the first convolution (doubled by each
    /// strided convolution).
    pub hidden_width: u32,
    /// MLP: number of hidden layers. CONV: number of stride-2 convolutions after the first.
    pub hidden_layers: u32,
    /// Hidden nonlinearity.
    pub activation: SanceActivation,
    /// CONV: the head on the last feature map (SUM, the default, or DENSE). MLP: ignored.
    #[serde(default)] // absent from checkpoints of ABI 3 and before: SUM
    pub conv_head: SanceConvHead,
    /// Adam learning rate (> 0).
    pub learning_rate: f32,
    /// Adam β₁ in [0, 1).
    pub adam_beta1: f32,
    /// Adam β₂ in [0, 1).
    pub adam_beta2: f32,
    /// Decoupled (AdamW) weight decay on every network parameter, weights and biases (never on
    /// c), >= 0.
    pub weight_decay: f32,
    /// Clip of the global gradient norm (network and c); 0 = no clip.
    pub grad_clip: f32,
    /// β of the parameters' moving average, in [0, 1): the model that energies, gradients,
    /// samples and log Z use is θ̃ ← β·θ̃ + (1 − β)·θ after each step (β warmed up as
    /// min(β, (1 + t)/(10 + t))), training follows θ. 0 = no average (θ itself).
    #[serde(default)] // absent from format-2 checkpoints (ABI 3 and before): no average
    pub ema_decay: f32,
    /// K: refresh the noise snapshot every K steps; 0 = only by `sance_ebm_refresh_noise`.
    pub noise_update_interval: u32,
    /// ν: noise samples per data sample (> 0).
    pub noise_ratio: f32,
    /// The noise: SNAPSHOT (self-adapting NCE, the default) or GAUSSIAN (classic NCE).
    #[serde(default)] // absent from checkpoints of sance <= 0.2: SNAPSHOT
    pub noise: SanceNoise,
    /// α: weight of the energy-magnitude penalty α·(mean E(data)² + mean E(noise)²), >= 0.
    pub energy_l2: f32,
    /// Sampler used to draw training noise from the snapshot.
    pub langevin: SanceLangevin,
    /// Persistent replay buffer size in chains; 0 = fresh chains every step.
    pub replay_capacity: u32,
    /// Probability that a chain starts fresh instead of from the buffer, in [0, 1]. With 0 (the
    /// default) the buffer follows the snapshot: filled to capacity at the first refresh by
    /// importance resampling init draws, then at each refresh reweighted by the new snapshot's
    /// density over the old one's and resampled (docs/algorithm.md, "Replay buffer").
    pub replay_reinit_prob: f32,
    /// Std of Gaussian noise added to each data batch (in the data's units); 0 = none.
    pub data_noise_std: f32,
    /// The data's units: AUTO (the default) fits a per-coordinate standardisation to the data
    /// for an MLP; NONE uses the data as given. docs/algorithm.md, "Units".
    #[serde(default = "scaling_of_older_files")] // absent from checkpoints of ABI 4 and before: NONE
    pub scaling: SanceScaling,
    /// -1 CPU, k >= 0 CUDA device k, `SANCE_DEVICE_AUTO` (-2) CUDA 0 if present else CPU.
    pub device: i32,
    /// CPU threads for this handle's computations (libtorch's intra-op threads, set per call on
    /// the calling thread and put back after it, so the host's other threads and other handles
    /// are unaffected). 0 (the default) = automatic: `SANCE_NUM_THREADS` if set, else one
    /// thread, which cannot collapse when cores are shared (another process, MPI ranks on every
    /// core, the host's own thread pool). N ≥ 1: N threads, for a node this handle has to
    /// itself (the image recipe trains 1.7× faster on two idle cores). docs/c-api.md, "Threads".
    #[serde(default)]
    pub num_threads: u32,
    /// Seed of the handle's random stream.
    #[serde(with = "u64_as_string")]
    pub seed: u64,
}

impl Default for SanceLangevin {
    fn default() -> Self {
        let step_size = 0.005f32;
        SanceLangevin {
            steps: DEFAULT_LANGEVIN_STEPS,
            step_size,
            noise_std: (2.0 * step_size).sqrt(),
            grad_clip: 0.0,
            grad_clamp: 0.0,
            clamp_min: 0.0,
            clamp_max: 0.0,
            init: SanceInit::Uniform,
            init_scale: 4.0,
            metropolis: 1,
            target_acceptance: DEFAULT_TARGET_ACCEPTANCE,
        }
    }
}

/// The default sampler's target acceptance rate (docs/algorithm.md, "Units").
pub(crate) const DEFAULT_TARGET_ACCEPTANCE: f32 = 0.6;
/// The default sampler's steps per call, as in sance 0.4: with 15 the mixtures' mode masses came
/// out further from the truth (mix2-2's largest share error 0.013–0.028 over three seeds,
/// against 0.003–0.021 with 20; docs/algorithm.md, "Units").
const DEFAULT_LANGEVIN_STEPS: u32 = 20;

/// Checkpoints written before `scaling` existed were trained on the data as given.
fn scaling_of_older_files() -> SanceScaling {
    SanceScaling::None
}

impl Default for SanceConfig {
    /// Defaults for 2-D toy data; see docs/algorithm.md for where each number comes from.
    fn default() -> Self {
        SanceConfig {
            abi_version: SANCE_ABI_VERSION,
            arch: SanceArch::Mlp,
            data_dim: 2,
            channels: 1,
            height: 28,
            width: 28,
            hidden_width: 128,
            hidden_layers: 2,
            activation: SanceActivation::Silu,
            conv_head: SanceConvHead::Sum,
            learning_rate: 1e-3,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            weight_decay: 0.0,
            grad_clip: 0.0,
            ema_decay: 0.99,
            noise_update_interval: 50,
            noise_ratio: 1.0,
            noise: SanceNoise::Snapshot,
            energy_l2: 0.0,
            langevin: SanceLangevin::default(),
            replay_capacity: 8192,
            replay_reinit_prob: 0.0,
            data_noise_std: 0.0,
            scaling: SanceScaling::Auto,
            device: SANCE_DEVICE_AUTO,
            num_threads: 0,
            seed: 0,
        }
    }
}

impl SanceConfig {
    /// The image recipe (`sance_config_init_image`): a conv energy for `channels`×`height`×
    /// `width` images with pixels scaled to [−1, 1], and the short-run persistent sampler
    /// that image EBMs train with. docs/results.md, "What images need", gives the measurement
    /// behind each number.
    pub fn image(channels: u32, height: u32, width: u32) -> SanceConfig {
        // One stride-2 convolution per halving down to about 4×4 (8×8: 1, 28×28: 2, 32×32: 3).
        let side = height.min(width).max(1);
        let hidden_layers = (31 - (side / 4).max(1).leading_zeros()).max(1);
        // Narrower above 16×16 pixels, so that a 28×28 run fits 45 minutes on two CPU cores.
        let hidden_width = if height as u64 * width as u64 <= 256 { 32 } else { 16 };
        SanceConfig {
            arch: SanceArch::Conv,
            channels,
            height,
            width,
            hidden_width,
            hidden_layers,
            conv_head: SanceConvHead::Dense,
            learning_rate: IMAGE_LEARNING_RATE,
            ema_decay: IMAGE_EMA_DECAY,
            noise_update_interval: 1,
            langevin: SanceLangevin {
                steps: IMAGE_LANGEVIN_STEPS,
                step_size: IMAGE_STEP_SIZE,
                noise_std: IMAGE_NOISE_STD,
                grad_clip: 0.0,
                grad_clamp: IMAGE_GRAD_CLAMP,
                clamp_min: -1.0,
                clamp_max: 1.0,
                init: SanceInit::Uniform,
                init_scale: 1.0,
                metropolis: 0,
                target_acceptance: 0.0,
            },
            replay_capacity: 10_000,
            replay_reinit_prob: 0.05,
            data_noise_std: IMAGE_DATA_NOISE,
            // Pixels come on a fixed scale, [−1, 1], which the sampler's numbers are for; a
            // per-pixel standardisation would divide constant border pixels by nothing (and a
            // conv energy is never scaled anyway; this keeps an MLP on these settings alike).
            scaling: SanceScaling::None,
            energy_l2: IMAGE_ENERGY_L2,
            ..SanceConfig::default()
        }
    }
}

// The image recipe's measured numbers (docs/results.md, "What images need").
const IMAGE_LEARNING_RATE: f32 = 1e-3;
const IMAGE_EMA_DECAY: f32 = 0.99;
const IMAGE_LANGEVIN_STEPS: u32 = 30;
const IMAGE_STEP_SIZE: f32 = 1.0;
const IMAGE_NOISE_STD: f32 = 0.01;
const IMAGE_GRAD_CLAMP: f32 = 0.0;
const IMAGE_DATA_NOISE: f32 = 0.03;
const IMAGE_ENERGY_L2: f32 = 0.0;

/// Each C enum's value set, for serde (checkpoints store the C values) and for
/// [`read_config`], which checks raw integers before a Rust enum exists.
macro_rules! c_enum_values {
    ($ty:ident, $field:literal, [$($variant:ident),+]) => {
        impl From<$ty> for u32 {
            fn from(v: $ty) -> u32 {
                v as u32
            }
        }
        impl TryFrom<u32> for $ty {
            type Error = String;
            fn try_from(raw: u32) -> std::result::Result<$ty, String> {
                [$($ty::$variant),+]
                    .into_iter()
                    .find(|v| *v as u32 == raw)
                    .ok_or_else(|| format!("{} has unknown value {raw}", $field))
            }
        }
    };
}
c_enum_values!(SanceArch, "arch", [Mlp, Conv]);
c_enum_values!(SanceInit, "init", [Gaussian, Uniform]);
c_enum_values!(SanceActivation, "activation", [Silu, LeakyRelu]);
c_enum_values!(SanceNoise, "noise", [Snapshot, Gaussian]);
c_enum_values!(SanceConvHead, "conv_head", [Sum, Dense]);
c_enum_values!(SanceScaling, "scaling", [Auto, None]);

/// The seed as a decimal string: JSON numbers are doubles in most readers.
mod u64_as_string {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s =
            String::deserialize(d).map_err(|_| D::Error::custom("seed must be a u64 written as a string"))?;
        s.parse().map_err(|_| D::Error::custom(format!("seed {s:?} is not a u64")))
    }
}

impl SanceConfig {
    /// Floats per sample.
    pub fn sample_size(&self) -> usize {
        match self.arch {
            SanceArch::Mlp => self.data_dim as usize,
            SanceArch::Conv => (self.channels * self.height * self.width) as usize,
        }
    }
    /// Shape of one sample (without the batch dimension).
    pub fn sample_shape(&self) -> Vec<i64> {
        match self.arch {
            SanceArch::Mlp => vec![self.data_dim as i64],
            SanceArch::Conv => vec![self.channels as i64, self.height as i64, self.width as i64],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_preset_sizes_the_conv_net_to_the_image_and_validates() {
        // One stride-2 convolution per halving of the smaller side down to about 4 pixels.
        for (c, h, w, layers) in [(1, 8, 8, 1), (1, 28, 28, 2), (3, 32, 32, 3), (1, 64, 20, 2), (1, 2, 2, 1)]
        {
            let cfg = SanceConfig::image(c, h, w);
            assert_eq!((cfg.channels, cfg.height, cfg.width, cfg.hidden_layers), (c, h, w, layers));
            assert_eq!(cfg.arch, SanceArch::Conv);
            assert_eq!((cfg.langevin.clamp_min, cfg.langevin.clamp_max), (-1.0, 1.0));
            assert_eq!(cfg.conv_head, SanceConvHead::Dense);
            assert_eq!(cfg.scaling, SanceScaling::None);
            assert_eq!(cfg.hidden_width, if h * w <= 256 { 32 } else { 16 });
            validate_config(&cfg).unwrap();
        }
        assert!(validate_config(&SanceConfig::image(1, 0, 28)).is_err());
    }
}
