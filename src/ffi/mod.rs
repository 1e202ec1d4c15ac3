//! The C ABI: every `extern "C"` function of `include/sance.h`.
pub mod api;
pub mod handle;
