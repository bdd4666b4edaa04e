//! The workloads, and one measurement: a fresh server, one `shout bench`
//! run against it, its JSON summary read back; for the idle connections,
//! the server's memory and descriptors read from `/proc` as well.

use super::machine;
use super::servers::{self, Need, Programs, Running, Server};
use crate::e2e::process::{Spawned, lines_of, one_line_tail};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one workload runs.
pub(crate) struct Workload {
    /// Kebab-case, for `--only`, tables and the plot.
    pub(crate) name: &'static str,
    /// The shape, for people: `100 connections × depth 16 × 64 B`.
    pub(crate) shape: &'static str,
    pub(crate) kind: Kind,
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

const PERSISTENT: &[Server] = &[
    Server::Shoutd1,
    Server::Shoutd2,
    Server::Tokio,
    Server::Ceiling1,
    Server::Ceiling2,
];
/// Every server: the lecture's Python servers too.
const WITH_PYTHON: &[Server] = &servers::ALL;

/// Held connections in the idle workload: the C10K test.
pub(crate) const HELD: usize = 10_000;

pub(crate) const WORKLOADS: &[Workload] = &[
    Workload {
        name: "ping-pong",
        shape: "TCP, 1 connection × depth 1 × 64 B",
        kind: Kind::Tcp,
        args: &["-c", "1", "-d", "1", "-s", "64"],
        servers: PERSISTENT,
    },
    Workload {
        name: "pipelined",
        shape: "TCP, 100 connections × depth 16 × 64 B",
        kind: Kind::Tcp,
        args: &["-c", "100", "-d", "16", "-s", "64"],
        servers: PERSISTENT,
    },
    Workload {
        name: "large",
        shape: "TCP, 10 connections × depth 64 × 4 KiB",
        kind: Kind::Tcp,
        args: &["-c", "10", "-d", "64", "-s", "4096"],
        servers: PERSISTENT,
    },
    Workload {
        name: "new-connection",
        shape: "TCP, connect + one 64 B request + close, 1 at a time",
        kind: Kind::Tcp,
        args: &["--new-connection", "-c", "1", "-s", "64"],
        servers: WITH_PYTHON,
    },
    Workload {
        name: "udp-ping-pong",
        shape: "UDP, 1 socket × depth 1 × 64 B",
        kind: Kind::Udp,
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
        args: &["-s", "64"],
        servers: PERSISTENT,
    },
];

/// How long each measurement lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    /// How long held connections stay idle.
    pub(crate) idle: Duration,
}

/// One measurement's figures, by name: what `shout bench --json` reports
/// (`msgs_per_sec`, `p99_us`, ...) and, for idle connections,
/// `rss_per_conn` (bytes) and `accept_s`.
pub(crate) type Metrics = BTreeMap<&'static str, f64>;

/// The `shout bench --json` fields kept.
const FIELDS: [&str; 11] = [
    "msgs_per_sec",
    "mib_per_sec",
    "p50_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "max_us",
    "errors",
    "lost",
    "messages",
    "open_seconds",
];

/// Measures `workload` against a fresh `server`.
pub(crate) fn measure(
    programs: &Programs,
    workload: &Workload,
    server: Server,
    timing: Timing,
) -> Result<Metrics, String> {
    let need = match workload.kind {
        Kind::Udp => Need::Udp,
        Kind::Tcp | Kind::Hold(_) => Need::Tcp,
    };
    let mut running = servers::start(programs, server, need)?;
    let addr = match need {
        Need::Tcp => running.tcp,
        Need::Udp => running.udp,
    }
    .ok_or("the server has no socket for this transport")?;
    let metrics = match workload.kind {
        Kind::Tcp | Kind::Udp => load(programs, &running, workload, addr, timing)?,
        Kind::Hold(connections) => hold(programs, &running, workload, connections, timing)?,
    };
    if let Ok(Some(status)) = running.process.try_wait() {
        return Err(format!(
            "{} exited during the run ({status}); {}",
            server.name(),
            running.process.stderr_tail()
        ));
    }
    Ok(metrics)
}

