//! Bad input over real sockets: every kind of invalid UTF-8, NUL, CR and
//! CRLF, garbage right after connecting, the characters whose uppercase is
//! three times their size, and the datagram edge cases. Every answer is
//! compared with the protocol's definition (`reference_uppercase`, built from
//! the standard library alone), byte for byte.

use crate::support::{
    TIMEOUT, connect, garbage, read_exactly, read_to_end, reference_uppercase, round_trip, start,
    wait_until,
};
use shout_protocol::{MAX_DATAGRAM_PAYLOAD, MAX_EXPANSION};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, UdpSocket};
use std::time::Duration;

/// Ill-formed UTF-8 of every kind Unicode §3.9 distinguishes, each followed
/// by a valid character so that decoding must resume at the right byte.
const INVALID: &[(&str, &[u8])] = &[
    ("lone continuation byte", b"\x80"),
    ("last continuation byte", b"\xBF"),
    ("run of continuation bytes", b"\x80\x81\xBF\x90"),
    ("never a lead: C0", b"\xC0"),
    ("never a lead: C1", b"\xC1"),
    ("overlong 2-byte '/'", b"\xC0\xAF"),
    ("overlong 2-byte DEL", b"\xC1\xBF"),
    ("overlong 3-byte NUL", b"\xE0\x80\x80"),
    ("overlong 3-byte U+07FF", b"\xE0\x9F\xBF"),
    ("overlong 4-byte NUL", b"\xF0\x80\x80\x80"),
    ("overlong 4-byte U+FFFF", b"\xF0\x8F\xBF\xBF"),
    ("high surrogate U+D800", b"\xED\xA0\x80"),
    ("low surrogate U+DFFF", b"\xED\xBF\xBF"),
    ("CESU-8 surrogate pair", b"\xED\xA0\xBD\xED\xB2\xA9"),
    ("beyond U+10FFFF", b"\xF4\x90\x80\x80"),
    ("5-byte lead F8", b"\xF8\x88\x80\x80\x80"),
    ("6-byte lead FC", b"\xFC\x84\x80\x80\x80\x80"),
    ("F5 to FF", b"\xF5\xF6\xF7\xFE\xFF"),
    ("2-byte lead then ASCII", b"\xC3x"),
    ("3-byte prefix then ASCII", b"\xE2\x82x"),
    ("4-byte prefix then ASCII", b"\xF0\x9F\xA6x"),
    ("prefix then another lead", b"\xE2\x82\xE2\x82\xAC"),
    ("lead then a lead's prefix", b"\xC3\xF0\x9F\x98\x80"),
];

/// Valid sequences cut short, as the last bytes of a stream or datagram.
const TRUNCATED: &[&[u8]] = &[
    b"\xC3",
    b"\xDF",
    b"\xE2",
    b"\xE2\x82",
    b"\xED\x9F",
    b"\xEF\xBF",
    b"\xF0",
    b"\xF0\x9F",
    b"\xF0\x9F\xA6",
    b"\xF4\x8F\xBF",
];

/// `case` between valid text, so that what surrounds it must survive too.
fn framed(case: &[u8]) -> Vec<u8> {
    [b"\xC3\xA0 before ".as_slice(), case, "ß after".as_bytes()].concat()
}

/// Sends `input` on a new connection, half-closes, returns the whole answer.
fn answer(server: SocketAddr, input: &[u8]) -> Vec<u8> {
    let mut stream = connect(server);
    stream.write_all(input).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    read_to_end(&mut stream)
}

/// Sends `input` one byte per segment (`TCP_NODELAY`, a pause between), so
/// that every character is cut at every place by the network itself.
fn answer_byte_by_byte(server: SocketAddr, input: &[u8]) -> Vec<u8> {
    let mut stream = connect(server);
    stream.set_nodelay(true).unwrap();
    for byte in input {
        stream.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    stream.shutdown(Shutdown::Write).unwrap();
    read_to_end(&mut stream)
}

fn udp_client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket
}

/// Sends one datagram and returns the one reply.
fn udp_answer(socket: &UdpSocket, server: SocketAddr, request: &[u8]) -> Vec<u8> {
    socket.send_to(request, server).unwrap();
    let mut buf = vec![0; 65_536];
    let (len, from) = socket.recv_from(&mut buf).expect("a reply");
    assert_eq!(from, server);
    buf.truncate(len);
    buf
}

