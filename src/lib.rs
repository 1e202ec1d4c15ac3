//! sance: energy-based models trained by self-adapting noise-contrastive estimation, with
//! Langevin sampling, on libtorch, behind a C ABI (`include/sance.h`).
//!
//! - [`abi`]: what C sees besides the functions: config structs (defaults, validation),
//!   statistics structs, status codes and errors, version numbers;
//! - [`model`]: the model on libtorch: networks, Langevin sampler, replay buffer, AdamW, the
//!   trainer ([`model::ebm::Ebm`]), toy datasets;
//! - [`runtime`]: libtorch's process-wide plumbing (threads, memory limits, cuDNN flags);
//! - [`panic`]: panics and libtorch errors raised as panics, caught for the model and for C;
//! - [`ffi`]: the exported `extern "C"` functions;
//! - [`checkpoint`]: save/load in safetensors, atomically;
//! - [`fault`]: test-only fault injection (the `test-hooks` feature).
//!
//! The programs around the library (sance-toy, sance-hd, sance-lowd), the real datasets and
//! the sample-quality metrics are the `sance-experiments` crate (experiments/), not in here.
//!
//! Imports run down: `ffi` → `checkpoint` → `model` → `runtime`, `panic`, `abi`
//! (docs/architecture.md).
pub mod abi;
pub mod checkpoint;
pub mod fault;
pub mod ffi;
pub mod model;
pub mod panic;
pub mod runtime;

pub use crate::abi::config::{SanceConfig, SanceLangevin};
pub use crate::abi::stats::{SanceProgress, SanceStepStats};
pub use crate::abi::status::{Error, Result, SanceStatus};
pub use crate::model::ebm::Ebm;
