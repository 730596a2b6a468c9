//! The layering in lib.rs's doc comment, checked: each module's code
//! (its tests aside) names no module listed after it.

/// Every module, lowest first, with its source.
const LAYERS: &[(&str, &str)] = &[
    ("text", include_str!("text.rs")),
    ("when", include_str!("when.rs")),
    ("values", include_str!("values.rs")),
    ("schema", include_str!("schema.rs")),
    ("error", include_str!("error.rs")),
    ("records", include_str!("records.rs")),
    ("signing", include_str!("signing.rs")),
    ("doc", include_str!("doc.rs")),
    ("view", include_str!("view.rs")),
    ("author", include_str!("author.rs")),
    ("locate", include_str!("locate.rs")),
    ("read", include_str!("read.rs")),
    ("create", include_str!("create.rs")),
    ("edit", include_str!("edit.rs")),
    ("rows", include_str!("rows.rs")),
    ("review", include_str!("review.rs")),
    ("diff", include_str!("diff.rs")),
    ("render", include_str!("render.rs")),
    ("history", include_str!("history.rs")),
    ("plan_file", include_str!("plan_file.rs")),
    ("documents_file", include_str!("documents_file.rs")),
    ("county", include_str!("county.rs")),
];

/// The modules `code` names: `crate::name::…`, `crate::name;` and the
/// names in `use crate::{…}`.
fn named(code: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let names = match rest.strip_prefix('{') {
            Some(group) => &group[..group.find('}').unwrap_or(group.len())],
            None => {
                &rest[..rest
                    .find(|c: char| !c.is_alphanumeric() && c != '_')
                    .unwrap_or(rest.len())]
            }
        };
        out.extend(
            names
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .filter(|n| !n.is_empty()),
        );
    }
    out
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let known: Vec<&str> = LAYERS.iter().map(|(name, _)| *name).collect();
    for line in include_str!("lib.rs").lines() {
        if let Some(module) = line.strip_prefix("pub mod ") {
            let module = module.trim_end_matches(';');
            assert!(
                known.contains(&module),
                "{module} is not in LAYERS: give it its place"
            );
        }
    }
    for (place, (module, source)) in LAYERS.iter().enumerate() {
        let code = source.split("#[cfg(test)]").next().unwrap_or(source);
        for name in named(code) {
            if let Some(above) = known.iter().position(|k| *k == name) {
                assert!(
                    above < place,
                    "{module} uses {name}, which is above it in lib.rs's layers"
                );
            }
        }
    }
}
