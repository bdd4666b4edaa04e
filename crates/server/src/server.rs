//! Building a server: binding its sockets, then running its workers.

use crate::datagram_sender::{DatagramPost, DatagramSender};
use crate::handle::{Handle, ShutdownSignal};
use crate::proxy::{IpPrefix, ProxyTrust};
use crate::sender::{ConnectionSender, Post};
use crate::service::{DatagramService, NoService, StreamService};
use crate::sources::ConnectionSlots;
use crate::sources::ReplyRate;
use crate::stats::WorkerStats;
use crate::wake::Wakers;
use crate::worker::{Limits, ListenerKind, MAX_SOCKETS_PER_KIND, WAKER, Worker, WorkerParts};
use mio::{Poll, Waker};
use shout_socket::{SocketError, TcpListenerBuilder, UdpSocketBuilder};
use std::any::TypeId;
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
    /// A QUIC listener's TLS configuration cannot serve QUIC (it has no
    /// TLS 1.3 cipher suite QUIC can start with).
    #[cfg(feature = "quic")]
    #[error("quic: {0}")]
    Quic(String),
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
    // Shared so that the builder stays `Clone`; `build` duplicates them.
    tcp_listeners: Vec<Arc<std::net::TcpListener>>,
    udp_sockets: Vec<Arc<std::net::UdpSocket>>,
    #[cfg(feature = "tls")]
    tls: Vec<(SocketAddr, Arc<rustls::ServerConfig>)>,
    #[cfg(feature = "quic")]
    quic: Vec<(SocketAddr, Arc<rustls::ServerConfig>)>,
    #[cfg(feature = "quic")]
    quic_streams_per_connection: u32,
    #[cfg(feature = "quic")]
    quic_retry_above: usize,
    #[cfg(feature = "ws")]
    websocket: Vec<WebSocketListener>,
    handshake_timeout: Duration,
    proxy: Option<Vec<IpPrefix>>,
    workers: usize,
    max_connections: usize,
    max_connections_per_source: usize,
    udp_rate_per_source: u32,
    udp_burst_per_source: Option<u32>,
    udp_reply_ratio: u32,
    idle_timeout: Option<Duration>,
    linger_timeout: Duration,
    drain_timeout: Duration,
    max_pending_output: usize,
    udp_recv_buffer: usize,
    busy_poll: Duration,
    worker_thread_name: String,
}

/// Default limit on open TCP connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default linger timeout: how long a connection whose end of stream is
/// sent waits for the client's (nginx's `lingering_timeout` is 5 s too).
pub const DEFAULT_LINGER_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline for a TLS handshake, from the accept.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default drain timeout.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on one connection's unsent output.
pub const DEFAULT_MAX_PENDING_OUTPUT: usize = 256 * 1024;
/// What the workers' threads are named by default, before `-N`.
pub const DEFAULT_WORKER_THREAD_NAME: &str = "shout-worker";
/// Default number of QUIC handshakes in progress past which new clients
/// are sent a Retry.
#[cfg(feature = "quic")]
pub const DEFAULT_QUIC_RETRY_ABOVE: usize = 64;
/// The shared read buffer: one per worker, the most one read takes.
const READ_BUFFER_SIZE: usize = 64 * 1024;

impl<S: StreamService> ServerBuilder<S, NoService> {
    /// A TCP-only server running `stream_service`: giving it a UDP address
    /// makes [`build`](Self::build) fail.
    pub fn tcp_only(stream_service: S) -> Self {
        Self::new(stream_service, NoService::VALUE)
    }
}

impl<D: DatagramService> ServerBuilder<NoService, D> {
    /// A UDP-only server running `datagram_service`: giving it a TCP
    /// address makes [`build`](Self::build) fail.
    pub fn udp_only(datagram_service: D) -> Self {
        Self::new(NoService::VALUE, datagram_service)
    }
}

