//! One TCP connection's life as a state machine: its phase (the PROXY
//! prelude, the transport's handshake, serving, finishing, lingering), its
//! transport layer (plain or TLS), its pending output and the flags that
//! decide how it ends. Every transition is made here. The connection does
//! no I/O of its own: it reads and writes the stream it is given
//! ([`Stream`]: a TCP socket in the worker, an in-memory one in the unit
//! tests below) only when the worker calls on it; the worker keeps the
//! slab, the idle list and the timers, and calls the service.
//!
//! Idle, a plain connection is its stream, its service session, its info
//! (the server's end shared with other connections), one byte of
//! readiness, one of flags, and an empty output (a null pointer): the
//! prelude's buffer, the TLS layer and the output buffer are boxed, and
//! cost nothing on a connection without them. Output is buffered only when
//! the socket would not take all of it, and the buffer is freed as soon as
//! it drains.

#[cfg(feature = "ws")]
mod websocket;

use crate::proxy::HeaderBuffer;
#[cfg(any(feature = "tls", feature = "ws"))]
use crate::service::LocalEnd;
use crate::service::{CloseCause, ConnectionInfo, Requests, Timer, TimerRequest};
use crate::sources::Slot;
#[cfg(feature = "tls")]
use crate::tls::{Plaintext, PlaintextSource, TlsLayer};
use mio::event::Event;
use shout_socket::StreamReadiness;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
#[cfg(any(feature = "tls", feature = "ws"))]
use std::sync::Arc;

/// Where a connection is in its life. Transitions only go down this list
/// (a phase may be skipped), and only through [`Connection`]'s methods.
enum Phase<Session> {
    /// Reading the PROXY header, on a listener that expects one.
    Prelude(Box<HeaderBuffer>),
    /// Waiting for the transport's handshake (TLS); a plain transport has
    /// none, and the connection opens at once.
    Handshake,
    /// The service's session is open.
    Open(Session, Stage),
    /// Our end of stream is sent and the session was handed back to the
    /// service ([`Connection::end_session`]): input is read and discarded
    /// until the client's end or the linger timeout, with no session.
    Lingering,
    /// Answered over HTTP without an upgrade (a WebSocket listener's page,
    /// or a refusal): the response goes out, then the stream ends; the
    /// service never opens.
    #[cfg_attr(not(feature = "ws"), allow(dead_code))]
    Answered,
}

/// How far an open connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Reading requests and answering them.
    Serving,
    /// Nothing more will be answered: send what is pending, then close.
    Finishing,
    /// Our side is shut down after the last byte: the connection can send
    /// nothing more, so the worker ends the session at once
    /// ([`Connection::end_session`]) and the phase becomes
    /// [`Phase::Lingering`], where the socket reads and discards until the
    /// client closes, so that a close with unread input (which sends a
    /// reset) cannot destroy answers the client has not read yet.
    Lingering,
}

/// Where the sending side is: open, to be shut once the output is sent
/// (the service's half-close), or shut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum WriteSide {
    Open = 0,
    ShutWhenSent = 1,
    Shut = 2,
}

/// A connection's small state in one byte: its [`WriteSide`] (two bits),
/// whether the service was told the output is full and not yet that it
/// drained (`BLOCKED`), whether the client sent its end of stream
/// (`INPUT_ENDED`), whether a sender's message was refused since the
/// service was last told (`REFUSED`), whether a connection its service
/// closed still takes what senders queued to it before (`AWAITS_QUEUED`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flags(u8);

impl Flags {
    const WRITE_SIDE: u8 = 0b11;
    const BLOCKED: u8 = 0b100;
    const INPUT_ENDED: u8 = 0b1000;
    const REFUSED: u8 = 0b1_0000;
    const AWAITS_QUEUED: u8 = 0b10_0000;

    #[inline]
    fn write_side(self) -> WriteSide {
        match self.0 & Self::WRITE_SIDE {
            0 => WriteSide::Open,
            1 => WriteSide::ShutWhenSent,
            _ => WriteSide::Shut,
        }
    }

    fn set_write_side(&mut self, side: WriteSide) {
        self.0 = (self.0 & !Self::WRITE_SIDE) | side as u8;
    }

    #[inline]
    fn blocked(self) -> bool {
        self.0 & Self::BLOCKED != 0
    }

    /// Sets or clears `BLOCKED`; either way a refusal noted before is
    /// answered by it.
    fn set_blocked(&mut self, blocked: bool) {
        if blocked {
            self.0 |= Self::BLOCKED;
        } else {
            self.0 &= !Self::BLOCKED;
        }
        self.0 &= !Self::REFUSED;
    }

    #[inline]
    fn refused(self) -> bool {
        self.0 & Self::REFUSED != 0
    }

    fn refuse(&mut self) {
        self.0 |= Self::REFUSED;
    }

    fn clear_refused(&mut self) {
        self.0 &= !Self::REFUSED;
    }

    #[inline]
    fn awaits_queued(self) -> bool {
        self.0 & Self::AWAITS_QUEUED != 0
    }

    fn set_awaits_queued(&mut self, awaits: bool) {
        if awaits {
            self.0 |= Self::AWAITS_QUEUED;
        } else {
            self.0 &= !Self::AWAITS_QUEUED;
        }
    }

    #[inline]
    fn input_ended(self) -> bool {
        self.0 & Self::INPUT_ENDED != 0
    }

    fn end_input(&mut self) {
        self.0 |= Self::INPUT_ENDED;
    }
}

/// The layer between the socket's bytes and the service's: bytes in,
/// plaintext to the service; the service's output in, bytes to the
/// socket. Enum dispatch keeps the plain path a branch, not a call
/// through a pointer; the next layers (WebSocket, QUIC streams) are
/// variants here.
pub(crate) enum TransportLayer {
    /// The socket's bytes are the service's.
    Plain,
    /// TLS: rustls between the socket and the service.
    #[cfg(feature = "tls")]
    Tls(Box<TlsLayer>),
}

impl TransportLayer {
    /// Returns whether the layer has a handshake before the service opens.
    pub(crate) fn has_handshake(&self) -> bool {
        match self {
            Self::Plain => false,
            #[cfg(feature = "tls")]
            Self::Tls(_) => true,
        }
    }
}

/// Why a transport layer refused the client's bytes (a TLS error, its
/// alert queued); without the `tls` feature no layer can refuse.
#[cfg(feature = "tls")]
pub(crate) type LayerError = rustls::Error;
/// Why a transport layer refused the client's bytes; without the `tls`
/// feature no layer can refuse.
#[cfg(not(feature = "tls"))]
pub(crate) type LayerError = std::convert::Infallible;

