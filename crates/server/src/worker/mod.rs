//! The event loop: one thread, one `mio::Poll`, many sockets.
//!
//! # The readiness contract, and how this loop keeps it
//! Sockets are registered once, edge-triggered, for reading and writing.
//! An event says a socket *became* ready; the loop remembers that in the
//! connection (`readable`, `writable`) and forgets it only when the kernel
//! says so (`WouldBlock`, or a short read or write, which means the same
//! thing one syscall earlier). So output never costs a re-registration, and a
//! request costs one read and one write.
//!
//! # Fairness
//! Work per turn is bounded: a few reads per connection, a batch of accepts,
//! a batch of datagrams. A source that still had work is put on the `hot`
//! list and served again after everyone else's events, with a zero poll
//! timeout, because an edge-triggered source will not raise a new event for
//! readiness it already reported.
//!
//! # Limits
//! - Output per connection is bounded: past `max_pending_output` the loop
//!   stops reading that connection (the client's sending then blocks in TCP
//!   flow control) until its output drains.
//! - At `max_connections` the listeners are deregistered until a connection
//!   closes: no events, no spinning; clients wait in the backlog.
//! - Out of file descriptors, a spare descriptor is given up to accept and
//!   close the waiting connection, so it is refused instead of hanging.

use crate::connection::{Connection, Phase};
use crate::handle::{ShutdownSignal, WorkerStats};
use crate::idle::IdleList;
use crate::service::{DatagramReply, DatagramService, StreamService};
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use shout_socket::batch::{RecvBatch, SendBatch};
use slab::Slab;
use std::fs::File;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tokens at or above this are not connections.
const FIRST_LISTENER: usize = 1 << 40;
const FIRST_UDP: usize = 1 << 41;
pub(crate) const WAKER: Token = Token(usize::MAX);

/// Reads per connection per turn: 16 × 64 KiB = 1 MiB before others get a turn.
const READS_PER_TURN: usize = 16;
/// Accepts per listener per turn.
const ACCEPTS_PER_TURN: usize = 256;
/// Datagrams received with one system call (`recvmmsg` on Linux). Enough
/// to share the call's cost thinly; each slot is 64 KiB of address space,
/// of which only the pages datagrams fill become memory.
const DATAGRAMS_PER_RECEIVE: usize = 16;
/// Datagrams per UDP socket per turn, at most.
const DATAGRAMS_PER_TURN: usize = 256;
/// Receives per UDP socket per turn: a turn's share of datagrams, in batches.
const RECEIVES_PER_TURN: usize = DATAGRAMS_PER_TURN / DATAGRAMS_PER_RECEIVE;
/// Replies queued per UDP socket when the socket would block...
const UDP_QUEUE_DATAGRAMS: usize = 1024;
/// ...and their bytes: replies past either limit are dropped and counted.
const UDP_QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// While stopping, a connection with no traffic for this long is done: its
/// answer is sent and its stream ended. Long enough for bytes in flight on a
/// LAN to land, short enough that a stop is quick.
const DRAIN_QUIET_PERIOD: Duration = Duration::from_millis(200);
/// While stopping, at most this many turns' shares of datagrams already
/// received are answered before the UDP sockets close.
const DRAIN_UDP_TURNS: usize = 64;
/// How long to stop accepting when even the spare descriptor is gone.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Settings one worker runs with.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) drain_timeout: Duration,
    pub(crate) max_pending_output: usize,
    pub(crate) read_buffer_size: usize,
}

struct Listener {
    socket: TcpListener,
    registered: bool,
}

struct UdpEndpoint {
    socket: UdpSocket,
    /// Replies not sent yet, in order: those of the batch being answered,
    /// then any the socket would not take (bounded).
    replies: SendBatch,
    writable: bool,
}

/// A source of events, decoded from its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Connection(usize),
    Listener(usize),
    Udp(usize),
    Waker,
}

impl Source {
    fn from_token(token: Token) -> Self {
        match token.0 {
            usize::MAX => Source::Waker,
            n if n >= FIRST_UDP => Source::Udp(n - FIRST_UDP),
            n if n >= FIRST_LISTENER => Source::Listener(n - FIRST_LISTENER),
            n => Source::Connection(n),
        }
    }