/// A throughput workload: `shout bench` for the warm-up and the measured
/// time, with the CPU time of the server and of the load generator read
/// over (a little less than) the measured time.
fn load(
    programs: &Programs,
    running: &Running,
    workload: &Workload,
    addr: std::net::SocketAddr,
    timing: Timing,
) -> Result<Metrics, String> {
    let mut command = Command::new(&programs.shout);
    command
        .args(["-q", "bench", "--json"])
        .args(workload.args)
        .arg("--warmup")
        .arg(secs(timing.warmup))
        .arg("--duration")
        .arg(secs(timing.duration))
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut bench = Spawned::start("shout bench", &mut command)?;
    let stdout = lines_of(bench.take_stdout().expect("stdout is piped"));
    // Inside the measured window by a margin at each end: connecting and
    // the end of the warm-up are not quite instantaneous.
    let margin = Duration::from_millis(50);
    std::thread::sleep(timing.warmup + margin);
    let sample = |bench: &Spawned| {
        Some((
            machine::process_cpu(running.pid()).ok()?,
            machine::process_cpu(bench.id()).ok()?,
            Instant::now(),
        ))
    };
    let before = sample(&bench);
    std::thread::sleep(timing.duration.saturating_sub(2 * margin));
    let after = sample(&bench);
    bench.wait_timeout(timing.duration + Duration::from_secs(30))?;
    let output: String =
        std::iter::from_fn(|| stdout.recv_timeout(Duration::from_secs(5)).ok()).collect();
    let mut metrics = parse_summary(output.as_bytes()).ok_or_else(|| {
        format!(
            "shout bench printed no summary ({}); {}",
            bench
                .try_wait()
                .ok()
                .flatten()
                .map_or("running".into(), |s| s.to_string()),
            one_line_tail(&bench.stderr(), 300)
        )
    })?;
    if let (Some((server0, client0, t0)), Some((server1, client1, t1))) = (before, after) {
        let wall = (t1 - t0).as_secs_f64();
        let server = (server1.saturating_sub(server0)).as_secs_f64();
        let client = (client1.saturating_sub(client0)).as_secs_f64();
        metrics.insert("server_cores", server / wall);
        metrics.insert("client_cores", client / wall);
        let messages = metrics["msgs_per_sec"] * wall;
        if messages > 0.0 {
            metrics.insert("server_us_per_msg", server * 1e6 / messages);
        }
    }
    Ok(metrics)
}

/// The idle workload: `shout bench --hold`, while the server's descriptors
/// are counted (every accepted connection is one) and its resident memory
/// is read before and while the connections are held. `accept_s` is when
/// the server first held them all (absent if it never did while watched);
/// `accepted` the most it held, first at `accepted_s`.
fn hold(
    programs: &Programs,
    running: &Running,
    workload: &Workload,
    connections: usize,
    timing: Timing,
) -> Result<Metrics, String> {
    let pid = running.pid();
    // Let the server finish starting (threads, buffers) before the baseline.
    std::thread::sleep(Duration::from_millis(200));
    let base_rss = machine::rss_kib(pid)?;
    let base_fds = machine::fd_count(pid)?;
    let addr = running.tcp.ok_or("no TCP address")?;
    let mut command = Command::new(&programs.shout);
    command
        .args(["bench", "--json", "--hold"])
        .arg(connections.to_string())
        .arg("--idle")
        .arg(secs(timing.idle.max(Duration::from_millis(500))))
        .args(workload.args)
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
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
    let mut metrics = parse_summary(output.as_bytes()).ok_or_else(|| {
        format!(
            "shout bench --hold printed no summary; {}",
            one_line_tail(&bench.stderr(), 300)
        )
    })?;
    let held_rss =
        held_rss.ok_or("the connections were not held long enough to read the server's memory")?;
    let per_conn = held_rss.saturating_sub(base_rss) as f64 * 1024.0 / connections as f64;
    metrics.insert("rss_per_conn", per_conn);
    metrics.insert("rss_base_kib", base_rss as f64);
    if let Some(all_accepted) = all_accepted {
        metrics.insert("accept_s", all_accepted.as_secs_f64());
    }
    metrics.insert("accepted", accepted as f64);
    metrics.insert("accepted_s", accepted_at.as_secs_f64());
    Ok(metrics)
}

/// The figures of a `shout bench --json` summary.
pub(crate) fn parse_summary(stdout: &[u8]) -> Option<Metrics> {
    let text = String::from_utf8_lossy(stdout);
    let json = text
        .lines()
        .find(|line| line.trim_start().starts_with('{'))?;
    let mut metrics = Metrics::new();
    for field in FIELDS {
        if let Some(value) = json_number(json, field) {
            metrics.insert(field, value);
        }
    }
    metrics.contains_key("msgs_per_sec").then_some(metrics)
}

/// The number in field `name` of a flat JSON object; `None` when absent
/// or `null`.
fn json_number(json: &str, name: &str) -> Option<f64> {
    let start = json.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn secs(duration: Duration) -> String {
    format!("{}", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_of_shout_bench() {
        let json = br#"{"transport":"tcp","target":"127.0.0.1:1","mode":"closed-loop","connections":1,"depth":1,"size":64,"rate":null,"seconds":2.000000,"messages":10,"msgs_per_sec":5.0,"mib_per_sec":0.000,"p50_us":16.0,"p90_us":17.1,"p99_us":31.8,"p999_us":57.3,"max_us":5530.0,"mean_us":16.5,"errors":0,"lost":0,"late":0,"held":null,"open_seconds":null,"first_error":null}"#;
        let metrics = parse_summary(json).unwrap();
        assert_eq!(metrics["msgs_per_sec"], 5.0);
        assert_eq!(metrics["p99_us"], 31.8);
        assert_eq!(metrics["errors"], 0.0);
        assert!(!metrics.contains_key("open_seconds"));
        assert!(parse_summary(b"shout: refused").is_none());
    }

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
            assert!(workload.servers.contains(&Server::Tokio));
            assert!(workload.servers.contains(&Server::Ceiling1));
            assert!(workload.servers.contains(&Server::Ceiling2));
        }
    }
}
