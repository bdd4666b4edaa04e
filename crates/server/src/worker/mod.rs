//! The event loop: one thread, one `mio::Poll`, many sockets.
//!
//! This module is the loop itself: it waits for events, hands each to the
//! part that owns its source, and keeps the turn fair. The parts are
//! [`accept`] (listeners, the connection cap, descriptor exhaustion and
//! back-off), [`streams`] (TCP connections), [`datagrams`] (UDP) and
//! [`drain`] (the stop).
//!
//! # The readiness contract, and how this loop keeps it
//! Sockets are registered once, edge-triggered. An event says a socket
//! *became* ready; each connection remembers that in its
//! [`StreamReadiness`](shout_socket::StreamReadiness) and forgets it only
//! when the kernel says so (`WouldBlock`, or a short read or write, which
//! means the same thing one syscall earlier; after a hang-up or urgent data,
//! only `WouldBlock`). So output never costs a re-registration, and an
//! ordinary request costs one read and one write.
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
//! - At `max_connections`, counted over all workers, the listeners are
//!   deregistered until a connection closes on any worker: no events, no
//!   spinning; clients wait in the backlog.
//! - Out of file descriptors, a spare descriptor is given up to accept and
//!   close the waiting connection, so it is refused instead of hanging.

mod accept;
mod calls;
mod datagrams;
mod drain;
#[cfg(feature = "quic")]
pub(crate) mod quic;
#[cfg(feature = "quic")]
mod quic_streams;
mod streams;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "ws")]
mod ws;

use crate::connection::{LayerError, TransportLayer};
use crate::handle::{Handle, ShutdownSignal};
use crate::proxy::ProxyTrust;
use crate::service::{DatagramService, StreamService};
use crate::sources::ConnectionSlots;
use crate::sources::{ReplyRate, ReplyRateLimiter};
use crate::stats::WorkerStats;
use accept::{Accepted, Acceptor};
use datagrams::Datagrams;
use mio::net::TcpStream;
use mio::{Events, Poll, Token};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use streams::Streams;

/// Sockets of one kind (listeners, UDP sockets) a worker can have: their
/// tokens sit just below the waker's, so connection keys have the rest of
/// the token space on any pointer width.
pub(crate) const MAX_SOCKETS_PER_KIND: usize = 1 << 12;
const FIRST_UDP: usize = usize::MAX - MAX_SOCKETS_PER_KIND;
const FIRST_LISTENER: usize = FIRST_UDP - MAX_SOCKETS_PER_KIND;
const FIRST_QUIC: usize = FIRST_LISTENER - MAX_SOCKETS_PER_KIND;
/// The largest connection key that has a token.
const MAX_CONNECTION_KEY: usize = FIRST_QUIC - 1;
pub(crate) const WAKER: Token = Token(usize::MAX);

/// The bit that tags a QUIC stream's key in the senders' mailbox, so that
/// its commands reach the QUIC part, not a TCP connection's slab. The
/// mailbox keeps keys in 32 bits; a TCP connection's key, its place in a
/// slab of open connections, stays far below 2^31 (each is a descriptor).
pub(crate) const QUIC_STREAM_KEY: usize = 1 << 31;

/// Accepts per listener per turn.
const ACCEPTS_PER_TURN: usize = 256;

/// Settings one worker runs with.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) idle_timeout: Option<Duration>,
    /// How long a connection whose session ended lingers for the client's
    /// end of stream.
    pub(crate) linger_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) max_pending_output: usize,
    pub(crate) read_buffer_size: usize,
    /// How long to poll without sleeping after the last event; zero is off.
    pub(crate) busy_poll: Duration,
    /// Replies per source per second over UDP, and the burst.
    pub(crate) reply_rate: ReplyRate,
    /// The largest UDP reply, as a multiple of its request; 0 is no limit.
    pub(crate) reply_ratio: u32,
    /// How long a PROXY header and a TLS handshake may take, from the
    /// accept.
    pub(crate) handshake_timeout: Duration,
}

/// What a stream listener serves: plain TCP or TLS, with or without a
/// PROXY header first. Each listener has its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListenerKind {
    /// The TLS config, on a TLS listener; it notes the SNI
    /// ([`recording_sni`](crate::tls::recording_sni)).
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// The senders trusted for a PROXY header, on a listener that expects
    /// one.
    pub(crate) proxy: Option<Arc<ProxyTrust>>,
    /// What a WebSocket listener serves besides the service.
    #[cfg(feature = "ws")]
    pub(crate) websocket: Option<Arc<crate::ws::WebSocketConfig>>,
}

