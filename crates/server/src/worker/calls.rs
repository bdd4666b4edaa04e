//! Calls into the stream service, and what follows each: the answer sent,
//! the requests applied. Every service callback goes through [`call`],
//! which catches a panic: see docs/EMBEDDING.md for why that is sound.
//!
//! [`Serve`] is what one event lends these calls (the service, the turn's
//! time, the scratch buffer, the timers, the counters), built once per
//! event by [`streams`](super::streams) instead of passed as parameters.

use super::TcpConnection;
use super::note_panic;
use crate::connection::Stage;
use crate::handle::Handle;
use crate::sender::ConnectionSender;
use crate::service::{
    CloseCause, ConnectionContext, ConnectionInfo, Requests, StreamService, TimerRequest,
};
use crate::stats::WorkerStats;
use crate::timer::{Timer, TimerKind, TimerQueue};
use std::any::Any;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

/// A panic's payload.
pub(super) type Panic = Box<dyn Any + Send>;

/// What one event lends the service calls it makes.
pub(super) struct Serve<'a, S> {
    pub(super) service: &'a S,
    /// The server's handle, lent to every callback.
    pub(super) handle: &'a Handle,
    pub(super) max_pending_output: usize,
    /// The most a connection's output buffer grows to (see
    /// [`Streams::output_capacity`](super::streams::Streams)).
    pub(super) output_capacity: usize,
    pub(super) now: Instant,
    pub(super) stats: &'a WorkerStats,
    /// Where the service writes its answer before it goes to the socket.
    pub(super) scratch: &'a mut Vec<u8>,
    pub(super) timers: &'a mut TimerQueue,
}

/// Runs one service callback with a context on `info`, catching a panic.
///
/// `AssertUnwindSafe` is sound here: during the call the loop lends only
/// `output` (discarded by every caller on a panic) and the session (dropped
/// with its connection, unread), and changes nothing of its own.
pub(super) fn call<S, R>(
    serve: &mut Serve<'_, S>,
    info: &ConnectionInfo,
    pending: usize,
    callback: impl FnOnce(&mut ConnectionContext<'_>) -> R,
) -> Result<(R, Requests), Panic> {
    serve.scratch.clear();
    let mut conn = ConnectionContext {
        info,
        output: serve.scratch,
        pending,
        max_pending_output: serve.max_pending_output,
        now: serve.now,
        handle: serve.handle,
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

/// Counts `written` bytes out, and returns them.
pub(super) fn add_bytes_out(stats: &WorkerStats, written: usize) -> usize {
    WorkerStats::add(&stats.bytes_out, written as u64);
    written
}

impl<S: StreamService> Serve<'_, S> {
    /// Calls the service on `connection` (if open) through [`call`], sends
    /// what it wrote if the connection still takes output, and applies what
    /// it asked. A panic closes the connection.
    #[inline]
    pub(super) fn call_and_answer(
        &mut self,
        connection: &mut TcpConnection<S::Session>,
        key: usize,
        callback: impl FnOnce(&S, &mut S::Session, &mut ConnectionContext<'_>),
    ) -> Result<(), CloseCause> {
        let accepting = connection.accepts_output();
        let pending = connection.pending_output();
        let service = self.service;
        // Not open: a handshake is going on, nothing to tell.
        let Some((session, info)) = connection.session() else {
            return Ok(());
        };
        let called = call(self, info, pending, |conn| callback(service, session, conn));
        let requests = match called {
            Ok(((), requests)) => requests,
            Err(payload) => {
                note_panic(self.stats, &connection.info().peer, payload);
                return Err(CloseCause::Panicked);
            }
        };
        if accepting && !self.scratch.is_empty() {
            let sent = connection.send(self.scratch, self.output_capacity);
            add_bytes_out(self.stats, io(sent, connection.info())?);
        }
        if requests != Requests::NONE {
            self.apply(connection, key, requests);
        }
        Ok(())
    }

    /// Opens the service's session on `connection`, whose transport is
    /// settled (a TLS handshake done, a PROXY header read), and sends its
    /// greeting. A panic in `open` closes the connection, which never opened.
    pub(super) fn open_session(
        &mut self,
        connection: &mut TcpConnection<S::Session>,
        key: usize,
    ) -> Result<(), CloseCause> {
        self.timers.cancel(key, TimerKind::Handshake);
        connection.end_handshake();
        let service = self.service;
        let (session, requests) = call(self, connection.info(), 0, |conn| service.open(conn))
            .map_err(|payload| {
                note_panic(self.stats, &connection.info().peer, payload);
                CloseCause::Panicked
            })?;
        connection.open_with(session);
        if !self.scratch.is_empty() {
            let sent = connection.send(self.scratch, self.output_capacity);
            add_bytes_out(self.stats, io(sent, connection.info())?);
        }
        if requests != Requests::NONE {
            self.apply(connection, key, requests);
        }
        Ok(())
    }

    /// Applies what a callback asked: to the connection, and to its timer.
    pub(super) fn apply(
        &mut self,
        connection: &mut TcpConnection<S::Session>,
        key: usize,
        requests: Requests,
    ) {
        apply(connection, key, requests, self.timers);
        end_sends(&self.handle.sender, connection, key, requests);
    }
}

/// Refuses senders' bytes to a connection whose service closed it or shut
/// its sending side from a callback (`requests`): it can send nothing more
/// once its output drains. A close still takes what senders queued
/// before it ([`close_behind_queued`]).
pub(super) fn end_sends<Session>(
    sender: &ConnectionSender,
    connection: &mut TcpConnection<Session>,
    key: usize,
    requests: Requests,
) {
    if requests.close {
        close_behind_queued(sender, connection, key);
    } else if requests.shutdown_write {
        sender.end_sends(connection.info().id);
    }
}

/// Keeps a connection its service just closed from a callback taking what
/// senders queued to it before the close, as [`ConnectionSender::close`]
/// does: a close command posted behind those bytes ends the wait. Nothing
/// is posted when nothing is queued, the usual case. Sends after it are
/// refused.
fn close_behind_queued<Session>(
    sender: &ConnectionSender,
    connection: &mut TcpConnection<Session>,
    key: usize,
) {
    if connection.stage() != Some(Stage::Finishing) || connection.awaits_queued() {
        return;
    }
    let id = connection.info().id;
    if sender.close_behind_queued(id, key, connection.published()) {
        connection.await_queued();
    }
}

/// Applies `requests` to `connection` and its service timers.
pub(super) fn apply<Session>(
    connection: &mut TcpConnection<Session>,
    key: usize,
    requests: Requests,
    timers: &mut TimerQueue,
) {
    let asked = connection.apply(requests);
    for (timer, request) in Timer::all().zip(asked) {
        match request {
            TimerRequest::Keep => {}
            TimerRequest::Set(at) => timers.set(key, TimerKind::Service(timer), at),
            TimerRequest::Cancel => timers.cancel(key, TimerKind::Service(timer)),
        }
    }
}
