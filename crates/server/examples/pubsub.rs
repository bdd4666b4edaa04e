//! A publish/subscribe server on the event loop, with heartbeats.
//!
//! ```text
//! cargo run -p shout-server --example pubsub -- 127.0.0.1:7000
//! nc 127.0.0.1 7000     # in two terminals: SUB news, then PUB news hello
//! ```
//!
//! Lines in, lines out:
//! - `SUB topic` and `UNSUB topic` answer `OK`;
//! - `PUB topic message` answers `OK N`, N being the subscribers reached,
//!   and sends `MSG topic message` to each (the publisher too, if it
//!   subscribed). A subscriber whose output is full is not reached, and not
//!   counted;
//! - the server sends `PING` on every connection every 500 ms; `PONG`
//!   answers every `PING` sent so far. A connection whose oldest `PING`
//!   stays unanswered for 1.5 s gets `BYE timeout` and is closed. A client
//!   that answers the `PING`s stays for ever;
//! - anything else answers `ERR ...`; a line longer than 4 KiB answers
//!   `ERR line too long`.
//!
//! A closed connection leaves its topics. It shows two timers per
//! connection ([`Timer`]): the interval of the `PING`s and the deadline of
//! the `PONG`, each set and cancelled on its own.

use shout_protocol::{Frame, LineFramer};
use shout_server::{
    CloseCause, ConnectionContext, ConnectionId, ConnectionInfo, ServerBuilder, StreamService,
    Timer,
};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How often the server sends `PING`.
pub(crate) const PING_EVERY: Duration = Duration::from_millis(500);
/// How long the oldest `PING` may stay unanswered.
pub(crate) const PONG_WITHIN: Duration = Duration::from_millis(1500);
/// The longest line taken, newline excluded.
const MAX_LINE: usize = 4096;
/// The most topics one connection may subscribe to: a session stays small.
const MAX_TOPICS: usize = 64;

/// The timer that sends the next `PING`.
const PING: Timer = Timer::new(0);
/// The timer that closes a connection whose `PONG` is late.
const PONG_DEADLINE: Timer = Timer::new(1);

/// The topics, each with its subscribers, shared by every connection and
/// worker.
#[derive(Default)]
pub(crate) struct PubSub {
    topics: Mutex<HashMap<String, HashSet<ConnectionId>>>,
}

/// One connection: its unfinished line, and the rest of its state.
pub(crate) struct Subscriber {
    lines: LineFramer,
    state: State,
}

/// A connection's topics, and whether a `PING` waits for its `PONG`.
struct State {
    topics: HashSet<String>,
    awaiting_pong: bool,
}

impl PubSub {
    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<ConnectionId>>> {
        // Every change is one insert or one removal: the map is whole even
        // after a panic elsewhere.
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers one line.
    fn command(&self, subscriber: &mut State, line: &str, conn: &mut ConnectionContext<'_>) {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        match (verb, rest) {
            ("PONG", "") => {
                subscriber.awaiting_pong = false;
                conn.cancel_timer_for(PONG_DEADLINE);
            }
            ("SUB", topic) if is_topic(topic) => {
                if subscriber.topics.len() >= MAX_TOPICS && !subscriber.topics.contains(topic) {
                    conn.write(b"ERR too many topics\n");
                    return;
                }
                subscriber.topics.insert(topic.to_owned());
                (self.topics().entry(topic.to_owned()).or_default()).insert(conn.id());
                conn.write(b"OK\n");
            }
            ("UNSUB", topic) if is_topic(topic) => {
                subscriber.topics.remove(topic);
                self.leave(topic, conn.id());
                conn.write(b"OK\n");
            }
            ("PUB", rest) => match rest.split_once(' ') {
                Some((topic, message)) if is_topic(topic) => {
                    let reached = self.publish(topic, message, conn);
                    conn.write(format!("OK {reached}\n").as_bytes());
                }
                _ => conn.write(b"ERR usage: PUB topic message\n"),
            },
            ("SUB" | "UNSUB", _) => conn.write(b"ERR usage: SUB topic, UNSUB topic\n"),
            _ => conn.write(b"ERR unknown command\n"),
        }
    }

    /// Sends `MSG topic message` to each subscriber of `topic`; returns how
    /// many it reached.
    fn publish(&self, topic: &str, message: &str, conn: &ConnectionContext<'_>) -> usize {
        // The list is copied so that no lock is held while sending.
        let subscribers: Vec<ConnectionId> = match self.topics().get(topic) {
            Some(subscribers) => subscribers.iter().copied().collect(),
            None => return 0,
        };
        let line = format!("MSG {topic} {message}\n");
        let sender = conn.sender();
        (subscribers.into_iter())
            .filter(|id| sender.send(*id, line.as_bytes()).is_ok())
            .count()
    }

    /// Takes connection `id` off `topic`'s subscribers.
    fn leave(&self, topic: &str, id: ConnectionId) {
        let mut topics = self.topics();
        if let Some(subscribers) = topics.get_mut(topic) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                topics.remove(topic);
            }
        }
    }
}

/// A topic is one word.
fn is_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(' ')
}

impl StreamService for PubSub {
    type Session = Subscriber;

    fn open(&self, conn: &mut ConnectionContext<'_>) -> Subscriber {
        conn.set_timer_for(PING, PING_EVERY);
        Subscriber {
            lines: LineFramer::new(MAX_LINE),
            state: State {
                topics: HashSet::new(),
                awaiting_pong: false,
            },
        }
    }

    fn data(
        &self,
        subscriber: &mut Subscriber,
        mut input: &[u8],
        conn: &mut ConnectionContext<'_>,
    ) {
        while let Some(frame) = subscriber.lines.next_frame(&mut input) {
            match frame {
                Frame::Line(line) => {
                    let line = String::from_utf8_lossy(line);
                    self.command(&mut subscriber.state, line.trim_end_matches('\r'), conn);
                }
                Frame::TooLong => conn.write(b"ERR line too long\n"),
            }
        }
    }

    fn timer_fired(
        &self,
        subscriber: &mut Subscriber,
        conn: &mut ConnectionContext<'_>,
        timer: Timer,
    ) {
        if timer == PONG_DEADLINE {
            conn.write(b"BYE timeout\n");
            conn.close();
            return;
        }
        conn.write(b"PING\n");
        conn.set_timer_for(PING, PING_EVERY);
        // The deadline runs from the oldest PING not answered.
        if !subscriber.state.awaiting_pong {
            subscriber.state.awaiting_pong = true;
            conn.set_timer_for(PONG_DEADLINE, PONG_WITHIN);
        }
    }

    fn closed(&self, subscriber: Subscriber, info: &ConnectionInfo, _: CloseCause) {
        for topic in &subscriber.state.topics {
            self.leave(topic, info.id());
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let server = ServerBuilder::tcp_only(PubSub::default())
        .tcp(addr)
        .build()?;
    for addr in server.handle().tcp_addrs() {
        println!("listening tcp {addr}");
    }
    server.run()?;
    Ok(())
}