/// What one read's bytes gave, once through the transport layer.
#[cfg(feature = "tls")]
pub(crate) enum Received {
    /// Plaintext for the service.
    Data(Vec<u8>),
    /// The client's input is over (a TLS close_notify, or a truncation).
    End {
        /// The TCP stream ended without the transport's own end.
        truncated: bool,
    },
    /// Nothing more for the service now.
    Nothing,
}

/// The parts of a closed connection the worker still needs.
pub(crate) struct Closed<Session, T> {
    pub(crate) stream: T,
    pub(crate) info: ConnectionInfo,
    /// The service's session; `None` if it never opened.
    pub(crate) session: Option<Session>,
    /// The cause the service or a stop decided, if one did.
    pub(crate) decided: Option<CloseCause>,
    pub(crate) slot: Slot,
}

/// The byte stream a connection runs on: a TCP socket in the worker, an
/// in-memory stream in the unit tests below. The connection reads and
/// writes only through it, and only when the worker calls on it.
pub(crate) trait Stream: Read + Write {
    /// Ends the sending side: a TCP FIN.
    fn shutdown_write(&self) -> io::Result<()>;
}

pub(crate) struct Connection<Session, T> {
    stream: T,
    info: ConnectionInfo,
    phase: Phase<Session>,
    transport: TransportLayer,
    /// WebSocket over the transport, on a WebSocket listener: messages
    /// between the transport's bytes and the service's.
    #[cfg(feature = "ws")]
    websocket: Option<Box<crate::ws::WsLayer>>,
    /// The service's output waits in `output` until the read's frames
    /// are all taken (WebSocket).
    #[cfg(feature = "ws")]
    corked: bool,
    /// How many held bytes this connection's senders see counted (its
    /// share in the worker's mailbox), updated only when that changes
    /// (never on a read whose answer went straight to the socket).
    published: usize,
    /// The connection's place under the cap and in its source's share,
    /// given back when the connection is dropped.
    slot: Slot,
    /// Set when the service or a stop decided the connection's end; it is
    /// the cause reported, whatever happens after.
    close_cause: Option<CloseCause>,
    /// Bytes produced but not yet accepted by the socket.
    output: PendingOutput,
    /// Last known readiness, kept by the reads and writes that go through it.
    readiness: StreamReadiness,
    /// Where the sending side is, whether the service was told the output
    /// is full, whether the client ended its input: one byte.
    flags: Flags,
}

impl<Session, T: Stream> Connection<Session, T> {
    /// Returns a connection not open yet: it reads a PROXY header first if
    /// `prelude`, then finishes `transport`'s handshake if it has one.
    pub(crate) fn waiting(
        stream: T,
        info: ConnectionInfo,
        prelude: bool,
        transport: TransportLayer,
        slot: Slot,
    ) -> Self {
        let phase = if prelude {
            Phase::Prelude(Box::default())
        } else {
            Phase::Handshake
        };
        Self::with(stream, info, phase, transport, slot)
    }

    /// Returns a plain connection whose service opened `session`.
    pub(crate) fn open(stream: T, info: ConnectionInfo, session: Session, slot: Slot) -> Self {
        let phase = Phase::Open(session, Stage::Serving);
        Self::with(stream, info, phase, TransportLayer::Plain, slot)
    }

    fn with(
        stream: T,
        info: ConnectionInfo,
        phase: Phase<Session>,
        transport: TransportLayer,
        slot: Slot,
    ) -> Self {
        Self {
            stream,
            info,
            phase,
            transport,
            #[cfg(feature = "ws")]
            websocket: None,
            #[cfg(feature = "ws")]
            corked: false,
            published: 0,
            slot,
            close_cause: None,
            output: PendingOutput::new(),
            readiness: StreamReadiness::new(),
            flags: Flags::default(),
        }
    }

    /// Returns what is known of the connection.
    pub(crate) fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Takes the connection apart once it is closed.
    pub(crate) fn into_closed(self) -> Closed<Session, T> {
        Closed {
            stream: self.stream,
            info: self.info,
            session: match self.phase {
                Phase::Open(session, _) => Some(session),
                Phase::Prelude(_) | Phase::Handshake | Phase::Answered | Phase::Lingering => None,
            },
            decided: self.close_cause,
            slot: self.slot,
        }
    }

    /// Takes the stream as readable and writable as told, as events saying
    /// so would.
    #[cfg(test)]
    fn mark_ready(&mut self, readable: bool, writable: bool) {
        if readable {
            self.readiness.mark_readable();
        }
        if writable {
            self.readiness.mark_writable();
        }
    }

    /// Records what `event` says of the socket.
    pub(crate) fn note(&mut self, event: &Event) {
        // Readiness is a hint: remember it, let the syscalls tell the truth.
        self.readiness.note(event);
    }

    /// Returns whether the connection's service is not open yet: its PROXY
    /// header or its transport's handshake is going on.
    pub(crate) fn is_handshaking(&self) -> bool {
        !matches!(self.phase, Phase::Open(..) | Phase::Lingering)
    }

    /// Returns whether the session ended with our end of stream and the
    /// socket lingers for the client's.
    #[cfg(test)]
    fn is_lingering(&self) -> bool {
        matches!(self.phase, Phase::Lingering)
    }

    /// Hands back the session of a connection that can send nothing more
    /// (its end of stream is sent: [`Stage::Lingering`]), with the cause
    /// decided for its end; the connection lingers on without it. `None`
    /// on a connection in any other state.
    pub(crate) fn end_session(&mut self) -> Option<(Session, Option<CloseCause>)> {
        if !matches!(self.phase, Phase::Open(_, Stage::Lingering)) {
            return None;
        }
        let Phase::Open(session, _) = std::mem::replace(&mut self.phase, Phase::Lingering) else {
            return None;
        };
        Some((session, self.close_cause))
    }

    /// Returns whether the connection reads its PROXY header.
    pub(crate) fn in_prelude(&self) -> bool {
        matches!(self.phase, Phase::Prelude(_))
    }

    /// Returns whether the transport has a handshake (TLS).
    pub(crate) fn has_handshake(&self) -> bool {
        self.transport.has_handshake()
    }

    /// Returns whether the connection speaks WebSocket (or will, once
    /// upgraded).
    pub(crate) fn is_websocket(&self) -> bool {
        #[cfg(feature = "ws")]
        return self.websocket.is_some();
        #[cfg(not(feature = "ws"))]
        false
    }

    /// Returns whether the connection waits for its WebSocket upgrade
    /// request.
    pub(crate) fn awaits_upgrade(&self) -> bool {
        #[cfg(feature = "ws")]
        return self.websocket.as_ref().is_some_and(|ws| ws.upgrading());
        #[cfg(not(feature = "ws"))]
        false
    }

    /// Returns whether a WebSocket connection still awaiting its upgrade
    /// has sent part of its request head.
    pub(crate) fn upgrade_begun(&self) -> bool {
        #[cfg(feature = "ws")]
        return self.websocket.as_ref().is_some_and(|ws| ws.request_begun());
        #[cfg(not(feature = "ws"))]
        false
    }

