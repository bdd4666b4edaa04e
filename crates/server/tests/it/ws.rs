//! WebSocket listeners over real loopback sockets, driven by a client
//! written here frame by frame (RFC 6455 §5), so each rule is tested on
//! the wire: the upgrade and its refusals, replies, fragments and pings,
//! the close handshake, every close code the server sends, backpressure,
//! the deadline and the stop.

use crate::support::*;
use shout_server::{ServerBuilder, Stats, Uppercase, WebSocketConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn server(config: WebSocketConfig, handshake: Duration) -> Running {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    run(ServerBuilder::tcp_only(Uppercase)
        .websocket(loopback, config.page(&b"<p>the page</p>"[..]))
        .max_pending_output(64 * 1024)
        .handshake_timeout(handshake))
}

fn ws_addr(server: &Running) -> SocketAddr {
    server.handle.ws_addrs()[0]
}

/// Sends `head` and returns the server's response head, up to the blank
/// line.
fn http(stream: &mut (impl Read + Write), head: &str) -> String {
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = Vec::new();
    let mut byte = [0];
    while !response.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "ended in the head");
        response.push(byte[0]);
    }
    String::from_utf8(response).unwrap()
}

fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Connects and upgrades.
fn open(addr: SocketAddr) -> TcpStream {
    let mut stream = connect(addr);
    let response = http(&mut stream, &upgrade_request(""));
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    stream
}

