//! The stream service contract, callback by callback, over real sockets: a
//! greeting, a close after the answer, a half-close that keeps reading,
//! `closed` once per connection with each cause, timers, the sender's
//! send/close/broadcast and its errors, flow control a service can see,
//! panic isolation, and servers with one kind of service only.

use crate::support::*;
use shout_server::{
    CloseCause, ConnectionContext, ConnectionId, ConnectionInfo, DatagramReply, DatagramService,
    EndReason, SendError, ServerBuilder, StreamService,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the probe saw, per connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Opened,
    Line(String),
    End(EndReason),
    Timer,
    Writable(bool),
    Closed(CloseCause),
}

#[derive(Default)]
struct Journal(Mutex<Vec<(ConnectionId, Seen)>>);

impl Journal {
    fn note(&self, id: ConnectionId, seen: Seen) {
        self.0.lock().unwrap().push((id, seen));
    }

    fn of(&self, id: ConnectionId) -> Vec<Seen> {
        let journal = self.0.lock().unwrap();
        journal
            .iter()
            .filter(|(of, _)| *of == id)
            .map(|(_, seen)| seen.clone())
            .collect()
    }

    /// Returns the ids opened so far, in order.
    fn opened(&self) -> Vec<ConnectionId> {
        let journal = self.0.lock().unwrap();
        journal
            .iter()
            .filter(|(_, seen)| *seen == Seen::Opened)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Waits for the `nth` connection (from 0) to open; returns its id.
    fn wait_opened(&self, nth: usize) -> ConnectionId {
        wait_until("the connection is opened", || self.opened().len() > nth);
        self.opened()[nth]
    }

    fn closes(&self, id: ConnectionId) -> Vec<CloseCause> {
        self.of(id)
            .into_iter()
            .filter_map(|seen| match seen {
                Seen::Closed(cause) => Some(cause),
                _ => None,
            })
            .collect()
    }

    /// Waits until connection `id` is closed; checks it was closed once.
    fn wait_closed(&self, id: ConnectionId) -> CloseCause {
        wait_until("closed is called", || !self.closes(id).is_empty());
        // A second call would come in the same turn or never.
        std::thread::sleep(Duration::from_millis(50));
        let closes = self.closes(id);
        assert_eq!(closes.len(), 1, "closed once, not {closes:?}");
        closes[0]
    }
}

/// A line service that does what each line says, and notes every callback.
///
/// `quit`: answers `bye` and closes. `push-quit`: sends `pushed` to its
/// own connection through the sender, answers `bye` and closes. `half`:
/// answers `half` and shuts its
/// sending side down. `boom`: panics. `timer N`: sets a timer of N ms.
/// `flood N`: writes N KiB. Any other line is echoed.
#[derive(Clone, Default)]
struct Probe {
    journal: Arc<Journal>,
    greeting: &'static str,
}

impl StreamService for Probe {
    type Session = Vec<u8>;

    fn open(&self, conn: &mut ConnectionContext<'_>) -> Vec<u8> {
        self.journal.note(conn.id(), Seen::Opened);
        conn.write(self.greeting.as_bytes());
        Vec::new()
    }

    fn data(&self, held: &mut Vec<u8>, input: &[u8], conn: &mut ConnectionContext<'_>) {
        held.extend_from_slice(input);
        while let Some(end) = held.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = held.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            self.journal.note(conn.id(), Seen::Line(line.clone()));
            let mut words = line.split(' ');
            match (
                words.next(),
                words.next().and_then(|n| n.parse::<u64>().ok()),
            ) {
                (Some("quit"), _) => {
                    conn.write(b"bye\n");
                    conn.close();
                    // What this call wrote after close would still be sent.
                    return;
                }
                (Some("push-quit"), _) => {
                    // Queued, and not delivered before the close below.
                    conn.sender().send(conn.id(), b"pushed\n").unwrap();
                    conn.write(b"bye\n");
                    conn.close();
                    return;
                }
                (Some("half"), _) => {
                    conn.write(b"half\n");
                    conn.shutdown_write();
                }
                (Some("boom"), _) => panic!("boom on purpose"),
                (Some("timer"), Some(ms)) => conn.set_timer(Duration::from_millis(ms)),
                (Some("untimer"), _) => conn.cancel_timer(),
                (Some("flood"), Some(kib)) => {
                    let output = conn.output();
                    output.resize(output.len() + kib as usize * 1024, b'f');
                }
                _ => {
                    conn.write(line.as_bytes());
                    conn.write(b"\n");
                }
            }
        }
    }

