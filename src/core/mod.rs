//! The pure-Rust core: networks, sampler, replay buffer, the trainer and toy data.
pub mod adam;
pub mod ebm;
pub mod langevin;
pub mod net;
pub mod replay;
pub mod rng;
pub mod toy;

#[cfg(test)]
mod tests;
