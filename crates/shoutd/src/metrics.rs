//! `--metrics ADDR`: the server's counters ([`shout_server::Stats`]) served
//! as Prometheus metrics by `shout_metrics`. This module is only the
//! mapping: names, kinds and help texts; the endpoint and its limits are the
//! library's.

use shout_metrics::{Limits, Metric, MetricsEndpoint, MetricsError};
use shout_server::{Handle, Stats, TURN_BUCKETS};
use std::io::ErrorKind;
use std::net::SocketAddr;

/// Serves `handle`'s counters at `http://ADDR/metrics`, read afresh at each
/// scrape. A port in use is said as the other listeners say it.
pub(crate) fn serve(addr: SocketAddr, handle: Handle) -> Result<MetricsEndpoint, String> {
    MetricsEndpoint::start(addr, Limits::default(), move || snapshot(&handle.stats())).map_err(
        |error| match error {
            MetricsError::Bind { addr, source } if source.kind() == ErrorKind::AddrInUse => {
                format!("metrics {addr} is already in use — is another shoutd running?")
            }
            error => error.to_string(),
        },
    )
}

/// Every counter of `stats` under the names its table gives
/// ([`shout_server::COUNTERS`]), the connections open now as a gauge, and
/// the turn-time buckets.
fn snapshot(stats: &Stats) -> Vec<Metric> {
    let mut metrics = Vec::with_capacity(shout_server::COUNTERS.len() + 2 + TURN_BUCKETS);
    for (counter, value) in stats.counters() {
        for exposure in counter.exposures {
            let metric = Metric::counter(exposure.name, exposure.help(counter.help()), value);
            metrics.push(match exposure.label {
                Some((name, label)) => metric.with_label(name, label),
                None => metric,
            });
        }
    }
    metrics.push(Metric::gauge(
        "shout_connections_open",
        "TCP connections open now.",
        stats.connections_open(),
    ));
    metrics.push(Metric::gauge(
        "shout_quic_connections_open",
        "QUIC connections open now: handshakes completed minus connections closed.",
        stats.quic_connections_open(),
    ));
    // A histogram in counter form (shout_metrics has no histogram type):
    // cumulative, as Prometheus buckets are. Its label is not `le`, which
    // Prometheus reserves for histograms.
    let mut within = 0;
    for (bucket, count) in stats.turn_durations.iter().enumerate() {
        within += count;
        let at_most = if bucket + 1 == stats.turn_durations.len() {
            "inf".to_string()
        } else {
            (1u64 << bucket).to_string()
        };
        metrics.push(
            Metric::counter(
                "shout_loop_turns_within_total",
                "Event-loop turns whose work took at most at_most_us microseconds (powers of 2).",
                within,
            )
            .with_label("at_most_us", at_most),
        );
    }
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_exposed_once_under_each_of_its_names() {
        // Non-exhaustive: built field by field.
        let mut stats = Stats::default();
        stats.connections_accepted = 11;
        stats.connections_closed = 4;
        stats.bytes_in = 5;
        stats.idle_timeouts = 3;
        stats.closed_by_reset = 15;
        stats.datagrams_rate_limited = 24;
        stats.datagrams_from_reserved_port = 33;
        stats.loop_turns = 26;
        stats.quic_handshakes_completed = 9;
        stats.quic_connections_closed = 2;
        stats.turn_durations = [1; TURN_BUCKETS];
        let snapshot = snapshot(&stats);
        let found = |name: &str, label: Option<(&str, &str)>| {
            let found: Vec<u64> = snapshot
                .iter()
                .filter(|metric| {
                    metric.name == name
                        && metric.labels.first().map(|(n, v)| (*n, v.as_str())) == label
                })
                .map(|metric| metric.value)
                .collect();
            assert_eq!(found.len(), 1, "{name} {label:?}");
            found[0]
        };
        for (counter, value) in stats.counters() {
            for exposure in counter.exposures {
                assert_eq!(found(exposure.name, exposure.label), value, "{exposure:?}");
            }
        }
        let by_cause = "shout_connections_closed_by_cause_total";
        assert_eq!(found(by_cause, Some(("cause", "reset"))), 15);
        assert_eq!(found(by_cause, Some(("cause", "idle_timeout"))), 3);
        assert_eq!(found("shout_idle_timeouts_total", None), 3);
        let dropped = "shout_datagrams_dropped_by_cause_total";
        assert_eq!(found(dropped, Some(("cause", "rate_limited"))), 24);
        assert_eq!(found(dropped, Some(("cause", "reserved_port"))), 33);
        assert_eq!(found("shout_bytes_received_total", None), 5);
        assert_eq!(found("shout_connections_open", None), 7);
        assert_eq!(found("shout_quic_connections_open", None), 7);
        assert_eq!(found("shout_loop_turns_total", None), 26);
        let within = "shout_loop_turns_within_total";
        assert_eq!(found(within, Some(("at_most_us", "1"))), 1);
        assert_eq!(found(within, Some(("at_most_us", "2"))), 2);
        assert_eq!(found(within, Some(("at_most_us", "16384"))), 15);
        assert_eq!(found(within, Some(("at_most_us", "inf"))), 16);
        let exposures: usize = shout_server::COUNTERS
            .iter()
            .map(|counter| counter.exposures.len())
            .sum();
        assert_eq!(snapshot.len(), exposures + 2 + 16);
        shout_metrics::encode(&snapshot).expect("valid names, one help per family");
    }
}
