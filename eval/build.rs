//! Generates include/sance_eval.h (into OUT_DIR; eval/tests/header.rs compares the committed
//! copy) and gives the library its SONAME.
include!("../build_support/header.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=../build_support/header.rs");
    // libsance_eval.so.0.Y before 1.0, as libsance.
    link_soname("libsance_eval");
    write_header("sance_eval.h");
}