    fn token(self) -> Token {
        Token(match self {
            Source::Connection(key) => key,
            Source::Listener(index) => FIRST_LISTENER + index,
            Source::Udp(index) => FIRST_UDP + index,
            Source::Waker => usize::MAX,
        })
    }
}

/// Everything one event-loop thread owns.
pub(crate) struct Worker<S: StreamService, D: DatagramService> {
    pub(crate) id: usize,
    pub(crate) poll: Poll,
    listeners: Vec<Listener>,
    udp: Vec<UdpEndpoint>,
    connections: Slab<Connection<S::Session>>,
    idle: IdleList,
    stream_service: Arc<S>,
    datagram_service: Arc<D>,
    limits: Limits,
    shutdown: Arc<ShutdownSignal>,
    stats: Arc<WorkerStats>,
    /// One read buffer for every connection of this worker.
    read_buffer: Box<[u8]>,
    /// Datagrams received together, from whichever UDP socket is served.
    received: RecvBatch,
    /// Where a service writes its answer before it goes to the socket.
    scratch: Vec<u8>,
    hot: Vec<Source>,
    /// A descriptor held in reserve for accepting (and closing) one
    /// connection when the process has no descriptor left.
    spare_descriptor: Option<File>,
    out_of_descriptors: bool,
    limit_reported: bool,
    accept_paused_until: Option<Instant>,
    drain_deadline: Option<Instant>,
    now: Instant,
}

