//! The running server seen from outside: its addresses, its counters, and a
//! way to stop it from any thread.

use crate::sender::ConnectionSender;
use crate::service::CloseCause;
use mio::Waker;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Counters one worker updates; read by [`Handle::stats`] from any thread.
///
/// Each worker has its own, so no cache line is shared between workers on the
/// hot path; `Relaxed` suffices because readers only want totals.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_closed: AtomicU64,
    pub(crate) connections_shed: AtomicU64,
    pub(crate) idle_timeouts: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) datagrams_dropped: AtomicU64,
    pub(crate) service_panics: AtomicU64,
    pub(crate) connections_refused_per_source: AtomicU64,
    pub(crate) closed_by_client: AtomicU64,
    pub(crate) closed_by_reset: AtomicU64,
    pub(crate) closed_by_error: AtomicU64,
    pub(crate) closed_by_stop: AtomicU64,
    pub(crate) closed_by_service: AtomicU64,
    pub(crate) closed_by_panic: AtomicU64,
    pub(crate) datagrams_declined: AtomicU64,
    pub(crate) datagrams_too_large: AtomicU64,
    pub(crate) datagrams_queue_full: AtomicU64,
    pub(crate) datagrams_send_failed: AtomicU64,
    pub(crate) datagrams_rate_limited: AtomicU64,
    pub(crate) datagrams_unsent_at_stop: AtomicU64,
    pub(crate) datagrams_from_server_port: AtomicU64,
    pub(crate) datagrams_from_reserved_port: AtomicU64,
    pub(crate) loop_turns: AtomicU64,
    pub(crate) turn_durations: [AtomicU64; TURN_BUCKETS],
    pub(crate) tls_handshakes_completed: AtomicU64,
    pub(crate) tls_handshakes_failed: AtomicU64,
    pub(crate) tls_handshake_timeouts: AtomicU64,
    pub(crate) tls_truncated: AtomicU64,
    pub(crate) proxy_headers_rejected: AtomicU64,
}

/// Buckets of [`Stats::turn_durations`].
pub const TURN_BUCKETS: usize = 16;

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
        };
        Self::add(counter, 1);
    }

    /// Counts a datagram not answered; `cause` is one of the
    /// `datagrams_*` counters that say why.
    pub(crate) fn note_dropped(cause: &AtomicU64, count: u64, total: &AtomicU64) {
        Self::add(total, count);
        Self::add(cause, count);
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

/// A snapshot of the server's counters, summed over workers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections accepted and served.
    pub connections_accepted: u64,
    /// TCP connections closed, for any reason.
    pub connections_closed: u64,
    /// Connections accepted and closed at once because the process was out
    /// of file descriptors.
    pub connections_shed: u64,
    /// Connections closed by the idle timeout.
    pub idle_timeouts: u64,
    /// TCP bytes received.
    pub bytes_in: u64,
    /// TCP bytes sent.
    pub bytes_out: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Replies sent.
    pub datagrams_out: u64,
    /// Datagrams not answered, for any reason: the sum of the
    /// `datagrams_*` causes below.
    pub datagrams_dropped: u64,
    /// Service callbacks that panicked: each cost one connection, or one
    /// datagram.
    pub service_panics: u64,
    /// Connections closed at once on accept because their source already
    /// held its share (`max_connections_per_source`). At the server-wide
    /// cap nothing is refused: the listeners pause and clients wait.
    pub connections_refused_per_source: u64,
    /// Connections closed after the client ended its stream.
    pub closed_by_client: u64,
    /// Connections the client reset, or that broke.
    pub closed_by_reset: u64,
    /// Connections closed by another I/O error.
    pub closed_by_error: u64,
    /// Connections closed by the stop (the drain).
    pub closed_by_stop: u64,
    /// Connections the service closed.
    pub closed_by_service: u64,
    /// Connections closed because a service callback panicked.
    pub closed_by_panic: u64,
    /// Datagrams the service declined to answer (for the shout service, a
    /// reply over 65,507 bytes); its panics count here too.
    pub datagrams_declined: u64,
    /// Replies over 65,507 bytes, the most a UDP datagram carries, that the
    /// loop did not send.
    pub datagrams_too_large: u64,
    /// Replies dropped because the socket's send queue was full.
    pub datagrams_queue_full: u64,
    /// Replies the kernel refused to send.
    pub datagrams_send_failed: u64,
    /// Replies not sent because their source was over its reply rate
    /// (`udp_rate_per_source`).
    pub datagrams_rate_limited: u64,
    /// Replies still queued when the server stopped.
    pub datagrams_unsent_at_stop: u64,
    /// Datagrams not answered because their source port is one a server of
    /// this protocol answers on (this server's, or 12000): the answer could
    /// start an endless loop between two servers.
    pub datagrams_from_server_port: u64,
    /// Datagrams not answered because their source port is a well-known
    /// port (below 1024) or a known reflecting service's (SSDP, mDNS,
    /// memcached and the like): no client sends from one.
    pub datagrams_from_reserved_port: u64,
    /// Turns of the event loop: one per wake-up.
    pub loop_turns: u64,
    /// Turns by how long their work took (not the wait before it): entry
    /// `i` counts turns shorter than 2^i µs, the last entry every longer
    /// one.
    pub turn_durations: [u64; TURN_BUCKETS],
    /// TLS handshakes completed: connections handed to the service.
    pub tls_handshakes_completed: u64,
    /// TLS handshakes that failed: bad or non-TLS input, an alert from the
    /// client, a close or the handshake deadline before the end.
    pub tls_handshakes_failed: u64,
    /// TLS handshakes cut at the handshake deadline (counted as failed too).
    pub tls_handshake_timeouts: u64,
    /// TLS connections whose TCP stream ended without a close_notify.
    pub tls_truncated: u64,
    /// Connections on a PROXY protocol listener closed unanswered: an
    /// untrusted sender, a malformed or oversized header, or no whole
    /// header by the deadline or the client's end.
    pub proxy_headers_rejected: u64,
}

