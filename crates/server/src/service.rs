//! What the event loop runs: services that turn bytes in into bytes out,
//! and the view of a connection they get while they do.
//!
//! The loop owns sockets, buffers, limits and timers; a service owns only the
//! application's logic. A stream service sees each TCP connection as a
//! session fed chunks of bytes, through a [`ConnectionContext`] it writes to
//! and asks things of (close, half-close, a timer); a datagram service
//! answers one datagram at a time. Services never block and never see a
//! socket. The full contract is in docs/EMBEDDING.md.

use crate::handle::Handle;
pub use crate::id::ConnectionId;
use crate::sender::ConnectionSender;
pub use crate::timer::Timer;
use shout_protocol::{Uppercaser, uppercase_datagram};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a connection reaches the service: plain TCP, or TLS over TCP.
///
/// More transports come in new releases (WebSocket, QUIC streams): match
/// with a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// Plain TCP: bytes as they came.
    #[default]
    Plain,
    /// TLS, once the handshake is done (cargo feature `tls`).
    #[cfg(feature = "tls")]
    Tls {
        /// The protocol version agreed (TLS 1.2 or 1.3).
        version: rustls::ProtocolVersion,
        /// The server name the client asked for (SNI), if it sent one.
        sni: Option<String>,
    },
    /// One bidirectional stream of a QUIC connection, TLS 1.3 inside
    /// (cargo feature `quic`).
    #[cfg(feature = "quic")]
    Quic {
        /// The stream's id in its connection (RFC 9000 §2.1): 0, 4, 8...
        /// for a client's bidirectional streams.
        stream: u64,
        /// The server name the client asked for (SNI), if it sent one.
        sni: Option<String>,
    },
    /// WebSocket, once upgraded (cargo feature `ws`): each data message's
    /// payload is the service's input (docs/PROTOCOL.md, "WebSocket").
    #[cfg(feature = "ws")]
    WebSocket {
        /// Over TLS (`wss`).
        secure: bool,
    },
}

/// What is known of a connection from its accept to its close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub(crate) id: ConnectionId,
    pub(crate) peer: SocketAddr,
    /// The listener, the server's address and the transport, shared by
    /// the connections that have the same.
    pub(crate) end: Arc<LocalEnd>,
}

/// The server's end of connections: the listener they came from (its
/// index and address), the server's address on them, and how they reach
/// the service. Plain connections share one: on a listener with a specific
/// address, every connection has the listener's; on an unspecified
/// address, one per local address. A TLS connection has its own once its
/// handshake is done (its version and SNI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalEnd {
    pub(crate) listener: usize,
    pub(crate) listener_addr: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) transport: Transport,
}

impl ConnectionInfo {
    /// Returns the connection's id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Returns the client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Returns the server's address on this connection.
    pub fn local(&self) -> SocketAddr {
        self.end.local
    }

    /// Returns the index of the listener the connection came from. The
    /// listeners are numbered by kind, whatever the order of the builder's
    /// calls: first those [`Handle::tcp_addrs`](crate::Handle::tcp_addrs)
    /// lists (the `tcp()` addresses in order, then the `tcp_listener()`
    /// sockets), then [`Handle::tls_addrs`](crate::Handle::tls_addrs),
    /// then [`Handle::ws_addrs`](crate::Handle::ws_addrs), then
    /// [`Handle::quic_addrs`](crate::Handle::quic_addrs), each in its
    /// list's order. With one `tcp()` and one `tls()`, the TLS listener
    /// is 1 even if `tls()` was called first.
    pub fn listener(&self) -> usize {
        self.end.listener
    }

    /// Returns the address of the listener the connection came from.
    pub fn listener_addr(&self) -> SocketAddr {
        self.end.listener_addr
    }

    /// Returns how the connection reaches the service: plain TCP, or TLS
    /// with its version and SNI name.
    pub fn transport(&self) -> &Transport {
        &self.end.transport
    }
}

