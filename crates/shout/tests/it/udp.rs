//! UDP: retries, late replies, the lecture's server, datagram limits.

use crate::support::{LossyUdpServer, PythonPeer, run};

#[test]
fn retries_after_loss_and_drops_late_replies() {
    let server = LossyUdpServer::start();
    let outcome = run(
        &[
            "-vv",
            "udp",
            &server.addr.to_string(),
            "--timeout",
            "0.5",
            "--retries",
            "3",
        ],
        b"alpha\nbeta\ngamma\n",
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    // The stale ALPHA sent before BETA's reply (and BETA before GAMMA's) is
    // not printed as an answer.
    assert_eq!(outcome.stdout_text(), "ALPHA\nBETA\nGAMMA\n");
    let requests = server.requests();
    assert_eq!(
        requests,
        ["alpha", "alpha", "beta", "beta", "gamma", "gamma"].map(|r| r.as_bytes().to_vec()),
        "each line sent twice: once lost, once answered"
    );
    assert_eq!(
        outcome.stderr.matches("sending again (2 of 4)").count(),
        3,
        "{}",
        outcome.stderr
    );
    assert_eq!(
        outcome
            .stderr
            .matches("dropped a stale or foreign datagram")
            .count(),
        2,
        "{}",
        outcome.stderr
    );
}

#[test]
fn lines_through_the_lecture_server_including_an_empty_one() {
    let peer = PythonPeer::start("udp_server.py");
    let outcome = run(&["udp", &peer.target()], b"hello\n\nstrasse\r\n");
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert_eq!(outcome.stdout_text(), "HELLO\n\nSTRASSE\n");
    assert_eq!(outcome.stderr, "");
}

#[test]
fn lines_too_long_for_a_datagram_are_refused_and_the_rest_answered() {
    let peer = PythonPeer::start("udp_server.py");
    let mut input = b"first\n".to_vec();
    // 40,000 bytes whose uppercase is 120,000: the request fits, the reply not.
    input.extend_from_slice("ΐ".repeat(20_000).as_bytes());
    input.push(b'\n');
    // Over the limit itself.
    input.extend(std::iter::repeat_n(b'a', 70_000));
    input.extend_from_slice(b"\nlast\n");
    let outcome = run(&["udp", &peer.target()], &input);
    assert_eq!(outcome.stdout_text(), "FIRST\nLAST\n");
    assert_eq!(outcome.code, Some(1), "{}", outcome.stderr);
    assert_eq!(
        outcome.stderr,
        "shout: warning: line 2 not sent: a request of 40000 bytes with a reply of 120000 bytes \
         does not fit the 65507-byte datagram limit\n\
         shout: warning: line 3 not sent: it is longer than 65507 bytes\n\
         shout: 2 lines were not sent (see above)\n"
    );
}
