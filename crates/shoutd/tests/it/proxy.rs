//! `shoutd --proxy-protocol`: the header's client is the one the `-v` log
//! names, the loopback default trusts a local balancer, `--proxy-from`
//! replaces it, and a refused header is never answered.

use crate::support::*;
use std::io::Write;

const HEADER: &[u8] = b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 12000\r\n";

#[test]
fn the_headers_client_is_served_and_logged() {
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0", "--proxy-protocol", "-v"]);
    let mut stream = connect(shoutd.tcp.unwrap());
    stream.write_all(HEADER).unwrap();
    round_trip(&mut stream, "hello\n");
    drop(stream);
    wait_until("the -v log names the header's client", || {
        shoutd
            .stderr_so_far()
            .contains("the client is 192.0.2.7:5555")
    });
}

#[test]
fn a_sender_outside_proxy_from_is_closed_unanswered() {
    let shoutd = Shoutd::start(&[
        "--tcp",
        "127.0.0.1:0",
        "--proxy-protocol",
        "--proxy-from",
        "192.0.2.0/24",
    ]);
    let mut stream = connect(shoutd.tcp.unwrap());
    let _ = stream.write_all(HEADER);
    let _ = stream.write_all(b"hello\n");
    assert_closed_unanswered(stream);
}

#[test]
fn proxy_from_needs_proxy_protocol_and_a_network() {
    for args in [
        &["--proxy-from", "127.0.0.1/32"][..],
        &["--proxy-protocol", "--proxy-from", "localhost"][..],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_shoutd"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}
