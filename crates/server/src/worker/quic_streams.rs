//! QUIC streams as the stream service sees them: each bidirectional
//! stream a client opens is one session, fed what the stream carries,
//! its FIN the client's end of input (as a TCP half-close), its output
//! written to the stream under the same `max_pending_output` as TCP's.
//!
//! This module keeps the streams and makes their service calls (through
//! [`calls::call`](super::calls), which catches a panic); the connections
//! they run on, their packets and timers are [`quic`](super::quic)'s.
//!
//! A stream ends as a TCP connection does: after the client's FIN its
//! answer is sent and the stream finished (`ClientClosed`); after the
//! service's close, the same, with the client's side stopped
//! (`STOP_SENDING`, code 0) if it was still sending (`ServiceClosed`).
//! A client's RESET_STREAM or STOP_SENDING, a panic, or a lost connection
//! ends it at once (`Reset`, `Panicked`, the connection's cause).

use super::Context;
use super::QUIC_STREAM_KEY;
use super::calls::{Serve, call};
use super::note_panic;
use super::quic::QuicConnection;
use crate::handle::Handle;
use crate::quic::{QuicLimits, STREAM_DONE};
use crate::sender::{Command, ConnectionSender, Mailbox};
use crate::service::{
    CloseCause, ConnectionContext, ConnectionId, ConnectionInfo, EndReason, LocalEnd,
    StreamService, TimerRequest, Transport,
};
use crate::stats::WorkerStats;
use crate::timer::{Timer, TimerKind, TimerQueue};
use quinn_proto::{ReadError, StreamId, VarInt, WriteError};
use slab::Slab;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most bytes one read hands to the service.
const READ_CHUNK: usize = 64 * 1024;

/// QUIC streams' ids have this bit set among a worker's serials, so they
/// never meet a TCP connection's (which would need 2^47 connections).
const QUIC_SERIALS: u64 = 1 << 47;

/// Whether a stream goes on after a step.
pub(super) enum StreamEnd {
    Open,
    Closed,
}

/// One stream: its session and what it owes.
struct QuicStream<Session> {
    /// The key of its connection.
    connection: usize,
    id: StreamId,
    info: ConnectionInfo,
    session: Session,
    /// The service's output the stream did not take yet.
    pending: Vec<u8>,
    /// The client's FIN was read and `end` called.
    input_ended: bool,
    /// Why the stream closes once its output is sent, once decided.
    ending: Option<CloseCause>,
    /// Its service closed it while senders' bytes queued before the close
    /// were on their way: it takes them, and is not finished, until the
    /// close command posted behind them comes.
    awaits_queued: bool,
    /// The service asked for `shutdown_write`.
    shut_write: bool,
    /// The FIN is queued: nothing more is written.
    finished: bool,
    /// Reading stopped because the output is full.
    read_paused: bool,
    /// The service was told the output is full, and not yet that it
    /// drained.
    told_full: bool,
    /// The output the senders' share of this stream counts as held.
    published: usize,
    last_active: Instant,
}

/// What [`QuicStreams::split`] lends: the service calls' context, the
/// streams, the spare buffer.
type Split<'a, S> = (
    Serve<'a, S>,
    &'a mut Slab<QuicStream<<S as StreamService>::Session>>,
    &'a mut Vec<u8>,
);

/// The QUIC streams of a worker and what serving them needs.
pub(super) struct QuicStreams<S: StreamService> {
    streams: Slab<QuicStream<S::Session>>,
    service: Arc<S>,
    handle: Handle,
    /// Where the service writes its answer.
    scratch: Vec<u8>,
    /// A pending buffer given up by a stream that sent all it held, for
    /// the next stream with output: a busy stream does not allocate per
    /// answer, and an idle one holds no buffer.
    spare: Vec<u8>,
    /// The services' timers, by stream key.
    timers: TimerQueue,
    max_pending_output: usize,
    worker: usize,
    next_serial: u64,
}

