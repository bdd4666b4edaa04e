//! WebSocket connections in the loop: the request head is answered (the
//! page, a refusal, or the upgrade that opens the service), then each
//! frame is taken as it comes: a data message's payload goes to the
//! service as a plain read's bytes would, a ping is answered, a close is
//! answered and ends the connection, a broken rule closes it with its
//! code.
//!
//! What differs from plain TCP is here; the frames themselves are
//! [`crate::ws`]'s, and everything else (output, backpressure, timers, the
//! stop) is [`streams`](super::streams)' code.

use super::TcpConnection;
use super::calls::{Serve, add_bytes_out, io};
use crate::service::{CloseCause, EndReason, StreamService};
use crate::stats::WorkerStats;
use crate::ws::{Handshake, Incoming};
use std::io::ErrorKind;

/// Takes one read's bytes (after the transport: plaintext over TLS;
/// empty at the client's end of stream) on WebSocket connection `key`.
/// Returns the cause when the connection must close now.
pub(super) fn receive<S: StreamService>(
    serve: &mut Serve<'_, S>,
    connection: &mut TcpConnection<S::Session>,
    key: usize,
    mut data: &mut [u8],
) -> Result<(), CloseCause> {
    if connection.awaits_upgrade() {
        if data.is_empty() {
            // A connection that sent nothing (a browser's preconnect left
            // unused) made no request to refuse.
            if connection.upgrade_begun() {
                WorkerStats::add(&serve.stats.ws_upgrades_refused, 1);
            }
            return Err(CloseCause::ClientClosed);
        }
        let Some(taken) = upgrade(serve, connection, key, data)? else {
            return Ok(());
        };
        data = &mut data[taken..];
        if data.is_empty() {
            return Ok(());
        }
    }
    // Answered over HTTP, closing, or past the answer: input is discarded.
    if !connection.is_serving() {
        return Ok(());
    }
    if data.is_empty() {
        // The TCP stream ended with no close frame: the service's end, as
        // over TCP, and no close frame can be answered.
        return serve.call_and_answer(connection, key, |service, session, conn| {
            service.end(session, conn, EndReason::ClientClosed);
        });
    }
    // The replies to one read's messages go out in one write.
    connection.cork();
    let taken = frames(serve, connection, key, data);
    let flushed = io(connection.uncork(), connection.info());
    let taken = taken.and_then(|()| flushed.map(|written| add_bytes_out(serve.stats, written)));
    let taken = taken.map(|_| ());
    let sent = connection.take_messages_out();
    WorkerStats::add(&serve.stats.ws_messages_out, u64::from(sent));
    taken
}

/// Answers the request head once it is whole. Returns how many of
/// `data`'s bytes it took once the connection is upgraded (the rest are
/// frames), `None` while it is not.
fn upgrade<S: StreamService>(
    serve: &mut Serve<'_, S>,
    connection: &mut TcpConnection<S::Session>,
    key: usize,
    data: &[u8],
) -> Result<Option<usize>, CloseCause> {
    let stats = serve.stats;
    let peer = connection.info().peer;
    let (response, taken) = match connection.upgrade(data) {
        Handshake::More => return Ok(None),
        Handshake::Answered { response, status } => {
            let counter = match status {
                200 => &stats.ws_pages_served,
                _ => &stats.ws_upgrades_refused,
            };
            WorkerStats::add(counter, 1);
            log::debug!("{peer}: HTTP {status}, closing");
            let sent = connection.answer(&response, serve.output_capacity);
            add_bytes_out(stats, io(sent, connection.info())?);
            return Ok(None);
        }
        Handshake::Upgraded { response, taken } => (response, taken),
    };
    let sent = connection.send_protocol(&response, serve.output_capacity);
    add_bytes_out(stats, io(sent, connection.info())?);
    WorkerStats::add(&stats.ws_upgrades, 1);
    log::debug!("{peer}: upgraded to WebSocket");
    serve.open_session(connection, key)?;
    Ok(Some(taken))
}

/// Takes the frames in `data`, in order, until it is used up or the
/// connection ends.
fn frames<S: StreamService>(
    serve: &mut Serve<'_, S>,
    connection: &mut TcpConnection<S::Session>,
    key: usize,
    mut data: &mut [u8],
) -> Result<(), CloseCause> {
    let stats = serve.stats;
    let capacity = serve.output_capacity;
    while connection.is_serving() {
        let incoming = match connection.next_frame(&mut data) {
            Ok(Some(incoming)) => incoming,
            Ok(None) => break,
            Err(failure) => {
                log::debug!(
                    "{}: WebSocket closed with {}: {}",
                    connection.info().peer,
                    failure.code,
                    failure.why
                );
                let cause = CloseCause::Error(ErrorKind::InvalidData);
                let sent =
                    connection.close_websocket(failure.code, failure.why, Some(cause), capacity);
                add_bytes_out(stats, io(sent, connection.info())?);
                break;
            }
        };
        match incoming {
            Incoming::Data { payload, last } => {
                if !payload.is_empty() {
                    serve.call_and_answer(connection, key, |service, session, conn| {
                        service.data(session, payload, conn);
                    })?;
                }
                if last {
                    WorkerStats::add(&stats.ws_messages_in, 1);
                    add_bytes_out(
                        stats,
                        io(connection.end_reply(capacity), connection.info())?,
                    );
                }
            }
            Incoming::Pong(pong) => {
                let sent = connection.send_protocol(&pong, capacity);
                add_bytes_out(stats, io(sent, connection.info())?);
            }
            Incoming::Close { code } => {
                stats.note_close_received(code);
                // What the service owes goes out before the close frame.
                serve.call_and_answer(connection, key, |service, session, conn| {
                    service.end(session, conn, EndReason::ClientClosed);
                })?;
                let echo = code.unwrap_or(1000);
                let sent =
                    connection.close_websocket(echo, "", Some(CloseCause::ClientClosed), capacity);
                add_bytes_out(stats, io(sent, connection.info())?);
                break;
            }
        }
    }
    Ok(())
}

/// Counts what a WebSocket connection about to close sent and did not
/// count yet: its messages sent since its last read, its close frame.
pub(super) fn note_closing<Session>(connection: &mut TcpConnection<Session>, stats: &WorkerStats) {
    if !connection.is_websocket() {
        return;
    }
    WorkerStats::add(
        &stats.ws_messages_out,
        u64::from(connection.take_messages_out()),
    );
    if let Some(code) = connection.close_sent() {
        stats.note_close_sent(code);
    }
}
