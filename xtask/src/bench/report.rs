//! From measurements to what people read: medians over the runs, one table
//! per workload with ratios against tokio and the load generator's ceiling
//! beside it, a TLS section compared with tokio-rustls, and the generated
//! part of docs/BENCHMARKS.md. What the figures should be is said in the
//! prose around that part, not here; only the TLS section closes with the
//! targets its figures are judged by, beside them.

use super::machine::{CpuShare, Machine};
use super::servers::{ALL, Server};
use super::transform::Transform;
use super::workloads::{self, Client, Figure, Kind, Measurement, Timing, WORKLOADS};
use shout_bench::format::{Count, Latency};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A figure within this fraction of the ceiling's is limited by the load
/// generator, not by the server.
const NEAR_CEILING: f64 = 0.8;

/// Every measurement of a run of `cargo xtask bench`.
#[derive(Debug, Default)]
pub(crate) struct Results {
    cells: BTreeMap<(usize, Server), Vec<Result<Measurement, String>>>,
}

impl Results {
    /// Adds one measurement of workload number `workload` against `server`.
    pub(crate) fn record(
        &mut self,
        workload: usize,
        server: Server,
        result: Result<Measurement, String>,
    ) {
        self.cells
            .entry((workload, server))
            .or_default()
            .push(result);
    }

    /// The median of `figure` over the runs of the pair that succeeded and
    /// have it; `None` when none does (or the pair was not measured).
    pub(crate) fn median(&self, workload: usize, server: Server, figure: Figure) -> Option<f64> {
        let values = self
            .cells
            .get(&(workload, server))?
            .iter()
            .filter_map(|run| figure(run.as_ref().ok()?))
            .collect();
        median(values)
    }

    /// Whether some run of the pair succeeded.
    pub(crate) fn measured(&self, workload: usize, server: Server) -> bool {
        self.cells
            .get(&(workload, server))
            .is_some_and(|runs| runs.iter().any(Result::is_ok))
    }