/// Why [`StreamService::end`] is called.
///
/// New reasons may come in new releases: match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The client shut down its sending side (end of stream).
    ClientClosed,
    /// The server is stopping and the connection went quiet: this is the
    /// last chance to write before the stream ends.
    Stopping,
}

/// Why a connection closed, given to [`StreamService::closed`].
///
/// New causes may come in new releases: match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseCause {
    /// The client ended its stream and everything owed was sent.
    ClientClosed,
    /// The client reset the connection, or it broke.
    Reset,
    /// Another I/O error.
    Error(io::ErrorKind),
    /// No byte moved for the idle timeout.
    IdleTimeout,
    /// The server stopped: the drain ended the connection or cut it at the
    /// drain deadline.
    Stopped,
    /// The service asked for it ([`ConnectionContext::close`] or
    /// [`ConnectionSender::close`]).
    ServiceClosed,
    /// A service callback panicked.
    Panicked,
    /// A limit refused the connection before the service opened it: behind
    /// a PROXY balancer, the client its header named already held its share
    /// of connections. The service never sees such a connection.
    Refused,
}

impl CloseCause {
    /// Returns the cause an I/O error means.
    pub(crate) fn of(error: &io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => CloseCause::Reset,
            kind => CloseCause::Error(kind),
        }
    }
}

/// What a callback asked of the loop, applied when it returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Requests {
    pub(crate) close: bool,
    pub(crate) shutdown_write: bool,
    /// What each service timer is to do, by [`Timer::index`].
    pub(crate) timers: [TimerRequest; Timer::COUNT],
}

impl Requests {
    pub(crate) const NONE: Self = Self {
        close: false,
        shutdown_write: false,
        timers: [TimerRequest::Keep; Timer::COUNT],
    };
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum TimerRequest {
    #[default]
    Keep,
    Set(Instant),
    Cancel,
}

/// One connection, as a callback sees it: who it is, where its output goes,
/// and what the service may ask of the loop.
///
/// Output written here goes to the client after whatever is pending, in
/// order. Requests ([`close`](Self::close), a timer...) take effect when the
/// callback returns.
pub struct ConnectionContext<'a> {
    pub(crate) info: &'a ConnectionInfo,
    pub(crate) output: &'a mut Vec<u8>,
    /// Output the connection held before this call.
    pub(crate) pending: usize,
    pub(crate) max_pending_output: usize,
    pub(crate) now: Instant,
    pub(crate) handle: &'a Handle,
    pub(crate) requests: Requests,
}

