//! The servers under test, and how each is started: every one on loopback,
//! fresh for every measurement, its ports read from what it prints. The
//! TLS servers all serve the one certificate generated for the run
//! ([`Certificate`]).

use crate::e2e::Env;
use crate::e2e::process::{self, Spawned, TempDir};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A server the workloads run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Server {
    /// shoutd with one worker thread (its default).
    Shoutd1,
    /// An older build's shoutd (`--baseline DIR`), with shoutd-1's flags:
    /// measured in the same runs so that a change is a ratio side by side.
    ShoutdBase,
    /// shoutd-1 with `--busy-poll` (`BUSY_POLL_MICROS`).
    ShoutdBusy,
    /// shoutd with two worker threads (`--workers 2`), one per core here.
    Shoutd2,
    /// `reference-tokio-1`: the ordinary tokio server on the one-thread
    /// runtime, the fair peer of shoutd-1.
    Tokio1,
    /// `reference-tokio`: the same on the multi-thread runtime.
    TokioMt,
    /// `reference-ceiling --loops 1`: the cheapest correct server, one
    /// thread.
    Ceiling1,
    /// `reference-ceiling` with a loop per core. The faster of the two
    /// ceilings is the load generator's own ceiling.
    Ceiling2,
    /// The lecture's Python servers (`tcp_server.py`, `udp_server.py`).
    Python,
    /// shoutd-1 serving TLS only (`--tls`), with the run's certificate.
    ShoutdTls1,
    /// `reference-tokio-rustls-1`: the ordinary tokio-rustls server on the
    /// one-thread runtime, the fair peer of shoutd-1-tls.
    TokioRustls1,
    /// `reference-tokio-rustls`: the same on the multi-thread runtime.
    TokioRustlsMt,
    /// shoutd-1 serving QUIC alone (`--quic`), with the run's certificate.
    ShoutdQuic1,
    /// `reference-quinn-1`: the ordinary quinn server on tokio's
    /// one-thread runtime, the fair peer of shoutd-1-quic.
    Quinn1,
    /// shoutd-1 serving WebSocket only (`--ws`).
    ShoutdWs1,
    /// `reference-tokio-ws-1`: the ordinary tokio-tungstenite server on
    /// the one-thread runtime, the fair peer of shoutd-1-ws.
    TokioWs1,
}

/// Every server, in table order.
pub(crate) const ALL: &[Server] = &[
    Server::Shoutd1,
    Server::Tokio1,
    Server::ShoutdBase,
    Server::Shoutd2,
    Server::TokioMt,
    Server::Ceiling1,
    Server::Ceiling2,
    Server::ShoutdBusy,
    Server::Python,
    Server::ShoutdTls1,
    Server::TokioRustls1,
    Server::TokioRustlsMt,
    Server::ShoutdQuic1,
    Server::Quinn1,
    Server::ShoutdWs1,
    Server::TokioWs1,
];

/// The servers that speak plain TCP and UDP, in table order.
pub(crate) const PLAIN: &[Server] = ALL.split_at(ALL.len() - 7).0;
/// The servers of every TLS workload, in table order.
pub(crate) const TLS: &[Server] = ALL.split_at(ALL.len() - 7).1.split_at(3).0;
/// The servers of every QUIC workload, in table order.
pub(crate) const QUIC: &[Server] = ALL.split_at(ALL.len() - 4).1.split_at(2).0;
/// The servers of every WebSocket workload, in table order.
pub(crate) const WS: &[Server] = ALL.split_at(ALL.len() - 2).1;

