//! The workloads, and one measurement: a fresh server, one `shout bench`
//! run against it, its JSON summary read back; for the idle connections,
//! the server's memory and descriptors read from `/proc` as well. The TLS
//! workloads are plain ones' shapes over TLS, against the TLS servers
//! only, the load generator trusting the run's certificate (`--ca`).

use super::machine;
use super::servers::{self, Need, Programs, Running, Server};
use crate::e2e::process::{Spawned, lines_of, one_line_tail};
use shout_bench::Summary;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one workload runs.
pub(crate) struct Workload {
    /// Kebab-case, for `--only`, tables and the plot.
    pub(crate) name: &'static str,
    /// The shape, for people: `100 connections × depth 16 × 64 B`.
    pub(crate) shape: &'static str,
    pub(crate) kind: Kind,
    /// Which kind of client makes the load.
    pub(crate) client: Client,
    /// `shout bench` arguments, besides timing, `--json` and the target.
    pub(crate) args: &'static [&'static str],
    pub(crate) servers: &'static [Server],
}

/// How a workload is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Throughput and latency over TCP.
    Tcp,
    /// Throughput and latency over UDP.
    Udp,
    /// Idle connections: memory per connection and time to accept them.
    Hold(usize),
}

/// Which kind of client makes the load: the two shapes real clients take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client {
    /// `shout bench`'s event loop: one thread, many connections, requests
    /// pipelined on each.
    EventLoop,
    /// `shout bench --blocking`: a thread per connection, one request and
    /// one reply at a time (the shape of rust_echo_bench).
    Blocking,
}

impl Client {
    /// Both shapes, in table order.
    pub(crate) const ALL: [Client; 2] = [Client::EventLoop, Client::Blocking];

    /// A heading for its table.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Client::EventLoop => "event-loop clients (`shout bench`, one thread)",
            Client::Blocking => {
                "blocking clients (`shout bench --blocking`, a thread per connection, one request at a time)"
            }
        }
    }
}

/// The servers of every persistent-connection workload. shoutd-base runs
/// only with `--baseline`.
const PERSISTENT: &[Server] = servers::ALL.split_at(7).0;
/// Where busy-polling matters: one request at a time.
const WITH_BUSY_POLL: &[Server] = servers::ALL.split_at(8).0;
/// The open-loop rate of `fixed-rate`, requests per second. About half
/// what the slowest persistent server (tokio-mt) answers at 100
/// connections × depth 16 here, so every server keeps up and only CPU per
/// message tells them apart.
pub(crate) const FIXED_RATE: &str = "100000";
/// The rate of `trickle`: a nearly idle server, woken 1,000 times a second
/// (fewer would not show on the CPU clock, which ticks every 10 ms).
pub(crate) const TRICKLE_RATE: &str = "1000";
/// Every plain server: the lecture's Python servers too.
const WITH_PYTHON: &[Server] = servers::PLAIN;

/// Held connections in the idle workload: the C10K test.
pub(crate) const HELD: usize = 10_000;

/// Held connections in `tls-idle`: enough for the memory per connection to
/// stand out of the server's own, few enough that their handshakes take
/// well under a second.
pub(crate) const HELD_TLS: usize = 2_000;

/// Each TLS workload and the plain workload of its shape, to say what TLS
/// costs in the same run. `tls-idle` holds fewer connections than
/// `idle-10k`; its figure is per connection.
/// Held connections in `quic-idle`, as in `tls-idle`.
pub(crate) const HELD_QUIC: usize = 2_000;

/// Each QUIC workload and the TLS workload of its shape, to say what QUIC
/// costs against TCP + TLS in the same run.
pub(crate) const QUIC_TWINS: &[(&str, &str)] = &[
    ("quic-new-connection", "tls-new-connection"),
    ("quic-pipelined", "tls-pipelined"),
    ("quic-large", "tls-large"),
    ("quic-idle", "tls-idle"),
];

pub(crate) const TLS_TWINS: &[(&str, &str)] = &[
    ("tls-new-connection", "new-connection"),
    ("tls-pipelined", "pipelined"),
    ("tls-large", "large"),
    ("tls-idle", "idle-10k"),
];

