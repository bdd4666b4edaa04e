//! One TCP connection's state between events.
//!
//! Idle, a connection is its socket, its service session, its readiness, a
//! few flags and an empty `Vec` (no heap). Output is buffered here only when the socket would
//! not take all of it; the buffer is freed as soon as it drains, so memory is
//! spent on connections with pending data, not on connections that exist.

use crate::sender::Share;
use crate::service::{CloseCause, ConnectionInfo};
use crate::tls::{PlaintextSource, TlsLayer};
use crate::worker::Slot;
use crate::worker::proxy::HeaderBuffer;
use mio::net::TcpStream;
use shout_socket::StreamReadiness;
use std::io;
use std::sync::Arc;

/// Where a connection is in its life. Transitions only go down this list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading requests and answering them.
    Serving,
    /// Nothing more will be answered: send what is pending, then close.
    Finishing,
    /// Our side is shut down after the last byte; we read and discard until
    /// the client closes, so that a close with unread input (which sends a
    /// reset) cannot destroy answers the client has not read yet.
    Lingering,
}

/// Where the sending side is: open, to be shut once the output is sent
/// (the service's half-close), or shut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteSide {
    Open,
    ShutWhenSent,
    Shut,
}

pub(crate) struct Connection<Session> {
    pub(crate) stream: TcpStream,
    pub(crate) info: ConnectionInfo,
    /// The service's session; `None` while a TLS handshake is going on
    /// (the service opens the connection once it knows the transport).
    pub(crate) session: Option<Session>,
    /// The TLS layer, on a connection from a TLS listener.
    pub(crate) tls: Option<Box<TlsLayer>>,
    /// The PROXY header read so far, until it is whole; the service opens
    /// (or the TLS handshake starts) after it.
    pub(crate) proxy: Option<Box<HeaderBuffer>>,
    /// What this connection's senders see; `published` is how many held
    /// bytes it counts, updated only when that changes (never on a read
    /// whose answer went straight to the socket).
    pub(crate) share: Arc<Share>,
    pub(crate) published: usize,
    /// The connection's place under the cap and in its source's share,
    /// given back when the connection is dropped.
    pub(crate) slot: Slot,
    /// The service was told the output is full and not yet that it drained.
    pub(crate) blocked: bool,
    /// Set when the service or a stop decided the connection's end; it is
    /// the cause reported, whatever happens after.
    pub(crate) close_cause: Option<CloseCause>,
    pub(crate) write_side: WriteSide,
    /// Bytes produced but not yet accepted by the socket.
    output: PendingOutput,
    /// Last known readiness, kept by the reads and writes that go through it.
    pub(crate) readiness: StreamReadiness,
    /// The client sent its end of stream.
    pub(crate) input_ended: bool,
    pub(crate) phase: Phase,
}

impl<Session> Connection<Session> {
    /// Returns a connection whose pending output grows its buffer to at
    /// most `output_capacity` bytes, unless one answer alone needs more.
    pub(crate) fn new(
        stream: TcpStream,
        info: ConnectionInfo,
        session: Option<Session>,
        tls: Option<Box<TlsLayer>>,
        share: Arc<Share>,
        slot: Slot,
        output_capacity: usize,
    ) -> Self {
        Self {
            stream,
            info,
            session,
            tls,
            proxy: None,
            share,
            published: 0,
            slot,
            blocked: false,
            close_cause: None,
            write_side: WriteSide::Open,
            output: PendingOutput::new(output_capacity),
            readiness: StreamReadiness::new(),
            input_ended: false,
            phase: Phase::Serving,
        }
    }

    /// Bytes waiting to be sent: over TLS, the plaintext rustls holds
    /// unsent counts too.
    pub(crate) fn pending_output(&self) -> usize {
        self.output.len() + self.tls.as_ref().map_or(0, |tls| tls.in_flight())
    }

    /// Returns whether anything, TLS records included, waits to be sent.
    pub(crate) fn has_unsent(&self) -> bool {
        !self.output.is_empty() || self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Queues the end of the TLS stream (close_notify) before the TCP one,
    /// on a TLS connection, and tries to send it. Returns whether anything
    /// is left to send.
    pub(crate) fn end_tls(&mut self) -> io::Result<bool> {
        if let Some(tls) = &mut self.tls {
            tls.close();
            self.flush()?;
        }
        Ok(self.has_unsent())
    }

    /// Sends `bytes` after whatever is pending: directly if nothing is
    /// pending and the socket takes them, buffering the rest. Returns the
    /// number of bytes the socket took.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if !self.output.is_empty() || self.tls.is_some() {
            self.output.push(bytes);
            return self.flush();
        }
        let written = self.readiness.write(&mut self.stream, bytes)?;
        // The usual answer goes out whole: no call to buffer nothing.
        if written < bytes.len() {
            self.output.push(&bytes[written..]);
        }
        Ok(written)
    }

    /// Appends `bytes` to the pending output without writing; the next
    /// flush sends them.
    pub(crate) fn push_output(&mut self, bytes: &[u8]) {
        self.output.push(bytes);
    }

    /// Makes the senders' count match the output held, if it changed.
    pub(crate) fn publish_pending(&mut self) {
        let pending = self.output.len();
        if pending != self.published {
            self.share.publish(self.published, pending);
            self.published = pending;
        }
    }

    /// Writes pending output while the socket takes it. Returns the number of
    /// bytes written.
    pub(crate) fn flush(&mut self) -> io::Result<usize> {
        if let Some(tls) = &mut self.tls {
            return tls.flush(&mut self.output, &mut self.readiness, &mut self.stream);
        }
        if self.output.is_empty() {
            return Ok(0);
        }
        let written = self
            .readiness
            .write(&mut self.stream, self.output.as_slice())?;
        self.output.consume(written);
        Ok(written)
    }
}