impl ConnectionContext<'_> {
    /// Returns the connection's id, for [`ConnectionSender`].
    pub fn id(&self) -> ConnectionId {
        self.info.id
    }

    /// Returns the client's address.
    pub fn peer(&self) -> SocketAddr {
        self.info.peer
    }

    /// Returns the server's address on this connection.
    pub fn local(&self) -> SocketAddr {
        self.info.local()
    }

    /// Returns the index of the listener the connection came from,
    /// numbered as [`ConnectionInfo::listener`] says: TCP, then TLS, then
    /// WebSocket, then QUIC listeners.
    pub fn listener(&self) -> usize {
        self.info.listener()
    }

    /// Returns how the connection reaches the service: plain TCP, or TLS
    /// (the handshake is over before [`StreamService::open`]).
    pub fn transport(&self) -> &Transport {
        self.info.transport()
    }

    /// Returns what is known of the connection.
    pub fn info(&self) -> &ConnectionInfo {
        self.info
    }

    /// Appends `bytes` to the output.
    pub fn write(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Returns the output buffer of this call, to append to without a copy.
    /// It holds only what this call wrote: never clear what is not yours.
    pub fn output(&mut self) -> &mut Vec<u8> {
        self.output
    }

    /// Closes the connection once its output is sent: what it holds, this
    /// call's output, then what was queued to it through a
    /// [`ConnectionSender`] before this call. From the call on, sends to
    /// it get [`SendError::Closed`](crate::SendError::Closed) and
    /// broadcasts skip it. Once the output is sent, the stream is ended
    /// and [`StreamService::closed`] comes at once, the only callback
    /// after this one; the socket then reads and discards until the
    /// client's end or the linger timeout
    /// ([`ServerBuilder::linger_timeout`](crate::ServerBuilder::linger_timeout)).
    /// [`ConnectionSender::close`] means the same.
    pub fn close(&mut self) {
        self.requests.close = true;
    }

    /// Ends the sending side once its output, this call's included, is
    /// sent, and keeps reading: `data` and `end` still come, but what later
    /// calls write is discarded. From the call on, sends to it get
    /// [`SendError::Closed`](crate::SendError::Closed) and broadcasts skip
    /// it.
    pub fn shutdown_write(&mut self) {
        self.requests.shutdown_write = true;
    }

    /// Sets the connection's [`Timer::DEFAULT`]: `set_timer_for(Timer::DEFAULT, after)`.
    pub fn set_timer(&mut self, after: Duration) {
        self.set_timer_for(Timer::DEFAULT, after);
    }

    /// Cancels the connection's [`Timer::DEFAULT`], if set.
    pub fn cancel_timer(&mut self) {
        self.cancel_timer_for(Timer::DEFAULT);
    }

    /// Sets `timer` to come due `after` from [`now`](Self::now), replacing
    /// that timer's earlier deadline; the connection's other timers keep
    /// theirs. When it comes due, [`StreamService::timer_fired`] is called
    /// once with it. A zero `after` comes due on the loop's next turn.
    pub fn set_timer_for(&mut self, timer: Timer, after: Duration) {
        let at = self.now.checked_add(after).unwrap_or(self.now + FAR_FUTURE);
        self.requests.timers[timer.index()] = TimerRequest::Set(at);
    }

    /// Sets `timer` to come due at `at`, a time from [`now`](Self::now) or
    /// one kept from an earlier callback, replacing that timer's earlier
    /// deadline. A time already past comes due on the loop's next turn.
    pub fn set_timer_at(&mut self, timer: Timer, at: Instant) {
        self.requests.timers[timer.index()] = TimerRequest::Set(at);
    }

    /// Cancels `timer`, if set; the connection's other timers stay.
    pub fn cancel_timer_for(&mut self, timer: Timer) {
        self.requests.timers[timer.index()] = TimerRequest::Cancel;
    }

    /// Returns the loop's time for this turn: every callback of the turn
    /// sees the same instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Returns the bytes not yet sent: what the connection held before this
    /// call, plus what this call wrote.
    pub fn pending_output(&self) -> usize {
        self.pending + self.output.len()
    }

    /// Returns whether the pending output is below the server's
    /// `max_pending_output`.
    pub fn is_writable(&self) -> bool {
        self.pending_output() < self.max_pending_output
    }

    /// Returns a handle to write to any connection from anywhere.
    pub fn sender(&self) -> ConnectionSender {
        self.handle.sender()
    }

    /// Returns the server's handle: its counters
    /// ([`stats`](Handle::stats)), its stop ([`shutdown`](Handle::shutdown)),
    /// its addresses and its senders. Clone it to keep it. Never call
    /// [`Handle::wait_for_shutdown`] from a callback: the stop waits for
    /// the loop, and the loop for the callback.
    pub fn handle(&self) -> &Handle {
        self.handle
    }
}

