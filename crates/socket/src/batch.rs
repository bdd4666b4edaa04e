//! Batched datagram I/O: many datagrams per system call.
//!
//! A UDP server answering many clients pays two system calls per datagram
//! with `recv_from` and `send_to`, and on loopback or a fast network those
//! calls, not the work, are most of its time. On Linux, [`RecvBatch`] takes
//! every waiting datagram (up to its slots) with one `recvmmsg`, and
//! [`SendQueue`] sends queued replies, to any mix of peers, with one
//! `sendmmsg`. On other Unix systems the same types make one call per datagram, so
//! callers have one code path.
//!
//! Both work on any non-blocking datagram socket (`std`, `mio`, `socket2`)
//! through its descriptor; neither owns the socket.

use socket2::SockAddr;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::AsFd;

/// Bytes one [`RecvBatch`] slot holds: a buffer size, not a protocol limit.
/// The largest UDP payload (65,507 bytes over IPv4, 65,527 over IPv6) fits,
/// so no datagram is ever cut short; shout's own limit on a request is
/// `shout_protocol::MAX_DATAGRAM_PAYLOAD`.
pub const RECEIVE_SLOT_BYTES: usize = 65_536;

/// Most slots a [`RecvBatch`] has, and most datagrams one `sendmmsg` takes:
/// past about this many, the system call's own cost is already shared so
/// thinly that more slots only add memory.
pub const MAX_BATCH: usize = 32;

/// Datagrams received together, each with its sender.
///
/// The slots are allocated zeroed and untouched, so the kernel maps their
/// memory only as datagrams fill it: small datagrams cost a page per slot
/// used, not [`RECEIVE_SLOT_BYTES`].
pub struct RecvBatch {
    /// `slots` buffers of [`RECEIVE_SLOT_BYTES`] bytes, end to end.
    buffer: Box<[u8]>,
    /// The datagrams of the last receive, in order.
    received: Vec<Received>,
    /// An error that ended a receive after it had got datagrams: reported
    /// by the next receive, so that it is neither lost nor mistaken for the
    /// end of those datagrams.
    deferred: Option<io::Error>,
}

/// Where one received datagram is, and who sent it.
#[derive(Debug, Clone, Copy)]
struct Received {
    slot: usize,
    len: usize,
    peer: SocketAddr,
}

impl RecvBatch {
    /// A batch of `slots` datagrams (1 to [`MAX_BATCH`]; values outside are
    /// brought into that range).
    pub fn new(slots: usize) -> Self {
        let slots = slots.clamp(1, MAX_BATCH);
        Self {
            buffer: vec![0; slots * RECEIVE_SLOT_BYTES].into_boxed_slice(),
            received: Vec::with_capacity(slots),
            deferred: None,
        }
    }

    /// How many datagrams one receive can take.
    pub fn slots(&self) -> usize {
        self.buffer.len() / RECEIVE_SLOT_BYTES
    }

    /// Receives the datagrams waiting on `socket`, as many as there are slots,
    /// with one system call on Linux. Returns how many; `WouldBlock` when
    /// none was waiting (the socket must be non-blocking). The previous
    /// batch's datagrams are gone once this is called.
    ///
    /// Fewer than [`slots`](Self::slots) means the socket had no more
    /// waiting at that moment, or an error stopped the receive early: the
    /// next call then returns that error, before receiving anything.
    ///
    /// An error other than `WouldBlock` or `Interrupted` may concern one
    /// earlier datagram (an ICMP report for a reply, say) rather than the
    /// socket: receiving again is the usual answer.
    pub fn recv_from(&mut self, socket: &impl AsFd) -> io::Result<usize> {
        self.received.clear();
        if let Some(error) = self.deferred.take() {
            return Err(error);
        }
        self.deferred = sys::recv_many(socket, &mut self.buffer, &mut self.received)?;
        Ok(self.received.len())
    }

    /// The datagrams of the last receive, each with its sender.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], SocketAddr)> + '_ {
        self.received.iter().map(|received| {
            let start = received.slot * RECEIVE_SLOT_BYTES;
            (&self.buffer[start..start + received.len], received.peer)
        })
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("slots", &self.slots())
            .field("received", &self.received)
            .field("deferred", &self.deferred)
            .finish()
    }
}