impl Server {
    /// A short name, for tables and the plot's legend.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Server::Shoutd1 => "shoutd-1",
            Server::ShoutdBase => "shoutd-base",
            Server::ShoutdBusy => "shoutd-busy",
            Server::Shoutd2 => "shoutd-2",
            Server::Tokio1 => "tokio-1",
            Server::TokioMt => "tokio-mt",
            Server::Ceiling1 => "ceiling-1",
            Server::Ceiling2 => "ceiling-2",
            Server::Python => "python",
            Server::ShoutdTls1 => "shoutd-1-tls",
            Server::TokioRustls1 => "tokio-rustls-1",
            Server::TokioRustlsMt => "tokio-rustls-mt",
            Server::ShoutdQuic1 => "shoutd-1-quic",
            Server::Quinn1 => "quinn-1",
            Server::ShoutdWs1 => "shoutd-1-ws",
            Server::TokioWs1 => "tokio-ws-1",
        }
    }

    /// Whether it speaks TLS (and only TLS).
    pub(crate) fn is_tls(self) -> bool {
        matches!(
            self,
            Server::ShoutdTls1 | Server::TokioRustls1 | Server::TokioRustlsMt
        )
    }

    /// Whether it speaks QUIC (and only QUIC).
    pub(crate) fn is_quic(self) -> bool {
        matches!(self, Server::ShoutdQuic1 | Server::Quinn1)
    }

    /// Whether it speaks WebSocket (and only WebSocket).
    pub(crate) fn is_ws(self) -> bool {
        matches!(self, Server::ShoutdWs1 | Server::TokioWs1)
    }

    /// Whether it is one of the ceiling servers, not a server under test.
    pub(crate) fn is_ceiling(self) -> bool {
        matches!(self, Server::Ceiling1 | Server::Ceiling2)
    }

    /// The threads that serve: what every table says beside the name.
    pub(crate) fn threads(self) -> &'static str {
        match self {
            Server::Shoutd1
            | Server::ShoutdBase
            | Server::ShoutdBusy
            | Server::Tokio1
            | Server::Ceiling1
            | Server::Python
            | Server::ShoutdTls1
            | Server::TokioRustls1
            | Server::ShoutdQuic1
            | Server::Quinn1
            | Server::ShoutdWs1
            | Server::TokioWs1 => "1",
            // One per core of this 2-core machine.
            Server::Shoutd2 | Server::TokioMt | Server::Ceiling2 | Server::TokioRustlsMt => "2",
        }
    }

    /// Whether it runs only when asked for: the baseline needs `--baseline`.
    pub(crate) fn needs_baseline(self) -> bool {
        self == Server::ShoutdBase
    }

    /// What it is, in a few words, for docs/BENCHMARKS.md.
    pub(crate) fn description(self) -> &'static str {
        match self {
            Server::Shoutd1 => "shoutd, 1 worker (the default)",
            Server::ShoutdBase => {
                "an older build's shoutd (`--baseline DIR`), shoutd-1's flags, measured in the same runs"
            }
            Server::ShoutdBusy => {
                "shoutd-1 with `--busy-poll 50` (50 µs of polling before it sleeps)"
            }
            Server::Shoutd2 => "shoutd `--workers 2` (one per core)",
            Server::Tokio1 => {
                "`reference-tokio-1`: tokio one-thread runtime (`current_thread`), a task per connection, `read` then `write_all` (8 KiB buffer), one UDP task"
            }
            Server::TokioMt => {
                "`reference-tokio`: the same code on tokio's multi-thread runtime (a worker per core)"
            }
            Server::Ceiling1 => {
                "`reference-ceiling --loops 1`: one bare mio loop that uppercases ASCII in place"
            }
            Server::Ceiling2 => {
                "`reference-ceiling`: the same, a loop per core (`SO_REUSEPORT`); the faster ceiling is the load generator's own"
            }
            Server::Python => {
                "the lecture's `tcp_server.py` / `udp_server.py` (one connection at a time, one `recv(1024)`)"
            }
            Server::ShoutdTls1 => "shoutd-1 serving TLS alone (`--tls --cert --key`)",
            Server::TokioRustls1 => {
                "`reference-tokio-rustls-1`: tokio-rustls on the one-thread runtime, `TlsAcceptor::accept` then tokio-1's loop, in a task per connection"
            }
            Server::TokioRustlsMt => {
                "`reference-tokio-rustls`: the same code on tokio's multi-thread runtime"
            }
            Server::ShoutdQuic1 => {
                "shoutd serving QUIC alone (`--quic --cert --key`; one worker serves QUIC)"
            }
            Server::Quinn1 => {
                "`reference-quinn-1`: quinn on tokio's one-thread runtime, default transport, a task per connection and per stream, tokio-1's loop on each stream"
            }
            Server::ShoutdWs1 => "shoutd-1 serving WebSocket alone (`--ws`)",
            Server::TokioWs1 => {
                "`reference-tokio-ws-1`: tokio-tungstenite on the one-thread runtime, `accept_async_with_config` (read buffer 4 KiB), then `next().await` and `send(reply).await` per message, in a task per connection"
            }
        }
    }
}

