//! Links libtorch so that `libsance.so` finds it at run time, and generates the C header.
use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=build_support/header.rs");

    // torch-sys (`links = "tch"`) exports libtorch's lib directory to its direct dependents.
    let lib = env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("DEP_TCH_LIBTORCH_LIB is unset: torch-sys must be a direct dependency");
    // An rpath so neither the library nor the test binaries need LD_LIBRARY_PATH.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // Nothing references libtorch_cuda's symbols directly; without --no-as-needed the linker
    // drops it and CUDA silently disappears at run time.
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    // The SONAME at link time, so that every build carries it.
    link_soname("libsance");
    println!("cargo:rustc-env=SANCE_LIBTORCH_VERSION={}", libtorch_version(Path::new(&lib)));
    println!("cargo:rustc-env=SANCE_LIBTORCH_LIB={lib}");

    // SanceStatus is shared with include/sance_eval.h.
    write_header("sance.h");
}

include!("build_support/header.rs");

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
