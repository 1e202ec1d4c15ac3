//! libsance.so must find libtorch without LD_LIBRARY_PATH and keep libtorch_cuda linked
//! (otherwise CUDA silently disappears at run time).
use std::path::Path;
use std::process::Command;

#[test]
fn shared_library_resolves_libtorch_and_keeps_cuda() {
    let so = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/libsance.so");
    assert!(so.exists(), "{} is missing: build with `cargo build --release` first", so.display());
    let out = Command::new("ldd").arg(&so).env_remove("LD_LIBRARY_PATH").output().expect("ldd runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("not found"), "unresolved libraries:\n{text}");
    for lib in ["libtorch_cpu.so", "libc10.so"] {
        assert!(text.contains(lib), "{lib} not linked:\n{text}");
    }
    // A CPU-only libtorch has no libtorch_cuda to keep.
    let libdir = Path::new(env!("SANCE_LIBTORCH_LIB"));
    if libdir.join("libtorch_cuda.so").exists() {
        assert!(text.contains("libtorch_cuda.so"), "libtorch_cuda dropped by --as-needed:\n{text}");
    }
}

/// The SONAME is set at link time (build.rs), not by `make install`: libsance.so.0.Y before
/// 1.0, where a minor version may break the ABI, libsance.so.X after.
#[test]
fn shared_library_carries_its_versioned_soname() {
    let so = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/libsance.so");
    assert!(so.exists(), "{} is missing: build with `cargo build --release` first", so.display());
    let mut version = env!("CARGO_PKG_VERSION").split('.');
    let (major, minor) = (version.next().unwrap(), version.next().unwrap());
    let expected =
        if major == "0" { format!("libsance.so.0.{minor}") } else { format!("libsance.so.{major}") };
    let out = Command::new("readelf").arg("-d").arg(&so).output().expect("readelf runs");
    assert!(out.status.success(), "readelf -d failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let soname = text
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(|l| l.split('[').nth(1))
        .and_then(|s| s.split(']').next())
        .unwrap_or_else(|| panic!("no SONAME in {}:\n{text}", so.display()));
    assert_eq!(soname, expected, "SONAME of {}", so.display());
}
