//! What a balancer in front of shoutd costs: `shout bench` through HAProxy
//! (TCP mode, `send-proxy-v2`, the haproxy.cfg of e2e's `haproxy` scenario
//! and docs/DEPLOYMENT.md, one backend) to `shoutd --proxy-protocol`,
//! against the same shoutd-1 measured directly, in the same runs.
//!
//! Reports, per workload, the throughput ratio, the p50 and p99 latency
//! HAProxy adds, and HAProxy's CPU time per message (read from `/proc`, as
//! the other tables read the server's). Skipped, and saying so, when
//! `haproxy` is not installed. Not for HAProxy's behaviour under failures:
//! e2e's `haproxy` scenario proves that.

use super::report::{self, Table};
use super::servers::{self, Need, Programs, Server};
use super::workloads::{self, Measurement, Timing, WORKLOADS, Workload};
use crate::e2e::haproxy::Haproxy;
use crate::e2e::process;
use std::io::Write;
use std::process::Command;

/// The name `--only` selects this measurement by.
pub(crate) const NAME: &str = "balancer";

/// The workloads measured both ways: one request at a time, pipelined,
/// blocking clients, and a connection per request (HAProxy opens one to
/// the backend for each).
const MEASURED: [&str; 4] = [
    "ping-pong",
    "pipelined",
    "blocking-ping-pong",
    "new-connection",
];

/// What the measurement found: its rows, or why it did not run.
pub(crate) enum Balancer {
    Measured(Vec<Row>),
    Skipped(String),
}

/// One workload, measured directly and through HAProxy in every run.
pub(crate) struct Row {
    workload: &'static Workload,
    direct: Vec<Measurement>,
    through: Vec<Measurement>,
    /// Measurements that failed, as "direct: why" or "through HAProxy: why".
    failures: Vec<String>,
}

/// Measures every workload of [`MEASURED`] directly and through HAProxy,
/// `runs` times, interleaved; prints each measurement as it ends.
pub(crate) fn run(programs: &Programs, timing: Timing, runs: usize) -> Balancer {
    if crate::e2e::find_in_path("haproxy").is_none() {
        let why = "haproxy is not installed (Debian: haproxy)".to_owned();
        println!("bench: {NAME}: skipped: {why}");
        return Balancer::Skipped(why);
    }
    let mut rows: Vec<Row> = MEASURED
        .iter()
        .map(|name| Row {
            workload: WORKLOADS
                .iter()
                .find(|workload| workload.name == *name)
                .expect("MEASURED names workloads"),
            direct: Vec::new(),
            through: Vec::new(),
            failures: Vec::new(),
        })
        .collect();
    for run in 1..=runs {
        for row in &mut rows {
            for (way, through) in [("direct", false), ("through HAProxy", true)] {
                let result = if through {
                    through_haproxy(programs, row.workload, timing)
                } else {
                    direct(programs, row.workload, timing)
                };
                let line = match &result {
                    Ok(m) => format!(
                        "{:>11} msgs/s  p50 {:>9}  p99 {:>9}",
                        report::count(m.summary.msgs_per_sec),
                        report::latency(m.summary.p50_us),
                        report::latency(m.summary.p99_us)
                    ),
                    Err(why) => format!("FAILED: {why}"),
                };
                println!(
                    "run {run}/{runs} {NAME} {:<18} {way:<15} {line}",
                    row.workload.name
                );
                let _ = std::io::stdout().flush();
                match result {
                    Ok(m) if through => row.through.push(m),
                    Ok(m) => row.direct.push(m),
                    Err(why) => row.failures.push(format!("{way}: {why}")),
                }
            }
        }
    }
    Balancer::Measured(rows)
}

/// shoutd-1 alone, as the other tables measure it; CPU is shoutd's.
fn direct(programs: &Programs, workload: &Workload, timing: Timing) -> Result<Measurement, String> {
    workloads::measure(programs, workload, Server::Shoutd1, timing)
}

/// `shoutd --proxy-protocol` behind HAProxy; CPU is HAProxy's.
fn through_haproxy(
    programs: &Programs,
    workload: &Workload,
    timing: Timing,
) -> Result<Measurement, String> {
    let mut command = Command::new(&programs.shoutd);
    command
        .args(["--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"])
        .args(servers::SHOUTD_ARGS)
        .arg("--proxy-protocol");
    let (mut backend, tcp, _) = process::start_announcing("shoutd --proxy-protocol", &mut command)?;
    let mut haproxy = Haproxy::start(&[tcp])?;
    let measurement = workloads::load(
        programs,
        haproxy.process.id(),
        workload,
        workloads::Target {
            addr: haproxy.listen,
            need: Need::Tcp,
        },
        timing,
    )?;
    for (name, process) in [("haproxy", &mut haproxy.process), ("shoutd", &mut backend)] {
        if let Ok(Some(status)) = process.try_wait() {
            return Err(format!(
                "{name} exited during the run ({status}); {}",
                process.stderr_tail()
            ));
        }
    }
    Ok(measurement)
}

