//! Faults and load against the `shoutd` binary as its own process, so that
//! its memory (`/proc/PID/status`) and descriptors (`/proc/PID/fd`) can be
//! read and it can be killed: a client that never reads, slowloris,
//! 10,000 concurrent connections, kill -9 and restart, SIGTERM under load.
//!
//! Each test holds [`heavy_test`], so that only one of them runs at a time
//! on the machine. Sizes are scaled for a two-core CI runner;
//! docs/RELIABILITY.md gives the scale and the figures.

use crate::support::{
    Shoutd, TIMEOUT, connect, ensure_descriptor_limit, expect_periodic, heavy_test, read_exactly,
    round_trip, send_periodic, send_until_pushed_back, summary_figure, wait_until,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// Clients that never read, each trying to send until pushed back.
const HOGS: usize = 16;

#[test]
fn clients_that_never_read_while_sending_100_mib_leave_memory_bounded() {
    let _heavy = heavy_test();
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0"]);
    let addr = shoutd.tcp.unwrap();
    let mut other = connect(addr);
    round_trip(&mut other, "warm up: the loop's buffers exist now\n");
    let rss_before = shoutd.memory_kib("VmRSS");

    // Half the hogs send ASCII, half `ΐ`, whose answer is three times as
    // large: the worst case for the server's output buffers.
    let ascii = "never reads, sends anyway: 0123456789 abcdefghij\n".repeat(1000);
    let expanding = "ΐ".repeat(25_000);
    let target = 100 * MIB;
    let mut hogs: Vec<(TcpStream, &[u8], u64)> = Vec::new();
    for index in 0..HOGS {
        let mut hog = connect(addr);
        let unit = if index % 2 == 0 {
            ascii.as_bytes()
        } else {
            expanding.as_bytes()
        };
        // Pushed back: no byte taken for a second, long before 100 MiB.
        let sent = send_until_pushed_back(&mut hog, unit, 0, target);
        hogs.push((hog, unit, sent));
    }
    // With every hog pushed back, another client is served as usual.
    let started = Instant::now();
    for line in 0..100 {
        round_trip(&mut other, &format!("meanwhile {line}: ß\n"));
    }
    let meanwhile = started.elapsed();
    let rss_held = shoutd.memory_kib("VmRSS");
    let taken: u64 = hogs.iter().map(|(_, _, sent)| sent).sum();
    eprintln!(
        "{HOGS} hogs pushed {} MiB before being held back; shoutd RSS {} KiB -> {} KiB; \
         100 round trips of another client meanwhile took {meanwhile:?}",
        taken / MIB,
        rss_before,
        rss_held
    );
    // Per connection: 256 KiB of output plus one read's answer (192 KiB).
    let bound_kib = HOGS as u64 * (256 + 192) + 8 * 1024;
    assert!(
        rss_held.saturating_sub(rss_before) < bound_kib,
        "RSS grew by {} KiB holding {HOGS} clients that never read (bound {bound_kib} KiB)",
        rss_held - rss_before
    );

    // Now they read: each gets exactly the answer to all it sent, and the
    // first one goes on to send its whole 100 MiB.
    let mut readers = Vec::new();
    for (index, (mut hog, unit, sent)) in hogs.into_iter().enumerate() {
        let answer_unit = String::from_utf8(unit.to_vec()).unwrap().to_uppercase();
        let mut reader = hog.try_clone().unwrap();
        hog.set_write_timeout(Some(TIMEOUT)).unwrap();
        // The first hog sends everything; the others complete their last
        // unit, so that no character is left cut.
        let end = if index == 0 {
            target.next_multiple_of(unit.len() as u64)
        } else {
            sent.next_multiple_of(unit.len() as u64)
        };
        let answer_len = end / unit.len() as u64 * answer_unit.len() as u64;
        readers.push(thread::spawn(move || {
            expect_periodic(&mut reader, answer_unit.as_bytes(), answer_len);
            answer_len
        }));
        let (reached, error) = send_periodic(&mut hog, unit, sent, end);
        assert!(error.is_none(), "hog {index} at {reached}: {error:?}");
        hog.shutdown(Shutdown::Write).unwrap();
    }
    let answered: u64 = readers
        .into_iter()
        .map(|reader| reader.join().expect("a hog's answer is wrong or cut"))
        .sum();
    let peak = shoutd.memory_kib("VmHWM");
    eprintln!(
        "then {} MiB of answers read back whole; shoutd peak RSS (VmHWM) {peak} KiB",
        answered / MIB
    );
    assert!(
        peak < rss_before + bound_kib,
        "peak RSS {peak} KiB (before the hogs: {rss_before} KiB)"
    );
}

/// Slowloris connections: each sends one byte per tick, a minute of the
/// real attack scaled to a second, against an idle timeout of 3 ticks.
const SLOWLORIS: usize = 5000;
const TICK: Duration = Duration::from_secs(1);

/// What this shows, and what it does not: below the cap, trickling clients
/// leave room for new ones; at the cap, a newcomer waits in the backlog for
/// as long as the attack goes on, and is served once it stops. A slowloris
/// that never stops keeps it waiting: only a per-source limit would not.
#[test]
fn slowloris_below_the_cap_leaves_room_for_new_clients_and_at_the_cap_newcomers_wait_until_it_stops()
 {
    let _heavy = heavy_test();
    ensure_descriptor_limit(SLOWLORIS as u64 + 1024);
    // Room for the slow clients and one more: then the cap is reached.
    let max_connections = SLOWLORIS + 1;
    let shoutd = Shoutd::start(&[
        "--tcp",
        "127.0.0.1:0",
        "--max-connections",
        &max_connections.to_string(),
        "--idle-timeout",
        "3",
    ]);
    let addr = shoutd.tcp.unwrap();
    let base_descriptors = shoutd.open_descriptors();
    let mut slow: Vec<TcpStream> = (0..SLOWLORIS)
        .map(|id| {
            let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
                .unwrap_or_else(|error| panic!("slow client {id}: {error}"));
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect();
    let mut answered = vec![0usize; SLOWLORIS];
    let mut sent = 0usize;
    let mut peak_descriptors = 0;
    // One byte from every slow client, then whatever answers have come.
    let mut tick = |slow: &mut [TcpStream], answered: &mut [usize], shoutd: &Shoutd| {
        for stream in slow.iter_mut() {
            stream
                .write_all(b"z")
                .expect("a slow client's byte is taken");
        }
        sent += 1;
        for (stream, answered) in slow.iter_mut().zip(answered.iter_mut()) {
            let mut buf = [0; 16];
            match stream.read(&mut buf) {
                Ok(read) => {
                    assert!(buf[..read].iter().all(|&b| b == b'Z'));
                    *answered += read;
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => panic!("a slow client was cut off while active: {error}"),
            }
        }
        peak_descriptors = peak_descriptors.max(shoutd.open_descriptors());
        thread::sleep(TICK);
    };

    // While the slow clients trickle (longer than the idle timeout, so they
    // count as active), a new client is served.
    let mut fresh = connect(addr);
    for line in 0..4 {
        tick(&mut slow, &mut answered, &shoutd);
        round_trip(
            &mut fresh,
            &format!("served beside 5000 slow clients {line}\n"),
        );
    }
    // At the cap: one more client completes its handshake (the backlog) but
    // is not served while everyone else stays active.
    let mut waiting = connect(addr);
    waiting.write_all(b"waiting\n").unwrap();
    waiting.set_nonblocking(true).unwrap();
    for line in 0..2 {
        tick(&mut slow, &mut answered, &shoutd);
        round_trip(&mut fresh, &format!("still active {line}\n"));
        let mut buf = [0; 8];
        let error = waiting.read(&mut buf).expect_err("served beyond the cap");
        assert_eq!(error.kind(), ErrorKind::WouldBlock);
    }
    assert!(
        peak_descriptors <= base_descriptors + max_connections,
        "{peak_descriptors} descriptors open, over {base_descriptors} + the cap {max_connections}"
    );
    assert!(
        peak_descriptors >= base_descriptors + SLOWLORIS,
        "the slow clients were not all held at once"
    );

    // The slow clients stop: the idle timeout closes every one of them, and
    // the waiting client is served.
    waiting.set_nonblocking(false).unwrap();
    waiting.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(read_exactly(&mut waiting, 8), b"WAITING\n");
    for (id, stream) in slow.iter_mut().enumerate() {
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut rest = Vec::new();
        match stream.read_to_end(&mut rest) {
            Ok(_) => {}
            // Closing with our unread bytes in its buffer makes a reset.
            Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
            Err(error) => panic!("slow client {id} was not closed: {error}"),
        }
        answered[id] += rest.len();
        assert_eq!(answered[id], sent, "slow client {id}: every byte answered");
    }
    let peak_rss = shoutd.memory_kib("VmHWM");
    drop((waiting, fresh));
    shoutd.signal(libc::SIGTERM);
    let (code, stderr) = shoutd.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(summary_figure(&stderr, "connections"), SLOWLORIS as u64 + 2);
    // The slow clients and the fresh one (idle while we read the others).
    assert!(summary_figure(&stderr, "idle timeouts") >= SLOWLORIS as u64);
    eprintln!(
        "slowloris: {SLOWLORIS} connections held, {peak_descriptors} descriptors at the peak \
         (base {base_descriptors}), all closed by the idle timeout; shoutd peak RSS {peak_rss} KiB"
    );
}

const CONCURRENT: usize = 10_000;
const CLIENT_THREADS: usize = 4;
const ROUNDS: usize = 3;

/// Connection `id`'s request in `round`: its own, so a mixed-up answer fails.
fn request_of(id: usize, round: usize) -> String {
    format!("connection {id:05} round {round}: grüße ﬁ ΐ\n")
}

#[test]
fn ten_thousand_concurrent_connections_each_get_their_own_answers() {
    let _heavy = heavy_test();
    // Both this process and shoutd hold one end of every connection.
    ensure_descriptor_limit(CONCURRENT as u64 + 1024);
    // The default limit is exactly 10,000 connections.
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0"]);
    let addr = shoutd.tcp.unwrap();
    let base_descriptors = shoutd.open_descriptors();
    let rss_before = shoutd.memory_kib("VmRSS");
    let connected = Arc::new(AtomicUsize::new(0));
    let worked = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|thread_index| {
            let (connected, worked, release) = (
                Arc::clone(&connected),
                Arc::clone(&worked),
                Arc::clone(&release),
            );
            thread::spawn(move || {
                let ids: Vec<usize> = (thread_index..CONCURRENT).step_by(CLIENT_THREADS).collect();
                let mut streams: Vec<TcpStream> = ids
                    .iter()
                    .map(|id| {
                        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
                            .unwrap_or_else(|error| panic!("connection {id}: {error}"));
                        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
                        connected.fetch_add(1, Ordering::SeqCst);
                        stream
                    })
                    .collect();
                wait_until("every connection to be open", || {
                    connected.load(Ordering::SeqCst) == CONCURRENT
                });
                let mut bytes = 0;
                for round in 0..ROUNDS {
                    // Every request of this thread in flight at once, then
                    // every answer read: the server works on all together.
                    for (stream, id) in streams.iter_mut().zip(&ids) {
                        stream.write_all(request_of(*id, round).as_bytes()).unwrap();
                    }
                    for (stream, id) in streams.iter_mut().zip(&ids) {
                        let expected = request_of(*id, round).to_uppercase();
                        let reply = read_exactly(stream, expected.len());
                        assert_eq!(String::from_utf8_lossy(&reply), expected);
                        bytes += request_of(*id, round).len();
                    }
                }
                worked.fetch_add(1, Ordering::SeqCst);
                wait_until("the connection count to be read", || {
                    release.load(Ordering::SeqCst)
                });
                drop(streams);
                bytes
            })
        })
        .collect();
    wait_until("every thread to finish its rounds", || {
        worked.load(Ordering::SeqCst) == CLIENT_THREADS
    });
    let held = shoutd.open_descriptors() - base_descriptors;
    let rss_held = shoutd.memory_kib("VmRSS");
    release.store(true, Ordering::SeqCst);
    let bytes_in: usize = threads
        .into_iter()
        .map(|thread| thread.join().expect("a connection got a wrong answer"))
        .sum();
    assert!(held >= CONCURRENT, "only {held} connections held at once");
    wait_until("shoutd to close the connections", || {
        shoutd.open_descriptors() <= base_descriptors
    });
    shoutd.signal(libc::SIGTERM);
    let (code, stderr) = shoutd.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(summary_figure(&stderr, "connections"), CONCURRENT as u64);
    assert_eq!(summary_figure(&stderr, "bytes in"), bytes_in as u64);
    eprintln!(
        "{CONCURRENT} connections held at once, {} requests, {bytes_in} bytes in; \
         shoutd RSS {rss_before} KiB before, {rss_held} KiB holding them",
        CONCURRENT * ROUNDS
    );
}

/// What a client saw in one attempt, and whether it began after the
/// restarted server was listening.
#[derive(Default)]
struct Attempts {
    ok_before: usize,
    failed_before: usize,
    ok_after: usize,
}

#[test]
fn kill_9_then_an_immediate_restart_on_the_same_ports_serves_again() {
    let _heavy = heavy_test();
    let first = Shoutd::start(&["--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
    let (tcp, udp) = (first.tcp.unwrap(), first.udp.unwrap());
    let restarted: Arc<Mutex<Option<Instant>>> = Arc::default();
    let tcp_clients: Vec<_> = (0..8)
        .map(|id| {
            let restarted = Arc::clone(&restarted);
            thread::spawn(move || tcp_client_across_restart(id, tcp, &restarted))
        })
        .collect();
    let udp_client = {
        let restarted = Arc::clone(&restarted);
        thread::spawn(move || udp_client_across_restart(udp, &restarted))
    };
    // Let the clients work against the first server for a moment.
    thread::sleep(Duration::from_millis(300));
    first.kill_9();
    let second = Shoutd::start(&["--tcp", &tcp.to_string(), "--udp", &udp.to_string()]);
    assert_eq!((second.tcp, second.udp), (Some(tcp), Some(udp)));
    *restarted.lock().unwrap() = Some(Instant::now());
    let mut total = Attempts::default();
    for client in tcp_clients {
        let attempts = client
            .join()
            .expect("a wrong answer, or a failure after the restart");
        assert!(attempts.ok_before > 0, "no answer from the first server");
        total.ok_before += attempts.ok_before;
        total.failed_before += attempts.failed_before;
        total.ok_after += attempts.ok_after;
    }
    let udp_after = udp_client
        .join()
        .expect("a wrong UDP answer, or none after the restart");
    eprintln!(
        "kill -9: {} TCP exchanges answered before, {} cut by the kill, {} after the restart; \
         {udp_after} UDP exchanges after",
        total.ok_before, total.failed_before, total.ok_after
    );
    second.signal(libc::SIGTERM);
    let (code, stderr) = second.wait();
    assert_eq!(code, Some(0), "{stderr}");
}

/// Connects, asks, checks, closes, over and over: before the restart a
/// failure is allowed (the server was killed); a wrong answer never is, nor
/// a failure of an attempt that began once the new server was listening.
fn tcp_client_across_restart(
    id: usize,
    addr: SocketAddr,
    restarted: &Mutex<Option<Instant>>,
) -> Attempts {
    let mut attempts = Attempts::default();
    let started = Instant::now();
    for number in 0..100_000 {
        let after = restarted.lock().unwrap().is_some();
        if attempts.ok_after >= 50 || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        let text = format!("client {id} request {number}: straße\n");
        let exchange = (|| -> std::io::Result<Vec<u8>> {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            stream.write_all(text.as_bytes())?;
            stream.shutdown(Shutdown::Write)?;
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply)?;
            Ok(reply)
        })();
        let expected = text.to_uppercase();
        match exchange {
            // Cut by the kill: a prefix of the answer, never a wrong byte.
            Ok(reply) if !after && reply.len() < expected.len() => {
                assert!(
                    expected.as_bytes().starts_with(&reply),
                    "client {id}: {reply:?}"
                );
                attempts.failed_before += 1;
            }
            Ok(reply) => {
                assert_eq!(String::from_utf8_lossy(&reply), expected);
                if after {
                    attempts.ok_after += 1;
                } else {
                    attempts.ok_before += 1;
                }
            }
            Err(_) if !after => attempts.failed_before += 1,
            Err(error) => panic!("client {id}: failed after the restart: {error}"),
        }
        thread::sleep(Duration::from_millis(2));
    }
    assert!(
        attempts.ok_after >= 50,
        "client {id}: {} answers after the restart",
        attempts.ok_after
    );
    attempts
}

/// The same over UDP: a request sent once the new server listens is
/// answered (loopback loses nothing); earlier ones may be lost.
fn udp_client_across_restart(addr: SocketAddr, restarted: &Mutex<Option<Instant>>) -> usize {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut after_count = 0;
    let started = Instant::now();
    for number in 0..100_000 {
        let after = restarted.lock().unwrap().is_some();
        if after_count >= 50 || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        socket
            .set_read_timeout(Some(if after {
                TIMEOUT
            } else {
                Duration::from_millis(200)
            }))
            .unwrap();
        let text = format!("datagram {number}: ǰ");
        socket.send_to(text.as_bytes(), addr).unwrap();
        let mut buf = [0; 64];
        match socket.recv(&mut buf) {
            Ok(len) => {
                assert_eq!(&buf[..len], text.to_uppercase().as_bytes());
                after_count += usize::from(after);
            }
            // Lost with the first server, or refused (ICMP) while none ran.
            Err(_) if !after => {}
            Err(error) => panic!("datagram {number} unanswered after the restart: {error}"),
        }
        thread::sleep(Duration::from_millis(2));
    }
    assert!(
        after_count >= 50,
        "{after_count} UDP answers after the restart"
    );
    after_count
}

const LOADED_CLIENTS: usize = 24;

/// Line `number` of client `id`: lines are numbered, so a lost, repeated or
/// reordered one shows.
fn line_of(id: usize, number: usize) -> String {
    format!("client {id:02} line {number:07}: every byte counts, grüße ΐ ǰ\n")
}

#[test]
fn sigterm_under_load_loses_no_answered_byte() {
    let _heavy = heavy_test();
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0", "--drain-timeout", "20"]);
    let addr = shoutd.tcp.unwrap();
    let stop_sending = Arc::new(AtomicBool::new(false));
    // Clients that have had at least FLOWING bytes of answer.
    let flowing = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..LOADED_CLIENTS)
        .map(|id| {
            let stream = connect(addr);
            let (stop_sending, flowing) = (Arc::clone(&stop_sending), Arc::clone(&flowing));
            thread::spawn(move || loaded_client(id, stream, &stop_sending, &flowing))
        })
        .collect();
    // Every client is sending and receiving when the signal comes: each has
    // had answers already. (A client whose threads had not run yet would
    // be quiet when the stop began, and be ended before it sent a byte.)
    wait_until("every client to be answered", || {
        flowing.load(Ordering::Relaxed) == LOADED_CLIENTS
    });
    shoutd.signal(libc::SIGTERM);
    wait_until("shoutd to begin its drain", || {
        shoutd.stderr_so_far().contains("connections to drain")
    });
    // New clients are refused from the moment the drain begins...
    assert!(
        TcpStream::connect_timeout(&addr, TIMEOUT).is_err(),
        "a new client was accepted while stopping"
    );
    // ...while the clients still sending are served on.
    thread::sleep(Duration::from_millis(300));
    stop_sending.store(true, Ordering::Relaxed);
    let (mut sent, mut answered) = (0, 0);
    for client in clients {
        let (client_sent, client_answered) = client.join().expect("an answer was lost or wrong");
        sent += client_sent;
        answered += client_answered;
    }
    let (code, stderr) = shoutd.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(summary_figure(&stderr, "bytes in"), sent);
    assert_eq!(summary_figure(&stderr, "bytes out"), answered);
    eprintln!(
        "SIGTERM under load: {LOADED_CLIENTS} clients sent {} MiB, every byte answered \
         ({answered} bytes out), none lost",
        sent / MIB
    );
}

/// Bytes of answer after which a loaded client counts as flowing.
const FLOWING: u64 = 256 * 1024;

/// Sends numbered lines until told to stop (then half-closes), while this
/// thread reads and checks every answer; counts itself in `flowing` once it
/// has had [`FLOWING`] bytes of answer. Returns bytes sent and received.
fn loaded_client(
    id: usize,
    mut stream: TcpStream,
    stop_sending: &Arc<AtomicBool>,
    flowing: &AtomicUsize,
) -> (u64, u64) {
    let mut writer = stream.try_clone().unwrap();
    let stop = Arc::clone(stop_sending);
    let sender = thread::spawn(move || {
        let (mut lines, mut bytes) = (0, 0u64);
        let started = Instant::now();
        while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
            // 64 lines per write, about 4 KiB.
            let batch: String = (lines..lines + 64).map(|n| line_of(id, n)).collect();
            writer.write_all(batch.as_bytes()).unwrap();
            lines += 64;
            bytes += batch.len() as u64;
        }
        writer.shutdown(Shutdown::Write).unwrap();
        (lines, bytes)
    });
    // Check the answers line by line as they come, in constant memory.
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let (mut next_line, mut answered) = (0, 0u64);
    loop {
        let read = stream.read(&mut buf).expect("the answer arrives in time");
        if read == 0 {
            break;
        }
        answered += read as u64;
        if answered >= FLOWING && answered - (read as u64) < FLOWING {
            flowing.fetch_add(1, Ordering::Relaxed);
        }
        pending.extend_from_slice(&buf[..read]);
        let mut consumed = 0;
        loop {
            let expected = line_of(id, next_line).to_uppercase();
            let Some(got) = pending.get(consumed..consumed + expected.len()) else {
                break;
            };
            assert_eq!(
                String::from_utf8_lossy(got),
                expected,
                "client {id} line {next_line}"
            );
            consumed += expected.len();
            next_line += 1;
        }
        pending.drain(..consumed);
    }
    let (lines, sent) = sender.join().unwrap();
    assert!(pending.is_empty(), "client {id}: a line's answer was cut");
    assert_eq!(next_line, lines, "client {id}: answers for every line sent");
    (sent, answered)
}
