//! The committed header must be exactly what cbindgen generates from the code.
//! `SANCE_BLESS=1 cargo test --test header` rewrites it.
use std::path::Path;

#[test]
fn committed_header_matches_generated() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/sance.h"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/sance.h");
    if std::env::var_os("SANCE_BLESS").is_some() {
        std::fs::write(&path, generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/sance.h differs from what cbindgen generates from the code; \
         run `SANCE_BLESS=1 cargo test --release --test header` and commit the result"
    );
}

/// The names a C program sees in the header: macros, then typedef'd types, enum values and
/// functions (`extern "C"` guards and comments left out).
fn public_names(header: &str) -> Vec<String> {
    let text: String = header.lines().filter(|l| !l.contains("extern \"C\"")).collect::<Vec<_>>().join("\n");
    // Strip /* */ and // comments.
    let mut code = String::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/*") {
            rest = &r[r.find("*/").expect("closed comment") + 2..];
        } else if let Some(r) = rest.strip_prefix("//") {
            rest = &r[r.find('\n').unwrap_or(r.len())..];
        } else {
            let c = rest.chars().next().unwrap();
            code.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    let mut names = Vec::new();
    let mut decls = String::new();
    for line in code.lines() {
        let t = line.trim_start();
        if let Some(d) = t.strip_prefix("#define") {
            names.push(d.split_whitespace().next().unwrap().to_string());
        } else if !t.starts_with('#') {
            decls.push_str(line);
            decls.push('\n');
        }
    }
    // Tokens: identifiers and single punctuation characters.
    let mut tokens: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in decls.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    // Walk the top-level declarations, each ending with ';' at depth 0.
    let mut start = 0;
    let mut depth = 0;
    for i in 0..tokens.len() {
        match tokens[i].as_str() {
            "{" | "(" => depth += 1,
            "}" | ")" => depth -= 1,
            ";" if depth == 0 => {
                let d = &tokens[start..i];
                start = i + 1;
                if d.first().map(String::as_str) == Some("typedef") {
                    if d.last().map(String::as_str) == Some(")") {
                        // A function pointer type: `typedef R (*Name)(args);`.
                        if let Some(w) = d.windows(3).find(|w| w[0] == "(" && w[1] == "*") {
                            names.push(w[2].clone());
                        }
                        continue;
                    }
                    names.push(d.last().unwrap().clone()); // the type's name
                    if d.get(1).map(String::as_str) == Some("enum") {
                        // Enum values: identifiers after '{' or ',' at the body's level.
                        for w in d.windows(2) {
                            if (w[0] == "{" || w[0] == ",") && w[1] != "}" {
                                names.push(w[1].clone());
                            }
                        }
                    }
                } else if let Some(p) = d.iter().position(|t| t == "(") {
                    names.push(d[p - 1].clone()); // a function's name
                }
            }
            _ => {}
        }
    }
    names
}

#[test]
fn every_public_name_is_prefixed() {
    let read = |name: &str| {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include").join(name)).unwrap()
    };
    let header = read("sance.h");
    let names = public_names(&header);
    let functions = names.iter().filter(|n| n.starts_with("sance_")).count();
    assert!(functions >= 20, "parsed {names:?}");
    assert!(public_names(&read("sance_status.h")).contains(&"SANCE_STATUS_OK".to_string()));
    for file in ["sance.h", "sance_status.h", "sance_eval.h"] {
        let bad: Vec<String> = public_names(&read(file))
            .into_iter()
            .filter(|n| !(n.starts_with("SANCE_") || n.starts_with("Sance") || n.starts_with("sance_")))
            .collect();
        assert!(bad.is_empty(), "names in include/{file} without a SANCE_/Sance/sance_ prefix: {bad:?}");
    }
    // The parser must see what it is meant to catch: the leak this test was written for.
    let planted =
        header.replace("#define SANCE_DEVICE_CPU", "#define FORMAT_VERSION 1\n#define SANCE_DEVICE_CPU");
    assert!(public_names(&planted).contains(&"FORMAT_VERSION".to_string()));
    for leak in ["typedef int handle_t;", "int helper(void);", "typedef enum { RED = 0, } Colour;"] {
        let planted = header.replace("#endif  /* SANCE_H */", &format!("{leak}\n#endif"));
        let found = public_names(&planted);
        assert!(
            found
                .iter()
                .any(|n| !n.starts_with("SANCE_") && !n.starts_with("Sance") && !n.starts_with("sance_")),
            "planted {leak:?} not seen"
        );
    }
}

#[test]
fn version_macros_match_cargo_toml() {
    use sance::abi::version::*;
    let parse = |s: &str| s.parse::<u32>().unwrap();
    assert_eq!(
        (SANCE_VERSION_MAJOR, SANCE_VERSION_MINOR, SANCE_VERSION_PATCH),
        (
            parse(env!("CARGO_PKG_VERSION_MAJOR")),
            parse(env!("CARGO_PKG_VERSION_MINOR")),
            parse(env!("CARGO_PKG_VERSION_PATCH"))
        ),
        "src/abi/version.rs disagrees with Cargo.toml's version"
    );
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/sance.h")).unwrap();
    for (name, v) in [
        ("SANCE_VERSION_MAJOR", SANCE_VERSION_MAJOR),
        ("SANCE_VERSION_MINOR", SANCE_VERSION_MINOR),
        ("SANCE_VERSION_PATCH", SANCE_VERSION_PATCH),
    ] {
        assert!(header.contains(&format!("#define {name} {v}\n")), "{name} is not {v} in include/sance.h");
    }
}