impl<S: StreamService> QuicStreams<S> {
    pub(super) fn new(service: Arc<S>, handle: Handle, limits: &QuicLimits, worker: usize) -> Self {
        Self {
            streams: Slab::new(),
            service,
            handle,
            scratch: Vec::new(),
            spare: Vec::new(),
            timers: TimerQueue::new(),
            max_pending_output: limits.max_pending_output,
            worker,
            next_serial: 0,
        }
    }

    /// Returns what one event lends the service calls, beside the streams
    /// and the spare buffer, borrowed apart.
    fn split<'a>(&'a mut self, now: Instant, stats: &'a WorkerStats) -> Split<'a, S> {
        let serve = Serve {
            service: &*self.service,
            handle: &self.handle,
            max_pending_output: self.max_pending_output,
            output_capacity: self.max_pending_output + READ_CHUNK * 3,
            now,
            stats,
            scratch: &mut self.scratch,
            timers: &mut self.timers,
        };
        (serve, &mut self.streams, &mut self.spare)
    }

    /// Opens the service's session on stream `id` of connection `key`,
    /// sends its greeting, and reads what the stream already holds.
    pub(super) fn open(
        &mut self,
        key: usize,
        connection: &mut QuicConnection,
        id: StreamId,
        end: &LocalEnd,
        context: &mut Context,
    ) {
        let transport = Transport::Quic {
            stream: VarInt::from(id).into_inner(),
            sni: connection.sni.clone(),
        };
        let end = Arc::new(LocalEnd {
            transport,
            ..end.clone()
        });
        let serial = QUIC_SERIALS | self.next_serial;
        self.next_serial += 1;
        let info = ConnectionInfo {
            id: ConnectionId::new(self.worker, serial),
            peer: connection.peer,
            end,
        };
        let service = Arc::clone(&self.service);
        let (mut serve, _, _) = self.split(context.now, &context.stats);
        let opened = call(&mut serve, &info, 0, |conn| service.open(conn));
        let (session, requests) = match opened {
            Ok(opened) => opened,
            Err(payload) => {
                note_panic(&context.stats, &info.peer, payload);
                let _ = connection.conn.recv_stream(id).stop(STREAM_DONE);
                let _ = connection.conn.send_stream(id).reset(STREAM_DONE);
                return;
            }
        };
        let mut stream = QuicStream {
            connection: key,
            id,
            info,
            session,
            pending: Vec::new(),
            input_ended: false,
            ending: None,
            awaits_queued: false,
            shut_write: false,
            finished: false,
            read_paused: false,
            told_full: false,
            published: 0,
            last_active: context.now,
        };
        stream.pending.extend_from_slice(&self.scratch);
        let skey = self.streams.insert(stream);
        connection.streams.insert(id, skey);
        connection.served = true;
        log::debug!(
            "quic {}: {id} opened as connection {}",
            connection.peer,
            self.streams[skey].info.id
        );
        let id = self.streams[skey].info.id;
        // Listed before its requests apply: a close or a half-close in
        // `open` refuses senders from the start.
        self.mailbox().open(id, QUIC_STREAM_KEY | skey);
        let sender = &self.handle.sender;
        apply(
            &mut self.streams[skey],
            skey,
            requests,
            &mut self.timers,
            sender,
        );
        WorkerStats::add(&context.stats.quic_streams, 1);
        self.pump(connection, skey, context);
    }

    /// Reads, answers and writes stream `id`: it has bytes or its end
    /// waiting, or takes output again.
    pub(super) fn ready(
        &mut self,
        connection: &mut QuicConnection,
        id: StreamId,
        context: &mut Context,
    ) {
        if let Some(&skey) = connection.streams.get(&id) {
            self.pump(connection, skey, context);
        }
    }

    /// Closes stream `id`, whose client will read no more (STOP_SENDING).
    pub(super) fn stopped(
        &mut self,
        connection: &mut QuicConnection,
        id: StreamId,
        context: &mut Context,
    ) {
        if let Some(&skey) = connection.streams.get(&id) {
            self.abort(connection, skey, CloseCause::Reset, context);
        }
    }

