//! `cargo xtask`: the workspace's automation, written in Rust rather than
//! shell so that it runs wherever cargo runs and is type-checked.
//!
//! Tasks, one module each:
//! - `ci`: the whole CI, runnable locally: formatting, clippy, every test,
//!   then `e2e`.
//! - `e2e`: the real binaries as whole processes, against each other, the
//!   lecture's Python programs and standard tools.
//! - `bench`: shoutd measured against a tokio reference server, the
//!   lecture's Python servers and the load generator's own ceiling; writes
//!   docs/BENCHMARKS.md and docs/benchmarks.svg. Not part of `ci`.
//!
//! `cargo xtask help` lists the options.

mod bench;
mod ci;
mod e2e;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
Usage: cargo xtask <TASK> [OPTIONS]

Tasks:
  ci                 fmt check, clippy -D warnings, all tests, then e2e
  e2e                end-to-end scenarios with the real binaries
    --only NAME      run only this scenario (repeatable)
    --list           list the scenarios and what each proves
  bench              shoutd against tokio, Python and the load generator's
                     ceiling; writes docs/BENCHMARKS.md and docs/benchmarks.svg
    --quick          short measurements, one run (a minute or two)
    --runs N         runs to take the median of (default 3; 1 with --quick)
    --only NAME      one workload (repeatable), or `balancer` (shoutd through
                     HAProxy against direct); the docs are then not written
  help               this text

The scenarios are documented in docs/TESTING.md, the benchmarks in
docs/BENCHMARKS.md.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args.first().map(String::as_str) {
        Some("ci") => no_options("ci", &args[1..]).and_then(|()| ci::run(&root)),
        Some("e2e") => {
            e2e::Options::parse(&args[1..]).and_then(|options| e2e::run(&root, &options))
        }
        Some("bench") => {
            bench::Options::parse(&args[1..]).and_then(|options| bench::run(&root, &options))
        }
        // Not in the usage: the `activation-restart` scenario runs it inside
        // a network namespace of its own.
        Some(task) if task == e2e::IN_NETNS_TASK => e2e::handover_in_netns(&args[1..]),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(task) => {
            eprintln!("xtask: unknown task `{task}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

fn no_options(task: &str, args: &[String]) -> Result<(), String> {
    match args.first() {
        None => Ok(()),
        Some(arg) => Err(format!("`{task}` takes no options, got `{arg}`")),
    }
}

/// Checks that `name`, given to `--only`, is one of `known` (the names of
/// scenarios or workloads, called `what`), with an error that lists them.
fn known_name<'a>(
    what: &str,
    name: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Result<(), String> {
    let known: Vec<&str> = known.into_iter().collect();
    if known.contains(&name) {
        return Ok(());
    }
    Err(format!(
        "no {what} named `{name}`; there are: {}",
        known.join(", ")
    ))
}

/// Returns the workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// A `cargo` command run from the workspace root, with the cargo that runs
/// us (`$CARGO`) when there is one, so toolchain overrides carry over.
fn cargo(root: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root);
    command
}

/// Runs `command` with inherited output; an error names the command when it
/// cannot start or fails.
fn run_inherited(command: &mut Command) -> Result<(), String> {
    let shown = show(command);
    let status = command
        .status()
        .map_err(|error| format!("cannot run `{shown}`: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// A command line as a user would type it, for messages.
fn show(command: &Command) -> String {
    let program = Path::new(command.get_program())
        .file_name()
        .unwrap_or(command.get_program())
        .to_string_lossy()
        .into_owned();
    std::iter::once(program)
        .chain(
            command
                .get_args()
                .map(|arg| arg.to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ")
}
