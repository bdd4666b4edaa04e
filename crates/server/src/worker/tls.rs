//! TLS connections in the loop: ciphertext read from the socket goes
//! through the connection's [`TlsLayer`](crate::tls::TlsLayer), the
//! handshake is finished (and counted) before the service opens the
//! connection, and plaintext goes to the service as a plain read would.
//!
//! What differs from plain TCP is here; everything else (output,
//! backpressure, timers, the stop) is [`streams`](super::streams)' code,
//! run on the plaintext.

use super::streams::{Lend, add_bytes_out, call_and_answer, io, open_session};
use crate::connection::{Connection, Phase};
use crate::service::{CloseCause, EndReason, StreamService};
use crate::stats::WorkerStats;
use crate::timer::{TimerKind, TimerQueue};
use crate::tls::{Plaintext, recycle};

/// What one read lends the TLS path.
pub(super) struct TlsInput<'a> {
    /// What the read got; empty at the end of the TCP stream.
    pub(super) ciphertext: &'a [u8],
    pub(super) scratch: &'a mut Vec<u8>,
    pub(super) timers: &'a mut TimerQueue,
}

/// Feeds one read's ciphertext to connection `key`'s TLS layer: finishes
/// the handshake and opens the session when it is done, gives plaintext to
/// the service, and sends what rustls has to send. Returns the cause when
/// the connection must close now: a TLS error (its alert sent as far as
/// the socket takes it), or a client gone during the handshake.
pub(super) fn receive<S: StreamService>(
    connection: &mut Connection<S::Session>,
    key: usize,
    input: &mut TlsInput<'_>,
    lend: &Lend<'_>,
    stats: &WorkerStats,
    service: &S,
) -> Result<(), CloseCause> {
    // Past the answer, input is discarded, as over plain TCP.
    if connection.phase != Phase::Serving && connection.session.is_some() {
        return Ok(());
    }
    let mut rest = input.ciphertext;
    let ended = rest.is_empty();
    loop {
        let tls = connection.tls.as_mut().expect("a TLS connection");
        let took = match tls.receive(&mut rest) {
            Ok(took) => took,
            Err(error) => {
                let _ = connection.flush();
                if connection.session.is_none() {
                    WorkerStats::add(&stats.tls_handshakes_failed, 1);
                    log::debug!("{}: TLS handshake failed: {error}", connection.info.peer);
                } else {
                    log::debug!("{}: TLS error: {error}", connection.info.peer);
                }
                return Err(CloseCause::Error(std::io::ErrorKind::InvalidData));
            }
        };
        if connection.session.is_none() {
            if tls.is_handshaking() {
                if ended {
                    WorkerStats::add(&stats.tls_handshakes_failed, 1);
                    log::debug!("{}: closed during the TLS handshake", connection.info.peer);
                    return Err(CloseCause::ClientClosed);
                }
                add_bytes_out(stats, io(connection.flush(), &connection.info)?);
                if rest.is_empty() || !took {
                    return Ok(());
                }
                continue;
            }
            open(connection, key, input, lend, stats, service)?;
        }
        if deliver_plaintext(connection, key, input, lend, stats, service)? {
            break;
        }
        if rest.is_empty() || !took {
            break;
        }
    }
    // Handshake records, session tickets, alerts: whatever rustls queued.
    add_bytes_out(stats, io(connection.flush(), &connection.info)?);
    Ok(())
}

/// Gives the service the plaintext rustls has decrypted. Returns whether
/// the client's input is over (close_notify, or a truncation).
fn deliver_plaintext<S: StreamService>(
    connection: &mut Connection<S::Session>,
    key: usize,
    input: &mut TlsInput<'_>,
    lend: &Lend<'_>,
    stats: &WorkerStats,
    service: &S,
) -> Result<bool, CloseCause> {
    loop {
        if connection.phase != Phase::Serving {
            return Ok(false);
        }
        let tls = connection.tls.as_mut().expect("a TLS connection");
        let data = match tls.plaintext() {
            Plaintext::Nothing => return Ok(false),
            Plaintext::Data(bytes) => bytes,
            Plaintext::Closed => Vec::new(),
            Plaintext::Truncated => {
                WorkerStats::add(&stats.tls_truncated, 1);
                log::info!(
                    "{}: TLS stream truncated (TCP end without close_notify); answering what came",
                    connection.info.peer
                );
                Vec::new()
            }
        };
        let over = data.is_empty();
        if over {
            connection.input_ended = true;
        }
        let answered = call_and_answer(
            connection,
            key,
            input.scratch,
            lend,
            input.timers,
            stats,
            |session, conn| {
                if over {
                    service.end(session, conn, EndReason::ClientClosed);
                } else {
                    service.data(session, &data, conn);
                }
            },
        );
        recycle(data);
        answered?;
        if over {
            return Ok(true);
        }
    }
}

/// The handshake is done: counts it, ends its deadline, tells the service
/// the transport and opens the session.
fn open<S: StreamService>(
    connection: &mut Connection<S::Session>,
    key: usize,
    input: &mut TlsInput<'_>,
    lend: &Lend<'_>,
    stats: &WorkerStats,
    service: &S,
) -> Result<(), CloseCause> {
    WorkerStats::add(&stats.tls_handshakes_completed, 1);
    input.timers.cancel(key, TimerKind::Handshake);
    let tls = connection.tls.as_ref().expect("a TLS connection");
    connection.info.transport = tls.transport();
    log::debug!(
        "{}: TLS handshake done: {:?}",
        connection.info.peer,
        connection.info.transport
    );
    open_session(
        connection,
        key,
        input.scratch,
        input.timers,
        lend,
        stats,
        service,
    )
}

/// Counts and logs a handshake broken by the socket: a reset, or another
/// I/O error on a read or a write. A TLS error (`InvalidData`) and a FIN
/// are counted where [`receive`] meets them; a PROXY header still awaited
/// is not a handshake yet.
pub(super) fn note_broken_handshake<Session>(
    connection: &Connection<Session>,
    cause: CloseCause,
    stats: &WorkerStats,
) {
    let socket_error = match cause {
        CloseCause::Reset => true,
        CloseCause::Error(kind) => kind != std::io::ErrorKind::InvalidData,
        _ => false,
    };
    let handshaking = connection.proxy.is_none()
        && connection
            .tls
            .as_ref()
            .is_some_and(|tls| tls.is_handshaking());
    if socket_error && handshaking {
        WorkerStats::add(&stats.tls_handshakes_failed, 1);
        log::debug!("{}: TLS handshake broken: {cause:?}", connection.info.peer);
    }
}

/// Counts and logs a handshake cut at its deadline.
pub(super) fn note_handshake_timeout<Session>(
    connection: &Connection<Session>,
    stats: &WorkerStats,
) {
    WorkerStats::add(&stats.tls_handshakes_failed, 1);
    WorkerStats::add(&stats.tls_handshake_timeouts, 1);
    log::debug!(
        "{}: TLS handshake not done by its deadline, closing",
        connection.info.peer
    );
}