/// What "never" becomes for a timer too far away to represent: a century.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Serves TCP connections, one session per connection.
///
/// For each connection the loop calls, on the worker thread that owns it
/// and one at a time: [`open`](Self::open) once; then [`data`](Self::data)
/// for every chunk read (cut wherever the network cut it),
/// [`timer`](Self::timer) when a timer set through the context is due,
/// [`writable_changed`](Self::writable_changed) when the output fills up
/// or drains, and [`end`](Self::end) at most once; and last
/// [`closed`](Self::closed), exactly once, whatever the cause. Calls must
/// return promptly: the loop serves every other client on the same thread.
/// A panic in a callback closes that connection only
/// ([`CloseCause::Panicked`]). docs/EMBEDDING.md has the whole contract.
pub trait StreamService: Send + Sync + 'static {
    /// Per-connection state. Keep it small: an idle server holds one per
    /// connection, thousands at once. `Send` because a worker is built on
    /// one thread and runs on another; a session never changes thread.
    type Session: Send + 'static;

    /// Receives the server's handle once, when
    /// [`ServerBuilder::build`](crate::ServerBuilder::build) has bound every
    /// socket, on the thread that calls `build` and before any other call.
    /// Keep a clone (in a `OnceLock`, say) to reach the counters, the stop
    /// or the senders from places that have no context. Does nothing by
    /// default. A callback of a connection can use
    /// [`ConnectionContext::handle`] instead.
    fn server_built(&self, handle: &Handle) {
        let _ = handle;
    }

    /// Returns the session of a new connection; may write a greeting.
    fn open(&self, conn: &mut ConnectionContext<'_>) -> Self::Session;

    /// Handles bytes that arrived on the connection.
    fn data(&self, session: &mut Self::Session, input: &[u8], conn: &mut ConnectionContext<'_>);

    /// Handles the end of input: the client will send nothing more
    /// ([`EndReason::ClientClosed`]), or the server is stopping
    /// ([`EndReason::Stopping`]). A last answer may be written. Called at
    /// most once, never after the service closed the connection.
    fn end(
        &self,
        session: &mut Self::Session,
        conn: &mut ConnectionContext<'_>,
        reason: EndReason,
    ) {
        let _ = (session, conn, reason);
    }

    /// Handles the connection's [`Timer::DEFAULT`], set with
    /// [`ConnectionContext::set_timer`], coming due. Called by the default
    /// [`timer_fired`](Self::timer_fired) for every timer: a service with
    /// one timer implements this, one with several `timer_fired`.
    fn timer(&self, session: &mut Self::Session, conn: &mut ConnectionContext<'_>) {
        let _ = (session, conn);
    }

    /// Handles `timer`, set with [`ConnectionContext::set_timer_for`] (or
    /// [`set_timer`](ConnectionContext::set_timer): `Timer::DEFAULT`),
    /// coming due. Timers due in the same turn come in order of deadline.
    /// By default calls [`timer`](Self::timer).
    fn timer_fired(
        &self,
        session: &mut Self::Session,
        conn: &mut ConnectionContext<'_>,
        timer: Timer,
    ) {
        let _ = timer;
        self.timer(session, conn);
    }

    /// Learns that the output is full (`writable` false) or fell back to
    /// half of `max_pending_output` (`writable` true, only after a false).
    ///
    /// Full means the pending output reached `max_pending_output` (the loop
    /// then stops reading this connection), or a [`ConnectionSender`]
    /// message to it was refused [`Full`](crate::SendError::Full) and the
    /// output it holds is still above half the limit once what was queued
    /// before is delivered and flushed.
    fn writable_changed(
        &self,
        session: &mut Self::Session,
        conn: &mut ConnectionContext<'_>,
        writable: bool,
    ) {
        let _ = (session, conn, writable);
    }

    /// Learns that the connection is closed, and why; the session is given
    /// back to be dropped or kept. Called exactly once per opened
    /// connection: when the server ended it (a close, a stop), as soon as
    /// its output and its end of stream are sent, even if the client has
    /// not closed its side yet.
    fn closed(&self, session: Self::Session, info: &ConnectionInfo, cause: CloseCause) {
        let _ = (session, info, cause);
    }
}

/// What to do after a datagram was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramReply {
    /// Send the reply buffer to the sender.
    Send,
    /// Send nothing; the loop counts the datagram as unanswered.
    Drop,
    /// Send nothing now: the service answers later, or more than once,
    /// through a [`DatagramSender`](crate::DatagramSender). Not counted as
    /// unanswered.
    Deferred,
}