pub(crate) const WORKLOADS: &[Workload] = &[
    Workload {
        name: "ping-pong",
        shape: "TCP, 1 connection × depth 1 × 64 B",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["-c", "1", "-d", "1", "-s", "64"],
        servers: WITH_BUSY_POLL,
    },
    Workload {
        name: "pipelined",
        shape: "TCP, 100 connections × depth 16 × 64 B",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["-c", "100", "-d", "16", "-s", "64"],
        servers: PERSISTENT,
    },
    Workload {
        name: "fixed-rate",
        shape: "TCP, 100 connections × up to depth 16 × 64 B, open loop at 100,000 requests/s",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["-c", "100", "-d", "16", "-s", "64", "--rate", FIXED_RATE],
        servers: PERSISTENT,
    },
    Workload {
        name: "trickle",
        shape: "TCP, 1 connection × 64 B, open loop at 1,000 requests/s (a nearly idle server)",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["-c", "1", "-d", "1", "-s", "64", "--rate", TRICKLE_RATE],
        servers: &[
            Server::Shoutd1,
            Server::Tokio1,
            Server::ShoutdBase,
            Server::ShoutdBusy,
            Server::Ceiling1,
        ],
    },
    Workload {
        name: "large",
        shape: "TCP, 10 connections × depth 64 × 4 KiB",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["-c", "10", "-d", "64", "-s", "4096"],
        servers: PERSISTENT,
    },
    Workload {
        name: "blocking-ping-pong",
        shape: "TCP, 50 blocking clients × depth 1 × 512 B (rust_echo_bench's shape)",
        kind: Kind::Tcp,
        client: Client::Blocking,
        args: &["--blocking", "-c", "50", "-s", "512"],
        servers: PERSISTENT,
    },
    Workload {
        name: "blocking-64",
        shape: "TCP, 50 blocking clients × depth 1 × 64 B",
        kind: Kind::Tcp,
        client: Client::Blocking,
        args: &["--blocking", "-c", "50", "-s", "64"],
        servers: PERSISTENT,
    },
    Workload {
        name: "new-connection",
        shape: "TCP, connect + one 64 B request + close, 1 at a time",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["--new-connection", "-c", "1", "-s", "64"],
        servers: WITH_PYTHON,
    },
    Workload {
        name: "udp-ping-pong",
        shape: "UDP, 1 socket × depth 1 × 64 B",
        kind: Kind::Udp,
        client: Client::EventLoop,
        args: &[
            "--udp",
            "-c",
            "1",
            "-d",
            "1",
            "-s",
            "64",
            "--timeout",
            "0.2",
        ],
        servers: WITH_PYTHON,
    },
    Workload {
        name: "udp-many",
        shape: "UDP, 100 sockets × depth 1 × 64 B",
        kind: Kind::Udp,
        client: Client::EventLoop,
        args: &[
            "--udp",
            "-c",
            "100",
            "-d",
            "1",
            "-s",
            "64",
            "--timeout",
            "0.2",
        ],
        servers: PERSISTENT,
    },
    Workload {
        name: "idle-10k",
        shape: "TCP, 10,000 idle connections, then one 64 B request on each",
        kind: Kind::Hold(HELD),
        client: Client::EventLoop,
        args: &["-s", "64"],
        servers: PERSISTENT,
    },
    Workload {
        name: "tls-new-connection",
        shape: "TLS, connect + handshake + one 64 B request + close, 1 at a time",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["--new-connection", "-c", "1", "-s", "64"],
        servers: servers::TLS,
    },
    Workload {
        name: "tls-pipelined",
        shape: "TLS, 100 connections × depth 16 × 64 B",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["-c", "100", "-d", "16", "-s", "64"],
        servers: servers::TLS,
    },
    Workload {
        name: "tls-large",
        shape: "TLS, 10 connections × depth 64 × 4 KiB",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["-c", "10", "-d", "64", "-s", "4096"],
        servers: servers::TLS,
    },
    Workload {
        name: "ws-pipelined",
        shape: "WebSocket, 100 connections × depth 16 × 64 B messages",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["-c", "100", "-d", "16", "-s", "64"],
        servers: servers::WS,
    },
    Workload {
        name: "ws-large",
        shape: "WebSocket, 10 connections × depth 64 × 4 KiB messages",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["-c", "10", "-d", "64", "-s", "4096"],
        servers: servers::WS,
    },
    Workload {
        name: "ws-idle",
        shape: "WebSocket, 2,000 idle connections after their upgrades, then one 64 B message on each",
        kind: Kind::Hold(HELD_TLS),
        client: Client::EventLoop,
        args: &["-s", "64"],
        servers: servers::WS,
    },
    Workload {
        name: "tls-idle",
        shape: "TLS, 2,000 idle connections after their handshakes, then one 64 B request on each",
        kind: Kind::Hold(HELD_TLS),
        client: Client::EventLoop,
        args: &["-s", "64"],
        servers: servers::TLS,
    },
    Workload {
        name: "quic-new-connection",
        shape: "QUIC, handshake + one 64 B request on a stream + close, 1 at a time (0-RTT after the first)",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["--new-connection", "-c", "1", "-s", "64"],
        servers: servers::QUIC,
    },
    Workload {
        name: "quic-pipelined",
        shape: "QUIC, 100 connections × depth 16 × 64 B on one stream each",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["-c", "100", "-d", "16", "-s", "64"],
        servers: servers::QUIC,
    },
    Workload {
        name: "quic-streams",
        shape: "QUIC, 10 connections × 16 streams in flight, a stream per 64 B request",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["--streams", "-c", "10", "-d", "16", "-s", "64"],
        servers: servers::QUIC,
    },
    Workload {
        name: "quic-large",
        shape: "QUIC, 10 connections × depth 64 × 4 KiB on one stream each",
        kind: Kind::Tcp,
        client: Client::EventLoop,
        args: &["-c", "10", "-d", "64", "-s", "4096"],
        servers: servers::QUIC,
    },
    Workload {
        name: "quic-idle",
        shape: "QUIC, 2,000 idle connections after their handshakes, then one 64 B request on each",
        kind: Kind::Hold(HELD_QUIC),
        client: Client::EventLoop,
        args: &["-s", "64"],
        servers: servers::QUIC,
    },
];