/// A queue of datagrams waiting to be sent, each to its own peer, in order.
///
/// [`push`](Self::push) adds to the back; [`SendQueue::send_to`] sends from
/// the front, up to [`MAX_BATCH`] per system call on Linux, until the
/// socket would block; what it did not send stays queued, in order, for the
/// next call.
#[derive(Default)]
pub struct SendQueue {
    /// The payloads, end to end.
    bytes: Vec<u8>,
    /// Each datagram: its payload in `bytes` and its destination.
    datagrams: Vec<Outgoing>,
    /// Datagrams at the front already sent; dropped when the rest are.
    sent: usize,
}

impl std::fmt::Debug for SendQueue {
    /// Counts, not payloads: a queue can hold megabytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendQueue")
            .field("datagrams", &self.len())
            .field("bytes", &self.bytes())
            .finish()
    }
}

/// One queued datagram: where its payload is, and where it goes, also in
/// the form the system call takes (converted once, when queued).
#[derive(Debug, Clone)]
struct Outgoing {
    payload: Range<usize>,
    peer: SocketAddr,
    name: SockAddr,
}

/// What one [`SendQueue::send_to`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams the socket took.
    pub sent: usize,
    /// Datagrams refused with an error for that datagram alone (an
    /// unreachable or invalid destination, say); they were dropped.
    pub failed: usize,
    /// Whether the socket would not take more: the rest stay queued until
    /// it is writable again.
    pub would_block: bool,
}

impl SendQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a datagram for `peer`.
    pub fn push(&mut self, peer: SocketAddr, payload: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.datagrams.push(Outgoing {
            payload: start..self.bytes.len(),
            peer,
            name: SockAddr::from(peer),
        });
    }

    /// Datagrams queued and not yet sent.
    pub fn len(&self) -> usize {
        self.datagrams.len() - self.sent
    }

    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Payload bytes queued and not yet sent.
    pub fn bytes(&self) -> usize {
        self.datagrams
            .get(self.sent)
            .map_or(0, |datagram| self.bytes.len() - datagram.payload.start)
    }

    /// Sends queued datagrams until none is left or the socket would block.
    /// A datagram refused with any other error is dropped and counted, and
    /// sending goes on with the next: one bad destination must not hold up
    /// everyone else's replies. `failed` is told each such error.
    ///
    /// Made for unconnected sockets without `IP_RECVERR`, where an error
    /// from a send is that datagram's own. On a connected socket, or one
    /// that queues ICMP errors, a send can report an earlier error that
    /// belongs to another datagram, and the one being sent is dropped for it.
    pub fn send_to(
        &mut self,
        socket: &impl AsFd,
        mut failed: impl FnMut(SocketAddr, &io::Error),
    ) -> SendOutcome {
        let mut outcome = SendOutcome::default();
        while self.sent < self.datagrams.len() {
            let pending = &self.datagrams[self.sent..];
            match sys::send_many(socket, &self.bytes, pending) {
                Ok(sent) => {
                    self.sent += sent;
                    outcome.sent += sent;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    outcome.would_block = true;
                    break;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // The error is the first pending datagram's own.
                    failed(pending[0].peer, &error);
                    self.sent += 1;
                    outcome.failed += 1;
                }
            }
        }
        self.forget_sent();
        outcome
    }

    /// Drops every queued datagram; returns how many were not sent.
    pub fn clear(&mut self) -> usize {
        let unsent = self.len();
        self.sent = self.datagrams.len();
        self.forget_sent();
        unsent
    }

    /// Frees what was sent: all of it once the queue is empty (memory held
    /// beyond a few large datagrams is given back), else the sent front once
    /// it is half the queue, by count or by bytes, so a queue that never
    /// empties holds at most about twice what it has not sent.
    fn forget_sent(&mut self) {
        /// Payload capacity kept for reuse by an empty queue.
        const KEPT_CAPACITY: usize = 4 * RECEIVE_SLOT_BYTES;
        if self.sent == self.datagrams.len() {
            self.bytes.clear();
            self.datagrams.clear();
            self.sent = 0;
            self.bytes.shrink_to(KEPT_CAPACITY);
            self.datagrams.shrink_to(MAX_BATCH);
        } else if self.sent > 0
            && (2 * self.sent >= self.datagrams.len()
                || 2 * self.datagrams[self.sent].payload.start >= self.bytes.len())
        {
            let offset = self.datagrams[self.sent].payload.start;
            self.bytes.drain(..offset);
            self.datagrams.drain(..self.sent);
            for datagram in &mut self.datagrams {
                let range = &mut datagram.payload;
                *range = range.start - offset..range.end - offset;
            }
            self.sent = 0;
        }
    }
}