impl ListenerKind {
    /// Returns the kind of a plain listener, after a PROXY header from
    /// `proxy` if given.
    pub(crate) fn plain(proxy: Option<&Arc<ProxyTrust>>) -> Self {
        #[cfg_attr(not(feature = "tls"), allow(clippy::needless_update))]
        Self {
            proxy: proxy.cloned(),
            ..Self::default()
        }
    }

    /// Returns the kind of a listener serving TLS under `config`, after a
    /// PROXY header from `proxy` if given.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(config: &Arc<rustls::ServerConfig>, proxy: Option<&Arc<ProxyTrust>>) -> Self {
        Self {
            tls: Some(crate::tls::recording_sni(config)),
            proxy: proxy.cloned(),
            #[cfg(feature = "ws")]
            websocket: None,
        }
    }

    /// Returns the transport layer a new connection on this listener
    /// starts with.
    pub(crate) fn transport_layer(&self) -> Result<TransportLayer, LayerError> {
        #[cfg(feature = "tls")]
        if let Some(config) = &self.tls {
            let layer = crate::tls::TlsLayer::new(Arc::clone(config))?;
            return Ok(TransportLayer::Tls(Box::new(layer)));
        }
        Ok(TransportLayer::Plain)
    }
}

/// A connection of this loop: on a TCP socket.
type TcpConnection<Session> = crate::connection::Connection<Session, TcpStream>;

impl crate::connection::Stream for TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// A source of events, decoded from its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Connection(usize),
    Listener(usize),
    Udp(usize),
    /// A QUIC listener's UDP socket.
    Quic(usize),
    Waker,
}

impl Source {
    fn from_token(token: Token) -> Self {
        match token.0 {
            usize::MAX => Source::Waker,
            n if n >= FIRST_UDP => Source::Udp(n - FIRST_UDP),
            n if n >= FIRST_LISTENER => Source::Listener(n - FIRST_LISTENER),
            n if n >= FIRST_QUIC => Source::Quic(n - FIRST_QUIC),
            n => Source::Connection(n),
        }
    }

    /// Returns the token of a source; indices and keys are within their
    /// ranges (the builder and [`Streams::admit`] see to it).
    fn token(self) -> Token {
        Token(match self {
            Source::Connection(key) => key,
            Source::Listener(index) => FIRST_LISTENER + index,
            Source::Udp(index) => FIRST_UDP + index,
            Source::Quic(index) => FIRST_QUIC + index,
            Source::Waker => usize::MAX,
        })
    }
}

/// What every part of the loop updates: the worker's counters, the time of
/// this turn, and the sources to serve again before sleeping.
struct Context {
    id: usize,
    stats: Arc<WorkerStats>,
    now: Instant,
    hot: Vec<Source>,
}

/// Everything one event-loop thread owns.
pub(crate) struct Worker<S: StreamService, D: DatagramService> {
    pub(crate) id: usize,
    poll: Poll,
    context: Context,
    acceptor: Acceptor,
    streams: Streams<S>,
    datagrams: Datagrams<D>,
    #[cfg(feature = "quic")]
    quic: quic::Quic<S>,
    shutdown: Arc<ShutdownSignal>,
    drain_timeout: Duration,
    drain_deadline: Option<Instant>,
    busy_poll: Duration,
    last_event: Instant,
    /// When the last turn's work ended.
    turn_ended: Instant,
}

/// The sockets and shared state a worker is built from.
pub(crate) struct WorkerParts<S, D> {
    pub(crate) tcp: Vec<(std::net::TcpListener, ListenerKind)>,
    pub(crate) udp: Vec<std::net::UdpSocket>,
    #[cfg(feature = "quic")]
    pub(crate) quic: Vec<quic::QuicSocket>,
    #[cfg(feature = "quic")]
    pub(crate) quic_limits: crate::quic::QuicLimits,
    pub(crate) stream_service: Arc<S>,
    pub(crate) datagram_service: Arc<D>,
    pub(crate) limits: Limits,
    pub(crate) slots: Arc<ConnectionSlots>,
    pub(crate) stats: Arc<WorkerStats>,
    /// The server's handle: its senders, its counters, its stop.
    pub(crate) handle: Handle,
}

