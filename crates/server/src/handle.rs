//! The running server seen from outside: its addresses, its counters, and a
//! way to stop it from any thread.

use crate::sender::ConnectionSender;
use mio::Waker;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    pub(crate) tls_handshakes_completed: AtomicU64,
    pub(crate) tls_handshakes_failed: AtomicU64,
    pub(crate) tls_handshake_timeouts: AtomicU64,
    pub(crate) tls_truncated: AtomicU64,
}

impl WorkerStats {
    pub(crate) fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }
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
    /// Datagrams not answered: the service declined, the reply did not fit,
    /// or the send queue was full.
    pub datagrams_dropped: u64,
    /// Service callbacks that panicked: each cost one connection, or one
    /// datagram.
    pub service_panics: u64,
    /// TLS handshakes completed: connections handed to the service.
    pub tls_handshakes_completed: u64,
    /// TLS handshakes that failed: bad or non-TLS input, an alert from the
    /// client, a close or the handshake deadline before the end.
    pub tls_handshakes_failed: u64,
    /// TLS handshakes cut at the handshake deadline (counted as failed too).
    pub tls_handshake_timeouts: u64,
    /// TLS connections whose TCP stream ended without a close_notify.
    pub tls_truncated: u64,
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
            total.tls_handshakes_completed += read(&worker.tls_handshakes_completed);
            total.tls_handshakes_failed += read(&worker.tls_handshakes_failed);
            total.tls_handshake_timeouts += read(&worker.tls_handshake_timeouts);
            total.tls_truncated += read(&worker.tls_truncated);
        }
        total
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections ({} shed, {} idle timeouts), {} bytes in, {} bytes out, \
             {} datagrams in, {} out, {} dropped, {} service panics, \
             {} TLS handshakes ({} failed, {} timed out), {} TLS truncated",
            self.connections_accepted,
            self.connections_shed,
            self.idle_timeouts,
            self.bytes_in,
            self.bytes_out,
            self.datagrams_in,
            self.datagrams_out,
            self.datagrams_dropped,
            self.service_panics,
            self.tls_handshakes_completed,
            self.tls_handshakes_failed,
            self.tls_handshake_timeouts,
            self.tls_truncated
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
}