impl Stats {
    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections_accepted
            .saturating_sub(self.connections_closed)
    }

    fn sum(workers: &[Arc<WorkerStats>]) -> Self {
        let mut total = Self::default();
        for worker in workers {
            let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
            total.connections_accepted += read(&worker.connections_accepted);
            total.connections_closed += read(&worker.connections_closed);
            total.connections_shed += read(&worker.connections_shed);
            total.idle_timeouts += read(&worker.idle_timeouts);
            total.bytes_in += read(&worker.bytes_in);
            total.bytes_out += read(&worker.bytes_out);
            total.datagrams_in += read(&worker.datagrams_in);
            total.datagrams_out += read(&worker.datagrams_out);
            total.datagrams_dropped += read(&worker.datagrams_dropped);
            total.service_panics += read(&worker.service_panics);
            total.connections_refused_per_source += read(&worker.connections_refused_per_source);
            total.closed_by_client += read(&worker.closed_by_client);
            total.closed_by_reset += read(&worker.closed_by_reset);
            total.closed_by_error += read(&worker.closed_by_error);
            total.closed_by_stop += read(&worker.closed_by_stop);
            total.closed_by_service += read(&worker.closed_by_service);
            total.closed_by_panic += read(&worker.closed_by_panic);
            total.datagrams_declined += read(&worker.datagrams_declined);
            total.datagrams_too_large += read(&worker.datagrams_too_large);
            total.datagrams_queue_full += read(&worker.datagrams_queue_full);
            total.datagrams_send_failed += read(&worker.datagrams_send_failed);
            total.datagrams_rate_limited += read(&worker.datagrams_rate_limited);
            total.datagrams_unsent_at_stop += read(&worker.datagrams_unsent_at_stop);
            total.datagrams_from_server_port += read(&worker.datagrams_from_server_port);
            total.datagrams_from_reserved_port += read(&worker.datagrams_from_reserved_port);
            total.loop_turns += read(&worker.loop_turns);
            for (sum, bucket) in total.turn_durations.iter_mut().zip(&worker.turn_durations) {
                *sum += read(bucket);
            }
            total.tls_handshakes_completed += read(&worker.tls_handshakes_completed);
            total.tls_handshakes_failed += read(&worker.tls_handshakes_failed);
            total.tls_handshake_timeouts += read(&worker.tls_handshake_timeouts);
            total.tls_truncated += read(&worker.tls_truncated);
            total.proxy_headers_rejected += read(&worker.proxy_headers_rejected);
        }
        total
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections ({} shed, {} idle timeouts), {} bytes in, {} bytes out, \
             {} datagrams in, {} out, {} dropped ({} rate limited, {} from server ports, \
             {} from reserved ports), {} service panics, \
             {} refused per source, {} TLS handshakes completed, {} failed ({} timed out), \
             {} TLS truncated, {} PROXY headers rejected",
            self.connections_accepted,
            self.connections_shed,
            self.idle_timeouts,
            self.bytes_in,
            self.bytes_out,
            self.datagrams_in,
            self.datagrams_out,
            self.datagrams_dropped,
            self.datagrams_rate_limited,
            self.datagrams_from_server_port,
            self.datagrams_from_reserved_port,
            self.service_panics,
            self.connections_refused_per_source,
            self.tls_handshakes_completed,
            self.tls_handshakes_failed,
            self.tls_handshake_timeouts,
            self.tls_truncated,
            self.proxy_headers_rejected
        )
    }
}

