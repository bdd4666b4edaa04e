//! Sending UDP datagrams from outside the datagram callback: later than
//! the request, more than once, or with no request at all, from any
//! thread or a connection's timer.
//!
//! A [`DatagramSender`] puts the datagram in the mailbox of the worker
//! that receives the peer's datagrams, and wakes it. That worker sends it
//! from its own socket, behind the replies it has queued already, through
//! the same per-source rate limit and loop guard as replies, and counts
//! it. Each mailbox is bounded; a send that would pass the bound is
//! refused at once ([`DatagramSendError::Full`]), never blocked.
//!
//! This module is not the loop's side; that is `worker/datagrams.rs`.
//! The one-reply-per-request path ([`DatagramService::datagram`]) does not
//! come here: it stays the fast path.
//!
//! [`DatagramService::datagram`]: crate::DatagramService::datagram

use crate::wake::Wakers;
use shout_protocol::MAX_DATAGRAM_PAYLOAD;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Datagrams one worker's mailbox holds before its next turn takes them...
pub(crate) const MAILBOX_DATAGRAMS: usize = 1024;
/// ...and their bytes: a send past either bound is refused `Full`.
pub(crate) const MAILBOX_BYTES: usize = 4 * 1024 * 1024;

/// Why [`DatagramSender::send_to`] queued nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramSendError {
    /// The worker's mailbox holds 1,024 datagrams or 4 MiB not yet taken:
    /// the loop is behind. Nothing was queued; try later, or drop it.
    #[error("the datagram queue is full")]
    Full,
    /// The datagram is over 65,507 bytes, the most UDP carries.
    #[error("a datagram of more than 65,507 bytes")]
    TooLarge,
    /// The server has no UDP socket of that index (none at all for a
    /// server without UDP addresses).
    #[error("no such UDP socket")]
    NoSocket,
    /// The server is stopping or stopped: the worker that would send it
    /// closed its UDP sockets, as each does when the stop begins. What was
    /// queued before is still sent.
    #[error("the server is stopping")]
    Stopped,
}

/// Sends datagrams from the server's UDP sockets, from any thread;
/// cloneable, cheap (one `Arc`).
///
/// `Ok` means queued: the worker sends it on its next turn, unless the
/// peer's reply rate (`udp_rate_per_source`) is spent or its port could
/// start a loop, as for replies. Those are dropped and counted, not told.
#[derive(Clone)]
pub struct DatagramSender {
    pub(crate) post: Arc<DatagramPost>,
}

impl fmt::Debug for DatagramSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramSender")
            .field("sockets", &self.post.sockets)
            .finish_non_exhaustive()
    }
}

impl DatagramSender {
    pub(crate) fn new(post: Arc<DatagramPost>) -> Self {
        Self { post }
    }

    /// Queues `bytes` to `peer` from the server's first UDP address
    /// ([`Handle::udp_addrs`](crate::Handle::udp_addrs)`[0]`).
    ///
    /// # Errors
    /// See [`DatagramSendError`].
    pub fn send_to(&self, peer: SocketAddr, bytes: &[u8]) -> Result<(), DatagramSendError> {
        self.send_from(0, peer, bytes)
    }

    /// Queues `bytes` to `peer` from the server's UDP address `socket`, an
    /// index into [`Handle::udp_addrs`](crate::Handle::udp_addrs).
    ///
    /// # Errors
    /// See [`DatagramSendError`].
    pub fn send_from(
        &self,
        socket: usize,
        peer: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DatagramSendError> {
        if socket >= self.post.sockets {
            return Err(DatagramSendError::NoSocket);
        }
        if bytes.len() > MAX_DATAGRAM_PAYLOAD {
            return Err(DatagramSendError::TooLarge);
        }
        // The worker the kernel gives this peer's datagrams to (by source
        // port: see `UdpSocketBuilder::bind_group`), so that what is sent
        // here goes out in order with the replies to its requests.
        let worker = usize::from(peer.port()) % self.post.mailboxes.len();
        let mailbox = &self.post.mailboxes[worker];
        {
            let mut outbox = mailbox.outbox();
            if outbox.closed {
                return Err(DatagramSendError::Stopped);
            }
            if outbox.datagrams.len() >= MAILBOX_DATAGRAMS
                || outbox.bytes + bytes.len() > MAILBOX_BYTES
            {
                return Err(DatagramSendError::Full);
            }
            outbox.bytes += bytes.len();
            outbox.datagrams.push(Outgoing {
                socket,
                peer,
                bytes: bytes.into(),
            });
        }
        // Woken once per burst: the first datagram since the worker looked.
        if !mailbox.waiting.swap(true, Ordering::AcqRel) {
            self.post.wakers.wake(worker, "a datagram to send");
        }
        Ok(())
    }
}

/// One datagram a sender queued.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The index of the UDP address to send from.
    pub(crate) socket: usize,
    pub(crate) peer: SocketAddr,
    pub(crate) bytes: Box<[u8]>,
}

