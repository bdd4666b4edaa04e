//! The running server seen from outside: its addresses, its counters
//! (declared in [`stats`](crate::stats)), and a way to stop it from any
//! thread.

use crate::sender::ConnectionSender;
use crate::stats::{Stats, WorkerStats};
use crate::wake::Wakers;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
