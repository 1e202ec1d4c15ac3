//! Generates include/sance_eval.h (into OUT_DIR; eval/tests/header.rs compares the committed
//! copy) and gives the library its SONAME.
use std::env;
use std::path::PathBuf;

include!("../build_support/status_guard.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=../build_support/status_guard.rs");
    // libsance_eval.so.0.Y before 1.0, as libsance (build.rs, Makefile).
    let version = env::var("CARGO_PKG_VERSION").unwrap();
    let mut parts = version.split('.');
    let (major, minor) = (parts.next().unwrap_or("0"), parts.next().unwrap_or("0"));
    let soname = if major == "0" {
        format!("libsance_eval.so.0.{minor}")
    } else {
        format!("libsance_eval.so.{major}")
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    // Programs linked against the build tree find the SONAME there too (as build.rs does for
    // libsance): target/<profile>/libsance_eval.so.0.Y -> libsance_eval.so.
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    if let Some(profile) = out.ancestors().nth(3) {
        let link = profile.join(&soname);
        if std::fs::read_link(&link).map_or(true, |to| to != std::path::Path::new("libsance_eval.so")) {
            let _ = std::fs::remove_file(&link);
            let _ = std::os::unix::fs::symlink("libsance_eval.so", &link);
        }
    }

    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("sance_eval.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings =
        cbindgen::generate_with_config(&crate_dir, config).unwrap_or_else(|e| panic!("cbindgen failed: {e}"));
    let mut text = Vec::new();
    bindings.write(&mut text);
    let text = guard_status(&String::from_utf8(text).expect("UTF-8 header"));
    std::fs::write(&out, text).expect("write sance_eval.h");
}