    /// Returns the stage of an open connection.
    pub(crate) fn stage(&self) -> Option<Stage> {
        match self.phase {
            Phase::Open(_, stage) => Some(stage),
            Phase::Prelude(_) | Phase::Handshake | Phase::Answered | Phase::Lingering => None,
        }
    }

    /// Returns whether the service is open and reading requests.
    pub(crate) fn is_serving(&self) -> bool {
        self.stage() == Some(Stage::Serving)
    }

    /// Returns the session and the connection's info, on an open
    /// connection.
    pub(crate) fn session(&mut self) -> Option<(&mut Session, &ConnectionInfo)> {
        match &mut self.phase {
            Phase::Open(session, _) => Some((session, &self.info)),
            Phase::Prelude(_) | Phase::Handshake | Phase::Answered | Phase::Lingering => None,
        }
    }

    /// Returns whether the service's output is still taken (the service
    /// did not shut the sending side).
    pub(crate) fn accepts_output(&self) -> bool {
        self.flags.write_side() == WriteSide::Open
    }

    /// Returns whether a sender's bytes delivered now go out: the service
    /// is serving, or closed the connection and the bytes were queued
    /// before that close ([`await_queued`](Self::await_queued)); and it
    /// did not shut the sending side.
    pub(crate) fn takes_sent(&self) -> bool {
        let stage_takes = match self.phase {
            Phase::Open(_, Stage::Serving) => true,
            Phase::Open(_, Stage::Finishing) => self.flags.awaits_queued(),
            _ => false,
        };
        stage_takes && self.accepts_output()
    }

    /// Returns whether a closed connection waits for what senders queued
    /// to it before the close.
    pub(crate) fn awaits_queued(&self) -> bool {
        self.flags.awaits_queued()
    }

    /// Makes a finishing connection take the senders' bytes delivered
    /// from now on, and not end, until [`end_queued`](Self::end_queued):
    /// its worker calls that at the close command it posted behind them.
    pub(crate) fn await_queued(&mut self) {
        if self.stage() == Some(Stage::Finishing) {
            self.flags.set_awaits_queued(true);
        }
    }

    /// Ends [`await_queued`](Self::await_queued): what comes from senders
    /// after this is dropped, and the connection may end.
    pub(crate) fn end_queued(&mut self) {
        self.flags.set_awaits_queued(false);
    }

    /// Returns how many held bytes its senders see counted (its share,
    /// less what they reserved and its worker has not taken yet).
    pub(crate) fn published(&self) -> usize {
        self.published
    }

    /// Returns whether the socket may have input the client did not end.
    pub(crate) fn may_have_input(&self) -> bool {
        self.readiness.is_readable() && !self.flags.input_ended()
    }

    /// Returns whether to read now: the socket may have input, the client
    /// did not end it, and less than `max_pending_output` waits to be
    /// sent (backpressure: a connection whose client does not read is not
    /// read either, and stays readable until its output drains).
    #[inline]
    pub(crate) fn wants_read(&self, max_pending_output: usize) -> bool {
        self.readiness.is_readable()
            && !self.flags.input_ended()
            && self.pending_output() < max_pending_output
    }

    /// Returns whether the client ended its input.
    pub(crate) fn input_ended(&self) -> bool {
        self.flags.input_ended()
    }

    /// Reads from the socket into `buffer`. Returns `None` once the socket
    /// has nothing more now, and 0 at the client's end of stream, which
    /// ends the input.
    pub(crate) fn read(&mut self, buffer: &mut [u8]) -> io::Result<Option<usize>> {
        let read = self.readiness.read(&mut self.stream, buffer)?;
        if read == Some(0) {
            self.flags.end_input();
        }
        Ok(read)
    }

    /// Takes one read's bytes into the PROXY header. Returns how many the
    /// header took and the client it names once whole; the connection's
    /// peer is then that client. `Err` says why it can never be a header.
    pub(crate) fn receive_prelude(
        &mut self,
        data: &[u8],
    ) -> Result<Option<(usize, SocketAddr)>, String> {
        let Phase::Prelude(header) = &mut self.phase else {
            return Ok(Some((0, self.info.peer)));
        };
        header.push(data, self.info.peer)
    }

    /// Ends the prelude: `client`, the header's, is the connection's peer
    /// from now on, and the transport's handshake comes next.
    pub(crate) fn end_prelude(&mut self, client: SocketAddr) {
        if matches!(self.phase, Phase::Prelude(_)) {
            self.info.peer = client;
            self.phase = Phase::Handshake;
        }
    }

    /// Charges the connection to source `ip`'s share of connections (the
    /// client its PROXY header names). Returns `false`, charging nothing,
    /// if that source holds its share already.
    pub(crate) fn charge(&mut self, ip: std::net::IpAddr) -> bool {
        self.slot.charge(ip)
    }

    /// Feeds one read's bytes (empty: the end of the TCP stream) to the
    /// transport layer. Returns whether it took them: it takes nothing
    /// while plaintext waits to be taken. A TLS error leaves an alert
    /// queued for [`flush`](Self::flush).
    #[cfg(feature = "tls")]
    pub(crate) fn receive(&mut self, input: &mut &[u8]) -> Result<bool, LayerError> {
        match &mut self.transport {
            TransportLayer::Plain => Ok(true),
            TransportLayer::Tls(tls) => tls.receive(input),
        }
    }

    /// Returns whether the transport's handshake is still going on.
    #[cfg(feature = "tls")]
    pub(crate) fn transport_handshaking(&self) -> bool {
        match &self.transport {
            TransportLayer::Plain => false,
            TransportLayer::Tls(tls) => tls.is_handshaking(),
        }
    }

    /// Takes the plaintext the transport layer decoded for the service.
    #[cfg(feature = "tls")]
    pub(crate) fn plaintext(&mut self) -> Received {
        let TransportLayer::Tls(tls) = &mut self.transport else {
            return Received::Nothing;
        };
        let received = match tls.plaintext() {
            Plaintext::Nothing => return Received::Nothing,
            Plaintext::Data(bytes) => return Received::Data(bytes),
            Plaintext::Closed => Received::End { truncated: false },
            Plaintext::Truncated => Received::End { truncated: true },
        };
        self.flags.end_input();
        received
    }

    /// Ends the transport's handshake: its outcome (a TLS version, its
    /// SNI) is the connection's transport from now on, as the service will
    /// see it.
    pub(crate) fn end_handshake(&mut self) {
        #[cfg(feature = "ws")]
        if let Some(ws) = &self.websocket {
            self.info.end = Arc::new(LocalEnd {
                transport: crate::service::Transport::WebSocket {
                    secure: ws.secure(),
                },
                ..LocalEnd::clone(&self.info.end)
            });
            return;
        }
        match &self.transport {
            TransportLayer::Plain => {}
            #[cfg(feature = "tls")]
            TransportLayer::Tls(tls) => {
                self.info.end = Arc::new(LocalEnd {
                    transport: tls.transport(),
                    ..LocalEnd::clone(&self.info.end)
                });
            }
        }
    }