    fn end(&self, _: &mut Vec<u8>, conn: &mut ConnectionContext<'_>, reason: EndReason) {
        self.journal.note(conn.id(), Seen::End(reason));
        conn.write(b"end\n");
    }

    fn timer(&self, _: &mut Vec<u8>, conn: &mut ConnectionContext<'_>) {
        self.journal.note(conn.id(), Seen::Timer);
        conn.write(b"tick\n");
    }

    fn writable_changed(&self, _: &mut Vec<u8>, conn: &mut ConnectionContext<'_>, writable: bool) {
        self.journal.note(conn.id(), Seen::Writable(writable));
    }

    fn closed(&self, _: Vec<u8>, info: &ConnectionInfo, cause: CloseCause) {
        self.journal.note(info.id(), Seen::Closed(cause));
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn probe_server(
    probe: &Probe,
    configure: impl FnOnce(
        ServerBuilder<Probe, shout_server::NoService>,
    ) -> ServerBuilder<Probe, shout_server::NoService>,
) -> Running {
    run(configure(
        ServerBuilder::tcp_only(probe.clone()).tcp(loopback()),
    ))
}

fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0];
    while line.len() < 1 << 20 {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(error) => panic!("a line arrives in time: {error}"),
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

#[test]
fn open_greets_before_the_client_says_anything() {
    let probe = Probe {
        greeting: "hello\n",
        ..Probe::default()
    };
    let server = probe_server(&probe, |builder| builder);
    let mut client = connect(server.tcp());
    assert_eq!(read_line(&mut client), "hello");
    let id = probe.journal.wait_opened(0);
    let info_local = server.tcp();
    client.write_all(b"ping\n").unwrap();
    assert_eq!(read_line(&mut client), "ping");
    drop(client);
    assert_eq!(probe.journal.wait_closed(id), CloseCause::ClientClosed);
    assert_eq!(
        probe.journal.of(id),
        [
            Seen::Opened,
            Seen::Line("ping".into()),
            Seen::End(EndReason::ClientClosed),
            Seen::Closed(CloseCause::ClientClosed)
        ]
    );
    assert_eq!(id.as_u64() >> 48, 0, "worker 0's connection: {info_local}");
}

#[test]
fn close_sends_the_answer_then_ends_the_stream_and_later_input_is_not_served() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder);
    let mut client = connect(server.tcp());
    client.write_all(b"quit\n").unwrap();
    // Sent right behind: discarded, never answered.
    client.write_all(b"after\n").unwrap();
    assert_eq!(read_to_end(&mut client), b"bye\n");
    drop(client);
    let id = probe.journal.wait_opened(0);
    assert_eq!(probe.journal.wait_closed(id), CloseCause::ServiceClosed);
    assert!(!probe.journal.of(id).contains(&Seen::Line("after".into())));
    assert!(
        !probe
            .journal
            .of(id)
            .iter()
            .any(|seen| matches!(seen, Seen::End(_))),
        "no end after the service closed: {:?}",
        probe.journal.of(id)
    );
}

