//! `shoutd` started as a process on port 0, and what its logs say; the rest
//! of the support is `shout_testkit`, re-exported here.

pub(crate) use shout_testkit::*;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::process::Command;

/// shoutd's flags that each name a socket to listen on, with a
/// `listening` line of its own.
pub(crate) const SOCKET_FLAGS: [&str; 7] = [
    "--tcp",
    "--udp",
    "--tls",
    "--quic",
    "--ws",
    "--wss",
    "--metrics",
];

/// A running `shoutd` and the first TCP, UDP and metrics addresses it
/// announced; killed on drop if still running.
pub(crate) struct Shoutd {
    process: ServerProcess,
    pub(crate) tcp: Option<SocketAddr>,
    pub(crate) udp: Option<SocketAddr>,
    pub(crate) metrics: Option<SocketAddr>,
}

impl Shoutd {
    /// Starts the `shoutd` of this package with `args`.
    pub(crate) fn start(args: &[&str]) -> Self {
        Self::start_with(Command::new(env!("CARGO_BIN_EXE_shoutd")).args(args))
    }

    /// Starts `command`, which must keep shoutd's start-up contract: one
    /// `listening` line per `--tcp`, `--udp`, `--tls`, `--quic`, `--ws`,
    /// `--wss` and `--metrics` it was given.
    pub(crate) fn start_with(command: &mut Command) -> Self {
        let sockets = command
            .get_args()
            .filter(|arg| SOCKET_FLAGS.iter().any(|flag| arg == flag))
            .count();
        let process =
            ServerProcess::start("shoutd", command, sockets).unwrap_or_else(|e| panic!("{e}"));
        let (tcp, udp) = (process.listening().tcp(), process.listening().udp());
        let metrics = process.listening().addrs("metrics").first().copied();
        Self {
            process,
            tcp,
            udp,
            metrics,
        }
    }

    /// Waits (bounded) for the exit; returns status code and stderr.
    pub(crate) fn wait(self) -> (Option<i32>, String) {
        self.process.wait()
    }

    /// Kills it with SIGKILL and reaps it.
    pub(crate) fn kill_9(self) {
        self.process.kill_9();
    }
}

impl Deref for Shoutd {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl DerefMut for Shoutd {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

/// A figure from the `stopped: …` summary shoutd logs when it stops, e.g.
/// `summary_figure(stderr, "bytes in")`.
pub(crate) fn summary_figure(stderr: &str, name: &str) -> u64 {
    let summary = stderr
        .lines()
        .find_map(|line| line.split_once("stopped: ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no `stopped:` summary in {stderr}"));
    // "tcp: 12 connections, 12 closed, 5 bytes in, ...; udp: ..."
    let words: Vec<&str> = summary
        .split([' ', ',', '(', ')'])
        .filter(|word| !word.is_empty())
        .collect();
    let name: Vec<&str> = name.split(' ').collect();
    words
        .windows(name.len() + 1)
        .find(|window| window[1..] == name[..])
        .and_then(|window| window[0].parse().ok())
        .unwrap_or_else(|| panic!("no figure for {name:?} in {summary}"))
}
