//! One TCP connection's state between events.
//!
//! Idle, a connection is its socket, its service session, a few flags and an
//! empty `Vec` (no heap). Output is buffered here only when the socket would
//! not take all of it; the buffer is freed as soon as it drains, so memory is
//! spent on connections with pending data, not on connections that exist.

use mio::net::TcpStream;
use std::io::{self, Write};
use std::net::SocketAddr;

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

pub(crate) struct Connection<Session> {
    pub(crate) stream: TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) session: Session,
    /// Bytes produced but not yet accepted by the socket.
    output: PendingOutput,
    /// Last known readiness. Edge-triggered events say when these become
    /// true; a `WouldBlock` (or a short read or write) says when they end.
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The kernel said the peer closed its side: read until 0 even after a
    /// short read, or the end of stream could be missed.
    pub(crate) peer_hung_up: bool,
    /// The client sent its end of stream.
    pub(crate) input_ended: bool,
    pub(crate) phase: Phase,
}

impl<Session> Connection<Session> {
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr, session: Session) -> Self {
        Self {
            stream,
            peer,
            session,
            output: PendingOutput::default(),
            readable: false,
            writable: false,
            peer_hung_up: false,
            input_ended: false,
            phase: Phase::Serving,
        }
    }

    /// Bytes waiting to be sent.
    pub(crate) fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// Sends `bytes` after whatever is pending: directly if nothing is
    /// pending and the socket takes them, buffering the rest. Returns the
    /// number of bytes the socket took.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if !self.output.is_empty() {
            self.output.push(bytes);
            return self.flush();
        }
        let written = write_until_blocked(&mut self.stream, &mut self.writable, bytes)?;
        self.output.push(&bytes[written..]);
        Ok(written)
    }

    /// Writes pending output while the socket takes it. Returns the number of
    /// bytes written.
    pub(crate) fn flush(&mut self) -> io::Result<usize> {
        if self.output.is_empty() {
            return Ok(0);
        }
        let written =
            write_until_blocked(&mut self.stream, &mut self.writable, self.output.as_slice())?;
        self.output.consume(written);
        Ok(written)
    }
}

/// Bytes produced but not yet sent, in order, in memory proportional to
/// what is pending: sent bytes are given back, and an empty buffer holds no
/// heap at all (an idle connection costs no buffer).
#[derive(Debug, Default)]
struct PendingOutput {
    bytes: Vec<u8>,
    /// How many bytes at the front of `bytes` were sent already.
    sent: usize,
}

impl PendingOutput {
    fn len(&self) -> usize {
        self.bytes.len() - self.sent
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }

    /// Appends `more`. Sent bytes are dropped from the front once they are
    /// at least half the buffer: without that, a client that always leaves
    /// a little unread would make the buffer grow by everything ever sent to
    /// it. Halving keeps the copying amortised O(1) per byte and the buffer
    /// under twice what is pending.
    fn push(&mut self, more: &[u8]) {
        if self.sent > 0 && self.sent >= self.bytes.len() / 2 {
            self.bytes.drain(..self.sent);
            self.sent = 0;
        }
        self.bytes.extend_from_slice(more);
    }

    /// Marks `sent` bytes from the front as sent; frees the heap when the
    /// buffer empties.
    fn consume(&mut self, sent: usize) {
        self.sent += sent;
        if self.sent >= self.bytes.len() {
            *self = Self::default();
        }
    }
}

/// Writes as much of `bytes` as the socket takes, tracking writability.
fn write_until_blocked(
    stream: &mut TcpStream,
    writable: &mut bool,
    bytes: &[u8],
) -> io::Result<usize> {
    let mut written = 0;
    while *writable && written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                written += n;
                // A short write means the send buffer is full: the kernel
                // will signal when it has room, so skip the write that would
                // only say WouldBlock.
                if written < bytes.len() {
                    *writable = false;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => *writable = false,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::PendingOutput;

    #[test]
    fn output_that_never_drains_stays_proportional_to_what_is_pending() {
        let mut output = PendingOutput::default();
        let chunk = vec![7u8; 64 * 1024];
        // A client that reads a little less than it is sent, forever: the
        // pending amount stays near 128 KiB while 64 MiB pass through.
        output.push(&chunk);
        for _ in 0..1024 {
            output.push(&chunk);
            output.consume(chunk.len() - 1);
            assert!(output.len() <= 128 * 1024 + 1024);
            assert!(
                output.bytes.capacity() <= 4 * (output.len() + chunk.len()),
                "capacity {}",
                output.bytes.capacity()
            );
        }
        assert!(output.as_slice().iter().all(|&byte| byte == 7));
    }

    #[test]
    fn bytes_come_out_in_order_and_an_empty_buffer_holds_no_heap() {
        let mut output = PendingOutput::default();
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
