//! `--metrics ADDR`: the server's counters ([`shout_server::Stats`]) served
//! as Prometheus metrics by `shout_metrics`. This module is only the
//! mapping: names, kinds and help texts; the endpoint and its limits are the
//! library's.

use shout_metrics::{Limits, Metric, MetricsEndpoint, MetricsError};
use shout_server::{Handle, Stats};
use std::net::SocketAddr;

/// Serves `handle`'s counters at `http://ADDR/metrics`, read afresh at each
/// scrape.
pub(crate) fn serve(addr: SocketAddr, handle: Handle) -> Result<MetricsEndpoint, MetricsError> {
    MetricsEndpoint::start(addr, Limits::default(), move || snapshot(&handle.stats()))
}

/// Every counter of `stats`, named by the Prometheus conventions: a
/// `shout_` prefix, `_total` on counters, base units.
fn snapshot(stats: &Stats) -> Vec<Metric> {
    let mut metrics = vec![
        Metric::counter(
            "shout_connections_accepted_total",
            "TCP connections accepted and served.",
            stats.connections_accepted,
        ),
        Metric::counter(
            "shout_connections_closed_total",
            "TCP connections closed, for any reason.",
            stats.connections_closed,
        ),
        Metric::counter(
            "shout_connections_refused_per_source_total",
            "TCP connections closed at once because their source held its share (--max-connections-per-ip).",
            stats.connections_refused_per_source,
        ),
        Metric::gauge(
            "shout_connections_open",
            "TCP connections open now.",
            stats.connections_open(),
        ),
        Metric::counter(
            "shout_connections_shed_total",
            "TCP connections accepted and closed at once because the process was out of file descriptors.",
            stats.connections_shed,
        ),
        Metric::counter(
            "shout_idle_timeouts_total",
            "TCP connections closed by the idle timeout.",
            stats.idle_timeouts,
        ),
        Metric::counter(
            "shout_bytes_received_total",
            "TCP bytes received.",
            stats.bytes_in,
        ),
        Metric::counter("shout_bytes_sent_total", "TCP bytes sent.", stats.bytes_out),
        Metric::counter(
            "shout_datagrams_received_total",
            "UDP datagrams received.",
            stats.datagrams_in,
        ),
        Metric::counter(
            "shout_datagrams_sent_total",
            "UDP replies sent.",
            stats.datagrams_out,
        ),
        Metric::counter(
            "shout_datagrams_dropped_total",
            "UDP datagrams not answered, for any reason.",
            stats.datagrams_dropped,
        ),
        Metric::counter(
            "shout_loop_turns_total",
            "Event-loop turns, over all workers.",
            stats.loop_turns,
        ),
        Metric::counter(
            "shout_service_panics_total",
            "Service callbacks that panicked; each cost one connection or one datagram.",
            stats.service_panics,
        ),
        Metric::counter(
            "shout_tls_handshakes_completed_total",
            "TLS handshakes completed: connections handed to the service.",
            stats.tls_handshakes_completed,
        ),
        Metric::counter(
            "shout_tls_handshakes_failed_total",
            "TLS handshakes that failed: bad or non-TLS input, a client gone, or the handshake deadline.",
            stats.tls_handshakes_failed,
        ),
        Metric::counter(
            "shout_tls_handshake_timeouts_total",
            "TLS handshakes cut at the handshake deadline (counted as failed too).",
            stats.tls_handshake_timeouts,
        ),
        Metric::counter(
            "shout_tls_truncated_total",
            "TLS connections whose TCP stream ended without a close_notify.",
            stats.tls_truncated,
        ),
        Metric::counter(
            "shout_proxy_headers_rejected_total",
            "Connections closed unanswered for their PROXY header: an untrusted sender, a malformed or oversized header, or none in time.",
            stats.proxy_headers_rejected,
        ),
    ];
    let closed = [
        ("client", stats.closed_by_client),
        ("reset", stats.closed_by_reset),
        ("error", stats.closed_by_error),
        ("idle_timeout", stats.idle_timeouts),
        ("stop", stats.closed_by_stop),
        ("service", stats.closed_by_service),
        ("panic", stats.closed_by_panic),
    ];
    metrics.extend(by_cause(
        "shout_connections_closed_by_cause_total",
        "TCP connections closed, by why.",
        closed,
    ));
    let dropped = [
        ("declined", stats.datagrams_declined),
        ("too_large", stats.datagrams_too_large),
        ("queue_full", stats.datagrams_queue_full),
        ("send_failed", stats.datagrams_send_failed),
        ("rate_limited", stats.datagrams_rate_limited),
        ("stop", stats.datagrams_unsent_at_stop),
        ("server_port", stats.datagrams_from_server_port),
        ("reserved_port", stats.datagrams_from_reserved_port),
    ];
    metrics.extend(by_cause(
        "shout_datagrams_dropped_by_cause_total",
        "UDP datagrams not answered, by why.",
        dropped,
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

/// Returns one counter family labelled `cause`, a sample per cause.
fn by_cause<const N: usize>(
    name: &'static str,
    help: &'static str,
    causes: [(&'static str, u64); N],
) -> impl Iterator<Item = Metric> {
    causes
        .into_iter()
        .map(move |(cause, value)| Metric::counter(name, help, value).with_label("cause", cause))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_exposed_once_under_its_name() {
        // Every field named, so that a new counter fails to compile here
        // until it is exposed too.
        let stats = Stats {
            connections_accepted: 11,
            connections_closed: 4,
            connections_shed: 2,
            idle_timeouts: 3,
            bytes_in: 5,
            bytes_out: 6,
            datagrams_in: 8,
            datagrams_out: 9,
            datagrams_dropped: 10,
            service_panics: 12,
            connections_refused_per_source: 13,
            closed_by_client: 14,
            closed_by_reset: 15,
            closed_by_error: 16,
            closed_by_stop: 17,
            closed_by_service: 18,
            closed_by_panic: 19,
            datagrams_declined: 20,
            datagrams_too_large: 21,
            datagrams_queue_full: 22,
            datagrams_send_failed: 23,
            datagrams_rate_limited: 24,
            datagrams_unsent_at_stop: 25,
            datagrams_from_server_port: 32,
            datagrams_from_reserved_port: 33,
            loop_turns: 26,
            turn_durations: [1; shout_server::TURN_BUCKETS],
            tls_handshakes_completed: 27,
            tls_handshakes_failed: 28,
            tls_handshake_timeouts: 29,
            tls_truncated: 30,
            proxy_headers_rejected: 31,
        };
        let labelled = |name: &str, label: &str| {
            let found: Vec<u64> = snapshot(&stats)
                .iter()
                .filter(|metric| metric.name == name && metric.labels[0].1 == label)
                .map(|metric| metric.value)
                .collect();
            assert_eq!(found.len(), 1, "{name}{{{label}}}");
            found[0]
        };
        let by_cause = "shout_connections_closed_by_cause_total";
        assert_eq!(labelled(by_cause, "client"), 14);
        assert_eq!(labelled(by_cause, "reset"), 15);
        assert_eq!(labelled(by_cause, "error"), 16);
        assert_eq!(labelled(by_cause, "idle_timeout"), 3);
        assert_eq!(labelled(by_cause, "stop"), 17);
        assert_eq!(labelled(by_cause, "service"), 18);
        assert_eq!(labelled(by_cause, "panic"), 19);
        let dropped = "shout_datagrams_dropped_by_cause_total";
        assert_eq!(labelled(dropped, "declined"), 20);
        assert_eq!(labelled(dropped, "too_large"), 21);
        assert_eq!(labelled(dropped, "queue_full"), 22);
        assert_eq!(labelled(dropped, "send_failed"), 23);
        assert_eq!(labelled(dropped, "rate_limited"), 24);
        assert_eq!(labelled(dropped, "stop"), 25);
        assert_eq!(labelled(dropped, "server_port"), 32);
        assert_eq!(labelled(dropped, "reserved_port"), 33);
        let within = "shout_loop_turns_within_total";
        assert_eq!(labelled(within, "1"), 1);
        assert_eq!(labelled(within, "2"), 2);
        assert_eq!(labelled(within, "16384"), 15);
        assert_eq!(labelled(within, "inf"), 16);
        let value = |name: &str| {
            let found: Vec<u64> = snapshot(&stats)
                .iter()
                .filter(|metric| metric.name == name)
                .map(|metric| metric.value)
                .collect();
            assert_eq!(found.len(), 1, "{name}");
            found[0]
        };
        assert_eq!(value("shout_connections_accepted_total"), 11);
        assert_eq!(value("shout_connections_closed_total"), 4);
        assert_eq!(value("shout_connections_open"), 7);
        assert_eq!(value("shout_connections_shed_total"), 2);
        assert_eq!(value("shout_idle_timeouts_total"), 3);
        assert_eq!(value("shout_bytes_received_total"), 5);
        assert_eq!(value("shout_bytes_sent_total"), 6);
        assert_eq!(value("shout_datagrams_received_total"), 8);
        assert_eq!(value("shout_datagrams_sent_total"), 9);
        assert_eq!(value("shout_datagrams_dropped_total"), 10);
        assert_eq!(value("shout_service_panics_total"), 12);
        assert_eq!(value("shout_connections_refused_per_source_total"), 13);
        assert_eq!(value("shout_loop_turns_total"), 26);
        assert_eq!(value("shout_tls_handshakes_completed_total"), 27);
        assert_eq!(value("shout_tls_handshakes_failed_total"), 28);
        assert_eq!(value("shout_tls_handshake_timeouts_total"), 29);
        assert_eq!(value("shout_tls_truncated_total"), 30);
        assert_eq!(value("shout_proxy_headers_rejected_total"), 31);
        assert_eq!(snapshot(&stats).len(), 18 + 7 + 8 + 16);
        shout_metrics::encode(&snapshot(&stats)).expect("valid names");
    }
}
