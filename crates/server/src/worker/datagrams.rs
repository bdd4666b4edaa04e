//! UDP: each socket's datagrams received in batches, answered, and the
//! replies sent in batches, with a bounded queue for replies the socket
//! would not take yet. The datagrams of `DatagramSender`s join that queue
//! once a turn, through the same rate limit and loop guard.

use super::{Context, MAX_SOCKETS_PER_KIND, Source, note_panic};
use crate::datagram_sender::{DatagramPost, Outgoing};
use crate::reflection::{ReflectionGuard, RefusedSource};
use crate::service::{DatagramReply, DatagramService};
use crate::sources::ReplyRateLimiter;
use crate::stats::WorkerStats;
use mio::net::UdpSocket;
use mio::{Interest, Registry};
use shout_protocol::MAX_DATAGRAM_PAYLOAD;
use shout_socket::batch::{RecvBatch, SendQueue};
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Datagrams received with one system call (`recvmmsg` on Linux). Enough
/// to share the call's cost thinly; each slot is 64 KiB of address space,
/// of which only the pages datagrams fill become memory.
const DATAGRAMS_PER_RECEIVE: usize = 16;
/// Datagrams per UDP socket per turn, at most.
const DATAGRAMS_PER_TURN: usize = 256;
/// Receives per UDP socket per turn: a turn's share of datagrams, in batches.
const RECEIVES_PER_TURN: usize = DATAGRAMS_PER_TURN / DATAGRAMS_PER_RECEIVE;
/// Replies queued per UDP socket when the socket would block...
const UDP_QUEUE_DATAGRAMS: usize = 1024;
/// ...and their bytes: replies past either limit are dropped and counted.
const UDP_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// A worker's UDP sockets and what answering them needs.
pub(super) struct Datagrams<D> {
    endpoints: Vec<UdpEndpoint>,
    service: Arc<D>,
    /// Datagrams received together, from whichever socket is served.
    received: RecvBatch,
    /// Where the service writes a reply before it is queued.
    scratch: Vec<u8>,
    /// Each source's reply rate.
    limiter: ReplyRateLimiter,
    /// The source ports never answered.
    guard: ReflectionGuard,
    /// The largest reply, as a multiple of its request; 0 is no limit.
    reply_ratio: u32,
    /// Where senders queue datagrams for this worker, and those taken,
    /// kept for its capacity.
    post: Arc<DatagramPost>,
    sent: Vec<Outgoing>,
}

struct UdpEndpoint {
    socket: UdpSocket,
    /// Replies not sent yet, in order: those of the batch being answered,
    /// then any the socket would not take (bounded).
    replies: SendQueue,
    writable: bool,
}

impl<D: DatagramService> Datagrams<D> {
    pub(super) fn new(
        registry: &Registry,
        sockets: Vec<std::net::UdpSocket>,
        service: Arc<D>,
        limiter: ReplyRateLimiter,
        post: Arc<DatagramPost>,
        reply_ratio: u32,
    ) -> io::Result<Self> {
        debug_assert!(sockets.len() <= MAX_SOCKETS_PER_KIND);
        let mut endpoints = Vec::with_capacity(sockets.len());
        let mut own = Vec::with_capacity(sockets.len());
        for (index, socket) in sockets.into_iter().enumerate() {
            own.push(socket.local_addr()?);
            let mut socket = UdpSocket::from_std(socket);
            let interest = Interest::READABLE | Interest::WRITABLE;
            registry.register(&mut socket, Source::Udp(index).token(), interest)?;
            endpoints.push(UdpEndpoint {
                socket,
                replies: SendQueue::new(),
                writable: true,
            });
        }
        // A TCP-only worker never receives a datagram: one slot, untouched.
        let received = RecvBatch::new(if endpoints.is_empty() {
            1
        } else {
            DATAGRAMS_PER_RECEIVE
        });
        Ok(Self {
            endpoints,
            service,
            received,
            scratch: Vec::new(),
            limiter,
            guard: ReflectionGuard::new(own),
            reply_ratio,
            post,
            sent: Vec::new(),
        })
    }

    /// Records that socket `index` takes replies again.
    pub(super) fn note_writable(&mut self, index: usize) {
        if let Some(endpoint) = self.endpoints.get_mut(index) {
            endpoint.writable = true;
        }
    }