/// One waker per worker: how another thread gets a worker out of its poll.
#[derive(Debug)]
pub(crate) struct Wakers(Vec<Waker>);

impl Wakers {
    pub(crate) fn new(wakers: Vec<Waker>) -> Self {
        Self(wakers)
    }

    /// Wakes every worker; `why` is for the log if one cannot be woken.
    pub(crate) fn wake_all(&self, why: &str) {
        for index in 0..self.0.len() {
            self.wake(index, why);
        }
    }

    /// Wakes worker `index`, if there is one.
    pub(crate) fn wake(&self, index: usize, why: &str) {
        if let Some(Err(error)) = self.0.get(index).map(Waker::wake) {
            // The worker still sees why on its next timer or event.
            log::warn!("could not wake worker {index} ({why}): {error}");
        }
    }
}

/// The stop request, shared by the handle and every worker.
#[derive(Debug)]
pub(crate) struct ShutdownSignal {
    requested: AtomicBool,
    wakers: Arc<Wakers>,
}

impl ShutdownSignal {
    pub(crate) fn new(wakers: Arc<Wakers>) -> Self {
        Self {
            requested: AtomicBool::new(false),
            wakers,
        }
    }

    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    fn request(&self) {
        self.requested.store(true, Ordering::Release);
        self.wakers.wake_all("shutdown");
    }
}

/// A cheap, cloneable, thread-safe view of a built server.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) tcp_addrs: Vec<SocketAddr>,
    pub(crate) udp_addrs: Vec<SocketAddr>,
    pub(crate) tls_addrs: Vec<SocketAddr>,
    pub(crate) shutdown: Arc<ShutdownSignal>,
    pub(crate) stats: Vec<Arc<WorkerStats>>,
    pub(crate) sender: ConnectionSender,
}

impl Handle {
    /// The TCP addresses being served, with real ports where 0 was asked.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// The UDP addresses being served, with real ports where 0 was asked.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The TLS addresses being served, with real ports where 0 was asked.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// Asks the server to stop: it stops accepting, answers what it has
    /// received, flushes output for up to the drain timeout, and then
    /// [`Server::run`](crate::Server::run) returns. Returns at once; calling
    /// it again is harmless.
    pub fn shutdown(&self) {
        self.shutdown.request();
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_requested()
    }

    /// Returns a handle to write to, close or broadcast to the server's
    /// connections from any thread.
    pub fn sender(&self) -> ConnectionSender {
        self.sender.clone()
    }

    /// The counters so far, summed over workers.
    pub fn stats(&self) -> Stats {
        Stats::sum(&self.stats)
    }

    /// The counters so far of each worker, in worker order.
    pub fn worker_stats(&self) -> Vec<Stats> {
        self.stats
            .iter()
            .map(|worker| Stats::sum(std::slice::from_ref(worker)))
            .collect()
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
}
