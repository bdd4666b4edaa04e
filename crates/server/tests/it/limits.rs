//! Limits: idle timeout and the connection cap.

use crate::support::{TIMEOUT, connect, read_exactly, round_trip, start, wait_until};
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

#[test]
fn idle_connections_are_closed_and_active_ones_kept() {
    let idle_timeout = Duration::from_millis(300);
    let server = start(|b| b.idle_timeout(Some(idle_timeout)));
    let mut idle = connect(server.tcp());
    let mut active = connect(server.tcp());
    let started = Instant::now();
    // Keep one connection busy for longer than the timeout.
    while started.elapsed() < idle_timeout * 2 {
        round_trip(&mut active, "ping\n");
        std::thread::sleep(idle_timeout / 6);
    }
    let mut buf = [0; 1];
    assert_eq!(
        idle.read(&mut buf).unwrap(),
        0,
        "the idle connection is closed"
    );
    round_trip(&mut active, "still here\n");
    assert_eq!(server.handle.stats().idle_timeouts, 1);
}

#[test]
fn an_idle_connection_on_a_quiet_server_times_out_on_time_after_another_closed() {
    // The loop keeps a lower bound of the next idle deadline instead of
    // looking at the list every turn. A connection that closes leaves its
    // deadline behind as that bound; the next one must still time out at
    // its own deadline, neither skipped (the loop sleeping past it) nor
    // early, with no other traffic to wake the loop.
    let idle_timeout = Duration::from_millis(400);
    let server = start(|b| b.idle_timeout(Some(idle_timeout)));
    let mut first = connect(server.tcp());
    round_trip(&mut first, "first\n");
    drop(first);
    wait_until("the first to close", || {
        server.handle.stats().connections_closed == 1
    });
    std::thread::sleep(idle_timeout / 4);
    let connecting = Instant::now();
    let mut idle = connect(server.tcp());
    let mut buf = [0; 1];
    assert_eq!(
        idle.read(&mut buf).unwrap(),
        0,
        "the idle connection closes"
    );
    assert!(
        connecting.elapsed() >= idle_timeout,
        "closed after {:?}, before the idle timeout",
        connecting.elapsed()
    );
    // The worker counts the close just after it closes the socket, so the
    // client can see the end first.
    wait_until("the idle timeout to be counted", || {
        server.handle.stats().idle_timeouts == 1
    });
    let stats = server.handle.stats();
    assert_eq!((stats.idle_timeouts, stats.closed_by_client), (1, 1));
}

#[test]
fn at_the_connection_limit_new_clients_wait_until_one_closes() {
    let server = start(|b| b.max_connections(3));
    let mut open: Vec<_> = (0..3).map(|_| connect(server.tcp())).collect();
    for stream in &mut open {
        round_trip(stream, "in\n");
    }
    // The fourth completes its handshake (the backlog) but is not served.
    let mut waiting = connect(server.tcp());
    waiting.write_all(b"waiting\n").unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0; 8];
    let error = waiting.read(&mut buf).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{error}"
    );
    assert_eq!(server.handle.stats().connections_accepted, 3);

    drop(open.pop());
    waiting.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(read_exactly(&mut waiting, 8), b"WAITING\n");
    wait_until("the fourth to be accepted", || {
        server.handle.stats().connections_accepted == 4
    });
    for stream in &mut open {
        round_trip(stream, "still served\n");
    }
}