#[test]
fn shutdown_write_ends_the_answer_and_keeps_reading() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder);
    let mut client = connect(server.tcp());
    client.write_all(b"half\n").unwrap();
    assert_eq!(read_to_end(&mut client), b"half\n", "the stream ends");
    // The server still reads: these lines reach the service.
    client.write_all(b"one\ntwo\n").unwrap();
    let id = probe.journal.wait_opened(0);
    wait_until("both lines are read", || {
        probe.journal.of(id).contains(&Seen::Line("two".into()))
    });
    client.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(probe.journal.wait_closed(id), CloseCause::ClientClosed);
    assert!(
        probe
            .journal
            .of(id)
            .contains(&Seen::End(EndReason::ClientClosed))
    );
}

#[test]
fn closed_comes_once_with_the_cause_of_a_reset_an_idle_timeout_and_a_stop() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| {
        builder.idle_timeout(Some(Duration::from_millis(300)))
    });
    // A reset.
    let client = connect(server.tcp());
    let reset = probe.journal.wait_opened(0);
    set_linger_zero(&client);
    drop(client);
    assert_eq!(probe.journal.wait_closed(reset), CloseCause::Reset);
    // The idle timeout.
    let idle = connect(server.tcp());
    let timed_out = probe.journal.wait_opened(1);
    assert_eq!(
        probe.journal.wait_closed(timed_out),
        CloseCause::IdleTimeout
    );
    drop(idle);
    // A stop: the quiet connection gets `end(Stopping)` and its last words.
    let mut client = connect(server.tcp());
    let stopped = probe.journal.wait_opened(2);
    let stats = server.stop();
    assert_eq!(read_to_end(&mut client), b"end\n");
    assert_eq!(probe.journal.wait_closed(stopped), CloseCause::Stopped);
    assert!(
        probe
            .journal
            .of(stopped)
            .contains(&Seen::End(EndReason::Stopping))
    );
    assert_eq!(stats.connections_closed, 3);
}

#[test]
fn a_stop_that_reaches_its_deadline_reports_stopped() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| {
        builder
            .drain_timeout(Duration::from_millis(300))
            .max_pending_output(1024)
    });
    let mut client = connect(server.tcp());
    // Output the client never reads keeps the connection busy past the
    // drain deadline.
    client.write_all(b"flood 8192\n").unwrap();
    let id = probe.journal.wait_opened(0);
    wait_until("the flood is asked", || {
        probe
            .journal
            .of(id)
            .contains(&Seen::Line("flood 8192".into()))
    });
    server.stop();
    assert_eq!(probe.journal.wait_closed(id), CloseCause::Stopped);
}

#[test]
fn a_timer_calls_back_once_and_a_cancelled_one_never() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder);
    let mut client = connect(server.tcp());
    client.write_all(b"timer 50\n").unwrap();
    assert_eq!(read_line(&mut client), "tick");
    let id = probe.journal.wait_opened(0);
    // Cancelled before it is due: the echo comes back, the tick never.
    client.write_all(b"timer 300\nuntimer\nlast\n").unwrap();
    assert_eq!(read_line(&mut client), "last");
    std::thread::sleep(Duration::from_millis(500));
    client.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut client), b"end\n");
    let timers = probe
        .journal
        .of(id)
        .iter()
        .filter(|seen| **seen == Seen::Timer)
        .count();
    assert_eq!(timers, 1);
}

#[test]
fn the_sender_writes_and_closes_from_another_thread() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder);
    let sender = server.handle.sender();
    let mut client = connect(server.tcp());
    let id = probe.journal.wait_opened(0);
    let from_thread = std::thread::spawn(move || {
        sender.send(id, b"pushed\n").unwrap();
        sender.close(id).unwrap();
        sender
    });
    let sender = join_within(from_thread, TIMEOUT).expect("sends return at once");
    assert_eq!(read_to_end(&mut client), b"pushed\n");
    drop(client);
    assert_eq!(probe.journal.wait_closed(id), CloseCause::ServiceClosed);
    assert_eq!(sender.send(id, b"late\n"), Err(SendError::Closed));
    assert_eq!(sender.close(id), Err(SendError::Closed));
}

