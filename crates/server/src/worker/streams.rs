//! TCP connections in the loop: taking in an accepted stream, driving it
//! (write what is pending, read, hand the bytes through the connection's
//! stages, finish), closing it, the idle timeout, the timers, the
//! senders' commands and the stop's end of each connection.
//!
//! The connection's own state and its transitions are
//! [`Connection`](crate::connection::Connection)'s; this module does the
//! socket's I/O around it and keeps the slab, the idle list and the
//! timers. Whether a connection may come in at all is
//! [`accept`](super::accept)'s decision; its slot goes back when the
//! connection is dropped.

use super::TcpConnection;
use super::accept::Listener;
use super::calls::{Serve, add_bytes_out, apply, end_sends, io};
#[cfg(feature = "tls")]
use super::tls;
#[cfg(feature = "ws")]
use super::ws;
use super::{Context, Limits, MAX_CONNECTION_KEY, Source, note_panic};
use crate::connection::{Closed, Connection, Stage};
use crate::handle::Handle;
use crate::idle::IdleList;
use crate::sender::{Command, Post};
use crate::service::{
    CloseCause, ConnectionContext, ConnectionId, ConnectionInfo, EndReason, LocalEnd, Requests,
    StreamService,
};
use crate::sources::Slot;
use crate::stats::WorkerStats;
use crate::timer::{TimerKind, TimerQueue, deadline_after};
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry};
use slab::Slab;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads per connection per turn: 16 × 64 KiB = 1 MiB before others get a turn.
const READS_PER_TURN: usize = 16;

/// What a connection is registered for. Urgent data raises the priority
/// event, after which reads go on to `WouldBlock` (a read stops short at
/// the urgent mark although more is queued).
#[cfg(any(target_os = "linux", target_os = "android"))]
const CONNECTION_INTEREST: Interest = Interest::READABLE
    .add(Interest::WRITABLE)
    .add(Interest::PRIORITY);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const CONNECTION_INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

/// What the service calls of every connection share: the service, the
/// server's handle (its senders among them), the scratch buffer, the
/// timers and the output limits.
pub(super) struct Calls<S> {
    service: Arc<S>,
    handle: Handle,
    /// Where the service writes its answer before it goes to the socket.
    scratch: Vec<u8>,
    timers: TimerQueue,
    max_pending_output: usize,
    /// The most one connection can have pending: the cap, reached by less
    /// than one byte, plus the answer to one read.
    output_capacity: usize,
}

impl<S> Calls<S> {
    /// Returns what one event lends the service calls it makes.
    fn serve<'a>(&'a mut self, now: Instant, stats: &'a WorkerStats) -> Serve<'a, S> {
        Serve {
            service: &self.service,
            handle: &self.handle,
            max_pending_output: self.max_pending_output,
            output_capacity: self.output_capacity,
            now,
            stats,
            scratch: &mut self.scratch,
            timers: &mut self.timers,
        }
    }
}

/// A worker's TCP connections and what serving them needs.
pub(super) struct Streams<S: StreamService> {
    connections: Slab<TcpConnection<S::Session>>,
    idle: IdleList,
    calls: Calls<S>,
    /// One read buffer for every connection of this worker.
    read_buffer: Box<[u8]>,
    handshake_timeout: Duration,
    idle_timeout: Option<Duration>,
    /// How long a connection lingers once its session ended.
    linger_timeout: Duration,
    /// No connection's idle timeout ends before this: the deadline of the
    /// connection idle longest when it was last computed. A lower bound
    /// that needs no update per request, because the longest-idle
    /// connection's last activity only ever moves later (it is touched and
    /// goes to the tail, or closes, or the list was empty and the next one
    /// is touched now). `None`: not known, look every turn.
    idle_checked_until: Option<Instant>,
    /// This worker's index, the top of its connections' ids.
    worker: usize,
    next_serial: u64,
    post: Arc<Post>,
    /// Commands taken from the mailbox, kept for its capacity.
    commands: Vec<Command>,
    /// Commands for QUIC streams (their keys tagged
    /// [`QUIC_STREAM_KEY`](super::QUIC_STREAM_KEY)), for the QUIC part.
    pub(super) quic_commands: Vec<Command>,
    /// Timers due this turn.
    due: Vec<(usize, TimerKind)>,
    /// The server's ends of connections on listeners with an unspecified
    /// address, one per local address seen, shared by their connections.
    local_ends: Vec<Arc<LocalEnd>>,
}

