//! Links libtorch so that `libsance.so` finds it at run time, and generates the C header.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=build_support/header.rs");
    println!("cargo:rerun-if-changed=build_support/libtorch.rs");

    let lib = link_libtorch();
    // The SONAME at link time, so that every build carries it.
    link_soname("libsance");
    println!("cargo:rustc-env=SANCE_LIBTORCH_VERSION={}", libtorch_version(Path::new(&lib)));
    println!("cargo:rustc-env=SANCE_LIBTORCH_LIB={lib}");

    // SanceStatus is sance-cabi's (include/sance_status.h, which sance.h includes).
    write_header("sance.h");
}

include!("build_support/header.rs");
include!("build_support/libtorch.rs");

/// The libtorch version, from the pip wheel's `version.py` or a standalone `build-version`.
fn libtorch_version(lib: &Path) -> String {
    let root = lib.parent().unwrap_or(lib);
    if let Ok(s) = std::fs::read_to_string(root.join("version.py")) {
        for line in s.lines() {
            if let Some(v) = line.strip_prefix("__version__ = ") {
                return v.trim().trim_matches('\'').trim_matches('"').to_string();
            }
        }
    }
    if let Ok(s) = std::fs::read_to_string(root.join("build-version")) {
        return s.trim().to_string();
    }
    "unknown".to_string()
}