#[test]
fn a_close_from_a_callback_sends_what_senders_queued_before_it() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder);
    let mut client = connect(server.tcp());
    client.write_all(b"push-quit\n").unwrap();
    // The call's own output first, then what was queued before the close.
    assert_eq!(read_to_end(&mut client), b"bye\npushed\n");
    let id = probe.journal.wait_opened(0);
    drop(client);
    assert_eq!(probe.journal.wait_closed(id), CloseCause::ServiceClosed);
}

#[test]
fn a_stale_id_is_closed_even_when_its_slot_is_reused() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder);
    let sender = server.handle.sender();
    let first = connect(server.tcp());
    let old = probe.journal.wait_opened(0);
    drop(first);
    probe.journal.wait_closed(old);
    // The next connection takes the same slot in the worker.
    let mut second = connect(server.tcp());
    let new = probe.journal.wait_opened(1);
    assert_ne!(old, new);
    assert_eq!(
        sender.send(old, b"for the old one\n"),
        Err(SendError::Closed)
    );
    second.write_all(b"mine\n").unwrap();
    assert_eq!(read_line(&mut second), "mine", "nothing else came first");
}

/// Sends `chunk` to connection `id` until it is `Full` for good: the socket
/// buffers take what they can as the worker flushes, so only a `Full` that
/// lasts for 20 tries 5 ms apart means they are full too. Returns the bytes
/// taken.
fn fill_until_full(
    sender: &shout_server::ConnectionSender,
    id: ConnectionId,
    chunk: &[u8],
) -> usize {
    let mut accepted = 0;
    let mut full_in_a_row = 0;
    for _ in 0..100_000 {
        match sender.send(id, chunk) {
            Ok(()) => {
                accepted += chunk.len();
                full_in_a_row = 0;
            }
            Err(SendError::Full) => {
                full_in_a_row += 1;
                if full_in_a_row == 20 {
                    return accepted;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(SendError::Closed) => panic!("the connection is open"),
        }
    }
    panic!("{accepted} bytes taken and never Full for good");
}

#[test]
fn a_connection_that_never_reads_fills_up_and_sends_fail_full_without_growing() {
    let limit = 64 * 1024;
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder.max_pending_output(limit));
    let sender = server.handle.sender();
    let client = connect(server.tcp());
    let id = probe.journal.wait_opened(0);
    let chunk = vec![b'x'; 4096];
    let accepted = fill_until_full(&sender, id, &chunk);
    assert!(accepted < 64 * 1024 * 1024, "{accepted} bytes taken");
    // Full at once, however many times: no queue grows behind it.
    for _ in 0..1000 {
        assert_eq!(sender.send(id, &chunk), Err(SendError::Full));
    }
    drop(client);
}

#[test]
fn a_broadcast_reaches_every_connection_and_skips_a_full_one() {
    let limit = 16 * 1024;
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| {
        builder.max_pending_output(limit).workers(2)
    });
    let sender = server.handle.sender();
    let mut readers: Vec<TcpStream> = (0..3).map(|_| connect(server.tcp())).collect();
    probe.journal.wait_opened(2);
    let outcome = sender.broadcast(b"all\n");
    assert_eq!(outcome.queued, 3);
    assert_eq!(outcome.skipped_full, 0);
    assert!(outcome.skipped.is_empty(), "{outcome:?}");
    for reader in &mut readers {
        assert_eq!(read_line(reader), "all");
    }
    // A fourth never reads: filled up, it misses broadcasts, others do not.
    let _silent = connect(server.tcp());
    let silent = probe.journal.wait_opened(3);
    fill_until_full(&sender, silent, &[b'f'; 1024]);
    let outcome = sender.broadcast(&[b'b'; 2048]);
    assert_eq!(outcome.queued, 3, "{outcome:?}");
    assert_eq!(outcome.skipped_full, 1, "{outcome:?}");
    assert_eq!(outcome.skipped, [silent], "{outcome:?}");
    for reader in &mut readers {
        assert_eq!(read_exactly(reader, 2048), [b'b'; 2048]);
    }
}

