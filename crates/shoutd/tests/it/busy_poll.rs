//! `shoutd --busy-poll`: it serves as without it, spins only for its window
//! after the last event, and then sleeps in its poll again. CPU time is
//! read from `/proc/PID/stat` and bounded loosely: behaviour, not speed.

use crate::support::{Shoutd, connect, round_trip};
use std::time::Duration;

/// The process's user + system CPU time, from `/proc/PID/stat` (fields 14
/// and 15, in the kernel's fixed 100 ticks per second).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc is mounted");
    // The command name is in parentheses and may hold spaces.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .expect("a stat line names its command")
        .1
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|field| field.parse().expect("CPU times are numbers"))
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

#[test]
fn busy_polling_serves_then_sleeps_after_its_window() {
    // A window long enough to see on the CPU clock, which ticks in 10 ms.
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0", "--busy-poll", "300000"]);
    let mut stream = connect(shoutd.tcp.unwrap());
    for round in 0..200 {
        round_trip(
            &mut stream,
            &format!("round {round} with busy polling: ß\n"),
        );
    }
    let before = cpu_time(shoutd.pid());
    std::thread::sleep(Duration::from_millis(1_200));
    let spent = cpu_time(shoutd.pid()) - before;
    // The last event began a 300 ms window of polling without sleep: some
    // CPU is spent. Then it blocks: far less than the 1.2 s a loop that
    // never slept again would take.
    assert!(
        spent >= Duration::from_millis(30),
        "{spent:?}: no sign of polling after the last event"
    );
    assert!(
        spent <= Duration::from_millis(700),
        "{spent:?} of CPU over 1.2 s idle: the worker did not go back to sleep"
    );
    // And it still serves, waking from its sleep.
    round_trip(&mut stream, "after the window\n");
}

#[test]
fn without_busy_polling_an_idle_server_sleeps() {
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0"]);
    let mut stream = connect(shoutd.tcp.unwrap());
    round_trip(&mut stream, "one round\n");
    let before = cpu_time(shoutd.pid());
    std::thread::sleep(Duration::from_millis(500));
    let spent = cpu_time(shoutd.pid()) - before;
    assert!(
        spent <= Duration::from_millis(100),
        "{spent:?} of CPU while idle"
    );
}