    /// Reads, answers and writes stream `skey` as far as it goes now:
    /// reading stops at the output limit, and goes on once the stream
    /// took the output down to half of it.
    fn pump(&mut self, connection: &mut QuicConnection, skey: usize, context: &mut Context) {
        // Bounded: each round reads at most a receive window's worth.
        for _ in 0..4 {
            if let Err(cause) = self.read(connection, skey, context) {
                self.abort(connection, skey, cause, context);
                return;
            }
            if let StreamEnd::Closed = self.settle(connection, skey, context) {
                return;
            }
            let stream = &mut self.streams[skey];
            if stream.pending.len() >= self.max_pending_output / 2 {
                return;
            }
            let (paused, told) = (stream.read_paused, stream.told_full);
            stream.read_paused = false;
            stream.told_full = false;
            if told {
                let id = stream.info.id;
                self.mailbox().drained(id);
                let called = self.call_service(skey, context, |service, session, conn| {
                    service.writable_changed(session, conn, true);
                });
                if let Err(cause) = called {
                    self.abort(connection, skey, cause, context);
                    return;
                }
            }
            if !paused {
                return;
            }
        }
    }

    /// Returns this worker's mailbox, where senders post to its streams.
    fn mailbox(&self) -> &Mailbox {
        &self.handle.sender.post.mailboxes[self.worker]
    }

    /// Carries out what senders asked of this worker's streams: bytes
    /// appended to a stream's output, its close, its output full told to
    /// the service. Every command is applied before any service call, so
    /// that a callback's close sees the bytes queued before it as taken.
    /// Returns the keys of the connections whose streams were named, to be
    /// driven; a stream gone is skipped.
    pub(super) fn take_commands(
        &mut self,
        commands: &mut Vec<Command>,
        connections: &mut Slab<QuicConnection>,
        context: &mut Context,
    ) -> Vec<usize> {
        // Each stream named: its key, its id, whether a refusal came.
        let mut named: Vec<(usize, ConnectionId, bool)> = Vec::new();
        for command in commands.drain(..) {
            let (key, id) = match &command {
                Command::Send { key, id, .. }
                | Command::Close { key, id }
                | Command::Full { key, id } => (*key & !QUIC_STREAM_KEY, *id),
            };
            let Some(stream) = (self.streams.get_mut(key)).filter(|stream| stream.info.id == id)
            else {
                continue;
            };
            let mut full = false;
            match command {
                Command::Send { bytes, .. } => {
                    // Reserved in the share already: held from now on.
                    stream.published += bytes.len();
                    let takes = stream.ending.is_none() || stream.awaits_queued;
                    if !stream.shut_write && takes {
                        if stream.pending.capacity() == 0 {
                            stream.pending = std::mem::take(&mut self.spare);
                        }
                        stream.pending.extend_from_slice(&bytes);
                    }
                }
                Command::Close { .. } => {
                    stream.ending.get_or_insert(CloseCause::ServiceClosed);
                    // The close a callback's close posted behind the bytes
                    // queued before it, or a sender's: nothing more comes.
                    stream.awaits_queued = false;
                }
                Command::Full { .. } => full = true,
            }
            named.push((key, id, full));
        }
        named.sort_unstable_by_key(|&(key, _, full)| (key, !full));
        named.dedup_by_key(|&mut (key, id, _)| (key, id));
        let mut touched = Vec::with_capacity(named.len());
        for (skey, id, full) in named {
            // An earlier stream's calls cannot close this one, but stay safe.
            let Some(stream) = (self.streams.get_mut(skey)).filter(|stream| stream.info.id == id)
            else {
                continue;
            };
            let key = stream.connection;
            touched.push(key);
            if full {
                if stream.told_full || stream.pending.len() <= self.max_pending_output / 2 {
                    // Drained since: the next refusal may tell again.
                    self.mailbox().drained(id);
                } else {
                    stream.told_full = true;
                    let told = self.call_service(skey, context, |service, session, conn| {
                        service.writable_changed(session, conn, false);
                    });
                    if let Err(cause) = told {
                        self.abort(&mut connections[key], skey, cause, context);
                        continue;
                    }
                }
            }
            self.pump(&mut connections[key], skey, context);
        }
        touched
    }

