//! What the lecture predicts for each way, from the round-trip time RTT,
//! the rate R, the object count N, the object size L, the parallel
//! connections k and the lookup time DNS.
//!
//! The derivations, one per way. "One RTT" is a message there and its
//! answer back; L/R is the time L bytes take to leave at rate R.
//!
//! Over TCP an object is sent as a request of L bytes and answered as L
//! bytes. The link carries each direction at its own rate R (a real link
//! is full duplex, and so is `shout link`), and the server answers each
//! segment as soon as it comes. So the answer streams back while the
//! request is still going out: the last byte back comes about L/R after
//! the first byte left, plus one RTT, plus one segment's time (ignored
//! here). The echo's bytes go both ways, but the two transfers overlap:
//! an object costs L/R, not 2L/R.
//!
//! - **Non-persistent**, one at a time: each object pays a handshake (one
//!   RTT: SYN out, SYN-ACK back; the request leaves with the ACK), then
//!   the request and its answer (one RTT and L/R). So
//!   `DNS + N × (2 RTT + L/R)`.
//! - **Parallel**, k connections at a time: the objects go in ⌈N/k⌉
//!   rounds, each round paying the handshake and the request's round trip
//!   once for its k objects. The k connections share the link, so the
//!   bytes of all N objects still take N × L/R in all, however they are
//!   spread: `DNS + ⌈N/k⌉ × 2 RTT + N × L/R`.
//! - **Persistent**, one request at a time: one handshake, then each
//!   object costs its request's round trip and its transfer:
//!   `DNS + RTT + N × (RTT + L/R)`.
//! - **Pipelined**: one handshake, then every request leaves at once. The
//!   first answer starts back one RTT later, and from then on the link is
//!   never idle: `DNS + RTT + RTT + N × L/R`.
//!
//! TLS 1.3 adds one RTT to each new connection (ClientHello out, the
//! server's flight back; the client's Finished leaves with the request):
//! one per object non-persistent, one per round in parallel, one in all
//! for persistent and pipelined.
//!
//! QUIC's handshake carries TLS 1.3's: one RTT opens a connection, as
//! TCP's handshake alone does, so QUIC's predictions are TCP's without
//! TLS. Its objects each take a stream, and the pipelined streams share
//! the link as pipelined requests share a TCP connection.
//!
//! Over UDP there is no handshake, and a datagram is answered only once
//! all of it came: the answer cannot overlap the request, so each
//! exchange costs RTT + 2L/R. Non-persistent (a new socket per object)
//! and persistent cost the same, `DNS + N × (RTT + 2L/R)`. Parallel: each
//! round of k sends k requests at once, whose answers overlap the later
//! requests, `DNS + ⌈N/k⌉ × (RTT + L/R) + N × L/R`. Pipelined:
//! `DNS + RTT + (N + 1) × L/R`, the last answer leaving after the last
//! request came.

use super::Rate;
use crate::Transport;
use std::time::Duration;

/// The lecture's prediction for one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// The formula, in the lecture's symbols: `DNS + N × (2 RTT + L/R)`.
    pub formula: String,
    /// The formula with the measured values put in, in milliseconds.
    pub worked: String,
    /// The predicted total.
    pub predicted: Duration,
}

/// What a prediction is computed from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    pub(super) transport: Transport,
    pub(super) tls: bool,
    pub(super) objects: u32,
    pub(super) size: u64,
    pub(super) parallel: u64,
    pub(super) rtt: Duration,
    pub(super) rate: Rate,
    pub(super) dns: Duration,
}

