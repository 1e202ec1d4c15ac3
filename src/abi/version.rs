//! Version numbers: of the C structs' layout (checked at run time) and of the library.
use std::ffi::{CStr, CString};
use std::sync::LazyLock;

/// Version of the C structs' layout. A caller passes the value it was compiled with to
/// `sance_config_init`, which refuses any other, so a program built against another header
/// fails loudly instead of misreading fields.
pub const SANCE_ABI_VERSION: u32 = 6;
/// The library's version, `SANCE_VERSION_MAJOR.SANCE_VERSION_MINOR.SANCE_VERSION_PATCH`
/// (a test keeps these equal to Cargo.toml's).
pub const SANCE_VERSION_MAJOR: u32 = 0;
/// See `SANCE_VERSION_MAJOR`.
pub const SANCE_VERSION_MINOR: u32 = 5;
/// See `SANCE_VERSION_MAJOR`.
pub const SANCE_VERSION_PATCH: u32 = 0;

/// The one check of a caller's ABI version (`what` names where it came from: `abi_version`,
/// `config.abi_version`), with the one message a C user sees for a program built against
/// another header.
pub fn check_abi(found: u32, what: &str) -> crate::abi::status::Result<()> {
    if found == SANCE_ABI_VERSION {
        return Ok(());
    }
    Err(crate::abi::status::Error::invalid(format!(
        "{what} is {found}, but this library (sance {}) is ABI version {SANCE_ABI_VERSION}: the program was \
         compiled against another sance.h; rebuild it against this library's header and fill structs with \
         sance_config_init(&cfg, SANCE_ABI_VERSION)",
        env!("CARGO_PKG_VERSION")
    )))
}

static VERSION: LazyLock<CString> = LazyLock::new(|| {
    CString::new(format!(
        "sance {} (tch 0.24.0, libtorch {})",
        env!("CARGO_PKG_VERSION"),
        env!("SANCE_LIBTORCH_VERSION")
    ))
    .expect("no NUL in the version string")
});

/// "sance 0.5.0 (tch 0.24.0, libtorch 2.11.0+cu130)": what `sance_version` returns.
pub fn version_cstr() -> &'static CStr {
    &VERSION
}

/// [`version_cstr`] as a Rust string.
pub fn version_string() -> &'static str {
    VERSION.to_str().unwrap_or("sance")
}