    /// Opens the connection with the service's `session` once its prelude
    /// and handshake are over.
    pub(crate) fn open_with(&mut self, session: Session) {
        debug_assert!(
            !matches!(self.phase, Phase::Open(..)),
            "a connection opens once"
        );
        self.phase = Phase::Open(session, Stage::Serving);
    }

    /// Applies what a callback asked of the connection, and returns what
    /// it asked of its timers (the worker keeps the timers).
    pub(crate) fn apply(&mut self, requests: Requests) -> [TimerRequest; Timer::COUNT] {
        if requests.close {
            if let Phase::Open(_, stage @ Stage::Serving) = &mut self.phase {
                *stage = Stage::Finishing;
                self.close_cause.get_or_insert(CloseCause::ServiceClosed);
            }
        }
        if requests.shutdown_write && self.flags.write_side() == WriteSide::Open {
            self.flags.set_write_side(WriteSide::ShutWhenSent);
        }
        requests.timers
    }

    /// Decides that the connection ends because the server stops: that
    /// is the cause reported, unless the service panics.
    pub(crate) fn decide_stop(&mut self) {
        self.close_cause = Some(CloseCause::Stopped);
    }

    /// Ends a serving connection: nothing more is answered, what is
    /// pending is sent, then its stream ends.
    pub(crate) fn finish(&mut self) {
        if let Phase::Open(_, stage @ Stage::Serving) = &mut self.phase {
            *stage = Stage::Finishing;
        }
    }

    /// Notes that a sender's message to the connection was refused
    /// because its output is full: the next [`flow_change`](Self::flow_change)
    /// tells the service so, if it was not told already and the output
    /// is still above half the limit.
    pub(crate) fn note_refused(&mut self) {
        self.flags.refuse();
    }

    /// Returns whether a refusal was noted that the next
    /// [`flow_change`](Self::flow_change) has not weighed yet.
    #[inline]
    pub(crate) fn was_refused(&self) -> bool {
        self.flags.refused()
    }

    /// Returns whether the service was told the output is full, and not
    /// yet that it drained.
    pub(crate) fn told_full(&self) -> bool {
        self.flags.blocked()
    }

    /// Returns the flow control the service should be told of, with
    /// hysteresis: not writable at `max` pending, or after a sender's
    /// message was refused with more than half of `max` pending; writable
    /// again at half of `max`; `None` when nothing changed. A refusal
    /// noted is weighed once.
    #[inline]
    pub(crate) fn flow_change(&mut self, max: usize) -> Option<bool> {
        let pending = self.pending_output();
        let flags = self.flags;
        // Senders stop short of `max` (a message that would pass it is
        // refused), so their output alone may never reach it: a refusal
        // counts as full too. Not when the output is at half or less once
        // what was queued before it is delivered and flushed: then it was
        // a burst of senders, not a client that does not read.
        let refused = flags.refused() && pending > max / 2;
        let writable = if !flags.blocked() && (pending >= max || refused) {
            false
        } else if flags.blocked() && pending <= max / 2 {
            true
        } else {
            if flags.refused() {
                self.flags.clear_refused();
            }
            return None;
        };
        self.flags.set_blocked(!writable);
        Some(writable)
    }

    /// Bytes waiting to be sent: over TLS, the plaintext the layer holds
    /// unsent counts too.
    pub(crate) fn pending_output(&self) -> usize {
        let layer = match &self.transport {
            TransportLayer::Plain => 0,
            #[cfg(feature = "tls")]
            TransportLayer::Tls(tls) => tls.in_flight(),
        };
        self.output.len() + layer
    }

    /// Returns whether anything, the transport's records included, waits
    /// to be sent.
    pub(crate) fn has_unsent(&self) -> bool {
        !self.output.is_empty()
            || match &self.transport {
                TransportLayer::Plain => false,
                #[cfg(feature = "tls")]
                TransportLayer::Tls(tls) => tls.wants_write(),
            }
    }

    /// Sends `bytes` after whatever is pending: directly if nothing is
    /// pending and the socket takes them, buffering the rest. Returns the
    /// number of bytes the socket took.
    pub(crate) fn send(&mut self, bytes: &[u8], capacity: usize) -> io::Result<usize> {
        #[cfg(feature = "ws")]
        if self.websocket.is_some() {
            return self.send_message(bytes, capacity);
        }
        self.send_bytes(bytes, capacity)
    }

    /// [`send`](Self::send) of bytes that go to the transport as they are.
    fn send_bytes(&mut self, bytes: &[u8], capacity: usize) -> io::Result<usize> {
        if !self.output.is_empty() {
            self.output.push(bytes, capacity);
            return self.flush();
        }
        #[cfg(feature = "tls")]
        if let TransportLayer::Tls(tls) = &mut self.transport {
            let sending = (&mut self.readiness, &mut self.stream, &mut self.output);
            return send_through_layer(tls, sending, bytes, capacity);
        }
        let written = self.readiness.write(&mut self.stream, bytes)?;
        // The usual answer goes out whole: no call to buffer nothing.
        if written < bytes.len() {
            self.output.push(&bytes[written..], capacity);
        }
        Ok(written)
    }

    /// Appends `bytes` to the pending output without writing; the next
    /// flush sends them.
    pub(crate) fn push_output(&mut self, bytes: &[u8], capacity: usize) {
        #[cfg(feature = "ws")]
        if self.websocket.is_some() {
            return self.push_message(bytes, capacity);
        }
        self.output.push(bytes, capacity);
    }

    /// Counts `bytes` a sender reserved as held by the connection: the
    /// next publish gives them back if they were dropped.
    pub(crate) fn take_reserved(&mut self, bytes: usize) {
        self.published += bytes;
    }

    /// Returns the change to make to the senders' count of the output
    /// held, `(from, to)`, if it changed since the last one.
    #[inline]
    pub(crate) fn publish_pending(&mut self) -> Option<(usize, usize)> {
        let pending = self.output.len();
        if pending == self.published {
            return None;
        }
        let from = std::mem::replace(&mut self.published, pending);
        Some((from, pending))
    }

    /// Writes pending output while the socket takes it, through the
    /// transport layer. Returns the number of bytes written.
    pub(crate) fn flush(&mut self) -> io::Result<usize> {
        match &mut self.transport {
            #[cfg(feature = "tls")]
            TransportLayer::Tls(tls) => {
                tls.flush(&mut self.output, &mut self.readiness, &mut self.stream)
            }
            TransportLayer::Plain => {
                if self.output.is_empty() {
                    return Ok(0);
                }
                let written = self
                    .readiness
                    .write(&mut self.stream, self.output.as_slice())?;
                self.output.consume(written);
                Ok(written)
            }
        }
    }

