//! The model, computed with libtorch: energy networks with named layers, the Langevin sampler,
//! the replay buffer, AdamW, the SA-NCE trainer ([`ebm::Ebm`]) and the 2-D toy datasets.
//! Nothing here knows about C; `crate::ffi` wraps it.
pub mod adam;
pub mod collective;
pub mod cudnn;
pub mod ebm;
pub mod flat;
pub mod gaussian;
pub mod langevin;
pub mod loaded;
pub mod memory;
pub mod net;
pub mod replay;
pub mod rng;
pub mod threads;
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