    /// Hands what stream `skey` received to its service, until nothing
    /// more is readable, its output is full or its input ended. Returns
    /// the cause when the stream must close at once.
    fn read(
        &mut self,
        connection: &mut QuicConnection,
        skey: usize,
        context: &mut Context,
    ) -> Result<(), CloseCause> {
        let max_pending_output = self.max_pending_output;
        let (mut serve, streams, spare) = self.split(context.now, &context.stats);
        let stream = &mut streams[skey];
        if stream.input_ended || stream.ending.is_some() || stream.read_paused {
            return Ok(());
        }
        let mut recv = connection.conn.recv_stream(stream.id);
        let Ok(mut chunks) = recv.read(true) else {
            return Ok(());
        };
        let mut outcome = Ok(());
        loop {
            if stream.pending.len() >= max_pending_output {
                stream.read_paused = true;
                break;
            }
            match chunks.next(READ_CHUNK) {
                Ok(Some(chunk)) => {
                    WorkerStats::add(&context.stats.quic_bytes_in, chunk.bytes.len() as u64);
                    stream.last_active = context.now;
                    outcome =
                        call_stream(&mut serve, skey, stream, spare, |service, session, conn| {
                            service.data(session, &chunk.bytes, conn);
                        });
                    if outcome.is_err() || stream.ending.is_some() {
                        break;
                    }
                }
                Ok(None) => {
                    stream.input_ended = true;
                    outcome =
                        call_stream(&mut serve, skey, stream, spare, |service, session, conn| {
                            service.end(session, conn, EndReason::ClientClosed);
                        });
                    stream.ending.get_or_insert(CloseCause::ClientClosed);
                    break;
                }
                Err(ReadError::Blocked) => break,
                Err(ReadError::Reset(_)) => {
                    outcome = Err(CloseCause::Reset);
                    break;
                }
            }
        }
        // Whether the client's window must be raised now: the connection's
        // next transmit does it either way.
        let _ = chunks.finalize();
        if stream.read_paused && !stream.told_full && outcome.is_ok() {
            stream.told_full = true;
            outcome = call_stream(&mut serve, skey, stream, spare, |service, session, conn| {
                service.writable_changed(session, conn, false);
            });
        }
        outcome
    }

