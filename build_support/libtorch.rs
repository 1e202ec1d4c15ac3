// Included by build.rs and experiments/build.rs: how a crate's libraries and programs find
// libtorch at run time.

/// Links libtorch with an rpath, so that neither the library nor the programs and test
/// binaries need LD_LIBRARY_PATH, and keeps libtorch_cuda linked. Returns libtorch's lib
/// directory. The crate must depend on torch-sys directly.
fn link_libtorch() -> String {
    // torch-sys (`links = "tch"`) exports libtorch's lib directory to its direct dependents.
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("DEP_TCH_LIBTORCH_LIB is unset: torch-sys must be a direct dependency");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // Nothing references libtorch_cuda's symbols directly; without --no-as-needed the linker
    // drops it and CUDA silently disappears at run time.
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    lib
}
