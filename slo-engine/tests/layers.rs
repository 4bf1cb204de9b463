//! The engine's layers: each folder of `src/` imports only the folders below it (README,
//! "Architecture"). A `crate::<layer>` path to a layer above, or to itself through the crate
//! root from another layer's order, fails here with the file and the line.

use std::path::{Path, PathBuf};

/// Bottom first. A layer may import any layer before it in this list, never one after it.
const LAYERS: [&str; 14] = [
    "util", "model", "config", "math", "ledger", "source", "eval", "alerting", "report", "notify",
    "web", "runtime", "generate", "demo",
];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a line names through `crate::`, including `use crate::{a, b::c}`.
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push(name);
            }
        } else {
            out.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

fn violations(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (rank, layer) in LAYERS.iter().enumerate() {
        let dir = src.join(layer);
        let mut all = Vec::new();
        if dir.is_dir() {
            files(&dir, &mut all);
        } else {
            let file = src.join(format!("{layer}.rs"));
            assert!(
                file.exists(),
                "layer {layer} has neither src/{layer}/ nor src/{layer}.rs"
            );
            all.push(file);
        }
        for file in all {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                for name in crate_paths(line) {
                    let Some(to) = LAYERS.iter().position(|l| *l == name) else {
                        continue;
                    };
                    if to > rank {
                        found.push(format!(
                            "{}:{}: {layer} imports crate::{name}, a layer above it",
                            file.strip_prefix(src).unwrap().display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_layer_imports_only_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(bad.is_empty(), "upward imports:\n{}", bad.join("\n"));
}

#[test]
fn every_module_of_the_crate_root_is_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let mut mods: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    mods.sort_unstable();
    let mut layers = LAYERS.to_vec();
    layers.sort_unstable();
    assert_eq!(mods, layers, "lib.rs declares exactly the layers");
}

#[test]
fn the_check_sees_an_upward_import() {
    let dir = tempfile::tempdir().unwrap();
    for layer in LAYERS {
        std::fs::create_dir(dir.path().join(layer)).unwrap();
        std::fs::write(dir.path().join(layer).join("mod.rs"), "").unwrap();
    }
    std::fs::write(
        dir.path().join("model").join("mod.rs"),
        "use crate::{util::time, eval::Report};\n// crate::runtime in a comment is fine\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("web").join("mod.rs"),
        "fn f() { crate::runtime::run(); crate::ledger::Ledger::open(); }\n",
    )
    .unwrap();
    assert_eq!(
        violations(dir.path()),
        [
            "model/mod.rs:1: model imports crate::eval, a layer above it",
            "web/mod.rs:1: web imports crate::runtime, a layer above it"
        ]
    );
}
