//! sance_eval: E(x) and ∇ₓE(x) of trained sance MLP energies without libtorch, for the inner
//! loop of a simulation (one point in about a microsecond) and for deploying a trained force
//! where libtorch cannot go. It reads libsance's checkpoints and agrees with libsance's
//! `sance_ebm_energy_grad` to float rounding. C API: include/sance_eval.h.
pub mod checkpoint;
pub mod ffi;
/// The network and its passes (the workspace crate sance-mlp, which libsance's sampler uses too).
pub use sance_mlp as mlp;

pub use checkpoint::Model;
pub use sance_cabi::SanceStatus;