impl Workload {
    /// Whether it runs over TLS (against the TLS servers).
    pub(crate) fn over_tls(&self) -> bool {
        self.servers.iter().all(|server| server.is_tls())
    }

    /// Whether it runs over QUIC (against the QUIC servers).
    pub(crate) fn over_quic(&self) -> bool {
        self.servers.iter().all(|server| server.is_quic())
    }

    /// Whether it runs over WebSocket (against the WebSocket servers).
    pub(crate) fn over_ws(&self) -> bool {
        self.servers.iter().all(|server| server.is_ws())
    }
}

/// The number of the TLS workload of `index`'s shape, when `index` is a
/// QUIC workload that has one.
pub(crate) fn tls_twin(index: usize) -> Option<usize> {
    let name = WORKLOADS[index].name;
    let &(_, tls) = QUIC_TWINS.iter().find(|(quic, _)| *quic == name)?;
    WORKLOADS.iter().position(|workload| workload.name == tls)
}

/// The number of the plain workload of `index`'s shape, when `index` is a
/// TLS workload that has one.
pub(crate) fn plain_twin(index: usize) -> Option<usize> {
    let name = WORKLOADS[index].name;
    let &(_, plain) = TLS_TWINS.iter().find(|(tls, _)| *tls == name)?;
    WORKLOADS.iter().position(|workload| workload.name == plain)
}

/// How long each measurement lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    /// How long held connections stay idle.
    pub(crate) idle: Duration,
}

/// One measurement: the load generator's summary, and what was read of
/// the server meanwhile.
#[derive(Debug, Clone)]
pub(crate) struct Measurement {
    /// What `shout bench --json` printed.
    pub(crate) summary: Summary,
    /// The server's CPU time over the measured window, in seconds; `None`
    /// when `/proc` could not be read or for idle connections.
    pub(crate) server_cpu: Option<f64>,
    /// The wall time `server_cpu` was read over, in seconds.
    pub(crate) cpu_wall: f64,
    /// Idle connections: the server's memory and descriptors.
    pub(crate) held: Option<ServerHold>,
}