/// The most server ends [`Streams::local_ends`] keeps; past it, an end no
/// connection holds is replaced, and if every one is held a connection
/// gets one of its own.
const MAX_LOCAL_ENDS: usize = 16;

impl<S: StreamService> Streams<S> {
    pub(super) fn new(worker: usize, service: Arc<S>, limits: &Limits, handle: Handle) -> Self {
        let post = Arc::clone(&handle.sender.post);
        Self {
            connections: Slab::new(),
            idle: IdleList::new(),
            calls: Calls {
                service,
                handle,
                scratch: Vec::new(),
                timers: TimerQueue::new(),
                max_pending_output: limits.max_pending_output,
                output_capacity: limits.max_pending_output + limits.read_buffer_size * 3,
            },
            read_buffer: vec![0; limits.read_buffer_size].into_boxed_slice(),
            handshake_timeout: limits.handshake_timeout,
            idle_timeout: limits.idle_timeout,
            linger_timeout: limits.linger_timeout,
            idle_checked_until: None,
            worker,
            next_serial: 0,
            post,
            commands: Vec::new(),
            quic_commands: Vec::new(),
            due: Vec::new(),
            local_ends: Vec::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.connections.len()
    }

    pub(super) fn contains(&self, key: usize) -> bool {
        self.connections.contains(key)
    }

    /// Records what `event` says of connection `key`. Returns whether the
    /// connection exists (an event may name one closed this turn).
    pub(super) fn note(&mut self, key: usize, event: &Event) -> bool {
        match self.connections.get_mut(key) {
            Some(connection) => {
                connection.note(event);
                true
            }
            None => false,
        }
    }

    /// When the connection idle longest times out, if a timeout is set, or
    /// an earlier time (see [`Self::idle_checked_until`]): waking then
    /// finds nothing expired and learns the exact deadline.
    pub(super) fn next_idle_deadline(&self) -> Option<Instant> {
        let timeout = self.idle_timeout?;
        self.idle_checked_until
            .or_else(|| self.idle.next_deadline(timeout))
    }

    /// When the next timer is due.
    pub(super) fn next_timer_deadline(&self) -> Option<Instant> {
        self.calls.timers.next_deadline()
    }

    /// Takes an accepted connection into the loop and opens its session,
    /// or starts its prelude or handshake; `slot`, its place under the
    /// cap, goes back as it drops if the connection cannot be served.
    pub(super) fn admit(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        slot: Slot,
        listener: Listener<'_>,
        registry: &Registry,
        context: &mut Context,
    ) {
        let kind = listener.kind;
        // Checked before anything is set up for the connection: an
        // untrusted sender costs no registration and no sender entry.
        if kind
            .proxy
            .as_ref()
            .is_some_and(|trust| !trust.trusts(peer.ip()))
        {
            WorkerStats::add(&context.stats.proxy_headers_rejected, 1);
            log::debug!("{peer}: not a trusted PROXY header sender, closing");
            return;
        }
        let Some(key) = self.register(&mut stream, peer, registry) else {
            return;
        };
        let info = self.info_of(&stream, peer, &listener);
        let id = info.id;
        let mailbox = &self.post.mailboxes[self.worker];
        mailbox.open(id, key);
        // What a connection leaves the loop with when it cannot be served:
        // no session, so no `closed` either; its slot goes back as it drops.
        let abandon = |stream: &mut TcpStream| {
            mailbox.forget(id);
            let _ = registry.deregister(stream);
        };
        let transport = match kind.transport_layer() {
            Ok(transport) => transport,
            Err(error) => {
                log::warn!("{peer}: cannot start TLS, closing: {error}");
                abandon(&mut stream);
                return;
            }
        };
        let awaits_header = kind.proxy.is_some();
        #[cfg(feature = "ws")]
        if let Some(config) = &kind.websocket {
            let secure = transport.has_handshake();
            let layer = crate::ws::WsLayer::new(Arc::clone(config), secure);
            let connection = Connection::waiting(stream, info, awaits_header, transport, slot);
            self.admit_waiting(connection.with_websocket(layer), key, context);
            return;
        }
        if transport.has_handshake() || awaits_header {
            let connection = Connection::waiting(stream, info, awaits_header, transport, slot);
            self.admit_waiting(connection, key, context);
            return;
        }
        let mut serve = self.calls.serve(context.now, &context.stats);
        let service = serve.service;
        let (session, requests) =
            match super::calls::call(&mut serve, &info, 0, |conn| service.open(conn)) {
                Ok(opened) => opened,
                Err(payload) => {
                    note_panic(&context.stats, &peer, payload);
                    abandon(&mut stream);
                    return;
                }
            };
        let connection = Connection::open(stream, info, session, slot);
        let key = self.connections.insert(connection);
        let connection = &mut self.connections[key];
        // The greeting goes out when the socket first says it is writable.
        connection.push_output(&self.calls.scratch, self.calls.output_capacity);
        if !self.calls.scratch.is_empty() || requests != Requests::NONE {
            apply(connection, key, requests, &mut self.calls.timers);
            end_sends(&self.calls.handle.sender, connection, key, requests);
            context.hot.push(Source::Connection(key));
        }
        self.idle.touch(key, context.now);
        WorkerStats::add(&context.stats.connections_accepted, 1);
        log::debug!("{peer}: connected");
    }

    /// Takes in a connection whose service opens only once its PROXY
    /// header names the client and its TLS handshake is over, both by one
    /// deadline.
    fn admit_waiting(
        &mut self,
        connection: TcpConnection<S::Session>,
        key: usize,
        context: &Context,
    ) {
        let peer = connection.info().peer;
        let waits_for = match (connection.in_prelude(), connection.has_handshake()) {
            (true, true) => "its PROXY header, then the TLS handshake",
            (true, false) => "its PROXY header",
            (false, true) => "the TLS handshake",
            (false, false) => "its HTTP request",
        };
        let inserted = self.connections.insert(connection);
        debug_assert_eq!(inserted, key, "registered under the slab's next key");
        let deadline = deadline_after(context.now, self.handshake_timeout);
        self.calls.timers.set(key, TimerKind::Handshake, deadline);
        self.idle.touch(key, context.now);
        WorkerStats::add(&context.stats.connections_accepted, 1);
        log::debug!("{peer}: connected, awaiting {waits_for}");
    }

    /// Sets an accepted stream's options and registers it under the key
    /// its connection will have. Returns that key, or `None` when the
    /// stream cannot be watched.
    fn register(
        &mut self,
        stream: &mut TcpStream,
        peer: SocketAddr,
        registry: &Registry,
    ) -> Option<usize> {
        if let Err(error) = stream.set_nodelay(true) {
            log::debug!("{peer}: TCP_NODELAY not set: {error}");
        }
        // Urgent data stays in the stream, answered like any byte.
        if let Err(error) = shout_socket::keep_urgent_data_inline(&*stream) {
            log::debug!("{peer}: SO_OOBINLINE not set: {error}");
        }
        let key = self.connections.vacant_key();
        if key > MAX_CONNECTION_KEY {
            log::warn!("{peer}: no token left for another connection, closing it");
            return None;
        }
        let token = Source::Connection(key).token();
        if let Err(error) = registry.register(stream, token, CONNECTION_INTEREST) {
            log::warn!("{peer}: cannot watch the connection, closing it: {error}");
            return None;
        }
        Some(key)
    }

    /// Returns what is known of a connection at its accept, with a new id.
    fn info_of(
        &mut self,
        stream: &TcpStream,
        peer: SocketAddr,
        listener: &Listener<'_>,
    ) -> ConnectionInfo {
        // A specific listener address is the connection's too: no system
        // call for it.
        let end = self.local_end(stream, listener.addr);
        let id = ConnectionId::new(self.worker, self.next_serial);
        self.next_serial += 1;
        ConnectionInfo { id, peer, end }
    }

    /// Returns the server's end of a connection accepted on `listener`:
    /// the listener's own on a specific address (no system call), else
    /// the one of the connection's local address, shared with others.
    fn local_end(&mut self, stream: &TcpStream, listener: &Arc<LocalEnd>) -> Arc<LocalEnd> {
        if !listener.listener_addr.ip().is_unspecified() {
            return Arc::clone(listener);
        }
        let Ok(local) = stream.local_addr() else {
            return Arc::clone(listener);
        };
        let same =
            |end: &&mut Arc<LocalEnd>| end.local == local && end.listener == listener.listener;
        if let Some(end) = self.local_ends.iter_mut().find(same) {
            return Arc::clone(end);
        }
        let end = Arc::new(LocalEnd {
            local,
            ..LocalEnd::clone(listener)
        });
        if self.local_ends.len() < MAX_LOCAL_ENDS {
            self.local_ends.push(Arc::clone(&end));
        } else if let Some(unheld) = self
            .local_ends
            .iter_mut()
            .find(|end| Arc::strong_count(end) == 1)
        {
            *unheld = Arc::clone(&end);
        }
        end
    }

    /// Does all a connection can do now: write, read and answer, finish.
    pub(super) fn drive(&mut self, key: usize, registry: &Registry, context: &mut Context) {
        let stepped = self
            .step(key, context)
            .and_then(|()| self.settle(key, context));
        match stepped {
            Ok(true) => {}
            Ok(false) => self.close(key, CloseCause::ClientClosed, registry, context),
            Err(cause) => {
                #[cfg(feature = "tls")]
                tls::note_broken_handshake(&self.connections[key], cause, &context.stats);
                self.close(key, cause, registry, context);
            }
        }
    }

    /// Writes what is pending, then reads and hands each read through the
    /// connection's stages, within the turn's share and the cap on pending
    /// output. Returns the cause when the connection must close now.
    fn step(&mut self, key: usize, context: &mut Context) -> Result<(), CloseCause> {
        let stats = &context.stats;
        let mut serve = self.calls.serve(context.now, stats);
        let connection = &mut self.connections[key];
        let flushed = io(connection.flush(), connection.info())?;
        let mut active = add_bytes_out(stats, flushed) > 0;
        let mut reads = 0;
        // Backpressure stops the reads, the socket staying readable: they
        // resume when the output drains.
        while connection.wants_read(serve.max_pending_output) {
            if reads == READS_PER_TURN {
                context.hot.push(Source::Connection(key));
                break;
            }
            reads += 1;
            let read = connection.read(&mut self.read_buffer);
            let Some(read) = io(read, connection.info())? else {
                break;
            };
            active = true;
            WorkerStats::add(&stats.bytes_in, read as u64);
            receive(&mut serve, connection, key, &mut self.read_buffer[..read])?;
        }
        if active {
            self.idle.touch(key, context.now);
        }
        Ok(())
    }

    /// After the reads: tells the service of flow control, publishes the
    /// output held, and ends what is due to end. Returns whether the
    /// connection stays open, and the cause when it must close now.
    fn settle(&mut self, key: usize, context: &mut Context) -> Result<bool, CloseCause> {
        let connection = &mut self.connections[key];
        let refused = connection.was_refused();
        let change = connection.flow_change(self.calls.max_pending_output);
        if change == Some(true) || (refused && !connection.told_full()) {
            // The service heard the output drained, or never heard of this
            // refusal (the output drained before it was weighed): the
            // senders' next refusal tells the worker again.
            self.post.mailboxes[self.worker].drained(connection.info().id);
        }
        if let Some(writable) = change {
            self.call_if_serving(key, context, |service, session, conn| {
                service.writable_changed(session, conn, writable);
            })?;
        }
        let connection = &mut self.connections[key];
        if let Some((from, to)) = connection.publish_pending() {
            self.post.mailboxes[self.worker].publish(connection.info().id, from, to);
        }
        let stays = io(connection.end_if_sent(), connection.info())?;
        if stays && connection.stage() == Some(Stage::Lingering) {
            self.end_session(key, context);
        }
        Ok(stays)
    }

    /// Ends the session of connection `key`, whose end of stream is sent:
    /// it can send nothing more, so the service hears `closed` now, and
    /// senders and broadcasts no longer find it. The socket lingers on
    /// without a session, reading and discarding until the client's end
    /// or the linger timeout.
    fn end_session(&mut self, key: usize, context: &Context) {
        let connection = &mut self.connections[key];
        let Some((session, decided)) = connection.end_session() else {
            return;
        };
        let info = connection.info().clone();
        self.post.mailboxes[self.worker].forget(info.id);
        self.calls.timers.cancel_all(key);
        let deadline = deadline_after(context.now, self.linger_timeout);
        self.calls.timers.set(key, TimerKind::Linger, deadline);
        log::debug!("{}: end of stream sent, lingering", info.peer);
        // Only a close or a stop makes a connection linger: each decides
        // its cause first.
        let cause = decided.unwrap_or(CloseCause::ServiceClosed);
        self.hand_back(session, &info, cause, &context.stats);
    }

    /// Calls the service's `closed` with `session`, catching a panic.
    fn hand_back(
        &self,
        session: S::Session,
        info: &ConnectionInfo,
        cause: CloseCause,
        stats: &WorkerStats,
    ) {
        let service = &*self.calls.service;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
            service.closed(session, info, cause);
        })) {
            note_panic(stats, &info.peer, payload);
        }
    }

    /// Closes connection `key`, gives its slot under the cap back and tells
    /// the service, once. A cause decided earlier (the service's close, a
    /// stop) is the one reported, unless the service panicked since.
    pub(super) fn close(
        &mut self,
        key: usize,
        cause: CloseCause,
        registry: &Registry,
        context: &Context,
    ) {
        #[cfg(feature = "ws")]
        ws::note_closing(&mut self.connections[key], &context.stats);
        let Closed {
            mut stream,
            info,
            session,
            decided,
            slot,
        } = self.connections.remove(key).into_closed();
        self.idle.remove(key);
        self.calls.timers.cancel_all(key);
        self.post.mailboxes[self.worker].forget(info.id);
        // Deregistering is optional (closing the descriptor does it), but
        // keeps the registry exact if a descriptor is ever shared.
        let _ = registry.deregister(&mut stream);
        drop(stream);
        // Before the service hears of it: a client it tells may reconnect.
        drop(slot);
        let cause = match (cause, decided) {
            (CloseCause::Panicked, _) => CloseCause::Panicked,
            (_, Some(decided)) => decided,
            (cause, None) => cause,
        };
        context.stats.note_close(cause);
        log::debug!("{}: closed ({cause:?})", info.peer);
        // A connection whose prelude or handshake never ended never opened,
        // and one that lingered handed its session back already.
        if let Some(session) = session {
            self.hand_back(session, &info, cause, &context.stats);
        }
    }

    /// Closes the connections idle for longer than the idle timeout.
    ///
    /// Runs every turn, so it looks at the list only once the earliest
    /// possible deadline has come: one comparison per turn.
    #[inline]
    pub(super) fn expire_idle(&mut self, registry: &Registry, context: &mut Context) {
        let Some(timeout) = self.idle_timeout else {
            return;
        };
        if self
            .idle_checked_until
            .is_none_or(|until| context.now >= until)
        {
            self.expire_idle_now(timeout, registry, context);
        }
    }

    /// [`expire_idle`](Self::expire_idle) once a connection may be due.
    #[inline(never)]
    fn expire_idle_now(&mut self, timeout: Duration, registry: &Registry, context: &mut Context) {
        while let Some(key) = self.idle.expired(context.now, timeout) {
            log::debug!(
                "{}: idle for {timeout:?}, closing",
                self.connections[key].info().peer
            );
            self.close(key, CloseCause::IdleTimeout, registry, context);
        }
        self.idle_checked_until = self.idle.next_deadline(timeout);
    }

    /// Closes the connections whose handshake deadline passed, and calls
    /// the service for every service timer due, on connections still
    /// serving. A timer set for now by one of these calls is due next turn.
    #[inline]
    pub(super) fn fire_timers(&mut self, registry: &Registry, context: &mut Context) {
        // The usual turn: no timer due, one comparison.
        if self
            .calls
            .timers
            .next_deadline()
            .is_some_and(|next| next <= context.now)
        {
            self.fire_due_timers(registry, context);
        }
    }

    /// [`fire_timers`](Self::fire_timers) once a timer is due.
    #[inline(never)]
    fn fire_due_timers(&mut self, registry: &Registry, context: &mut Context) {
        let mut due = std::mem::take(&mut self.due);
        due.extend(std::iter::from_fn(|| {
            self.calls.timers.expired(context.now)
        }));
        for &(key, kind) in &due {
            let called = match kind {
                // Cancelled when the handshake ends: still handshaking.
                TimerKind::Handshake => {
                    note_handshake_timeout(&self.connections[key], &context.stats);
                    Err(CloseCause::Error(ErrorKind::TimedOut))
                }
                TimerKind::Linger => {
                    WorkerStats::add(&context.stats.linger_timeouts, 1);
                    log::debug!(
                        "{}: no end of stream from the client by the linger timeout, closing",
                        self.connections[key].info().peer
                    );
                    Err(CloseCause::Error(ErrorKind::TimedOut))
                }
                TimerKind::Service(timer) => {
                    self.call_if_serving(key, context, |service, session, conn| {
                        service.timer_fired(session, conn, timer);
                    })
                }
            };
            if let Err(cause) = called {
                self.close(key, cause, registry, context);
            }
        }
        due.clear();
        self.due = due;
    }

    /// Calls the service on connection `key` if it exists and is serving,
    /// and queues the connection to be driven. Returns the cause when the
    /// connection must close now.
    pub(super) fn call_if_serving(
        &mut self,
        key: usize,
        context: &mut Context,
        callback: impl FnOnce(&S, &mut S::Session, &mut ConnectionContext<'_>),
    ) -> Result<(), CloseCause> {
        let Some(connection) = self.connections.get_mut(key) else {
            return Ok(());
        };
        if !connection.is_serving() {
            return Ok(());
        }
        let mut serve = self.calls.serve(context.now, &context.stats);
        serve.call_and_answer(connection, key, callback)?;
        context.hot.push(Source::Connection(key));
        Ok(())
    }

    /// Carries out what senders asked since the last turn: output appended
    /// to its connection (if still open), closes begun. Each connection
    /// named is driven this turn.
    #[inline]
    pub(super) fn take_commands(&mut self, context: &mut Context) {
        // The usual turn: no command, one atomic load.
        if self.post.mailboxes[self.worker].has_commands() {
            self.take_waiting_commands(context);
        }
    }

    /// [`take_commands`](Self::take_commands) when a sender posted some.
    #[inline(never)]
    fn take_waiting_commands(&mut self, context: &mut Context) {
        if !self.post.mailboxes[self.worker].take(&mut self.commands) {
            return;
        }
        for command in self.commands.drain(..) {
            let (key, id) = match &command {
                Command::Send { key, id, .. }
                | Command::Close { key, id }
                | Command::Full { key, id } => (*key, *id),
            };
            if key & super::QUIC_STREAM_KEY != 0 {
                self.quic_commands.push(command);
                continue;
            }
            // A stale id (closed, its key reused) names no connection.
            let Some(connection) = self
                .connections
                .get_mut(key)
                .filter(|connection| connection.info().id == id)
            else {
                continue;
            };
            match command {
                Command::Send { bytes, .. } => {
                    // The share counts these bytes already, as reserved: from
                    // now on they count as held, or are given back by the
                    // next publish if dropped.
                    connection.take_reserved(bytes.len());
                    if connection.takes_sent() {
                        connection.push_output(&bytes, self.calls.output_capacity);
                    }
                }
                Command::Close { .. } => {
                    let close = Requests {
                        close: true,
                        ..Requests::NONE
                    };
                    apply(connection, key, close, &mut self.calls.timers);
                    // This command is the one a callback's close posted
                    // behind the bytes queued before it, or the sender's.
                    connection.end_queued();
                }
                Command::Full { .. } => {
                    if connection.is_serving() {
                        connection.note_refused();
                    } else {
                        // No service to tell: the next refusal may post.
                        self.post.mailboxes[self.worker].drained(id);
                    }
                }
            }
            context.hot.push(Source::Connection(key));
        }
    }

    /// Closes every connection still in its handshake (a PROXY header or a
    /// TLS handshake not finished): nothing was asked yet, so nothing is
    /// owed, and a client trickling its handshake must not hold the stop
    /// up. Returns how many were closed.
    pub(super) fn close_handshaking(&mut self, registry: &Registry, context: &Context) -> usize {
        let keys: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, connection)| connection.is_handshaking())
            .map(|(key, _)| key)
            .collect();
        for &key in &keys {
            self.close(key, CloseCause::Stopped, registry, context);
        }
        keys.len()
    }

    /// Closes every connection, for `cause`.
    pub(super) fn close_all(&mut self, cause: CloseCause, registry: &Registry, context: &Context) {
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(key, cause, registry, context);
        }
    }

    /// When the connection quiet longest has been quiet for `quiet`.
    pub(super) fn next_quiet_deadline(&self, quiet: Duration) -> Option<Instant> {
        self.idle.next_deadline(quiet)
    }

    /// While stopping, ends every connection that has been quiet for
    /// `quiet`: its answer is complete, so it gets the rest of its output
    /// and then an end of stream. Connections still exchanging data are
    /// served on, until they go quiet or the drain deadline.
    pub(super) fn finish_quiet(
        &mut self,
        quiet: Duration,
        registry: &Registry,
        context: &mut Context,
    ) {
        while let Some(key) = self.idle.expired(context.now, quiet) {
            self.idle.remove(key);
            // No connection is in its handshake: the drain closed those
            // when it began, and accepts no new ones.
            let connection = &mut self.connections[key];
            if !connection.is_serving() {
                continue;
            }
            if connection.may_have_input() {
                // Quiet only because backpressure stopped reading: request
                // bytes wait unread, and they are owed an answer. Served on
                // until they are answered or the drain deadline.
                self.idle.touch(key, context.now);
                continue;
            }
            connection.decide_stop();
            if !connection.input_ended() {
                // The end of the answer (a held partial character, say).
                let ended = self.call_if_serving(key, context, |service, session, conn| {
                    service.end(session, conn, EndReason::Stopping);
                });
                if let Err(cause) = ended {
                    self.close(key, cause, registry, context);
                    continue;
                }
            }
            if let Some(connection) = self.connections.get_mut(key) {
                connection.finish();
            }
            self.drive(key, registry, context);
        }
    }
}