/// Asserts that no datagram arrives within a short wait.
fn assert_no_reply(socket: &UdpSocket, what: &str) {
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = vec![0; 65_536];
    match socket.recv_from(&mut buf) {
        Ok((len, _)) => panic!("{what}: a reply of {len} bytes was sent"),
        Err(error) => assert!(
            matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{what}: {error}"
        ),
    }
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
}

#[test]
fn every_kind_of_invalid_utf8_passes_through_tcp_byte_for_byte() {
    let server = start(|b| b);
    for (kind, case) in INVALID {
        let input = framed(case);
        let expected = reference_uppercase(&input);
        // The invalid bytes themselves come back, not U+FFFD.
        let kept = case.to_ascii_uppercase();
        assert!(
            expected.windows(kept.len()).any(|w| w == kept),
            "{kind}: the reference kept the bytes"
        );
        assert_eq!(answer(server.tcp(), &input), expected, "{kind}, whole");
        assert_eq!(
            answer_byte_by_byte(server.tcp(), &input),
            expected,
            "{kind}, byte by byte"
        );
    }
    let stats = server.stop();
    assert_eq!(stats.connections_accepted, 2 * INVALID.len() as u64);
    assert_eq!(
        stats.bytes_out,
        2 * INVALID
            .iter()
            .map(|(_, c)| reference_uppercase(&framed(c)).len() as u64)
            .sum::<u64>()
    );
}

#[test]
fn a_sequence_truncated_at_end_of_stream_is_held_then_sent_unchanged() {
    let server = start(|b| b);
    for case in TRUNCATED {
        let mut stream = connect(server.tcp());
        stream.write_all(b"tail: ").unwrap();
        stream.write_all(case).unwrap();
        // Everything before the unfinished character is answered at once...
        assert_eq!(read_exactly(&mut stream, 6), b"TAIL: ", "{case:?}");
        // ...the unfinished character is held, since its rest may come...
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0; 8];
        let error = stream.read(&mut buf).unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{case:?}: {error}"
        );
        // ...and at end of stream it is invalid, and comes back unchanged.
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut stream), *case);
    }
}

#[test]
fn invalid_and_truncated_utf8_in_datagrams_pass_through() {
    let server = start(|b| b);
    let socket = udp_client();
    for (kind, case) in INVALID {
        let input = framed(case);
        assert_eq!(
            udp_answer(&socket, server.udp(), &input),
            reference_uppercase(&input),
            "{kind}"
        );
    }
    // A datagram is a whole stream: an unfinished character at its end is
    // invalid, and the next datagram does not complete it.
    for case in TRUNCATED {
        let input = [b"end: ".as_slice(), case].concat();
        let mut expected = b"END: ".to_vec();
        expected.extend_from_slice(case);
        assert_eq!(udp_answer(&socket, server.udp(), &input), expected);
        assert_eq!(udp_answer(&socket, server.udp(), b"\x82\xAC"), b"\x82\xAC");
    }
    let stats = server.stop();
    assert_eq!(stats.datagrams_out, stats.datagrams_in);
    assert_eq!(stats.datagrams_dropped, 0);
}

#[test]
fn nul_crlf_and_lone_cr_are_ordinary_bytes() {
    let server = start(|b| b);
    let socket = udp_client();
    let cases: &[&[u8]] = &[
        b"\0",
        b"a\0b\0\0c",
        b"\r\n",
        b"\r",
        b"one\r\ntwo\rthree\n\rfour\n\n\r\r",
        b"\0\r\n\0",
    ];
    for case in cases {
        let expected = reference_uppercase(case);
        assert_eq!(answer(server.tcp(), case), expected, "tcp {case:?}");
        assert_eq!(
            udp_answer(&socket, server.udp(), case),
            expected,
            "udp {case:?}"
        );
    }
    // In bulk, across many reads: nothing is taken for a line end, a
    // terminator or padding.
    let bulk: Vec<u8> = b"x\0\r\n\r\0y".repeat(256 * 1024);
    let reply = answer(server.tcp(), &bulk);
    assert_eq!(reply.len(), bulk.len());
    assert!(
        reply == b"X\0\r\n\r\0Y".repeat(256 * 1024),
        "2 MiB of NUL/CR/LF"
    );
}