#[test]
fn writable_changed_tells_a_service_its_client_stopped_reading_and_came_back() {
    let limit = 64 * 1024;
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder.max_pending_output(limit));
    let mut client = connect(server.tcp());
    let id = probe.journal.wait_opened(0);
    // Far more than the socket buffers hold, so the output stays above the limit.
    let asked = 16 * 1024;
    client
        .write_all(format!("flood {asked}\n").as_bytes())
        .unwrap();
    wait_until("the service hears the output is full", || {
        probe.journal.of(id).contains(&Seen::Writable(false))
    });
    assert!(!probe.journal.of(id).contains(&Seen::Writable(true)));
    let got = read_exactly(&mut client, asked * 1024);
    assert!(got.iter().all(|&byte| byte == b'f'));
    wait_until("the service hears it drained", || {
        probe.journal.of(id).contains(&Seen::Writable(true))
    });
}

/// Broadcasts `chunk` until every connection but `except` is full for good
/// (as [`fill_until_full`] tells it), `expected` of them.
fn broadcast_until_full(
    sender: &shout_server::ConnectionSender,
    chunk: &[u8],
    except: ConnectionId,
    expected: usize,
) {
    let mut full_in_a_row = 0;
    for _ in 0..100_000 {
        let outcome = sender.broadcast_except(chunk, Some(except));
        if outcome.skipped_full == expected {
            full_in_a_row += 1;
            if full_in_a_row == 20 {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        } else {
            full_in_a_row = 0;
        }
    }
    panic!("never full for good");
}

#[test]
fn writable_changed_tells_a_service_its_output_from_senders_is_full() {
    let limit = 64 * 1024;
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder.max_pending_output(limit));
    let sender = server.handle.sender();
    // Neither client reads: one gets its output from `send`, the other
    // from `broadcast`, never from a callback.
    let mut by_send = connect(server.tcp());
    let sent_to = probe.journal.wait_opened(0);
    let _by_broadcast = connect(server.tcp());
    let broadcast_to = probe.journal.wait_opened(1);
    // 3,000 bytes: no number of them adds up to the limit exactly, so the
    // output never reaches it.
    let chunk = [b'x'; 3000];
    let filling = std::thread::spawn(move || {
        let accepted = fill_until_full(&sender, sent_to, &chunk);
        broadcast_until_full(&sender, &chunk, sent_to, 1);
        accepted
    });
    let accepted = join_within(filling, TIMEOUT).expect("sends return at once");
    for id in [sent_to, broadcast_to] {
        wait_until("the service hears the output is full", || {
            probe.journal.of(id).contains(&Seen::Writable(false))
        });
    }
    assert!(!probe.journal.of(sent_to).contains(&Seen::Writable(true)));
    let got = read_exactly(&mut by_send, accepted);
    assert!(got.iter().all(|&byte| byte == b'x'));
    wait_until("the service hears it drained", || {
        probe.journal.of(sent_to).contains(&Seen::Writable(true))
    });
}

#[test]
fn a_panic_costs_its_connection_only_and_is_counted() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder);
    let mut bystander = connect(server.tcp());
    let bystander_id = probe.journal.wait_opened(0);
    let mut victim = connect(server.tcp());
    let victim_id = probe.journal.wait_opened(1);
    victim.write_all(b"ok\n").unwrap();
    assert_eq!(read_line(&mut victim), "ok");
    // What the panicking call wrote is discarded with it.
    victim.write_all(b"lost\nboom\n").unwrap();
    // Closed: an end of stream or a reset, and nothing more.
    let mut rest = Vec::new();
    match victim.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{rest:?}"),
        Err(error) => assert_eq!(error.kind(), ErrorKind::ConnectionReset),
    }
    assert_eq!(probe.journal.wait_closed(victim_id), CloseCause::Panicked);
    // Everyone else is served on, old and new.
    bystander.write_all(b"still\n").unwrap();
    assert_eq!(read_line(&mut bystander), "still");
    let mut newcomer = connect(server.tcp());
    newcomer.write_all(b"new\n").unwrap();
    assert_eq!(read_line(&mut newcomer), "new");
    assert_eq!(server.handle.stats().service_panics, 1);
    drop((bystander, newcomer));
    assert_eq!(
        probe.journal.wait_closed(bystander_id),
        CloseCause::ClientClosed
    );
    let stats = server.stop();
    assert_eq!(stats.service_panics, 1);
}

