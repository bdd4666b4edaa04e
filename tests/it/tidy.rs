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

/// Returns the `[dependencies]` table of a manifest, as text: the lines
/// from its header to the next table.
fn dependencies_table(manifest: &str) -> String {
    manifest
        .lines()
        .skip_while(|line| line.trim() != "[dependencies]")
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn only_shout_socket_depends_on_socket2() {
    let mut checked = 0;
    for entry in fs::read_dir(workspace_root().join("crates")).expect("crates/") {
        let path = entry.expect("entry").path();
        let manifest = fs::read_to_string(path.join("Cargo.toml")).expect("Cargo.toml");
        let depends = dependencies_table(&manifest)
            .lines()
            .any(|line| line.trim_start().starts_with("socket2"));
        let is_socket_crate = path.ends_with("socket");
        assert_eq!(
            depends,
            is_socket_crate,
            "{}: socket2 belongs to shout-socket alone (tests may use it)",
            relative(&path)
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} crates found");
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

/// The highest `rust-version` any dependency declares, for the host
/// platform, from `cargo metadata` (offline, locked: no network), with the
/// package that declares it.
fn dependencies_minimum_rust() -> ((u64, u64), String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &host])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    metadata["packages"]
        .as_array()
        .expect("a package list")
        .iter()
        // Workspace members have no source; they inherit what is checked.
        .filter(|package| !package["source"].is_null())
        .filter_map(|package| {
            let version = parse_rust_version(package["rust_version"].as_str()?)?;
            Some((version, package["name"].as_str()?.to_owned()))
        })
        .max()
        .expect("some dependency declares a rust-version")
}

/// `1.86` or `1.86.0` as (1, 86).
fn parse_rust_version(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[test]
fn rust_version_is_the_highest_a_dependency_needs_and_the_readme_says_it() {
    let ((major, minor), package) = dependencies_minimum_rust();
    let minimum = format!("{major}.{minor}");
    let manifest = fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("rust-version = \"{minimum}\"")),
        "Cargo.toml's workspace rust-version is not {minimum}, which {package} declares"
    );
    let readme = fs::read_to_string(workspace_root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("Rust ({minimum} or newer)")),
        "README.md does not say \"Rust ({minimum} or newer)\" ({package} needs {minimum})"
    );
}
