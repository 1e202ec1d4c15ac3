//! Everything C sees besides the functions: the `#[repr(C)]` structs and enums, the status
//! codes and error messages, and the version numbers. cbindgen writes them to `include/sance.h`.
pub mod config;
pub mod stats;
pub mod status;
pub mod version;
