//! Building a server: binding its sockets, then running its workers.

use crate::handle::{Handle, ShutdownSignal, WorkerStats};
use crate::service::{DatagramService, StreamService};
use crate::worker::{Limits, WAKER, Worker};
use mio::{Poll, Waker};
use shout_socket::{SocketError, TcpListenerBuilder, UdpSocketBuilder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why a server could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A socket could not be bound (the message names address and cause).
    #[error(transparent)]
    Bind(#[from] SocketError),
    /// Neither a TCP nor a UDP address was given.
    #[error("nothing to serve: give at least one TCP or UDP address")]
    NoAddresses,
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidSetting(&'static str),
    /// The event loop itself failed (creating or polling the `Poll`).
    #[error("event loop: {0}")]
    EventLoop(#[from] std::io::Error),
    /// A worker thread panicked; this is a bug in a service or in shout.
    #[error("worker {0} panicked")]
    WorkerPanicked(usize),
}

/// Configures a [`Server`]: addresses, workers, limits.
///
/// ```no_run
/// use shout_server::{ServerBuilder, Uppercase};
///
/// let server = ServerBuilder::new(Uppercase, Uppercase)
///     .tcp("127.0.0.1:0".parse().unwrap())
///     .udp("127.0.0.1:0".parse().unwrap())
///     .build()
///     .unwrap();
/// let handle = server.handle();
/// println!("serving on {:?}", handle.tcp_addrs());
/// std::thread::spawn(move || server.run());
/// // ...
/// handle.shutdown();
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ServerBuilder<S, D> {
    stream_service: S,
    datagram_service: D,
    tcp: Vec<SocketAddr>,
    udp: Vec<SocketAddr>,
    workers: usize,
    max_connections: usize,
    idle_timeout: Option<Duration>,
    drain_timeout: Duration,
    max_pending_output: usize,
    udp_recv_buffer: usize,
}

/// Default limit on open TCP connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default drain timeout.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on one connection's unsent output.
pub const DEFAULT_MAX_PENDING_OUTPUT: usize = 256 * 1024;
/// The shared read buffer: one per worker, the most one read takes.
const READ_BUFFER_SIZE: usize = 64 * 1024;

impl<S: StreamService, D: DatagramService> ServerBuilder<S, D> {
    /// A server running `stream_service` on its TCP addresses and
    /// `datagram_service` on its UDP addresses, with default limits and no
    /// addresses yet.
    pub fn new(stream_service: S, datagram_service: D) -> Self {
        Self {
            stream_service,
            datagram_service,
            tcp: Vec::new(),
            udp: Vec::new(),
            workers: 1,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            max_pending_output: DEFAULT_MAX_PENDING_OUTPUT,
            udp_recv_buffer: 4 * 1024 * 1024,
        }
    }

    /// Serves TCP on `addr` (port 0 picks a free port). Repeatable.
    pub fn tcp(mut self, addr: SocketAddr) -> Self {
        self.tcp.push(addr);
        self
    }

    /// Serves UDP on `addr` (port 0 picks a free port). Repeatable.
    pub fn udp(mut self, addr: SocketAddr) -> Self {
        self.udp.push(addr);
        self
    }

    /// Event-loop threads, each with its own sockets on the same addresses
    /// (`SO_REUSEPORT`); the kernel spreads clients among them. Default 1.
    ///
    /// With more than one, another process of the same user that also sets
    /// `SO_REUSEPORT` could bind the same port and share its traffic; with
    /// one, a taken port is an error.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Open TCP connections allowed at once, shared evenly among workers. At
    /// the limit, new clients wait in the listen backlog until one closes.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Closes a connection after this long with no byte read or written;
    /// `None` never does.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a shutdown waits for answers to be flushed before closing
    /// what is left.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Unsent output one connection may hold before the server stops reading
    /// from it. The real bound is this plus what one read can produce.
    pub fn max_pending_output(mut self, bytes: usize) -> Self {
        self.max_pending_output = bytes;
        self
    }

    /// Binds every socket for every worker. Errors name the address.
    pub fn build(self) -> Result<Server<S, D>, ServerError> {
        if self.tcp.is_empty() && self.udp.is_empty() {
            return Err(ServerError::NoAddresses);
        }
        if self.workers == 0 {
            return Err(ServerError::InvalidSetting("workers must be at least 1"));
        }
        if self.max_pending_output == 0 {
            return Err(ServerError::InvalidSetting(
                "max pending output must be at least 1 byte",
            ));
        }
        if self.max_connections == 0 {
            return Err(ServerError::InvalidSetting(
                "max connections must be at least 1",
            ));
        }
        let shared_port = self.workers > 1;
        let mut sockets_per_worker = Vec::with_capacity(self.workers);
        // The first worker binds what was asked; the others bind the real
        // addresses it got, so port 0 means one port for all.
        let mut tcp_addrs = self.tcp.clone();
        let mut udp_addrs = self.udp.clone();
        for _ in 0..self.workers {
            let mut tcp = Vec::with_capacity(tcp_addrs.len());
            for addr in &mut tcp_addrs {
                let listener = TcpListenerBuilder::new(*addr)
                    .reuse_port(shared_port)
                    .nonblocking(true)
                    .bind()?;
                *addr = listener.local_addr().map_err(ServerError::EventLoop)?;
                tcp.push(listener);
            }
            let mut udp = Vec::with_capacity(udp_addrs.len());
            for addr in &mut udp_addrs {
                let socket = UdpSocketBuilder::new(*addr)
                    .reuse_port(shared_port)
                    .recv_buffer_size(self.udp_recv_buffer)
                    .nonblocking(true)
                    .bind()?;
                *addr = socket.local_addr().map_err(ServerError::EventLoop)?;
                udp.push(socket);
            }
            sockets_per_worker.push((tcp, udp));
        }

        let mut polls = Vec::with_capacity(self.workers);
        let mut wakers = Vec::with_capacity(self.workers);
        for _ in 0..self.workers {
            let poll = Poll::new()?;
            wakers.push(Waker::new(poll.registry(), WAKER)?);
            polls.push(poll);
        }
        let shutdown = Arc::new(ShutdownSignal::new(wakers));
        let limits = Limits {
            max_connections: self.max_connections.div_ceil(self.workers),
            idle_timeout: self.idle_timeout,
            drain_timeout: self.drain_timeout,
            max_pending_output: self.max_pending_output,
            read_buffer_size: READ_BUFFER_SIZE,
        };
        let stream_service = Arc::new(self.stream_service);
        let datagram_service = Arc::new(self.datagram_service);
        let mut workers = Vec::with_capacity(self.workers);
        let mut stats = Vec::with_capacity(self.workers);
        for (id, (poll, (tcp, udp))) in polls.into_iter().zip(sockets_per_worker).enumerate() {
            let worker_stats = Arc::new(WorkerStats::default());
            stats.push(Arc::clone(&worker_stats));
            workers.push(Worker::new(
                id,
                poll,
                tcp,
                udp,
                Arc::clone(&stream_service),
                Arc::clone(&datagram_service),
                limits.clone(),
                Arc::clone(&shutdown),
                worker_stats,
            )?);
        }
        let handle = Handle {
            tcp_addrs,
            udp_addrs,
            shutdown,
            stats,
        };
        Ok(Server { workers, handle })
    }
}

/// A server whose sockets are bound, ready to [`run`](Self::run).
pub struct Server<S: StreamService, D: DatagramService> {
    workers: Vec<Worker<S, D>>,
    handle: Handle,
}

impl<S: StreamService, D: DatagramService> Server<S, D> {
    /// A handle to learn the bound addresses and stop the server from any
    /// thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Serves until [`Handle::shutdown`] is called and the drain is over.
    /// Worker 0 runs on the calling thread, the others on threads of their
    /// own. Returns the final counters.
    pub fn run(self) -> Result<crate::Stats, ServerError> {
        let mut workers = self.workers.into_iter();
        let first = workers.next().expect("build makes at least one worker");
        let others: Vec<_> = workers
            .map(|worker| {
                let id = worker.id;
                let thread = std::thread::Builder::new()
                    .name(format!("shoutd-worker-{id}"))
                    .spawn(move || worker.run())
                    .map_err(ServerError::EventLoop)?;
                Ok((id, thread))
            })
            .collect::<Result<_, ServerError>>()?;
        let mut result = first.run().map_err(ServerError::EventLoop);
        if result.is_err() {
            // Take the others down too rather than leave half a server.
            self.handle.shutdown();
        }
        for (id, thread) in others {
            let outcome = thread.join().map_err(|_| ServerError::WorkerPanicked(id));
            if result.is_ok() {
                result = outcome.and_then(|run| run.map_err(ServerError::EventLoop));
            }
        }
        result.map(|()| self.handle.stats())
    }
}
