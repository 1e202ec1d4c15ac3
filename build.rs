//! Links libtorch so that `libsance.so` finds it at run time, and generates the C header.
use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=build_support/status_guard.rs");

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
    // The SONAME at link time, so `make install` needs no patchelf and every build carries it.
    let soname = soname(&env::var("CARGO_PKG_VERSION").unwrap());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    soname_link(&soname);
    println!("cargo:rustc-env=SANCE_LIBTORCH_VERSION={}", libtorch_version(Path::new(&lib)));
    println!("cargo:rustc-env=SANCE_LIBTORCH_LIB={lib}");

    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("sance.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings =
        cbindgen::generate_with_config(&crate_dir, config).unwrap_or_else(|e| panic!("cbindgen failed: {e}"));
    let mut text = Vec::new();
    bindings.write(&mut text);
    // SanceStatus is shared with include/sance_eval.h: guarded so both may be included.
    let text = guard_status(&String::from_utf8(text).expect("UTF-8 header"));
    std::fs::write(&out, text).expect("write sance.h");
}

include!("build_support/status_guard.rs");

/// The SONAME for a crate version, as the Makefile computes it: `libsance.so.0.Y` for 0.Y.Z (a
/// minor version may break the ABI before 1.0), `libsance.so.X` for X.Y.Z with X >= 1.
fn soname(version: &str) -> String {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    if major == "0" {
        format!("libsance.so.0.{minor}")
    } else {
        format!("libsance.so.{major}")
    }
}

/// Programs linked against the build tree (`-Ltarget/release -lsance`) need the SONAME at run
/// time, as with an installed library: target/<profile>/libsance.so.0.Y -> libsance.so.
fn soname_link(soname: &str) {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    // OUT_DIR is target/<profile>/build/sance-<hash>/out.
    let Some(profile) = out.ancestors().nth(3) else { return };
    let link = profile.join(soname);
    if std::fs::read_link(&link).is_ok_and(|to| to == Path::new("libsance.so")) {
        return;
    }
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink("libsance.so", &link) {
        println!("cargo:warning=cannot create {}: {e}", link.display());
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
