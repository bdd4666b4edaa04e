//! The `shoutd` binary with `--workers 2`: both event loops serve clients,
//! and `--max-connections` still bounds how many are served at once.

use crate::support::{Shoutd, connect, round_trip, wait_until};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Voluntary context switches of each worker thread of `pid`, by name:
/// worker 0 is the main thread (`shoutd`), the others `shoutd-worker-N`. A
/// worker blocked in its poll with nothing to do makes none (no connection,
/// so no idle timer), so a rise means it woke to serve. The signal thread
/// is left out.
fn worker_wakeups(pid: u32) -> Vec<(String, u64)> {
    let mut workers = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).expect("/proc is mounted") {
        let dir = task.unwrap().path();
        let is_main = dir.file_name().and_then(|tid| tid.to_str()) == Some(&pid.to_string());
        let name = fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let name = name.trim();
        if !is_main && !name.starts_with("shoutd-worker") {
            continue;
        }
        let status = fs::read_to_string(dir.join("status")).unwrap_or_default();
        let switches = status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        workers.push((name.to_owned(), switches));
    }
    workers.sort();
    workers
}

#[test]
fn two_workers_both_serve() {
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0", "--workers", "2"]);
    let addr = shoutd.tcp.unwrap();
    // The listening lines come before the worker threads start.
    wait_until("both worker threads to run", || {
        worker_wakeups(shoutd.pid()).len() == 2
    });
    let before = worker_wakeups(shoutd.pid());
    // SO_REUSEPORT spreads connections by their addresses: with 64, the
    // chance that one worker gets none is 2^-63.
    for id in 0..64 {
        let mut stream = connect(addr);
        round_trip(&mut stream, &format!("client {id} of two workers: ß\n"));
    }
    let after = worker_wakeups(shoutd.pid());
    for ((name, was), (_, now)) in before.iter().zip(&after) {
        assert!(now > was, "{name} never woke while 64 clients were served");
    }
}

#[test]
fn two_workers_hold_the_connection_cap() {
    // The cap as README.md documents it: a client over it waits in the
    // backlog, unanswered, until a served one leaves. Loosely: whether the
    // cap is split between the workers or shared, no more than 4 are served
    // at once, and every client is served in the end.
    const CAP: usize = 4;
    const CLIENTS: usize = 12;
    let shoutd = Shoutd::start(&[
        "--tcp",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--max-connections",
        "4",
    ]);
    let addr = shoutd.tcp.unwrap();
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|id| {
            let mut stream = connect(addr);
            stream
                .write_all(format!("client {id}\n").as_bytes())
                .unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            stream
        })
        .collect();
    let mut answered = [false; CLIENTS];
    // Bounded: 50 rounds of 12 reads of 20 ms, about 12 s at most; once the
    // cap is reached, 10 more rounds (about 2 s) give a broken cap time to
    // show.
    let mut rounds_left = 50;
    let mut at_cap = false;
    while rounds_left > 0 {
        rounds_left -= 1;
        for (id, stream) in clients.iter_mut().enumerate() {
            if answered[id] {
                continue;
            }
            let mut buf = [0; 64];
            match stream.read(&mut buf) {
                Ok(n) if n > 0 => answered[id] = true,
                Ok(_) => panic!("client {id} closed without an answer"),
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(error) => panic!("client {id}: {error}"),
            }
        }
        if !at_cap && answered.iter().filter(|done| **done).count() >= CAP {
            at_cap = true;
            rounds_left = rounds_left.min(10);
        }
    }
    let served = answered.iter().filter(|done| **done).count();
    assert!(
        (1..=CAP).contains(&served),
        "{served} clients served at once with --max-connections {CAP}"
    );
    // Closing the served ones lets the waiting ones in, a few at a time.
    let mut open: Vec<(usize, TcpStream)> = clients.into_iter().enumerate().collect();
    wait_until("every waiting client to be served", || {
        open.retain_mut(|(id, stream)| {
            if answered[*id] {
                return false; // served: close it
            }
            let mut buf = [0; 64];
            if matches!(stream.read(&mut buf), Ok(n) if n > 0) {
                answered[*id] = true;
            }
            true
        });
        open.is_empty()
    });
}

/// Whether this network namespace resets a closing listener's queued
/// connections (`net.ipv4.tcp_migrate_req` reads 0); `None` where the
/// setting does not exist.
fn migration_off() -> Option<bool> {
    fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .ok()
        .map(|value| value.trim() == "0")
}

/// The stderr of a shoutd started with `workers` and stopped by SIGTERM.
fn stderr_with_workers(workers: &str) -> String {
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0", "--workers", workers]);
    shoutd.signal(libc::SIGTERM);
    let (status, stderr) = shoutd.wait();
    assert_eq!(status, Some(0), "{stderr}");
    stderr
}

#[test]
fn shared_ports_name_the_reset_of_queued_connections_when_migration_is_off() {
    let note = "unless net.ipv4.tcp_migrate_req = 1";
    let shared = stderr_with_workers("2");
    let alone = stderr_with_workers("1");
    assert!(!alone.contains(note), "one worker shares no port: {alone}");
    match migration_off() {
        Some(true) => assert!(shared.contains(note), "{shared}"),
        // The host migrates queued connections, or cannot: nothing to say.
        Some(false) | None => assert!(!shared.contains(note), "{shared}"),
    }
}