impl<S: StreamService, D: DatagramService> Worker<S, D> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        poll: Poll,
        tcp: Vec<std::net::TcpListener>,
        udp: Vec<std::net::UdpSocket>,
        stream_service: Arc<S>,
        datagram_service: Arc<D>,
        limits: Limits,
        shutdown: Arc<ShutdownSignal>,
        stats: Arc<WorkerStats>,
    ) -> io::Result<Self> {
        let registry = poll.registry();
        let mut listeners = Vec::with_capacity(tcp.len());
        for (index, listener) in tcp.into_iter().enumerate() {
            let mut socket = TcpListener::from_std(listener);
            registry.register(
                &mut socket,
                Source::Listener(index).token(),
                Interest::READABLE,
            )?;
            listeners.push(Listener {
                socket,
                registered: true,
            });
        }
        let mut endpoints = Vec::with_capacity(udp.len());
        for (index, socket) in udp.into_iter().enumerate() {
            let mut socket = UdpSocket::from_std(socket);
            let interest = Interest::READABLE | Interest::WRITABLE;
            registry.register(&mut socket, Source::Udp(index).token(), interest)?;
            endpoints.push(UdpEndpoint {
                socket,
                replies: SendBatch::new(),
                writable: true,
            });
        }
        let read_buffer = vec![0; limits.read_buffer_size].into_boxed_slice();
        // A TCP-only worker never receives a datagram: one slot, untouched.
        let received = RecvBatch::new(if endpoints.is_empty() {
            1
        } else {
            DATAGRAMS_PER_RECEIVE
        });
        Ok(Self {
            id,
            poll,
            listeners,
            udp: endpoints,
            connections: Slab::new(),
            idle: IdleList::new(),
            stream_service,
            datagram_service,
            limits,
            shutdown,
            stats,
            read_buffer,
            received,
            scratch: Vec::new(),
            hot: Vec::new(),
            spare_descriptor: open_spare_descriptor(),
            out_of_descriptors: false,
            limit_reported: false,
            accept_paused_until: None,
            drain_deadline: None,
            now: Instant::now(),
        })
    }

    /// Runs until shutdown is requested and the drain is over.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            self.now = Instant::now();
            for event in events.iter() {
                match Source::from_token(event.token()) {
                    Source::Connection(key) => {
                        if let Some(connection) = self.connections.get_mut(key) {
                            // Readiness is a hint: remember it, let the
                            // syscalls tell the truth.
                            connection.readable |=
                                event.is_readable() || event.is_read_closed() || event.is_error();
                            connection.writable |=
                                event.is_writable() || event.is_write_closed() || event.is_error();
                            connection.peer_hung_up |= event.is_read_closed();
                            self.drive_connection(key);
                        }
                    }
                    Source::Listener(index) => self.accept(index),
                    Source::Udp(index) => {
                        if event.is_writable() {
                            if let Some(endpoint) = self.udp.get_mut(index) {
                                endpoint.writable = true;
                            }
                        }
                        self.serve_datagrams(index);
                    }
                    Source::Waker => {}
                }
            }
            self.serve_hot();
            if self.drain_deadline.is_some() {
                self.finish_quiet_connections();
            } else {
                self.expire_idle();
            }
            self.resume_accepting_after_backoff();
            if self.shutdown.is_requested() && self.drain_deadline.is_none() {
                self.begin_drain();
            }
            if let Some(deadline) = self.drain_deadline {
                if self.connections.is_empty() || self.now >= deadline {
                    self.finish_drain();
                    return Ok(());
                }
            }
        }
    }

    /// How long the next poll may sleep: not past the next timer, not at
    /// all when a source still has work.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.hot.is_empty() {
            return Some(Duration::ZERO);
        }
        let idle_timeout = match self.drain_deadline {
            Some(_) => Some(DRAIN_QUIET_PERIOD),
            None => self.limits.idle_timeout,
        };
        let idle = idle_timeout.and_then(|timeout| self.idle.next_deadline(timeout));
        [idle, self.drain_deadline, self.accept_paused_until]
            .into_iter()
            .flatten()
            .min()
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    fn serve_hot(&mut self) {
        let mut hot = std::mem::take(&mut self.hot);
        // A source that was hot and had an event too this turn was pushed
        // twice. Served once: otherwise a source that stays busy (a UDP
        // flood, a bulk stream) gains one more share every turn and crowds
        // out everyone else.
        hot.sort_unstable_by_key(|source| source.token().0);
        hot.dedup();
        for source in hot {
            match source {
                Source::Connection(key) if self.connections.contains(key) => {
                    self.drive_connection(key)
                }
                Source::Listener(index) => self.accept(index),
                Source::Udp(index) => {
                    self.serve_datagrams(index);
                }
                Source::Connection(_) | Source::Waker => {}
            }
        }
    }

    // ----- accepting -----

    fn accept(&mut self, index: usize) {
        if self.drain_deadline.is_some() || self.accept_paused_until.is_some() {
            return;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            if self.connections.len() >= self.limits.max_connections {
                self.pause_listeners();
                return;
            }
            match self.listeners[index].socket.accept() {
                Ok((stream, peer)) => {
                    self.out_of_descriptors = false;
                    self.register_connection(stream, peer);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if is_out_of_descriptors(&error) => {
                    if !self.shed_one_connection(index, &error) {
                        return;
                    }
                }
                // The client gave up between handshake and accept, or the
                // call was interrupted: neither concerns other clients.
                Err(error) if is_transient_accept_error(&error) => {}
                Err(error) => {
                    log::error!("worker {}: accept failed: {error}", self.id);
                    return;
                }
            }
        }
        self.hot.push(Source::Listener(index));
    }

    fn register_connection(&mut self, mut stream: mio::net::TcpStream, peer: SocketAddr) {
        if let Err(error) = stream.set_nodelay(true) {
            log::debug!("{peer}: TCP_NODELAY not set: {error}");
        }
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(error) =
            self.poll
                .registry()
                .register(&mut stream, Source::Connection(key).token(), interest)
        {
            log::warn!("{peer}: cannot watch the connection, closing it: {error}");
            return;
        }
        let session = self.stream_service.open(peer);
        entry.insert(Connection::new(stream, peer, session));
        self.idle.touch(key, self.now);
        WorkerStats::add(&self.stats.connections_accepted, 1);
        log::debug!("{peer}: connected");
    }

    /// Out of descriptors: frees the spare to accept one waiting connection
    /// and close it, so it is refused rather than left hanging. Returns
    /// whether accepting may go on.
    fn shed_one_connection(&mut self, index: usize, error: &io::Error) -> bool {
        if !self.out_of_descriptors {
            self.out_of_descriptors = true;
            log::warn!(
                "worker {}: out of file descriptors ({error}) with {} connections open; \
                 refusing new connections until some close",
                self.id,
                self.connections.len()
            );
        }
        let Some(spare) = self.spare_descriptor.take() else {
            self.pause_accepting_for(ACCEPT_BACKOFF);
            return false;
        };
        drop(spare);
        // The accepted stream is dropped (closed) inside this statement, so
        // its descriptor is free again when the spare is reopened below.
        let shed = self.listeners[index]
            .socket
            .accept()
            .map(|(_stream, peer)| peer);
        self.spare_descriptor = open_spare_descriptor();
        match shed {
            Ok(peer) => {
                WorkerStats::add(&self.stats.connections_shed, 1);
                log::debug!("{peer}: closed at once, no descriptor to serve it");
                self.spare_descriptor.is_some()
            }
            Err(_) => {
                // Someone else took the freed descriptor: back off a little.
                self.pause_accepting_for(ACCEPT_BACKOFF);
                false
            }
        }
    }

    fn pause_accepting_for(&mut self, backoff: Duration) {
        self.accept_paused_until = Some(self.now + backoff);
    }

    fn resume_accepting_after_backoff(&mut self) {
        if self
            .accept_paused_until
            .is_some_and(|until| self.now >= until)
        {
            self.accept_paused_until = None;
            self.spare_descriptor = self.spare_descriptor.take().or_else(open_spare_descriptor);
            self.hot
                .extend((0..self.listeners.len()).map(Source::Listener));
        }
    }

    /// At the connection limit: stop listening for events entirely, so a
    /// burst of waiting clients costs no CPU.
    fn pause_listeners(&mut self) {
        for listener in self
            .listeners
            .iter_mut()
            .filter(|listener| listener.registered)
        {
            if let Err(error) = self.poll.registry().deregister(&mut listener.socket) {
                log::warn!("worker {}: cannot pause a listener: {error}", self.id);
            }
            listener.registered = false;
        }
        // Reported once at warning level; a server that lives at its limit
        // would otherwise log every time a client leaves and another enters.
        let level = if self.limit_reported {
            log::Level::Debug
        } else {
            log::Level::Warn
        };
        self.limit_reported = true;
        log::log!(
            level,
            "worker {}: {} connections, the limit: new clients wait until one closes",
            self.id,
            self.connections.len()
        );
    }

    /// Re-registers paused listeners; registering a socket that already has
    /// connections waiting raises an event for it at once.
    fn resume_listeners(&mut self) {
        if self.drain_deadline.is_some() {
            return;
        }
        for (index, listener) in self.listeners.iter_mut().enumerate() {
            if listener.registered {
                continue;
            }
            let token = Source::Listener(index).token();
            match self
                .poll
                .registry()
                .register(&mut listener.socket, token, Interest::READABLE)
            {
                Ok(()) => listener.registered = true,
                Err(error) => log::warn!("worker {}: cannot resume a listener: {error}", self.id),
            }
        }
    }

    // ----- connections -----

    /// Does all a connection can do now: write, read and answer, finish.
    fn drive_connection(&mut self, key: usize) {
        match self.step_connection(key) {
            Ok(true) => {}
            Ok(false) => self.close_connection(key, None),
            Err(error) => self.close_connection(key, Some(error)),
        }
    }

    /// Returns `Ok(false)` when the connection is done and should close.
    fn step_connection(&mut self, key: usize) -> io::Result<bool> {
        let Self {
            connections,
            stream_service,
            read_buffer,
            scratch,
            stats,
            limits,
            hot,
            idle,
            now,
            ..
        } = self;
        let connection = &mut connections[key];
        let mut active = stats_add_out(stats, connection.flush()?) > 0;

        let mut reads = 0;
        while connection.readable && !connection.input_ended {
            if connection.pending_output() >= limits.max_pending_output {
                // Backpressure: stay readable, resume when output drains.
                break;
            }
            if reads == READS_PER_TURN {
                hot.push(Source::Connection(key));
                break;
            }
            reads += 1;
            let read = match connection.stream.read(read_buffer) {
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    connection.readable = false;
                    break;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            active = true;
            scratch.clear();
            if read == 0 {
                connection.input_ended = true;
                if connection.phase == Phase::Serving {
                    stream_service.end(&mut connection.session, scratch);
                }
            } else {
                WorkerStats::add(&stats.bytes_in, read as u64);
                // In the later phases input is discarded: the answer is over.
                if connection.phase == Phase::Serving {
                    stream_service.data(&mut connection.session, &read_buffer[..read], scratch);
                }
                // A short read emptied the receive queue; new data raises a
                // new event. Unless the peer hung up: then read on to the 0.
                if read < read_buffer.len() && !connection.peer_hung_up {
                    connection.readable = false;
                }
            }
            if !scratch.is_empty() {
                stats_add_out(stats, connection.send(scratch)?);
            }
        }

        if active {
            idle.touch(key, *now);
        }
        if connection.pending_output() > 0 {
            return Ok(true);
        }
        // Everything answered has been sent.
        match connection.phase {
            Phase::Serving => Ok(!connection.input_ended),
            Phase::Finishing => {
                connection.stream.shutdown(Shutdown::Write)?;
                connection.phase = Phase::Lingering;
                Ok(!connection.input_ended)
            }
            Phase::Lingering => Ok(!connection.input_ended),
        }
    }

    fn close_connection(&mut self, key: usize, error: Option<io::Error>) {
        let mut connection = self.connections.remove(key);
        self.idle.remove(key);
        // Deregistering is optional (closing the descriptor does it), but
        // keeps the registry exact if a descriptor is ever shared.
        let _ = self.poll.registry().deregister(&mut connection.stream);
        WorkerStats::add(&self.stats.connections_closed, 1);
        match error {
            Some(error) => log::debug!("{}: closed on error: {error}", connection.peer),
            None => log::debug!("{}: closed", connection.peer),
        }
        if self.listeners.iter().any(|listener| !listener.registered)
            && self.connections.len() < self.limits.max_connections
        {
            self.resume_listeners();
        }
    }

    fn expire_idle(&mut self) {
        let Some(timeout) = self.limits.idle_timeout else {
            return;
        };
        while let Some(key) = self.idle.expired(self.now, timeout) {
            log::debug!(
                "{}: idle for {timeout:?}, closing",
                self.connections[key].peer
            );
            WorkerStats::add(&self.stats.idle_timeouts, 1);
            self.close_connection(key, None);
        }
    }

    // ----- datagrams -----

    /// Answers up to one turn's share of datagrams, a batch at a time: the
    /// waiting datagrams are received with one call, answered, and the
    /// replies sent with one call. Returns whether more may be waiting (the
    /// share ran out before the socket was empty); the socket is then on the
    /// hot list.
    fn serve_datagrams(&mut self, index: usize) -> bool {
        let Self {
            udp,
            datagram_service,
            received,
            scratch,
            stats,
            hot,
            ..
        } = self;
        // The sockets close when a drain starts; a stale event may still name one.
        let Some(endpoint) = udp.get_mut(index) else {
            return false;
        };
        endpoint.send_replies(stats);
        for _ in 0..RECEIVES_PER_TURN {
            let count = match received.recv_from(&endpoint.socket) {
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // An ICMP error for an earlier reply, for instance: it
                    // concerns one peer, not the socket.
                    log::debug!("udp {}: receive error: {error}", endpoint.local_addr());
                    continue;
                }
            };
            WorkerStats::add(&stats.datagrams_in, count as u64);
            for (request, peer) in received.iter() {
                scratch.clear();
                match datagram_service.datagram(request, peer, scratch) {
                    DatagramReply::Send => endpoint.queue_reply(peer, scratch, stats),
                    DatagramReply::Drop => WorkerStats::add(&stats.datagrams_dropped, 1),
                }
            }
            endpoint.send_replies(stats);
            if count < received.slots() {
                // The kernel stopped short of the slots because the socket
                // ran dry (the other reason, an ICMP error, is not reported
                // on an unconnected socket without IP_RECVERR). A datagram
                // arriving from now on raises a new edge, so asking again
                // now would only cost a call that finds nothing: at moderate
                // rates, where batches are small, that call was most of
                // what batching cost.
                return false;
            }
        }
        hot.push(Source::Udp(index));
        true
    }

    // ----- shutdown -----

    fn begin_drain(&mut self) {
        self.drain_deadline = Some(deadline_after(self.now, self.limits.drain_timeout));
        log::info!(
            "worker {}: stopping: {} connections to drain, {:?} at most",
            self.id,
            self.connections.len(),
            self.limits.drain_timeout
        );
        // New connections are refused from now on (the listeners close).
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener.socket);
        }
        // Datagrams already received are answered, then the sockets close.
        // Bounded: a flood must not hold the stop up for ever.
        for index in 0..self.udp.len() {
            for _ in 0..DRAIN_UDP_TURNS {
                if !self.serve_datagrams(index) {
                    break;
                }
            }
        }
        self.hot
            .retain(|source| matches!(source, Source::Connection(_)));
        for endpoint in &mut self.udp {
            endpoint.send_replies(&self.stats);
            // Replies the socket would not take now are lost with it: count them.
            let unsent = endpoint.replies.clear();
            WorkerStats::add(&self.stats.datagrams_dropped, unsent as u64);
        }
        self.udp.clear();
        self.finish_quiet_connections();
    }

    /// While stopping, ends every connection that has been quiet for
    /// [`DRAIN_QUIET_PERIOD`]: its answer is complete, so it gets the rest of
    /// its output and then an end of stream. Connections still exchanging
    /// data are served on, until they go quiet or the drain deadline.
    fn finish_quiet_connections(&mut self) {
        while let Some(key) = self.idle.expired(self.now, DRAIN_QUIET_PERIOD) {
            self.idle.remove(key);
            let Self {
                connections,
                stream_service,
                scratch,
                stats,
                ..
            } = self;
            let connection = &mut connections[key];
            if connection.phase != Phase::Serving {
                continue;
            }
            if connection.readable && !connection.input_ended {
                // Quiet only because backpressure stopped reading: request
                // bytes wait unread, and they are owed an answer. Served on
                // until they are answered or the drain deadline.
                self.idle.touch(key, self.now);
                continue;
            }
            connection.phase = Phase::Finishing;
            if !connection.input_ended {
                // The end of the answer (a held partial character, say).
                scratch.clear();
                stream_service.end(&mut connection.session, scratch);
                if let Err(error) = connection
                    .send(scratch)
                    .map(|written| stats_add_out(stats, written))
                {
                    self.close_connection(key, Some(error));
                    continue;
                }
            }
            self.drive_connection(key);
        }
    }

    fn finish_drain(&mut self) {
        let cut = self.connections.len();
        if cut > 0 {
            log::warn!(
                "worker {}: drain timeout: closing {cut} connections still open",
                self.id
            );
        }
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close_connection(key, None);
        }
    }
}

