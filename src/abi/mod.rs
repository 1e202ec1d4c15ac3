//! Everything C sees besides the functions: the `#[repr(C)]` structs and enums, the status
//! codes and error messages, and the version numbers; also the config's JSON form (checkpoint
//! metadata, the data-parallel fingerprint). cbindgen writes them to `include/sance.h`.
pub mod ais;
pub mod collective;
pub mod config;
pub mod config_json;
pub mod sampling;
pub mod stats;
pub mod status;
pub mod validate;
pub mod version;
