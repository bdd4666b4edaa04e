//! From measurements to what people read: medians over the runs, one table
//! per workload with ratios against tokio and the load generator's ceiling
//! beside it, the targets of issue 7 met or missed, and the generated part
//! of docs/BENCHMARKS.md.

use super::machine::{CpuShare, Machine};
use super::servers::{ALL, Server};
use super::transform::Transform;
use super::workloads::{Kind, Metrics, Timing, WORKLOADS, Workload};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A figure within this fraction of the ceiling's is limited by the load
/// generator, not by the server.
const NEAR_CEILING: f64 = 0.8;

/// Every measurement of a run of `cargo xtask bench`.
#[derive(Debug, Default)]
pub(crate) struct Results {
    cells: BTreeMap<(usize, Server), Vec<Result<Metrics, String>>>,
}

impl Results {
    /// Adds one measurement of workload number `workload` against `server`.
    pub(crate) fn record(
        &mut self,
        workload: usize,
        server: Server,
        result: Result<Metrics, String>,
    ) {
        self.cells
            .entry((workload, server))
            .or_default()
            .push(result);
    }

    /// Each figure's median over the runs that succeeded; `None` when none
    /// did (or the pair was not measured).
    pub(crate) fn median(&self, workload: usize, server: Server) -> Option<Metrics> {
        let runs: Vec<&Metrics> = self
            .cells
            .get(&(workload, server))?
            .iter()
            .filter_map(|run| run.as_ref().ok())
            .collect();
        if runs.is_empty() {
            return None;
        }
        let mut names: Vec<&'static str> =
            runs.iter().flat_map(|run| run.keys().copied()).collect();
        names.sort_unstable();
        names.dedup();
        Some(
            names
                .into_iter()
                .filter_map(|name| {
                    let values: Vec<f64> = runs
                        .iter()
                        .filter_map(|run| run.get(name).copied())
                        .collect();
                    median(values).map(|value| (name, value))
                })
                .collect(),
        )
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

    fn figure(&self, workload: usize, server: Server, name: &str) -> Option<f64> {
        self.median(workload, server)?.get(name).copied()
    }

    /// The load generator's ceiling in a workload: the faster of the
    /// ceiling servers, by median msgs/s, with which one it was.
    fn ceiling(&self, workload: usize) -> Option<(Server, f64)> {
        ALL.into_iter()
            .filter(|server| server.is_ceiling())
            .filter_map(|server| Some((server, self.figure(workload, server, "msgs_per_sec")?)))
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
    let tokio = results.median(index, Server::Tokio);
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
                let Some(m) = results.median(index, server) else {
                    table.row(vec![server.name().into(), "failed".into()]);
                    continue;
                };
                let get = |name: &str| m.get(name).copied().unwrap_or(f64::NAN);
                let versus = |name: &str| {
                    tokio
                        .as_ref()
                        .and_then(|t| t.get(name))
                        .map_or("–".into(), |&t| ratio_text(get(name) / t))
                };
                let note = match ceiling {
                    Some((fastest, _)) if fastest == server => "load generator ceiling".to_owned(),
                    Some((_, c)) if get("msgs_per_sec") >= NEAR_CEILING * c => {
                        format!("{:.0}% of ceiling", 100.0 * get("msgs_per_sec") / c)
                    }
                    _ => String::new(),
                };
                let mut row = vec![
                    server.name().into(),
                    count(get("msgs_per_sec")),
                    format!("{:.1}", get("mib_per_sec")),
                    latency(get("p50_us")),
                    latency(get("p99_us")),
                    latency(get("p999_us")),
                    count(get("errors")),
                ];
                if udp {
                    row.push(count(get("lost")));
                }
                row.extend([
                    cores(get("server_cores")),
                    cpu_time(get("server_us_per_msg")),
                    versus("msgs_per_sec"),
                    versus("p99_us"),
                    versus("server_us_per_msg"),
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
                let Some(m) = results.median(index, server) else {
                    table.row(vec![server.name().into(), "failed".into()]);
                    continue;
                };
                let get = |name: &str| m.get(name).copied();
                let rss_versus = tokio
                    .as_ref()
                    .and_then(|t| t.get("rss_per_conn"))
                    .zip(get("rss_per_conn"))
                    .map_or("–".into(), |(&t, ours)| ratio_text(ours / t));
                table.row(vec![
                    server.name().into(),
                    get("rss_per_conn").map_or("–".into(), bytes),
                    get("accept_s").map_or_else(
                        || {
                            format!(
                                "not all: {} of {} by {}",
                                count(get("accepted").unwrap_or(0.0)),
                                count(held as f64),
                                seconds(get("accepted_s").unwrap_or(f64::NAN))
                            )
                        },
                        seconds,
                    ),
                    get("open_seconds").map_or("–".into(), seconds),
                    latency(get("p50_us").unwrap_or(f64::NAN)),
                    latency(get("p99_us").unwrap_or(f64::NAN)),
                    count(get("errors").unwrap_or(f64::NAN)),
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
                .figure(index, server, "msgs_per_sec")
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

/// The targets of issue 7, each with its figure and verdict.
pub(crate) fn targets(results: &Results, transform: Option<&Transform>) -> String {
    let mut table = Table::default();
    table.header(&["target", "workload", "shoutd-1", "shoutd-2", "verdict"]);
    let index_of = |name: &str| WORKLOADS.iter().position(|w| w.name == name);
    let measured = results.workloads();
    let ratio_of = |index: usize, server: Server, name: &str| {
        Some(results.figure(index, server, name)? / results.figure(index, Server::Tokio, name)?)
    };
    let bound = |index: usize| {
        let ceiling = results.ceiling(index).map(|(_, ceiling)| ceiling);
        [Server::Shoutd1, Server::Shoutd2, Server::Tokio]
            .iter()
            .all(|&server| {
                results
                    .figure(index, server, "msgs_per_sec")
                    .zip(ceiling)
                    .is_some_and(|(figure, ceiling)| figure >= NEAR_CEILING * ceiling)
            })
    };
    for workload in WORKLOADS.iter().filter(|w| w.kind == Kind::Tcp) {
        let Some(index) = index_of(workload.name).filter(|i| measured.contains(i)) else {
            continue;
        };
        for (target, name, at_least) in [
            ("msgs/s and MiB/s ≥ 1.0× tokio", "msgs_per_sec", true),
            ("p99 latency ≤ 1.0× tokio", "p99_us", false),
        ] {
            let one = ratio_of(index, Server::Shoutd1, name);
            let two = ratio_of(index, Server::Shoutd2, name);
            let ok = |ratio: Option<f64>| {
                ratio.is_some_and(|r| if at_least { r >= 1.0 } else { r <= 1.0 })
            };
            let mut verdict = verdict(ok(one), ok(two)).to_owned();
            if at_least && bound(index) {
                verdict.push_str(" (all within 20% of the load generator's ceiling)");
            }
            table.row(vec![
                target.into(),
                workload.name.into(),
                one.map_or("–".into(), ratio_text),
                two.map_or("–".into(), ratio_text),
                verdict,
            ]);
        }
    }
    if let Some(index) = index_of("idle-10k").filter(|i| measured.contains(i)) {
        let rss = |server| results.figure(index, server, "rss_per_conn");
        let ok = |value: Option<f64>, limit: f64| value.is_some_and(|v| v <= limit);
        let (one, two) = (rss(Server::Shoutd1), rss(Server::Shoutd2));
        table.row(vec![
            "≤ 1 KiB server RSS per idle connection".into(),
            "idle-10k".into(),
            one.map_or("–".into(), bytes),
            two.map_or("–".into(), bytes),
            verdict(ok(one, 1024.0), ok(two, 1024.0)).into(),
        ]);
        let accept = |server| results.figure(index, server, "accept_s");
        let (one, two) = (accept(Server::Shoutd1), accept(Server::Shoutd2));
        table.row(vec![
            "10,000 connections accepted within 1 s".into(),
            "idle-10k".into(),
            one.map_or("not all".into(), seconds),
            two.map_or("not all".into(), seconds),
            verdict(ok(one, 1.0), ok(two, 1.0)).into(),
        ]);
    }
    if let Some(index) = index_of("udp-many").filter(|i| measured.contains(i)) {
        let one = ratio_of(index, Server::Shoutd1, "msgs_per_sec");
        let two = ratio_of(index, Server::Shoutd2, "msgs_per_sec");
        let ok = |ratio: Option<f64>| ratio.is_some_and(|r| r >= 1.5);
        let mut verdict = verdict(ok(one), ok(two)).to_owned();
        if bound(index) {
            verdict.push_str(" (all within 20% of the load generator's ceiling)");
        }
        table.row(vec![
            "datagrams/s ≥ 1.5× tokio, many clients".into(),
            "udp-many".into(),
            one.map_or("–".into(), ratio_text),
            two.map_or("–".into(), ratio_text),
            verdict,
        ]);
    }
    if let Some(ratio) = transform.and_then(|t| t.ratio("ascii")) {
        table.row(vec![
            "transform, ASCII ≥ 5× `str::to_uppercase`".into(),
            "criterion".into(),
            ratio_text(ratio),
            "".into(),
            if ratio >= 5.0 { "met" } else { "missed" }.into(),
        ]);
    }
    table.markdown()
}

/// Whether shoutd met a target, with one worker and with two.
fn verdict(one: bool, two: bool) -> &'static str {
    match (one, two) {
        (true, true) => "met",
        (true, false) => "met with 1 worker",
        (false, true) => "met with 2 workers",
        (false, false) => "missed",
    }
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
    out.push_str("### Targets (issue 7), ratios against tokio in the same run\n\n");
    out.push_str(&targets(results, context.transform));
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

/// `1,234,567`, rounded.
pub(crate) fn count(value: f64) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < -0.5 { format!("-{out}") } else { out }
}

/// A latency given in microseconds, in the unit that suits it.
pub(crate) fn latency(micros: f64) -> String {
    if !micros.is_finite() {
        "–".into()
    } else if micros < 1_000.0 {
        format!("{micros:.1} µs")
    } else if micros < 1_000_000.0 {
        format!("{:.2} ms", micros / 1e3)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
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

fn cores(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2} cores")
    } else {
        "–".into()
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

    fn metrics(pairs: &[(&'static str, f64)]) -> Metrics {
        pairs.iter().copied().collect()
    }

    #[test]
    fn medians_are_taken_figure_by_figure() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        let mut results = Results::default();
        results.record(
            0,
            Server::Tokio,
            Ok(metrics(&[("msgs_per_sec", 10.0), ("p99_us", 5.0)])),
        );
        results.record(0, Server::Tokio, Err("crashed".into()));
        results.record(
            0,
            Server::Tokio,
            Ok(metrics(&[("msgs_per_sec", 30.0), ("p99_us", 1.0)])),
        );
        results.record(
            0,
            Server::Tokio,
            Ok(metrics(&[("msgs_per_sec", 20.0), ("p99_us", 9.0)])),
        );
        let median = results.median(0, Server::Tokio).unwrap();
        assert_eq!(median["msgs_per_sec"], 20.0);
        assert_eq!(median["p99_us"], 5.0);
        assert_eq!(results.failures(0, Server::Tokio), ["crashed"]);
        assert_eq!(results.median(0, Server::Shoutd1), None);
    }

    #[test]
    fn figures_read_well() {
        assert_eq!(count(1_234_567.4), "1,234,567");
        assert_eq!(count(12.0), "12");
        assert_eq!(latency(16.04), "16.0 µs");
        assert_eq!(latency(6_840.0), "6.84 ms");
        assert_eq!(latency(1_020_000.0), "1.02 s");
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
    fn targets_compare_with_tokio() {
        let mut results = Results::default();
        let pipelined = WORKLOADS
            .iter()
            .position(|w| w.name == "pipelined")
            .unwrap();
        for (server, rate, p99) in [
            (Server::Shoutd1, 120.0, 10.0),
            (Server::Shoutd2, 90.0, 8.0),
            (Server::Tokio, 100.0, 9.0),
            (Server::Ceiling1, 1000.0, 1.0),
            (Server::Ceiling2, 900.0, 1.0),
        ] {
            results.record(
                pipelined,
                server,
                Ok(metrics(&[("msgs_per_sec", rate), ("p99_us", p99)])),
            );
        }
        let text = targets(&results, None);
        assert!(
            text.contains("| msgs/s and MiB/s ≥ 1.0× tokio | pipelined | 1.20×"),
            "{text}"
        );
        assert!(text.contains("met with 1 worker"), "{text}");
        assert!(text.contains("met with 2 workers"), "{text}");
    }
}
