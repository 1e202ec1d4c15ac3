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