/// Hands one read's bytes (empty: the client's end of stream) through the
/// connection's stages: its PROXY prelude, its transport layer, then the
/// service. Returns the cause when the connection must close now.
#[inline]
fn receive<S: StreamService>(
    serve: &mut Serve<'_, S>,
    connection: &mut TcpConnection<S::Session>,
    key: usize,
    mut data: &mut [u8],
) -> Result<(), CloseCause> {
    if connection.in_prelude() {
        let Some(taken) = prelude(serve, connection, key, data)? else {
            return Ok(());
        };
        data = &mut data[taken..];
        // An empty rest would read as the client's end.
        if data.is_empty() {
            return Ok(());
        }
    }
    #[cfg(feature = "tls")]
    if connection.has_handshake() {
        return tls::receive(serve, connection, key, data);
    }
    #[cfg(feature = "ws")]
    if connection.is_websocket() {
        return ws::receive(serve, connection, key, data);
    }
    // In the later stages input is discarded: the answer is over.
    if !connection.is_serving() {
        return Ok(());
    }
    serve.call_and_answer(connection, key, |service, session, conn| {
        if data.is_empty() {
            service.end(session, conn, EndReason::ClientClosed);
        } else {
            service.data(session, data, conn);
        }
    })
}

/// Takes one read's bytes into the connection's PROXY header. Returns how
/// many of them the header took once it is complete (the rest is the
/// client's), `None` while it is not, and the cause when the connection
/// must close: counted in `proxy_headers_rejected` and never answered.
///
/// A complete header's client address becomes the connection's peer, and
/// the connection is charged to that address's share of connections;
/// until then it is charged to no source's share, only to the server's
/// cap. Without a handshake to follow, the service opens.
fn prelude<S: StreamService>(
    serve: &mut Serve<'_, S>,
    connection: &mut TcpConnection<S::Session>,
    key: usize,
    data: &[u8],
) -> Result<Option<usize>, CloseCause> {
    let peer = connection.info().peer;
    let stats = serve.stats;
    let reject = |why: &str| {
        WorkerStats::add(&stats.proxy_headers_rejected, 1);
        log::debug!("{peer}: PROXY header refused, closing: {why}");
    };
    if data.is_empty() {
        reject("the client closed before a whole header");
        return Err(CloseCause::ClientClosed);
    }
    let (taken, client) = match connection.receive_prelude(data) {
        Ok(None) => return Ok(None),
        Ok(Some(complete)) => complete,
        Err(why) => {
            reject(&why);
            return Err(CloseCause::Error(ErrorKind::InvalidData));
        }
    };
    if !connection.charge(client.ip()) {
        // Still in its prelude: it holds no share, so closing it gives
        // none back.
        WorkerStats::add(&stats.connections_refused_per_source, 1);
        log::debug!("{peer}: closed, its client {client} holds its share of connections");
        return Err(CloseCause::Refused);
    }
    connection.end_prelude(client);
    if client == peer {
        log::debug!("{peer}: PROXY header: LOCAL, the peer stands");
    } else {
        log::debug!("{peer}: PROXY header: the client is {client}");
    }
    if !connection.has_handshake() && !connection.awaits_upgrade() {
        serve.open_session(connection, key)?;
    }
    Ok(Some(taken))
}

