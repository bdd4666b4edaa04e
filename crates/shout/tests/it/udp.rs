//! UDP: retries, late replies, replies that are not the uppercase, the
//! lecture's server, datagram limits.

use crate::support::{JAVA_BUFFER, LossyUdpServer, PythonPeer, run, start_java_udp_server};

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
        outcome.stderr.matches("dropped a late reply").count(),
        2,
        "{}",
        outcome.stderr
    );
}

/// Sends `lines` with `shout VERBOSITY udp` to the Java-like server, checks
/// that it exits 0 having printed each line's padded answer as it came, and
/// returns its standard error and the server's address.
fn through_java_server(verbosity: &str, late_duplicates: bool, lines: &[&str]) -> (String, String) {
    let server = start_java_udp_server(late_duplicates);
    let target = server.addr.to_string();
    let input: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let outcome = run(
        &[
            verbosity,
            "udp",
            &target,
            "--timeout",
            "0.5",
            "--retries",
            "1",
        ],
        input.as_bytes(),
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    // Each line is no shorter than the one before, so the server's buffer
    // holds nothing of an earlier line: the answer is the uppercase, then
    // NULs to 1,024 bytes.
    let mut expected = Vec::new();
    for line in lines {
        let mut reply = line.to_uppercase().into_bytes();
        reply.resize(JAVA_BUFFER, 0);
        expected.extend_from_slice(&reply);
        expected.push(b'\n');
    }
    assert!(outcome.stdout == expected, "{:?}", outcome.stdout_text());
    (outcome.stderr, target)
}

#[test]
fn a_padded_reply_is_printed_as_it_came() {
    let (stderr, target) = through_java_server("-v", false, &["hello", "world!"]);
    let differs = format!(
        "the reply from udp {target} differs from the uppercase of the request: 1024 bytes"
    );
    assert_eq!(stderr.matches(&differs).count(), 2, "{stderr}");
    assert!(!stderr.contains("sending again"), "{stderr}");
}

#[test]
fn a_late_reply_is_dropped_and_a_differing_one_printed() {
    // Before each padded answer but the first, the server sends the exact
    // uppercase of the previous line: a late reply, not this line's.
    let (stderr, _) = through_java_server("-vv", true, &["alpha", "bravo", "charlie"]);
    assert_eq!(
        stderr.matches("dropped a late reply of 5 bytes").count(),
        2,
        "ALPHA and BRAVO, late: {stderr}"
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
