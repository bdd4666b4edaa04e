//! TCP connections: taking in an accepted stream, driving it (write what is
//! pending, read and answer, finish), closing it, the idle timeout, the
//! services' timers and the commands of their senders.
//!
//! Whether a connection may come in at all is [`accept`](super::accept)'s
//! decision; this module gives its slot under the cap back when it closes.
//! Every service callback goes through [`call`], which catches a panic:
//! see docs/EMBEDDING.md for why that is sound.

use super::accept::{Listener, Slot};
use super::drain::deadline_after;
use super::proxy::{self, HeaderBuffer};
use super::tls::{self, TlsInput};
use super::{Context, Limits, MAX_CONNECTION_KEY, Source, note_panic};
use crate::connection::{Connection, Phase, WriteSide};
use crate::idle::IdleList;
use crate::sender::{Command, ConnectionSender, Post};
use crate::service::{
    CloseCause, ConnectionContext, ConnectionId, ConnectionInfo, EndReason, Requests,
    StreamService, TimerRequest, Transport,
};
use crate::stats::WorkerStats;
use crate::timer::{TimerKind, TimerQueue};
use crate::tls::TlsLayer;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry};
use slab::Slab;
use std::any::Any;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads per connection per turn: 16 × 64 KiB = 1 MiB before others get a turn.
const READS_PER_TURN: usize = 16;

/// What the loop lends every callback besides its output buffer.
pub(super) struct Lend<'a> {
    pub(super) sender: &'a ConnectionSender,
    pub(super) max_pending_output: usize,
    pub(super) now: Instant,
}

/// A panic's payload.
pub(super) type Panic = Box<dyn Any + Send>;

