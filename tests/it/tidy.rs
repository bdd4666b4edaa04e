//! Tidy: the project's conventions, checked by walking the source tree (the
//! rust-analyzer way: plain tests, no extra tools in CI).

use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// Every `.rs` file of the workspace, outside build output.
fn rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![workspace_root()];
    // Bounded: a tree deeper or larger than this is not this workspace.
    for _ in 0..10_000 {
        let Some(dir) = pending.pop() else { break };
        for entry in fs::read_dir(&dir).expect("readable directory") {
            let path = entry.expect("readable entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && !name.starts_with("target-") {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    assert!(pending.is_empty(), "the source tree walk did not finish");
    assert!(
        files.len() > 20,
        "found only {} Rust files: wrong root?",
        files.len()
    );
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_rust_file_opens_with_a_module_doc_comment() {
    let missing: Vec<String> = rust_files()
        .into_iter()
        .filter(|path| {
            let text = fs::read_to_string(path).expect("UTF-8 source");
            !text.trim_start().starts_with("//!")
        })
        .map(|path| relative(&path))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading `//!` comment: {missing:?}"
    );
}

#[test]
fn no_placeholders_or_debugging_left_in() {
    // Spelled in pieces so that this file does not trip its own check.
    let forbidden = [
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
        concat!("dbg", "!("),
    ];
    let mut found = Vec::new();
    for path in rust_files() {
        let text = fs::read_to_string(&path).expect("UTF-8 source");
        for (number, line) in text.lines().enumerate() {
            for needle in forbidden {
                if line.contains(needle) {
                    found.push(format!("{}:{}: {needle}", relative(&path), number + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "placeholders or debugging left in: {found:#?}"
    );
}

#[test]
fn every_crate_is_named_in_the_architecture_doc() {
    let architecture = fs::read_to_string(workspace_root().join("docs/ARCHITECTURE.md"))
        .expect("docs/ARCHITECTURE.md");
    let mut manifests: Vec<PathBuf> = fs::read_dir(workspace_root().join("crates"))
        .expect("crates/")
        .map(|entry| entry.expect("entry").path().join("Cargo.toml"))
        .collect();
    manifests.push(workspace_root().join("xtask/Cargo.toml"));
    manifests.push(workspace_root().join("tests/Cargo.toml"));
    for manifest in manifests {
        let text = fs::read_to_string(&manifest).expect("Cargo.toml");
        let name = text
            .lines()
            .find_map(|line| line.strip_prefix("name = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .expect("a package name");
        assert!(
            architecture.contains(&format!("`{name}`")),
            "docs/ARCHITECTURE.md does not name `{name}`"
        );
    }
}

#[test]
fn every_library_crate_denies_missing_docs() {
    for entry in fs::read_dir(workspace_root().join("crates")).expect("crates/") {
        let lib = entry.expect("entry").path().join("src/lib.rs");
        // The binary packages (`crates/shoutd`, `crates/shout`) have none.
        let Ok(text) = fs::read_to_string(&lib) else {
            continue;
        };
        assert!(
            text.contains("#![deny(missing_docs)]"),
            "{} does not deny missing docs",
            relative(&lib)
        );
    }
}
