//! The layer driven with bytes alone: request heads, frames cut at every
//! byte, each rule of RFC 6455 the server enforces.

use super::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn layer() -> WsLayer {
    let config = WebSocketConfig::new()
        .page(&b"<p>page</p>"[..])
        .allow_origin("https://example.org")
        .max_message_size(100);
    WsLayer::new(Arc::new(config), false)
}

fn request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:9\r\nUpgrade: websocket\r\n\
         Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

fn upgraded() -> WsLayer {
    let mut ws = layer();
    let head = request("/ws", "");
    assert!(matches!(
        ws.handshake(head.as_bytes()),
        Handshake::Upgraded { .. }
    ));
    ws
}

/// A client frame: masked with a fixed key.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// What `input` gives, fed one byte at a time or whole: data pieces
/// joined per message, pongs, the close, or the failure's code.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    messages: Vec<Vec<u8>>,
    partial: Vec<u8>,
    pongs: Vec<Vec<u8>>,
    close: Option<Option<u16>>,
    failure: Option<u16>,
}

fn feed(ws: &mut WsLayer, input: &[u8], step: usize) -> Seen {
    let mut seen = Seen::default();
    for chunk in input.chunks(step) {
        let mut owned = chunk.to_vec();
        let mut rest = &mut owned[..];
        loop {
            match ws.next(&mut rest) {
                Ok(None) => break,
                Ok(Some(Incoming::Data { payload, last })) => {
                    seen.partial.extend_from_slice(payload);
                    if last {
                        seen.messages.push(std::mem::take(&mut seen.partial));
                    }
                }
                Ok(Some(Incoming::Pong(pong))) => seen.pongs.push(pong),
                Ok(Some(Incoming::Close { code })) => seen.close = Some(code),
                Err(failure) => {
                    // The message fails whole, however much came before.
                    seen.partial.clear();
                    seen.failure = Some(failure.code);
                    return seen;
                }
            }
        }
    }
    seen
}

/// Feeds `input` whole and a byte at a time; both must see the same.
fn both(input: &[u8]) -> Seen {
    let whole = feed(&mut upgraded(), input, input.len().max(1));
    let bytes = feed(&mut upgraded(), input, 1);
    assert_eq!(whole, bytes, "the cut changed what was seen");
    whole
}

#[test]
fn the_upgrade_answers_101_with_the_rfcs_accept_key() {
    let mut ws = layer();
    let head = request("/ws", "Origin: http://127.0.0.1:9\r\n");
    let mut input = head.clone().into_bytes();
    input.extend(frame(0x81, b"hi"));
    let Handshake::Upgraded { response, taken } = ws.handshake(&input) else {
        panic!("not upgraded");
    };
    assert_eq!(taken, head.len());
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    // RFC 6455 §1.3's example key and answer.
    assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    let seen = feed(&mut ws, &input[taken..], 64);
    assert_eq!(seen.messages, [b"hi".to_vec()]);
}

#[test]
fn a_head_split_in_bytes_is_taken_whole() {
    let mut ws = layer();
    let head = request("/ws", "");
    let bytes = head.as_bytes();
    for (i, byte) in bytes.iter().enumerate() {
        let got = ws.handshake(&[*byte]);
        if i + 1 < bytes.len() {
            assert_eq!(got, Handshake::More, "after {} bytes", i + 1);
        } else {
            assert!(matches!(got, Handshake::Upgraded { taken: 1, .. }));
        }
    }
}

fn status(head: &str) -> (u16, String) {
    match layer().handshake(head.as_bytes()) {
        Handshake::Answered { response, status } => {
            (status, String::from_utf8_lossy(&response).into_owned())
        }
        other => panic!("not answered: {other:?}"),
    }
}