    /// Calls the service on stream `skey` through [`call_stream`].
    fn call_service(
        &mut self,
        skey: usize,
        context: &Context,
        callback: impl FnOnce(&S, &mut S::Session, &mut ConnectionContext<'_>),
    ) -> Result<(), CloseCause> {
        let (mut serve, streams, spare) = self.split(context.now, &context.stats);
        call_stream(&mut serve, skey, &mut streams[skey], spare, callback)
    }

    /// Writes stream `skey`'s pending output, finishes it once its answer
    /// is complete, and closes it once finished. Returns whether it is
    /// still open.
    fn settle(
        &mut self,
        connection: &mut QuicConnection,
        skey: usize,
        context: &mut Context,
    ) -> StreamEnd {
        let stream = &mut self.streams[skey];
        let mut send = connection.conn.send_stream(stream.id);
        let mut stopped = false;
        while !stream.pending.is_empty() && !stream.finished {
            match send.write(&stream.pending) {
                Ok(written) => {
                    stream.pending.drain(..written);
                    WorkerStats::add(&context.stats.quic_bytes_out, written as u64);
                }
                Err(WriteError::Blocked) => break,
                Err(WriteError::Stopped(_) | WriteError::ClosedStream) => {
                    stopped = true;
                    break;
                }
            }
        }
        if stream.pending.is_empty() && !stopped {
            // An idle stream holds no buffer: its own goes back as the spare.
            if self.spare.capacity() < stream.pending.capacity() {
                self.spare = std::mem::take(&mut stream.pending);
            } else {
                stream.pending = Vec::new();
            }
            let ended = stream.ending.is_some() && !stream.awaits_queued;
            if !stream.finished && (ended || stream.shut_write) {
                let _ = send.finish();
                stream.finished = true;
            }
        }
        // The senders' share of the stream follows the output it holds.
        if stream.pending.len() != stream.published {
            let mailbox = &self.handle.sender.post.mailboxes[self.worker];
            mailbox.publish(stream.info.id, stream.published, stream.pending.len());
            stream.published = stream.pending.len();
        }
        if stopped {
            self.abort(connection, skey, CloseCause::Reset, context);
            return StreamEnd::Closed;
        }
        match stream.ending {
            Some(cause) if stream.finished => {
                if !stream.input_ended {
                    let _ = connection.conn.recv_stream(stream.id).stop(STREAM_DONE);
                }
                self.remove(connection, skey, cause, context);
                StreamEnd::Closed
            }
            _ => StreamEnd::Open,
        }
    }

    /// Closes stream `skey` at once: its sending side reset, its
    /// receiving side stopped, if still open.
    fn abort(
        &mut self,
        connection: &mut QuicConnection,
        skey: usize,
        cause: CloseCause,
        context: &mut Context,
    ) {
        let stream = &self.streams[skey];
        if !stream.finished {
            let _ = connection.conn.send_stream(stream.id).reset(STREAM_DONE);
        }
        if !stream.input_ended {
            let _ = connection.conn.recv_stream(stream.id).stop(STREAM_DONE);
        }
        self.remove(connection, skey, cause, context);
    }

    /// Forgets stream `skey` and tells its service, once.
    fn remove(
        &mut self,
        connection: &mut QuicConnection,
        skey: usize,
        cause: CloseCause,
        context: &mut Context,
    ) {
        let stream = self.streams.remove(skey);
        connection.streams.remove(&stream.id);
        self.mailbox().forget(stream.info.id);
        self.timers.cancel_all(skey);
        log::debug!(
            "quic {}: {} closed ({cause:?})",
            stream.info.peer,
            stream.id
        );
        let service = &*self.service;
        let (session, info) = (stream.session, stream.info);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
            service.closed(session, &info, cause);
        })) {
            note_panic(&context.stats, &info.peer, payload);
        }
    }

    /// Closes every stream of `connection`, for `cause`.
    pub(super) fn close_all(
        &mut self,
        connection: &mut QuicConnection,
        cause: CloseCause,
        context: &mut Context,
    ) {
        let keys: Vec<usize> = connection.streams.values().copied().collect();
        for skey in keys {
            self.abort(connection, skey, cause, context);
        }
    }

    /// When the next service timer is due.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Calls the service for every timer due. Returns the keys of the
    /// connections whose streams it called, to be driven.
    pub(super) fn fire_timers(
        &mut self,
        connections: &mut Slab<QuicConnection>,
        context: &mut Context,
    ) -> Vec<usize> {
        let mut touched = Vec::new();
        while let Some((skey, kind)) = self.timers.expired(context.now) {
            let (Some(stream), TimerKind::Service(timer)) = (self.streams.get(skey), kind) else {
                continue;
            };
            let key = stream.connection;
            let connection = &mut connections[key];
            let called = self.call_service(skey, context, |service, session, conn| {
                service.timer_fired(session, conn, timer);
            });
            match called {
                Ok(()) => self.pump(connection, skey, context),
                Err(cause) => self.abort(connection, skey, cause, context),
            }
            touched.push(key);
        }
        touched
    }

    /// While stopping, ends each stream quiet for `quiet`: its service's
    /// last word (`end(Stopping)`), then its FIN. A stream that stopped
    /// reading for its full output is owed an answer, and goes on. Returns
    /// the keys of the connections touched.
    pub(super) fn end_quiet(
        &mut self,
        quiet: Duration,
        connections: &mut Slab<QuicConnection>,
        context: &mut Context,
    ) -> Vec<usize> {
        let quiet_ones: Vec<usize> = (self.streams.iter())
            .filter(|(_, stream)| {
                stream.ending.is_none()
                    && !stream.read_paused
                    && stream.last_active + quiet <= context.now
            })
            .map(|(skey, _)| skey)
            .collect();
        let mut touched = Vec::with_capacity(quiet_ones.len());
        for skey in quiet_ones {
            let key = self.streams[skey].connection;
            let connection = &mut connections[key];
            let ended = if self.streams[skey].input_ended {
                Ok(())
            } else {
                self.call_service(skey, context, |service, session, conn| {
                    service.end(session, conn, EndReason::Stopping);
                })
            };
            if let Some(stream) = self.streams.get_mut(skey) {
                stream.ending.get_or_insert(CloseCause::Stopped);
            }
            match ended {
                Ok(()) => {
                    self.settle(connection, skey, context);
                }
                Err(cause) => self.abort(connection, skey, cause, context),
            }
            touched.push(key);
        }
        touched
    }

    /// When the stream quiet longest will have been quiet for `quiet`.
    pub(super) fn next_quiet_deadline(&self, quiet: Duration) -> Option<Instant> {
        (self.streams.iter())
            .filter(|(_, stream)| stream.ending.is_none())
            .map(|(_, stream)| stream.last_active + quiet)
            .min()
    }
}