impl UdpEndpoint {
    fn local_addr(&self) -> String {
        self.socket
            .local_addr()
            .map_or_else(|_| "socket".into(), |addr| addr.to_string())
    }

    /// Queues a reply to go out with the rest of its batch; past the
    /// queue's bounds (the socket has been refusing replies for a while) it
    /// is dropped and counted instead.
    fn queue_reply(&mut self, peer: SocketAddr, reply: &[u8], stats: &WorkerStats) {
        if self.replies.len() >= UDP_QUEUE_DATAGRAMS
            || self.replies.bytes() + reply.len() > UDP_QUEUE_BYTES
        {
            WorkerStats::add(&stats.datagrams_dropped, 1);
            return;
        }
        self.replies.push(peer, reply);
    }

    /// Sends queued replies while the socket takes them.
    fn send_replies(&mut self, stats: &WorkerStats) {
        if !self.writable || self.replies.is_empty() {
            return;
        }
        let outcome = self.replies.send_to(&self.socket, |peer, error| {
            log::debug!("udp reply to {peer} failed: {error}");
        });
        WorkerStats::add(&stats.datagrams_out, outcome.sent as u64);
        WorkerStats::add(&stats.datagrams_dropped, outcome.failed as u64);
        if outcome.would_block {
            self.writable = false;
        }
    }
}

fn stats_add_out(stats: &WorkerStats, written: usize) -> usize {
    WorkerStats::add(&stats.bytes_out, written as u64);
    written
}

/// `now + after`, or a century from now where `after` is too large to add
/// (a timeout given as "practically never").
fn deadline_after(now: Instant, after: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    now.checked_add(after.min(CENTURY)).unwrap_or(now)
}

fn open_spare_descriptor() -> Option<File> {
    File::open("/dev/null").ok()
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn is_transient_accept_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) || matches!(error.raw_os_error(), Some(libc::EPROTO | libc::EPERM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for source in [
            Source::Connection(0),
            Source::Connection(123_456),
            Source::Listener(3),
            Source::Udp(2),
            Source::Waker,
        ] {
            assert_eq!(Source::from_token(source.token()), source);
        }
    }
}
