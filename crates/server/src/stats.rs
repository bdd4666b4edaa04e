//! The server's counters, declared once.
//!
//! One table, [`counters!`], names each counter with its group, its doc,
//! the words the summary says it with and the Prometheus names it is
//! exposed under. From it come the per-worker atomics ([`WorkerStats`]),
//! the snapshot ([`Stats`]), the sum over workers, the summary
//! (`Display`) and the list an exporter walks ([`Stats::counters`]).
//! Adding a counter is one entry in the table.

use crate::service::CloseCause;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets of [`Stats::turn_durations`].
pub const TURN_BUCKETS: usize = 16;

/// What part of the server a counter is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CounterGroup {
    /// TCP connections and their bytes, TLS and PROXY ones included.
    Tcp,
    /// UDP datagrams.
    Udp,
    /// TLS handshakes and streams.
    Tls,
    /// PROXY protocol headers.
    Proxy,
    /// QUIC connections, their streams and packets.
    Quic,
    /// WebSocket upgrades, messages and close codes.
    WebSocket,
    /// The limits: descriptors, per-source shares, panics.
    Limits,
    /// The event loop itself.
    Loop,
}

impl CounterGroup {
    /// Returns the group's name as the summary writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Tls => "tls",
            Self::Proxy => "proxy",
            Self::Quic => "quic",
            Self::WebSocket => "websocket",
            Self::Limits => "limits",
            Self::Loop => "loop",
        }
    }
}

/// One name a counter is exposed under for Prometheus: a metric of its
/// own, or one sample of a family told apart by a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Exposure {
    /// The metric's name, `shout_..._total`.
    pub name: &'static str,
    /// The label that tells this sample from the family's others, if any.
    pub label: Option<(&'static str, &'static str)>,
}

impl Exposure {
    /// Returns the help text of the metric: the family's, for a labelled
    /// sample, or `own` (the counter's).
    pub fn help(&self, own: &'static str) -> &'static str {
        if self.label.is_none() {
            return own;
        }
        FAMILY_HELP
            .iter()
            .find(|(name, _)| *name == self.name)
            .map_or(own, |(_, help)| help)
    }
}

/// One counter as the table declares it.
#[derive(Debug, Clone, Copy)]
pub struct Counter {
    /// What it is about.
    pub group: CounterGroup,
    /// Its field in [`Stats`].
    pub field: &'static str,
    /// The words the summary says it with, after the figure.
    pub says: &'static str,
    /// The names it is exposed under.
    pub exposures: &'static [Exposure],
    doc: &'static str,
}

impl Counter {
    /// Returns what the counter counts: its doc, on one line.
    pub fn help(&self) -> &'static str {
        self.doc.trim()
    }
}

/// The help of each labelled family: one text for all its samples.
const FAMILY_HELP: &[(&str, &str)] = &[
    (
        "shout_connections_closed_by_cause_total",
        "TCP connections closed, by why.",
    ),
    (
        "shout_ws_close_codes_sent_total",
        "WebSocket close frames sent, by code.",
    ),
    (
        "shout_ws_close_codes_received_total",
        "WebSocket close frames received, by code.",
    ),
    (
        "shout_datagrams_dropped_by_cause_total",
        "UDP datagrams not answered, by why.",
    ),
];

macro_rules! exposure {
    ($name:literal) => {
        Exposure {
            name: $name,
            label: None,
        }
    };
    ($name:literal [$label:literal = $value:literal]) => {
        Exposure {
            name: $name,
            label: Some(($label, $value)),
        }
    };
}