/// Panics in `open` on every second connection, and in `closed` always.
struct Fragile(Arc<Mutex<u32>>);

impl StreamService for Fragile {
    type Session = ();

    fn open(&self, _: &mut ConnectionContext<'_>) {
        let mut opened = self.0.lock().unwrap();
        *opened += 1;
        if *opened % 2 == 0 {
            drop(opened);
            panic!("open fails");
        }
    }

    fn data(&self, _: &mut (), input: &[u8], conn: &mut ConnectionContext<'_>) {
        conn.write(input);
    }

    fn closed(&self, _: (), _: &ConnectionInfo, _: CloseCause) {
        panic!("closed fails");
    }
}

#[test]
fn panics_in_open_and_closed_are_caught_and_counted_too() {
    let server = run(ServerBuilder::tcp_only(Fragile(Arc::default())).tcp(loopback()));
    let mut first = connect(server.tcp());
    round_trip_echo(&mut first, b"one");
    let mut second = connect(server.tcp());
    assert_eq!(read_to_end_or_reset(&mut second), b"", "never served");
    drop(first);
    wait_until("two panics are counted", || {
        server.handle.stats().service_panics == 2
    });
    let mut third = connect(server.tcp());
    round_trip_echo(&mut third, b"three");
}

#[test]
fn a_panic_in_open_gives_the_source_its_share_back() {
    // One connection per source: a share kept by the connection that never
    // opened would refuse every later client from 127.0.0.1.
    let server = run(ServerBuilder::tcp_only(Fragile(Arc::default()))
        .tcp(loopback())
        .max_connections_per_source(1));
    let mut first = connect(server.tcp());
    round_trip_echo(&mut first, b"one");
    drop(first);
    wait_until("the first connection to close", || {
        server.handle.stats().connections_closed == 1
    });
    let mut second = connect(server.tcp());
    assert_eq!(read_to_end_or_reset(&mut second), b"", "never served");
    wait_until("the panic in open to be counted", || {
        server.handle.stats().service_panics == 2
    });
    let mut third = connect(server.tcp());
    round_trip_echo(&mut third, b"three");
    assert_eq!(server.handle.stats().connections_refused_per_source, 0);
}

fn round_trip_echo(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).unwrap();
    assert_eq!(read_exactly(stream, bytes.len()), bytes);
}

fn read_to_end_or_reset(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    match stream.read_to_end(&mut all) {
        Ok(_) => all,
        Err(error) if error.kind() == ErrorKind::ConnectionReset => all,
        Err(error) => panic!("{error}"),
    }
}

/// Notes the name of the thread each connection opens on.
#[derive(Clone, Default)]
struct ThreadNames(Arc<Mutex<Vec<Option<String>>>>);

impl StreamService for ThreadNames {
    type Session = ();

    fn open(&self, _: &mut ConnectionContext<'_>) {
        let name = std::thread::current().name().map(str::to_owned);
        self.0.lock().unwrap().push(name);
    }

