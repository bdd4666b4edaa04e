//! Several service timers per connection, each with a deadline of its
//! own, over a real connection: set, re-armed and cancelled apart, each
//! told by name to `timer_fired`.

use crate::support::*;
use shout_server::{ConnectionContext, ServerBuilder, StreamService, Timer};
use std::io::Write;
use std::time::Duration;

const SLOW: Timer = Timer::new(1);
const FAST: Timer = Timer::new(2);
const CANCELLED: Timer = Timer::new(3);

/// Sets three timers at the open and cancels one; writes each timer's
/// name as it fires, re-arms `FAST` once, and closes after `SLOW`.
struct Three;

impl StreamService for Three {
    type Session = u32;

    fn open(&self, conn: &mut ConnectionContext<'_>) -> u32 {
        conn.set_timer_for(SLOW, Duration::from_millis(200));
        conn.set_timer_for(FAST, Duration::from_millis(50));
        conn.set_timer_for(CANCELLED, Duration::from_millis(10));
        conn.cancel_timer_for(CANCELLED);
        0
    }

    fn data(&self, _: &mut u32, _: &[u8], _: &mut ConnectionContext<'_>) {}

    fn timer_fired(&self, fast_fired: &mut u32, conn: &mut ConnectionContext<'_>, timer: Timer) {
        match timer {
            FAST => {
                conn.write(b"fast ");
                *fast_fired += 1;
                if *fast_fired == 1 {
                    // Re-armed: the slow timer keeps its own deadline.
                    conn.set_timer_for(FAST, Duration::from_millis(50));
                }
            }
            SLOW => {
                conn.write(b"slow");
                conn.close();
            }
            other => conn.write(format!("unexpected {other:?} ").as_bytes()),
        }
    }
}

#[test]
fn each_timer_of_a_connection_fires_on_its_own_deadline_by_name() {
    let server = run(ServerBuilder::tcp_only(Three).tcp("127.0.0.1:0".parse().unwrap()));
    let mut client = connect(server.tcp());
    assert_eq!(read_to_end(&mut client), b"fast fast slow");
}

/// Implements only `timer`: every timer comes there, as before timers had
/// names.
struct OnlyTimer;

impl StreamService for OnlyTimer {
    type Session = ();

    fn open(&self, conn: &mut ConnectionContext<'_>) {
        conn.set_timer(Duration::from_millis(10));
    }

    fn data(&self, _: &mut (), _: &[u8], _: &mut ConnectionContext<'_>) {}

    fn timer(&self, _: &mut (), conn: &mut ConnectionContext<'_>) {
        conn.write(b"timer");
        conn.close();
    }
}

#[test]
fn a_service_with_one_timer_still_gets_it_in_timer() {
    let server = run(ServerBuilder::tcp_only(OnlyTimer).tcp("127.0.0.1:0".parse().unwrap()));
    let mut client = connect(server.tcp());
    assert_eq!(read_to_end(&mut client), b"timer");
}

/// Keeps the time of its open, and sets a deadline from it in a later
/// callback: the deadline is the open's time plus 100 ms, however late
/// the data came.
struct FromOpen;

impl StreamService for FromOpen {
    type Session = std::time::Instant;

    fn open(&self, conn: &mut ConnectionContext<'_>) -> std::time::Instant {
        conn.now()
    }

    fn data(&self, opened: &mut std::time::Instant, _: &[u8], conn: &mut ConnectionContext<'_>) {
        // Already past when the data comes 200 ms late: due next turn.
        conn.set_timer_at(SLOW, *opened + Duration::from_millis(100));
    }

    fn timer_fired(
        &self,
        opened: &mut std::time::Instant,
        conn: &mut ConnectionContext<'_>,
        _: Timer,
    ) {
        let late = conn.now() >= *opened + Duration::from_millis(100);
        conn.write(if late { b"due" } else { b"early" });
        conn.close();
    }
}

#[test]
fn a_timer_set_at_a_time_already_past_comes_due_on_the_next_turn() {
    let server = run(ServerBuilder::tcp_only(FromOpen).tcp("127.0.0.1:0".parse().unwrap()));
    let mut client = connect(server.tcp());
    std::thread::sleep(Duration::from_millis(200));
    client.write_all(b"go").unwrap();
    assert_eq!(read_to_end(&mut client), b"due");
}