/// The busy-poll window of shoutd-busy, in microseconds: about twice what
/// waking an idle core costs here (25 µs), so a ping-pong reply arrives
/// within it.
pub(crate) const BUSY_POLL_MICROS: &str = "50";

/// The programs to start: built binaries and the lecture's scripts.
pub(crate) struct Programs {
    pub(crate) shoutd: PathBuf,
    pub(crate) shout: PathBuf,
    /// An older build's shoutd, from `--baseline DIR`.
    pub(crate) baseline: Option<PathBuf>,
    pub(crate) tokio: PathBuf,
    pub(crate) tokio_1: PathBuf,
    pub(crate) tokio_rustls: PathBuf,
    pub(crate) tokio_rustls_1: PathBuf,
    pub(crate) quinn_1: PathBuf,
    pub(crate) tokio_ws_1: PathBuf,
    pub(crate) ceiling: PathBuf,
    /// Gives access to the lecture's Python programs, as e2e does.
    pub(crate) env: Env,
    /// What every TLS server serves and the load generator trusts.
    pub(crate) certificate: Certificate,
}

/// The run's one certificate and key, PEM files in a temporary directory
/// removed when the run ends. Self-signed for `127.0.0.1` and `localhost`
/// (rcgen's default key, ECDSA P-256), so the load generator checks it
/// with `--ca` as a client checks a real one, name included.
pub(crate) struct Certificate {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    _dir: TempDir,
}

impl Certificate {
    /// Generates the certificate and writes it and its key to a new
    /// temporary directory.
    pub(crate) fn generate() -> Result<Self, String> {
        let dir = TempDir::new("bench-tls")?;
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|error| format!("cannot generate the TLS certificate: {error}"))?;
        let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
        for (path, pem) in [
            (&cert, certified.cert.pem()),
            (&key, certified.signing_key.serialize_pem()),
        ] {
            std::fs::write(path, pem)
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        }
        Ok(Self {
            cert,
            key,
            _dir: dir,
        })
    }
}

/// A server running for one measurement; killed when dropped.
pub(crate) struct Running {
    pub(crate) process: Spawned,
    pub(crate) tcp: Option<SocketAddr>,
    pub(crate) udp: Option<SocketAddr>,
    pub(crate) tls: Option<SocketAddr>,
    pub(crate) quic: Option<SocketAddr>,
    pub(crate) ws: Option<SocketAddr>,
}

impl Running {
    /// The server's process id, to read its memory and descriptors.
    pub(crate) fn pid(&self) -> u32 {
        self.process.id()
    }
}

/// Which of its sockets a measurement needs (the Python servers are one
/// program per transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Tcp,
    Udp,
    Tls,
    Quic,
    Ws,
}

/// What every shoutd measured is given besides its addresses. Held
/// connections (10,000) must not meet shoutd's own cap of 10,000: the load
/// generator's first, checking connection is one more.
pub(crate) const SHOUTD_ARGS: [&str; 3] = ["--max-connections", "100000", "-q"];