impl<S: StreamService, D: DatagramService> Worker<S, D> {
    pub(crate) fn new(id: usize, poll: Poll, parts: WorkerParts<S, D>) -> io::Result<Self> {
        let registry = poll.registry();
        let acceptor = Acceptor::new(registry, parts.tcp, Arc::clone(&parts.slots))?;
        let limiter = ReplyRateLimiter::new(parts.limits.reply_rate, Instant::now());
        let datagrams = Datagrams::new(
            registry,
            parts.udp,
            parts.datagram_service,
            limiter,
            Arc::clone(&parts.handle.datagram_sender.post),
            parts.limits.reply_ratio,
        )?;
        let shutdown = Arc::clone(&parts.handle.shutdown);
        #[cfg(feature = "quic")]
        let quic = quic::Quic::new(
            registry,
            quic::QuicParts {
                sockets: parts.quic,
                service: Arc::clone(&parts.stream_service),
                handle: parts.handle.clone(),
                slots: Arc::clone(&parts.slots),
                limits: parts.quic_limits,
                handshake_timeout: parts.limits.handshake_timeout,
                worker: id,
            },
        )?;
        let streams = Streams::new(id, parts.stream_service, &parts.limits, parts.handle);
        Ok(Self {
            id,
            poll,
            context: Context {
                id,
                stats: parts.stats,
                now: Instant::now(),
                hot: Vec::new(),
            },
            acceptor,
            streams,
            datagrams,
            #[cfg(feature = "quic")]
            quic,
            shutdown,
            drain_timeout: parts.limits.drain_timeout,
            drain_deadline: None,
            busy_poll: parts.limits.busy_poll,
            last_event: Instant::now(),
            turn_ended: Instant::now(),
        })
    }

    /// Runs until shutdown is requested and the drain is over. A worker
    /// whose loop fails (an error of `epoll`, a panic outside the
    /// service's callbacks) requests the stop, so that every worker ends
    /// and [`Server::run`](crate::Server::run) returns the failure.
    pub(crate) fn run(self) -> io::Result<()> {
        let shutdown = Arc::clone(&self.shutdown);
        shutdown.stop_on_failure(|| self.serve())
    }