/// Bytes produced but not yet sent, in order, in memory proportional to
/// what is pending: sent bytes are given back, and an empty buffer holds no
/// heap at all (an idle connection costs no buffer).
///
/// The buffer's capacity stays within `capacity_limit` (the most that can
/// be pending: the cap on pending output plus one read's answer) unless a
/// single push needs more than that, and then within what is pending.
#[derive(Debug)]
struct PendingOutput {
    bytes: Vec<u8>,
    /// How many bytes at the front of `bytes` were sent already.
    sent: usize,
    capacity_limit: usize,
}

impl PendingOutput {
    fn new(capacity_limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            sent: 0,
            capacity_limit,
        }
    }

    fn len(&self) -> usize {
        self.bytes.len() - self.sent
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }

    /// Appends `more`. When it does not fit in the capacity, sent bytes are
    /// dropped from the front first, and the buffer grows only if what is
    /// pending needs it: doubling, for amortised O(1) copying per byte, but
    /// never past the limit. Without dropping the sent front, a client that
    /// always leaves a little unread would make the buffer grow by
    /// everything ever sent to it.
    fn push(&mut self, more: &[u8]) {
        if more.is_empty() {
            return;
        }
        if self.bytes.len() + more.len() > self.bytes.capacity() {
            if self.sent > 0 {
                self.bytes.drain(..self.sent);
                self.sent = 0;
            }
            let needed = self.bytes.len() + more.len();
            if needed > self.bytes.capacity() {
                let target = (2 * needed).min(self.capacity_limit).max(needed);
                self.bytes.reserve_exact(target - self.bytes.len());
            }
        }
        self.bytes.extend_from_slice(more);
    }

    /// Marks `sent` bytes from the front as sent; frees the heap when the
    /// buffer empties.
    fn consume(&mut self, sent: usize) {
        self.sent += sent;
        if self.sent >= self.bytes.len() {
            self.bytes = Vec::new();
            self.sent = 0;
        }
    }
}

impl PlaintextSource for PendingOutput {
    fn unsent(&self) -> &[u8] {
        self.as_slice()
    }

    fn consume(&mut self, n: usize) {
        PendingOutput::consume(self, n);
    }
}

#[cfg(test)]
mod tests {
    use super::PendingOutput;

    const KIB: usize = 1024;
    /// The default cap on pending output plus one read's largest answer.
    const LIMIT: usize = 256 * KIB + 3 * 64 * KIB;

    #[test]
    fn output_that_never_drains_stays_proportional_to_what_is_pending() {
        let mut output = PendingOutput::new(LIMIT);
        let chunk = vec![7u8; 64 * KIB];
        // A client that reads a little less than it is sent, forever: the
        // pending amount stays near 128 KiB while 64 MiB pass through.
        output.push(&chunk);
        for _ in 0..1024 {
            output.push(&chunk);
            output.consume(chunk.len() - 1);
            assert!(output.len() <= 128 * KIB + KIB);
            assert!(
                output.bytes.capacity() <= LIMIT,
                "{}",
                output.bytes.capacity()
            );
        }
        assert!(output.as_slice().iter().all(|&byte| byte == 7));
    }

    #[test]
    fn capacity_stays_within_the_cap_plus_one_answer() {
        // The loop's rule: a connection is read (and its answer pushed)
        // only while less than the cap is pending. Answers of 192 KiB (one
        // 64 KiB read, tripled) against a client that reads 100 KiB a turn.
        let cap = 256 * KIB;
        let answer = vec![b'A'; 3 * 64 * KIB];
        let mut output = PendingOutput::new(LIMIT);
        let mut most = 0;
        for turn in 0..2000 {
            if output.len() < cap {
                output.push(&answer);
            }
            output.consume(output.len().min(100 * KIB + turn % 7));
            most = most.max(output.bytes.capacity());
        }
        assert!(most <= LIMIT, "capacity reached {most}, above {LIMIT}");
    }

    #[test]
    fn a_push_larger_than_the_limit_still_fits_whole() {
        let mut output = PendingOutput::new(10);
        output.push(&[1; 25]);
        assert_eq!(output.len(), 25);
        assert!(output.bytes.capacity() <= 25 * 2);
    }

    #[test]
    fn bytes_come_out_in_order_and_an_empty_buffer_holds_no_heap() {
        let mut output = PendingOutput::new(LIMIT);
        output.push(b"hello ");
        output.consume(2);
        output.push(b"world");
        assert_eq!(output.as_slice(), b"llo world");
        output.consume(3);
        output.push(b"!");
        assert_eq!(output.as_slice(), b" world!");
        output.consume(7);
        assert_eq!(output.len(), 0);
        assert_eq!(output.bytes.capacity(), 0);
    }
}
