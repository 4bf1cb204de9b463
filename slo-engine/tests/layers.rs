//! The engine's layers: each folder of `src/` imports only the folders below it (README,
//! "Architecture of cellwatch-slo"), and inside each folder its files do not import each other
//! in a cycle. A `crate::<layer>` path to a layer above, or a cycle, fails here with the file
//! and the line or the cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first. A layer may import any layer before it in this list, never one after it.
const LAYERS: [&str; 16] = [
    "util", "model", "config", "math", "health", "ledger", "source", "eval", "alerting", "report",
    "notify", "web", "runtime", "backtest", "generate", "demo",
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

// Inside a layer: the files of each folder must not import each other in a cycle. A file's
// imports are its `crate::…` and `super::…` paths (tests left out), each resolved to the file
// that defines what it names; a folder's `mod.rs` is its facade and is left out of the cycles.
// A `use super::*` would hide a file's imports, so it is refused outside tests.

/// A module of the tree: its file, and its child modules by name (a folder's `mod.rs` holds
/// the folder's module).
struct Module {
    file: PathBuf,
    children: BTreeMap<String, Vec<String>>,
}

/// Every module by its path (`["config", "validate"]`), the crate root being `[]`.
fn modules(src: &Path) -> BTreeMap<Vec<String>, Module> {
    fn walk(dir: &Path, path: Vec<String>, out: &mut BTreeMap<Vec<String>, Module>) {
        let file = if path.is_empty() {
            dir.join("lib.rs")
        } else {
            dir.join("mod.rs")
        };
        let mut children = BTreeMap::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            let mut child = path.clone();
            child.push(name.clone());
            if p.is_dir() && p.join("mod.rs").exists() {
                walk(&p, child.clone(), out);
                children.insert(name, child);
            } else if p.extension().is_some_and(|x| x == "rs")
                && !["mod", "lib", "main"].contains(&name.as_str())
            {
                out.insert(
                    child.clone(),
                    Module {
                        file: p,
                        children: BTreeMap::new(),
                    },
                );
                children.insert(name, child);
            }
        }
        out.insert(path, Module { file, children });
    }
    let mut out = BTreeMap::new();
    walk(src, Vec::new(), &mut out);
    out
}

/// A file's code without its `mod tests`.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Whether `module`'s own file defines `item`.
fn defines(module: &Module, item: &str) -> bool {
    let text = code(&module.file);
    ["fn", "struct", "enum", "const", "static", "type", "trait"]
        .iter()
        .any(|kw| {
            text.lines().any(|l| {
                let l = l.trim_start();
                let l = l.strip_prefix("pub ").unwrap_or(l);
                let l = l
                    .strip_prefix("pub(crate) ")
                    .or_else(|| l.strip_prefix("pub(super) "))
                    .unwrap_or(l);
                let l = l.strip_prefix("async ").unwrap_or(l);
                l.strip_prefix(kw)
                    .and_then(|r| r.strip_prefix(' '))
                    .is_some_and(|r| {
                        r.starts_with(item)
                            && !r[item.len()..]
                                .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    })
            })
        })
}

/// The module a path names: child modules are followed; an item of a folder's facade is
/// followed to the child file that defines it.
fn resolve(
    mods: &BTreeMap<Vec<String>, Module>,
    mut at: Vec<String>,
    segs: &[&str],
) -> Vec<String> {
    for seg in segs {
        let Some(m) = mods.get(&at) else { break };
        if let Some(child) = m.children.get(*seg) {
            at = child.clone();
            continue;
        }
        // An item: defined here, or re-exported from the child that defines it.
        if !defines(m, seg)
            && let Some(child) = m.children.values().find(|c| defines(&mods[*c], seg))
        {
            at = child.clone();
        }
        break;
    }
    at
}

/// The `crate::`/`super::` paths of a file, as segments, including grouped `use` items.
fn paths(text: &str) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("");
        for root in ["crate::", "super::"] {
            let mut rest = line;
            while let Some(i) = rest.find(root) {
                let before = rest[..i].chars().last();
                rest = &rest[i + root.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let head: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let mut segs: Vec<String> = head
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                let mut supers = 1;
                while root == "super::" && segs.first().is_some_and(|s| s == "super") {
                    segs.remove(0);
                    supers += 1;
                }
                let group = rest[head.len()..].strip_prefix('{');
                let items: Vec<String> = match group {
                    Some(g) => g[..g.find('}').unwrap_or(g.len())]
                        .split(',')
                        .map(|p| p.trim().split("::").next().unwrap_or("").to_string())
                        .filter(|p| !p.is_empty() && p != "self" && p != "*")
                        .collect(),
                    None => vec![String::new()],
                };
                for item in items {
                    let mut s = segs.clone();
                    if !item.is_empty() {
                        s.push(item);
                    }
                    // `super` count rides in the first element for super:: paths.
                    if root == "super::" {
                        s.insert(0, supers.to_string());
                    }
                    out.push((root == "crate::", s));
                }
            }
        }
    }
    out
}