/// What the server showed of the idle connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerHold {
    /// Resident memory per held connection, in bytes.
    pub(crate) rss_per_conn: f64,
    /// Seconds until it first held them all; `None` if it never did while
    /// watched.
    pub(crate) accept_s: Option<f64>,
    /// The most connections it held, first at `accepted_s` seconds.
    pub(crate) accepted: usize,
    pub(crate) accepted_s: f64,
}

/// A figure of a measurement, for medians, tables and the plot; `None`
/// when the measurement has no such figure.
pub(crate) type Figure = fn(&Measurement) -> Option<f64>;

impl Measurement {
    /// A measurement of `summary` alone, nothing read of the server.
    pub(crate) fn of(summary: Summary) -> Self {
        Self {
            summary,
            server_cpu: None,
            cpu_wall: 0.0,
            held: None,
        }
    }

    /// Replies per second.
    pub(crate) fn msgs_per_sec(&self) -> Option<f64> {
        Some(self.summary.msgs_per_sec)
    }

    /// The 99th percentile latency, in microseconds.
    pub(crate) fn p99_us(&self) -> Option<f64> {
        Some(self.summary.p99_us)
    }

    /// Wrong replies and failed connections.
    pub(crate) fn errors(&self) -> Option<f64> {
        Some(self.summary.errors as f64)
    }

    /// The server's CPU time in cores over the measured window.
    pub(crate) fn server_cores(&self) -> Option<f64> {
        Some(self.server_cpu? / self.cpu_wall)
    }

    /// The server's CPU time per reply, in microseconds.
    pub(crate) fn server_us_per_msg(&self) -> Option<f64> {
        let messages = self.summary.msgs_per_sec * self.cpu_wall;
        (messages > 0.0).then_some(self.server_cpu? * 1e6 / messages)
    }

    /// Server memory per idle connection, in bytes.
    pub(crate) fn rss_per_conn(&self) -> Option<f64> {
        Some(self.held?.rss_per_conn)
    }

    /// Seconds until the server held every idle connection.
    pub(crate) fn accept_s(&self) -> Option<f64> {
        self.held?.accept_s
    }
}

/// Measures `workload` against a fresh `server`.
pub(crate) fn measure(
    programs: &Programs,
    workload: &Workload,
    server: Server,
    timing: Timing,
) -> Result<Measurement, String> {
    let need = if workload.over_tls() {
        Need::Tls
    } else if workload.over_quic() {
        Need::Quic
    } else if workload.over_ws() {
        Need::Ws
    } else if workload.kind == Kind::Udp {
        Need::Udp
    } else {
        Need::Tcp
    };
    let mut running = servers::start(programs, server, need)?;
    let addr = match need {
        Need::Tcp => running.tcp,
        Need::Udp => running.udp,
        Need::Tls => running.tls,
        Need::Quic => running.quic,
        Need::Ws => running.ws,
    }
    .ok_or("the server has no socket for this transport")?;
    let target = Target { addr, need };
    let measurement = match workload.kind {
        Kind::Tcp | Kind::Udp => load(programs, running.pid(), workload, target, timing)?,
        Kind::Hold(connections) => hold(programs, &running, workload, target, connections, timing)?,
    };
    if let Ok(Some(status)) = running.process.try_wait() {
        return Err(format!(
            "{} exited during the run ({status}); {}",
            server.name(),
            running.process.stderr_tail()
        ));
    }
    Ok(measurement)
}

/// Where the load goes: the server's address, and whether to speak TLS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    /// The server's address (or a balancer's in front of it).
    pub(crate) addr: std::net::SocketAddr,
    /// Which transport, so TLS adds the run's certificate.
    pub(crate) need: Need,
}

