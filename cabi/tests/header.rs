//! The committed include/sance_status.h must be exactly what cbindgen generates from the code.
//! `SANCE_BLESS=1 cargo test -p sance-cabi --test header` rewrites it.
use std::path::Path;

#[test]
fn committed_header_matches_generated() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/sance_status.h"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/sance_status.h");
    if std::env::var_os("SANCE_BLESS").is_some() {
        std::fs::write(&path, generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/sance_status.h differs from what cbindgen generates from the code; \
         run `SANCE_BLESS=1 cargo test --release -p sance-cabi --test header` and commit the result"
    );
}
