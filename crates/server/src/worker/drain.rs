//! The stop: listeners close, datagrams already received are answered,
//! and each connection gets the rest of its answer and an end of stream
//! once it goes quiet, or is cut at the drain deadline.

use super::streams::Streams;
use super::{Context, Source, Worker};
use crate::connection::Phase;
use crate::service::{CloseCause, DatagramService, EndReason, StreamService};
use mio::Registry;
use std::time::{Duration, Instant};

/// While stopping, a connection with no traffic for this long is done: its
/// answer is sent and its stream ended. Long enough for bytes in flight on a
/// LAN to land, short enough that a stop is quick.
const DRAIN_QUIET_PERIOD: Duration = Duration::from_millis(200);
/// While stopping, at most this many turns' shares of datagrams already
/// received are answered before the UDP sockets close.
const DRAIN_UDP_TURNS: usize = 64;

impl<S: StreamService, D: DatagramService> Worker<S, D> {
    /// Starts the stop: no new connections, the received datagrams
    /// answered (bounded), the UDP sockets closed, quiet connections ended.
    pub(super) fn begin_drain(&mut self) {
        let context = &mut self.context;
        self.drain_deadline = Some(deadline_after(context.now, self.drain_timeout));
        let registry = self.poll.registry();
        self.acceptor.close(registry);
        let cut = self.streams.close_handshaking(registry, context);
        // Said only once it is true: a reader of this line may connect and
        // expect a refusal.
        log::info!(
            "worker {}: stopping: listeners closed, {cut} connections cut in their handshake, \
             {} connections to drain, {:?} at most",
            context.id,
            self.streams.connections.len(),
            self.drain_timeout
        );
        // Bounded: a flood must not hold the stop up for ever.
        for index in 0..self.datagrams.len() {
            for _ in 0..DRAIN_UDP_TURNS {
                if !self.datagrams.serve(index, context) {
                    break;
                }
            }
        }
        context
            .hot
            .retain(|source| matches!(source, Source::Connection(_)));
        self.datagrams.close(context);
        self.streams.finish_quiet(registry, context);
    }

    /// Ends the stop at its deadline (or when no connection is left),
    /// closing what is still open.
    pub(super) fn finish_drain(&mut self) {
        let cut = self.streams.connections.len();
        if cut > 0 {
            log::warn!(
                "worker {}: drain timeout: closing {cut} connections still open",
                self.context.id
            );
        }
        let keys: Vec<usize> = self
            .streams
            .connections
            .iter()
            .map(|(key, _)| key)
            .collect();
        for key in keys {
            self.streams.close(
                key,
                CloseCause::Stopped,
                self.poll.registry(),
                &self.context,
            );
        }
    }
}

impl<S: StreamService> Streams<S> {
    /// Closes every connection still in its handshake (a PROXY header or a
    /// TLS handshake not finished): nothing was asked yet, so nothing is
    /// owed, and a client trickling its handshake must not hold the stop
    /// up. Returns how many were closed.
    pub(super) fn close_handshaking(&mut self, registry: &Registry, context: &Context) -> usize {
        let keys: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, connection)| connection.session.is_none())
            .map(|(key, _)| key)
            .collect();
        for &key in &keys {
            self.close(key, CloseCause::Stopped, registry, context);
        }
        keys.len()
    }

    /// When the connection quiet longest is done, while stopping.
    pub(super) fn next_quiet_deadline(&self) -> Option<Instant> {
        self.idle.next_deadline(DRAIN_QUIET_PERIOD)
    }

    /// While stopping, ends every connection that has been quiet for
    /// [`DRAIN_QUIET_PERIOD`]: its answer is complete, so it gets the rest of
    /// its output and then an end of stream. Connections still exchanging
    /// data are served on, until they go quiet or the drain deadline.
    pub(super) fn finish_quiet(&mut self, registry: &Registry, context: &mut Context) {
        while let Some(key) = self.idle.expired(context.now, DRAIN_QUIET_PERIOD) {
            self.idle.remove(key);
            // No connection is in its handshake: the drain closed those
            // when it began, and accepts no new ones.
            let connection = &mut self.connections[key];
            if connection.phase != Phase::Serving {
                continue;
            }
            if connection.readiness.is_readable() && !connection.input_ended {
                // Quiet only because backpressure stopped reading: request
                // bytes wait unread, and they are owed an answer. Served on
                // until they are answered or the drain deadline.
                self.idle.touch(key, context.now);
                continue;
            }
            connection.close_cause = Some(CloseCause::Stopped);
            if !connection.input_ended {
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
                connection.phase = Phase::Finishing;
            }
            self.drive(key, registry, context);
        }
    }
}

/// `now + after`, or a century from now where `after` is too large to add
/// (a timeout given as "practically never").
pub(super) fn deadline_after(now: Instant, after: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    now.checked_add(after.min(CENTURY)).unwrap_or(now)
}
