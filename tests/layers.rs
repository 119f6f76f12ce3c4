//! The layering that `src/lib.rs`'s doc states, checked against the code itself, so that the
//! map and the imports cannot drift apart:
//! - every module of the crate is in the map, once, and the map names no module that is gone;
//! - a module imports only `sit_core` and modules of layers below its own: never one above,
//!   never a neighbour on its own row;
//! - every `fsync` (`sync_all`, `sync_data`) is in `src/sys/` (the crash-safety rule is
//!   written once);
//! - the kernel's modules are named by their own paths (`sit_core::index::...`), never
//!   re-exported under `sit::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its comments (doc links are prose, not imports).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| match l.find("//") {
            // a `//` inside a string literal (a URL) cuts the line short: harmless here, as
            // no module path follows a URL on the same line
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The layers of `src/lib.rs`'s table, lowest first: each row's modules.
fn layers() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("//! | "))
        .filter_map(|row| {
            let first = row.split(" | ").next()?;
            let names: Vec<String> = first
                .split("[`")
                .skip(1)
                .filter_map(|s| s.split_once("`]").map(|(n, _)| n.to_string()))
                .collect();
            (!names.is_empty()).then_some(names)
        })
        .collect()
}

/// The crate's top-level modules, as `src/lib.rs` declares them.
fn declared_modules() -> BTreeSet<String> {
    code(&src().join("lib.rs"))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect()
}

/// The top-level module a file belongs to (`src/server/routes.rs` -> `server`).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// Every `crate::NAME` a piece of code refers to.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `sit_core::...`-like names ending in "crate" do not exist, but be exact
        }
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

#[test]
fn the_map_in_lib_rs_names_every_module_once() {
    let layers = layers();
    assert!(
        layers.len() >= 10,
        "src/lib.rs's layer table was not found: {layers:?}"
    );
    let mut mapped = BTreeSet::new();
    for m in layers.iter().flatten() {
        assert!(mapped.insert(m.clone()), "`{m}` is in the map twice");
    }
    assert_eq!(
        mapped,
        declared_modules(),
        "the layer table in src/lib.rs and its `pub mod` lines disagree"
    );
}

#[test]
fn no_module_imports_a_module_of_its_own_or_a_higher_layer() {
    let layer: BTreeMap<String, usize> = layers()
        .into_iter()
        .enumerate()
        .flat_map(|(i, row)| row.into_iter().map(move |m| (m, i)))
        .collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let Some(from) = module_of(f) else { continue };
        let from_layer = layer[&from];
        for to in crate_refs(&code(f)) {
            if to == from {
                continue;
            }
            let Some(&to_layer) = layer.get(&to) else {
                wrong.push(format!(
                    "{}: crate::{to} is not a module of the map",
                    f.display()
                ));
                continue;
            };
            if to_layer >= from_layer {
                wrong.push(format!(
                    "{}: `{from}` (layer {from_layer}) imports `{to}` (layer {to_layer})",
                    f.display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against src/lib.rs's layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_fsync_is_in_sys() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let sys = src().join("sys");
    let outside: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(&sys))
        .filter(|f| {
            let c = code(f);
            c.contains("sync_all") || c.contains("sync_data")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        outside.is_empty(),
        "fsync outside src/sys/ (use sys::durable): {outside:?}"
    );
}

#[test]
fn the_kernel_is_not_re_exported() {
    let lib = code(&src().join("lib.rs"));
    assert!(
        !lib.contains("pub use sit_core"),
        "src/lib.rs re-exports sit_core: name kernel items by their sit_core paths"
    );
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let reexports: Vec<String> = files
        .iter()
        .flat_map(|f| {
            code(f)
                .lines()
                .filter(|l| l.trim_start().starts_with("pub use sit_core"))
                .map(|l| format!("{}: {}", f.display(), l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        reexports.is_empty(),
        "kernel items re-exported under a second name (use their sit_core paths): {reexports:#?}"
    );
}

/// The checker itself: it must see an upward import, and one between neighbours of a row.
#[test]
fn the_checker_sees_crate_references() {
    let refs = crate_refs("use crate::server::Running;\nlet x = crate::sys::clock::now();");
    assert_eq!(
        refs,
        BTreeSet::from(["server".to_string(), "sys".to_string()])
    );
    assert!(crate_refs("sit_core::index::x").is_empty());
    assert_eq!(
        module_of(&src().join("server/routes.rs")).as_deref(),
        Some("server")
    );
    assert_eq!(
        module_of(&src().join("prices.rs")).as_deref(),
        Some("prices")
    );
    assert_eq!(module_of(&src().join("lib.rs")), None);
}
