//! The programs and tests find libtorch through an rpath, as libsance's do.
include!("../build_support/libtorch.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../build_support/libtorch.rs");
    link_libtorch();
}