    /// Once everything answered is sent, ends what should end: the
    /// transport's stream (a TLS close_notify) and then the TCP sending
    /// side, on a connection that finishes or was half-closed; a finishing
    /// one lingers from then on. Returns whether the connection stays
    /// open.
    #[inline]
    pub(crate) fn end_if_sent(&mut self) -> io::Result<bool> {
        // The usual turn: everything sent, nothing to end.
        let serving = matches!(self.phase, Phase::Open(_, Stage::Serving));
        if serving && self.flags.write_side() == WriteSide::Open && !self.flags.input_ended() {
            return Ok(true);
        }
        self.end_what_is_due()
    }

    /// [`end_if_sent`](Self::end_if_sent) on a connection with something to end.
    #[cold]
    fn end_what_is_due(&mut self) -> io::Result<bool> {
        if self.has_unsent() || self.flags.awaits_queued() {
            return Ok(true);
        }
        let answered = matches!(self.phase, Phase::Answered);
        #[cfg_attr(not(any(feature = "tls", feature = "ws")), allow(unused_variables))]
        let ending = match &self.phase {
            Phase::Open(_, stage) => {
                *stage == Stage::Finishing
                    || self.flags.write_side() == WriteSide::ShutWhenSent
                    || self.flags.input_ended()
            }
            Phase::Answered => true,
            // Everything was ended when it began to linger.
            Phase::Lingering | Phase::Prelude(_) | Phase::Handshake => {
                return Ok(!self.flags.input_ended());
            }
        };
        #[cfg(feature = "ws")]
        if ending && self.close_websocket_when_due()? {
            return Ok(true);
        }
        match &mut self.transport {
            TransportLayer::Plain => {}
            #[cfg(feature = "tls")]
            TransportLayer::Tls(tls) if ending => {
                tls.close();
                tls.flush(&mut self.output, &mut self.readiness, &mut self.stream)?;
                if self.has_unsent() {
                    return Ok(true);
                }
            }
            #[cfg(feature = "tls")]
            TransportLayer::Tls(_) => {}
        }
        if answered && self.flags.write_side() != WriteSide::Shut {
            self.stream.shutdown_write()?;
            self.flags.set_write_side(WriteSide::Shut);
        }
        let Phase::Open(_, stage) = &mut self.phase else {
            return Ok(!self.flags.input_ended());
        };
        let shut = match *stage {
            Stage::Serving => self.flags.write_side() == WriteSide::ShutWhenSent,
            Stage::Finishing => {
                *stage = Stage::Lingering;
                self.flags.write_side() != WriteSide::Shut
            }
            Stage::Lingering => false,
        };
        if shut {
            self.stream.shutdown_write()?;
            self.flags.set_write_side(WriteSide::Shut);
        }
        Ok(!self.flags.input_ended())
    }
}

/// Bytes produced but not yet sent, in order, in memory proportional to
/// what is pending: sent bytes are given back, and an empty buffer holds no
/// heap at all (an idle connection costs no buffer).
///
/// The buffer's capacity stays within the limit each push is given (the
/// most that can be pending: the cap on pending output plus one read's answer) unless a
/// single push needs more than that, and then within what is pending.
///
/// Empty, it is one null pointer in the connection: the buffer is boxed
/// only while bytes are pending.
#[derive(Debug)]
struct PendingOutput(Option<Box<OutputBuffer>>);

impl PendingOutput {
    fn new() -> Self {
        Self(None)
    }

    #[inline]
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |buffer| buffer.len())
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn as_slice(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], |buffer| buffer.as_slice())
    }

    /// See [`OutputBuffer::push`].
    fn push(&mut self, more: &[u8], capacity_limit: usize) {
        if more.is_empty() {
            return;
        }
        self.0
            .get_or_insert_with(|| Box::new(OutputBuffer::new()))
            .push(more, capacity_limit);
    }

    /// Marks `sent` bytes from the front as sent; frees the buffer when it
    /// empties.
    fn consume(&mut self, sent: usize) {
        if let Some(buffer) = &mut self.0 {
            buffer.consume(sent);
            if buffer.len() == 0 {
                self.0 = None;
            }
        }
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |buffer| buffer.bytes.capacity())
    }
}

/// The bytes of a [`PendingOutput`] that holds some.
#[derive(Debug)]
struct OutputBuffer {
    bytes: Vec<u8>,
    /// How many bytes at the front of `bytes` were sent already.
    sent: usize,
}

impl OutputBuffer {
    fn new() -> Self {
        Self {
            bytes: Vec::new(),
            sent: 0,
        }
    }

    fn len(&self) -> usize {
        self.bytes.len() - self.sent
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }

    /// Appends `more`. When it does not fit in the capacity, sent bytes are
    /// dropped from the front first, and the buffer grows only if what is
    /// pending needs it: doubling, for amortised O(1) copying per byte, but
    /// never past `capacity_limit`. Without dropping the sent front, a client that
    /// always leaves a little unread would make the buffer grow by
    /// everything ever sent to it.
    fn push(&mut self, more: &[u8], capacity_limit: usize) {
        if more.is_empty() {
            return;
        }
        if self.bytes.len() + more.len() > self.bytes.capacity() {
            if self.sent > 0 {
                self.bytes.drain(..self.sent);
                self.sent = 0;
            }
            let needed = self.bytes.len() + more.len();
            if needed > self.bytes.capacity() {
                let target = (2 * needed).min(capacity_limit).max(needed);
                self.bytes.reserve_exact(target - self.bytes.len());
            }
        }
        self.bytes.extend_from_slice(more);
    }

    /// Marks `sent` bytes from the front as sent; frees the heap when the
    /// buffer empties.
    fn consume(&mut self, sent: usize) {
        self.sent += sent;
        if self.sent >= self.bytes.len() {
            self.bytes = Vec::new();
            self.sent = 0;
        }
    }
}

#[cfg(feature = "tls")]
/// [`Connection::send`] with nothing pending, through a TLS layer: it
/// encrypts the bytes from where they are, and only what it did not take
/// is buffered in `output`.
#[inline(never)]
fn send_through_layer<T: Write>(
    tls: &mut TlsLayer,
    (readiness, stream, output): (&mut StreamReadiness, &mut T, &mut PendingOutput),
    bytes: &[u8],
    capacity: usize,
) -> io::Result<usize> {
    let mut direct = Unsent { bytes, taken: 0 };
    let written = tls.flush(&mut direct, readiness, stream)?;
    output.push(&bytes[direct.taken..], capacity);
    Ok(written)
}

#[cfg(feature = "tls")]
/// Bytes about to be sent, lent to the TLS layer in place: it takes what
/// it encrypts, and the rest is buffered.
struct Unsent<'a> {
    bytes: &'a [u8],
    taken: usize,
}