/// Calls the service on `stream` (key `skey`) through [`call`]: keeps its
/// output if the stream still takes output, and applies its requests.
/// Returns `Panicked` if the callback panicked.
fn call_stream<S: StreamService>(
    serve: &mut Serve<'_, S>,
    skey: usize,
    stream: &mut QuicStream<S::Session>,
    spare: &mut Vec<u8>,
    callback: impl FnOnce(&S, &mut S::Session, &mut ConnectionContext<'_>),
) -> Result<(), CloseCause> {
    let accepting = !stream.shut_write && stream.ending.is_none();
    let service = serve.service;
    let session = &mut stream.session;
    let called = call(serve, &stream.info, stream.pending.len(), |conn| {
        callback(service, session, conn);
    });
    let ((), requests) = called.map_err(|payload| {
        note_panic(serve.stats, &stream.info.peer, payload);
        CloseCause::Panicked
    })?;
    if accepting && !serve.scratch.is_empty() {
        if stream.pending.capacity() == 0 {
            stream.pending = std::mem::take(spare);
        }
        stream.pending.extend_from_slice(serve.scratch);
    }
    apply(stream, skey, requests, serve.timers, &serve.handle.sender);
    Ok(())
}

/// Applies what a callback asked of `stream`: its close, its half-close,
/// its timer. From a close or a half-close on, senders' new bytes are
/// refused; a close still takes what senders queued before it, as over
/// TCP: a close command posted behind those bytes ends the wait.
fn apply<Session>(
    stream: &mut QuicStream<Session>,
    skey: usize,
    requests: crate::service::Requests,
    timers: &mut TimerQueue,
    sender: &ConnectionSender,
) {
    if requests.close && stream.ending.is_none() {
        stream.ending = Some(CloseCause::ServiceClosed);
        // Called between the worker's takes of the commands: a command
        // posted now comes behind every byte queued before it.
        let id = stream.info.id;
        stream.awaits_queued =
            sender.close_behind_queued(id, QUIC_STREAM_KEY | skey, stream.published);
    } else if requests.close {
        // Ending already (the client's end, a stop, a sender's close
        // taken): what was queued before is in or dropped; refuse the rest.
        sender.end_sends(stream.info.id);
    }
    if requests.shutdown_write {
        stream.shut_write = true;
        sender.end_sends(stream.info.id);
    }
    for (timer, request) in Timer::all().zip(requests.timers) {
        match request {
            TimerRequest::Keep => {}
            TimerRequest::Set(at) => timers.set(skey, TimerKind::Service(timer), at),
            TimerRequest::Cancel => timers.cancel(skey, TimerKind::Service(timer)),
        }
    }
}