/// Declares every counter: per group, each with its doc, its field, the
/// words of the summary and its Prometheus names.
macro_rules! counters {
    ($(
        $group:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident: $says:literal => $($name:literal $([$label:literal = $value:literal])?),+;
            )*
        }
    )*) => {
        /// Counters one worker updates; read by
        /// [`Handle::stats`](crate::Handle::stats) from any thread.
        ///
        /// Each worker has its own, so no cache line is shared between
        /// workers on the hot path; `Relaxed` suffices because readers only
        /// want totals.
        #[derive(Debug, Default)]
        pub(crate) struct WorkerStats {
            $($(pub(crate) $field: AtomicU64,)*)*
            pub(crate) turn_durations: [AtomicU64; TURN_BUCKETS],
        }

        /// A snapshot of the server's counters, summed over workers.
        ///
        /// [`Stats::counters`] walks them with their names; new counters
        /// come in new releases, so the struct is `#[non_exhaustive]`.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Stats {
            $($($(#[doc = $doc])* pub $field: u64,)*)*
            /// Turns by how long their work took (not the wait before it):
            /// entry `i` counts turns shorter than 2^i µs, the last entry
            /// every longer one.
            pub turn_durations: [u64; TURN_BUCKETS],
        }

        /// Every counter, in the order of the table.
        pub static COUNTERS: &[Counter] = &[$($(Counter {
            group: CounterGroup::$group,
            field: stringify!($field),
            says: $says,
            exposures: &[$(exposure!($name $([$label = $value])?)),+],
            doc: concat!($($doc),*),
        },)*)*];

        impl Stats {
            /// Sums the counters of `workers`.
            pub(crate) fn sum(workers: &[Arc<WorkerStats>]) -> Self {
                let mut total = Self::default();
                for worker in workers {
                    let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
                    $($(total.$field += read(&worker.$field);)*)*
                    for (sum, bucket) in total.turn_durations.iter_mut().zip(&worker.turn_durations) {
                        *sum += read(bucket);
                    }
                }
                total
            }

            /// Returns every counter with its value, in the order of
            /// [`COUNTERS`]: what an exporter walks.
            pub fn counters(&self) -> impl Iterator<Item = (&'static Counter, u64)> {
                COUNTERS.iter().zip([$($(self.$field,)*)*])
            }
        }
    };
}

counters! {
    Tcp {
        /// TCP connections accepted and served.
        connections_accepted: "connections" => "shout_connections_accepted_total";
        /// TCP connections closed, for any reason.
        connections_closed: "closed" => "shout_connections_closed_total";
        /// TCP bytes received.
        bytes_in: "bytes in" => "shout_bytes_received_total";
        /// TCP bytes sent.
        bytes_out: "bytes out" => "shout_bytes_sent_total";
        /// Connections closed after the client ended its stream.
        closed_by_client: "closed by the client" =>
            "shout_connections_closed_by_cause_total"["cause" = "client"];
        /// Connections the client reset, or that broke.
        closed_by_reset: "reset" => "shout_connections_closed_by_cause_total"["cause" = "reset"];
        /// Connections closed by another I/O error.
        closed_by_error: "broken by an error" =>
            "shout_connections_closed_by_cause_total"["cause" = "error"];
        /// Connections closed by the idle timeout.
        idle_timeouts: "idle timeouts" => "shout_idle_timeouts_total",
            "shout_connections_closed_by_cause_total"["cause" = "idle_timeout"];
        /// Connections closed at the linger timeout: their end of stream
        /// was sent (their session over), and the client never sent its
        /// own. Each is counted by its cause too (the service's close, or
        /// the stop).
        linger_timeouts: "linger timeouts" => "shout_linger_timeouts_total";
        /// Connections closed by the stop (the drain).
        closed_by_stop: "closed by the stop" =>
            "shout_connections_closed_by_cause_total"["cause" = "stop"];
        /// Connections the service closed.
        closed_by_service: "closed by the service" =>
            "shout_connections_closed_by_cause_total"["cause" = "service"];
        /// Connections closed because a service callback panicked.
        closed_by_panic: "closed by a panic" =>
            "shout_connections_closed_by_cause_total"["cause" = "panic"];
        /// Connections accepted, then refused by a limit before the service
        /// opened them (behind a PROXY balancer, a client over its share).
        closed_by_refusal: "refused" =>
            "shout_connections_closed_by_cause_total"["cause" = "refused"];
    }
    Udp {
        /// UDP datagrams received.
        datagrams_in: "datagrams in" => "shout_datagrams_received_total";
        /// UDP replies sent, and datagrams from a `DatagramSender`.
        datagrams_out: "out" => "shout_datagrams_sent_total";
        /// Datagrams a `DatagramSender` queued that the loop took to send;
        /// those it sent count in `datagrams_out` too, those it dropped (a
        /// source over its rate, a loop port, a full socket queue, a stop)
        /// in `datagrams_dropped`.
        datagrams_from_senders: "from senders" => "shout_datagrams_from_senders_total";
        /// UDP datagrams not answered, or from a `DatagramSender` not sent,
        /// for any reason: the sum of the drop causes.
        datagrams_dropped: "dropped" => "shout_datagrams_dropped_total";
        /// Datagrams the service declined to answer (for the shout service,
        /// a reply over 65,507 bytes); its panics count here too.
        datagrams_declined: "declined" =>
            "shout_datagrams_dropped_by_cause_total"["cause" = "declined"];
        /// Replies over 65,507 bytes, the most a UDP datagram carries, that
        /// the loop did not send.
        datagrams_too_large: "too large" =>
            "shout_datagrams_dropped_by_cause_total"["cause" = "too_large"];
        /// Replies dropped because the socket's send queue was full.
        datagrams_queue_full: "queue full" =>
            "shout_datagrams_dropped_by_cause_total"["cause" = "queue_full"];
        /// Replies the kernel refused to send.
        datagrams_send_failed: "send failed" =>
            "shout_datagrams_dropped_by_cause_total"["cause" = "send_failed"];
        /// Replies not sent because their source was over its reply rate
        /// (`udp_rate_per_source`).
        datagrams_rate_limited: "rate limited" =>
            "shout_datagrams_dropped_by_cause_total"["cause" = "rate_limited"];
        /// Replies larger than `udp_reply_ratio` times their request, not
        /// sent.
        datagrams_over_ratio: "over the reply ratio" =>
            "shout_datagrams_dropped_by_cause_total"["cause" = "over_ratio"];
        /// Replies still queued when the server stopped.
        datagrams_unsent_at_stop: "unsent at the stop" =>
            "shout_datagrams_dropped_by_cause_total"["cause" = "stop"];
        /// Datagrams not answered because their source is this server's own
        /// socket, or a port below 32768 that this server or a default shout
        /// server (12000) answers on: the answer could start an endless loop.
        datagrams_from_server_port: "from server ports" =>
            "shout_datagrams_dropped_by_cause_total"["cause" = "server_port"];
        /// Datagrams not answered because their source port is a well-known
        /// port (below 1024) or a known reflecting service's (SSDP, mDNS,
        /// memcached and the like): no client sends from one.
        datagrams_from_reserved_port: "from reserved ports" =>
            "shout_datagrams_dropped_by_cause_total"["cause" = "reserved_port"];
    }
    Tls {
        /// TLS handshakes completed: connections handed to the service.
        tls_handshakes_completed: "handshakes" => "shout_tls_handshakes_completed_total";
        /// TLS handshakes that failed: bad or non-TLS input, an alert from
        /// the client, a close, a reset or the handshake deadline before the
        /// end.
        tls_handshakes_failed: "failed" => "shout_tls_handshakes_failed_total";
        /// TLS handshakes cut at the handshake deadline (counted as failed
        /// too).
        tls_handshake_timeouts: "timed out" => "shout_tls_handshake_timeouts_total";
        /// TLS connections whose TCP stream ended without a close_notify.
        tls_truncated: "truncated" => "shout_tls_truncated_total";
    }
    Proxy {
        /// Connections on a PROXY protocol listener closed unanswered: an
        /// untrusted sender, a malformed or oversized header, or no whole
        /// header by the deadline or the client's end.
        proxy_headers_rejected: "headers rejected" => "shout_proxy_headers_rejected_total";
    }
    Quic {
        /// QUIC handshakes completed, counting a resumed client whose early
        /// (0-RTT) request was answered and which closed before the server
        /// saw its handshake end.
        quic_handshakes_completed: "handshakes" => "shout_quic_handshakes_completed_total";
        /// QUIC handshakes that failed: refused by the client or the
        /// server, broken, or cut at the handshake deadline.
        quic_handshakes_failed: "failed" => "shout_quic_handshakes_failed_total";
        /// QUIC clients refused before their handshake: at the connection
        /// cap, over their source's share, or while the server stops.
        quic_connections_refused: "refused" => "shout_quic_connections_refused_total";
        /// Retry packets sent to validate a client's address first.
        quic_retries_sent: "retries" => "shout_quic_retries_sent_total";
        /// QUIC streams opened by clients and handed to the service.
        quic_streams: "streams" => "shout_quic_streams_total";
        /// Bytes received on QUIC streams.
        quic_bytes_in: "bytes in" => "shout_quic_bytes_received_total";
        /// Bytes sent on QUIC streams.
        quic_bytes_out: "bytes out" => "shout_quic_bytes_sent_total";
        /// QUIC packets declared lost, over closed connections.
        quic_packets_lost: "packets lost" => "shout_quic_packets_lost_total";
        /// QUIC connections closed by their idle timeout: nothing came
        /// from the client for that long.
        quic_idle_timeouts: "idle timeouts" => "shout_quic_idle_timeouts_total";
        /// QUIC connections counted in `quic_handshakes_completed` that
        /// have closed since, once drained and forgotten.
        quic_connections_closed: "closed" => "shout_quic_connections_closed_total";
    }
    WebSocket {
        /// WebSocket upgrades done: connections handed to the service.
        ws_upgrades: "upgrades" => "shout_ws_upgrades_total";
        /// Requests on a WebSocket listener answered with an error (400,
        /// 403 for an origin not allowed, 404, 405, 426, 431), or ended by
        /// the client or the handshake deadline with part of a request. A
        /// connection that sends no byte made no request: not counted.
        ws_upgrades_refused: "refused" => "shout_ws_upgrades_refused_total";
        /// Pages served at `/`.
        ws_pages_served: "pages" => "shout_ws_pages_served_total";
        /// WebSocket data messages received whole.
        ws_messages_in: "messages in" => "shout_ws_messages_received_total";
        /// WebSocket data messages sent whole.
        ws_messages_out: "out" => "shout_ws_messages_sent_total";
        /// Close frames sent with 1000 (normal closure).
        ws_close_sent_1000: "close frames sent with 1000" =>
            "shout_ws_close_codes_sent_total"["code" = "1000"];
        /// Close frames sent with 1001 (going away: the server stops).
        ws_close_sent_1001: "with 1001" => "shout_ws_close_codes_sent_total"["code" = "1001"];
        /// Close frames sent with 1002 (protocol error).
        ws_close_sent_1002: "with 1002" => "shout_ws_close_codes_sent_total"["code" = "1002"];
        /// Close frames sent with 1007 (text that is not UTF-8).
        ws_close_sent_1007: "with 1007" => "shout_ws_close_codes_sent_total"["code" = "1007"];
        /// Close frames sent with 1009 (a message over the size limit).
        ws_close_sent_1009: "with 1009" => "shout_ws_close_codes_sent_total"["code" = "1009"];
        /// Close frames sent with another code (the client's, echoed).
        ws_close_sent_other: "with another code" => "shout_ws_close_codes_sent_total"["code" = "other"];
        /// Close frames received with 1000 (normal closure).
        ws_close_received_1000: "close frames received with 1000" =>
            "shout_ws_close_codes_received_total"["code" = "1000"];
        /// Close frames received with 1001 (going away: a page closed).
        ws_close_received_1001: "with 1001" =>
            "shout_ws_close_codes_received_total"["code" = "1001"];
        /// Close frames received with no code (1005 on the client's side,
        /// never on the wire).
        ws_close_received_none: "without a code" =>
            "shout_ws_close_codes_received_total"["code" = "none"];
        /// Close frames received with another code.
        ws_close_received_other: "with another code" =>
            "shout_ws_close_codes_received_total"["code" = "other"];
    }
    Limits {
        /// Connections accepted and closed at once because the process was
        /// out of file descriptors.
        connections_shed: "shed" => "shout_connections_shed_total";
        /// Connections closed because their source already held its share
        /// (`max_connections_per_source`; shoutd's `--max-connections-per-ip`):
        /// at accept, or behind a PROXY
        /// balancer once the header named the client. At the server-wide cap
        /// nothing is refused: the listeners pause and clients wait.
        connections_refused_per_source: "refused per source" =>
            "shout_connections_refused_per_source_total";
        /// Service callbacks that panicked: each cost one connection, or one
        /// datagram.
        service_panics: "service panics" => "shout_service_panics_total";
    }
    Loop {
        /// Turns of the event loop: one per wake-up.
        loop_turns: "turns" => "shout_loop_turns_total";
    }
}

impl WorkerStats {
    pub(crate) fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    /// Counts a connection closed for `cause`.
    pub(crate) fn note_close(&self, cause: CloseCause) {
        Self::add(&self.connections_closed, 1);
        let counter = match cause {
            CloseCause::ClientClosed => &self.closed_by_client,
            CloseCause::Reset => &self.closed_by_reset,
            CloseCause::Error(_) => &self.closed_by_error,
            CloseCause::IdleTimeout => &self.idle_timeouts,
            CloseCause::Stopped => &self.closed_by_stop,
            CloseCause::ServiceClosed => &self.closed_by_service,
            CloseCause::Panicked => &self.closed_by_panic,
            CloseCause::Refused => &self.closed_by_refusal,
        };
        Self::add(counter, 1);
    }

    /// Counts a datagram not answered; `cause` is one of the
    /// `datagrams_*` counters that say why.
    pub(crate) fn note_dropped(cause: &AtomicU64, count: u64, total: &AtomicU64) {
        Self::add(total, count);
        Self::add(cause, count);
    }

    /// Counts a WebSocket close frame sent with `code`.
    #[cfg(feature = "ws")]
    pub(crate) fn note_close_sent(&self, code: u16) {
        let counter = match code {
            1000 => &self.ws_close_sent_1000,
            1001 => &self.ws_close_sent_1001,
            1002 => &self.ws_close_sent_1002,
            1007 => &self.ws_close_sent_1007,
            1009 => &self.ws_close_sent_1009,
            _ => &self.ws_close_sent_other,
        };
        Self::add(counter, 1);
    }

    /// Counts a WebSocket close frame received with `code`, if it had one.
    #[cfg(feature = "ws")]
    pub(crate) fn note_close_received(&self, code: Option<u16>) {
        let counter = match code {
            Some(1000) => &self.ws_close_received_1000,
            Some(1001) => &self.ws_close_received_1001,
            None => &self.ws_close_received_none,
            Some(_) => &self.ws_close_received_other,
        };
        Self::add(counter, 1);
    }

    /// Counts one turn of the event loop that took `took`.
    pub(crate) fn note_turn(&self, took: Duration) {
        Self::add(&self.loop_turns, 1);
        Self::add(&self.turn_durations[turn_bucket(took)], 1);
    }
}

/// Returns the bucket of a turn that took `took`: bucket `i` holds turns
/// shorter than 2^i µs, the last every longer one.
pub(crate) fn turn_bucket(took: Duration) -> usize {
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    // Shorter than 2^i µs means micros < 2^i, i.e. 64 - leading_zeros <= i.
    ((u64::BITS - micros.leading_zeros()) as usize).min(TURN_BUCKETS - 1)
}

impl Stats {
    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections_accepted
            .saturating_sub(self.connections_closed)
    }

    /// QUIC connections open now: through their handshake and not yet
    /// forgotten (a closed connection is forgotten once drained, three
    /// probe timeouts after its close: each a round trip, four times its
    /// variation and the client's ack delay, 25 ms by default).
    pub fn quic_connections_open(&self) -> u64 {
        self.quic_handshakes_completed
            .saturating_sub(self.quic_connections_closed)
    }
}