impl Target {
    /// Adds the address, and over TLS the run's certificate to trust, to
    /// a `shout bench` command line.
    fn add_to(self, command: &mut Command, programs: &Programs) {
        let secure = match self.need {
            Need::Tls => Some("--tls"),
            Need::Quic => Some("--quic"),
            Need::Tcp | Need::Udp | Need::Ws => None,
        };
        if self.need == Need::Ws {
            command.arg("--ws");
        }
        if let Some(flag) = secure {
            command.args([flag, "--ca"]).arg(&programs.certificate.cert);
        }
        command.arg(self.addr.to_string());
    }
}

/// A throughput workload against `addr`: `shout bench` for the warm-up and
/// the measured time, with the CPU time of process `cpu_of` (the server, or
/// a balancer in front of it) read over (a little less than) the measured
/// time.
pub(crate) fn load(
    programs: &Programs,
    cpu_of: u32,
    workload: &Workload,
    target: Target,
    timing: Timing,
) -> Result<Measurement, String> {
    let mut command = Command::new(&programs.shout);
    command
        .args(["-q", "bench", "--json"])
        .args(workload.args)
        .arg("--warmup")
        .arg(secs(timing.warmup))
        .arg("--duration")
        .arg(secs(timing.duration));
    target.add_to(&mut command, programs);
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut bench = Spawned::start("shout bench", &mut command)?;
    let stdout = lines_of(bench.take_stdout().expect("stdout is piped"));
    // Inside the measured window by a margin at each end: connecting and
    // the end of the warm-up are not quite instantaneous.
    let margin = Duration::from_millis(50);
    std::thread::sleep(timing.warmup + margin);
    let sample = || Some((machine::process_cpu(cpu_of).ok()?, Instant::now()));
    let before = sample();
    std::thread::sleep(timing.duration.saturating_sub(2 * margin));
    let after = sample();
    bench.wait_timeout(timing.duration + Duration::from_secs(30))?;
    let output: String =
        std::iter::from_fn(|| stdout.recv_timeout(Duration::from_secs(5)).ok()).collect();
    let summary = Summary::from_output(&output).map_err(|error| {
        format!(
            "shout bench printed no summary ({error}; {}); {}",
            bench
                .try_wait()
                .ok()
                .flatten()
                .map_or("running".into(), |s| s.to_string()),
            one_line_tail(&bench.stderr(), 300)
        )
    })?;
    let mut measurement = Measurement::of(summary);
    if let (Some((cpu0, t0)), Some((cpu1, t1))) = (before, after) {
        measurement.server_cpu = Some(cpu1.saturating_sub(cpu0).as_secs_f64());
        measurement.cpu_wall = (t1 - t0).as_secs_f64();
    }
    Ok(measurement)
}