/// Receives one datagram into `slot`: its length and sender, or `None`
/// for a sender that is not an IP address (which an IP socket never has).
fn recv_one(socket: &impl AsFd, slot: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
    // SAFETY: the cast only forgets that the bytes are initialised, and
    // `recv_from` writes nothing but initialised bytes into them.
    let uninit = unsafe { &mut *(slot as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
    let (len, peer) = socket2::SockRef::from(socket).recv_from(uninit)?;
    Ok(peer.as_socket().map(|peer| (len, peer)))
}

#[cfg(target_os = "linux")]
use mmsg as sys;
#[cfg(not(target_os = "linux"))]
use one_by_one as sys;

#[cfg(target_os = "linux")]
mod mmsg {
    //! `recvmmsg` and `sendmmsg`.
    //!
    //! The C structures are built on the stack for each call, only as many
    //! as the call uses: zeroing all [`MAX_BATCH`] of them would cost more
    //! than a lone datagram saves.

    use super::{MAX_BATCH, Outgoing, RECEIVE_SLOT_BYTES, Received};
    use std::io;
    use std::mem::{self, MaybeUninit};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::{AsFd, AsRawFd};

    /// Receives into `received`; an error after some datagrams were
    /// received is returned inside `Ok`, for the next call to report.
    pub(super) fn recv_many(
        socket: &impl AsFd,
        buffer: &mut [u8],
        received: &mut Vec<Received>,
    ) -> io::Result<Option<io::Error>> {
        // The first datagram alone: `recvfrom` costs less than `recvmmsg`'s
        // per-message header copying, and at moderate rates most batches
        // hold one datagram. Only when one was there is the rest asked for.
        let Some((first, rest)) = buffer.split_at_mut_checked(RECEIVE_SLOT_BYTES) else {
            return Ok(None);
        };
        if let Some((len, peer)) = super::recv_one(socket, first)? {
            received.push(Received { slot: 0, len, peer });
        }
        match recv_mmsg(socket, rest, 1, received) {
            Ok(()) => Ok(None),
            Err(error) if received.is_empty() => Err(error),
            // That was all.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(error) => Ok(Some(error)),
        }
    }

    /// Receives into the slots of `buffer`, numbering them from `first_slot`.
    fn recv_mmsg(
        socket: &impl AsFd,
        buffer: &mut [u8],
        first_slot: usize,
        received: &mut Vec<Received>,
    ) -> io::Result<()> {
        let mut names = [MaybeUninit::<libc::sockaddr_storage>::uninit(); MAX_BATCH];
        let mut iovecs = [MaybeUninit::<libc::iovec>::uninit(); MAX_BATCH];
        let mut headers = [MaybeUninit::<libc::mmsghdr>::uninit(); MAX_BATCH];
        let mut slots = 0;
        for (slot, chunk) in buffer
            .chunks_exact_mut(RECEIVE_SLOT_BYTES)
            .take(MAX_BATCH - first_slot)
            .enumerate()
        {
            // SAFETY (both zeroed): plain C structures, for which all zeros
            // is a valid value (null pointers, zero lengths); the fields
            // that matter are set here.
            let name = names[slot].write(unsafe { mem::zeroed() });
            let iovec = iovecs[slot].write(libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            });
            let header = &mut headers[slot].write(unsafe { mem::zeroed() }).msg_hdr;
            header.msg_name = (name as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = iovec;
            header.msg_iovlen = 1;
            slots = slot + 1;
        }
        if slots == 0 {
            return Ok(());
        }
        // SAFETY: `headers[..slots]` are initialised above; each points at
        // its own name storage and at one iovec covering a distinct slot of
        // `buffer`, all of which outlive the call. The kernel writes at most
        // `msg_namelen` bytes of name and `iov_len` bytes of data, and
        // returns how many headers it filled in.
        let count = unsafe {
            libc::recvmmsg(
                socket.as_fd().as_raw_fd(),
                headers.as_mut_ptr().cast(),
                slots as libc::c_uint,
                // Never wait for more, even on a blocking socket.
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if count < 0 {
            return Err(io::Error::last_os_error());
        }
        for slot in 0..(count as usize).min(slots) {
            // SAFETY: `slot < slots`: initialised above.
            let (header, name) = unsafe {
                (
                    headers[slot].assume_init_ref(),
                    names[slot].assume_init_ref(),
                )
            };
            // Only IPv4 and IPv6 senders can reach an IP socket; anything
            // else is skipped rather than trusted.
            if let Some(peer) = socket_addr(name, header.msg_hdr.msg_namelen) {
                let len = (header.msg_len as usize).min(RECEIVE_SLOT_BYTES);
                received.push(Received {
                    slot: first_slot + slot,
                    len,
                    peer,
                });
            }
        }
        Ok(())
    }

    pub(super) fn send_many(
        socket: &impl AsFd,
        bytes: &[u8],
        datagrams: &[Outgoing],
    ) -> io::Result<usize> {
        if datagrams.len() == 1 {
            // One datagram: `sendto` skips the message-header copying that
            // `sendmmsg` does for each message, and costs less.
            return super::one_by_one::send_many(socket, bytes, datagrams);
        }
        let count = datagrams.len().min(MAX_BATCH);
        let mut iovecs = [MaybeUninit::<libc::iovec>::uninit(); MAX_BATCH];
        let mut headers = [MaybeUninit::<libc::mmsghdr>::uninit(); MAX_BATCH];
        for (index, datagram) in datagrams[..count].iter().enumerate() {
            let payload = &bytes[datagram.payload.clone()];
            let iovec = iovecs[index].write(libc::iovec {
                // The kernel only reads through it (sendmmsg).
                iov_base: payload.as_ptr().cast_mut().cast(),
                iov_len: payload.len(),
            });
            // SAFETY: a plain C structure; all zeros is valid, and the
            // fields that matter are set here.
            let header = &mut headers[index].write(unsafe { mem::zeroed() }).msg_hdr;
            header.msg_name = datagram.name.as_ptr().cast_mut().cast();
            header.msg_namelen = datagram.name.len();
            header.msg_iov = iovec;
            header.msg_iovlen = 1;
        }
        // SAFETY: `headers[..count]` are initialised above and point at
        // names and payloads that outlive the call; sendmmsg reads them and
        // writes only each header's `msg_len`.
        let sent = unsafe {
            libc::sendmmsg(
                socket.as_fd().as_raw_fd(),
                headers.as_mut_ptr().cast(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }

    /// The IPv4 or IPv6 address the kernel wrote, if it is one.
    fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        match libc::c_int::from(storage.ss_family) {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a `sockaddr_in`;
                // `sockaddr_storage` is larger and at least as aligned.
                let addr = unsafe { &*(&raw const *storage).cast::<libc::sockaddr_in>() };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
                    u16::from_be(addr.sin_port),
                )))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for `sockaddr_in6`.
                let addr = unsafe { &*(&raw const *storage).cast::<libc::sockaddr_in6>() };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(addr.sin6_addr.s6_addr),
                    u16::from_be(addr.sin6_port),
                    addr.sin6_flowinfo,
                    addr.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

// Compiled everywhere: Linux sends a lone datagram with it, and its tests
// run there too.
#[cfg_attr(target_os = "linux", allow(dead_code))]
mod one_by_one {
    //! One `recv_from` or `send_to` per datagram: the path of systems this
    //! crate does not batch on (only Linux is), and of lone datagrams.

    use super::{MAX_BATCH, Outgoing, RECEIVE_SLOT_BYTES, Received};
    use socket2::SockRef;
    use std::io;
    use std::os::fd::AsFd;

    /// As the Linux `recv_many`: an error after some datagrams is returned
    /// inside `Ok`.
    pub(super) fn recv_many(
        socket: &impl AsFd,
        buffer: &mut [u8],
        received: &mut Vec<Received>,
    ) -> io::Result<Option<io::Error>> {
        for (slot, chunk) in buffer
            .chunks_exact_mut(RECEIVE_SLOT_BYTES)
            .take(MAX_BATCH)
            .enumerate()
        {
            match super::recv_one(socket, chunk) {
                Ok(Some((len, peer))) => received.push(Received { slot, len, peer }),
                Ok(None) => continue,
                Err(error) if received.is_empty() => return Err(error),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                // Stop at the first error; the next call reports it.
                Err(error) => return Ok(Some(error)),
            }
        }
        Ok(None)
    }

    pub(super) fn send_many(
        socket: &impl AsFd,
        bytes: &[u8],
        datagrams: &[Outgoing],
    ) -> io::Result<usize> {
        let socket = SockRef::from(socket);
        let mut sent = 0;
        for datagram in datagrams.iter().take(MAX_BATCH) {
            match socket.send_to(&bytes[datagram.payload.clone()], &datagram.name) {
                Ok(_) => sent += 1,
                Err(error) if sent == 0 => return Err(error),
                Err(_) => break,
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_that_never_empties_gives_back_what_was_sent() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut queue = SendQueue::new();
        for index in 0..4u8 {
            queue.push(peer, &[index; 10]);
        }
        // As if one send took the first three and then the socket blocked.
        queue.sent = 3;
        queue.forget_sent();
        assert_eq!(queue.sent, 0);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.bytes(), 10);
        assert_eq!(queue.bytes.len(), 10);
        let payload = queue.datagrams[0].payload.clone();
        assert_eq!(&queue.bytes[payload], &[3; 10]);
        // Less than half sent: kept as it is until more goes.
        queue.push(peer, &[4; 10]);
        queue.push(peer, &[5; 10]);
        queue.sent = 1;
        queue.forget_sent();
        assert_eq!((queue.sent, queue.len(), queue.bytes()), (1, 2, 20));
    }

    #[test]
    fn large_sent_replies_are_given_back_though_fewer_than_half() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut queue = SendQueue::new();
        for _ in 0..3 {
            queue.push(peer, &[7; 1000]);
        }
        for _ in 0..4 {
            queue.push(peer, b"x");
        }
        // Three of seven sent: under half by count, nearly all by bytes.
        queue.sent = 3;
        queue.forget_sent();
        assert_eq!((queue.sent, queue.len(), queue.bytes()), (0, 4, 4));
        assert_eq!(queue.bytes.len(), 4);
    }

    /// The portable path, which Linux builds do not use, on real sockets.
    #[test]
    fn one_call_per_datagram_where_there_is_no_recvmmsg() {
        use std::net::UdpSocket;
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        for payload in [&b"one"[..], b"two"] {
            client
                .send_to(payload, server.local_addr().unwrap())
                .unwrap();
        }
        let mut buffer = vec![0; 4 * RECEIVE_SLOT_BYTES];
        let mut received = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while received.len() < 2 && std::time::Instant::now() < deadline {
            match one_by_one::recv_many(&server, &mut buffer, &mut received) {
                Ok(None) => {}
                Ok(Some(error)) => panic!("{error}"),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("{error}"),
            }
        }
        assert_eq!(received.len(), 2);
        for (received, expected) in received.iter().zip([&b"one"[..], b"two"]) {
            let start = received.slot * RECEIVE_SLOT_BYTES;
            assert_eq!(&buffer[start..start + received.len], expected);
            assert_eq!(received.peer, client.local_addr().unwrap());
        }
        let mut queue = SendQueue::new();
        queue.push(client.local_addr().unwrap(), b"ONE");
        queue.push(client.local_addr().unwrap(), b"TWO");
        let sent = one_by_one::send_many(&server, &queue.bytes, &queue.datagrams).unwrap();
        assert_eq!(sent, 2);
        let mut reply = [0; 8];
        for expected in [&b"ONE"[..], b"TWO"] {
            let (len, _) = client.recv_from(&mut reply).unwrap();
            assert_eq!(&reply[..len], expected);
        }
    }
}
