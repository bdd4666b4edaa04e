//! From measurements to what people read: medians over the runs, one table
//! per workload with ratios against tokio and the load generator's ceiling
//! beside it, and the generated part of docs/BENCHMARKS.md. What the
//! figures should be is said in the prose around that part, not here.

use super::machine::{CpuShare, Machine};
use super::servers::{ALL, Server};
use super::transform::Transform;
use super::workloads::{Figure, Kind, Measurement, Timing, WORKLOADS, Workload};
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
        ALL.into_iter()
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

/// The workload tables, as Markdown (also what the terminal shows).
pub(crate) fn tables(results: &Results) -> String {
    let mut out = String::new();
    for index in results.workloads() {
        let workload = &WORKLOADS[index];
        let _ = writeln!(out, "### `{}`: {}\n", workload.name, workload.shape);
        out.push_str(&workload_table(results, index, workload));
        let ceiling_note = ceiling_note(results, index, workload);
        if !ceiling_note.is_empty() {
            let _ = writeln!(out, "\n{ceiling_note}");
        }
        for server in workload.servers {
            for failure in results.failures(index, *server) {
                let _ = writeln!(out, "\n- {} failed a run: {failure}", server.name());
            }
        }
        out.push('\n');
    }
    out
}

fn workload_table(results: &Results, index: usize, workload: &Workload) -> String {
    let ceiling = results.ceiling(index);
    let mut table = Table::default();
    match workload.kind {
        Kind::Tcp | Kind::Udp => {
            let udp = workload.kind == Kind::Udp;
            let mut header = vec!["server", "msgs/s", "MiB/s", "p50", "p99", "p99.9", "errors"];
            if udp {
                header.push("lost");
            }
            header.extend([
                "server CPU",
                "CPU per msg",
                "msgs/s vs tokio",
                "p99 vs tokio",
                "CPU per msg vs tokio",
                "note",
            ]);
            table.header(&header);
            for &server in workload.servers {
                if !results.measured(index, server) {
                    table.row(vec![server.name().into(), "failed".into()]);
                    continue;
                }
                let get = |figure: Figure| results.median(index, server, figure);
                let versus = |figure: Figure| {
                    get(figure)
                        .zip(results.median(index, Server::Tokio, figure))
                        .map_or("–".into(), |(ours, tokio)| ratio_text(ours / tokio))
                };
                let msgs_per_sec = get(Measurement::msgs_per_sec);
                let note = match (ceiling, msgs_per_sec) {
                    (Some((fastest, _)), _) if fastest == server => {
                        "load generator ceiling".to_owned()
                    }
                    (Some((_, c)), Some(m)) if m >= NEAR_CEILING * c => {
                        format!("{:.0}% of ceiling", 100.0 * m / c)
                    }
                    _ => String::new(),
                };
                let mut row = vec![
                    server.name().into(),
                    count_of(msgs_per_sec),
                    get(|m| Some(m.summary.mib_per_sec))
                        .map_or("–".into(), |mib| format!("{mib:.1}")),
                    latency_of(get(|m| Some(m.summary.p50_us))),
                    latency_of(get(Measurement::p99_us)),
                    latency_of(get(|m| Some(m.summary.p999_us))),
                    count_of(get(Measurement::errors)),
                ];
                if udp {
                    row.push(count_of(get(|m| Some(m.summary.lost as f64))));
                }
                row.extend([
                    get(Measurement::server_cores)
                        .map_or("–".into(), |cores| format!("{cores:.2} cores")),
                    get(Measurement::server_us_per_msg).map_or("–".into(), cpu_time),
                    versus(Measurement::msgs_per_sec),
                    versus(Measurement::p99_us),
                    versus(Measurement::server_us_per_msg),
                    note,
                ]);
                table.row(row);
            }
        }
        Kind::Hold(held) => {
            table.header(&[
                "server",
                "RSS per connection",
                "all accepted after",
                "all open (client) after",
                "then one request each: p50",
                "p99",
                "errors",
                "RSS vs tokio",
            ]);
            for &server in workload.servers {
                if !results.measured(index, server) {
                    table.row(vec![server.name().into(), "failed".into()]);
                    continue;
                }
                let get = |figure: Figure| results.median(index, server, figure);
                let rss = get(Measurement::rss_per_conn);
                let rss_versus = rss
                    .zip(results.median(index, Server::Tokio, Measurement::rss_per_conn))
                    .map_or("–".into(), |(ours, tokio)| ratio_text(ours / tokio));
                let all_accepted = get(Measurement::accept_s).map_or_else(
                    || {
                        format!(
                            "not all: {} of {} by {}",
                            count_of(get(|m| Some(m.held?.accepted as f64))),
                            Count(held as u64),
                            get(|m| Some(m.held?.accepted_s)).map_or("–".into(), seconds)
                        )
                    },
                    seconds,
                );
                table.row(vec![
                    server.name().into(),
                    rss.map_or("–".into(), bytes),
                    all_accepted,
                    get(|m| m.summary.open_seconds).map_or("–".into(), seconds),
                    latency_of(get(|m| Some(m.summary.p50_us))),
                    latency_of(get(Measurement::p99_us)),
                    count_of(get(Measurement::errors)),
                    rss_versus,
                ]);
            }
        }
    }
    table.markdown()
}

