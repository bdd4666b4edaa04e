//! UDP: `UdpClient` against the server, one datagram per line, and the
//! datagram size limit enforced by the client before anything is sent.

use shout_client::{ClientError, UdpClient};
use shout_protocol::MAX_DATAGRAM_PAYLOAD;
use shout_tests::{TIMEOUT, TestServer};

fn client(server: &TestServer) -> UdpClient {
    // One attempt: loopback loses nothing, and a retry would hide a loss.
    UdpClient::new(&server.udp_target(), TIMEOUT, 0).expect("the client opens a socket")
}

#[test]
fn lines_and_an_empty_datagram_are_answered() {
    let server = TestServer::start();
    let mut client = client(&server);
    assert_eq!(client.peer(), server.udp_addr());
    let lines = ["hello", "", "grüße aus köln", "ﬁ ß ΐ ǰ 日本語 🦀", " "];
    for line in lines {
        let reply = client.shout(line.as_bytes()).expect("answered");
        assert_eq!(reply, line.to_uppercase().as_bytes(), "{line:?}");
    }
    let stats = server.stop();
    assert_eq!((stats.datagrams_in, stats.datagrams_out), (5, 5));
    assert_eq!(stats.datagrams_dropped, 0);
}

#[test]
fn the_largest_unicode_reply_is_answered_and_one_more_character_is_refused_unsent() {
    let server = TestServer::start();
    let mut client = client(&server);
    // `ΐ` is 2 bytes and its uppercase 6, so a request of N of them calls for
    // a reply of 6N bytes: the largest N that fits, then one more.
    let fits = MAX_DATAGRAM_PAYLOAD / 6;
    let largest = "ΐ".repeat(fits);
    let reply = client.shout(largest.as_bytes()).expect("the largest fits");
    assert_eq!(reply.len(), 6 * fits);
    assert_eq!(reply, largest.to_uppercase().as_bytes());

    let too_large = "ΐ".repeat(fits + 1);
    assert!(
        too_large.len() <= MAX_DATAGRAM_PAYLOAD,
        "the request itself fits"
    );
    match client.shout(too_large.as_bytes()) {
        Err(ClientError::DatagramTooLarge {
            request_len,
            reply_len,
        }) => {
            assert_eq!(request_len, too_large.len());
            assert_eq!(reply_len, 6 * (fits + 1));
        }
        other => panic!("expected DatagramTooLarge, got {other:?}"),
    }
    // The client still works, and the server never saw the refused one.
    assert_eq!(client.shout(b"after").unwrap(), b"AFTER");
    let stats = server.stop();
    assert_eq!(stats.datagrams_in, 2, "the refused datagram was sent");
    assert_eq!((stats.datagrams_out, stats.datagrams_dropped), (2, 0));
}

#[test]
fn a_run_of_lines_skips_the_one_too_large_and_answers_the_rest() {
    let server = TestServer::start();
    let mut client = client(&server);
    let too_large = "ΐ".repeat(MAX_DATAGRAM_PAYLOAD / 6 + 1);
    let input = format!("first\n\nstraße\n{too_large}\nlast ǰ\n");
    let mut output = Vec::new();
    let report = client
        .run(input.as_bytes(), &mut output, None)
        .expect("the run goes on past the refused line");
    assert_eq!((report.answered, report.skipped), (4, 1));
    assert_eq!(
        String::from_utf8(output).unwrap(),
        "FIRST\n\nSTRASSE\nLAST J\u{30C}\n"
    );
    let stats = server.stop();
    assert_eq!(stats.datagrams_in, 4, "the refused line was sent");
    assert_eq!((stats.datagrams_out, stats.datagrams_dropped), (4, 0));
}