fn is_no_service<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<NoService>()
}

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
            tcp_listeners: Vec::new(),
            udp_sockets: Vec::new(),
            #[cfg(feature = "tls")]
            tls: Vec::new(),
            #[cfg(feature = "quic")]
            quic: Vec::new(),
            #[cfg(feature = "quic")]
            quic_streams_per_connection: crate::quic::DEFAULT_QUIC_STREAMS_PER_CONNECTION,
            #[cfg(feature = "quic")]
            quic_retry_above: DEFAULT_QUIC_RETRY_ABOVE,
            #[cfg(feature = "ws")]
            websocket: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            proxy: None,
            workers: 1,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_source: 0,
            udp_rate_per_source: 0,
            udp_burst_per_source: None,
            udp_reply_ratio: 0,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            linger_timeout: DEFAULT_LINGER_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            max_pending_output: DEFAULT_MAX_PENDING_OUTPUT,
            udp_recv_buffer: 4 * 1024 * 1024,
            busy_poll: Duration::ZERO,
            worker_thread_name: DEFAULT_WORKER_THREAD_NAME.to_owned(),
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

    /// Serves TLS over TCP on `addr` (port 0 picks a free port) with
    /// `config`, running the same stream service on the plaintext.
    /// Repeatable. The service opens a connection once its handshake is
    /// done, and [`ConnectionContext::transport`](crate::ConnectionContext::transport)
    /// tells the version and SNI name. Its address is listed in
    /// [`Handle::tls_addrs`].
    #[cfg(feature = "tls")]
    pub fn tls(mut self, addr: SocketAddr, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls.push((addr, config));
        self
    }

    /// Serves QUIC on UDP `addr` (port 0 picks a free port) with the
    /// certificates of `config`, running the same stream service on each
    /// bidirectional stream a client opens. Repeatable. The ALPN is
    /// [`QUIC_ALPN`](crate::QUIC_ALPN) whatever `config` says, and 0-RTT
    /// is allowed. Worker 0 serves every QUIC connection. Each connection
    /// counts under [`max_connections`](Self::max_connections) and its
    /// source's share, and has the [`handshake_timeout`](Self::handshake_timeout)
    /// and [`idle_timeout`](Self::idle_timeout). Its address is listed in
    /// [`Handle::quic_addrs`]; docs/QUIC.md tells the rest.
    #[cfg(feature = "quic")]
    pub fn quic(mut self, addr: SocketAddr, config: Arc<rustls::ServerConfig>) -> Self {
        self.quic.push((addr, config));
        self
    }

    /// Bidirectional streams one QUIC client may have open at once;
    /// opening more waits for one to end (the client is told its limit).
    /// Zero is refused by [`build`](Self::build). Default
    /// [`DEFAULT_QUIC_STREAMS_PER_CONNECTION`](crate::DEFAULT_QUIC_STREAMS_PER_CONNECTION).
    #[cfg(feature = "quic")]
    pub fn quic_streams_per_connection(mut self, max: u32) -> Self {
        self.quic_streams_per_connection = max;
        self
    }

    /// QUIC handshakes in progress past which a new client must first
    /// prove its address with a Retry (one more round trip), so that
    /// Initials from forged addresses cost no connection state; 0 sends
    /// every client a Retry. Default [`DEFAULT_QUIC_RETRY_ABOVE`].
    #[cfg(feature = "quic")]
    pub fn quic_retry_above(mut self, handshakes: usize) -> Self {
        self.quic_retry_above = handshakes;
        self
    }

    /// Serves WebSocket on `addr` (port 0 picks a free port): the page
    /// `config` names at `GET /`, the stream service at `GET /ws` upgraded
    /// (RFC 6455), each data message's payload its input. Repeatable. The
    /// [`handshake_timeout`](Self::handshake_timeout) bounds the time to
    /// a finished upgrade. Its address is listed in
    /// [`Handle::ws_addrs`]. Cargo feature `ws`.
    #[cfg(feature = "ws")]
    pub fn websocket(mut self, addr: SocketAddr, config: crate::WebSocketConfig) -> Self {
        self.websocket.push(WebSocketListener {
            addr,
            #[cfg(feature = "tls")]
            tls: None,
            config: Arc::new(config),
        });
        self
    }

    /// Serves WebSocket over TLS on `addr` with `tls`: the page over
    /// https, the socket over wss; otherwise as
    /// [`websocket`](Self::websocket). The one deadline covers the TLS
    /// handshake and the upgrade. Cargo features `ws` and `tls`.
    #[cfg(all(feature = "ws", feature = "tls"))]
    pub fn websocket_tls(
        mut self,
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        config: crate::WebSocketConfig,
    ) -> Self {
        self.websocket.push(WebSocketListener {
            addr,
            tls: Some(tls),
            config: Arc::new(config),
        });
        self
    }

    /// How long a TLS client has, from the accept, to finish its handshake
    /// before it is cut (counted in `Stats::tls_handshake_timeouts`).
    /// Zero is refused by [`build`](Self::build). Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Expects a PROXY protocol header (v1 or v2) at the start of every
    /// connection on the TCP and TLS listeners, sent by a peer in one of
    /// the `trusted` networks; over TLS the header comes before the
    /// handshake. The client address it carries is the connection's
    /// [`peer`](crate::ConnectionContext::peer), in the logs and for
    /// [`max_connections_per_source`](Self::max_connections_per_source).
    /// A LOCAL header (a balancer's health check) keeps the socket's peer.
    ///
    /// An untrusted sender, a malformed header, one longer than
    /// [`MAX_PROXY_HEADER`](crate::MAX_PROXY_HEADER) bytes, or none whole
    /// within the [`handshake_timeout`](Self::handshake_timeout): the
    /// connection is closed unanswered and counted in
    /// `Stats::proxy_headers_rejected`. An empty `trusted` is refused by
    /// [`build`](Self::build).
    pub fn proxy_protocol(mut self, trusted: Vec<IpPrefix>) -> Self {
        self.proxy = Some(trusted);
        self
    }

    /// Serves TCP on `listener`, a socket already bound and listening (one
    /// passed by systemd socket activation, say). Repeatable.
    ///
    /// [`build`](Self::build) makes it non-blocking. With several workers,
    /// each accepts from its own duplicate of the same socket: the kernel
    /// wakes all of them and one gets each connection. Its address is listed
    /// in [`Handle::tcp_addrs`] after the bound ones.
    pub fn tcp_listener(mut self, listener: std::net::TcpListener) -> Self {
        self.tcp_listeners.push(Arc::new(listener));
        self
    }

    /// Serves UDP on `socket`, one already bound. Repeatable.
    ///
    /// [`build`](Self::build) makes it non-blocking and leaves its receive
    /// buffer as it is. With several workers, each reads its own duplicate
    /// of the same socket, and each datagram goes to one of them. Its
    /// address is listed in [`Handle::udp_addrs`] after the bound ones.
    pub fn udp_socket(mut self, socket: std::net::UdpSocket) -> Self {
        self.udp_sockets.push(Arc::new(socket));
        self
    }

    /// Event-loop threads, each with its own sockets on the same addresses
    /// (`SO_REUSEPORT`); the kernel spreads clients among them. Default 1.
    ///
    /// TCP: with more than one, another process of the same user that also
    /// sets `SO_REUSEPORT` could bind the same port and share its
    /// connections; with one, a taken port is an error. UDP: a taken port
    /// is an error, and on Linux no other socket can take a share of the
    /// port's datagrams (see `UdpSocketBuilder::bind_group` in
    /// `shout-socket`).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Open TCP connections allowed at once, over all workers. At the limit,
    /// new clients wait in the listen backlog until one closes, on any
    /// worker.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Open TCP connections one source may hold, over all workers; 0 (the
    /// default) is no limit. A source is an IPv4 address or an IPv6 /64; an
    /// IPv4-mapped address counts as its IPv4 address. Past the limit, a new
    /// connection from that source is closed as soon as it is accepted, and
    /// counted in [`Stats::connections_refused_per_source`](crate::Stats).
    ///
    /// Off by default, as in nginx (`limit_conn`): the server cannot tell a
    /// NAT'd office or a load generator from an abuser, and only its
    /// operator knows which sources it serves. docs/OPERATING.md suggests
    /// values for a public server.
    pub fn max_connections_per_source(mut self, max: usize) -> Self {
        self.max_connections_per_source = max;
        self
    }

    /// Replies per second one source is sent over UDP, at most; 0 (the
    /// default) is no limit. Each worker keeps a token bucket per source
    /// (see [`udp_burst_per_source`](Self::udp_burst_per_source)), as DNS
    /// servers limit responses: a datagram that finds its source's bucket
    /// empty gets no reply, counted in
    /// [`Stats::datagrams_rate_limited`](crate::Stats). With several
    /// workers, a source whose datagrams the kernel spreads over them (from
    /// several ports) may get up to this many per worker.
    ///
    /// Off by default, as in BIND and Unbound: a rate right for a public
    /// server would cut a benchmark or a busy client on a private network.
    pub fn udp_rate_per_source(mut self, per_second: u32) -> Self {
        self.udp_rate_per_source = per_second;
        self
    }

    /// Replies one source may be sent at once above its rate, and what a
    /// source not seen lately starts with; by default one second's worth
    /// (the rate). Ignored without a rate.
    pub fn udp_burst_per_source(mut self, burst: u32) -> Self {
        self.udp_burst_per_source = Some(burst);
        self
    }

    /// Sends no UDP reply larger than `ratio` times its request: such a
    /// reply is dropped and counted in
    /// [`Stats::datagrams_over_ratio`](crate::Stats). It bounds what a
    /// spoofed source can make the server send a victim, per byte it
    /// sends: at most `ratio` times. 0 (the default) is no limit; an
    /// empty request may then get a reply of up to 65,507 bytes.
    /// Datagrams from a [`DatagramSender`] answer no request, and only the
    /// per-source rate bounds them.
    pub fn udp_reply_ratio(mut self, ratio: u32) -> Self {
        self.udp_reply_ratio = ratio;
        self
    }

    /// Closes a connection after this long with no byte read or written;
    /// `None` never does. Zero is refused by [`build`](Self::build): it
    /// would close every connection on its first turn.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a connection lingers once its end of stream is sent (the
    /// service closed it, or a stop ended it), reading and discarding
    /// until the client's own end: past it, the socket is closed and
    /// counted in [`Stats::linger_timeouts`](crate::Stats). Lingering
    /// keeps a close from resetting answers the client has not read yet;
    /// this bounds how long a client that never closes holds a connection
    /// slot. The service's session ended already, when the end of stream
    /// went out. Default [`DEFAULT_LINGER_TIMEOUT`], 5 s; zero closes at
    /// once (a reset, if input is unread). The idle timeout, if shorter,
    /// still applies.
    pub fn linger_timeout(mut self, timeout: Duration) -> Self {
        self.linger_timeout = timeout;
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

    /// Keeps each worker polling without sleeping for up to `window` after
    /// its last event, before it blocks: a reply that comes within it is
    /// served without the wake-up of an idle core, at the cost of that core
    /// while it waits. Zero (the default) is off.
    pub fn busy_poll(mut self, window: Duration) -> Self {
        self.busy_poll = window;
        self
    }

    /// Names the threads [`Server::run`] starts for workers 1 and up
    /// `PREFIX-N`; by default [`DEFAULT_WORKER_THREAD_NAME`]
    /// (`shout-worker-N`). Worker 0 runs on the thread that calls `run`,
    /// whose name stays its own. Linux shows a thread's first 15 bytes.
    pub fn worker_thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.worker_thread_name = prefix.into();
        self
    }

    /// Binds every socket for every worker. Errors name the address.
    pub fn build(self) -> Result<Server<S, D>, ServerError> {
        self.check()?;
        let Bound {
            sockets_per_worker,
            tcp_addrs,
            udp_addrs,
            tls_addrs,
            ws_addrs,
        } = self.bind()?;
        #[cfg(feature = "quic")]
        let quic_limits = crate::quic::QuicLimits {
            streams_per_connection: self.quic_streams_per_connection,
            retry_above: self.quic_retry_above,
            idle_timeout: self.idle_timeout,
            max_pending_output: self.max_pending_output,
        };
        #[cfg(feature = "quic")]
        let (mut quic_sockets, quic_addrs) = self.bind_quic(
            tcp_addrs.len() + tls_addrs.len() + ws_addrs.len(),
            &quic_limits,
        )?;
        #[cfg(not(feature = "quic"))]
        let quic_addrs = Vec::new();

        let mut polls = Vec::with_capacity(self.workers);
        let mut wakers = Vec::with_capacity(self.workers);
        for _ in 0..self.workers {
            let poll = Poll::new()?;
            wakers.push(Waker::new(poll.registry(), WAKER)?);
            polls.push(poll);
        }
        let wakers = Arc::new(Wakers::new(wakers));
        let shutdown = Arc::new(ShutdownSignal::new(Arc::clone(&wakers)));
        let post = Arc::new(Post::new(
            self.workers,
            Arc::clone(&wakers),
            self.max_pending_output,
        ));
        let slots = Arc::new(ConnectionSlots::new(
            self.max_connections,
            self.max_connections_per_source,
            Arc::clone(&wakers),
        ));
        let limits = self.limits();
        let datagram_post = Arc::new(DatagramPost::new(
            self.workers,
            Arc::clone(&wakers),
            udp_addrs.len(),
        ));
        let stats: Vec<Arc<WorkerStats>> = (0..self.workers)
            .map(|_| Arc::new(WorkerStats::default()))
            .collect();
        let handle = Handle {
            tcp_addrs,
            udp_addrs,
            tls_addrs,
            quic_addrs,
            ws_addrs,
            shutdown,
            stats: stats.clone(),
            sender: ConnectionSender::new(post),
            datagram_sender: DatagramSender::new(datagram_post),
        };
        let stream_service = Arc::new(self.stream_service);
        let datagram_service = Arc::new(self.datagram_service);
        let mut workers = Vec::with_capacity(self.workers);
        let sockets = polls.into_iter().zip(sockets_per_worker).zip(stats);
        for (id, ((poll, (tcp, udp)), worker_stats)) in sockets.enumerate() {
            let parts = WorkerParts {
                tcp,
                udp,
                // One worker serves QUIC: see worker/quic.rs.
                #[cfg(feature = "quic")]
                quic: std::mem::take(&mut quic_sockets),
                #[cfg(feature = "quic")]
                quic_limits,
                stream_service: Arc::clone(&stream_service),
                datagram_service: Arc::clone(&datagram_service),
                limits: limits.clone(),
                slots: Arc::clone(&slots),
                stats: worker_stats,
                handle: handle.clone(),
            };
            workers.push(Worker::new(id, poll, parts)?);
        }
        // Once the handle exists and before any callback: the services
        // keep it if they want it.
        stream_service.server_built(&handle);
        datagram_service.server_built(&handle);
        Ok(Server {
            workers,
            handle,
            thread_name: self.worker_thread_name,
        })
    }

    /// Returns the settings each worker runs with.
    fn limits(&self) -> Limits {
        Limits {
            idle_timeout: self.idle_timeout,
            linger_timeout: self.linger_timeout,
            drain_timeout: self.drain_timeout,
            max_pending_output: self.max_pending_output,
            read_buffer_size: READ_BUFFER_SIZE,
            busy_poll: self.busy_poll,
            reply_rate: ReplyRate {
                per_second: f64::from(self.udp_rate_per_source),
                burst: f64::from(
                    self.udp_burst_per_source
                        .unwrap_or(self.udp_rate_per_source),
                ),
            },
            reply_ratio: self.udp_reply_ratio,
            handshake_timeout: self.handshake_timeout,
        }
    }

    /// Returns the TLS addresses asked for: none without the `tls` feature.
    fn tls_addrs(&self) -> Vec<SocketAddr> {
        #[cfg(feature = "tls")]
        return self.tls.iter().map(|(addr, _)| *addr).collect();
        #[cfg(not(feature = "tls"))]
        Vec::new()
    }

    /// Refuses a configuration the server cannot run with.
    fn check(&self) -> Result<(), ServerError> {
        if self.tcp.is_empty()
            && self.tls_addrs().is_empty()
            && self.quic_addresses().is_empty()
            && self.websocket_count() == 0
            && self.udp.is_empty()
            && self.tcp_listeners.is_empty()
            && self.udp_sockets.is_empty()
        {
            return Err(ServerError::NoAddresses);
        }
        if self.proxy.as_ref().is_some_and(Vec::is_empty) {
            return Err(ServerError::InvalidSetting(
                "the PROXY protocol with no trusted sender",
            ));
        }
        if self.handshake_timeout.is_zero() {
            return Err(ServerError::InvalidSetting(
                "handshake timeout must be more than zero",
            ));
        }
        let streams = self.tcp.len()
            + self.tls_addrs().len()
            + self.quic_addresses().len()
            + self.websocket_count();
        if streams > 0 && is_no_service::<S>() {
            return Err(ServerError::InvalidSetting(
                "a TCP address on a server with no stream service (udp_only)",
            ));
        }
        if !self.udp.is_empty() && is_no_service::<D>() {
            return Err(ServerError::InvalidSetting(
                "a UDP address on a server with no datagram service (tcp_only)",
            ));
        }
        #[cfg(feature = "quic")]
        if self.quic_streams_per_connection == 0 {
            return Err(ServerError::InvalidSetting(
                "QUIC streams per connection must be at least 1",
            ));
        }
        if self.workers == 0 {
            return Err(ServerError::InvalidSetting("workers must be at least 1"));
        }
        if self.workers > crate::id::MAX_WORKERS {
            return Err(ServerError::InvalidSetting("at most 65,536 workers"));
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
        if self.udp_rate_per_source > 0 && self.udp_burst_per_source == Some(0) {
            return Err(ServerError::InvalidSetting(
                "the UDP burst per source must be at least 1 reply",
            ));
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            return Err(ServerError::InvalidSetting(
                "idle timeout must be more than zero (None for no timeout)",
            ));
        }
        let tcp_listeners = self.tcp.len() + self.tls_addrs().len() + self.websocket_count();
        if tcp_listeners + self.tcp_listeners.len() > MAX_SOCKETS_PER_KIND
            || self.udp.len() + self.udp_sockets.len() > MAX_SOCKETS_PER_KIND
            || self.quic_addresses().len() > MAX_SOCKETS_PER_KIND
        {
            return Err(ServerError::InvalidSetting(
                "at most 4,096 TCP, 4,096 UDP and 4,096 QUIC addresses",
            ));
        }
        Ok(())
    }

    /// Returns the QUIC addresses asked for (none without the `quic`
    /// feature).
    fn quic_addresses(&self) -> Vec<SocketAddr> {
        #[cfg(feature = "quic")]
        return self.quic.iter().map(|(addr, _)| *addr).collect();
        #[cfg(not(feature = "quic"))]
        Vec::new()
    }

    /// Binds the QUIC sockets, for worker 0, with their configurations;
    /// their listener numbers start at `first_listener`.
    #[cfg(feature = "quic")]
    fn bind_quic(
        &self,
        first_listener: usize,
        limits: &crate::quic::QuicLimits,
    ) -> Result<(Vec<crate::worker::quic::QuicSocket>, Vec<SocketAddr>), ServerError> {
        let mut sockets = Vec::with_capacity(self.quic.len());
        let mut addrs = Vec::with_capacity(self.quic.len());
        for (index, (addr, tls)) in self.quic.iter().enumerate() {
            let config = crate::quic::server_config(tls, limits).map_err(ServerError::Quic)?;
            let socket = UdpSocketBuilder::new(*addr)
                .recv_buffer_size(self.udp_recv_buffer)
                .send_buffer_size(self.udp_recv_buffer)
                .nonblocking(true)
                .bind()
                .map_err(|error| error.serving("quic"))?;
            addrs.push(socket.local_addr().map_err(ServerError::EventLoop)?);
            sockets.push(crate::worker::quic::QuicSocket {
                socket,
                config,
                listener: first_listener + index,
            });
        }
        Ok((sockets, addrs))
    }

    /// Binds every socket of every worker: the first worker binds what
    /// was asked, the others the real addresses it got, so port 0 means
    /// one port for all. Each listener carries its kind.
    fn bind(&self) -> Result<Bound, ServerError> {
        let shared_port = self.workers > 1;
        let mut sockets_per_worker: Vec<_> = (0..self.workers)
            .map(|_| (Vec::new(), Vec::new()))
            .collect();
        // The first worker binds what was asked; the others bind the real
        // addresses it got, so port 0 means one port for all.
        let mut tcp_addrs = self.tcp.clone();
        for (tcp, _) in &mut sockets_per_worker {
            for addr in &mut tcp_addrs {
                let listener = TcpListenerBuilder::new(*addr)
                    .reuse_port(shared_port)
                    .nonblocking(true)
                    .bind()?;
                *addr = listener.local_addr().map_err(ServerError::EventLoop)?;
                tcp.push((listener, ListenerKind::default()));
            }
        }
        let mut udp_addrs = Vec::with_capacity(self.udp.len());
        for addr in &self.udp {
            let group = UdpSocketBuilder::new(*addr)
                .recv_buffer_size(self.udp_recv_buffer)
                .nonblocking(true)
                .bind_group(self.workers)?;
            udp_addrs.push(group[0].local_addr().map_err(ServerError::EventLoop)?);
            for (socket, (_, udp)) in group.into_iter().zip(&mut sockets_per_worker) {
                udp.push(socket);
            }
        }
        for listener in &self.tcp_listeners {
            listener.set_nonblocking(true)?;
            tcp_addrs.push(listener.local_addr()?);
            for (tcp, _) in &mut sockets_per_worker {
                tcp.push((listener.try_clone()?, ListenerKind::default()));
            }
        }
        let proxy = (self.proxy.clone()).map(|trusted| Arc::new(ProxyTrust(trusted)));
        let plain = ListenerKind::plain(proxy.as_ref());
        for (tcp, _) in &mut sockets_per_worker {
            tcp.iter_mut().for_each(|(_, kind)| *kind = plain.clone());
        }
        let mut tls_addrs = self.tls_addrs();
        #[cfg(feature = "tls")]
        let tls_kinds: Vec<ListenerKind> = (self.tls.iter())
            .map(|(_, config)| ListenerKind::tls(config, proxy.as_ref()))
            .collect();
        #[cfg(not(feature = "tls"))]
        let tls_kinds: Vec<ListenerKind> = Vec::new();
        for (tcp, _) in &mut sockets_per_worker {
            for (addr, kind) in tls_addrs.iter_mut().zip(&tls_kinds) {
                let listener = TcpListenerBuilder::new(*addr)
                    .reuse_port(shared_port)
                    .nonblocking(true)
                    .bind()
                    .map_err(|error| error.serving("tls"))?;
                *addr = listener.local_addr().map_err(ServerError::EventLoop)?;
                tcp.push((listener, kind.clone()));
            }
        }
        let ws_addrs = self.bind_websocket(&mut sockets_per_worker, proxy.as_ref())?;
        for socket in &self.udp_sockets {
            socket.set_nonblocking(true)?;
            udp_addrs.push(socket.local_addr()?);
            for (_, udp) in &mut sockets_per_worker {
                udp.push(socket.try_clone()?);
            }
        }
        Ok(Bound {
            sockets_per_worker,
            tcp_addrs,
            udp_addrs,
            tls_addrs,
            ws_addrs,
        })
    }

    /// How many WebSocket listeners were asked for.
    fn websocket_count(&self) -> usize {
        #[cfg(feature = "ws")]
        return self.websocket.len();
        #[cfg(not(feature = "ws"))]
        0
    }

    /// Binds the WebSocket listeners of every worker, as [`bind`](Self::bind)
    /// does the others. Returns their addresses.
    fn bind_websocket(
        &self,
        sockets_per_worker: &mut [WorkerSockets],
        proxy: Option<&Arc<ProxyTrust>>,
    ) -> Result<Vec<SocketAddr>, ServerError> {
        #[cfg(not(feature = "ws"))]
        let _ = (sockets_per_worker, proxy);
        #[cfg(not(feature = "ws"))]
        return Ok(Vec::new());
        #[cfg(feature = "ws")]
        {
            let shared_port = self.workers > 1;
            let mut addrs: Vec<SocketAddr> = self.websocket.iter().map(|ws| ws.addr).collect();
            let kinds: Vec<ListenerKind> = (self.websocket.iter())
                .map(|ws| {
                    #[cfg(feature = "tls")]
                    let under = match &ws.tls {
                        Some(config) => ListenerKind::tls(config, proxy),
                        None => ListenerKind::plain(proxy),
                    };
                    #[cfg(not(feature = "tls"))]
                    let under = ListenerKind::plain(proxy);
                    ListenerKind {
                        websocket: Some(Arc::clone(&ws.config)),
                        ..under
                    }
                })
                .collect();
            for (tcp, _) in sockets_per_worker {
                for ((addr, kind), ws) in addrs.iter_mut().zip(&kinds).zip(&self.websocket) {
                    let listener = TcpListenerBuilder::new(*addr)
                        .reuse_port(shared_port)
                        .nonblocking(true)
                        .bind()
                        .map_err(|error| error.serving(ws.name()))?;
                    *addr = listener.local_addr().map_err(ServerError::EventLoop)?;
                    tcp.push((listener, kind.clone()));
                }
            }
            Ok(addrs)
        }
    }
}