/// Starts `server` on loopback, ports of its choosing.
pub(crate) fn start(programs: &Programs, server: Server, need: Need) -> Result<Running, String> {
    let loopback = ["--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"];
    let announcing = |name: &str, path: &PathBuf, extra: &[&str]| {
        let mut command = std::process::Command::new(path);
        command.args(loopback).args(extra);
        let (process, tcp, udp) = process::start_announcing(name, &mut command)?;
        Ok(Running {
            process,
            tcp: Some(tcp),
            udp: Some(udp),
            tls: None,
            quic: None,
            ws: None,
        })
    };
    let serving_ws = |name: &str, path: &PathBuf, extra: &[&str]| {
        let mut command = std::process::Command::new(path);
        command.args(["--ws", "127.0.0.1:0"]).args(extra);
        let (process, listening) = process::start_announcing_all(name, &mut command)?;
        Ok(Running {
            process,
            tcp: None,
            udp: None,
            tls: None,
            quic: None,
            ws: listening.addrs("ws").first().copied(),
        })
    };
    let certificate = &programs.certificate;
    let serving_tls = |name: &str, path: &PathBuf, extra: &[&str]| {
        let flag = if server.is_quic() { "--quic" } else { "--tls" };
        let mut command = std::process::Command::new(path);
        command
            .args([flag, "127.0.0.1:0", "--cert"])
            .arg(&certificate.cert)
            .arg("--key")
            .arg(&certificate.key)
            .args(extra);
        let (process, listening) = process::start_announcing_all(name, &mut command)?;
        Ok(Running {
            process,
            tcp: None,
            udp: None,
            tls: listening.addrs("tls").first().copied(),
            quic: listening.addrs("quic").first().copied(),
            ws: None,
        })
    };
    let shoutd = SHOUTD_ARGS;
    match server {
        Server::Shoutd1 => announcing("shoutd", &programs.shoutd, &shoutd),
        Server::ShoutdBase => {
            let baseline = programs
                .baseline
                .as_ref()
                .ok_or("shoutd-base needs `--baseline DIR`")?;
            announcing("shoutd (baseline)", baseline, &shoutd)
        }
        Server::ShoutdBusy => {
            let mut extra = shoutd.to_vec();
            extra.extend(["--busy-poll", BUSY_POLL_MICROS]);
            announcing("shoutd", &programs.shoutd, &extra)
        }
        Server::Shoutd2 => {
            let mut extra = shoutd.to_vec();
            extra.extend(["--workers", "2"]);
            announcing("shoutd", &programs.shoutd, &extra)
        }
        Server::Tokio1 => announcing("reference-tokio-1", &programs.tokio_1, &[]),
        Server::TokioMt => announcing("reference-tokio", &programs.tokio, &[]),
        Server::Ceiling1 => announcing("reference-ceiling", &programs.ceiling, &["--loops", "1"]),
        Server::Ceiling2 => announcing("reference-ceiling", &programs.ceiling, &[]),
        Server::ShoutdTls1 => serving_tls("shoutd", &programs.shoutd, &shoutd),
        Server::TokioRustls1 => {
            serving_tls("reference-tokio-rustls-1", &programs.tokio_rustls_1, &[])
        }
        Server::TokioRustlsMt => serving_tls("reference-tokio-rustls", &programs.tokio_rustls, &[]),
        Server::ShoutdQuic1 => serving_tls("shoutd", &programs.shoutd, &shoutd),
        Server::Quinn1 => serving_tls("reference-quinn-1", &programs.quinn_1, &[]),
        Server::ShoutdWs1 => serving_ws("shoutd", &programs.shoutd, &shoutd),
        Server::TokioWs1 => serving_ws("reference-tokio-ws-1", &programs.tokio_ws_1, &[]),
        Server::Python => {
            let (script, transport) = match need {
                Need::Tcp | Need::Tls | Need::Quic | Need::Ws => {
                    ("tcp_server.py", process::Transport::Tcp)
                }
                Need::Udp => ("udp_server.py", process::Transport::Udp),
            };
            let (process, port) = process::start_python_server(&programs.env, script, transport)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            Ok(Running {
                process,
                tcp: (need == Need::Tcp).then_some(addr),
                udp: (need == Need::Udp).then_some(addr),
                tls: None,
                quic: None,
                ws: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_and_tls_servers_split_every_server() {
        assert!(PLAIN.iter().all(|server| !server.is_tls()));
        assert!(TLS.iter().all(|server| server.is_tls()));
        assert!(QUIC.iter().all(|server| server.is_quic()));
        assert!(PLAIN.iter().all(|server| !server.is_quic()));
        assert!(WS.iter().all(|server| server.is_ws()));
        assert_eq!(PLAIN.len() + TLS.len() + QUIC.len() + WS.len(), ALL.len());
        assert_eq!(WS, [Server::ShoutdWs1, Server::TokioWs1]);
        assert_eq!(
            TLS,
            [
                Server::ShoutdTls1,
                Server::TokioRustls1,
                Server::TokioRustlsMt
            ]
        );
    }
}
