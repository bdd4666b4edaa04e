//! The examples' services, compiled from `examples/*.rs` into this test
//! binary (so they are always the current code) and run on the library
//! server over loopback. Each example's `main` only parses its address,
//! builds the same server and prints its `listening` lines.

use crate::support::*;
use shout_server::ServerBuilder;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[allow(dead_code)]
#[path = "../../examples/chat.rs"]
mod chat;
#[allow(dead_code)]
#[path = "../../examples/kv.rs"]
mod kv;
#[allow(dead_code)]
#[path = "../../examples/pubsub.rs"]
mod pubsub;
#[allow(dead_code)]
#[path = "../../examples/rot13.rs"]
mod rot13;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn kv_server(workers: usize) -> Running {
    run(ServerBuilder::tcp_only(kv::Store::default())
        .tcp(loopback())
        .workers(workers))
}

struct LineClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl LineClient {
    fn connect(addr: SocketAddr) -> Self {
        let stream = connect(addr);
        Self {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn local(&self) -> SocketAddr {
        self.writer.local_addr().unwrap()
    }

    fn send(&mut self, line: &str) {
        // One write: two small ones would wait on Nagle and a delayed ack.
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a line in time");
        assert!(line.ends_with('\n'), "the stream ended: {line:?}");
        line.pop();
        line
    }

    fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.line()
    }

    /// Returns the next line that is not a `PING`, answering each `PING`
    /// before it with a `PONG`.
    fn line_answering_pings(&mut self) -> String {
        loop {
            let line = self.line();
            if line != "PING" {
                return line;
            }
            self.send("PONG");
        }
    }

    /// Sends `line` and returns the answer, answering `PING`s meanwhile.
    fn ask_answering_pings(&mut self, line: &str) -> String {
        self.send(line);
        self.line_answering_pings()
    }
}

#[test]
fn kv_answers_set_get_errors_and_quit() {
    let server = kv_server(1);
    let mut client = LineClient::connect(server.tcp());
    assert_eq!(client.ask("GET nothing"), "NOT_FOUND");
    assert_eq!(client.ask("SET colour deep blue"), "OK");
    assert_eq!(client.ask("GET colour"), "deep blue");
    assert!(client.ask("DELETE colour").starts_with("ERR"));
    assert!(client.ask("SET lonely").starts_with("ERR"));
    assert!(client.ask("").starts_with("ERR"));
    assert_eq!(client.ask("QUIT"), "BYE");
    let mut rest = String::new();
    client.reader.read_line(&mut rest).expect("closed in time");
    assert_eq!(rest, "", "the server closed the connection after BYE");
}

#[test]
fn kv_answers_a_line_too_long_with_an_error_and_closes() {
    let server = kv_server(1);
    let mut client = LineClient::connect(server.tcp());
    assert_eq!(client.ask("SET a 1"), "OK");
    client.send(&format!("SET big {}", "v".repeat(64 * 1024)));
    assert_eq!(client.line(), "ERR line too long");
    let mut rest = String::new();
    client.reader.read_line(&mut rest).expect("closed in time");
    assert_eq!(rest, "", "the server closed the connection");
}

#[test]
fn kv_takes_commands_one_byte_per_packet() {
    let server = kv_server(1);
    let mut client = LineClient::connect(server.tcp());
    client.writer.set_nodelay(true).unwrap();
    for byte in b"SET k v1\nGET k\n" {
        client.writer.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(client.line(), "OK");
    assert_eq!(client.line(), "v1");
}

#[test]
fn kv_shares_its_store_across_connections_and_workers() {
    let server = kv_server(2);
    let addr = server.tcp();
    // Sixteen connections: the kernel spreads them over both workers (all
    // on one has odds of 2^-15).
    let mut clients: Vec<LineClient> = (0..16).map(|_| LineClient::connect(addr)).collect();
    for (n, client) in clients.iter_mut().enumerate() {
        assert_eq!(client.ask(&format!("SET key{n} value{n}")), "OK");
    }
    for client in &mut clients {
        for n in 0..16 {
            assert_eq!(client.ask(&format!("GET key{n}")), format!("value{n}"));
        }
    }
}

/// Joins the chat at `addr` and reads its welcome.
fn chat_member(addr: SocketAddr) -> LineClient {
    let mut member = LineClient::connect(addr);
    let welcome = member.line();
    assert!(welcome.starts_with("welcome"), "{welcome}");
    member
}

#[test]
fn chat_welcomes_passes_lines_to_the_others_and_says_who_left() {
    let server = run(ServerBuilder::tcp_only(chat::Chat::default()).tcp(loopback()));
    let addr = server.tcp();
    let mut ann = chat_member(addr);
    let mut bob = chat_member(addr);
    let mut cat = chat_member(addr);

    ann.send("hello all");
    let from_ann = format!("{}: hello all", ann.local());
    assert_eq!(bob.line(), from_ann);
    assert_eq!(cat.line(), from_ann);
    bob.send("hi ann");
    // Ann's next line is Bob's: her own never came back to her.
    assert_eq!(ann.line(), format!("{}: hi ann", bob.local()));
    assert_eq!(cat.line(), format!("{}: hi ann", bob.local()));

    let cat_addr = cat.local();
    drop(cat);
    for member in [&mut ann, &mut bob] {
        let line = member.line();
        assert!(
            line.contains("left") && line.contains(&cat_addr.to_string()),
            "{line}"
        );
    }
}

#[test]
fn chat_tells_a_member_its_line_is_too_long_and_passes_the_next() {
    let server = run(ServerBuilder::tcp_only(chat::Chat::default()).tcp(loopback()));
    let addr = server.tcp();
    let mut ann = chat_member(addr);
    let mut bob = chat_member(addr);
    ann.send(&"y".repeat(5000));
    assert_eq!(ann.line(), "line too long, not sent");
    ann.send("short");
    // Bob's first line is the short one: nothing of the long one came.
    assert_eq!(bob.line(), format!("{}: short", ann.local()));
}

#[test]
fn chat_drops_lines_for_a_member_that_never_reads_and_the_room_goes_on() {
    let _heavy = heavy_test();
    let room = chat::Chat::default();
    let dropped = Arc::clone(&room.dropped);
    let server = run(ServerBuilder::tcp_only(room).tcp(loopback()));
    let addr = server.tcp();
    let mut talker = chat_member(addr);
    let silent = connect(addr);
    let mut listener = chat_member(addr);
    // The listener reads on its own thread while the talker floods: 16 MiB
    // of lines, far more than the silent member's socket buffers and its
    // output limit hold.
    let reading = std::thread::spawn(move || {
        let mut got = 0u64;
        loop {
            let line = listener.line();
            if line.ends_with("done") {
                return got;
            }
            got += 1;
        }
    });
    let line = "x".repeat(1023);
    let lines = 16 * 1024;
    for _ in 0..lines {
        talker.send(&line);
    }
    // The room goes on: the listener gets a marker once it has room for it
    // (one sent while its own output is full is dropped for it too).
    for _ in 0..100 {
        talker.send("done");
        if reading.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = join_within(reading, TIMEOUT).expect("the listener is not stalled");
    assert!(got > 0, "the listener got none of the flood");
    assert!(
        dropped.load(Ordering::Relaxed) > 0,
        "the silent member got every line: its output was not bounded"
    );
    drop(silent);
}

#[test]
fn chat_disconnects_a_member_whose_output_stays_full_and_the_room_goes_on() {
    let _heavy = heavy_test();
    let room = chat::Chat::default();
    let disconnected = Arc::clone(&room.disconnected);
    let server = run(ServerBuilder::tcp_only(room)
        .tcp(loopback())
        .max_pending_output(16 * 1024));
    let addr = server.tcp();
    let mut talker = chat_member(addr);
    let mut silent = connect(addr);
    let mut listener = chat_member(addr);
    let reading = std::thread::spawn(move || while !listener.line().ends_with("done") {});
    // The silent member's output comes only from the talker's broadcasts.
    let line = "x".repeat(1023);
    let bound = std::time::Instant::now() + TIMEOUT + chat::FULL_FOR;
    while disconnected.load(Ordering::Relaxed) == 0 {
        assert!(
            std::time::Instant::now() < bound,
            "the silent member was never disconnected"
        );
        for _ in 0..64 {
            talker.send(&line);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        disconnected.load(Ordering::Relaxed),
        1,
        "the listener stays"
    );
    for _ in 0..100 {
        talker.send("done");
        if reading.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    join_within(reading, TIMEOUT).expect("the listener is not stalled");
    // Disconnected: what it held comes, then the end of the stream.
    let held = read_to_end(&mut silent);
    assert!(held.starts_with(b"welcome"), "{held:?}");
}

#[test]
fn chat_disconnects_a_member_whose_own_answers_fill_its_output() {
    let _heavy = heavy_test();
    let room = chat::Chat::default();
    let disconnected = Arc::clone(&room.disconnected);
    let server = run(ServerBuilder::tcp_only(room)
        .tcp(loopback())
        .max_pending_output(16 * 1024));
    let addr = server.tcp();
    // A member that reads nothing, through a small receive buffer, and
    // sends only lines too long to pass on: its output comes only from its
    // own callbacks ("line too long, not sent"), none from broadcasts.
    let silent = connect_with_receive_buffer(addr, 4096);
    let writer = {
        let mut silent = silent.try_clone().unwrap();
        let disconnected = Arc::clone(&disconnected);
        silent
            .set_write_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        std::thread::spawn(move || {
            let mut line = vec![b'x'; chat::MAX_LINE + 1];
            line.push(b'\n');
            let bound = std::time::Instant::now() + TIMEOUT + chat::FULL_FOR;
            while disconnected.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < bound {
                // A timeout is the server not reading: its output is full.
                if let Err(error) = silent.write_all(&line)
                    && !matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                {
                    break;
                }
            }
        })
    };
    join_within(writer, TIMEOUT + chat::FULL_FOR + TIMEOUT).expect("the writer ends");
    assert_eq!(
        disconnected.load(Ordering::Relaxed),
        1,
        "the silent member is disconnected for its own answers"
    );
    // The room goes on.
    let mut ann = chat_member(addr);
    let mut bob = chat_member(addr);
    ann.send("still here");
    assert!(bob.line().ends_with(": still here"));
    drop(silent);
}

/// Connects to `addr` with a receive buffer of about `bytes`, set before
/// the handshake so that the window the server sees is small.
fn connect_with_receive_buffer(addr: SocketAddr, bytes: usize) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    socket.set_recv_buffer_size(bytes).unwrap();
    socket.connect_timeout(&addr.into(), TIMEOUT).unwrap();
    socket.into()
}

fn pubsub_server() -> Running {
    run(ServerBuilder::tcp_only(pubsub::PubSub::default()).tcp(loopback()))
}

#[test]
fn pubsub_passes_messages_to_subscribers_and_counts_them() {
    let server = pubsub_server();
    let addr = server.tcp();
    let mut ann = LineClient::connect(addr);
    let mut bob = LineClient::connect(addr);
    let mut cat = LineClient::connect(addr);
    assert_eq!(ann.ask_answering_pings("SUB news"), "OK");
    assert_eq!(bob.ask_answering_pings("SUB news"), "OK");
    assert_eq!(bob.ask_answering_pings("SUB sport"), "OK");
    assert_eq!(cat.ask_answering_pings("PUB news it rains"), "OK 2");
    assert_eq!(ann.line_answering_pings(), "MSG news it rains");
    assert_eq!(bob.line_answering_pings(), "MSG news it rains");
    assert_eq!(ann.ask_answering_pings("UNSUB news"), "OK");
    assert_eq!(cat.ask_answering_pings("PUB news it stopped"), "OK 1");
    assert_eq!(bob.line_answering_pings(), "MSG news it stopped");
    assert_eq!(cat.ask_answering_pings("PUB weather none"), "OK 0");
    assert!(cat.ask_answering_pings("PUB lonely").starts_with("ERR"));
    assert!(cat.ask_answering_pings("SUB").starts_with("ERR"));
    assert!(cat.ask_answering_pings("HELLO").starts_with("ERR"));
    // Ann's next line is Bob's message: nothing of "news" came after her
    // UNSUB.
    assert_eq!(bob.ask_answering_pings("PUB sport goal"), "OK 1");
    assert_eq!(bob.line_answering_pings(), "MSG sport goal");
    assert_eq!(cat.ask_answering_pings("SUB sport"), "OK");
    assert_eq!(ann.ask_answering_pings("PUB sport again"), "OK 2");
    assert_eq!(ann.ask_answering_pings("PUB news late"), "OK 1");
    assert_eq!(bob.line_answering_pings(), "MSG sport again");
    assert_eq!(bob.line_answering_pings(), "MSG news late");
}

#[test]
fn pubsub_forgets_the_topics_of_a_closed_connection() {
    let server = pubsub_server();
    let addr = server.tcp();
    let mut gone = LineClient::connect(addr);
    assert_eq!(gone.ask_answering_pings("SUB news"), "OK");
    let mut publisher = LineClient::connect(addr);
    assert_eq!(publisher.ask_answering_pings("PUB news one"), "OK 1");
    drop(gone);
    wait_until("the closed subscriber leaves its topic", || {
        publisher.ask_answering_pings("PUB news two") == "OK 0"
    });
}

#[test]
fn pubsub_says_bye_to_a_connection_that_does_not_answer_its_pings() {
    let server = pubsub_server();
    let mut silent = LineClient::connect(server.tcp());
    let started = std::time::Instant::now();
    let mut pings = 0;
    let last = loop {
        let line = silent.line();
        if line != "PING" {
            break line;
        }
        pings += 1;
    };
    assert_eq!(last, "BYE timeout");
    // The first PING after 500 ms, BYE 1.5 s after it: two more PINGs
    // came in between (at 1 s and 1.5 s), maybe a third at the edge.
    assert!((3..=4).contains(&pings), "{pings} PINGs before the BYE");
    assert!(started.elapsed() >= pubsub::PING_EVERY + pubsub::PONG_WITHIN);
    let mut rest = String::new();
    silent.reader.read_line(&mut rest).expect("closed in time");
    assert_eq!(rest, "", "closed after BYE");
}

#[test]
fn pubsub_forgets_a_subscriber_told_bye_at_its_end_of_stream_though_it_keeps_its_socket() {
    let server = pubsub_server();
    let addr = server.tcp();
    let mut silent = LineClient::connect(addr);
    assert_eq!(silent.ask_answering_pings("SUB news"), "OK");
    // It answers no PING from now on: BYE, then the end of stream, which
    // it reads while keeping its socket open.
    let bye = (0..10).map(|_| silent.line()).find(|line| line != "PING");
    assert_eq!(bye.as_deref(), Some("BYE timeout"));
    let mut rest = String::new();
    silent
        .reader
        .read_line(&mut rest)
        .expect("the end of stream");
    assert_eq!(rest, "", "closed after BYE");
    // Its session ended with that end of stream: not a subscriber any more.
    let mut publisher = LineClient::connect(addr);
    assert_eq!(publisher.ask_answering_pings("PUB news gone?"), "OK 0");
    drop(silent);
}

#[test]
fn pubsub_keeps_a_connection_that_answers_its_pings() {
    let server = pubsub_server();
    let mut client = LineClient::connect(server.tcp());
    // Seven PINGs answered: well past the 1.5 s deadline, which each
    // PONG cancels.
    let mut pongs = 0;
    while pongs < 7 {
        assert_eq!(client.line(), "PING");
        client.send("PONG");
        pongs += 1;
    }
    assert_eq!(client.ask_answering_pings("SUB alive"), "OK");
    assert_eq!(client.ask_answering_pings("PUB alive yes"), "OK 1");
    assert_eq!(client.line_answering_pings(), "MSG alive yes");
}

#[test]
fn rot13_still_serves_tcp_and_udp() {
    let server = run(ServerBuilder::new(rot13::Rot13, rot13::Rot13)
        .tcp(loopback())
        .udp(loopback()));
    let mut client = connect(server.tcp());
    client.write_all(b"Hello").unwrap();
    assert_eq!(read_exactly(&mut client, 5), b"Uryyb");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(TIMEOUT)).unwrap();
    udp.send_to(b"abc", server.udp()).unwrap();
    let mut reply = [0; 8];
    let (len, _) = udp.recv_from(&mut reply).unwrap();
    assert_eq!(&reply[..len], b"nop");
}