/// The idle workload: `shout bench --hold`, while the server's descriptors
/// are counted (every accepted connection is one) and its resident memory
/// is read before and while the connections are held.
fn hold(
    programs: &Programs,
    running: &Running,
    workload: &Workload,
    target: Target,
    connections: usize,
    timing: Timing,
) -> Result<Measurement, String> {
    let pid = running.pid();
    // Let the server finish starting (threads, buffers) before the baseline.
    std::thread::sleep(Duration::from_millis(200));
    let base_rss = machine::rss_kib(pid)?;
    let base_fds = machine::fd_count(pid)?;
    let mut command = Command::new(&programs.shout);
    command
        .args(["bench", "--json", "--hold"])
        .arg(connections.to_string())
        .arg("--idle")
        .arg(secs(timing.idle.max(Duration::from_millis(500))))
        .args(workload.args);
    target.add_to(&mut command, programs);
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    let started = Instant::now();
    let mut bench = Spawned::start("shout bench --hold", &mut command)?;
    let stdout = lines_of(bench.take_stdout().expect("stdout is piped"));

    // One loop watches three things at once: the server's descriptors
    // (every accepted connection is one), the load generator saying that
    // all its connections are open, and then, a moment later while they
    // are held idle, the server's memory.
    let limit = Duration::from_secs(30);
    let settle = Duration::from_millis(300);
    let (mut accepted, mut accepted_at) = (0, Duration::ZERO);
    let (mut all_accepted, mut holding_since, mut held_rss) = (None, None, None);
    while started.elapsed() < limit {
        let now = started.elapsed();
        let count = machine::fd_count(pid)?.saturating_sub(base_fds);
        if count > accepted {
            (accepted, accepted_at) = (count, now);
        }
        if all_accepted.is_none() && count >= connections {
            all_accepted = Some(now);
        }
        if holding_since.is_none() && bench.stderr().contains("bench: holding") {
            holding_since = Some(now);
        }
        if held_rss.is_none() && holding_since.is_some_and(|since| now >= since + settle) {
            held_rss = Some(machine::rss_kib(pid)?);
        }
        if (all_accepted.is_some() && held_rss.is_some()) || bench.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bench.wait_timeout(limit)?;
    let output: String =
        std::iter::from_fn(|| stdout.recv_timeout(Duration::from_secs(5)).ok()).collect();
    let summary = Summary::from_output(&output).map_err(|error| {
        format!(
            "shout bench --hold printed no summary ({error}); {}",
            one_line_tail(&bench.stderr(), 300)
        )
    })?;
    let held_rss =
        held_rss.ok_or("the connections were not held long enough to read the server's memory")?;
    Ok(Measurement {
        held: Some(ServerHold {
            rss_per_conn: held_rss.saturating_sub(base_rss) as f64 * 1024.0 / connections as f64,
            accept_s: all_accepted.map(|at| at.as_secs_f64()),
            accepted,
            accepted_s: accepted_at.as_secs_f64(),
        }),
        ..Measurement::of(summary)
    })
}

fn secs(duration: Duration) -> String {
    format!("{}", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names_are_unique_kebab_case() {
        for (index, workload) in WORKLOADS.iter().enumerate() {
            assert!(
                workload
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
            assert!(WORKLOADS[..index].iter().all(|w| w.name != workload.name));
            if workload.over_tls() {
                assert!(workload.name.starts_with("tls-"), "{}", workload.name);
                assert_eq!(workload.servers, servers::TLS);
                continue;
            }
            if workload.over_quic() {
                assert!(workload.name.starts_with("quic-"), "{}", workload.name);
                assert_eq!(workload.servers, servers::QUIC);
                continue;
            }
            if workload.over_ws() {
                assert!(workload.name.starts_with("ws-"), "{}", workload.name);
                assert_eq!(workload.servers, servers::WS);
                continue;
            }
            assert!(workload.servers.iter().all(|server| !server.is_tls()));
            assert!(workload.servers.iter().all(|server| !server.is_quic()));
            assert!(workload.servers.contains(&Server::Tokio1));
            assert!(workload.servers.contains(&Server::ShoutdBase));
            assert!(workload.servers.contains(&Server::Ceiling1));
            if workload.name != "trickle" {
                assert!(workload.servers.contains(&Server::Ceiling2));
            }
        }
    }

    #[test]
    fn every_quic_workload_but_streams_has_a_tls_twin_of_its_shape() {
        for (index, workload) in WORKLOADS.iter().enumerate() {
            if !workload.over_quic() || workload.name == "quic-streams" {
                assert!(workload.over_quic() || tls_twin(index).is_none());
                continue;
            }
            let twin = &WORKLOADS[tls_twin(index).expect(workload.name)];
            assert!(twin.over_tls(), "{}", twin.name);
            // The same load generator arguments and count held: only the
            // transport differs.
            assert_eq!(twin.args, workload.args, "{}", workload.name);
            assert_eq!(twin.kind, workload.kind, "{}", workload.name);
        }
    }

    #[test]
    fn every_tls_workload_has_a_plain_twin_of_its_shape() {
        for (index, workload) in WORKLOADS.iter().enumerate() {
            if !workload.over_tls() {
                assert_eq!(plain_twin(index), None);
                continue;
            }
            let twin = &WORKLOADS[plain_twin(index).expect(workload.name)];
            assert!(!twin.over_tls(), "{}", twin.name);
            assert_eq!(twin.client, workload.client);
            // The same load generator arguments: only TLS differs. The
            // idle workloads differ in the count held, which is in `kind`.
            assert_eq!(twin.args, workload.args, "{}", workload.name);
            assert_eq!(
                matches!(twin.kind, Kind::Hold(_)),
                matches!(workload.kind, Kind::Hold(_))
            );
        }
    }
}
