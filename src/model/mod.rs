//! The model, computed with libtorch: energy networks with named layers, the Langevin sampler,
//! the replay buffer, AdamW, the SA-NCE trainer ([`ebm::Ebm`]) and the 2-D toy datasets.
//! Nothing here knows about C; `crate::ffi` wraps it.
pub mod adam;
pub mod ebm;
pub mod flat;
pub mod gaussian;
pub mod langevin;
pub mod net;
pub mod replay;
pub mod rng;
pub mod threads;
pub mod toy;

#[cfg(test)]
mod tests;