/// One datagram mailbox per worker, and how to wake each.
pub(crate) struct DatagramPost {
    pub(crate) mailboxes: Vec<DatagramMailbox>,
    wakers: Arc<Wakers>,
    /// The server's UDP addresses.
    sockets: usize,
}

impl DatagramPost {
    pub(crate) fn new(workers: usize, wakers: Arc<Wakers>, sockets: usize) -> Self {
        Self {
            mailboxes: (0..workers).map(|_| DatagramMailbox::default()).collect(),
            wakers,
            sockets,
        }
    }
}

/// The datagrams queued to one worker.
#[derive(Default)]
pub(crate) struct DatagramMailbox {
    outbox: Mutex<Outbox>,
    /// Whether the outbox may hold datagrams: the one atomic load a turn
    /// costs when none were sent.
    waiting: AtomicBool,
}

#[derive(Default)]
struct Outbox {
    datagrams: Vec<Outgoing>,
    bytes: usize,
    /// The worker closed its UDP sockets: sends are refused.
    closed: bool,
}

impl DatagramMailbox {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    pub(crate) fn has_datagrams(&self) -> bool {
        self.waiting.load(Ordering::Acquire)
    }

    /// Moves the queued datagrams into `into` (empty).
    pub(crate) fn take(&self, into: &mut Vec<Outgoing>) {
        self.waiting.store(false, Ordering::Release);
        let mut outbox = self.outbox();
        std::mem::swap(into, &mut outbox.datagrams);
        outbox.bytes = 0;
    }

    /// Refuses every later send: the worker's sockets are closing.
    pub(crate) fn close(&self) {
        self.outbox().closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(workers: usize, sockets: usize) -> (DatagramSender, Arc<DatagramPost>) {
        let wakers = Arc::new(Wakers::new(Vec::new()));
        let post = Arc::new(DatagramPost::new(workers, wakers, sockets));
        (DatagramSender::new(Arc::clone(&post)), post)
    }

    #[test]
    fn a_datagram_goes_to_the_worker_that_receives_its_peer() {
        let (sender, post) = sender(3, 1);
        let peer: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        sender.send_to(peer, b"hello").unwrap();
        let worker = 40001 % 3;
        assert!(post.mailboxes[worker].has_datagrams());
        let mut taken = Vec::new();
        post.mailboxes[worker].take(&mut taken);
        assert_eq!(taken.len(), 1);
        assert_eq!((taken[0].socket, taken[0].peer), (0, peer));
        assert_eq!(&*taken[0].bytes, b"hello");
        assert!(!post.mailboxes[worker].has_datagrams());
    }

    #[test]
    fn the_mailbox_is_bounded_in_datagrams_and_bytes() {
        let (sender, post) = sender(1, 2);
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        for _ in 0..MAILBOX_DATAGRAMS {
            sender.send_from(1, peer, b"x").unwrap();
        }
        assert_eq!(sender.send_to(peer, b"x"), Err(DatagramSendError::Full));
        let mut taken = Vec::new();
        post.mailboxes[0].take(&mut taken);
        let big = vec![0; MAX_DATAGRAM_PAYLOAD];
        let fit = MAILBOX_BYTES / big.len();
        for _ in 0..fit {
            sender.send_to(peer, &big).unwrap();
        }
        assert_eq!(sender.send_to(peer, &big), Err(DatagramSendError::Full));
        assert_eq!(
            sender.send_to(peer, &[0; MAX_DATAGRAM_PAYLOAD + 1]),
            Err(DatagramSendError::TooLarge)
        );
        assert_eq!(
            sender.send_from(2, peer, b"x"),
            Err(DatagramSendError::NoSocket)
        );
        post.mailboxes[0].close();
        assert_eq!(sender.send_to(peer, b"x"), Err(DatagramSendError::Stopped));
    }
}