    /// Why runs of the pair failed, one line each.
    pub(crate) fn failures(&self, workload: usize, server: Server) -> Vec<String> {
        self.cells
            .get(&(workload, server))
            .map(|runs| {
                runs.iter()
                    .filter_map(|run| run.as_ref().err().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The workloads measured, by number.
    pub(crate) fn workloads(&self) -> Vec<usize> {
        let mut numbers: Vec<usize> = self.cells.keys().map(|&(workload, _)| workload).collect();
        numbers.dedup();
        numbers
    }

    /// The load generator's ceiling in a workload: the faster of the
    /// ceiling servers, by median msgs/s, with which one it was.
    fn ceiling(&self, workload: usize) -> Option<(Server, f64)> {
        ALL.iter()
            .copied()
            .filter(|server| server.is_ceiling())
            .filter_map(|server| {
                Some((
                    server,
                    self.median(workload, server, Measurement::msgs_per_sec)?,
                ))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// The median; the mean of the middle two for an even count.
pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

/// All a report says besides the measurements.
pub(crate) struct Context<'a> {
    pub(crate) command: String,
    pub(crate) runs: usize,
    pub(crate) timing: Timing,
    pub(crate) machine: &'a Machine,
    pub(crate) cpu: CpuShare,
    pub(crate) load_after: String,
    pub(crate) transform: Option<&'a Transform>,
}

/// The fair peer: every ratio is to its figure.
const PEER: Server = Server::Tokio1;

/// The servers whose absolute figures the tables show; the others show
/// only ratios to the peer.
const ABSOLUTE: [Server; 2] = [Server::Shoutd1, PEER];

/// The fair peer over TLS, and the shoutd compared with it.
const TLS_PEER: Server = Server::TokioRustls1;
const TLS_ABSOLUTE: [Server; 2] = [Server::ShoutdTls1, TLS_PEER];

/// Each TLS server beside the plain server it is over TCP, for what TLS
/// costs.
const TLS_OVER_PLAIN: [(Server, Server); 2] = [
    (Server::ShoutdTls1, Server::Shoutd1),
    (Server::TokioRustls1, Server::Tokio1),
];

/// The fair peer over QUIC, and the shoutd compared with it.
const QUIC_PEER: Server = Server::Quinn1;
const QUIC_ABSOLUTE: [Server; 2] = [Server::ShoutdQuic1, QUIC_PEER];

/// Each QUIC server beside the TLS server of its kind, for what QUIC
/// costs against TCP + TLS.
const QUIC_OVER_TLS: [(Server, Server); 2] = [
    (Server::ShoutdQuic1, Server::ShoutdTls1),
    (Server::Quinn1, Server::TokioRustls1),
];

/// One target: a ratio of shoutd's median of a figure (over TLS or QUIC)
/// to its peer's.
struct TlsTarget {
    workload: &'static str,
    label: &'static str,
    figure: Figure,
    /// `None`: stated beside the others, not judged.
    bound: Option<Target>,
}

const TLS_TARGETS: [TlsTarget; 6] = [
    TlsTarget {
        workload: "tls-new-connection",
        label: "new connections/s",
        figure: Measurement::msgs_per_sec,
        bound: Some(Target::AtLeast(1.0)),
    },
    TlsTarget {
        workload: "tls-pipelined",
        label: "msgs/s",
        figure: Measurement::msgs_per_sec,
        bound: Some(Target::AtLeast(1.0)),
    },
    TlsTarget {
        workload: "tls-pipelined",
        label: "server CPU per msg",
        figure: Measurement::server_us_per_msg,
        bound: None,
    },
    TlsTarget {
        workload: "tls-large",
        label: "msgs/s",
        figure: Measurement::msgs_per_sec,
        bound: Some(Target::AtLeast(1.0)),
    },
    TlsTarget {
        workload: "tls-large",
        label: "server CPU per msg",
        figure: Measurement::server_us_per_msg,
        bound: None,
    },
    TlsTarget {
        workload: "tls-idle",
        label: "RSS per connection",
        figure: Measurement::rss_per_conn,
        bound: Some(Target::AtMost(0.25)),
    },
];

/// The QUIC targets (issue #28): shoutd-1-quic against quinn-1, at
/// least level on throughput, no more CPU per message.
/// The fair peer over WebSocket, and the shoutd compared with it.
const WS_PEER: Server = Server::TokioWs1;
const WS_ABSOLUTE: [Server; 2] = [Server::ShoutdWs1, WS_PEER];

/// The targets of the WebSocket work (issue #26), shoutd-1-ws ÷
/// tokio-ws-1. The idle one has an absolute bound too, 1.6 KiB per
/// connection, which the idle table's figure shows.
const WS_TARGETS: [TlsTarget; 5] = [
    TlsTarget {
        workload: "ws-pipelined",
        label: "msgs/s",
        figure: Measurement::msgs_per_sec,
        bound: Some(Target::AtLeast(1.0)),
    },
    TlsTarget {
        workload: "ws-pipelined",
        label: "server CPU per msg",
        figure: Measurement::server_us_per_msg,
        bound: Some(Target::AtMost(1.0)),
    },
    TlsTarget {
        workload: "ws-large",
        label: "msgs/s",
        figure: Measurement::msgs_per_sec,
        bound: Some(Target::AtLeast(1.0)),
    },
    TlsTarget {
        workload: "ws-large",
        label: "server CPU per msg",
        figure: Measurement::server_us_per_msg,
        bound: Some(Target::AtMost(1.0)),
    },
    TlsTarget {
        workload: "ws-idle",
        label: "RSS per connection",
        figure: Measurement::rss_per_conn,
        bound: Some(Target::AtMost(0.25)),
    },
];

const QUIC_TARGETS: [TlsTarget; 9] = [
    TlsTarget {
        workload: "quic-new-connection",
        label: "new connections/s",
        figure: Measurement::msgs_per_sec,
        bound: Some(Target::AtLeast(1.0)),
    },
    TlsTarget {
        workload: "quic-pipelined",
        label: "msgs/s",
        figure: Measurement::msgs_per_sec,
        bound: Some(Target::AtLeast(1.0)),
    },
    TlsTarget {
        workload: "quic-pipelined",
        label: "server CPU per msg",
        figure: Measurement::server_us_per_msg,
        bound: Some(Target::AtMost(1.0)),
    },
    TlsTarget {
        workload: "quic-streams",
        label: "msgs/s",
        figure: Measurement::msgs_per_sec,
        bound: Some(Target::AtLeast(1.0)),
    },
    TlsTarget {
        workload: "quic-streams",
        label: "server CPU per msg",
        figure: Measurement::server_us_per_msg,
        bound: Some(Target::AtMost(1.0)),
    },
    TlsTarget {
        workload: "quic-large",
        label: "msgs/s",
        figure: Measurement::msgs_per_sec,
        bound: Some(Target::AtLeast(1.0)),
    },
    TlsTarget {
        workload: "quic-large",
        label: "server CPU per msg",
        figure: Measurement::server_us_per_msg,
        bound: Some(Target::AtMost(1.0)),
    },
    TlsTarget {
        workload: "quic-new-connection",
        label: "server CPU per connection",
        figure: Measurement::server_us_per_msg,
        bound: Some(Target::AtMost(1.0)),
    },
    TlsTarget {
        workload: "quic-idle",
        label: "RSS per connection",
        figure: Measurement::rss_per_conn,
        bound: Some(Target::AtMost(1.0)),
    },
];

/// A bound on a ratio.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn text(self) -> String {
        match self {
            Target::AtLeast(bound) => format!("≥ {}", ratio_text(bound)),
            Target::AtMost(bound) => format!("≤ {}", ratio_text(bound)),
        }
    }

    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(bound) => ratio >= bound,
            Target::AtMost(bound) => ratio <= bound,
        }
    }
}

/// A server's name with the threads it serves with: `shoutd-1 [1]`.
fn labelled(server: Server) -> String {
    format!("{} [{}]", server.name(), server.threads())
}

/// The ratio of two medians of `figure`: `server`'s to `against`'s.
fn ratio_of(
    results: &Results,
    index: usize,
    server: Server,
    against: Server,
    figure: Figure,
) -> Option<f64> {
    ratio_between(results, (index, server), (index, against), figure)
}

/// The ratio of two medians of `figure`, each of a (workload, server) pair.
fn ratio_between(
    results: &Results,
    (index, server): (usize, Server),
    (against_index, against): (usize, Server),
    figure: Figure,
) -> Option<f64> {
    let ours = results.median(index, server, figure)?;
    let theirs = results.median(against_index, against, figure)?;
    (theirs > 0.0).then_some(ours / theirs)
}

/// Whether a workload is measured by throughput and latency.
fn is_load(index: usize) -> bool {
    matches!(WORKLOADS[index].kind, Kind::Tcp | Kind::Udp)
}

/// Whether a workload runs over TLS.
fn is_tls(index: usize) -> bool {
    WORKLOADS[index].over_tls()
}

/// Whether a workload runs over QUIC.
fn is_quic(index: usize) -> bool {
    WORKLOADS[index].over_quic()
}

/// Whether a workload runs over WebSocket.
fn is_ws(index: usize) -> bool {
    WORKLOADS[index].over_ws()
}

/// The workload tables, as Markdown (also what the terminal shows): the
/// throughput per client shape, the CPU per message, the baseline, the
/// busy-poll comparison, the idle connections, then the TLS section.
pub(crate) fn tables(results: &Results) -> String {
    let mut out = String::new();
    let loads: Vec<usize> = results
        .workloads()
        .into_iter()
        .filter(|&i| is_load(i) && !is_tls(i) && !is_quic(i) && !is_ws(i))
        .collect();
    for client in Client::ALL {
        let rows: Vec<usize> = loads
            .iter()
            .copied()
            .filter(|&index| WORKLOADS[index].client == client)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "### Throughput ÷ {}'s, {}\n",
            PEER.name(),
            client.title()
        );
        out.push_str(&figure_table(
            results,
            &rows,
            Measurement::msgs_per_sec,
            true,
            ABSOLUTE,
        ));
        out.push('\n');
    }
    if !loads.is_empty() {
        let _ = writeln!(
            out,
            "### Server CPU per message ÷ {}'s, both client shapes\n",
            PEER.name()
        );
        out.push_str(&figure_table(
            results,
            &loads,
            Measurement::server_us_per_msg,
            false,
            ABSOLUTE,
        ));
        out.push('\n');
    }
    let baseline = baseline_table(results);
    if !baseline.is_empty() {
        out.push_str("### shoutd-1 ÷ shoutd-base (the older build), same runs\n\n");
        out.push_str(&baseline);
        out.push('\n');
    }
    let busy = busy_poll_table(results);
    if !busy.is_empty() {
        out.push_str("### Busy-poll\n\n");
        out.push_str(&busy);
        out.push('\n');
    }
    for index in results.workloads() {
        let plain = !is_tls(index) && !is_quic(index) && !is_ws(index);
        if matches!(WORKLOADS[index].kind, Kind::Hold(_)) && plain {
            out.push_str(&hold_section(results, index));
        }
    }
    out.push_str(&tls_tables(results));
    out.push_str(&quic_tables(results));
    out.push_str(&ws_tables(results));
    let mut failures = String::new();
    for index in results.workloads() {
        for &server in WORKLOADS[index].servers {
            if let Some(errors) = results
                .median(index, server, Measurement::errors)
                .filter(|&errors| errors > 0.0)
            {
                let _ = writeln!(
                    failures,
                    "- `{}` against {}: {} wrong replies or broken connections (median)",
                    WORKLOADS[index].name,
                    server.name(),
                    count(errors)
                );
            }
            for failure in results.failures(index, server) {
                let _ = writeln!(
                    failures,
                    "- `{}` against {} failed a run: {failure}",
                    WORKLOADS[index].name,
                    server.name()
                );
            }
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "{failures}");
    }
    out
}

/// The servers with a measurement in any of `rows`, in table order.
fn servers_in(results: &Results, rows: &[usize]) -> Vec<Server> {
    ALL.iter()
        .copied()
        .filter(|&server| rows.iter().any(|&index| results.measured(index, server)))
        .collect()
}

/// The heading and table of an idle-connections workload.
fn hold_section(results: &Results, index: usize) -> String {
    let workload = &WORKLOADS[index];
    format!(
        "### `{}`: {}\n\n{}\n",
        workload.name,
        workload.shape,
        hold_table(results, index)
    )
}

/// One row per workload: the absolute `figure` of the two `absolute`
/// servers, ours then the peer (with their p99 when `latency`), then every
/// other server's as a ratio to the peer's. A ratio within `NEAR_CEILING`
/// of the faster ceiling's throughput is marked †: there the load
/// generator sets the figure.
fn figure_table(
    results: &Results,
    rows: &[usize],
    figure: Figure,
    latency: bool,
    absolute: [Server; 2],
) -> String {
    let peer = absolute[1];
    let servers = servers_in(results, rows);
    let mut table = Table::default();
    let mut header = vec!["workload".to_owned()];
    for server in absolute {
        if latency {
            header.extend([format!("{} msgs/s", server.name()), "p99".into()]);
        } else {
            header.push(server.name().into());
        }
    }
    let compared: Vec<Server> = servers.iter().copied().filter(|&s| s != peer).collect();
    header.extend(compared.iter().map(|&server| labelled(server)));
    table.header_owned(header);
    let shown = |value: Option<f64>| {
        if latency {
            count_of(value)
        } else {
            value.map_or("–".into(), cpu_time)
        }
    };
    for &index in rows {
        let mut row = vec![format!("`{}`", WORKLOADS[index].name)];
        for server in absolute {
            row.push(shown(results.median(index, server, figure)));
            if latency {
                row.push(latency_of(results.median(
                    index,
                    server,
                    Measurement::p99_us,
                )));
            }
        }
        let ceiling = results.ceiling(index).map(|(_, ceiling)| ceiling);
        for &server in &compared {
            let mut cell =
                ratio_of(results, index, server, peer, figure).map_or("–".into(), ratio_text);
            let near = ceiling
                .zip(results.median(index, server, Measurement::msgs_per_sec))
                .is_some_and(|(ceiling, ours)| ours >= NEAR_CEILING * ceiling);
            if latency && near && !server.is_ceiling() {
                cell.push_str(" †");
            }
            row.push(cell);
        }
        table.row(row);
    }
    table.markdown()
}

/// shoutd-1's throughput, p99 and CPU per message as ratios to
/// shoutd-base's, per workload; empty when the baseline was not measured.
fn baseline_table(results: &Results) -> String {
    let rows: Vec<usize> = results
        .workloads()
        .into_iter()
        .filter(|&index| is_load(index) && results.measured(index, Server::ShoutdBase))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut table = Table::default();
    table.header(&["workload", "msgs/s", "p99", "CPU per msg"]);
    for index in rows {
        let ratio = |figure: Figure| {
            ratio_of(results, index, Server::Shoutd1, Server::ShoutdBase, figure)
                .map_or("–".into(), ratio_text)
        };
        table.row(vec![
            format!("`{}`", WORKLOADS[index].name),
            ratio(Measurement::msgs_per_sec),
            ratio(Measurement::p99_us),
            ratio(Measurement::server_us_per_msg),
        ]);
    }
    table.markdown()
}

/// Ping-pong latency and the CPU of a nearly idle server (`trickle`), with
/// and without busy-polling; empty when shoutd-busy was not measured.
fn busy_poll_table(results: &Results) -> String {
    let find = |name: &str| WORKLOADS.iter().position(|w| w.name == name);
    let (Some(ping), Some(trickle)) = (find("ping-pong"), find("trickle")) else {
        return String::new();
    };
    let measured = |server| results.measured(ping, server) || results.measured(trickle, server);
    if !measured(Server::ShoutdBusy) {
        return String::new();
    }
    let mut table = Table::default();
    table.header(&[
        "server",
        "`ping-pong` p50",
        "p99",
        "`trickle` server CPU",
        "CPU per msg",
    ]);
    for server in [Server::Shoutd1, Server::ShoutdBusy, PEER] {
        if !measured(server) {
            continue;
        }
        table.row(vec![
            labelled(server),
            latency_of(results.median(ping, server, |m| Some(m.summary.p50_us))),
            latency_of(results.median(ping, server, Measurement::p99_us)),
            results
                .median(trickle, server, Measurement::server_cores)
                .map_or("–".into(), |cores| {
                    format!("{:.2}% of a core", cores * 100.0)
                }),
            results
                .median(trickle, server, Measurement::server_us_per_msg)
                .map_or("–".into(), cpu_time),
        ]);
    }
    table.markdown()
}

/// The TLS section: throughput and CPU per message against tokio-rustls-1,
/// the handshakes, the idle TLS connections, what TLS costs over plain TCP,
/// and the targets; empty when no TLS workload was measured.
fn tls_tables(results: &Results) -> String {
    let measured: Vec<usize> = results
        .workloads()
        .into_iter()
        .filter(|&i| is_tls(i))
        .collect();
    if measured.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let loads: Vec<usize> = measured.iter().copied().filter(|&i| is_load(i)).collect();
    if !loads.is_empty() {
        let _ = writeln!(
            out,
            "### TLS: throughput ÷ {}'s (in `tls-new-connection` a message is a connection)\n",
            TLS_PEER.name()
        );
        out.push_str(&figure_table(
            results,
            &loads,
            Measurement::msgs_per_sec,
            true,
            TLS_ABSOLUTE,
        ));
        let _ = writeln!(
            out,
            "\n### TLS: server CPU per message ÷ {}'s\n",
            TLS_PEER.name()
        );
        out.push_str(&figure_table(
            results,
            &loads,
            Measurement::server_us_per_msg,
            false,
            TLS_ABSOLUTE,
        ));
        out.push('\n');
    }
    let handshakes = handshake_table(results);
    if !handshakes.is_empty() {
        out.push_str(
            "### TLS handshakes in `tls-new-connection` (TCP connect to handshake done)\n\n",
        );
        out.push_str(&handshakes);
        out.push('\n');
    }
    for &index in &measured {
        if matches!(WORKLOADS[index].kind, Kind::Hold(_)) {
            out.push_str(&hold_section(results, index));
        }
    }
    let cost = cost_table(results, &measured, &TLS_OVER_PLAIN, workloads::plain_twin);
    if !cost.is_empty() {
        out.push_str(
            "### What TLS costs: a TLS figure ÷ the same server's over TCP in the same shape \
             (`tls-X` ÷ `X`, `tls-idle` ÷ `idle-10k`), same runs\n\n",
        );
        out.push_str(&cost);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "### TLS targets: {} ÷ {}, medians\n",
        Server::ShoutdTls1.name(),
        TLS_PEER.name()
    );
    out.push_str(&target_table(
        results,
        &TLS_TARGETS,
        Server::ShoutdTls1,
        TLS_PEER,
    ));
    out.push('\n');
    out
}

/// The QUIC section: throughput and CPU against quinn-1, the handshakes,
/// the idle connections, what QUIC costs against TCP + TLS, the targets.
fn quic_tables(results: &Results) -> String {
    let measured: Vec<usize> = (results.workloads().into_iter())
        .filter(|&i| is_quic(i))
        .collect();
    if measured.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let loads: Vec<usize> = measured.iter().copied().filter(|&i| is_load(i)).collect();
    if !loads.is_empty() {
        let peer = QUIC_PEER.name();
        let _ = writeln!(
            out,
            "### QUIC: throughput ÷ {peer}'s (in `quic-new-connection` a message is a connection)\n"
        );
        let throughput = Measurement::msgs_per_sec;
        out.push_str(&figure_table(
            results,
            &loads,
            throughput,
            true,
            QUIC_ABSOLUTE,
        ));
        let _ = writeln!(out, "\n### QUIC: server CPU per message ÷ {peer}'s\n");
        let cpu = Measurement::server_us_per_msg;
        out.push_str(&figure_table(results, &loads, cpu, false, QUIC_ABSOLUTE));
        out.push('\n');
    }
    for &index in &measured {
        if matches!(WORKLOADS[index].kind, Kind::Hold(_)) {
            out.push_str(&hold_section(results, index));
        }
    }
    let cost = cost_table(results, &measured, &QUIC_OVER_TLS, workloads::tls_twin);
    if !cost.is_empty() {
        out.push_str(
            "### What QUIC costs: a QUIC figure ÷ the same kind of server's over TCP + TLS in \
             the same shape (`quic-X` ÷ `tls-X`), same runs\n\n",
        );
        out.push_str(&cost);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "### QUIC targets: {} ÷ {}, medians\n",
        Server::ShoutdQuic1.name(),
        QUIC_PEER.name()
    );
    out.push_str(&target_table(
        results,
        &QUIC_TARGETS,
        Server::ShoutdQuic1,
        QUIC_PEER,
    ));
    out.push('\n');
    out
}

/// The WebSocket section: throughput and CPU per message against
/// tokio-ws-1, the idle connections, and the targets; empty when no
/// WebSocket workload was measured.
fn ws_tables(results: &Results) -> String {
    let measured: Vec<usize> = (results.workloads().into_iter())
        .filter(|&i| is_ws(i))
        .collect();
    if measured.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let loads: Vec<usize> = measured.iter().copied().filter(|&i| is_load(i)).collect();
    if !loads.is_empty() {
        let peer = WS_PEER.name();
        let _ = writeln!(out, "### WebSocket: throughput ÷ {peer}'s\n");
        let throughput = Measurement::msgs_per_sec;
        out.push_str(&figure_table(
            results,
            &loads,
            throughput,
            true,
            WS_ABSOLUTE,
        ));
        let _ = writeln!(out, "\n### WebSocket: server CPU per message ÷ {peer}'s\n");
        let cpu = Measurement::server_us_per_msg;
        out.push_str(&figure_table(results, &loads, cpu, false, WS_ABSOLUTE));
        out.push('\n');
    }
    for &index in &measured {
        if matches!(WORKLOADS[index].kind, Kind::Hold(_)) {
            out.push_str(&hold_section(results, index));
        }
    }
    let _ = writeln!(
        out,
        "### WebSocket targets: {} ÷ {}, medians\n",
        Server::ShoutdWs1.name(),
        WS_PEER.name()
    );
    out.push_str(&target_table(
        results,
        &WS_TARGETS,
        Server::ShoutdWs1,
        WS_PEER,
    ));
    out.push('\n');
    out
}

/// The handshake times of `tls-new-connection`, a row per server.
fn handshake_table(results: &Results) -> String {
    let Some(index) = WORKLOADS
        .iter()
        .position(|workload| workload.name == "tls-new-connection")
    else {
        return String::new();
    };
    let servers = servers_in(results, &[index]);
    if servers.is_empty() {
        return String::new();
    }
    let mut table = Table::default();
    table.header(&["server", "handshake p50", "p99"]);
    for server in servers {
        table.row(vec![
            labelled(server),
            latency_of(results.median(index, server, |m| m.summary.handshake_p50_us)),
            latency_of(results.median(index, server, |m| m.summary.handshake_p99_us)),
        ]);
    }
    table.markdown()
}

/// Each of the `measured` workloads' figures ÷ its `twin`'s, for each
/// pair of servers (`pairs`: the server, and the one it is compared with
/// on the twin); empty when no twin was measured.
fn cost_table(
    results: &Results,
    measured: &[usize],
    pairs: &[(Server, Server)],
    twin: fn(usize) -> Option<usize>,
) -> String {
    let mut table = Table::default();
    let mut header = vec!["figure".to_owned()];
    header.extend(
        pairs
            .iter()
            .map(|&(tls, plain)| format!("{} ÷ {}", tls.name(), plain.name())),
    );
    table.header_owned(header);
    let mut any = false;
    for &index in measured {
        let Some(plain) = twin(index) else {
            continue;
        };
        let figures: &[(&str, Figure)] = match WORKLOADS[index].kind {
            Kind::Hold(_) => &[("RSS per connection", Measurement::rss_per_conn)],
            Kind::Tcp | Kind::Udp => &[
                ("msgs/s", Measurement::msgs_per_sec),
                ("server CPU per msg", Measurement::server_us_per_msg),
            ],
        };
        for &(label, figure) in figures {
            let mut row = vec![format!("`{}` {label}", WORKLOADS[index].name)];
            for &(tls, tcp) in pairs {
                let ratio = ratio_between(results, (index, tls), (plain, tcp), figure);
                any |= ratio.is_some();
                row.push(ratio.map_or("–".into(), ratio_text));
            }
            table.row(row);
        }
    }
    if any { table.markdown() } else { String::new() }
}

/// The targets: the ratio of each figure (`ours`'s ÷ `peer`'s, whose
/// absolute figures the tables above give) and the target it is held to.
fn target_table(results: &Results, targets: &[TlsTarget], ours: Server, peer: Server) -> String {
    let mut table = Table::default();
    table.header(&["figure", "ratio", "target"]);
    for target in targets {
        let Some(index) = WORKLOADS.iter().position(|w| w.name == target.workload) else {
            continue;
        };
        let ratio = ratio_of(results, index, ours, peer, target.figure);
        let verdict = match (target.bound, ratio) {
            (Some(bound), Some(ratio)) if bound.met(ratio) => format!("{}: met", bound.text()),
            (Some(bound), Some(_)) => format!("{}: **missed**", bound.text()),
            (Some(bound), None) => bound.text(),
            (None, _) => "stated".into(),
        };
        table.row(vec![
            format!("`{}` {}", target.workload, target.label),
            ratio.map_or("–".into(), ratio_text),
            verdict,
        ]);
    }
    table.markdown()
}

/// The idle connections: a row per server.
fn hold_table(results: &Results, index: usize) -> String {
    let Kind::Hold(held) = WORKLOADS[index].kind else {
        return String::new();
    };
    let mut table = Table::default();
    table.header(&[
        "server",
        "RSS per connection",
        "all accepted after",
        "then one request each: p99",
    ]);
    for server in servers_in(results, &[index]) {
        let get = |figure: Figure| results.median(index, server, figure);
        // QUIC connections share one socket: the load generator says when
        // all were open, the server's descriptors cannot.
        let all_open = is_quic(index).then(|| {
            get(|m| m.summary.open_seconds)
                .map_or("–".into(), |open| format!("{} (all open)", seconds(open)))
        });
        let all_accepted = all_open.unwrap_or_else(|| {
            get(Measurement::accept_s).map_or_else(
                || {
                    format!(
                        "not all: {} of {} by {}",
                        count_of(get(|m| Some(m.held?.accepted as f64))),
                        Count(held as u64),
                        get(|m| Some(m.held?.accepted_s)).map_or("–".into(), seconds)
                    )
                },
                seconds,
            )
        });
        table.row(vec![
            labelled(server),
            get(Measurement::rss_per_conn).map_or("–".into(), bytes),
            all_accepted,
            latency_of(get(Measurement::p99_us)),
        ]);
    }
    table.markdown()
}

/// The transform microbenchmark's table.
pub(crate) fn transform_table(transform: &Transform) -> String {
    let mut table = Table::default();
    table.header(&[
        "input (64 KiB)",
        "`str::to_uppercase`",
        "`Uppercaser`",
        "ratio",
    ]);
    for input in ["ascii", "mixed"] {
        let std = transform.get(&format!("{input}/std_to_uppercase"));
        let ours = transform.get(&format!("{input}/uppercaser"));
        table.row(vec![
            input.into(),
            std.map_or("–".into(), throughput),
            ours.map_or("–".into(), throughput),
            transform.ratio(input).map_or("–".into(), ratio_text),
        ]);
    }
    table.markdown()
}

/// The generated part of docs/BENCHMARKS.md.
pub(crate) fn markdown(results: &Results, context: &Context<'_>) -> String {
    let machine = context.machine;
    let cpu = context.cpu;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Generated by `{}` on {}: each figure is the median of {} run{}, each \
         measurement a fresh server, {} s of warm-up (answered, checked, not counted) \
         then {} s measured; the servers ran one after the other, interleaved run by run.\n",
        context.command,
        machine.date,
        context.runs,
        if context.runs == 1 { "" } else { "s" },
        context.timing.warmup.as_secs_f64(),
        context.timing.duration.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "**Machine:** {} — {} cores, {} of memory; {}; {}.\n",
        machine.cpu, machine.cores, machine.memory, machine.kernel, machine.rustc
    );
    let _ = writeln!(
        out,
        "**Conditions:** load average {} before the run, {} after. Over the {:.0} s of \
         measurements the {} cores were busy {:.2} cores on average: {:.2} for this run \
         (servers, load generator, xtask) and **{:.2} for other work** sharing the machine{}.\n",
        machine.load_before,
        context.load_after,
        cpu.wall.as_secs_f64(),
        machine.cores,
        cpu.busy,
        cpu.ours,
        cpu.others,
        if cpu.others > 0.25 {
            " — a noisy machine: read small differences as noise"
        } else {
            ""
        }
    );
    out.push_str("**Servers** (`[n]`: the threads that serve):\n\n");
    let measured = servers_in(results, &results.workloads());
    for server in ALL
        .iter()
        .copied()
        .filter(|server| measured.contains(server))
    {
        let _ = writeln!(out, "- `{}`: {}", labelled(server), server.description());
    }
    out.push_str(
        "\nThroughput tables: msgs/s and p99 latency (send to last reply byte, every \
         reply checked) for shoutd-1 and tokio-1, then each server's msgs/s ÷ tokio-1's; \
         † marks a server within 20% of the faster ceiling, where the load generator sets \
         the figure. CPU per message: the server's user + system time (`/proc/PID/stat`, \
         all threads) over the measured window ÷ its replies.\n\n",
    );
    out.push_str(&tables(results));
    if let Some(transform) = context.transform {
        out.push_str(
            "### Transform microbenchmark (criterion, `cargo bench -p shout-protocol --bench transform`)\n\n",
        );
        out.push_str(&transform_table(transform));
        out.push('\n');
    }
    out.push_str("\n![Throughput and p99 latency per workload and server](benchmarks.svg)\n");
    out
}

/// A Markdown table with its columns padded, so that it reads in a
/// terminal too.
#[derive(Default)]
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn header(&mut self, cells: &[&str]) {
        self.header_owned(cells.iter().map(|&cell| cell.to_owned()).collect());
    }

