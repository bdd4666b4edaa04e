//! The running server seen from outside: its addresses, its counters
//! (declared in [`stats`](crate::stats)), and a way to stop it from any
//! thread.

use crate::datagram_sender::DatagramSender;
use crate::sender::ConnectionSender;
use crate::stats::{Stats, WorkerStats};
use crate::wake::Wakers;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The stop request, shared by the handle and every worker.
#[derive(Debug)]
pub(crate) struct ShutdownSignal {
    /// What the loop reads every turn: one atomic load.
    requested: AtomicBool,
    /// The same, for threads that wait on it.
    waited: Mutex<bool>,
    began: Condvar,
    wakers: Arc<Wakers>,
}

impl ShutdownSignal {
    pub(crate) fn new(wakers: Arc<Wakers>) -> Self {
        Self {
            requested: AtomicBool::new(false),
            waited: Mutex::new(false),
            began: Condvar::new(),
            wakers,
        }
    }

    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Runs `work`, a worker's loop, and requests the stop if it fails by
    /// an error or a panic: the other workers must not go on as half a
    /// server, holding sockets nobody serves for long.
    pub(crate) fn stop_on_failure<T>(
        &self,
        work: impl FnOnce() -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        /// Requests the stop when dropped armed: on an error, or while a
        /// panic unwinds.
        struct Armed<'a>(Option<&'a ShutdownSignal>);
        impl Drop for Armed<'_> {
            fn drop(&mut self) {
                if let Some(signal) = self.0 {
                    signal.request();
                }
            }
        }
        let mut armed = Armed(Some(self));
        let result = work();
        if result.is_ok() {
            armed.0 = None;
        }
        result
    }

    fn request(&self) {
        self.requested.store(true, Ordering::Release);
        *self.waited.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.began.notify_all();
        self.wakers.wake_all("shutdown");
    }

    /// Waits until the stop is requested or `deadline` (if any) passes;
    /// returns whether it was requested.
    fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut requested = self.waited.lock().unwrap_or_else(PoisonError::into_inner);
        while !*requested {
            let Some(deadline) = deadline else {
                requested = (self.began.wait(requested)).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            requested = (self.began.wait_timeout(requested, left))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// A cheap, cloneable, thread-safe view of a built server.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) tcp_addrs: Vec<SocketAddr>,
    pub(crate) udp_addrs: Vec<SocketAddr>,
    pub(crate) tls_addrs: Vec<SocketAddr>,
    pub(crate) quic_addrs: Vec<SocketAddr>,
    pub(crate) ws_addrs: Vec<SocketAddr>,
    pub(crate) shutdown: Arc<ShutdownSignal>,
    pub(crate) stats: Vec<Arc<WorkerStats>>,
    pub(crate) sender: ConnectionSender,
    pub(crate) datagram_sender: DatagramSender,
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

    /// The WebSocket addresses being served (plain, then over TLS, in the
    /// order given), with real ports where 0 was asked. Empty without the
    /// `ws` feature.
    pub fn ws_addrs(&self) -> &[SocketAddr] {
        &self.ws_addrs
    }

    /// The TLS addresses being served, with real ports where 0 was asked.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The QUIC addresses (UDP) being served, with real ports where 0 was
    /// asked; always empty without the `quic` feature.
    pub fn quic_addrs(&self) -> &[SocketAddr] {
        &self.quic_addrs
    }

    /// Asks the server to stop: it stops accepting, answers what it has
    /// received, flushes output for up to the drain timeout, and then
    /// [`Server::run`](crate::Server::run) returns. Returns at once; calling
    /// it again is harmless.
    pub fn shutdown(&self) {
        self.shutdown.request();
    }

    /// Returns whether the stop began: [`shutdown`](Self::shutdown) was
    /// called (by anyone, a callback included), or the server stopped on
    /// an error of its own.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_requested()
    }

    /// Blocks the calling thread until the stop begins (see
    /// [`is_shutting_down`](Self::is_shutting_down)); returns at once if
    /// it has. For the embedder's own threads: a callback that calls it
    /// blocks its worker, and the stop never comes.
    pub fn wait_for_shutdown(&self) {
        self.shutdown.wait(None);
    }

    /// Blocks the calling thread until the stop begins or `timeout`
    /// passes, whichever is first; returns whether the stop began. A
    /// ticker thread can use it as its sleep: it wakes at once on a stop.
    pub fn wait_for_shutdown_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        // A timeout too large for the clock is no timeout.
        self.shutdown.wait(deadline)
    }

    /// Returns a handle to write to, close or broadcast to the server's
    /// connections from any thread.
    pub fn sender(&self) -> ConnectionSender {
        self.sender.clone()
    }

    /// Returns a handle to send UDP datagrams from the server's sockets
    /// from any thread: later than a request, more than once, or unasked.
    pub fn datagram_sender(&self) -> DatagramSender {
        self.datagram_sender.clone()
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

    fn signal() -> ShutdownSignal {
        ShutdownSignal::new(Arc::new(Wakers::new(Vec::new())))
    }

    #[test]
    fn a_loop_that_ends_well_requests_no_stop() {
        let signal = signal();
        assert_eq!(signal.stop_on_failure(|| Ok(7)).unwrap(), 7);
        assert!(!signal.is_requested());
    }

    #[test]
    fn a_loop_that_fails_requests_the_stop() {
        let signal = signal();
        let failed = signal.stop_on_failure(|| Err::<(), _>(std::io::Error::other("epoll")));
        assert!(failed.is_err());
        assert!(signal.is_requested());
    }

    #[test]
    fn a_loop_that_panics_requests_the_stop() {
        let signal = signal();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            signal.stop_on_failure(|| -> std::io::Result<()> { panic!("a bug in the loop") })
        }));
        assert!(unwound.is_err());
        assert!(signal.is_requested());
    }
}
