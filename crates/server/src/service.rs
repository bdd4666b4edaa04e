//! What the event loop runs: services that turn bytes in into bytes out.
//!
//! The loop owns sockets, buffers, limits and timers; a service owns only the
//! application's logic. A stream service sees each TCP connection as a
//! session fed chunks of bytes; a datagram service answers one datagram at a
//! time. Services never block and never see a socket.

use shout_protocol::{Uppercaser, uppercase_datagram};
use std::net::SocketAddr;

/// Serves TCP connections, one session per connection.
///
/// The loop calls [`open`](Self::open) when a connection is accepted,
/// [`data`](Self::data) for every chunk read (chunks are cut wherever the
/// network cut them), and [`end`](Self::end) once when the client shuts down
/// its side. Whatever a call appends to `output` is sent to the client in
/// order. Calls must return promptly: the loop serves every other client on
/// the same thread.
pub trait StreamService: Send + Sync + 'static {
    /// Per-connection state. Keep it small: an idle server holds one per
    /// connection, thousands at once. `Send` because a worker is built on
    /// one thread and runs on another; a session never changes thread.
    type Session: Send + 'static;

    /// A new connection from `peer`.
    fn open(&self, peer: SocketAddr) -> Self::Session;

    /// Bytes arrived on the connection.
    fn data(&self, session: &mut Self::Session, input: &[u8], output: &mut Vec<u8>);

    /// The client will send nothing more; a last answer may be appended.
    fn end(&self, session: &mut Self::Session, output: &mut Vec<u8>) {
        let _ = (session, output);
    }
}

/// What to do after a datagram was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramReply {
    /// Send the reply buffer to the sender.
    Send,
    /// Send nothing; the loop counts the datagram as unanswered.
    Drop,
}

/// Serves UDP: every datagram is handled on its own.
pub trait DatagramService: Send + Sync + 'static {
    /// Fills `reply` (given empty) for `request` from `peer`.
    fn datagram(&self, request: &[u8], peer: SocketAddr, reply: &mut Vec<u8>) -> DatagramReply;
}

/// The shout service: the upper case of whatever arrives, over TCP and UDP.
#[derive(Debug, Clone, Copy, Default)]
pub struct Uppercase;

impl StreamService for Uppercase {
    type Session = Uppercaser;

    fn open(&self, _peer: SocketAddr) -> Uppercaser {
        Uppercaser::new()
    }

    fn data(&self, session: &mut Uppercaser, input: &[u8], output: &mut Vec<u8>) {
        session.feed(input, output);
    }

    fn end(&self, session: &mut Uppercaser, output: &mut Vec<u8>) {
        session.finish(output);
    }
}

impl DatagramService for Uppercase {
    fn datagram(&self, request: &[u8], peer: SocketAddr, reply: &mut Vec<u8>) -> DatagramReply {
        match uppercase_datagram(request, reply) {
            Ok(()) => DatagramReply::Send,
            Err(error) => {
                log::debug!("udp {peer}: {error}");
                DatagramReply::Drop
            }
        }
    }
}