    fn header_owned(&mut self, cells: Vec<String>) {
        self.rows.insert(0, cells);
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn markdown(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width = |column: usize| {
            self.rows
                .iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
                .max(3)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let line = |row: &[String]| {
            let mut text = String::from("|");
            for (column, width) in widths.iter().enumerate() {
                let cell = row.get(column).map_or("", String::as_str);
                let pad = width - cell.chars().count();
                let _ = write!(text, " {cell}{} |", " ".repeat(pad));
            }
            text.push('\n');
            text
        };
        let mut out = String::new();
        for (index, row) in self.rows.iter().enumerate() {
            out.push_str(&line(row));
            if index == 0 {
                let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
                out.push_str(&line(&rule));
            }
        }
        out
    }
}

/// A figure as a count, rounded: `1,234,567`; `–` when it is not finite
/// or negative.
pub(crate) fn count(value: f64) -> String {
    count_of(Some(value))
}

fn count_of(value: Option<f64>) -> String {
    value
        .filter(|value| value.is_finite() && *value >= 0.0)
        .map_or("–".into(), |value| {
            Count(value.round() as u64).to_string()
        })
}

/// A latency given in microseconds, in the unit that suits it.
pub(crate) fn latency(micros: f64) -> String {
    latency_of(Some(micros))
}

fn latency_of(micros: Option<f64>) -> String {
    micros
        .and_then(Latency::from_micros_f64)
        .map_or("–".into(), |latency| latency.to_string())
}

/// CPU time per message, given in microseconds: sub-microsecond figures
/// keep two decimals.
pub(crate) fn cpu_time(micros: f64) -> String {
    if micros.is_finite() && micros < 10.0 {
        format!("{micros:.2} µs")
    } else {
        latency(micros)
    }
}

fn seconds(value: f64) -> String {
    format!("{value:.2} s")
}

fn bytes(value: f64) -> String {
    if value < 1024.0 {
        format!("{value:.0} B")
    } else {
        format!("{:.1} KiB", value / 1024.0)
    }
}

fn throughput(gib: f64) -> String {
    if gib >= 1.0 {
        format!("{gib:.2} GiB/s")
    } else {
        format!("{:.0} MiB/s", gib * 1024.0)
    }
}

fn ratio_text(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{ratio:.2}×")
    } else {
        "–".into()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A measurement of `msgs_per_sec` and `p99_us`, the other figures zero.
    pub(crate) fn measurement(msgs_per_sec: f64, p99_us: f64) -> Measurement {
        let json = format!(
            r#"{{"transport":"tcp","target":"127.0.0.1:1","mode":"closed-loop","connections":1,"depth":1,"size":64,"rate":null,"seconds":1.0,"messages":0,"msgs_per_sec":{msgs_per_sec},"mib_per_sec":0.0,"p50_us":0.0,"p90_us":0.0,"p99_us":{p99_us},"p999_us":0.0,"max_us":0.0,"mean_us":0.0,"errors":0,"lost":0,"late":0,"held":null,"open_seconds":null,"first_error":null}}"#
        );
        Measurement::of(shout_bench::Summary::from_output(&json).unwrap())
    }

    #[test]
    fn medians_are_taken_figure_by_figure() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        let mut results = Results::default();
        results.record(0, Server::Tokio1, Ok(measurement(10.0, 5.0)));
        results.record(0, Server::Tokio1, Err("crashed".into()));
        results.record(0, Server::Tokio1, Ok(measurement(30.0, 1.0)));
        results.record(0, Server::Tokio1, Ok(measurement(20.0, 9.0)));
        let figure = |figure: Figure| results.median(0, Server::Tokio1, figure);
        assert_eq!(figure(Measurement::msgs_per_sec), Some(20.0));
        assert_eq!(figure(Measurement::p99_us), Some(5.0));
        // No run read the server's CPU: no figure, rather than a zero.
        assert_eq!(figure(Measurement::server_us_per_msg), None);
        assert_eq!(results.failures(0, Server::Tokio1), ["crashed"]);
        assert!(results.measured(0, Server::Tokio1));
        assert!(!results.measured(0, Server::Shoutd1));
        assert_eq!(
            results.median(0, Server::Shoutd1, Measurement::p99_us),
            None
        );
    }

    #[test]
    fn figures_read_well() {
        assert_eq!(count(1_234_567.4), "1,234,567");
        assert_eq!(count(12.0), "12");
        assert_eq!(count(f64::NAN), "–");
        assert_eq!(latency(16.04), "16.0 µs");
        assert_eq!(latency(6_840.0), "6.84 ms");
        assert_eq!(latency(1_020_000.0), "1.02 s");
        assert_eq!(latency(f64::INFINITY), "–");
        assert_eq!(cpu_time(0.4234), "0.42 µs");
        assert_eq!(cpu_time(33.21), "33.2 µs");
        assert_eq!(bytes(134.4), "134 B");
        assert_eq!(bytes(6_331.0), "6.2 KiB");
        assert_eq!(throughput(0.2), "205 MiB/s");
        assert_eq!(ratio_text(1.0 / 3.0), "0.33×");
    }

    #[test]
    fn tables_are_padded_markdown() {
        let mut table = Table::default();
        table.header(&["a", "long header"]);
        table.row(vec!["value".into(), "x".into()]);
        assert_eq!(
            table.markdown(),
            "| a     | long header |\n| ----- | ----------- |\n| value | x           |\n"
        );
    }

    fn index_of(name: &str) -> usize {
        WORKLOADS.iter().position(|w| w.name == name).unwrap()
    }

    /// A measurement with `cpu` seconds of server CPU over one second.
    fn with_cpu(msgs_per_sec: f64, p99_us: f64, cpu: f64) -> Measurement {
        let mut measurement = measurement(msgs_per_sec, p99_us);
        measurement.server_cpu = Some(cpu);
        measurement.cpu_wall = 1.0;
        measurement
    }

    #[test]
    fn tables_compare_with_tokio_1_and_mark_the_ceiling() {
        let mut results = Results::default();
        let pipelined = index_of("pipelined");
        let blocking = index_of("blocking-ping-pong");
        for (server, rate, p99) in [
            (Server::Shoutd1, 120.0, 10.0),
            (Server::Shoutd2, 850.0, 8.0),
            (Server::Tokio1, 100.0, 9.0),
            (Server::TokioMt, 90.0, 9.0),
            (Server::Ceiling1, 1000.0, 1.0),
            (Server::Ceiling2, 900.0, 1.0),
        ] {
            results.record(pipelined, server, Ok(with_cpu(rate, p99, rate / 100.0)));
            results.record(
                blocking,
                server,
                Ok(with_cpu(rate / 2.0, p99, rate / 400.0)),
            );
        }
        let text = tables(&results);
        // One table per client shape, a row per workload.
        assert!(
            text.contains("### Throughput ÷ tokio-1's, event-loop clients"),
            "{text}"
        );
        assert!(
            text.contains("### Throughput ÷ tokio-1's, blocking clients"),
            "{text}"
        );
        assert!(text.contains("| `pipelined` "), "{text}");
        assert!(text.contains("| `blocking-ping-pong` "), "{text}");
        // Thread counts beside every server, ratios to tokio-1.
        assert!(text.contains("| shoutd-1 msgs/s | p99 "), "{text}");
        assert!(
            text.contains("| shoutd-1 [1] | shoutd-2 [2] | tokio-mt [2] "),
            "{text}"
        );
        assert!(text.contains("| 1.20× "), "{text}");
        assert!(text.contains("| 0.90× "), "{text}");
        // shoutd-2 is within 20% of the faster ceiling.
        assert!(text.contains("| 8.50× † "), "{text}");
        // CPU per message: 1.2 s over 120 replies, 10 ms each.
        assert!(text.contains("### Server CPU per message"), "{text}");
        assert!(text.contains("| 10.00 ms "), "{text}");
        // No baseline measured, no baseline table.
        assert!(!text.contains("shoutd-base"), "{text}");
    }

    #[test]
    fn the_baseline_is_shown_as_ratios_of_the_same_runs() {
        let mut results = Results::default();
        let ping = index_of("ping-pong");
        results.record(ping, Server::Shoutd1, Ok(with_cpu(110.0, 20.0, 0.5)));
        results.record(ping, Server::ShoutdBase, Ok(with_cpu(100.0, 25.0, 0.5)));
        results.record(ping, Server::Tokio1, Ok(with_cpu(100.0, 25.0, 0.5)));
        let text = tables(&results);
        assert!(text.contains("### shoutd-1 ÷ shoutd-base"), "{text}");
        // Throughput 110/100, p99 20/25, CPU per message (0.5/110)/(0.5/100).
        assert!(
            text.contains("| `ping-pong` | 1.10×  | 0.80× | 0.91×       |"),
            "{text}"
        );
        assert!(text.contains("| shoutd-base [1] "), "{text}");
    }

    #[test]
    fn busy_poll_is_compared_on_latency_and_idle_cpu() {
        let mut results = Results::default();
        results.record(
            index_of("ping-pong"),
            Server::Shoutd1,
            Ok(measurement(10.0, 30.0)),
        );
        results.record(
            index_of("ping-pong"),
            Server::ShoutdBusy,
            Ok(measurement(20.0, 15.0)),
        );
        results.record(
            index_of("trickle"),
            Server::Shoutd1,
            Ok(with_cpu(100.0, 30.0, 0.001)),
        );
        results.record(
            index_of("trickle"),
            Server::ShoutdBusy,
            Ok(with_cpu(100.0, 15.0, 0.01)),
        );
        let text = tables(&results);
        assert!(text.contains("### Busy-poll"), "{text}");
        assert!(
            text.contains("| shoutd-busy [1] | 0.0 µs          | 15.0 µs "),
            "{text}"
        );
        assert!(text.contains("| 1.00% of a core "), "{text}");
        assert!(text.contains("| 0.10% of a core "), "{text}");
    }

    fn quick_context(machine: &Machine) -> Context<'_> {
        use super::super::machine::CpuClock;
        use std::time::Duration;
        Context {
            command: "cargo xtask bench --quick".into(),
            runs: 1,
            timing: Timing {
                warmup: Duration::from_millis(250),
                duration: Duration::from_secs(1),
                idle: Duration::from_millis(500),
            },
            machine,
            cpu: CpuClock::since(&CpuClock::now()),
            load_after: "0.00 0.00 0.00".into(),
            transform: None,
        }
    }