/// A worker's thread, and what its loop returned.
type WorkerThread = std::thread::JoinHandle<std::io::Result<()>>;

/// A server whose sockets are bound, ready to [`run`](Self::run).
pub struct Server<S: StreamService, D: DatagramService> {
    workers: Vec<Worker<S, D>>,
    handle: Handle,
    /// The workers' threads are named this, then `-N`.
    thread_name: String,
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
    ///
    /// If a worker's thread cannot be started, the workers already started
    /// are stopped and joined before the error is returned.
    pub fn run(self) -> Result<crate::Stats, ServerError> {
        let name = self.thread_name.clone();
        self.run_spawning(|worker| {
            std::thread::Builder::new()
                .name(format!("{name}-{}", worker.id))
                .spawn(move || worker.run())
        })
    }

    /// [`run`](Self::run), with the threads started by `spawn`.
    fn run_spawning(
        self,
        mut spawn: impl FnMut(Worker<S, D>) -> std::io::Result<WorkerThread>,
    ) -> Result<crate::Stats, ServerError> {
        let mut workers = self.workers.into_iter();
        let first = workers.next().expect("build makes at least one worker");
        let mut others = Vec::with_capacity(workers.len());
        for worker in workers {
            let id = worker.id;
            match spawn(worker) {
                Ok(thread) => others.push((id, thread)),
                Err(error) => {
                    // No half a server left running, detached.
                    self.handle.shutdown();
                    for (_, thread) in others {
                        let _ = thread.join();
                    }
                    return Err(ServerError::EventLoop(error));
                }
            }
        }
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

/// One worker's stream listeners, with their kinds, and UDP sockets.
type WorkerSockets = (
    Vec<(std::net::TcpListener, ListenerKind)>,
    Vec<std::net::UdpSocket>,
);

/// The sockets [`ServerBuilder::bind`] made: each worker's stream
/// listeners (with their kinds) and UDP sockets, and the addresses bound.
struct Bound {
    sockets_per_worker: Vec<WorkerSockets>,
    tcp_addrs: Vec<SocketAddr>,
    udp_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    ws_addrs: Vec<SocketAddr>,
}

/// A WebSocket listener asked for: its address, its TLS config (wss),
/// what it serves.
#[cfg(feature = "ws")]
#[derive(Debug, Clone)]
struct WebSocketListener {
    addr: SocketAddr,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
    config: Arc<crate::WebSocketConfig>,
}

#[cfg(feature = "ws")]
impl WebSocketListener {
    /// Returns what an error message calls this listener: `wss` over TLS,
    /// `ws` otherwise.
    fn name(&self) -> &'static str {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return "wss";
        }
        "ws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Uppercase;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_failed_spawn_stops_and_joins_the_workers_already_started() {
        let server = ServerBuilder::new(Uppercase, Uppercase)
            .tcp("127.0.0.1:0".parse().unwrap())
            .workers(3)
            .build()
            .unwrap();
        let handle = server.handle();
        let finished = Arc::new(AtomicUsize::new(0));
        let mut spawned = 0;
        let result = server.run_spawning(|worker| {
            spawned += 1;
            if spawned == 2 {
                return Err(std::io::Error::other("no thread for you"));
            }
            let finished = Arc::clone(&finished);
            std::thread::Builder::new().spawn(move || {
                let run = worker.run();
                finished.fetch_add(1, Ordering::SeqCst);
                run
            })
        });
        assert!(
            matches!(result, Err(ServerError::EventLoop(_))),
            "{result:?}"
        );
        assert!(handle.is_shutting_down());
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "the started worker is still running after the error"
        );
    }
}