    /// The loop of [`run`](Self::run).
    fn serve(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            self.context.now = Instant::now();
            if !events.is_empty() {
                self.last_event = self.context.now;
            }
            for event in events.iter() {
                match Source::from_token(event.token()) {
                    Source::Connection(key) => {
                        if self.streams.note(key, event) {
                            self.streams
                                .drive(key, self.poll.registry(), &mut self.context);
                        }
                    }
                    Source::Listener(index) => self.accept(index),
                    Source::Udp(index) => {
                        if event.is_writable() {
                            self.datagrams.note_writable(index);
                        }
                        self.datagrams.serve(index, &mut self.context);
                    }
                    Source::Quic(index) => self.serve_quic(index),
                    // A stop, or room under the connection cap: both are
                    // looked at below, every turn.
                    Source::Waker => {}
                }
            }
            let registry = self.poll.registry();
            self.streams.take_commands(&mut self.context);
            #[cfg(feature = "quic")]
            if !self.streams.quic_commands.is_empty() {
                let commands = std::mem::take(&mut self.streams.quic_commands);
                self.quic.take_commands(commands, &mut self.context);
            }
            self.datagrams.take_sent(&mut self.context);
            self.streams.fire_timers(registry, &mut self.context);
            #[cfg(feature = "quic")]
            self.quic.fire_timers(&mut self.context);
            self.serve_hot();
            let registry = self.poll.registry();
            if self.drain_deadline.is_some() {
                self.streams
                    .finish_quiet(drain::DRAIN_QUIET_PERIOD, registry, &mut self.context);
                #[cfg(feature = "quic")]
                self.quic
                    .finish_quiet(drain::DRAIN_QUIET_PERIOD, &mut self.context);
            } else {
                self.streams.expire_idle(registry, &mut self.context);
                self.acceptor.resume_after_backoff(&mut self.context);
                self.acceptor.resume_if_room(registry, &self.context);
            }
            if self.shutdown.is_requested() && self.drain_deadline.is_none() {
                self.begin_drain();
            }
            if let Some(deadline) = self.drain_deadline {
                if (self.streams.is_empty() && self.quic_is_empty()) || self.context.now >= deadline
                {
                    self.finish_drain();
                    return Ok(());
                }
            }
            self.end_turn();
        }
    }

    /// Counts the turn and how long its work took: the one clock read a
    /// turn adds, which the next poll's timeout reuses.
    fn end_turn(&mut self) {
        let end = Instant::now();
        self.context
            .stats
            .note_turn(end.saturating_duration_since(self.context.now));
        self.turn_ended = end;
    }

    /// How long the next poll may sleep: not past the next timer, not at
    /// all when a source still has work or within the busy-poll window
    /// after the last event.
    fn poll_timeout(&self) -> Option<Duration> {
        // Without busy polling (the default) the clock arithmetic is skipped.
        let busy = !self.busy_poll.is_zero()
            && self.context.now.saturating_duration_since(self.last_event) < self.busy_poll;
        if !self.context.hot.is_empty() || busy {
            return Some(Duration::ZERO);
        }
        let idle = match self.drain_deadline {
            Some(_) => self.streams.next_quiet_deadline(drain::DRAIN_QUIET_PERIOD),
            None => self.streams.next_idle_deadline(),
        };
        let timer = earliest(self.streams.next_timer_deadline(), self.quic_deadline());
        // Folded by hand: an array of options through `flatten().min()`
        // costs a dozen instructions more per turn.
        let deadline = earliest(
            earliest(idle, timer),
            earliest(self.drain_deadline, self.acceptor.backoff_until()),
        );
        deadline.map(|deadline| deadline.saturating_duration_since(self.turn_ended))
    }

    fn serve_hot(&mut self) {
        let mut hot = std::mem::take(&mut self.context.hot);
        // A source that was hot and had an event too this turn was pushed
        // twice. Served once: otherwise a source that stays busy (a UDP
        // flood, a bulk stream) gains one more share every turn and crowds
        // out everyone else.
        hot.sort_unstable_by_key(|source| source.token().0);
        hot.dedup();
        for source in hot {
            match source {
                Source::Connection(key) if self.streams.contains(key) => {
                    self.streams
                        .drive(key, self.poll.registry(), &mut self.context);
                }
                Source::Listener(index) => self.accept(index),
                Source::Udp(index) => {
                    self.datagrams.serve(index, &mut self.context);
                }
                Source::Quic(index) => self.serve_quic(index),
                Source::Connection(_) | Source::Waker => {}
            }
        }
    }

    /// Serves QUIC listener `index`'s datagrams (none without the `quic`
    /// feature, which has no such listener).
    fn serve_quic(&mut self, index: usize) {
        #[cfg(feature = "quic")]
        self.quic.serve(index, &mut self.context);
        #[cfg(not(feature = "quic"))]
        let _ = index;
    }

    /// Returns whether no QUIC connection is left (always, without the
    /// `quic` feature).
    fn quic_is_empty(&self) -> bool {
        #[cfg(feature = "quic")]
        return self.quic.is_empty();
        #[cfg(not(feature = "quic"))]
        true
    }

    /// When the next QUIC timer is due: quinn-proto's, a handshake
    /// deadline, a service's, or while stopping, a stream going quiet.
    fn quic_deadline(&self) -> Option<Instant> {
        #[cfg(feature = "quic")]
        return earliest(
            self.quic.next_deadline(),
            self.drain_deadline
                .and_then(|_| self.quic.next_quiet_deadline(drain::DRAIN_QUIET_PERIOD)),
        );
        #[cfg(not(feature = "quic"))]
        None
    }

    /// Accepts up to one turn's share of waiting connections on a listener.
    fn accept(&mut self, index: usize) {
        if self.drain_deadline.is_some() {
            return;
        }
        let registry = self.poll.registry();
        for _ in 0..ACCEPTS_PER_TURN {
            match self.acceptor.accept(index, registry, &mut self.context) {
                Accepted::Connection(stream, peer, slot) => {
                    let listener = self.acceptor.listener(index);
                    self.streams
                        .admit(stream, peer, slot, listener, registry, &mut self.context);
                }
                Accepted::Nothing => {}
                Accepted::Stop => return,
            }
        }
        self.context.hot.push(Source::Listener(index));
    }
}

/// The earlier of two optional deadlines.
#[inline]
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Counts and logs a service callback's panic, with its message.
fn note_panic(stats: &WorkerStats, who: &dyn std::fmt::Display, payload: calls::Panic) {
    WorkerStats::add(&stats.service_panics, 1);
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)");
    log::error!("{who}: the service panicked: {message}; only this one is dropped");
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
            Source::Quic(1),
            Source::Waker,
        ] {
            assert_eq!(Source::from_token(source.token()), source);
        }
    }

    #[test]
    fn tokens_round_trip_at_the_edges_of_each_range() {
        let last = MAX_SOCKETS_PER_KIND - 1;
        for source in [
            Source::Connection(MAX_CONNECTION_KEY),
            Source::Listener(0),
            Source::Listener(last),
            Source::Udp(0),
            Source::Udp(last),
            Source::Quic(0),
            Source::Quic(last),
        ] {
            assert_eq!(Source::from_token(source.token()), source);
        }
        assert_eq!(Source::Udp(last).token().0, usize::MAX - 1);
        assert_eq!(Source::from_token(WAKER), Source::Waker);
        // Every range lies in the top of the token space, whatever the
        // pointer width: connections keep all but 3 × 4,096 tokens.
        assert_eq!(
            MAX_CONNECTION_KEY,
            usize::MAX - 3 * MAX_SOCKETS_PER_KIND - 1
        );
    }
}