    fn data(&self, _: &mut (), _: &[u8], _: &mut ConnectionContext<'_>) {}
}

#[test]
fn worker_threads_are_named_after_the_library_or_as_the_embedder_says() {
    for (asked, expected) in [(None, "shout-worker-1"), (Some("kv"), "kv-1")] {
        let names = ThreadNames::default();
        let mut builder = ServerBuilder::tcp_only(names.clone())
            .tcp(loopback())
            .workers(2);
        if let Some(prefix) = asked {
            builder = builder.worker_thread_name(prefix);
        }
        let server = run(builder);
        // SO_REUSEPORT spreads connections by their addresses: with 32, the
        // chance that worker 1 gets none is 2^-32.
        let _clients: Vec<TcpStream> = (0..32).map(|_| connect(server.tcp())).collect();
        wait_until("every connection to open", || {
            names.0.lock().unwrap().len() == 32
        });
        let names = names.0.lock().unwrap();
        assert!(
            names.iter().any(|name| name.as_deref() == Some(expected)),
            "{names:?}"
        );
        // Worker 0 runs on the thread that called `run`: here an unnamed one.
        assert!(
            names
                .iter()
                .all(|name| name.is_none() || name.as_deref() == Some(expected)),
            "{names:?}"
        );
    }
}

/// Echoes datagrams, and panics on `boom`.
struct FragileEcho;

impl DatagramService for FragileEcho {
    fn datagram(&self, request: &[u8], _: SocketAddr, reply: &mut Vec<u8>) -> DatagramReply {
        assert!(request != b"boom", "boom on purpose");
        reply.extend_from_slice(request);
        DatagramReply::Send
    }
}

#[test]
fn a_udp_only_server_needs_no_stream_service_and_survives_a_datagram_panic() {
    let server = run(ServerBuilder::udp_only(FragileEcho).udp(loopback()));
    assert!(server.handle.tcp_addrs().is_empty());
    let client = UdpSocket::bind(loopback()).unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.send_to(b"boom", server.udp()).unwrap();
    client.send_to(b"echo", server.udp()).unwrap();
    let mut reply = [0; 16];
    let (len, _) = client.recv_from(&mut reply).unwrap();
    assert_eq!(&reply[..len], b"echo", "the panic's datagram got no reply");
    let stats = server.stop();
    assert_eq!(stats.service_panics, 1);
    assert_eq!(stats.datagrams_dropped, 1);
}

#[test]
fn a_server_of_one_kind_refuses_an_address_of_the_other() {
    let tcp_only = ServerBuilder::tcp_only(Probe::default())
        .tcp(loopback())
        .udp(loopback())
        .build();
    assert!(
        matches!(tcp_only, Err(shout_server::ServerError::InvalidSetting(_))),
        "{:?}",
        tcp_only.err()
    );
    let udp_only = ServerBuilder::udp_only(FragileEcho).tcp(loopback()).build();
    assert!(matches!(
        udp_only,
        Err(shout_server::ServerError::InvalidSetting(_))
    ));
}

#[test]
fn a_closed_connection_whose_client_keeps_its_socket_is_gone_for_the_service_at_its_end() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder);
    let sender = server.handle.sender();
    let mut listener = connect(server.tcp());
    let member = probe.journal.wait_opened(0);
    // Closed by the service, and by a sender; both clients read the end of
    // stream and keep their sockets open, as the trial's client did.
    let mut quitter = connect(server.tcp());
    let quit = probe.journal.wait_opened(1);
    quitter.write_all(b"quit\n").unwrap();
    assert_eq!(read_to_end(&mut quitter), b"bye\n");
    let mut dropped = connect(server.tcp());
    let by_sender = probe.journal.wait_opened(2);
    sender.send(by_sender, b"last\n").unwrap();
    sender.close(by_sender).unwrap();
    assert_eq!(read_to_end(&mut dropped), b"last\n");

    assert_eq!(probe.journal.wait_closed(quit), CloseCause::ServiceClosed);
    assert_eq!(
        probe.journal.wait_closed(by_sender),
        CloseCause::ServiceClosed
    );
    for gone in [quit, by_sender] {
        assert_eq!(sender.send(gone, b"late\n"), Err(SendError::Closed));
        assert_eq!(sender.close(gone), Err(SendError::Closed));
    }
    let outcome = sender.broadcast(b"all\n");
    assert_eq!(
        outcome.queued, 1,
        "only the member still there: {outcome:?}"
    );
    assert_eq!(read_line(&mut listener), "all");
    assert!(probe.journal.closes(member).is_empty());
    drop((quitter, dropped));
}

