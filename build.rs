//! Links libtorch so that `libsance.so` finds it at run time, and generates the C header.
use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");

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
    println!("cargo:rustc-env=SANCE_LIBTORCH_VERSION={}", libtorch_version(Path::new(&lib)));
    println!("cargo:rustc-env=SANCE_LIBTORCH_LIB={lib}");

    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("sance.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    match cbindgen::generate_with_config(&crate_dir, config) {
        Ok(bindings) => {
            bindings.write_to_file(&out);
        }
        Err(e) => panic!("cbindgen failed: {e}"),
    }
}

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