/// Import cycles among the children of each folder, as `folder: a -> b -> a`.
fn cycles(src: &Path) -> Vec<String> {
    let mods = modules(src);
    // Edges between modules: file module -> the module each of its paths names.
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (path, m) in &mods {
        let is_folder = m.file.ends_with("mod.rs") || m.file.ends_with("lib.rs");
        // A file's `super` is its folder; a folder's `super` is the folder above.
        let parent: Vec<String> = path[..path.len().saturating_sub(1)].to_vec();
        for (absolute, segs) in paths(&code(&m.file)) {
            let target = if absolute {
                let s: Vec<&str> = segs.iter().map(String::as_str).collect();
                resolve(&mods, Vec::new(), &s)
            } else {
                let up: usize = segs[0].parse().unwrap();
                let base = if is_folder {
                    path.clone()
                } else {
                    parent.clone()
                };
                let base = base[..base
                    .len()
                    .saturating_sub(if is_folder { up } else { up - 1 })]
                    .to_vec();
                let s: Vec<&str> = segs[1..].iter().map(String::as_str).collect();
                resolve(&mods, base, &s)
            };
            if &target != path {
                edges.entry(path.clone()).or_default().insert(target);
            }
        }
    }
    let mut found = Vec::new();
    for m in mods.values() {
        if code(&m.file).contains("use super::*;") {
            found.push(format!(
                "{}: `use super::*` hides what the file imports; name the items",
                m.file.strip_prefix(src).unwrap().display()
            ));
        }
    }
    for (folder, m) in &mods {
        if m.children.is_empty() {
            continue;
        }
        // The child of `folder` a module lies in, if any.
        let child_of = |p: &Vec<String>| -> Option<String> {
            (p.len() > folder.len() && p.starts_with(folder)).then(|| p[folder.len()].clone())
        };
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, tos) in &edges {
            let Some(a) = child_of(from) else { continue };
            for to in tos {
                if let Some(b) = child_of(to)
                    && a != b
                {
                    graph.entry(a.clone()).or_default().insert(b);
                }
            }
        }
        // Depth-first search for a back edge.
        fn visit(
            n: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            stack: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = stack.iter().position(|s| s == n) {
                let mut cycle = stack[i..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            if done.contains(n) {
                return None;
            }
            stack.push(n.to_string());
            for next in graph.get(n).into_iter().flatten() {
                if let Some(c) = visit(next, graph, stack, done) {
                    return Some(c);
                }
            }
            stack.pop();
            done.insert(n.to_string());
            None
        }
        let mut done = BTreeSet::new();
        for n in graph.keys() {
            if let Some(c) = visit(n, &graph, &mut Vec::new(), &mut done) {
                found.push(format!("{}: {}", folder.join("/"), c.join(" -> ")));
                break;
            }
        }
    }
    found
}

#[test]
fn no_folder_has_an_import_cycle_between_its_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = cycles(&src);
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle_through_a_facade() {
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("ledger");
    std::fs::create_dir(&layer).unwrap();
    std::fs::write(dir.path().join("lib.rs"), "pub mod ledger;\n").unwrap();
    std::fs::write(
        layer.join("mod.rs"),
        "mod a;\nmod b;\nmod c;\npub use a::*;\npub use b::*;\npub struct Ledger;\n",
    )
    .unwrap();
    // a -> b by a sibling path, b -> a through the facade, c -> the facade's own item only.
    std::fs::write(
        layer.join("a.rs"),
        "use super::b::Bands;\npub fn judge() {}\n",
    )
    .unwrap();
    std::fs::write(
        layer.join("b.rs"),
        "pub struct Bands;\nfn f() { crate::ledger::judge() }\n",
    )
    .unwrap();
    std::fs::write(layer.join("c.rs"), "use super::Ledger;\n").unwrap();
    assert_eq!(cycles(dir.path()), ["ledger: a -> b -> a"]);
    std::fs::write(layer.join("c.rs"), "use super::*;\n").unwrap();
    assert_eq!(
        cycles(dir.path()),
        [
            "ledger/c.rs: `use super::*` hides what the file imports; name the items",
            "ledger: a -> b -> a"
        ]
    );
}