/// Returns the lecture's prediction for `way` over `link`; the module's
/// documentation derives each formula.
pub(super) fn predict(way: super::Way, link: &Link) -> Prediction {
    use super::Way;
    let n = f64::from(link.objects);
    let rounds = u64::from(link.objects).div_ceil(link.parallel) as f64;
    let rtt = ms(link.rtt);
    let t = ms(link.rate.transmission(link.size));
    let dns = ms(link.dns);
    // The round trips a new connection costs before its answer starts:
    // the handshake, TLS's flight, the request.
    let (per_connection, rtts) = if link.tls {
        (3.0, "3 RTT")
    } else {
        (2.0, "2 RTT")
    };
    let (formula, worked, predicted) = match (link.transport, way) {
        (Transport::Tcp, Way::NonPersistent) => (
            format!("DNS + N × ({rtts} + L/R)"),
            format!("{dns:.3} + {n} × ({per_connection} × {rtt:.3} + {t:.3})"),
            dns + n * (per_connection * rtt + t),
        ),
        (Transport::Tcp, Way::Parallel) => (
            format!("DNS + ⌈N/k⌉ × {rtts} + N × L/R"),
            format!("{dns:.3} + {rounds} × {per_connection} × {rtt:.3} + {n} × {t:.3}"),
            dns + rounds * per_connection * rtt + n * t,
        ),
        (Transport::Tcp, Way::Persistent) => (
            format!("DNS + {} + N × (RTT + L/R)", setup(link.tls)),
            format!(
                "{dns:.3} + {} × {rtt:.3} + {n} × ({rtt:.3} + {t:.3})",
                per_connection - 1.0
            ),
            dns + (per_connection - 1.0) * rtt + n * (rtt + t),
        ),
        (Transport::Tcp, Way::Pipelined) => (
            format!("DNS + {} + RTT + N × L/R", setup(link.tls)),
            format!("{dns:.3} + {per_connection} × {rtt:.3} + {n} × {t:.3}"),
            dns + per_connection * rtt + n * t,
        ),
        (Transport::Udp, Way::NonPersistent | Way::Persistent) => (
            "DNS + N × (RTT + 2L/R)".to_owned(),
            format!("{dns:.3} + {n} × ({rtt:.3} + 2 × {t:.3})"),
            dns + n * (rtt + 2.0 * t),
        ),
        (Transport::Udp, Way::Parallel) => (
            "DNS + ⌈N/k⌉ × (RTT + L/R) + N × L/R".to_owned(),
            format!("{dns:.3} + {rounds} × ({rtt:.3} + {t:.3}) + {n} × {t:.3}"),
            dns + rounds * (rtt + t) + n * t,
        ),
        (Transport::Udp, Way::Pipelined) => (
            "DNS + RTT + (N + 1) × L/R".to_owned(),
            format!("{dns:.3} + {rtt:.3} + {} × {t:.3}", n + 1.0),
            dns + rtt + (n + 1.0) * t,
        ),
    };
    Prediction {
        formula,
        worked: format!("{worked} = {predicted:.3} ms"),
        predicted: Duration::from_secs_f64(predicted.max(0.0) / 1e3),
    }
}

/// The round trips that open a connection before its first request: the
/// TCP handshake, and TLS's.
fn setup(tls: bool) -> &'static str {
    if tls { "2 RTT" } else { "RTT" }
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::super::Way;
    use super::*;

    /// The link: RTT 40 ms, 20 Mbit/s, 10 objects of 10 KB (4 ms
    /// each at that rate), 6 at a time, no DNS time.
    fn link(transport: Transport, tls: bool) -> Link {
        Link {
            transport,
            tls,
            objects: 10,
            size: 10_000,
            parallel: 6,
            rtt: Duration::from_millis(40),
            rate: "20mbit".parse().unwrap(),
            dns: Duration::ZERO,
        }
    }

    fn predicted_ms(way: Way, link: &Link) -> f64 {
        (predict(way, link).predicted.as_secs_f64() * 1e3 * 1e3).round() / 1e3
    }

    #[test]
    fn tcp_as_the_lecture_counts() {
        let tcp = link(Transport::Tcp, false);
        // 10 × (80 + 4)
        assert_eq!(predicted_ms(Way::NonPersistent, &tcp), 840.0);
        // 2 rounds × 80 + 40
        assert_eq!(predicted_ms(Way::Parallel, &tcp), 200.0);
        // 40 + 10 × 44
        assert_eq!(predicted_ms(Way::Persistent, &tcp), 480.0);
        // 80 + 40
        assert_eq!(predicted_ms(Way::Pipelined, &tcp), 120.0);
        let prediction = predict(Way::NonPersistent, &tcp);
        assert_eq!(prediction.formula, "DNS + N × (2 RTT + L/R)");
        assert_eq!(
            prediction.worked,
            "0.000 + 10 × (2 × 40.000 + 4.000) = 840.000 ms"
        );
    }

    #[test]
    fn tls_adds_one_rtt_per_new_connection() {
        let tcp = link(Transport::Tcp, false);
        let tls = link(Transport::Tcp, true);
        let added = |way| predicted_ms(way, &tls) - predicted_ms(way, &tcp);
        assert_eq!(added(Way::NonPersistent), 10.0 * 40.0);
        assert_eq!(added(Way::Parallel), 2.0 * 40.0);
        assert_eq!(added(Way::Persistent), 40.0);
        assert_eq!(added(Way::Pipelined), 40.0);
        assert_eq!(
            predict(Way::Persistent, &tls).formula,
            "DNS + 2 RTT + N × (RTT + L/R)"
        );
    }

    #[test]
    fn udp_has_no_handshake_and_no_overlap_within_a_datagram() {
        let udp = link(Transport::Udp, false);
        assert_eq!(predicted_ms(Way::NonPersistent, &udp), 480.0);
        assert_eq!(predicted_ms(Way::Persistent, &udp), 480.0);
        // 2 × 44 + 40
        assert_eq!(predicted_ms(Way::Parallel, &udp), 128.0);
        // 40 + 11 × 4
        assert_eq!(predicted_ms(Way::Pipelined, &udp), 84.0);
    }

    #[test]
    fn the_lookup_is_added_once() {
        let mut tcp = link(Transport::Tcp, false);
        tcp.dns = Duration::from_millis(5);
        assert_eq!(predicted_ms(Way::NonPersistent, &tcp), 845.0);
        assert_eq!(predicted_ms(Way::Pipelined, &tcp), 125.0);
    }
}