/// Says where the load generator, not the server, sets the figure.
fn ceiling_note(results: &Results, index: usize, workload: &Workload) -> String {
    let Some((fastest, ceiling)) = results.ceiling(index) else {
        return String::new();
    };
    if matches!(workload.kind, Kind::Hold(_)) {
        return String::new();
    }
    let near: Vec<&str> = workload
        .servers
        .iter()
        .filter(|&&server| !server.is_ceiling())
        .filter(|&&server| {
            results
                .median(index, server, Measurement::msgs_per_sec)
                .is_some_and(|figure| figure >= NEAR_CEILING * ceiling)
        })
        .map(|server| server.name())
        .collect();
    let mut note = format!(
        "Load generator ceiling: {} msgs/s (against `{}`, the faster ceiling).",
        count(ceiling),
        fastest.name()
    );
    if !near.is_empty() {
        let _ = write!(
            note,
            " Within {:.0}% of it: {} — there the load generator, not the server, sets the figure, and the ratio says little.",
            100.0 * (1.0 - NEAR_CEILING),
            near.join(", ")
        );
    }
    note
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
    out.push_str("**Servers:**\n\n");
    for server in ALL {
        let _ = writeln!(out, "- `{}`: {}", server.name(), server.description());
    }
    out.push_str(
        "\nLatency is per request, from when it was sent until the last byte of its \
         reply arrived, measured by the load generator (`shout bench`, one thread) on the \
         same machine; every reply was checked byte for byte. *Server CPU* is the CPU time \
         the server process used (all threads, user and system, from `/proc/PID/stat`) \
         during the measured time, in cores; *CPU per msg* divides it by the replies: \
         where the load generator sets the throughput, this is what still tells the \
         servers apart.\n\n",
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
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn header(&mut self, cells: &[&str]) {
        self.rows
            .insert(0, cells.iter().map(|&cell| cell.to_owned()).collect());
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn markdown(&self) -> String {
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
mod tests {
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
        results.record(0, Server::Tokio, Ok(measurement(10.0, 5.0)));
        results.record(0, Server::Tokio, Err("crashed".into()));
        results.record(0, Server::Tokio, Ok(measurement(30.0, 1.0)));
        results.record(0, Server::Tokio, Ok(measurement(20.0, 9.0)));
        let figure = |figure: Figure| results.median(0, Server::Tokio, figure);
        assert_eq!(figure(Measurement::msgs_per_sec), Some(20.0));
        assert_eq!(figure(Measurement::p99_us), Some(5.0));
        // No run read the server's CPU: no figure, rather than a zero.
        assert_eq!(figure(Measurement::server_us_per_msg), None);
        assert_eq!(results.failures(0, Server::Tokio), ["crashed"]);
        assert!(results.measured(0, Server::Tokio));
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

    #[test]
    fn tables_compare_with_tokio_and_the_ceiling() {
        let mut results = Results::default();
        let pipelined = WORKLOADS
            .iter()
            .position(|w| w.name == "pipelined")
            .unwrap();
        for (server, rate, p99) in [
            (Server::Shoutd1, 120.0, 10.0),
            (Server::Shoutd2, 850.0, 8.0),
            (Server::Tokio, 100.0, 9.0),
            (Server::Ceiling1, 1000.0, 1.0),
            (Server::Ceiling2, 900.0, 1.0),
        ] {
            results.record(pipelined, server, Ok(measurement(rate, p99)));
        }
        let text = tables(&results);
        assert!(text.contains("| shoutd-1 "), "{text}");
        assert!(text.contains("| 1.20×"), "{text}");
        assert!(text.contains("| 1.11×"), "{text}");
        assert!(text.contains("load generator ceiling"), "{text}");
        assert!(text.contains("85% of ceiling"), "{text}");
        assert!(text.contains("Within 20% of it: shoutd-2"), "{text}");
    }

    #[test]
    fn the_generated_part_shows_every_measured_workload() {
        use super::super::machine::CpuClock;
        use super::super::workloads::ServerHold;
        use std::time::Duration;
        let index_of = |name: &str| WORKLOADS.iter().position(|w| w.name == name).unwrap();
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
        results.record(index_of("idle-10k"), Server::Tokio, Ok(held(2_048.0, None)));
        let machine = Machine::describe();
        let context = Context {
            command: "cargo xtask bench --quick".into(),
            runs: 1,
            timing: Timing {
                warmup: Duration::from_millis(250),
                duration: Duration::from_secs(1),
                idle: Duration::from_millis(500),
            },
            machine: &machine,
            cpu: CpuClock::since(&CpuClock::now()),
            load_after: "0.00 0.00 0.00".into(),
            transform: None,
        };
        let text = markdown(&results, &context);
        assert!(
            text.starts_with("Generated by `cargo xtask bench --quick`"),
            "{text}"
        );
        assert!(text.contains("### `ping-pong`"), "{text}");
        // 0.5 s of server CPU over 5,000 replies.
        assert!(
            text.contains("| 5,000 ") && text.contains("| 100.0 µs "),
            "{text}"
        );
        assert!(text.contains("| 0.50 cores "), "{text}");
        assert!(text.contains("### `idle-10k`"), "{text}");
        assert!(
            text.contains("| 512 B ") && text.contains("| 0.25× "),
            "{text}"
        );
        assert!(
            text.contains("not all: 9,000 of 10,000 by 2.50 s"),
            "{text}"
        );
        assert!(!text.contains("### `pipelined`"), "{text}");
        assert!(!text.contains("Targets"), "{text}");
    }
}
