//! The fuzz corpus as regression tests: every input kept under
//! `fuzz/corpus/` goes through the fuzz targets' own oracles
//! (`fuzz/oracles.rs`, included here as a module), on the stable toolchain
//! and without libFuzzer. Fuzzing itself is run by hand: docs/TESTING.md.

#[path = "../../fuzz/oracles.rs"]
mod oracles;

use std::fs;
use std::path::{Path, PathBuf};

/// The kept inputs of one fuzz target, by file name.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a readable entry").path();
            let data = fs::read(&path).expect("a readable input");
            (path, data)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    inputs
}

/// Runs `oracle` on every input of `target`, naming the input that fails.
fn replay(target: &str, oracle: fn(&[u8])) {
    for (path, data) in corpus(target) {
        if std::panic::catch_unwind(|| oracle(&data)).is_err() {
            panic!("{} fails the oracle (see the panic above)", path.display());
        }
    }
}

#[test]
fn uppercaser_corpus_passes_its_oracle() {
    replay("uppercaser", oracles::check_uppercaser);
}

#[test]
fn line_reader_corpus_passes_its_oracle() {
    replay("line_reader", oracles::check_line_reader);
}
