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
//! room or grow the server's memory: once its output is full, the lines it
//! would get are dropped for it alone (counted, and reported on standard
//! error when someone leaves). A member whose output stays full for
//! [`FULL_FOR`] is disconnected: `writable_changed(false)` tells the room
//! it is full, whether its output came from its own callbacks (the
//! welcome, `line too long, not sent`) or from the others' broadcasts,
//! and sets a timer that `writable_changed(true)` cancels. The others go
//! on meanwhile.

use shout_protocol::{Frame, LineFramer};
use shout_server::{
    CloseCause, ConnectionContext, ConnectionInfo, ConnectionSender, ServerBuilder, StreamService,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The longest line passed on; a longer one is not, and its sender is told.
pub(crate) const MAX_LINE: usize = 4096;

/// How long a member's output may stay full before it is disconnected:
/// long enough for a member that reads to catch up after a burst.
pub(crate) const FULL_FOR: Duration = Duration::from_secs(2);

/// The room. Clones share the counts.
#[derive(Default, Clone)]
pub(crate) struct Chat {
    /// Lines not delivered to a member whose output was full.
    pub(crate) dropped: Arc<AtomicU64>,
    /// Members disconnected because their output stayed full.
    pub(crate) disconnected: Arc<AtomicU64>,
}

impl Chat {
    /// Sends `line` to everyone but `conn`'s own connection.
    fn tell_others(&self, conn: &ConnectionContext<'_>, line: &[u8]) {
        let outcome = conn.sender().broadcast_except(line, Some(conn.id()));
        self.dropped
            .fetch_add(outcome.skipped_full as u64, Ordering::Relaxed);
    }
}

/// A member: its lines (and the unfinished one), and the sender that tells
/// the room when it leaves (`closed` gets no context: the session keeps
/// what it needs).
pub(crate) struct Member {
    lines: LineFramer,
    room: ConnectionSender,
}

impl StreamService for Chat {
    type Session = Member;

    fn open(&self, conn: &mut ConnectionContext<'_>) -> Member {
        conn.write(format!("welcome, {}\n", conn.peer()).as_bytes());
        Member {
            lines: LineFramer::new(MAX_LINE),
            room: conn.sender(),
        }
    }

    fn data(&self, member: &mut Member, mut input: &[u8], conn: &mut ConnectionContext<'_>) {
        while let Some(frame) = member.lines.next_frame(&mut input) {
            match frame {
                Frame::Line(line) => self.tell_others(conn, &said(conn.peer(), line)),
                Frame::TooLong => conn.write(b"line too long, not sent\n"),
            }
        }
    }

    fn writable_changed(&self, _: &mut Member, conn: &mut ConnectionContext<'_>, writable: bool) {
        if writable {
            conn.cancel_timer();
        } else {
            conn.set_timer(FULL_FOR);
        }
    }

    /// Disconnects a member whose output stayed full for [`FULL_FOR`]: the
    /// only timer the room sets.
    fn timer(&self, _: &mut Member, conn: &mut ConnectionContext<'_>) {
        self.disconnected.fetch_add(1, Ordering::Relaxed);
        eprintln!("chat: {} does not read, disconnecting it", conn.peer());
        // What it holds is still sent if it reads again, then the stream
        // ends; the room's lines are not queued to it any more.
        conn.close();
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

/// Returns `PEER: LINE` and a newline (`line` has none).
fn said(peer: SocketAddr, line: &[u8]) -> Vec<u8> {
    let mut said = format!("{peer}: ").into_bytes();
    said.extend_from_slice(line);
    said.push(b'\n');
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