#[test]
fn a_lingering_connection_is_cut_at_the_linger_timeout_and_counted() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| {
        builder.linger_timeout(Duration::from_millis(200))
    });
    let mut client = connect(server.tcp());
    client.write_all(b"quit\n").unwrap();
    assert_eq!(read_to_end(&mut client), b"bye\n");
    // The client keeps its socket open and sends nothing: well before the
    // idle timeout (300 s), the linger timeout closes it.
    wait_until("the lingering connection is closed", || {
        server.handle.stats().connections_closed == 1
    });
    let stats = server.handle.stats();
    assert_eq!(stats.linger_timeouts, 1, "{stats}");
    assert_eq!(stats.closed_by_service, 1, "its cause stands: {stats}");
    assert_eq!(stats.idle_timeouts, 0, "{stats}");
    let id = probe.journal.wait_opened(0);
    assert_eq!(probe.journal.wait_closed(id), CloseCause::ServiceClosed);
    drop(client);
}

#[test]
fn a_client_that_closes_while_its_connection_lingers_ends_it_uncounted_as_a_timeout() {
    let probe = Probe::default();
    let server = probe_server(&probe, |builder| builder);
    let mut client = connect(server.tcp());
    client.write_all(b"quit\n").unwrap();
    assert_eq!(read_to_end(&mut client), b"bye\n");
    let id = probe.journal.wait_opened(0);
    assert_eq!(probe.journal.wait_closed(id), CloseCause::ServiceClosed);
    drop(client);
    wait_until("the socket is closed", || {
        server.handle.stats().connections_closed == 1
    });
    let stats = server.stop();
    assert_eq!((stats.linger_timeouts, stats.closed_by_service), (0, 1));
}

#[test]
fn a_connection_closed_or_half_closed_is_gone_for_senders_while_its_output_drains() {
    let limit = 16 * 1024;
    let probe = Probe::default();
    // Clients that never read hold the stop to its drain deadline.
    let server = probe_server(&probe, |builder| {
        builder
            .max_pending_output(limit)
            .drain_timeout(Duration::from_millis(100))
    });
    let sender = server.handle.sender();
    // Three clients that never read, their outputs full.
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(server.tcp())).collect();
    let ids: Vec<ConnectionId> = (0..3).map(|nth| probe.journal.wait_opened(nth)).collect();
    // Chunks that never add up to the limit exactly: the loop still
    // reads these connections.
    // Filled side by side: the kernel's buffers take megabytes each first.
    std::thread::scope(|scope| {
        for &id in &ids {
            let sender = &sender;
            scope.spawn(move || fill_until_full(sender, id, &[b'f'; 4000]));
        }
    });
    // Closed by a sender, closed by its service, half-closed by its service.
    sender.close(ids[0]).unwrap();
    clients[1].write_all(b"quit\n").unwrap();
    clients[2].write_all(b"half\n").unwrap();
    for &id in &ids {
        wait_until(
            &format!("sends to {id:?} are refused as to a closed one"),
            || sender.send(id, b"late\n") == Err(SendError::Closed),
        );
    }
    // None of them can send again: a broadcast neither reaches nor
    // names them.
    let outcome = sender.broadcast(b"all\n");
    assert_eq!(
        (outcome.queued, outcome.skipped_full),
        (0, 0),
        "{outcome:?}"
    );
    // Their output still waits for the clients, so no end of stream went
    // out and their sessions are still there; the half-closed one still
    // reads.
    assert!(ids.iter().all(|&id| probe.journal.closes(id).is_empty()));
    clients[2].write_all(b"still\n").unwrap();
    wait_until("the half-closed connection still reads", || {
        probe
            .journal
            .of(ids[2])
            .contains(&Seen::Line("still".into()))
    });
    assert_eq!(sender.close(ids[0]), Ok(()), "asking twice is harmless");
}
