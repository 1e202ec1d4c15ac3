//! Generates include/sance_status.h (into OUT_DIR; tests/header.rs compares the committed copy),
//! the one C definition of `SanceStatus`, included by sance.h and sance_eval.h.
include!("../build_support/header.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=../build_support/header.rs");
    write_header("sance_status.h");
}