/// A client frame: `first` is FIN, RSV and opcode; masked unless told.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [0xa1, 0x07, 0x5c, 0xee];
    let mut out = vec![first];
    let bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(bit | n as u8),
        n @ 126..=65535 => {
            out.push(bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if !masked {
        out.extend_from_slice(payload);
        return out;
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one server frame: its first byte and payload. Server frames are
/// never masked.
fn read_frame(stream: &mut impl Read) -> (u8, Vec<u8>) {
    let head = take(stream, 2);
    assert_eq!(head[1] & 0x80, 0, "a server frame is not masked");
    let len = match head[1] & 0x7f {
        126 => u16::from_be_bytes(take(stream, 2).try_into().unwrap()) as usize,
        127 => u64::from_be_bytes(take(stream, 8).try_into().unwrap()) as usize,
        n => n as usize,
    };
    (head[0], take(stream, len))
}

/// Reads exactly `len` bytes (the stream's read timeout bounds the wait).
fn take(stream: &mut impl Read, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    stream
        .read_exact(&mut bytes)
        .expect("the bytes arrive in time");
    bytes
}

/// Reads one whole data message (its fragments joined): its opcode and
/// payload.
fn read_message(stream: &mut impl Read) -> (u8, Vec<u8>) {
    let (first, mut payload) = read_frame(stream);
    let opcode = first & 0x0f;
    assert!(opcode == 1 || opcode == 2, "not a data frame: {first:#x}");
    let mut fin = first & 0x80 != 0;
    while !fin {
        let (next, more) = read_frame(stream);
        assert_eq!(next & 0x0f, 0, "a continuation");
        payload.extend(more);
        fin = next & 0x80 != 0;
    }
    (opcode, payload)
}

/// Reads the server's close frame (after any data frames), then the end
/// of the stream. Returns its code.
fn read_close(stream: &mut TcpStream) -> u16 {
    let (mut first, mut payload) = read_frame(stream);
    while first & 0x0f < 8 {
        (first, payload) = read_frame(stream);
    }
    assert_eq!(first, 0x88, "a close frame");
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("the server ends the stream");
    assert!(rest.is_empty(), "nothing after the close frame: {rest:?}");
    u16::from_be_bytes([payload[0], payload[1]])
}

fn stats(server: &Running) -> Stats {
    server.handle.stats()
}

#[test]
fn messages_are_answered_one_by_one_in_their_kind_and_the_close_is_echoed() {
    let server = server(WebSocketConfig::new(), TIMEOUT);
    let mut ws = open(ws_addr(&server));
    ws.write_all(&frame(0x81, "straße".as_bytes(), true))
        .unwrap();
    assert_eq!(read_message(&mut ws), (1, "STRASSE".as_bytes().to_vec()));
    ws.write_all(&frame(0x82, b"bin\xff", true)).unwrap();
    assert_eq!(read_message(&mut ws), (2, b"BIN\xff".to_vec()));
    // Fragments with a ping between them: one message, and the pong
    // carries the ping's payload.
    let mut input = frame(0x01, b"frag", true);
    input.extend(frame(0x89, b"ping!", true));
    input.extend(frame(0x80, b"mented", true));
    ws.write_all(&input).unwrap();
    let mut saw_pong = false;
    let mut reply = Vec::new();
    while reply != b"FRAGMENTED" {
        let (first, payload) = read_frame(&mut ws);
        match first & 0x0f {
            0xA => {
                assert_eq!(payload, b"ping!");
                saw_pong = true;
            }
            _ => reply.extend(payload),
        }
    }
    assert!(saw_pong);
    // A 200 kB message comes back whole, whatever the reads cut.
    let big = "abc ".repeat(50_000);
    ws.write_all(&frame(0x81, big.as_bytes(), true)).unwrap();
    assert_eq!(read_message(&mut ws).1, big.to_uppercase().as_bytes());

    ws.write_all(&frame(0x88, &[0x0f, 0xa0, b'b', b'y', b'e'], true))
        .unwrap();
    assert_eq!(read_close(&mut ws), 4000, "the client's code, echoed");
    drop(ws);
    wait_until("the close counted", || {
        stats(&server).connections_closed == 1
    });
    let stats = server.stop();
    assert_eq!(stats.ws_upgrades, 1, "{stats}");
    assert_eq!(stats.ws_messages_in, 4, "{stats}");
    assert_eq!(stats.ws_messages_out, 4, "{stats}");
    assert_eq!(stats.ws_close_received_other, 1, "{stats}");
    assert_eq!(stats.ws_close_sent_other, 1, "{stats}");
}

#[test]
fn each_broken_rule_is_closed_with_its_code_and_counted() {
    let config = WebSocketConfig::new().max_message_size(1000);
    let server = server(config, TIMEOUT);
    let addr = ws_addr(&server);
    let cases: [(&str, Vec<u8>, u16); 6] = [
        ("unmasked", frame(0x81, b"hi", false), 1002),
        ("RSV1 without an extension", frame(0xC1, b"hi", true), 1002),
        ("reserved opcode", frame(0x83, b"hi", true), 1002),
        ("text that is not UTF-8", frame(0x81, b"\xff", true), 1007),
        ("over the size limit", frame(0x82, &[1; 1001], true), 1009),
        ("a continuation of nothing", frame(0x80, b"x", true), 1002),
    ];
    for (what, bytes, code) in &cases {
        let mut ws = open(addr);
        ws.write_all(bytes).unwrap();
        assert_eq!(read_close(&mut ws), *code, "{what}");
    }
    // Invalid across fragments: each is a valid prefix alone.
    let mut ws = open(addr);
    let mut split = frame(0x01, b"ok \xe2\x82", true);
    split.extend(frame(0x80, b"x", true));
    ws.write_all(&split).unwrap();
    assert_eq!(read_close(&mut ws), 1007);
    drop(ws);
    wait_until("all closed", || stats(&server).connections_closed == 7);
    let stats = server.stop();
    assert_eq!(stats.ws_close_sent_1002, 4, "{stats}");
    assert_eq!(stats.ws_close_sent_1007, 2, "{stats}");
    assert_eq!(stats.ws_close_sent_1009, 1, "{stats}");
}

fn status_of(addr: SocketAddr, head: &str) -> String {
    let mut stream = connect(addr);
    let response = http(&mut stream, head);
    let mut body = Vec::new();
    stream
        .read_to_end(&mut body)
        .expect("the server ends the stream");
    format!("{response}{}", String::from_utf8_lossy(&body))
}

#[test]
fn the_page_and_every_refusal_get_their_status_and_the_stream_ends() {
    let config = WebSocketConfig::new().allow_origin("https://shout.example");
    let server = server(config, TIMEOUT);
    let addr = ws_addr(&server);
    let page = status_of(addr, "GET /?say=hi HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.ends_with("<p>the page</p>"), "{page}");
    for (head, status) in [
        ("GET /other HTTP/1.1\r\nHost: h\r\n\r\n", "404"),
        ("PUT / HTTP/1.1\r\nHost: h\r\n\r\n", "405"),
        ("POST /ws HTTP/1.1\r\nHost: h\r\n\r\n", "405"),
        ("GET /ws HTTP/1.1\r\nHost: h\r\n\r\n", "426"),
        ("NOT HTTP AT ALL\r\n\r\n", "400"),
        (&upgrade_request("Origin: https://evil.example\r\n"), "403"),
    ] {
        let response = status_of(addr, head);
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status} ")),
            "{head:?}: {response}"
        );
    }
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert!(status_of(addr, &long).starts_with("HTTP/1.1 431 "));
    // The listener's own page and the allowed origin may open it.
    for origin in ["http://localhost", "https://shout.example"] {
        let mut ws = connect(addr);
        let response = http(&mut ws, &upgrade_request(&format!("Origin: {origin}\r\n")));
        assert!(
            response.starts_with("HTTP/1.1 101 "),
            "{origin}: {response}"
        );
    }
    let stats = server.stop();
    assert_eq!(stats.ws_pages_served, 1, "{stats}");
    assert_eq!(stats.ws_upgrades_refused, 7, "{stats}");
    assert_eq!(stats.ws_upgrades, 2, "{stats}");
}

#[test]
fn a_client_that_never_reads_is_held_back() {
    let server = server(WebSocketConfig::new(), TIMEOUT);
    let mut hog = open(ws_addr(&server));
    let message = frame(0x81, &[b'x'; 4096], true);
    let sent = send_until_pushed_back(&mut hog, &message, 0, 1 << 30);
    let taken = stats(&server).bytes_in;
    std::thread::sleep(PUSHBACK_QUIET);
    let held = stats(&server);
    assert_eq!(held.bytes_in, taken, "the server read on while pushed back");
    let unsent = held.bytes_in.saturating_sub(held.bytes_out);
    assert!(
        unsent <= 3 * 64 * 1024,
        "the server holds {unsent} bytes unsent"
    );

    // The rest of the last message, then every reply comes, in order.
    let whole = sent.div_ceil(message.len() as u64);
    let rest = (whole * message.len() as u64 - sent) as usize;
    hog.set_write_timeout(Some(TIMEOUT)).unwrap();
    let writer = {
        let mut hog = hog.try_clone().unwrap();
        let tail = message[message.len() - rest..].to_vec();
        std::thread::spawn(move || hog.write_all(&tail).unwrap())
    };
    for _ in 0..whole {
        assert_eq!(read_message(&mut hog), (1, vec![b'X'; 4096]));
    }
    writer.join().unwrap();
}

#[test]
fn no_upgrade_by_the_deadline_is_cut_and_a_stop_sends_1001() {
    let server = server(WebSocketConfig::new(), Duration::from_millis(300));
    let mut silent = connect(ws_addr(&server));
    silent.write_all(b"GET /ws HTTP/1.1\r\n").unwrap();
    let mut sent = Vec::new();
    silent
        .read_to_end(&mut sent)
        .expect("cut before the read timeout");
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(stats(&server).ws_upgrades_refused, 1);

    let mut ws = open(ws_addr(&server));
    ws.write_all(&frame(0x81, b"last", true)).unwrap();
    assert_eq!(read_message(&mut ws).1, b"LAST");
    server.handle.shutdown();
    assert_eq!(read_close(&mut ws), 1001);
    drop(ws);
    let stats = server.stop();
    assert_eq!(stats.ws_close_sent_1001, 1, "{stats}");
}

#[test]
fn a_connection_that_sends_nothing_is_not_a_refused_upgrade() {
    let server = server(WebSocketConfig::new(), Duration::from_millis(300));
    // A browser's speculative preconnects: one closed unused, one left
    // silent until the deadline cuts it.
    drop(connect(ws_addr(&server)));
    let mut silent = connect(ws_addr(&server));
    let mut sent = Vec::new();
    silent
        .read_to_end(&mut sent)
        .expect("cut before the read timeout");
    assert!(sent.is_empty(), "{sent:?}");
    wait_until("both are closed", || stats(&server).connections_closed == 2);
    let stats = server.stop();
    assert_eq!(stats.ws_upgrades_refused, 0, "{stats}");
}

/// Answers each input with the transport the service sees.
struct Transports;

impl shout_server::StreamService for Transports {
    type Session = ();

    fn open(&self, _conn: &mut shout_server::ConnectionContext<'_>) {}

    fn data(&self, _: &mut (), _input: &[u8], conn: &mut shout_server::ConnectionContext<'_>) {
        let seen = format!("{:?}", conn.transport());
        conn.output().extend_from_slice(seen.as_bytes());
    }
}

#[test]
fn over_tls_the_page_is_https_the_socket_wss_and_the_service_sees_it() {
    use shout_server::rustls::{ClientConnection, StreamOwned};
    let (server_config, client) = crate::tls::configs(&[&shout_server::rustls::version::TLS13]);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = run(ServerBuilder::tcp_only(Transports).websocket_tls(
        loopback,
        server_config,
        WebSocketConfig::new().page(&b"over https"[..]),
    ));
    let tls = |addr| {
        let conn = ClientConnection::new(Arc::clone(&client), "localhost".try_into().unwrap());
        StreamOwned::new(conn.unwrap(), connect(addr))
    };
    let addr = ws_addr(&server);
    let mut page = tls(addr);
    let head = http(&mut page, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(take(&mut page, 10), b"over https");

    let mut wss = tls(addr);
    let origin = "Origin: https://localhost\r\n";
    let response = http(&mut wss, &upgrade_request(origin));
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    wss.write_all(&frame(0x81, b"which?", true)).unwrap();
    let (_, seen) = read_message(&mut wss);
    assert_eq!(
        String::from_utf8(seen).unwrap(),
        "WebSocket { secure: true }"
    );
    drop((page, wss));
    let stats = server.stop();
    assert_eq!(stats.tls_handshakes_completed, 2, "{stats}");
    assert_eq!(stats.ws_upgrades, 1, "{stats}");
    assert_eq!(stats.ws_pages_served, 1, "{stats}");
}

#[test]
fn the_per_source_share_applies_to_websocket_connections_as_to_tcp() {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = run(ServerBuilder::tcp_only(Uppercase)
        .websocket(loopback, WebSocketConfig::new())
        .max_connections_per_source(1));
    let mut first = open(ws_addr(&server));
    // A second connection from the same source is closed at once,
    // unanswered: its upgrade gets no response.
    let mut second = connect(ws_addr(&server));
    let _ = second.write_all(upgrade_request("").as_bytes());
    let mut rest = Vec::new();
    let _ = second.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    // The first is served all along.
    first.write_all(&frame(0x81, b"still here", true)).unwrap();
    assert_eq!(read_message(&mut first).1, b"STILL HERE");
    drop(first);
    let stats = server.stop();
    assert_eq!(stats.connections_refused_per_source, 1, "{stats}");
    assert_eq!(stats.ws_upgrades, 1, "{stats}");
}

#[test]
fn at_the_connection_cap_a_websocket_client_waits_until_one_leaves_as_on_tcp() {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = run(ServerBuilder::tcp_only(Uppercase)
        .websocket(loopback, WebSocketConfig::new())
        .max_connections(2));
    let mut held: Vec<TcpStream> = (0..2).map(|_| open(ws_addr(&server))).collect();
    // The third completes its TCP handshake (the listen backlog) but is
    // not accepted, as on TCP: its upgrade gets no answer yet, and no
    // counter moves.
    let mut waiting = connect(ws_addr(&server));
    waiting
        .write_all(upgrade_request("").as_bytes())
        .expect("the backlog takes the request");
    waiting
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let error = waiting.read(&mut [0; 1]).unwrap_err();
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{error}"
    );
    let stats = server.handle.stats();
    assert_eq!(stats.connections_accepted, 2, "{stats}");
    assert_eq!(stats.ws_upgrades_refused, 0, "{stats}");
    // Those held are served all along.
    for stream in &mut held {
        stream.write_all(&frame(0x81, b"held", true)).unwrap();
        assert_eq!(read_message(stream).1, b"HELD");
    }

    // One leaves (a close handshake): the third is accepted and upgraded.
    let mut leaving = held.pop().unwrap();
    leaving
        .write_all(&frame(0x88, &1000u16.to_be_bytes(), true))
        .unwrap();
    assert_eq!(read_close(&mut leaving), 1000);
    drop(leaving);
    waiting.set_read_timeout(Some(TIMEOUT)).unwrap();
    let response = http(&mut waiting, "");
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    waiting.write_all(&frame(0x81, b"let in", true)).unwrap();
    assert_eq!(read_message(&mut waiting).1, b"LET IN");
    held[0].write_all(&frame(0x81, b"still", true)).unwrap();
    assert_eq!(read_message(&mut held[0]).1, b"STILL");
    drop((held, waiting));
    let stats = server.stop();
    assert_eq!(stats.connections_accepted, 3, "{stats}");
    assert_eq!(stats.ws_upgrades, 3, "{stats}");
    assert_eq!(stats.ws_upgrades_refused, 0, "{stats}");
}