/// Serves UDP: every datagram is handled on its own, at most one reply each.
///
/// A panic here drops that datagram: it is counted in
/// [`Stats::service_panics`](crate::Stats) and as declined
/// (`datagrams_declined`, and so in `datagrams_dropped`, the sum of every
/// cause); the worker goes on.
pub trait DatagramService: Send + Sync + 'static {
    /// Fills `reply` (given empty) for `request` from `peer`.
    fn datagram(&self, request: &[u8], peer: SocketAddr, reply: &mut Vec<u8>) -> DatagramReply;

    /// Receives the server's handle once, when
    /// [`ServerBuilder::build`](crate::ServerBuilder::build) has bound every
    /// socket, on the thread that calls `build` and before any datagram.
    /// Keep a clone (in a `OnceLock`, say) to reach the counters, the stop
    /// or a [`DatagramSender`](crate::DatagramSender) from `datagram`. Does
    /// nothing by default.
    fn server_built(&self, handle: &Handle) {
        let _ = handle;
    }
}

/// The service of the side a server does not serve, from
/// [`ServerBuilder::tcp_only`](crate::ServerBuilder::tcp_only) or
/// [`udp_only`](crate::ServerBuilder::udp_only). It cannot be built outside
/// this crate, and a server with it refuses addresses of its kind, so it is
/// never called; if it were, it would answer nothing.
#[derive(Debug, Clone, Copy)]
pub struct NoService {
    _private: (),
}

impl NoService {
    pub(crate) const VALUE: Self = Self { _private: () };
}

impl StreamService for NoService {
    type Session = ();

    fn open(&self, conn: &mut ConnectionContext<'_>) {
        conn.close();
    }

    fn data(&self, _session: &mut (), _input: &[u8], _conn: &mut ConnectionContext<'_>) {}
}

impl DatagramService for NoService {
    fn datagram(&self, _: &[u8], _: SocketAddr, _: &mut Vec<u8>) -> DatagramReply {
        DatagramReply::Drop
    }
}

/// The shout service: the upper case of whatever arrives, over TCP and UDP.
#[derive(Debug, Clone, Copy, Default)]
pub struct Uppercase;

impl StreamService for Uppercase {
    type Session = Uppercaser;

    fn open(&self, _conn: &mut ConnectionContext<'_>) -> Uppercaser {
        Uppercaser::new()
    }

    fn data(&self, session: &mut Uppercaser, input: &[u8], conn: &mut ConnectionContext<'_>) {
        session.feed(input, conn.output());
    }

    fn end(&self, session: &mut Uppercaser, conn: &mut ConnectionContext<'_>, _: EndReason) {
        session.finish(conn.output());
    }
}

impl DatagramService for Uppercase {
    fn datagram(&self, request: &[u8], peer: SocketAddr, reply: &mut Vec<u8>) -> DatagramReply {
        match uppercase_datagram(request, reply) {
            Ok(()) => DatagramReply::Send,
            Err(error) => {
                log::debug!("udp {peer}: {error}");
                DatagramReply::Drop
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_connections_info_holds_its_server_end_shared_in_48_bytes() {
        let end = Arc::new(LocalEnd {
            listener: 2,
            listener_addr: "0.0.0.0:12000".parse().unwrap(),
            local: "10.0.0.1:12000".parse().unwrap(),
            transport: Transport::Plain,
        });
        let info = ConnectionInfo {
            id: ConnectionId::new(0, 1),
            peer: "10.0.0.2:50000".parse().unwrap(),
            end: Arc::clone(&end),
        };
        assert_eq!(std::mem::size_of::<ConnectionInfo>(), 48);
        assert_eq!(info.listener(), 2);
        assert_eq!(info.listener_addr(), end.listener_addr);
        assert_eq!(info.local(), end.local);
        assert_eq!(info.transport(), &Transport::Plain);
    }

    #[test]
    fn broken_connections_are_resets_and_other_errors_keep_their_kind() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
        ] {
            assert_eq!(CloseCause::of(&kind.into()), CloseCause::Reset);
        }
        let timed_out = io::Error::from(io::ErrorKind::TimedOut);
        assert_eq!(
            CloseCause::of(&timed_out),
            CloseCause::Error(io::ErrorKind::TimedOut)
        );
    }
}