#[test]
fn garbage_right_after_connect_is_answered_by_the_rule_and_harms_no_one() {
    let server = start(|b| b);
    let mut bystander = connect(server.tcp());
    round_trip(&mut bystander, "before the garbage\n");
    let all_bytes: Vec<u8> = (0..=255).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("every byte value", all_bytes.repeat(16)),
        (
            "a TLS ClientHello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xd3\x5a\x00\x00".to_vec(),
        ),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: shout\r\nUser-Agent: curl\r\n\r\n".to_vec(),
        ),
        ("an SSH banner", b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
        ("1 MiB of random bytes", garbage(1 << 20, 0x5eed)),
    ];
    let mut expected_out = 0;
    for (kind, input) in &cases {
        let expected = reference_uppercase(input);
        expected_out += expected.len() as u64;
        assert!(answer(server.tcp(), input) == expected, "{kind}");
        // The same garbage from a client that closes without reading: the
        // server's writes fail, it drops the connection, and goes on.
        let mut rude = connect(server.tcp());
        rude.write_all(input).unwrap();
        drop(rude);
    }
    round_trip(&mut bystander, "after the garbage\n");
    wait_until("the rude clients to be dropped", || {
        server.handle.stats().connections_open() == 1
    });
    drop(bystander);
    let stats = server.stop();
    assert_eq!(stats.connections_accepted, 1 + 2 * cases.len() as u64);
    assert!(stats.bytes_out >= expected_out, "{stats}");
}

/// `ΐ` (U+0390, 2 bytes) uppercases to three characters, 6 bytes: the
/// largest growth of any character (a unit test checks every code point).
const EXPANDING: &str = "ΐ";
const EXPANDED: &str = "\u{399}\u{308}\u{301}";