/// Writes every counter, group by group: `tcp: 3 connections, 3 closed,
/// 5 bytes in, …; udp: 4 datagrams in, 4 out, …`.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut group = None;
        for (counter, value) in self.counters() {
            if group != Some(counter.group) {
                if group.is_some() {
                    f.write_str("; ")?;
                }
                write!(f, "{}: ", counter.group.name())?;
                group = Some(counter.group);
            } else {
                f.write_str(", ")?;
            }
            write!(f, "{value} {}", counter.says)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_fall_in_power_of_two_microsecond_buckets() {
        let micros = Duration::from_micros;
        assert_eq!(turn_bucket(Duration::ZERO), 0);
        assert_eq!(turn_bucket(Duration::from_nanos(999)), 0);
        assert_eq!(turn_bucket(micros(1)), 1);
        assert_eq!(turn_bucket(micros(2)), 2);
        assert_eq!(turn_bucket(micros(3)), 2);
        assert_eq!(turn_bucket(micros(4)), 3);
        assert_eq!(turn_bucket(micros((1 << 14) - 1)), 14);
        assert_eq!(turn_bucket(micros(1 << 14)), TURN_BUCKETS - 1);
        assert_eq!(turn_bucket(Duration::MAX), TURN_BUCKETS - 1);
    }

    #[test]
    fn every_counter_has_a_field_words_a_help_and_names_of_its_own() {
        let mut fields = std::collections::HashSet::new();
        let mut exposures = std::collections::HashSet::new();
        for counter in COUNTERS {
            assert!(fields.insert(counter.field), "{} twice", counter.field);
            assert!(!counter.says.is_empty(), "{}", counter.field);
            assert!(counter.help().ends_with('.'), "{}", counter.field);
            for exposure in counter.exposures {
                assert!(exposure.name.starts_with("shout_"), "{exposure:?}");
                assert!(exposure.name.ends_with("_total"), "{exposure:?}");
                assert!(exposures.insert(*exposure), "{exposure:?} twice");
                if exposure.label.is_some() {
                    assert_ne!(
                        exposure.help("own"),
                        "own",
                        "{exposure:?} has no family help"
                    );
                }
            }
        }
    }

    #[test]
    fn counters_walk_the_fields_in_order_and_the_summary_says_each() {
        let stats = Stats {
            bytes_in: 5,
            datagrams_out: 7,
            closed_by_stop: 11,
            loop_turns: 13,
            ..Stats::default()
        };
        let value = |field: &str| {
            stats
                .counters()
                .find(|(counter, _)| counter.field == field)
                .map(|(_, value)| value)
        };
        assert_eq!(value("bytes_in"), Some(5));
        assert_eq!(value("datagrams_out"), Some(7));
        assert_eq!(value("closed_by_stop"), Some(11));
        assert_eq!(value("loop_turns"), Some(13));
        assert_eq!(value("bytes_out"), Some(0));
        assert_eq!(stats.counters().count(), COUNTERS.len());
        let summary = stats.to_string();
        assert!(
            summary.starts_with("tcp: 0 connections, 0 closed, 5 bytes in"),
            "{summary}"
        );
        assert!(
            summary.contains("; udp: 0 datagrams in, 7 out, "),
            "{summary}"
        );
        assert!(summary.contains("11 closed by the stop"), "{summary}");
        assert!(summary.ends_with("; loop: 13 turns"), "{summary}");
    }

    #[test]
    fn the_sum_adds_every_workers_counters() {
        let workers: Vec<Arc<WorkerStats>> = (0..3).map(|_| Arc::default()).collect();
        for (index, worker) in workers.iter().enumerate() {
            WorkerStats::add(&worker.bytes_in, 10 * (index as u64 + 1));
            worker.note_close(CloseCause::Reset);
            worker.note_turn(Duration::from_micros(3));
        }
        let total = Stats::sum(&workers);
        assert_eq!(total.bytes_in, 60);
        assert_eq!(total.closed_by_reset, 3);
        assert_eq!(total.connections_closed, 3);
        assert_eq!(total.loop_turns, 3);
        assert_eq!(total.turn_durations[2], 3);
    }
}
