//! QUIC listeners in the loop: each is a UDP socket and a quinn-proto
//! `Endpoint`, driven on the worker's `mio::Poll` like any other socket.
//! Datagrams go into the endpoint and its connections; each connection's
//! timer sits in the worker's timer queue; what the connections have to
//! send goes out before the turn ends.
//!
//! This module owns the connections: admission (the cap, the source's
//! share, Retry under load), the handshake deadline, the loss of a
//! connection and the stop. Each bidirectional stream is one session of
//! the stream service, driven by [`quic_streams`](super::quic_streams).
//!
//! One worker serves all QUIC connections: the builder gives the QUIC
//! sockets to worker 0 alone, because a second worker on the same port
//! would need the kernel to route datagrams by connection ID.

use super::quic_streams::QuicStreams;
use super::{Context, MAX_SOCKETS_PER_KIND, Source};
use crate::handle::Handle;
use crate::quic::{HANDSHAKE_TIMEOUT, QuicLimits, SERVER_STOPPING};
use crate::service::{CloseCause, LocalEnd, StreamService, Transport};
use crate::sources::{ConnectionSlots, Slot};
use crate::stats::WorkerStats;
use crate::timer::{TimerKind, TimerQueue, deadline_after};
use bytes::{Bytes, BytesMut};
use mio::net::UdpSocket;
use mio::{Interest, Registry};
use quinn_proto::{
    ConnectionError, ConnectionHandle, DatagramEvent, Dir, Endpoint, EndpointConfig, Event,
    Incoming, StreamEvent, StreamId, Transmit,
};
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Datagrams per QUIC socket per turn: no receive starts once this many
/// are taken (one receive takes up to [`RECEIVE_SLOTS`] buffers).
const DATAGRAMS_PER_TURN: usize = 256;
/// Datagrams one connection sends per drive, at most; the rest go on the
/// next turn.
const TRANSMITS_PER_DRIVE: usize = 64;
/// The kind under which a connection's quinn-proto timer sits in
/// [`Quic::timers`]: the connections' queue holds no service timer (the
/// streams' queue does), so its first service slot carries the
/// transport's.
const TRANSPORT_TIMER: TimerKind = TimerKind::Service(crate::timer::Timer::DEFAULT);
/// Datagrams one send carries, at most, where the kernel segments them
/// (GSO): quinn's own figure. The kernel refuses a send over 64 KiB
/// (EMSGSIZE), 44 datagrams of 1,472 bytes, and quinn-udp reports such a
/// refusal as sent, so the cap must stay well under it.
const GSO_SEGMENTS: usize = 10;
const _: () = assert!(GSO_SEGMENTS * 1_472 <= 65_507, "a GSO send fits in 64 KiB");
/// Buffers one receive fills, at most: one `recvmmsg` on Linux.
const RECEIVE_SLOTS: usize = quinn_udp::BATCH_SIZE;
/// Bytes one receive buffer holds: the largest UDP payload, or the
/// datagrams the kernel coalesced into one buffer (GRO, 64 KiB at most).
const RECEIVE_SLOT_BYTES: usize = 65_536;

/// A QUIC listener's socket as the builder binds it, with its settings.
pub(crate) struct QuicSocket {
    pub(crate) socket: std::net::UdpSocket,
    pub(crate) config: Arc<quinn_proto::ServerConfig>,
    /// Its number among the server's listeners (after TCP and TLS).
    pub(crate) listener: usize,
}

/// One QUIC listener: its socket and endpoint.
struct QuicListener {
    socket: UdpSocket,
    /// What the kernel offers: segmentation offload for sending (GSO),
    /// and coalesced datagrams on receipt (GRO), which this socket asks
    /// for.
    udp: quinn_udp::UdpSocketState,
    endpoint: Endpoint,
    /// The server's end shared by its streams, before each gets its own.
    end: LocalEnd,
    /// The connections' keys, by the endpoint's handle.
    handles: HashMap<ConnectionHandle, usize>,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshaking,
    Connected,
    /// Closed or lost: its streams are closed, quinn-proto drains it.
    Closing,
}

