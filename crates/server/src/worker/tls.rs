//! TLS connections in the loop: ciphertext read from the socket goes
//! through the connection's transport layer, the handshake is finished
//! (and counted) before the service opens the connection, and plaintext
//! goes to the service as a plain read would.
//!
//! What differs from plain TCP is here; everything else (output,
//! backpressure, timers, the stop) is [`streams`](super::streams)' code,
//! run on the plaintext.

use super::TcpConnection;
use super::calls::{Serve, add_bytes_out, io};
use crate::connection::Received;
use crate::service::{CloseCause, EndReason, StreamService};
use crate::stats::WorkerStats;
use crate::tls::recycle;

/// Feeds one read's ciphertext (empty at the end of the TCP stream) to
/// connection `key`'s transport layer: finishes the handshake and opens
/// the session when it is done, gives plaintext to the service, and sends
/// what rustls has to send. Returns the cause when the connection must
/// close now: a TLS error (its alert sent as far as the socket takes it),
/// or a client gone during the handshake.
pub(super) fn receive<S: StreamService>(
    serve: &mut Serve<'_, S>,
    connection: &mut TcpConnection<S::Session>,
    key: usize,
    ciphertext: &[u8],
) -> Result<(), CloseCause> {
    // Past the answer, input is discarded, as over plain TCP.
    if !connection.is_handshaking() && !connection.is_serving() {
        return Ok(());
    }
    let stats = serve.stats;
    let mut rest = ciphertext;
    let ended = rest.is_empty();
    loop {
        let was_handshaking = connection.transport_handshaking();
        let took = match connection.receive(&mut rest) {
            Ok(took) => took,
            Err(error) => {
                let _ = connection.flush();
                let peer = connection.info().peer;
                if was_handshaking {
                    WorkerStats::add(&stats.tls_handshakes_failed, 1);
                    log::debug!("{peer}: TLS handshake failed: {error}");
                } else {
                    log::debug!("{peer}: TLS error: {error}");
                }
                return Err(CloseCause::Error(std::io::ErrorKind::InvalidData));
            }
        };
        if connection.transport_handshaking() {
            if ended {
                WorkerStats::add(&stats.tls_handshakes_failed, 1);
                log::debug!(
                    "{}: closed during the TLS handshake",
                    connection.info().peer
                );
                return Err(CloseCause::ClientClosed);
            }
            add_bytes_out(stats, io(connection.flush(), connection.info())?);
            if rest.is_empty() || !took {
                return Ok(());
            }
            continue;
        }
        if was_handshaking {
            WorkerStats::add(&stats.tls_handshakes_completed, 1);
            log::debug!("{}: TLS handshake done", connection.info().peer);
            // Over wss the service opens on the upgrade that comes next.
            if !connection.awaits_upgrade() {
                serve.open_session(connection, key)?;
            }
        }
        if deliver_plaintext(serve, connection, key)? {
            break;
        }
        if rest.is_empty() || !took {
            break;
        }
    }
    // Handshake records, session tickets, alerts: whatever rustls queued.
    add_bytes_out(stats, io(connection.flush(), connection.info())?);
    Ok(())
}

/// Gives the service the plaintext the transport layer decrypted. Returns
/// whether the client's input is over (close_notify, or a truncation).
fn deliver_plaintext<S: StreamService>(
    serve: &mut Serve<'_, S>,
    connection: &mut TcpConnection<S::Session>,
    key: usize,
) -> Result<bool, CloseCause> {
    loop {
        // A WebSocket connection takes its request head (and discards
        // input once answered) in its own layer.
        if !connection.is_serving() && !connection.is_websocket() {
            return Ok(false);
        }
        let mut data = match connection.plaintext() {
            Received::Nothing => return Ok(false),
            Received::Data(bytes) => bytes,
            Received::End { truncated } => {
                if truncated {
                    WorkerStats::add(&serve.stats.tls_truncated, 1);
                    log::info!(
                        "{}: TLS stream truncated (TCP end without close_notify); answering what came",
                        connection.info().peer
                    );
                }
                Vec::new()
            }
        };
        let over = data.is_empty();
        let answered = hand_on(serve, connection, key, &mut data);
        recycle(data);
        answered?;
        if over {
            return Ok(true);
        }
    }
}

/// Hands plaintext (empty: the client's end) on to the service, or to
/// the WebSocket layer over TLS (wss).
fn hand_on<S: StreamService>(
    serve: &mut Serve<'_, S>,
    connection: &mut TcpConnection<S::Session>,
    key: usize,
    data: &mut [u8],
) -> Result<(), CloseCause> {
    #[cfg(feature = "ws")]
    if connection.is_websocket() {
        return super::ws::receive(serve, connection, key, data);
    }
    serve.call_and_answer(connection, key, |service, session, conn| {
        if data.is_empty() {
            service.end(session, conn, EndReason::ClientClosed);
        } else {
            service.data(session, data, conn);
        }
    })
}

/// Counts and logs a handshake broken by the socket: a reset, or another
/// I/O error on a read or a write. A TLS error (`InvalidData`) and a FIN
/// are counted where [`receive`] meets them; a PROXY header still awaited
/// is not a handshake yet.
pub(super) fn note_broken_handshake<Session>(
    connection: &TcpConnection<Session>,
    cause: CloseCause,
    stats: &WorkerStats,
) {
    let socket_error = match cause {
        CloseCause::Reset => true,
        CloseCause::Error(kind) => kind != std::io::ErrorKind::InvalidData,
        _ => false,
    };
    let handshaking = !connection.in_prelude() && connection.transport_handshaking();
    if socket_error && handshaking {
        WorkerStats::add(&stats.tls_handshakes_failed, 1);
        log::debug!(
            "{}: TLS handshake broken: {cause:?}",
            connection.info().peer
        );
    }
}