#[cfg(feature = "tls")]
impl PlaintextSource for Unsent<'_> {
    fn unsent(&self) -> &[u8] {
        &self.bytes[self.taken..]
    }

    fn consume(&mut self, n: usize) {
        self.taken += n;
    }
}

#[cfg(feature = "tls")]
impl PlaintextSource for PendingOutput {
    fn unsent(&self) -> &[u8] {
        self.as_slice()
    }

    fn consume(&mut self, n: usize) {
        PendingOutput::consume(self, n);
    }
}

#[cfg(test)]
mod machine {
    //! The state machine driven without a socket: an in-memory stream the
    //! test scripts, a slot from a cap of its own, time never read.

    use super::{Closed, Connection, Stage, Stream, TransportLayer};
    use crate::service::{CloseCause, ConnectionId, ConnectionInfo, LocalEnd, Requests, Transport};
    use crate::sources::{ConnectionSlots, Slot};
    use crate::wake::Wakers;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::io::{self, Read, Write};
    use std::net::SocketAddr;
    use std::rc::Rc;
    use std::sync::Arc;

    /// What the in-memory stream holds, shared with the test.
    #[derive(Default)]
    struct Wire {
        /// Bytes the client sent, not read yet.
        input: VecDeque<u8>,
        /// The client ended its stream once `input` is read.
        eof: bool,
        /// How many more bytes a write takes; none: `WouldBlock`.
        room: usize,
        /// What the connection wrote.
        written: Vec<u8>,
        /// The connection shut its sending side.
        shut: bool,
    }

    #[derive(Clone, Default)]
    struct Memory(Rc<RefCell<Wire>>);

