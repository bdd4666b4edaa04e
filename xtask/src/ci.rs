//! `cargo xtask ci`: the whole CI, the same locally and on the CI machine.
//!
//! Steps, in order, stopping at the first failure: `cargo fmt --check`,
//! `cargo clippy -D warnings` on every target and on shout-server without
//! its features and with `ws` alone, every test (with
//! `cargo nextest` when it is installed, plus the doctests it does not run;
//! `cargo test` otherwise), then `cargo xtask e2e`. The peer tools the e2e
//! scenarios use (python3, nc, ncat, socat) are installed by the CI script,
//! never by this task. The last lines name every scenario skipped and why;
//! under `SHOUT_REQUIRE_PEERS=1` a skip, or a missing cargo-nextest, fails
//! the run instead.

use crate::{cargo, e2e, run_inherited, show};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs every step; the error names the step that failed.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let started = Instant::now();
    step(cargo(root).args(["fmt", "--all", "--", "--check"]))?;
    step(cargo(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The workspace build turns every feature of shout-server on; an
    // embedder of plain TCP and UDP builds it with none.
    step(cargo(root).args([
        "clippy",
        "--package",
        "shout-server",
        "--no-default-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    // WebSocket without TLS: `ws` alone must build on its own too.
    step(cargo(root).args([
        "clippy",
        "--package",
        "shout-server",
        "--no-default-features",
        "--features",
        "ws",
        "--",
        "-D",
        "warnings",
    ]))?;
    if nextest_available(root) {
        // The `ci` profile of .config/nextest.toml kills a test that hangs.
        step(cargo(root).args(["nextest", "run", "--workspace", "--profile", "ci"]))?;
        // nextest does not run doctests.
        step(cargo(root).args(["test", "--workspace", "--doc"]))?;
    } else if e2e::peers_required() {
        return Err(
            "cargo-nextest is not installed, and SHOUT_REQUIRE_PEERS=1: without it no test \
             is killed when it hangs (install: cargo install cargo-nextest --locked)"
                .into(),
        );
    } else {
        println!(
            "ci: WARNING: cargo-nextest not found, using cargo test, which has no per-test \
             timeout (install: cargo install cargo-nextest --locked)"
        );
        step(cargo(root).args(["test", "--workspace"]))?;
    }
    println!("==> cargo xtask e2e");
    let skipped = e2e::run_reporting_skips(root, &e2e::Options::default())?;
    println!(
        "ci: all steps passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if skipped.is_empty() {
        println!("ci: nothing skipped");
    } else {
        println!(
            "ci: {} skipped (set SHOUT_REQUIRE_PEERS=1 to fail on a skip):",
            skipped.len()
        );
        for skip in &skipped {
            println!("ci:   {skip}");
        }
    }
    Ok(())
}

/// Runs one step with its output shown, announcing it first.
fn step(command: &mut Command) -> Result<(), String> {
    println!("==> {}", show(command));
    let started = Instant::now();
    run_inherited(command)?;
    println!("    ok ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn nextest_available(root: &Path) -> bool {
    cargo(root)
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