    /// Answers up to one turn's share of datagrams, a batch at a time: the
    /// waiting datagrams are received with one call, answered, and the
    /// replies sent with one call. Returns whether more may be waiting (the
    /// share ran out before the socket was empty); the socket is then on the
    /// hot list.
    pub(super) fn serve(&mut self, index: usize, context: &mut Context) -> bool {
        // The sockets close when a drain starts; a stale event may still name one.
        let Some(endpoint) = self.endpoints.get_mut(index) else {
            return false;
        };
        let stats = &context.stats;
        endpoint.send_replies(stats);
        for _ in 0..RECEIVES_PER_TURN {
            let count = match self.received.recv_from(&endpoint.socket) {
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // An ICMP error for an earlier reply, for instance: it
                    // concerns one peer, not the socket.
                    log::debug!("udp {}: receive error: {error}", endpoint.local_addr());
                    continue;
                }
            };
            WorkerStats::add(&stats.datagrams_in, count as u64);
            for (request, peer) in self.received.iter() {
                if let Some(refused) = self.guard.check(peer, context.now) {
                    note_refused_source(stats, refused, peer);
                    continue;
                }
                // Checked before the service runs: a flood over the rate
                // costs no work beyond its receiving.
                if !self.limiter.allow(peer.ip(), context.now) {
                    WorkerStats::note_dropped(
                        &stats.datagrams_rate_limited,
                        1,
                        &stats.datagrams_dropped,
                    );
                    continue;
                }
                let reply = answer(&*self.service, request, peer, &mut self.scratch);
                match reply {
                    Ok(DatagramReply::Send)
                        if over_ratio(self.reply_ratio, request, &self.scratch) =>
                    {
                        WorkerStats::note_dropped(
                            &stats.datagrams_over_ratio,
                            1,
                            &stats.datagrams_dropped,
                        );
                    }
                    Ok(DatagramReply::Send) => endpoint.queue_reply(peer, &self.scratch, stats),
                    Ok(DatagramReply::Deferred) => {}
                    Ok(DatagramReply::Drop) => WorkerStats::note_dropped(
                        &stats.datagrams_declined,
                        1,
                        &stats.datagrams_dropped,
                    ),
                    Err(payload) => {
                        note_panic(stats, &format_args!("udp {peer}"), payload);
                        WorkerStats::note_dropped(
                            &stats.datagrams_declined,
                            1,
                            &stats.datagrams_dropped,
                        );
                    }
                }
            }
            endpoint.send_replies(stats);
            if count < self.received.slots() {
                // The kernel stopped short of the slots because the socket
                // ran dry (the other reason, an ICMP error, is not reported
                // on an unconnected socket without IP_RECVERR). A datagram
                // arriving from now on raises a new edge, so asking again
                // now would only cost a call that finds nothing: at moderate
                // rates, where batches are small, that call was most of
                // what batching cost.
                return false;
            }
        }
        context.hot.push(Source::Udp(index));
        true
    }

    /// Queues the datagrams senders posted to this worker since the last
    /// turn, each behind the replies its socket holds, and sends what the
    /// sockets take.
    #[inline]
    pub(super) fn take_sent(&mut self, context: &mut Context) {
        // The usual turn: nothing sent, one atomic load.
        if self.post.mailboxes[context.id].has_datagrams() {
            self.take_waiting_sent(context);
        }
    }

    /// [`take_sent`](Self::take_sent) when a sender posted some.
    #[inline(never)]
    fn take_waiting_sent(&mut self, context: &mut Context) {
        self.post.mailboxes[context.id].take(&mut self.sent);
        let stats = &context.stats;
        WorkerStats::add(&stats.datagrams_from_senders, self.sent.len() as u64);
        for outgoing in self.sent.drain(..) {
            let peer = outgoing.peer;
            // A server's sockets are the same in every worker.
            let Some(endpoint) = self.endpoints.get_mut(outgoing.socket) else {
                continue;
            };
            if let Some(refused) = self.guard.check(peer, context.now) {
                note_refused_source(stats, refused, peer);
            } else if !self.limiter.allow(peer.ip(), context.now) {
                WorkerStats::note_dropped(
                    &stats.datagrams_rate_limited,
                    1,
                    &stats.datagrams_dropped,
                );
            } else {
                endpoint.queue_reply(peer, &outgoing.bytes, stats);
            }
        }
        for endpoint in &mut self.endpoints {
            endpoint.send_replies(stats);
        }
    }

    /// Takes what senders posted, refuses their later sends, sends what
    /// each socket will take of its queued replies, counts the rest as
    /// dropped, and closes the sockets.
    pub(super) fn close(&mut self, context: &mut Context) {
        self.take_sent(context);
        self.post.mailboxes[context.id].close();
        // Posted between the take and the close.
        self.take_sent(context);
        for endpoint in &mut self.endpoints {
            endpoint.send_replies(&context.stats);
            // Replies the socket would not take now are lost with it: count them.
            let unsent = endpoint.replies.clear();
            let stats = &context.stats;
            WorkerStats::note_dropped(
                &stats.datagrams_unsent_at_stop,
                unsent as u64,
                &stats.datagrams_dropped,
            );
        }
        self.endpoints.clear();
    }

    pub(super) fn len(&self) -> usize {
        self.endpoints.len()
    }
}