    #[test]
    fn the_generated_part_stays_compact_with_every_server_measured() {
        let mut results = Results::default();
        for (index, workload) in WORKLOADS.iter().enumerate() {
            for (rank, &server) in workload.servers.iter().enumerate() {
                let rate = 12_345.0 * (rank + 1) as f64;
                results.record(index, server, Ok(with_cpu(rate, 87.6, 0.4)));
            }
        }
        let machine = Machine::describe();
        let text = markdown(&results, &quick_context(&machine));
        // Words as a reader counts them: table rules and bars are not.
        let words = text
            .split_whitespace()
            .filter(|word| word.chars().any(char::is_alphanumeric))
            .count();
        // About 850 for the plain workloads, 270 for the TLS section, 230
        // for the QUIC section.
        // The WebSocket section adds about 120.
        assert!(words < 1_600, "{words} words:\n{text}");
        assert!(text.contains("### shoutd-1 ÷ shoutd-base"), "{text}");
        assert!(text.contains("### Busy-poll"), "{text}");
        assert!(text.contains("### TLS targets"), "{text}");
        assert!(text.contains("### WebSocket targets"), "{text}");
        assert!(text.contains("### QUIC targets"), "{text}");
        assert!(text.contains("### What QUIC costs"), "{text}");
    }