    impl Read for Memory {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            let mut wire = self.0.borrow_mut();
            if wire.input.is_empty() {
                return match wire.eof {
                    true => Ok(0),
                    false => Err(io::ErrorKind::WouldBlock.into()),
                };
            }
            let n = buffer.len().min(wire.input.len());
            for (slot, byte) in buffer.iter_mut().zip(wire.input.drain(..n)) {
                *slot = byte;
            }
            Ok(n)
        }
    }

    impl Write for Memory {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut wire = self.0.borrow_mut();
            let n = bytes.len().min(wire.room);
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            wire.room -= n;
            wire.written.extend_from_slice(&bytes[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Stream for Memory {
        fn shutdown_write(&self) -> io::Result<()> {
            self.0.borrow_mut().shut = true;
            Ok(())
        }
    }

    const CAP: usize = 64;
    const CAPACITY: usize = 4 * CAP;
    const PEER: &str = "127.0.0.1:50000";

    fn info() -> ConnectionInfo {
        let addr: SocketAddr = "127.0.0.1:12000".parse().unwrap();
        ConnectionInfo {
            id: ConnectionId::new(0, 1),
            peer: PEER.parse().unwrap(),
            end: Arc::new(LocalEnd {
                listener: 0,
                listener_addr: addr,
                local: addr,
                transport: Transport::Plain,
            }),
        }
    }

    fn slot() -> Slot {
        let wakers = Arc::new(Wakers::new(Vec::new()));
        Arc::new(ConnectionSlots::new(1, 0, wakers)).take().unwrap()
    }

    /// A plain connection whose service opened session `0`, and its wire.
    fn open() -> (Connection<u32, Memory>, Memory) {
        let wire = Memory::default();
        let connection = Connection::open(wire.clone(), info(), 0, slot());
        (connection, wire)
    }

    fn read(connection: &mut Connection<u32, Memory>) -> Option<Vec<u8>> {
        let mut buffer = [0; 16];
        let read = connection.read(&mut buffer).unwrap()?;
        Some(buffer[..read].to_vec())
    }

    const CLOSE: Requests = Requests {
        close: true,
        ..Requests::NONE
    };

    #[test]
    fn the_phases_come_in_order_prelude_handshake_serving_finishing_lingering() {
        let wire = Memory::default();
        let mut connection: Connection<u32, Memory> =
            Connection::waiting(wire.clone(), info(), true, TransportLayer::Plain, slot());
        assert!(connection.in_prelude() && connection.is_handshaking());
        assert_eq!(connection.stage(), None);
        assert!(connection.session().is_none(), "no session before it opens");

        let header = b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 12000\r\nhello";
        let (taken, client) = connection.receive_prelude(header).unwrap().unwrap();
        assert_eq!(&header[taken..], b"hello");
        connection.end_prelude(client);
        assert!(!connection.in_prelude() && connection.is_handshaking());
        assert_eq!(connection.info().peer, "192.0.2.7:5555".parse().unwrap());

        connection.end_handshake();
        connection.open_with(7);
        assert!(!connection.is_handshaking() && connection.is_serving());
        assert_eq!(connection.session().map(|(session, _)| *session), Some(7));

        // The service closes with its answer unsent: finishing until it is.
        connection.apply(CLOSE);
        assert_eq!(connection.stage(), Some(Stage::Finishing));
        assert_eq!(connection.send(b"BYE", CAPACITY).unwrap(), 0);
        assert!(connection.end_if_sent().unwrap());
        assert_eq!(connection.stage(), Some(Stage::Finishing));
        assert!(!wire.0.borrow().shut);

        // Sent: the sending side ends, and the connection lingers.
        wire.0.borrow_mut().room = 3;
        connection.mark_ready(false, true);
        assert_eq!(connection.flush().unwrap(), 3);
        assert!(connection.end_if_sent().unwrap());
        assert_eq!(connection.stage(), Some(Stage::Lingering));
        assert!(wire.0.borrow().shut);

        // Nothing more can be sent: the session is handed back, once, with
        // its cause, and the socket lingers without it.
        assert_eq!(
            connection.end_session(),
            Some((7, Some(CloseCause::ServiceClosed)))
        );
        assert!(connection.is_lingering() && !connection.is_handshaking());
        assert_eq!(connection.end_session(), None);
        assert!(connection.session().is_none() && !connection.takes_sent());

        // Lingering discards input until the client's end, then closes.
        wire.0.borrow_mut().input.extend(b"late");
        wire.0.borrow_mut().eof = true;
        connection.mark_ready(true, false);
        assert_eq!(read(&mut connection), Some(b"late".to_vec()));
        assert!(connection.end_if_sent().unwrap(), "lingers on");
        connection.mark_ready(true, false);
        assert_eq!(read(&mut connection), Some(Vec::new()));
        assert!(connection.input_ended());
        assert!(!connection.end_if_sent().unwrap(), "closes");

        let Closed {
            session, decided, ..
        } = connection.into_closed();
        assert_eq!(session, None, "handed back already");
        assert_eq!(decided, Some(CloseCause::ServiceClosed));
        assert_eq!(wire.0.borrow().written, b"BYE");
    }

    #[cfg(feature = "tls")]
    /// Moves the client's records through the connection's transport
    /// layer, and what the connection sends back to the client, `rounds`
    /// times.
    fn exchange(
        connection: &mut Connection<u32, Memory>,
        wire: &Memory,
        client: &mut rustls::ClientConnection,
        rounds: usize,
    ) {
        for _ in 0..rounds {
            let mut records = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut records).unwrap();
            }
            // An empty read would be the end of the stream: none here.
            if !records.is_empty() {
                assert!(connection.receive(&mut &records[..]).unwrap());
            }
            wire.0.borrow_mut().room = usize::MAX;
            connection.mark_ready(false, true);
            connection.flush().unwrap();
            let sent = std::mem::take(&mut wire.0.borrow_mut().written);
            if !sent.is_empty() {
                client.read_tls(&mut &sent[..]).unwrap();
                client.process_new_packets().unwrap();
            }
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn over_tls_the_phases_come_in_order_and_the_end_is_a_close_notify() {
        use super::Received;
        use rustls::ProtocolVersion;
        use std::io::Read as _;

        let (layer, mut client) = crate::tls::tests::pair();
        let wire = Memory::default();
        let mut connection: Connection<u32, Memory> = Connection::waiting(
            wire.clone(),
            info(),
            true,
            TransportLayer::Tls(Box::new(layer)),
            slot(),
        );
        let header = b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 12000\r\n";
        let (_, peer) = connection.receive_prelude(header).unwrap().unwrap();
        connection.end_prelude(peer);
        assert!(!connection.in_prelude() && connection.transport_handshaking());

        exchange(&mut connection, &wire, &mut client, 4);
        assert!(!connection.transport_handshaking() && !client.is_handshaking());
        assert!(connection.is_handshaking(), "the service opens on its call");
        connection.end_handshake();
        connection.open_with(0);
        let tls = Transport::Tls {
            version: ProtocolVersion::TLSv1_3,
            sni: Some("localhost".into()),
        };
        assert_eq!(connection.info().transport(), &tls);
        assert!(connection.is_serving());

        client.writer().write_all(b"hello").unwrap();
        exchange(&mut connection, &wire, &mut client, 1);
        assert!(matches!(connection.plaintext(), Received::Data(data) if data == b"hello"));
        connection.send(b"HELLO", CAPACITY).unwrap();
        exchange(&mut connection, &wire, &mut client, 1);
        let mut answer = [0; 5];
        client.reader().read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"HELLO");

        // Finishing: the stream's end is TLS's close_notify, then the FIN.
        connection.apply(CLOSE);
        assert_eq!(connection.stage(), Some(Stage::Finishing));
        assert!(connection.end_if_sent().unwrap());
        assert_eq!(connection.stage(), Some(Stage::Lingering));
        assert!(wire.0.borrow().shut);
        exchange(&mut connection, &wire, &mut client, 1);
        let mut rest = Vec::new();
        assert_eq!(
            client.reader().read_to_end(&mut rest).unwrap(),
            0,
            "close_notify"
        );
    }

    #[test]
    fn a_proxy_header_split_in_bytes_is_taken_whole_and_names_the_client() {
        let mut connection: Connection<u32, Memory> = Connection::waiting(
            Memory::default(),
            info(),
            true,
            TransportLayer::Plain,
            slot(),
        );
        let header = b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 12000\r\n";
        for (i, byte) in header.iter().enumerate() {
            let pushed = connection.receive_prelude(&[*byte]).unwrap();
            if i + 1 < header.len() {
                assert_eq!(pushed, None, "incomplete after {} bytes", i + 1);
            } else {
                let client = "192.0.2.7:5555".parse().unwrap();
                assert_eq!(pushed, Some((1, client)));
            }
        }
        // Until the prelude ends, the peer is the socket's.
        assert_eq!(connection.info().peer, PEER.parse().unwrap());

        let mut refused: Connection<u32, Memory> = Connection::waiting(
            Memory::default(),
            info(),
            true,
            TransportLayer::Plain,
            slot(),
        );
        assert!(refused.receive_prelude(b"GET / HTTP/1.1\r\n").is_err());
    }

    #[test]
    fn pending_output_past_the_cap_stops_reading_until_half_of_it_drains() {
        let (mut connection, wire) = open();
        wire.0.borrow_mut().input.extend(b"more requests");
        connection.mark_ready(true, true);
        assert!(connection.wants_read(CAP));
        assert_eq!(connection.flow_change(CAP), None);

        // The client reads nothing: the answer waits, past the cap.
        let answer = [b'A'; CAP + 6];
        assert_eq!(connection.send(&answer, CAPACITY).unwrap(), 0);
        assert_eq!(connection.pending_output(), CAP + 6);
        assert!(!connection.wants_read(CAP), "backpressure");
        assert!(connection.may_have_input(), "still readable");
        assert_eq!(connection.flow_change(CAP), Some(false));
        assert_eq!(connection.flow_change(CAP), None, "told once");
        assert_eq!(connection.publish_pending(), Some((0, CAP + 6)));
        assert_eq!(connection.publish_pending(), None);

        // Drained under the cap: reading resumes, the service still blocked
        // until half of it drains.
        wire.0.borrow_mut().room = 7;
        connection.mark_ready(false, true);
        connection.flush().unwrap();
        assert!(connection.wants_read(CAP), "under the cap, reading resumes");
        assert_eq!(connection.flow_change(CAP), None);
        wire.0.borrow_mut().room = CAP / 2 - 1;
        connection.mark_ready(false, true);
        connection.flush().unwrap();
        assert_eq!(connection.pending_output(), CAP / 2);
        assert_eq!(connection.flow_change(CAP), Some(true));
        assert_eq!(read(&mut connection), Some(b"more requests".to_vec()));
    }

    #[test]
    fn a_senders_refused_message_tells_the_service_until_half_drains() {
        let (mut connection, wire) = open();
        // Refused with half the cap pending: a burst, not a full client.
        connection.push_output(&[b'A'; CAP / 2], CAPACITY);
        connection.note_refused();
        assert_eq!(connection.flow_change(CAP), None);
        assert!(!connection.was_refused(), "weighed once");
        connection.mark_ready(false, true);
        // Senders filled it to just under the cap: no message fits more.
        connection.push_output(&[b'A'; CAP / 2 - 5], CAPACITY);
        assert_eq!(connection.flow_change(CAP), None, "under the cap");
        connection.note_refused();
        assert_eq!(connection.flow_change(CAP), Some(false));
        assert_eq!(connection.flow_change(CAP), None, "told once");
        // Refused again while blocked: nothing new to tell.
        connection.note_refused();
        assert_eq!(connection.flow_change(CAP), None);
        wire.0.borrow_mut().room = CAP / 2;
        connection.flush().unwrap();
        assert_eq!(connection.flow_change(CAP), Some(true));
        assert_eq!(connection.flow_change(CAP), None);
    }

    #[test]
    fn a_close_awaiting_queued_bytes_takes_them_and_ends_only_after() {
        let (mut connection, wire) = open();
        connection.apply(CLOSE);
        assert!(!connection.takes_sent(), "closed: senders' bytes dropped");
        connection.await_queued();
        assert!(connection.takes_sent());
        assert!(connection.end_if_sent().unwrap());
        assert_eq!(connection.stage(), Some(Stage::Finishing), "waits");
        connection.push_output(b"late", CAPACITY);
        connection.end_queued();
        assert!(!connection.takes_sent());
        wire.0.borrow_mut().room = 4;
        connection.mark_ready(false, true);
        connection.flush().unwrap();
        assert!(connection.end_if_sent().unwrap());
        assert_eq!(connection.stage(), Some(Stage::Lingering));
        assert_eq!(wire.0.borrow().written, b"late");
    }

    #[test]
    fn the_clients_half_close_ends_input_and_the_connection_once_answered() {
        let (mut connection, wire) = open();
        wire.0.borrow_mut().input.extend(b"last");
        wire.0.borrow_mut().eof = true;
        connection.mark_ready(true, false);
        assert_eq!(read(&mut connection), Some(b"last".to_vec()));
        // A short read forgets readability; the FIN's own event says so.
        assert_eq!(read(&mut connection), None);
        connection.mark_ready(true, false);
        assert_eq!(read(&mut connection), Some(Vec::new()));
        assert!(connection.input_ended() && !connection.wants_read(CAP));
        // Its answer still goes out before the close.
        assert_eq!(connection.send(b"LAST", CAPACITY).unwrap(), 0);
        assert!(connection.end_if_sent().unwrap());
        wire.0.borrow_mut().room = 4;
        connection.mark_ready(false, true);
        connection.flush().unwrap();
        assert!(!connection.end_if_sent().unwrap());
        assert_eq!(wire.0.borrow().written, b"LAST");
        assert!(!wire.0.borrow().shut, "a plain close, no half-close first");
    }

    #[test]
    fn the_services_half_close_shuts_the_sending_side_once_sent_and_reading_goes_on() {
        let (mut connection, wire) = open();
        assert_eq!(connection.send(b"DONE", CAPACITY).unwrap(), 0);
        connection.apply(Requests {
            shutdown_write: true,
            ..Requests::NONE
        });
        assert!(!connection.accepts_output());
        assert!(connection.end_if_sent().unwrap());
        assert!(!wire.0.borrow().shut, "not before the output is sent");
        wire.0.borrow_mut().room = 4;
        connection.mark_ready(true, true);
        connection.flush().unwrap();
        assert!(connection.end_if_sent().unwrap(), "open: input goes on");
        assert!(wire.0.borrow().shut);
        assert!(connection.is_serving());
        wire.0.borrow_mut().input.extend(b"more");
        assert_eq!(read(&mut connection), Some(b"more".to_vec()));
    }

    #[test]
    fn transitions_out_of_order_are_not_made() {
        // The types rule out the rest: a stage exists only inside
        // `Phase::Open` with its session, so "serving without a session"
        // or "handshaking while lingering" cannot be written, and no field
        // is reachable from outside this module to set one by hand.
        let mut connection: Connection<u32, Memory> = Connection::waiting(
            Memory::default(),
            info(),
            true,
            TransportLayer::Plain,
            slot(),
        );
        connection.apply(CLOSE);
        connection.finish();
        assert!(
            connection.in_prelude(),
            "a close before the open waits for it"
        );
        assert_eq!(connection.stage(), None);

        let (mut connection, _wire) = open();
        connection.end_prelude("192.0.2.7:5555".parse().unwrap());
        assert_eq!(
            connection.info().peer,
            PEER.parse().unwrap(),
            "no prelude to end"
        );
        connection.finish();
        assert!(connection.end_if_sent().unwrap());
        assert_eq!(connection.stage(), Some(Stage::Lingering));
        connection.apply(CLOSE);
        connection.finish();
        assert_eq!(connection.stage(), Some(Stage::Lingering), "never back up");
        let Closed { decided, .. } = connection.into_closed();
        assert_eq!(decided, None, "finish decides no cause");
    }
}

#[cfg(test)]
mod tests {
    use super::PendingOutput;

    const KIB: usize = 1024;
    /// The default cap on pending output plus one read's largest answer.
    const LIMIT: usize = 256 * KIB + 3 * 64 * KIB;

    #[test]
    fn output_that_never_drains_stays_proportional_to_what_is_pending() {
        let mut output = PendingOutput::new();
        let chunk = vec![7u8; 64 * KIB];
        // A client that reads a little less than it is sent, forever: the
        // pending amount stays near 128 KiB while 64 MiB pass through.
        output.push(&chunk, LIMIT);
        for _ in 0..1024 {
            output.push(&chunk, LIMIT);
            output.consume(chunk.len() - 1);
            assert!(output.len() <= 128 * KIB + KIB);
            assert!(output.capacity() <= LIMIT, "{}", output.capacity());
        }
        assert!(output.as_slice().iter().all(|&byte| byte == 7));
    }

    #[test]
    fn capacity_stays_within_the_cap_plus_one_answer() {
        // The loop's rule: a connection is read (and its answer pushed)
        // only while less than the cap is pending. Answers of 192 KiB (one
        // 64 KiB read, tripled) against a client that reads 100 KiB a turn.
        let cap = 256 * KIB;
        let answer = vec![b'A'; 3 * 64 * KIB];
        let mut output = PendingOutput::new();
        let mut most = 0;
        for turn in 0..2000 {
            if output.len() < cap {
                output.push(&answer, LIMIT);
            }
            output.consume(output.len().min(100 * KIB + turn % 7));
            most = most.max(output.capacity());
        }
        assert!(most <= LIMIT, "capacity reached {most}, above {LIMIT}");
    }

    #[test]
    fn a_push_larger_than_the_limit_still_fits_whole() {
        let mut output = PendingOutput::new();
        output.push(&[1; 25], 10);
        assert_eq!(output.len(), 25);
        assert!(output.capacity() <= 25 * 2);
    }

    #[test]
    fn bytes_come_out_in_order_and_an_empty_buffer_holds_no_heap() {
        let mut output = PendingOutput::new();
        output.push(b"hello ", LIMIT);
        output.consume(2);
        output.push(b"world", LIMIT);
        assert_eq!(output.as_slice(), b"llo world");
        output.consume(3);
        output.push(b"!", LIMIT);
        assert_eq!(output.as_slice(), b" world!");
        output.consume(7);
        assert_eq!(output.len(), 0);
        assert_eq!(output.capacity(), 0);
    }
}