/// Runs one service callback with a context on `info`, catching a panic.
///
/// `AssertUnwindSafe` is sound here: during the call the loop lends only
/// `output` (discarded by every caller on a panic) and the session (dropped
/// with its connection, unread), and changes nothing of its own.
pub(super) fn call<R>(
    info: &ConnectionInfo,
    pending: usize,
    output: &mut Vec<u8>,
    lend: &Lend<'_>,
    callback: impl FnOnce(&mut ConnectionContext<'_>) -> R,
) -> Result<(R, Requests), Panic> {
    let mut conn = ConnectionContext {
        info,
        output,
        pending,
        max_pending_output: lend.max_pending_output,
        now: lend.now,
        sender: lend.sender,
        requests: Requests::NONE,
    };
    let result = catch_unwind(AssertUnwindSafe(|| callback(&mut conn)))?;
    Ok((result, conn.requests))
}

/// Maps an I/O error to the cause of the close it brings.
pub(super) fn io<T>(result: io::Result<T>, info: &ConnectionInfo) -> Result<T, CloseCause> {
    result.map_err(|error| {
        log::debug!("{}: {error}", info.peer);
        CloseCause::of(&error)
    })
}

/// Calls the service on `connection` through [`call`], sends what it wrote
/// if the connection still takes output, and applies what it asked. A
/// panic closes the connection.
pub(super) fn call_and_answer<Session>(
    connection: &mut Connection<Session>,
    key: usize,
    scratch: &mut Vec<u8>,
    lend: &Lend<'_>,
    timers: &mut TimerQueue,
    stats: &WorkerStats,
    callback: impl FnOnce(&mut Session, &mut ConnectionContext<'_>),
) -> Result<(), CloseCause> {
    let accepting = connection.write_side == WriteSide::Open;
    let pending = connection.pending_output();
    scratch.clear();
    // No session yet: a TLS handshake is going on, nothing to tell.
    let Some(session) = connection.session.as_mut() else {
        return Ok(());
    };
    let called = call(&connection.info, pending, scratch, lend, |conn| {
        callback(session, conn)
    });
    let requests = match called {
        Ok(((), requests)) => requests,
        Err(payload) => {
            note_panic(stats, &connection.info.peer, payload);
            return Err(CloseCause::Panicked);
        }
    };
    if accepting && !scratch.is_empty() {
        add_bytes_out(stats, io(connection.send(scratch), &connection.info)?);
    }
    if requests != Requests::NONE {
        apply(connection, key, requests, timers);
    }
    Ok(())
}

/// Applies what a callback asked, on a connection that is serving.
pub(super) fn apply<Session>(
    connection: &mut Connection<Session>,
    key: usize,
    requests: Requests,
    timers: &mut TimerQueue,
) {
    if requests.close && connection.phase == Phase::Serving {
        connection.phase = Phase::Finishing;
        connection
            .close_cause
            .get_or_insert(CloseCause::ServiceClosed);
    }
    if requests.shutdown_write && connection.write_side == WriteSide::Open {
        connection.write_side = WriteSide::ShutWhenSent;
    }
    match requests.timer {
        TimerRequest::Keep => {}
        TimerRequest::Set(at) => timers.set(key, TimerKind::Service, at),
        TimerRequest::Cancel => timers.cancel(key, TimerKind::Service),
    }
}

/// What a connection is registered for. Urgent data raises the priority
/// event, after which reads go on to `WouldBlock` (a read stops short at
/// the urgent mark although more is queued).
#[cfg(any(target_os = "linux", target_os = "android"))]
const CONNECTION_INTEREST: Interest = Interest::READABLE
    .add(Interest::WRITABLE)
    .add(Interest::PRIORITY);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const CONNECTION_INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

/// A worker's TCP connections and what serving them needs.
pub(super) struct Streams<S: StreamService> {
    pub(super) connections: Slab<Connection<S::Session>>,
    pub(super) idle: IdleList,
    pub(super) timers: TimerQueue,
    pub(super) service: Arc<S>,
    /// One read buffer for every connection of this worker.
    read_buffer: Box<[u8]>,
    handshake_timeout: Duration,
    /// Where the service writes its answer before it goes to the socket.
    pub(super) scratch: Vec<u8>,
    pub(super) max_pending_output: usize,
    idle_timeout: Option<Duration>,
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
    pub(super) sender: ConnectionSender,
    /// Commands taken from the mailbox, kept for its capacity.
    commands: Vec<Command>,
    /// Keys whose timers are due this turn.
    due: Vec<(usize, TimerKind)>,
}

impl<S: StreamService> Streams<S> {
    pub(super) fn new(worker: usize, service: Arc<S>, limits: &Limits, post: Arc<Post>) -> Self {
        Self {
            connections: Slab::new(),
            idle: IdleList::new(),
            timers: TimerQueue::new(),
            service,
            read_buffer: vec![0; limits.read_buffer_size].into_boxed_slice(),
            handshake_timeout: limits.handshake_timeout,
            scratch: Vec::new(),
            max_pending_output: limits.max_pending_output,
            idle_timeout: limits.idle_timeout,
            idle_checked_until: None,
            worker,
            next_serial: 0,
            sender: ConnectionSender::new(Arc::clone(&post)),
            post,
            commands: Vec::new(),
            due: Vec::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    pub(super) fn contains(&self, key: usize) -> bool {
        self.connections.contains(key)
    }

    /// Records what `event` says of connection `key`. Returns whether the
    /// connection exists (an event may name one closed this turn).
    pub(super) fn note(&mut self, key: usize, event: &Event) -> bool {
        match self.connections.get_mut(key) {
            Some(connection) => {
                // Readiness is a hint: remember it, let the syscalls tell
                // the truth.
                connection.readiness.note(event);
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

    /// When the next service timer is due.
    pub(super) fn next_timer_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Takes an accepted connection into the loop and opens its session;
    /// its slot under the cap is already taken, and given back if the
    /// connection cannot be served.
    pub(super) fn admit(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        slot: Slot,
        Listener {
            index: listener,
            addr: listener_addr,
            kind,
        }: Listener<'_>,
        registry: &Registry,
        context: &mut Context,
    ) {
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
        if let Err(error) = stream.set_nodelay(true) {
            log::debug!("{peer}: TCP_NODELAY not set: {error}");
        }
        // Urgent data stays in the stream, answered like any byte.
        if let Err(error) = shout_socket::keep_urgent_data_inline(&stream) {
            log::debug!("{peer}: SO_OOBINLINE not set: {error}");
        }
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        if key > MAX_CONNECTION_KEY {
            log::warn!("{peer}: no token left for another connection, closing it");
            return;
        }
        let token = Source::Connection(key).token();
        if let Err(error) = registry.register(&mut stream, token, CONNECTION_INTEREST) {
            log::warn!("{peer}: cannot watch the connection, closing it: {error}");
            return;
        }
        // A specific listener address is the connection's too: no system
        // call for it.
        let local = if listener_addr.ip().is_unspecified() {
            stream.local_addr().unwrap_or(listener_addr)
        } else {
            listener_addr
        };
        let id = ConnectionId::new(self.worker, self.next_serial);
        self.next_serial += 1;
        let info = ConnectionInfo {
            id,
            peer,
            local,
            listener,
            listener_addr,
            transport: Transport::Plain,
        };
        let mailbox = &self.post.mailboxes[self.worker];
        let share = mailbox.open(id, key);
        // The most one connection can have pending: the cap, reached by
        // less than one byte, plus the answer to one read.
        let output_capacity = self.max_pending_output + self.read_buffer.len() * 3;
        // What a connection leaves the loop with when it cannot be served:
        // no session, so no `closed` either; its slot goes back as it drops.
        let abandon = |stream: &mut TcpStream| {
            mailbox.forget(id);
            let _ = registry.deregister(stream);
        };
        let tls = match kind
            .tls
            .as_ref()
            .map(|config| TlsLayer::new(Arc::clone(config)))
            .transpose()
        {
            Ok(tls) => tls.map(Box::new),
            Err(error) => {
                log::warn!("{peer}: cannot start TLS, closing: {error}");
                abandon(&mut stream);
                return;
            }
        };
        let awaits_header = kind.proxy.is_some();
        if tls.is_some() || awaits_header {
            // The service opens once the header names the client and the
            // handshake is over, both by one deadline.
            let waits_for = match (awaits_header, tls.is_some()) {
                (true, true) => "its PROXY header, then the TLS handshake",
                (true, false) => "its PROXY header",
                _ => "the TLS handshake",
            };
            let connection = entry.insert(Connection::new(
                stream,
                info,
                None,
                tls,
                share,
                slot,
                output_capacity,
            ));
            if awaits_header {
                connection.proxy = Some(Box::<HeaderBuffer>::default());
            }
            let deadline = deadline_after(context.now, self.handshake_timeout);
            self.timers.set(key, TimerKind::Handshake, deadline);
            self.idle.touch(key, context.now);
            WorkerStats::add(&context.stats.connections_accepted, 1);
            log::debug!("{peer}: connected, awaiting {waits_for}");
            return;
        }
        self.scratch.clear();
        let lend = Lend {
            sender: &self.sender,
            max_pending_output: self.max_pending_output,
            now: context.now,
        };
        let service = &*self.service;
        let (session, requests) = match call(&info, 0, &mut self.scratch, &lend, |conn| {
            service.open(conn)
        }) {
            Ok(opened) => opened,
            Err(payload) => {
                note_panic(&context.stats, &peer, payload);
                abandon(&mut stream);
                return;
            }
        };
        let connection = entry.insert(Connection::new(
            stream,
            info,
            Some(session),
            None,
            share,
            slot,
            output_capacity,
        ));
        // The greeting goes out when the socket first says it is writable.
        connection.push_output(&self.scratch);
        if !self.scratch.is_empty() || requests != Requests::NONE {
            apply(connection, key, requests, &mut self.timers);
            context.hot.push(Source::Connection(key));
        }
        self.idle.touch(key, context.now);
        WorkerStats::add(&context.stats.connections_accepted, 1);
        log::debug!("{peer}: connected");
    }

    /// Does all a connection can do now: write, read and answer, finish.
    pub(super) fn drive(&mut self, key: usize, registry: &Registry, context: &mut Context) {
        match self.step(key, context) {
            Ok(true) => {}
            Ok(false) => self.close(key, CloseCause::ClientClosed, registry, context),
            Err(cause) => {
                tls::note_broken_handshake(&self.connections[key], cause, &context.stats);
                self.close(key, cause, registry, context);
            }
        }
    }

    /// Returns `Ok(false)` when the connection is done and should close,
    /// and the cause when it must close now.
    fn step(&mut self, key: usize, context: &mut Context) -> Result<bool, CloseCause> {
        let stats = &context.stats;
        let lend = Lend {
            sender: &self.sender,
            max_pending_output: self.max_pending_output,
            now: context.now,
        };
        let service = &*self.service;
        let connection = &mut self.connections[key];
        let mut active = add_bytes_out(stats, io(connection.flush(), &connection.info)?) > 0;

        let mut reads = 0;
        while connection.readiness.is_readable() && !connection.input_ended {
            if connection.pending_output() >= self.max_pending_output {
                // Backpressure: stay readable, resume when output drains.
                break;
            }
            if reads == READS_PER_TURN {
                context.hot.push(Source::Connection(key));
                break;
            }
            reads += 1;
            let read = connection
                .readiness
                .read(&mut connection.stream, &mut self.read_buffer);
            let Some(read) = io(read, &connection.info)? else {
                break;
            };
            active = true;
            if read == 0 {
                connection.input_ended = true;
            } else {
                WorkerStats::add(&stats.bytes_in, read as u64);
            }
            let mut data = &self.read_buffer[..read];
            if connection.proxy.is_some() {
                let Some(taken) = proxy::receive(connection, data, stats)? else {
                    continue;
                };
                data = &data[taken..];
                if connection.tls.is_none() {
                    self.timers.cancel(key, TimerKind::Handshake);
                    open_session(
                        connection,
                        key,
                        &mut self.scratch,
                        &mut self.timers,
                        &lend,
                        stats,
                        service,
                    )?;
                }
                // An empty rest would read as the client's end.
                if data.is_empty() {
                    continue;
                }
            }
            if connection.tls.is_some() {
                let taken = &mut TlsInput {
                    ciphertext: data,
                    scratch: &mut self.scratch,
                    timers: &mut self.timers,
                };
                tls::receive(connection, key, taken, &lend, stats, service)?;
                continue;
            }
            // In the later phases input is discarded: the answer is over.
            if connection.phase != Phase::Serving {
                continue;
            }
            let request = data;
            call_and_answer(
                connection,
                key,
                &mut self.scratch,
                &lend,
                &mut self.timers,
                stats,
                |session, conn| {
                    if read == 0 {
                        service.end(session, conn, EndReason::ClientClosed);
                    } else {
                        service.data(session, request, conn);
                    }
                },
            )?;
        }

        if active {
            self.idle.touch(key, context.now);
        }
        // Flow control the service can see, with hysteresis: blocked at the
        // cap, unblocked at half of it.
        let pending = connection.pending_output();
        let writable = if !connection.blocked && pending >= self.max_pending_output {
            Some(false)
        } else if connection.blocked && pending <= self.max_pending_output / 2 {
            Some(true)
        } else {
            None
        };
        if let Some(writable) = writable {
            connection.blocked = !writable;
            self.call_if_serving(key, context, |service, session, conn| {
                service.writable_changed(session, conn, writable);
            })?;
        }
        let connection = &mut self.connections[key];
        connection.publish_pending();
        if connection.has_unsent() {
            return Ok(true);
        }
        // Everything answered has been sent. Over TLS, the stream ends
        // with a close_notify before the FIN.
        let ending = connection.phase == Phase::Finishing
            || connection.write_side == WriteSide::ShutWhenSent
            || connection.input_ended;
        if ending && connection.session.is_some() && io(connection.end_tls(), &connection.info)? {
            return Ok(true);
        }
        match connection.phase {
            Phase::Serving => {
                if connection.write_side == WriteSide::ShutWhenSent {
                    io(
                        connection.stream.shutdown(Shutdown::Write),
                        &connection.info,
                    )?;
                    connection.write_side = WriteSide::Shut;
                }
            }
            Phase::Finishing => {
                if connection.write_side != WriteSide::Shut {
                    io(
                        connection.stream.shutdown(Shutdown::Write),
                        &connection.info,
                    )?;
                    connection.write_side = WriteSide::Shut;
                }
                connection.phase = Phase::Lingering;
            }
            Phase::Lingering => {}
        }
        Ok(!connection.input_ended)
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
        let Connection {
            mut stream,
            info,
            session,
            close_cause,
            slot,
            ..
        } = self.connections.remove(key);
        self.idle.remove(key);
        self.timers.cancel_all(key);
        self.post.mailboxes[self.worker].forget(info.id);
        // Deregistering is optional (closing the descriptor does it), but
        // keeps the registry exact if a descriptor is ever shared.
        let _ = registry.deregister(&mut stream);
        drop(stream);
        // Before the service hears of it: a client it tells may reconnect.
        drop(slot);
        let cause = match (cause, close_cause) {
            (CloseCause::Panicked, _) => CloseCause::Panicked,
            (_, Some(decided)) => decided,
            (cause, None) => cause,
        };
        context.stats.note_close(cause);
        log::debug!("{}: closed ({cause:?})", info.peer);
        // A TLS connection whose handshake never ended never opened.
        let Some(session) = session else {
            return;
        };
        let service = &*self.service;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
            service.closed(session, &info, cause);
        })) {
            note_panic(&context.stats, &info.peer, payload);
        }
    }

    /// Closes the connections idle for longer than the idle timeout.
    ///
    /// Runs every turn, so it looks at the list only once the earliest
    /// possible deadline has come: one comparison per turn.
    pub(super) fn expire_idle(&mut self, registry: &Registry, context: &mut Context) {
        let Some(timeout) = self.idle_timeout else {
            return;
        };
        if self
            .idle_checked_until
            .is_some_and(|until| context.now < until)
        {
            return;
        }
        while let Some(key) = self.idle.expired(context.now, timeout) {
            log::debug!(
                "{}: idle for {timeout:?}, closing",
                self.connections[key].info.peer
            );
            self.close(key, CloseCause::IdleTimeout, registry, context);
        }
        self.idle_checked_until = self.idle.next_deadline(timeout);
    }

    /// Calls the service for every timer due, on connections still serving.
    /// A timer set for now by one of these calls is due next turn.
    pub(super) fn fire_timers(&mut self, registry: &Registry, context: &mut Context) {
        // The usual turn: no timer due, one comparison.
        if self
            .timers
            .next_deadline()
            .is_none_or(|next| next > context.now)
        {
            return;
        }
        let mut due = std::mem::take(&mut self.due);
        due.extend(std::iter::from_fn(|| self.timers.expired(context.now)));
        for &(key, kind) in &due {
            if kind == TimerKind::Handshake {
                // Cancelled when the handshake ends: still handshaking.
                let connection = &self.connections[key];
                if connection.proxy.is_some() {
                    proxy::note_header_timeout(connection, &context.stats);
                } else {
                    tls::note_handshake_timeout(connection, &context.stats);
                }
                self.close(
                    key,
                    CloseCause::Error(io::ErrorKind::TimedOut),
                    registry,
                    context,
                );
                continue;
            }
            let called = self.call_if_serving(key, context, |service, session, conn| {
                service.timer(session, conn);
            });
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
        if connection.phase != Phase::Serving {
            return Ok(());
        }
        let lend = Lend {
            sender: &self.sender,
            max_pending_output: self.max_pending_output,
            now: context.now,
        };
        let service = &*self.service;
        call_and_answer(
            connection,
            key,
            &mut self.scratch,
            &lend,
            &mut self.timers,
            &context.stats,
            |session, conn| callback(service, session, conn),
        )?;
        context.hot.push(Source::Connection(key));
        Ok(())
    }

    /// Carries out what senders asked since the last turn: output appended
    /// to its connection (if still open), closes begun. Each connection
    /// named is driven this turn.
    pub(super) fn take_commands(&mut self, context: &mut Context) {
        if !self.post.mailboxes[self.worker].take(&mut self.commands) {
            return;
        }
        for command in self.commands.drain(..) {
            let (key, id) = match &command {
                Command::Send { key, id, .. } | Command::Close { key, id } => (*key, *id),
            };
            // A stale id (closed, its key reused) names no connection.
            let Some(connection) = self
                .connections
                .get_mut(key)
                .filter(|connection| connection.info.id == id)
            else {
                continue;
            };
            match command {
                Command::Send { bytes, .. } => {
                    // The share counts these bytes already, as reserved: from
                    // now on they count as held, or are given back by the
                    // next publish if dropped.
                    connection.published += bytes.len();
                    if connection.phase == Phase::Serving
                        && connection.write_side == WriteSide::Open
                    {
                        connection.push_output(&bytes);
                    }
                }
                Command::Close { .. } => apply(
                    connection,
                    key,
                    Requests {
                        close: true,
                        ..Requests::NONE
                    },
                    &mut self.timers,
                ),
            }
            context.hot.push(Source::Connection(key));
        }
    }
}

/// Opens the service's session on `connection`, whose transport is
/// settled (a TLS handshake done, a PROXY header read), and sends its
/// greeting. A panic in `open` closes the connection, which never opened.
pub(super) fn open_session<S: StreamService>(
    connection: &mut Connection<S::Session>,
    key: usize,
    scratch: &mut Vec<u8>,
    timers: &mut TimerQueue,
    lend: &Lend<'_>,
    stats: &WorkerStats,
    service: &S,
) -> Result<(), CloseCause> {
    scratch.clear();
    let (session, requests) = call(&connection.info, 0, scratch, lend, |conn| {
        service.open(conn)
    })
    .map_err(|payload| {
        note_panic(stats, &connection.info.peer, payload);
        CloseCause::Panicked
    })?;
    connection.session = Some(session);
    if !scratch.is_empty() {
        add_bytes_out(stats, io(connection.send(scratch), &connection.info)?);
    }
    if requests != Requests::NONE {
        apply(connection, key, requests, timers);
    }
    Ok(())
}

/// Counts `written` bytes out, and returns them.
pub(super) fn add_bytes_out(stats: &WorkerStats, written: usize) -> usize {
    WorkerStats::add(&stats.bytes_out, written as u64);
    written
}