/// One QUIC connection, with its streams' keys.
pub(super) struct QuicConnection {
    listener: usize,
    handle: ConnectionHandle,
    pub(super) conn: quinn_proto::Connection,
    pub(super) streams: HashMap<StreamId, usize>,
    pub(super) peer: SocketAddr,
    phase: Phase,
    /// The SNI the client sent, known once the handshake data is.
    pub(super) sni: Option<String>,
    /// Whether a stream was opened: a client that is answered and closes
    /// before the server sees its handshake end (it resumed, and its
    /// request came early) did not fail its handshake.
    pub(super) served: bool,
    /// Whether it was counted in `quic_handshakes_completed`: it is
    /// counted in `quic_connections_closed` once forgotten, so that the
    /// two differ by the connections open.
    completed: bool,
    /// Its place under the cap and in its source's share.
    _slot: Slot,
}

/// A worker's QUIC listeners, connections and streams.
pub(super) struct Quic<S: StreamService> {
    listeners: Vec<QuicListener>,
    connections: Slab<QuicConnection>,
    streams: QuicStreams<S>,
    /// Each connection's quinn-proto timer and handshake deadline.
    timers: TimerQueue,
    slots: Arc<ConnectionSlots>,
    limits: QuicLimits,
    handshake_timeout: Duration,
    /// Connections not yet through their handshake.
    handshaking: usize,
    /// Connections with work to do before the turn ends.
    dirty: Vec<usize>,
    /// Where quinn-proto writes a datagram to send.
    transmit: Vec<u8>,
    /// Where datagrams are received: [`RECEIVE_SLOTS`] buffers of
    /// [`RECEIVE_SLOT_BYTES`], allocated zeroed so that the kernel maps
    /// only the pages datagrams fill.
    receive: Box<[u8]>,
    draining: bool,
}

/// What building the QUIC part of a worker takes.
pub(super) struct QuicParts<S> {
    pub(super) sockets: Vec<QuicSocket>,
    pub(super) service: Arc<S>,
    pub(super) handle: Handle,
    pub(super) slots: Arc<ConnectionSlots>,
    pub(super) limits: QuicLimits,
    pub(super) handshake_timeout: Duration,
    pub(super) worker: usize,
}

impl<S: StreamService> Quic<S> {
    pub(super) fn new(registry: &Registry, parts: QuicParts<S>) -> io::Result<Self> {
        debug_assert!(parts.sockets.len() <= MAX_SOCKETS_PER_KIND);
        let mut listeners = Vec::with_capacity(parts.sockets.len());
        for (index, bound) in parts.sockets.into_iter().enumerate() {
            let addr = bound.socket.local_addr()?;
            let mut socket = UdpSocket::from_std(bound.socket);
            registry.register(&mut socket, Source::Quic(index).token(), Interest::READABLE)?;
            let udp = quinn_udp::UdpSocketState::new((&socket).into())?;
            let endpoint = Endpoint::new(
                Arc::new(EndpointConfig::default()),
                Some(bound.config),
                false,
                None,
            );
            let end = LocalEnd {
                listener: bound.listener,
                listener_addr: addr,
                local: addr,
                transport: Transport::Plain,
            };
            listeners.push(QuicListener {
                socket,
                udp,
                endpoint,
                end,
                handles: HashMap::new(),
            });
        }
        let receive_size = if listeners.is_empty() {
            0
        } else {
            RECEIVE_SLOTS * RECEIVE_SLOT_BYTES
        };
        Ok(Self {
            listeners,
            connections: Slab::new(),
            streams: QuicStreams::new(parts.service, parts.handle, &parts.limits, parts.worker),
            timers: TimerQueue::new(),
            slots: parts.slots,
            limits: parts.limits,
            handshake_timeout: parts.handshake_timeout,
            handshaking: 0,
            dirty: Vec::new(),
            transmit: Vec::new(),
            receive: vec![0; receive_size].into_boxed_slice(),
            draining: false,
        })
    }

