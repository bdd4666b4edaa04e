//! `shoutd --ws` and `--wss`: their `listening` lines, the page,
//! `--ws-origin` letting a foreign page in, `--ws-max-message` closing
//! with 1009, and a flag value that is not an address refused. (The
//! protocol itself is tested in crates/server; wss end to end there too.)

use crate::support::*;
use std::io::{Read, Write};
use std::process::Command;

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                       Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                       Sec-WebSocket-Version: 13\r\n";

/// Sends `request` and returns the response's first line.
fn status_line(stream: &mut std::net::TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let mut byte = [0];
    while !response.ends_with(b"\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "ended in the status line"
        );
        response.push(byte[0]);
    }
    String::from_utf8(response).unwrap().trim_end().to_owned()
}

#[test]
fn the_page_the_origins_and_the_message_limit_are_the_flags() {
    let shoutd = Shoutd::start(&[
        "--ws",
        "127.0.0.1:0",
        "--ws-origin",
        "https://shout.example/",
        "--ws-max-message",
        "10",
    ]);
    let addr = shoutd.listening().addrs("ws")[0];
    let mut page = connect(addr);
    assert_eq!(
        status_line(&mut page, "GET /?say=hi HTTP/1.1\r\nHost: x\r\n\r\n"),
        "HTTP/1.1 200 OK"
    );
    let rest = String::from_utf8(read_to_end(&mut page)).unwrap();
    assert!(
        rest.contains("id=\"reply\"") && rest.contains("new WebSocket"),
        "{rest}"
    );

    let mut foreign = connect(addr);
    let evil = format!("{UPGRADE}Origin: https://evil.example\r\n\r\n");
    assert_eq!(status_line(&mut foreign, &evil), "HTTP/1.1 403 Forbidden");
    let mut allowed = connect(addr);
    let named = format!("{UPGRADE}Origin: https://shout.example\r\n\r\n");
    assert_eq!(
        status_line(&mut allowed, &named),
        "HTTP/1.1 101 Switching Protocols"
    );
    // The rest of the 101's head, then a masked text frame of 11 bytes.
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        allowed.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let mut frame = vec![0x81, 0x80 | 11, 0, 0, 0, 0];
    frame.extend_from_slice(b"eleven byte");
    allowed.write_all(&frame).unwrap();
    let close = read_to_end(&mut allowed);
    assert_eq!(
        &close[..4],
        &[0x88, close[1], 0x03, 0xF1],
        "close 1009: {close:?}"
    );
}

#[test]
fn wss_has_a_listening_line_of_its_own_and_a_bad_address_is_refused() {
    let shoutd = Shoutd::start(&["--wss", "127.0.0.1:0"]);
    assert_eq!(shoutd.listening().addrs("wss").len(), 1);
    assert!(shoutd.listening().addrs("ws").is_empty());
    drop(shoutd);
    let refused = Command::new(env!("CARGO_BIN_EXE_shoutd"))
        .args(["--ws", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--ws"));
}
