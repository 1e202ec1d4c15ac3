// Included by build.rs and eval/build.rs: both libraries' headers define the same
// `SanceStatus`, so each wraps its generated typedef (with the comment above it) in one
// include guard, and a program may include sance.h, sance_eval.h or both in either order.

/// `header` with its `SanceStatus` typedef between `#ifndef SANCE_STATUS_DEFINED` … `#endif`.
fn guard_status(header: &str) -> String {
    let end_marker = "} SanceStatus;\n";
    let end = header.find(end_marker).expect("the header defines SanceStatus") + end_marker.len();
    let typedef = header[..end].rfind("typedef enum {").expect("SanceStatus is a typedef'd enum");
    let start = header[..typedef]
        .rfind("/**")
        .filter(|&d| header[d..typedef].trim_end().ends_with("*/"))
        .unwrap_or(typedef);
    format!(
        "{}#ifndef SANCE_STATUS_DEFINED\n#define SANCE_STATUS_DEFINED\n{}#endif  /* SANCE_STATUS_DEFINED */\n{}",
        &header[..start],
        &header[start..end],
        &header[end..]
    )
}
