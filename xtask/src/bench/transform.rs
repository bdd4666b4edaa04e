//! The transform microbenchmark of the protocol crate (criterion,
//! `crates/protocol/benches/transform.rs`): run it, and read its throughput
//! figures from criterion's report on standard output.

use crate::{cargo, show};
use std::path::Path;
use std::process::Stdio;

/// Throughput in GiB/s, per benchmark id (`ascii/uppercaser`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Transform {
    pub(crate) results: Vec<(String, f64)>,
}

impl Transform {
    /// The figure of benchmark `id`.
    pub(crate) fn get(&self, id: &str) -> Option<f64> {
        self.results
            .iter()
            .find(|(name, _)| name == id)
            .map(|&(_, value)| value)
    }

    /// Our transform against `str::to_uppercase` on `input` (`ascii` or
    /// `mixed`): how many times as fast.
    pub(crate) fn ratio(&self, input: &str) -> Option<f64> {
        Some(
            self.get(&format!("{input}/uppercaser"))?
                / self.get(&format!("{input}/std_to_uppercase"))?,
        )
    }
}

/// Runs the criterion benchmark (shorter with `quick`) and reads it.
pub(crate) fn run(root: &Path, quick: bool) -> Result<Transform, String> {
    let (warm_up, measure) = if quick { ("0.5", "1") } else { ("1", "3") };
    let mut command = cargo(root);
    command
        .args([
            "bench",
            "-p",
            "shout-protocol",
            "--bench",
            "transform",
            "--",
        ])
        .args(["--warm-up-time", warm_up, "--measurement-time", measure])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    println!("==> {}", show(&command));
    let output = command
        .output()
        .map_err(|error| format!("cannot run `{}`: {error}", show(&command)))?;
    if !output.status.success() {
        return Err(format!("`{}` failed ({})", show(&command), output.status));
    }
    let transform = parse(&String::from_utf8_lossy(&output.stdout));
    if transform.results.is_empty() {
        return Err("criterion printed no throughput".into());
    }
    Ok(transform)
}

/// Reads criterion's report: a line naming the benchmark, then
/// `thrpt:  [low unit  estimate unit  high unit]`; the estimate is kept.
pub(crate) fn parse(report: &str) -> Transform {
    let mut results = Vec::new();
    let mut current: Option<String> = None;
    for line in report.lines() {
        if !line.starts_with(char::is_whitespace) {
            current = line
                .split_whitespace()
                .next()
                .filter(|name| name.contains('/'))
                .map(str::to_owned);
        }
        let Some(rest) = line.trim_start().strip_prefix("thrpt:") else {
            // The name may share its line with `time:`.
            continue;
        };
        let fields: Vec<&str> = rest
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split_whitespace()
            .collect();
        let (Some(name), [_, _, value, unit, ..]) = (current.as_ref(), fields.as_slice()) else {
            continue;
        };
        let scale = match *unit {
            "B/s" => 1.0 / (1u64 << 30) as f64,
            "KiB/s" => 1.0 / (1u64 << 20) as f64,
            "MiB/s" => 1.0 / 1024.0,
            "GiB/s" => 1.0,
            "TiB/s" => 1024.0,
            _ => continue,
        };
        if let Ok(value) = value.parse::<f64>() {
            results.push((name.clone(), value * scale));
        }
    }
    Transform { results }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_throughput() {
        let report = "\
ascii/std_to_uppercase  time:   [2.6456 µs 2.6552 µs 2.6687 µs]
                        thrpt:  [22.871 GiB/s 22.987 GiB/s 23.071 GiB/s]
Found 7 outliers among 100 measurements (7.00%)
  3 (3.00%) high mild
mixed/a_rather_long_benchmark_name
                        time:   [287.74 µs 307.84 µs 327.98 µs]
                        thrpt:  [190.56 MiB/s 204.80 MiB/s 217.21 MiB/s]
                        change: [-1.0% +2.0% +3.0%] (p = 0.00 < 0.05)
";
        let transform = parse(report);
        assert_eq!(transform.get("ascii/std_to_uppercase"), Some(22.987));
        assert_eq!(
            transform.get("mixed/a_rather_long_benchmark_name"),
            Some(0.2)
        );
        assert_eq!(transform.results.len(), 2);
    }

    #[test]
    fn ratios_compare_with_std() {
        let transform = Transform {
            results: vec![
                ("ascii/std_to_uppercase".into(), 20.0),
                ("ascii/uppercaser".into(), 10.0),
            ],
        };
        assert_eq!(transform.ratio("ascii"), Some(0.5));
        assert_eq!(transform.ratio("mixed"), None);
    }
}
