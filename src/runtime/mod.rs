//! libtorch's process-wide plumbing, which is not the model: per-call thread counts
//! ([`threads`]), how much memory a call may use and how big a chunk is ([`memory`]),
//! deterministic cuDNN ([`cudnn`]), and the lookup of symbols in already-loaded libraries
//! that all three use ([`loaded`]). The model calls into it; it knows nothing of the model.
pub mod cudnn;
pub mod loaded;
pub mod memory;
pub mod threads;