    /// Returns whether no QUIC connection is left.
    pub(super) fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// Takes in up to one turn's share of the datagrams waiting on
    /// listener `index`, then drives the connections they concern.
    /// Returns whether more may be waiting (the socket is then hot).
    pub(super) fn serve(&mut self, index: usize, context: &mut Context) -> bool {
        if index >= self.listeners.len() {
            return false;
        }
        // Out of `self` while the endpoint takes the datagrams, which
        // borrows `self` too; put back below.
        let mut buffer = std::mem::take(&mut self.receive);
        let mut more = true;
        let mut taken = 0;
        while taken < DATAGRAMS_PER_TURN {
            let mut metas = [quinn_udp::RecvMeta::default(); RECEIVE_SLOTS];
            let received = {
                let mut slots = buffer.chunks_mut(RECEIVE_SLOT_BYTES).map(IoSliceMut::new);
                let mut slots: [IoSliceMut<'_>; RECEIVE_SLOTS] = std::array::from_fn(|_| {
                    slots.next().unwrap_or_else(|| IoSliceMut::new(&mut []))
                });
                let listener = &self.listeners[index];
                listener
                    .udp
                    .recv((&listener.socket).into(), &mut slots, &mut metas)
            };
            let count = match received {
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // An ICMP error for an earlier datagram: one peer's.
                    log::debug!("quic: receive error: {error}");
                    taken += 1;
                    continue;
                }
            };
            for (meta, slot) in metas
                .iter()
                .zip(buffer.chunks(RECEIVE_SLOT_BYTES))
                .take(count)
            {
                // One copy per buffer, then each datagram of a coalesced
                // buffer is a view of it, `stride` bytes apiece.
                let mut datagrams = BytesMut::from(&slot[..meta.len.min(slot.len())]);
                let stride = meta.stride.max(1);
                if datagrams.is_empty() {
                    // An empty datagram is nothing for quinn-proto, but it
                    // counts in the turn's share: a flood of them must not
                    // hold the worker in this loop.
                    taken += 1;
                }
                while !datagrams.is_empty() {
                    let datagram = datagrams.split_to(stride.min(datagrams.len()));
                    self.take_datagram(index, meta.addr, datagram, context);
                    taken += 1;
                }
            }
        }
        self.receive = buffer;
        self.drive_dirty(context);
        if more {
            context.hot.push(Source::Quic(index));
        }
        more
    }

    /// Hands one datagram to listener `index`'s endpoint and does what it
    /// says: a connection's packet, a new client, or an answer of the
    /// endpoint's own (a version negotiation, a stateless reset).
    fn take_datagram(
        &mut self,
        index: usize,
        peer: SocketAddr,
        datagram: BytesMut,
        context: &mut Context,
    ) {
        let listener = &mut self.listeners[index];
        self.transmit.clear();
        let event =
            listener
                .endpoint
                .handle(context.now, peer, None, None, datagram, &mut self.transmit);
        match event {
            None => {}
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(&key) = listener.handles.get(&handle) {
                    self.connections[key].conn.handle_event(event);
                    self.dirty.push(key);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                self.admit(index, incoming, context);
            }
            Some(DatagramEvent::Response(transmit)) => {
                send(listener, &transmit, &self.transmit);
            }
        }
    }

    /// Decides on a new client: refused while stopping, at the cap or
    /// over its source's share; sent a Retry when its address is not
    /// validated and the worker is under load; else accepted.
    fn admit(&mut self, index: usize, incoming: Incoming, context: &mut Context) {
        let peer = incoming.remote_address();
        let listener = &mut self.listeners[index];
        let stats = &context.stats;
        self.transmit.clear();
        if !incoming.remote_address_validated()
            && incoming.may_retry()
            && self.handshaking >= self.limits.retry_above
            && !self.draining
        {
            match listener.endpoint.retry(incoming, &mut self.transmit) {
                Ok(transmit) => {
                    send(listener, &transmit, &self.transmit);
                    WorkerStats::add(&stats.quic_retries_sent, 1);
                    log::debug!("quic {peer}: Retry sent, to validate its address");
                }
                Err(error) => listener.endpoint.ignore(error.into_incoming()),
            }
            return;
        }
        let slot = match self.slots.take() {
            _ if self.draining => None,
            Some(mut slot) => {
                let charged = slot.charge(peer.ip());
                if !charged {
                    WorkerStats::add(&stats.connections_refused_per_source, 1);
                }
                charged.then_some(slot)
            }
            None => None,
        };
        let Some(slot) = slot else {
            // Counted before the client can learn of it.
            WorkerStats::add(&stats.quic_connections_refused, 1);
            let transmit = listener.endpoint.refuse(incoming, &mut self.transmit);
            send(listener, &transmit, &self.transmit);
            log::debug!("quic {peer}: refused (stopping, the cap, or its source's share)");
            return;
        };
        match (listener.endpoint).accept(incoming, context.now, &mut self.transmit, None) {
            Ok((handle, conn)) => {
                let key = self.connections.insert(QuicConnection {
                    listener: index,
                    handle,
                    conn,
                    streams: HashMap::new(),
                    peer,
                    phase: Phase::Handshaking,
                    sni: None,
                    served: false,
                    completed: false,
                    _slot: slot,
                });
                listener.handles.insert(handle, key);
                let deadline = deadline_after(context.now, self.handshake_timeout);
                self.timers.set(key, TimerKind::Handshake, deadline);
                self.handshaking += 1;
                self.dirty.push(key);
                log::debug!("quic {peer}: handshake begun");
            }
            Err(error) => {
                if let Some(transmit) = error.response {
                    send(listener, &transmit, &self.transmit);
                }
                WorkerStats::add(&stats.quic_handshakes_failed, 1);
                log::debug!("quic {peer}: not accepted: {}", error.cause);
            }
        }
    }

    /// Drives every connection that had something happen, until none has
    /// (bounded: a connection that still has datagrams to send after its
    /// share is driven again next turn).
    fn drive_dirty(&mut self, context: &mut Context) {
        let mut rounds = 0;
        while !self.dirty.is_empty() && rounds < 4 {
            rounds += 1;
            let mut dirty = std::mem::take(&mut self.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            for &key in &dirty {
                if self.connections.contains(key) {
                    self.drive(key, context);
                }
            }
            dirty.clear();
            if self.dirty.is_empty() {
                self.dirty = dirty;
            }
        }
    }

    /// Does all connection `key` can do now: its events (streams read and
    /// answered), its endpoint's bookkeeping, its datagrams out, its timer.
    fn drive(&mut self, key: usize, context: &mut Context) {
        self.handle_events(key, context);
        let connection = &mut self.connections[key];
        let listener = &mut self.listeners[connection.listener];
        let mut drained = false;
        while let Some(event) = connection.conn.poll_endpoint_events() {
            drained |= event.is_drained();
            if let Some(event) = listener.endpoint.handle_event(connection.handle, event) {
                connection.conn.handle_event(event);
            }
        }
        if drained {
            self.remove(key, context);
            return;
        }
        let mut sent_all = false;
        let batch = listener.udp.max_gso_segments().min(GSO_SEGMENTS);
        for _ in 0..TRANSMITS_PER_DRIVE {
            self.transmit.clear();
            match connection
                .conn
                .poll_transmit(context.now, batch, &mut self.transmit)
            {
                Some(transmit) => send(listener, &transmit, &self.transmit),
                None => {
                    sent_all = true;
                    break;
                }
            }
        }
        if !sent_all {
            self.dirty.push(key);
            context.hot.push(Source::Quic(connection.listener));
        }
        match connection.conn.poll_timeout() {
            Some(at) => self.timers.set(key, TRANSPORT_TIMER, at),
            None => self.timers.cancel(key, TRANSPORT_TIMER),
        }
    }

    /// Handles what quinn-proto says happened on connection `key`.
    fn handle_events(&mut self, key: usize, context: &mut Context) {
        while let Some(event) = self.connections[key].conn.poll() {
            match event {
                Event::HandshakeDataReady => self.note_sni(key),
                Event::Connected => self.connected(key, context),
                Event::ConnectionLost { reason } => self.lost(key, &reason, context),
                Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                    let connection = &mut self.connections[key];
                    let end = &self.listeners[connection.listener].end;
                    while let Some(id) = connection.conn.streams().accept(Dir::Bi) {
                        self.streams.open(key, connection, id, end, context);
                    }
                }
                Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) => {
                    // Never allowed (the limit is 0): a client that opens
                    // one anyway loses its connection in quinn-proto.
                    let connection = &mut self.connections[key];
                    while let Some(id) = connection.conn.streams().accept(Dir::Uni) {
                        let _ = connection
                            .conn
                            .recv_stream(id)
                            .stop(crate::quic::STREAM_DONE);
                    }
                }
                Event::Stream(StreamEvent::Readable { id } | StreamEvent::Writable { id }) => {
                    self.streams.ready(&mut self.connections[key], id, context);
                }
                Event::Stream(StreamEvent::Stopped { id, .. }) => {
                    self.streams
                        .stopped(&mut self.connections[key], id, context);
                }
                Event::Stream(_) | Event::DatagramReceived | Event::DatagramsUnblocked => {}
            }
        }
    }

    /// Notes the SNI of connection `key`, for its streams' transport.
    fn note_sni(&mut self, key: usize) {
        let connection = &mut self.connections[key];
        connection.sni = connection
            .conn
            .crypto_session()
            .handshake_data()
            .and_then(|data| {
                data.downcast::<quinn_proto::crypto::rustls::HandshakeData>()
                    .ok()
            })
            .and_then(|data| data.server_name);
    }

    fn connected(&mut self, key: usize, context: &Context) {
        let connection = &mut self.connections[key];
        if connection.phase == Phase::Handshaking {
            connection.phase = Phase::Connected;
            self.handshaking -= 1;
            self.timers.cancel(key, TimerKind::Handshake);
            connection.completed = true;
            WorkerStats::add(&context.stats.quic_handshakes_completed, 1);
            log::debug!("quic {}: connected", connection.peer);
        }
    }

    /// Closes the streams of connection `key`, lost for `reason`; quinn-proto
    /// then drains it, and [`remove`](Self::remove) forgets it.
    fn lost(&mut self, key: usize, reason: &ConnectionError, context: &mut Context) {
        let connection = &mut self.connections[key];
        if connection.phase == Phase::Handshaking {
            self.handshaking -= 1;
            note_handshake_end(connection, &context.stats);
        }
        connection.phase = Phase::Closing;
        log::debug!("quic {}: connection closed: {reason}", connection.peer);
        let cause = match reason {
            ConnectionError::TimedOut => {
                WorkerStats::add(&context.stats.quic_idle_timeouts, 1);
                CloseCause::IdleTimeout
            }
            ConnectionError::LocallyClosed => CloseCause::Stopped,
            ConnectionError::ApplicationClosed(_)
            | ConnectionError::ConnectionClosed(_)
            | ConnectionError::Reset => CloseCause::Reset,
            _ => CloseCause::Error(io::ErrorKind::InvalidData),
        };
        self.streams.close_all(connection, cause, context);
    }

    /// Forgets connection `key`, drained: its streams are closed already,
    /// its slot goes back.
    fn remove(&mut self, key: usize, context: &mut Context) {
        let mut connection = self.connections.remove(key);
        if connection.phase == Phase::Handshaking {
            self.handshaking -= 1;
            note_handshake_end(&mut connection, &context.stats);
        }
        self.streams
            .close_all(&mut connection, CloseCause::Reset, context);
        let lost = connection.conn.stats().path.lost_packets;
        WorkerStats::add(&context.stats.quic_packets_lost, lost);
        if connection.completed {
            WorkerStats::add(&context.stats.quic_connections_closed, 1);
        }
        self.listeners[connection.listener]
            .handles
            .remove(&connection.handle);
        self.timers.cancel_all(key);
        log::debug!("quic {}: forgotten", connection.peer);
    }

    /// Carries out what senders asked of QUIC streams since the last
    /// turn, and drives the connections named.
    pub(super) fn take_commands(
        &mut self,
        mut commands: Vec<crate::sender::Command>,
        context: &mut Context,
    ) {
        let touched = (self.streams).take_commands(&mut commands, &mut self.connections, context);
        self.dirty.extend(touched);
        self.drive_dirty(context);
    }

    /// When the next QUIC timer is due.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        super::earliest(self.timers.next_deadline(), self.streams.next_deadline())
    }

    /// Runs the timers that are due: quinn-proto's, the handshake
    /// deadlines, the services' timers on streams.
    pub(super) fn fire_timers(&mut self, context: &mut Context) {
        if self
            .next_deadline()
            .is_none_or(|deadline| deadline > context.now)
        {
            return;
        }
        while let Some((key, kind)) = self.timers.expired(context.now) {
            let connection = &mut self.connections[key];
            match kind {
                TimerKind::Handshake => {
                    log::debug!(
                        "quic {}: handshake not done by its deadline",
                        connection.peer
                    );
                    let reason = Bytes::from_static(b"handshake timeout");
                    connection
                        .conn
                        .close(context.now, HANDSHAKE_TIMEOUT, reason);
                    if connection.phase == Phase::Handshaking {
                        connection.phase = Phase::Closing;
                        self.handshaking -= 1;
                        WorkerStats::add(&context.stats.quic_handshakes_failed, 1);
                    }
                }
                // A QUIC connection never lingers: its ends are QUIC's.
                TimerKind::Service(_) | TimerKind::Linger => {
                    connection.conn.handle_timeout(context.now);
                }
            }
            self.dirty.push(key);
        }
        for key in self.streams.fire_timers(&mut self.connections, context) {
            self.dirty.push(key);
        }
        self.drive_dirty(context);
    }

    /// Starts the stop: clients not yet through their handshake are
    /// closed, new ones refused; streams answer until they go quiet.
    pub(super) fn begin_drain(&mut self, context: &mut Context) {
        self.draining = true;
        for (key, connection) in &mut self.connections {
            if connection.phase == Phase::Handshaking {
                let reason = Bytes::from_static(b"server stopping");
                connection.conn.close(context.now, SERVER_STOPPING, reason);
                self.dirty.push(key);
            }
        }
        self.drive_dirty(context);
    }

    /// While stopping, ends each stream quiet for `quiet` (its answer
    /// complete), and closes each connection left with no stream, with a
    /// CONNECTION_CLOSE.
    pub(super) fn finish_quiet(&mut self, quiet: Duration, context: &mut Context) {
        for key in self
            .streams
            .end_quiet(quiet, &mut self.connections, context)
        {
            self.dirty.push(key);
        }
        for (key, connection) in &mut self.connections {
            if connection.phase == Phase::Connected && connection.streams.is_empty() {
                let reason = Bytes::from_static(b"server stopping");
                connection.conn.close(context.now, SERVER_STOPPING, reason);
                connection.phase = Phase::Closing;
                self.dirty.push(key);
            }
        }
        self.drive_dirty(context);
    }

    /// When the stream quiet longest will have been quiet for `quiet`.
    pub(super) fn next_quiet_deadline(&self, quiet: Duration) -> Option<Instant> {
        self.streams.next_quiet_deadline(quiet)
    }

    /// Ends the stop: every stream is closed, and every connection with a
    /// CONNECTION_CLOSE sent once.
    pub(super) fn finish_drain(&mut self, context: &mut Context) {
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            let connection = &mut self.connections[key];
            self.streams
                .close_all(connection, CloseCause::Stopped, context);
            let reason = Bytes::from_static(b"server stopping");
            connection.conn.close(context.now, SERVER_STOPPING, reason);
            let listener = &self.listeners[connection.listener];
            self.transmit.clear();
            if let Some(transmit) =
                connection
                    .conn
                    .poll_transmit(context.now, 1, &mut self.transmit)
            {
                send(listener, &transmit, &self.transmit);
            }
            self.remove(key, context);
        }
    }
}

/// Counts the handshake of a connection that ends before the server saw
/// it complete: failed, unless the client was served a stream (a resumed
/// client whose early request was answered, which closed at once).
fn note_handshake_end(connection: &mut QuicConnection, stats: &WorkerStats) {
    connection.completed = connection.served;
    let counter = if connection.served {
        &stats.quic_handshakes_completed
    } else {
        &stats.quic_handshakes_failed
    };
    WorkerStats::add(counter, 1);
}

/// Sends what quinn-proto made: one datagram, or several of one size in
/// one system call where the kernel segments them (GSO). A full socket
/// buffer drops it: QUIC counts it lost and sends again, as after a loss
/// on the path.
fn send(listener: &QuicListener, transmit: &Transmit, buffer: &[u8]) {
    let batch = quinn_udp::Transmit {
        destination: transmit.destination,
        ecn: None,
        contents: &buffer[..transmit.size.min(buffer.len())],
        segment_size: transmit.segment_size,
        src_ip: None,
    };
    if let Err(error) = listener.udp.try_send((&listener.socket).into(), &batch) {
        log::debug!("quic {}: send failed: {error}", transmit.destination);
    }
}