/// Calls the service for `request` from `peer`, its reply written to
/// `scratch`, catching a panic. Sound to catch: the loop lends only the
/// scratch reply, which a panic discards.
fn answer<D: DatagramService>(
    service: &D,
    request: &[u8],
    peer: SocketAddr,
    scratch: &mut Vec<u8>,
) -> Result<DatagramReply, super::calls::Panic> {
    scratch.clear();
    catch_unwind(AssertUnwindSafe(|| {
        service.datagram(request, peer, scratch)
    }))
}

/// Returns whether a `reply` to `request` is larger than `ratio` times it
/// (0: no limit).
#[inline]
fn over_ratio(ratio: u32, request: &[u8], reply: &[u8]) -> bool {
    ratio != 0 && reply.len() > request.len().saturating_mul(ratio as usize)
}

/// Counts a datagram left unanswered because of its source port; logged at
/// debug level, since a flood would otherwise flood the log.
fn note_refused_source(stats: &WorkerStats, refused: RefusedSource, peer: SocketAddr) {
    let cause = match refused {
        RefusedSource::ServerPort => &stats.datagrams_from_server_port,
        RefusedSource::ReservedPort => &stats.datagrams_from_reserved_port,
    };
    log::debug!("udp: not answering {peer}: {refused:?}, a reply could start a loop");
    WorkerStats::note_dropped(cause, 1, &stats.datagrams_dropped);
}

impl UdpEndpoint {
    fn local_addr(&self) -> String {
        self.socket
            .local_addr()
            .map_or_else(|_| "socket".into(), |addr| addr.to_string())
    }

    /// Queues a reply to go out with the rest of its batch; past the
    /// queue's bounds (the socket has been refusing replies for a while) it
    /// is dropped and counted instead.
    fn queue_reply(&mut self, peer: SocketAddr, reply: &[u8], stats: &WorkerStats) {
        let cause = if reply.len() > MAX_DATAGRAM_PAYLOAD {
            &stats.datagrams_too_large
        } else if self.replies.len() >= UDP_QUEUE_DATAGRAMS
            || self.replies.bytes() + reply.len() > UDP_QUEUE_BYTES
        {
            &stats.datagrams_queue_full
        } else {
            self.replies.push(peer, reply);
            return;
        };
        WorkerStats::note_dropped(cause, 1, &stats.datagrams_dropped);
    }

    /// Sends queued replies while the socket takes them.
    fn send_replies(&mut self, stats: &WorkerStats) {
        if !self.writable || self.replies.is_empty() {
            return;
        }
        let outcome = self.replies.send_to(&self.socket, |peer, error| {
            log::debug!("udp reply to {peer} failed: {error}");
        });
        WorkerStats::add(&stats.datagrams_out, outcome.sent as u64);
        WorkerStats::note_dropped(
            &stats.datagrams_send_failed,
            outcome.failed as u64,
            &stats.datagrams_dropped,
        );
        if outcome.would_block {
            self.writable = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// An endpoint whose socket counts as not writable, so that every reply
    /// waits in the queue: what a socket that refuses replies for a while
    /// looks like to the loop.
    fn blocked_endpoint() -> UdpEndpoint {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
        UdpEndpoint {
            socket: UdpSocket::from_std(socket),
            replies: SendQueue::new(),
            writable: false,
        }
    }

    fn queue_full(stats: &WorkerStats) -> u64 {
        stats.datagrams_queue_full.load(Ordering::Relaxed)
    }

    #[test]
    fn the_reply_queue_holds_1024_replies_then_drops_and_counts() {
        let mut endpoint = blocked_endpoint();
        let stats = WorkerStats::default();
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..UDP_QUEUE_DATAGRAMS + 10 {
            endpoint.queue_reply(peer, b"REPLY", &stats);
            endpoint.send_replies(&stats);
        }
        assert_eq!(endpoint.replies.len(), UDP_QUEUE_DATAGRAMS);
        assert_eq!(queue_full(&stats), 10);
        assert_eq!(stats.datagrams_dropped.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn the_reply_queue_holds_4_mib_then_drops_and_counts() {
        let mut endpoint = blocked_endpoint();
        let stats = WorkerStats::default();
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let reply = vec![b'X'; 60_000];
        let fit = UDP_QUEUE_BYTES / reply.len();
        for _ in 0..fit + 3 {
            endpoint.queue_reply(peer, &reply, &stats);
        }
        assert_eq!(endpoint.replies.len(), fit);
        assert!(endpoint.replies.bytes() <= UDP_QUEUE_BYTES);
        assert_eq!(queue_full(&stats), 3);
        // A small reply still fits in what is left.
        endpoint.queue_reply(peer, b"small", &stats);
        assert_eq!(endpoint.replies.len(), fit + 1);
    }
}
