//! sance: energy-based models trained by self-adapting noise-contrastive estimation, with
//! Langevin sampling, on libtorch, behind a C ABI (`include/sance.h`).
//!
//! - [`config`]: the C config structs, defaults and validation;
//! - [`core`]: networks, Langevin sampler, replay buffer, the trainer ([`core::ebm::Ebm`]),
//!   toy datasets;
//! - [`ffi`]: the exported `extern "C"` functions;
//! - [`checkpoint`]: save/load in safetensors, atomically;
//! - [`eval`]: density metrics (grid-normalised KL, MMD) used by the tools and tests.
pub mod checkpoint;
pub mod config;
pub mod core;
pub mod eval;
pub mod ffi;
pub mod status;

pub use crate::config::{SanceConfig, SanceLangevin};
pub use crate::core::ebm::{Ebm, SanceProgress, SanceStepStats};
pub use crate::status::{Error, Result, SanceStatus};