impl Balancer {
    /// The section docs/BENCHMARKS.md gets: a table, or why there is none.
    pub(crate) fn markdown(&self, runs: usize) -> String {
        let mut out = String::from("## What HAProxy in front costs\n\n");
        let rows = match self {
            Balancer::Skipped(why) => {
                out.push_str(&format!("Not measured: {why}.\n"));
                return out;
            }
            Balancer::Measured(rows) => rows,
        };
        out.push_str(&format!(
            "shoutd-1 with `--proxy-protocol` behind HAProxy (TCP mode, `send-proxy-v2`, one \
             backend, the haproxy.cfg of DEPLOYMENT.md) against shoutd-1 alone, in the same \
             runs; medians of {runs}. *Ratio* is the throughput through HAProxy over the \
             direct one; *added* is the latency through HAProxy minus the direct one. \
             HAProxy's CPU per message is its process's CPU time (from `/proc`) over the \
             replies; shoutd's is the same figure of shoutd alone, for scale. HAProxy and the \
             load generator share the machine's cores, so on a small machine the ratio also \
             counts the cores HAProxy takes from them.\n\n"
        ));
        let mut table = Table::default();
        table.header(&[
            "workload",
            "direct",
            "through HAProxy",
            "ratio",
            "p50 added",
            "p99 added",
            "HAProxy CPU per message",
            "shoutd CPU per message (direct)",
        ]);
        let mut failures = Vec::new();
        for row in rows {
            let median = |of: &[Measurement], figure: fn(&Measurement) -> Option<f64>| {
                report::median(of.iter().filter_map(figure).collect())
            };
            let rate = |of: &[Measurement]| median(of, Measurement::msgs_per_sec);
            let p50 = |of: &[Measurement]| median(of, |m| Some(m.summary.p50_us));
            let p99 = |of: &[Measurement]| median(of, Measurement::p99_us);
            let added = |figure: &dyn Fn(&[Measurement]) -> Option<f64>| match (
                figure(&row.through),
                figure(&row.direct),
            ) {
                (Some(through), Some(direct)) => signed_latency(through - direct),
                _ => "–".into(),
            };
            let cpu = |of: &[Measurement]| {
                median(of, Measurement::server_us_per_msg).map_or("–".into(), report::cpu_time)
            };
            let ratio = match (rate(&row.through), rate(&row.direct)) {
                (Some(through), Some(direct)) if direct > 0.0 => {
                    format!("{:.2}×", through / direct)
                }
                _ => "–".into(),
            };
            table.row(vec![
                format!("{} ({})", row.workload.name, row.workload.shape),
                rate(&row.direct).map_or("–".into(), |r| format!("{}/s", report::count(r))),
                rate(&row.through).map_or("–".into(), |r| format!("{}/s", report::count(r))),
                ratio,
                added(&p50),
                added(&p99),
                cpu(&row.through),
                cpu(&row.direct),
            ]);
            failures.extend(
                row.failures
                    .iter()
                    .map(|why| format!("- {}, {why}", row.workload.name)),
            );
        }
        out.push_str(&table.markdown());
        if !failures.is_empty() {
            out.push_str("\nFailed measurements (left out of the medians):\n\n");
            out.push_str(&failures.join("\n"));
            out.push('\n');
        }
        out
    }
}

/// A latency difference with its sign: `+12.3 µs`, `−1.0 µs`.
fn signed_latency(micros: f64) -> String {
    if micros < 0.0 {
        format!("−{}", report::latency(-micros))
    } else {
        format!("+{}", report::latency(micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_names_are_workloads() {
        for name in MEASURED {
            assert!(
                WORKLOADS.iter().any(|workload| workload.name == name),
                "{name}"
            );
        }
    }

    #[test]
    fn the_table_shows_ratio_and_added_latency() {
        let workload = &WORKLOADS[0];
        let measured = |rate, p99| report::tests::measurement(rate, p99);
        let balancer = Balancer::Measured(vec![Row {
            workload,
            direct: vec![measured(100_000.0, 50.0)],
            through: vec![measured(50_000.0, 80.0)],
            failures: vec!["through HAProxy: haproxy exited".into()],
        }]);
        let text = balancer.markdown(1);
        assert!(text.contains("| 0.50×"), "{text}");
        assert!(text.contains("+30.0 µs"), "{text}");
        assert!(text.contains("haproxy exited"), "{text}");
        let skipped = Balancer::Skipped("haproxy is not installed".into()).markdown(1);
        assert!(skipped.contains("Not measured: haproxy is not installed."));
    }
}
