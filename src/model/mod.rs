//! The model, computed with libtorch: energy networks with named layers, the Langevin sampler,
//! the replay buffer, AdamW, the SA-NCE trainer ([`ebm::Ebm`]) and the 2-D toy datasets.
//! Nothing here knows about C or checkpoints: it imports only `crate::abi` (config, statuses),
//! `crate::panic`, `crate::runtime` and the test hooks of `crate::fault`; `crate::ffi` and
//! `crate::checkpoint` build on it.
pub mod adam;
pub mod ais;
pub mod clamp;
pub mod ebm;
pub mod fast_mlp;
pub mod flat;
pub mod gaussian;
pub mod kde;
pub mod langevin;
mod mala_host;
pub mod net;
pub mod replay;
pub mod resample;
pub mod rng;
pub mod scaling;
pub mod smc;
pub mod toy;

#[cfg(test)]
mod tests;

/// Runs `f` with gradient tracking off, and turns it back on even when `f` unwinds.
/// `tch::no_grad` restores the mode only when `f` returns, so a libtorch error raised as a
/// panic inside it (which sance catches and reports) would leave the thread's autograd off
/// and the next training step without a graph.
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let _guard = tch::no_grad_guard();
    f()
}
