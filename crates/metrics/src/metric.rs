//! What a snapshot is made of, and its encoding in the Prometheus text
//! exposition format.
//!
//! The `prometheus` crate does the encoding (names checked, help and label
//! values escaped, families sorted by name). `prometheus-client` was not
//! chosen: it writes only the OpenMetrics format, whose counter lines
//! (`# TYPE x counter` over a sample `x_total`) `promtool check metrics`
//! and older scrapers read as two families.

use crate::MetricsError;
use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// The `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a metric's value behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (until the process restarts). By convention its name
    /// ends in `_total`.
    Counter,
    /// A level that goes up and down, such as connections open now.
    Gauge,
}

/// One sample of a snapshot: a named value, with optional labels.
///
/// Several samples may share a name when their label values differ (one
/// family). Samples with the same name and the same label values are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// The metric's name, e.g. `shout_bytes_received_total`.
    pub name: &'static str,
    /// One sentence for the `# HELP` line.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// Label names and values, e.g. `("worker", "0")`.
    pub labels: Vec<(&'static str, String)>,
    /// The value now. Prometheus keeps values as `f64`, so past 2^53 the
    /// value written is the nearest `f64`; a gauge past `i64::MAX` is
    /// written as `i64::MAX`.
    pub value: u64,
}

impl Metric {
    /// Returns a counter sample without labels.
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Counter,
            labels: Vec::new(),
            value,
        }
    }

    /// Returns a gauge sample without labels.
    pub fn gauge(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            kind: MetricKind::Gauge,
            ..Self::counter(name, help, value)
        }
    }

    /// Returns this sample with one more label.
    #[must_use]
    pub fn with_label(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((name, value.into()));
        self
    }

    fn label_names(&self) -> Vec<&'static str> {
        self.labels.iter().map(|(name, _)| *name).collect()
    }

    fn label_values(&self) -> Vec<&str> {
        self.labels
            .iter()
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// The samples of one name, as the `prometheus` crate holds them.
enum Family {
    Counter(IntCounterVec),
    Gauge(IntGaugeVec),
}

/// Encodes `metrics` in the text exposition format, version 0.0.4: for each
/// name a `# HELP` and a `# TYPE` line, then its samples; names sorted.
///
/// # Errors
/// [`MetricsError::Encode`] when a name or label name is not a valid
/// Prometheus name, or two samples of one name differ in kind, help text or
/// label names.
pub fn encode(metrics: &[Metric]) -> Result<String, MetricsError> {
    let error = |name: &str, why: &dyn std::fmt::Display| {
        MetricsError::Encode(format!("metric `{name}`: {why}"))
    };
    // (first sample of the name, its family), in the order names appear.
    let mut families: Vec<(&Metric, Family)> = Vec::new();
    for metric in metrics {
        let index = match families
            .iter()
            .position(|(first, _)| first.name == metric.name)
        {
            Some(index) => {
                let first = families[index].0;
                if (first.kind, first.help, first.label_names())
                    != (metric.kind, metric.help, metric.label_names())
                {
                    return Err(error(
                        metric.name,
                        &"two samples differ in kind, help or label names",
                    ));
                }
                index
            }
            None => {
                let opts = Opts::new(metric.name, metric.help);
                let labels = metric.label_names();
                let family = match metric.kind {
                    MetricKind::Counter => IntCounterVec::new(opts, &labels).map(Family::Counter),
                    MetricKind::Gauge => IntGaugeVec::new(opts, &labels).map(Family::Gauge),
                }
                .map_err(|e| error(metric.name, &e))?;
                families.push((metric, family));
                families.len() - 1
            }
        };
        let values = metric.label_values();
        match &families[index].1 {
            Family::Counter(family) => family
                .get_metric_with_label_values(&values)
                .map(|counter| counter.inc_by(metric.value)),
            Family::Gauge(family) => family
                .get_metric_with_label_values(&values)
                .map(|gauge| gauge.add(i64::try_from(metric.value).unwrap_or(i64::MAX))),
        }
        .map_err(|e| error(metric.name, &e))?;
    }
    let registry = Registry::new();
    for (first, family) in families {
        let collector: Box<dyn Collector> = match family {
            Family::Counter(family) => Box::new(family),
            Family::Gauge(family) => Box::new(family),
        };
        registry
            .register(collector)
            .map_err(|e| error(first.name, &e))?;
    }
    let mut text = String::new();
    TextEncoder::new()
        .encode_utf8(&registry.gather(), &mut text)
        .map_err(|e| MetricsError::Encode(e.to_string()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_help_type_and_value_for_each_name() {
        let text = encode(&[
            Metric::counter("shout_bytes_received_total", "Bytes received.", 42),
            Metric::gauge("shout_connections_open", "Connections open now.", 3),
        ])
        .unwrap();
        assert_eq!(
            text,
            "# HELP shout_bytes_received_total Bytes received.\n\
             # TYPE shout_bytes_received_total counter\n\
             shout_bytes_received_total 42\n\
             # HELP shout_connections_open Connections open now.\n\
             # TYPE shout_connections_open gauge\n\
             shout_connections_open 3\n"
        );
    }

    #[test]
    fn samples_of_one_name_form_one_family_and_equal_labels_add_up() {
        let sample = |worker: &str, value| {
            Metric::counter("x_total", "X.", value).with_label("worker", worker)
        };
        let text = encode(&[sample("0", 1), sample("1", 2), sample("0", 10)]).unwrap();
        assert_eq!(text.matches("# TYPE x_total counter").count(), 1, "{text}");
        assert!(text.contains("x_total{worker=\"0\"} 11\n"), "{text}");
        assert!(text.contains("x_total{worker=\"1\"} 2\n"), "{text}");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let text = encode(&[Metric::gauge("g", "A \\ help\nline.", 1).with_label("l", "a\"b\nc")])
            .unwrap();
        assert!(text.contains("# HELP g A \\\\ help\\nline.\n"), "{text}");
        assert!(text.contains("g{l=\"a\\\"b\\nc\"} 1\n"), "{text}");
    }

    #[test]
    fn a_gauge_past_i64_saturates() {
        let text = encode(&[Metric::gauge("g", "G.", u64::MAX)]).unwrap();
        // Prometheus keeps every value as an f64: i64::MAX rounds up to 2^63.
        assert!(text.contains("g 9223372036854776000\n"), "{text}");
    }

    #[test]
    fn bad_names_and_mismatched_samples_are_errors() {
        assert!(encode(&[Metric::counter("bad name", "B.", 1)]).is_err());
        assert!(encode(&[Metric::counter("ok", "O.", 1).with_label("bad-label", "v")]).is_err());
        let mismatched = [Metric::counter("m", "M.", 1), Metric::gauge("m", "M.", 1)];
        assert!(encode(&mismatched).is_err());
        let mismatched = [
            Metric::counter("m", "M.", 1).with_label("a", "1"),
            Metric::counter("m", "M.", 1),
        ];
        assert!(encode(&mismatched).is_err());
    }

    #[test]
    fn nothing_encodes_as_nothing() {
        assert_eq!(encode(&[]).unwrap(), "");
    }
}