    #[test]
    fn tls_is_compared_with_tokio_rustls_1_and_with_plain_tcp() {
        use super::super::workloads::ServerHold;
        let mut results = Results::default();
        let held = |rss_per_conn: f64| Measurement {
            held: Some(ServerHold {
                rss_per_conn,
                accept_s: Some(0.3),
                accepted: 2_000,
                accepted_s: 0.3,
            }),
            ..measurement(0.0, 40.0)
        };
        let handshaking = |rate: f64, cpu: f64, p50: f64| {
            let mut measurement = with_cpu(rate, 900.0, cpu);
            measurement.summary.handshake_p50_us = Some(p50);
            measurement.summary.handshake_p99_us = Some(p50 * 2.0);
            measurement
        };
        // shoutd-1-tls: 1,200 new connections/s at 0.6 s of CPU, against
        // tokio-rustls-1's 1,000 at 0.8 s; plain shoutd-1 does 6,000.
        let (ours, peer, mt) = (
            Server::ShoutdTls1,
            Server::TokioRustls1,
            Server::TokioRustlsMt,
        );
        let (plain_ours, plain_peer) = (Server::Shoutd1, Server::Tokio1);
        for (name, server, measurement) in [
            ("tls-new-connection", ours, handshaking(1_200.0, 0.6, 450.0)),
            ("tls-new-connection", peer, handshaking(1_000.0, 0.8, 610.0)),
            ("tls-new-connection", mt, handshaking(900.0, 0.9, 700.0)),
            ("new-connection", plain_ours, with_cpu(6_000.0, 100.0, 0.6)),
            ("new-connection", plain_peer, with_cpu(5_000.0, 100.0, 0.5)),
            ("tls-pipelined", ours, with_cpu(90.0, 10.0, 0.9)),
            ("tls-pipelined", peer, with_cpu(100.0, 10.0, 0.9)),
            ("tls-idle", ours, held(8_192.0)),
            ("tls-idle", peer, held(65_536.0)),
            ("idle-10k", plain_ours, held(1_024.0)),
        ] {
            results.record(index_of(name), server, Ok(measurement));
        }
        let text = tables(&results);
        // Cells as a reader sees them, without the padding.
        let flat = text
            .split(' ')
            .filter(|word| !word.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let shows = |cells: &str| assert!(flat.contains(cells), "{cells}\n{text}");
        // The TLS table: absolute figures of shoutd-1-tls and
        // tokio-rustls-1, ratios to tokio-rustls-1, threads beside names.
        shows("### TLS: throughput ÷ tokio-rustls-1's");
        shows(
            "| workload | shoutd-1-tls msgs/s | p99 | tokio-rustls-1 msgs/s | p99 | shoutd-1-tls [1] | tokio-rustls-mt [2] |",
        );
        shows("| `tls-new-connection` | 1,200 | 900.0 µs | 1,000 | 900.0 µs | 1.20× | 0.90× |");
        shows("| `tls-pipelined` | 10.00 ms | 9.00 ms | 1.11× | – |");
        // TLS workloads stay out of the plain tables.
        let plain = &text[..text.find("### TLS").unwrap()];
        assert!(!plain.contains("tls"), "{plain}");
        // Handshakes apart.
        shows("| shoutd-1-tls [1] | 450.0 µs | 900.0 µs |");
        shows("| tokio-rustls-mt [2] | 700.0 µs | 1.40 ms |");
        // What TLS costs: 1,200 ÷ 6,000 new connections/s; CPU per
        // connection 500 µs ÷ 100 µs; 1,000 ÷ 5,000 and 800 ÷ 100 for tokio.
        shows("| figure | shoutd-1-tls ÷ shoutd-1 | tokio-rustls-1 ÷ tokio-1 |");
        shows("| `tls-new-connection` msgs/s | 0.20× | 0.20× |");
        shows("| `tls-new-connection` server CPU per msg | 5.00× | 8.00× |");
        shows("| `tls-idle` RSS per connection | 8.00× | – |");
        // The targets: 1.2× new connections (met), 0.9× pipelined
        // (missed), 8 KiB ÷ 64 KiB per idle connection (met), `large`
        // not measured.
        shows("### TLS targets: shoutd-1-tls ÷ tokio-rustls-1");
        shows("| `tls-new-connection` new connections/s | 1.20× | ≥ 1.00×: met |");
        shows("| `tls-pipelined` msgs/s | 0.90× | ≥ 1.00×: **missed** |");
        shows("| `tls-pipelined` server CPU per msg | 1.11× | stated |");
        shows("| `tls-idle` RSS per connection | 0.12× | ≤ 0.25×: met |");
        shows("| `tls-large` msgs/s | – | ≥ 1.00× |");
    }

    #[test]
    fn the_generated_part_shows_every_measured_workload() {
        use super::super::workloads::ServerHold;
        let mut results = Results::default();
        let mut ping = measurement(5_000.0, 250.0);
        ping.server_cpu = Some(0.5);
        ping.cpu_wall = 1.0;
        results.record(index_of("ping-pong"), Server::Shoutd1, Ok(ping));
        let held = |rss_per_conn: f64, accept_s: Option<f64>| Measurement {
            held: Some(ServerHold {
                rss_per_conn,
                accept_s,
                accepted: 9_000,
                accepted_s: 2.5,
            }),
            ..measurement(0.0, 40.0)
        };
        results.record(
            index_of("idle-10k"),
            Server::Shoutd1,
            Ok(held(512.0, Some(0.4))),
        );
        results.record(
            index_of("idle-10k"),
            Server::Tokio1,
            Ok(held(2_048.0, None)),
        );
        let machine = Machine::describe();
        let text = markdown(&results, &quick_context(&machine));
        assert!(
            text.starts_with("Generated by `cargo xtask bench --quick`"),
            "{text}"
        );
        assert!(text.contains("| `ping-pong` "), "{text}");
        // 0.5 s of server CPU over 5,000 replies.
        assert!(
            text.contains("| 5,000 ") && text.contains("| 100.0 µs "),
            "{text}"
        );
        assert!(
            text.contains("- `shoutd-1 [1]`: shoutd, 1 worker"),
            "{text}"
        );
        assert!(text.contains("### `idle-10k`"), "{text}");
        assert!(
            text.contains("| 512 B ") && text.contains("| 2.0 KiB "),
            "{text}"
        );
        assert!(
            text.contains("not all: 9,000 of 10,000 by 2.50 s"),
            "{text}"
        );
        assert!(!text.contains("`pipelined`"), "{text}");
        assert!(!text.contains("Targets"), "{text}");
    }
}