#[test]
fn the_page_another_path_another_method_and_bad_requests_get_their_status() {
    let (code, page) = status("GET /?say=hi HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(code, 200);
    assert!(page.contains("text/html") && page.ends_with("<p>page</p>"));
    let (code, head) = status("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(code, 200);
    assert!(head.ends_with("\r\n\r\n"), "no body for HEAD");
    assert_eq!(status("GET /nope HTTP/1.1\r\n\r\n").0, 404);
    let (code, head) = status("POST /ws HTTP/1.1\r\n\r\n");
    assert_eq!(code, 405);
    assert!(head.contains("Allow: GET\r\n"));
    assert_eq!(status("DELETE / HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(status("\x16\x03\x01\x02\x00\r\n\r\n").0, 400);
    assert_eq!(status("GET /ws HTTP/1.1\r\nHost: h\r\n\r\n").0, 426);
    let old = request("/ws", "").replace("Version: 13", "Version: 8");
    assert_eq!(status(&old).0, 426);
    let bad_key = request("/ws", "").replace(KEY, "short");
    assert_eq!(status(&bad_key).0, 400);
    let no_host = request("/ws", "").replace("Host: 127.0.0.1:9\r\n", "");
    assert_eq!(status(&no_host).0, 400);
    let http10 = request("/ws", "").replace("HTTP/1.1", "HTTP/1.0");
    assert_eq!(status(&http10).0, 400);
}

#[test]
fn a_head_past_the_limit_is_431_and_never_held_past_it() {
    let mut ws = layer();
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_REQUEST_HEAD));
    let mut answered = None;
    for chunk in long.as_bytes().chunks(1000) {
        match ws.handshake(chunk) {
            Handshake::More => {}
            Handshake::Answered { status, .. } => {
                answered = Some(status);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(answered, Some(431));
}

#[test]
fn origins_other_than_the_pages_own_and_the_allowed_ones_get_403() {
    let with = |origin: &str| request("/ws", &format!("Origin: {origin}\r\n"));
    assert_eq!(status(&with("http://evil.example")).0, 403);
    assert_eq!(
        status(&with("https://127.0.0.1:9")).0,
        403,
        "scheme differs"
    );
    for allowed in ["http://127.0.0.1:9", "HTTPS://EXAMPLE.ORG"] {
        let mut ws = layer();
        let got = ws.handshake(with(allowed).as_bytes());
        assert!(matches!(got, Handshake::Upgraded { .. }), "{allowed}");
    }
}

#[test]
fn fragments_with_a_ping_between_them_are_one_message_and_the_pong_echoes() {
    let mut input = frame(0x01, b"hel");
    input.extend(frame(0x89, b"are you there"));
    input.extend(frame(0x00, b"lo "));
    input.extend(frame(0x80, b"world"));
    input.extend(frame(0x82, &[0, 159, 146, 150]));
    input.extend(frame(0x8A, b"unsolicited pong"));
    let seen = both(&input);
    assert_eq!(
        seen.messages,
        [b"hello world".to_vec(), vec![0, 159, 146, 150]]
    );
    let mut pong = vec![0x8A, 13];
    pong.extend_from_slice(b"are you there");
    assert_eq!(seen.pongs, [pong]);
    assert_eq!(seen.failure, None);
}

#[test]
fn each_broken_rule_fails_with_its_code() {
    let unmasked = [0x81, 0x02, b'h', b'i'];
    assert_eq!(both(&unmasked).failure, Some(1002), "unmasked");
    assert_eq!(both(&frame(0xC1, b"x")).failure, Some(1002), "RSV1");
    assert_eq!(both(&frame(0x83, b"x")).failure, Some(1002), "opcode 3");
    assert_eq!(both(&frame(0x8B, b"x")).failure, Some(1002), "opcode 0xB");
    assert_eq!(
        both(&frame(0x09, b"x")).failure,
        Some(1002),
        "fragmented ping"
    );
    assert_eq!(
        both(&frame(0x89, &[1; 126])).failure,
        Some(1002),
        "long ping"
    );
    assert_eq!(
        both(&frame(0x80, b"x")).failure,
        Some(1002),
        "lone continuation"
    );
    let mut nested = frame(0x01, b"a");
    nested.extend(frame(0x81, b"b"));
    assert_eq!(
        both(&nested).failure,
        Some(1002),
        "message inside a message"
    );
    assert_eq!(
        both(&frame(0x82, &[7; 101])).failure,
        Some(1009),
        "one frame too big"
    );
    let mut long = frame(0x02, &[7; 60]);
    long.extend(frame(0x80, &[7; 41]));
    assert_eq!(
        both(&long).failure,
        Some(1009),
        "fragments too big together"
    );
    assert_eq!(
        both(&frame(0x88, &[3])).failure,
        Some(1002),
        "close of one byte"
    );
    assert_eq!(
        both(&frame(0x88, &1005u16.to_be_bytes())).failure,
        Some(1002)
    );
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.push(0xff);
    assert_eq!(both(&frame(0x88, &bad_reason)).failure, Some(1007));
}

#[test]
fn text_that_is_not_utf8_fails_with_1007_also_across_fragments() {
    assert_eq!(both(&frame(0x81, &[0xff])).failure, Some(1007));
    // "é" is C3 A9: split across two fragments it is valid.
    let mut split = frame(0x01, &[b'a', 0xC3]);
    split.extend(frame(0x80, &[0xA9]));
    assert_eq!(both(&split).messages, ["aé".as_bytes().to_vec()]);
    let mut broken = frame(0x01, &[b'a', 0xC3]);
    broken.extend(frame(0x80, b"b"));
    assert_eq!(both(&broken).failure, Some(1007));
    // A message that ends inside a character.
    assert_eq!(both(&frame(0x81, &[b'a', 0xE2, 0x82])).failure, Some(1007));
    // Binary is never checked.
    assert_eq!(both(&frame(0x82, &[0xff])).messages, [vec![0xff]]);
}

#[test]
fn a_close_is_taken_with_its_code_or_none() {
    let mut input = frame(0x88, &1001u16.to_be_bytes());
    input.extend(frame(0x81, b"after the close"));
    let mut ws = upgraded();
    let seen = feed(&mut ws, &input, input.len());
    assert_eq!(seen.close, Some(Some(1001)));
    assert_eq!(both(&frame(0x88, b"")).close, Some(None));
}

#[test]
fn replies_are_one_message_per_message_in_the_kind_of_the_input() {
    let mut ws = upgraded();
    let mut out = Vec::new();
    // A text message in two fragments, answered a piece at a time.
    let mut first = frame(0x01, b"ab");
    let mut rest = &mut first[..];
    assert!(matches!(
        ws.next(&mut rest),
        Ok(Some(Incoming::Data { last: false, .. }))
    ));
    ws.frame(b"AB", &mut out);
    let mut second = frame(0x80, b"c");
    let mut rest = &mut second[..];
    assert!(matches!(
        ws.next(&mut rest),
        Ok(Some(Incoming::Data { last: true, .. }))
    ));
    ws.frame(b"C", &mut out);
    ws.end_reply(&mut out);
    assert_eq!(out, [&[0x01, 2][..], b"AB", &[0x80, 1], b"C"].concat());
    assert_eq!(ws.take_messages_out(), 1);

    // A message the service wrote nothing for gets an empty reply.
    out.clear();
    let mut held = frame(0x81, b"x");
    let mut rest = &mut held[..];
    assert!(matches!(
        ws.next(&mut rest),
        Ok(Some(Incoming::Data { last: true, .. }))
    ));
    ws.end_reply(&mut out);
    assert_eq!(out, [0x81, 0]);

    // An empty binary message gets an empty one; output outside a message
    // is a message of its own, text when it is UTF-8.
    out.clear();
    let mut empty = frame(0x82, b"");
    let mut rest = &mut empty[..];
    assert!(matches!(
        ws.next(&mut rest),
        Ok(Some(Incoming::Data { last: true, .. }))
    ));
    ws.end_reply(&mut out);
    ws.frame(b"hello", &mut out);
    ws.frame(&[0xff], &mut out);
    assert_eq!(
        out,
        [&[0x82, 0][..], &[0x81, 5], b"hello", &[0x82, 1, 0xff]].concat()
    );

    // After a close frame nothing more goes out.
    out.clear();
    ws.close(1000, "", &mut out);
    ws.frame(b"late", &mut out);
    ws.close(1001, "", &mut out);
    assert_eq!(out, [0x88, 2, 0x03, 0xE8]);
    assert_eq!(ws.close_sent(), Some(1000));
}

#[test]
fn a_64_bit_length_is_parsed_and_limited() {
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&u64::MAX.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(both(&header).failure, Some(1009));
    let big = frame(0x82, &[9; 70]);
    assert_eq!(both(&big).messages, [vec![9; 70]]);
}
