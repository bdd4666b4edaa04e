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
    /// Bytes produced but not yet accepted by the socket, from `sent` on.
    output: Vec<u8>,
    sent: usize,
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
            output: Vec::new(),
            sent: 0,
            readable: false,
            writable: false,
            peer_hung_up: false,
            input_ended: false,
            phase: Phase::Serving,
        }
    }

    /// Bytes waiting to be sent.
    pub(crate) fn pending_output(&self) -> usize {
        self.output.len() - self.sent
    }

    /// Sends `bytes` after whatever is pending: directly if nothing is
    /// pending and the socket takes them, buffering the rest. Returns the
    /// number of bytes the socket took.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.pending_output() > 0 {
            self.output.extend_from_slice(bytes);
            return self.flush();
        }
        let written = write_until_blocked(&mut self.stream, &mut self.writable, bytes)?;
        if written < bytes.len() {
            self.output.clear();
            self.sent = 0;
            self.output.extend_from_slice(&bytes[written..]);
        }
        Ok(written)
    }

    /// Writes pending output while the socket takes it. Returns the number of
    /// bytes written; frees the buffer when it empties.
    pub(crate) fn flush(&mut self) -> io::Result<usize> {
        if self.pending_output() == 0 {
            return Ok(0);
        }
        let written = write_until_blocked(
            &mut self.stream,
            &mut self.writable,
            &self.output[self.sent..],
        )?;
        self.sent += written;
        if self.sent == self.output.len() {
            // Give the memory back: an idle connection holds no buffer.
            self.output = Vec::new();
            self.sent = 0;
        }
        Ok(written)
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