/// Returns whether the connection is in its TLS handshake.
fn tls_handshaking<Session>(connection: &TcpConnection<Session>) -> bool {
    #[cfg(feature = "tls")]
    return connection.transport_handshaking();
    #[cfg(not(feature = "tls"))]
    {
        let _ = connection;
        false
    }
}

/// Counts and logs a connection cut at its handshake deadline: with no
/// whole PROXY header, in its TLS handshake, or with no WebSocket upgrade.
fn note_handshake_timeout<Session>(connection: &TcpConnection<Session>, stats: &WorkerStats) {
    let peer = connection.info().peer;
    if connection.in_prelude() {
        WorkerStats::add(&stats.proxy_headers_rejected, 1);
        log::debug!("{peer}: no whole PROXY header by its deadline, closing");
    } else if connection.is_websocket() && !tls_handshaking(connection) {
        // A page answered and lingering is cut here too: not a refusal.
        if connection.upgrade_begun() {
            WorkerStats::add(&stats.ws_upgrades_refused, 1);
            log::debug!("{peer}: no whole WebSocket request by the deadline, closing");
        } else if connection.awaits_upgrade() {
            log::debug!("{peer}: no request by the deadline, closing");
        }
    } else {
        WorkerStats::add(&stats.tls_handshakes_failed, 1);
        WorkerStats::add(&stats.tls_handshake_timeouts, 1);
        log::debug!("{peer}: TLS handshake not done by its deadline, closing");
    }
}
