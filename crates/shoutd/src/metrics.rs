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
    vec![
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
            "UDP datagrams not answered: the service declined, the reply did not fit, or the send queue was full.",
            stats.datagrams_dropped,
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
    ]
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
            tls_handshakes_completed: 13,
            tls_handshakes_failed: 14,
            tls_handshake_timeouts: 15,
            tls_truncated: 16,
        };
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
        assert_eq!(value("shout_tls_handshakes_completed_total"), 13);
        assert_eq!(value("shout_tls_handshakes_failed_total"), 14);
        assert_eq!(value("shout_tls_handshake_timeouts_total"), 15);
        assert_eq!(value("shout_tls_truncated_total"), 16);
        assert_eq!(snapshot(&stats).len(), 15);
        shout_metrics::encode(&snapshot(&stats)).expect("valid names");
    }
}
