//! The stop: listeners close, datagrams already received are answered,
//! and each connection gets the rest of its answer and an end of stream
//! once it goes quiet, or is cut at the drain deadline.

use super::{Source, Worker};
use crate::service::{CloseCause, DatagramService, StreamService};
use crate::timer::deadline_after;
use std::time::Duration;

/// While stopping, a connection with no traffic for this long is done: its
/// answer is sent and its stream ended. Long enough for bytes in flight on a
/// LAN to land, short enough that a stop is quick.
pub(super) const DRAIN_QUIET_PERIOD: Duration = Duration::from_millis(200);
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
            self.streams.len(),
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
        #[cfg(feature = "quic")]
        self.quic.begin_drain(context);
        context
            .hot
            .retain(|source| matches!(source, Source::Connection(_) | Source::Quic(_)));
        self.datagrams.close(context);
        self.streams
            .finish_quiet(DRAIN_QUIET_PERIOD, registry, context);
    }

    /// Ends the stop at its deadline (or when no connection is left),
    /// closing what is still open.
    pub(super) fn finish_drain(&mut self) {
        let cut = self.streams.len();
        if cut > 0 {
            log::warn!(
                "worker {}: drain timeout: closing {cut} connections still open",
                self.context.id
            );
        }
        self.streams
            .close_all(CloseCause::Stopped, self.poll.registry(), &self.context);
        #[cfg(feature = "quic")]
        self.quic.finish_drain(&mut self.context);
    }
}
