//! A chat room on the event loop: every line a member sends reaches every
//! other member, as `PEER_ADDR: LINE`.
//!
//! ```text
//! cargo run -p shout-server --example chat -- 127.0.0.1:7000
//! nc 127.0.0.1 7000     # in two terminals, and type
//! ```
//!
//! It shows a greeting from `open`, writes to other connections through the
//! [`ConnectionSender`](shout_server::ConnectionSender), and `closed`
//! telling the room who left. A member that never reads cannot stall the
//! room or grow the server's memory: once its output holds the server's
//! `max_pending_output`, the lines it would get are dropped for it alone
//! (counted, and reported on standard error when someone leaves).

use shout_server::{
    CloseCause, ConnectionContext, ConnectionInfo, ConnectionSender, ServerBuilder, StreamService,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest line passed on whole; a longer one is passed on in pieces.
const MAX_LINE: usize = 4096;

/// The room. Clones share one count.
#[derive(Default, Clone)]
pub(crate) struct Chat {
    /// Lines not delivered to a member whose output was full.
    pub(crate) dropped: Arc<AtomicU64>,
}

impl Chat {
    /// Sends `line` to everyone but `conn`'s own connection.
    fn tell_others(&self, conn: &ConnectionContext<'_>, line: &[u8]) {
        let outcome = conn.sender().broadcast_except(line, Some(conn.id()));
        self.dropped
            .fetch_add(outcome.skipped_full as u64, Ordering::Relaxed);
    }
}

/// A member: its unfinished line, and the sender that tells the room when
/// it leaves (`closed` gets no context: the session keeps what it needs).
pub(crate) struct Member {
    held: Vec<u8>,
    room: ConnectionSender,
}

impl StreamService for Chat {
    type Session = Member;

    fn open(&self, conn: &mut ConnectionContext<'_>) -> Member {
        conn.write(format!("welcome, {}\n", conn.peer()).as_bytes());
        Member {
            held: Vec::new(),
            room: conn.sender(),
        }
    }

    fn data(&self, member: &mut Member, input: &[u8], conn: &mut ConnectionContext<'_>) {
        member.held.extend_from_slice(input);
        while let Some(end) = member.held.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = member.held.drain(..=end).collect();
            self.tell_others(conn, &said(conn.peer(), &line));
        }
        if member.held.len() > MAX_LINE {
            let mut piece = std::mem::take(&mut member.held);
            piece.push(b'\n');
            self.tell_others(conn, &said(conn.peer(), &piece));
        }
    }

    fn closed(&self, member: Member, info: &ConnectionInfo, _: CloseCause) {
        let line = format!("{} left\n", info.peer());
        let outcome = member.room.broadcast(line.as_bytes());
        let dropped = self
            .dropped
            .fetch_add(outcome.skipped_full as u64, Ordering::Relaxed);
        eprintln!(
            "chat: {} left; {} lines dropped so far for members that did not read",
            info.peer(),
            dropped + outcome.skipped_full as u64
        );
    }
}

/// Returns `PEER: LINE` (`line` ends with its newline).
fn said(peer: SocketAddr, line: &[u8]) -> Vec<u8> {
    let mut said = format!("{peer}: ").into_bytes();
    said.extend_from_slice(line);
    said
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let server = ServerBuilder::tcp_only(Chat::default()).tcp(addr).build()?;
    for addr in server.handle().tcp_addrs() {
        println!("listening tcp {addr}");
    }
    server.run()?;
    Ok(())
}