#[test]
fn three_times_expanding_characters_in_bulk_come_back_exactly_three_times() {
    let server = start(|b| b);
    let count = 8 << 20; // 16 MiB in, 48 MiB out
    let input = EXPANDING.repeat(count);
    let mut stream = connect(server.tcp());
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        // Odd-sized writes, so characters are cut between reads.
        for piece in input.as_bytes().chunks(65_537) {
            writer.write_all(piece).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let reply = read_to_end(&mut stream);
    sender.join().unwrap();
    assert_eq!(reply.len(), MAX_EXPANSION * EXPANDING.len() * count);
    assert!(reply == EXPANDED.repeat(count).as_bytes());
    let stats = server.stop();
    assert_eq!(stats.bytes_out, MAX_EXPANSION as u64 * stats.bytes_in);
}

#[test]
fn expanding_input_from_a_client_that_never_reads_keeps_output_bounded() {
    let max_pending = 64 * 1024;
    let server = start(|b| b.max_pending_output(max_pending));
    let mut hog = connect(server.tcp());
    hog.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let chunk = EXPANDING.repeat(32 * 1024); // 64 KiB in, 192 KiB of answer
    let mut sent = 0usize;
    // Each write goes on where the last one stopped, so the stream stays
    // whole characters however the writes are cut (a cut write followed by
    // the chunk from its start once left a stray byte in the middle).
    let mut at = 0;
    for _ in 0..1000 {
        match hog.write(&chunk.as_bytes()[at..]) {
            Ok(n) => {
                sent += n;
                at = (at + n) % chunk.len();
            }
            Err(_) => break,
        }
    }
    assert!(sent < 1000 * chunk.len(), "the server never pushed back");
    // Let the server take what it will, then check its books: what it
    // produced (3 × what it read) less what it sent is what it holds.
    let mut last = u64::MAX;
    wait_until("the server to stop reading", || {
        let now = server.handle.stats().bytes_in;
        std::thread::sleep(Duration::from_millis(100));
        std::mem::replace(&mut last, now) == now
    });
    let stats = server.handle.stats();
    let held = MAX_EXPANSION as u64 * stats.bytes_in - stats.bytes_out;
    let bound = (max_pending + MAX_EXPANSION * 64 * 1024) as u64;
    assert!(
        held <= bound,
        "holds {held} bytes of answer for one client, over the {bound}-byte bound"
    );
    // Nothing is lost: once the client reads, the whole answer comes.
    let mut other = connect(server.tcp());
    round_trip(&mut other, "others are served meanwhile\n");
    let mut reader = hog.try_clone().unwrap();
    let reading = std::thread::spawn(move || read_to_end(&mut reader));
    hog.set_write_timeout(Some(TIMEOUT)).unwrap();
    if sent % 2 == 1 {
        // A write cut the last `ΐ`: send its second byte.
        hog.write_all(&EXPANDING.as_bytes()[1..]).unwrap();
        sent += 1;
    }
    hog.shutdown(Shutdown::Write).unwrap();
    let reply = reading.join().unwrap();
    assert_eq!(reply.len(), MAX_EXPANSION * sent);
    assert!(
        reply
            .chunks(EXPANDED.len())
            .all(|c| c == EXPANDED.as_bytes())
    );
}

#[test]
fn a_reply_of_exactly_the_datagram_limit_is_sent_and_one_byte_more_is_not() {
    let server = start(|b| b);
    let socket = udp_client();
    // The most `ΐ` whose answer fits, padded with ASCII to the exact limit.
    let expanding = MAX_DATAGRAM_PAYLOAD / 6;
    let pad = MAX_DATAGRAM_PAYLOAD - 6 * expanding;
    let at_limit = EXPANDING.repeat(expanding) + &"a".repeat(pad);
    let reply = udp_answer(&socket, server.udp(), at_limit.as_bytes());
    assert_eq!(reply.len(), MAX_DATAGRAM_PAYLOAD);
    assert_eq!(reply, at_limit.to_uppercase().as_bytes());
    // The amplification factor, reached: 3× the request's expanding part.
    assert_eq!(
        reply.len() - pad,
        MAX_EXPANSION * (at_limit.len() - pad),
        "ΐ is answered with three times its bytes"
    );

    let over = at_limit + "a";
    assert!(over.len() < MAX_DATAGRAM_PAYLOAD, "the request itself fits");
    socket.send_to(over.as_bytes(), server.udp()).unwrap();
    assert_no_reply(&socket, "a reply one byte over the limit");
    wait_until("the drop to be counted", || {
        server.handle.stats().datagrams_dropped == 1
    });
    assert_eq!(udp_answer(&socket, server.udp(), b"next"), b"NEXT");
}

#[test]
fn empty_and_largest_datagrams_and_a_request_over_the_limit() {
    // IPv6 carries UDP payloads up to 65,527 bytes, so a request larger than
    // shout's 65,507-byte limit can really arrive there (over IPv4 the
    // sender's kernel refuses it).
    let v6: SocketAddr = "[::1]:0".parse().unwrap();
    let Ok(socket6) = UdpSocket::bind(v6) else {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    };
    socket6.set_read_timeout(Some(TIMEOUT)).unwrap();
    let server = start(|b| b.udp(v6));
    let server6 = server.handle.udp_addrs()[1];

    assert_eq!(udp_answer(&socket6, server6, b""), b"", "an empty datagram");
    let largest = vec![b'z'; MAX_DATAGRAM_PAYLOAD];
    assert_eq!(
        udp_answer(&socket6, server6, &largest),
        vec![b'Z'; MAX_DATAGRAM_PAYLOAD]
    );
    for len in [MAX_DATAGRAM_PAYLOAD + 1, 65_527] {
        socket6.send_to(&vec![b'z'; len], server6).unwrap();
        assert_no_reply(&socket6, &format!("a request of {len} bytes"));
    }
    wait_until("both drops to be counted", || {
        server.handle.stats().datagrams_dropped == 2
    });
    assert_eq!(udp_answer(&socket6, server6, b"still here"), b"STILL HERE");
    let stats = server.stop();
    assert_eq!(
        (
            stats.datagrams_in,
            stats.datagrams_out,
            stats.datagrams_dropped
        ),
        (5, 3, 2)
    );
}

#[test]
fn tcp_reply_growth_is_bounded_by_three_for_any_input() {
    // Whatever the bytes, an answer is at most three times the request: the
    // bound the loop's memory budget (one read's answer, ≤ 3 × 64 KiB)
    // relies on.
    let server = start(|b| b);
    let mut total_in = 0;
    for (seed, input) in [
        garbage(256 * 1024, 1),
        "ΐΰ".repeat(64 * 1024).into_bytes(),
        "ß ﬃ ǰ ŉ".repeat(16 * 1024).into_bytes(),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = answer(server.tcp(), &input);
        assert!(reply.len() <= MAX_EXPANSION * input.len(), "input {seed}");
        assert!(reply == reference_uppercase(&input), "input {seed}");
        total_in += input.len() as u64;
    }
    let stats = server.stop();
    assert_eq!(stats.bytes_in, total_in);
    assert!(stats.bytes_out <= MAX_EXPANSION as u64 * total_in);
}
