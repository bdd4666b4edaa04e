//! TCP one line at a time: `LineSession`, as the interactive client uses it.

use shout_client::{Connector, LineSession};
use shout_tests::{TIMEOUT, TestServer, wait_until};
use std::time::Duration;

fn session(server: &TestServer) -> LineSession {
    let connector = Connector::new(server.tcp_target(), vec![server.tcp_addr()], Some(TIMEOUT));
    LineSession::new(connector, Some(TIMEOUT))
}

#[test]
fn interactive_lines_over_one_connection() {
    let server = TestServer::start();
    let mut session = session(&server);
    // What a person types: ASCII, Unicode that grows when uppercased, an
    // empty line, a CRLF line, and a last line with no newline at all.
    let input = "hello, shout\n\
                 grüße aus köln: straße\n\
                 \n\
                 ﬁ ß ΐ ǰ ǅ 日本語 🦀 ñ\r\n\
                 the end";
    let mut output = Vec::new();
    let mut prompt = Vec::new();
    let report = session
        .run(input.as_bytes(), &mut output, Some(&mut prompt))
        .expect("every line is answered");
    assert_eq!((report.answered, report.skipped), (5, 0));
    let output = String::from_utf8(output).unwrap();
    let expected: String = input
        .lines()
        .map(|line| line.to_uppercase() + "\n")
        .collect();
    assert_eq!(output, expected);
    assert!(output.contains("GRÜSSE AUS KÖLN: STRASSE\n\n"), "{output}");
    assert_eq!(prompt, b"> > > > > > \n");
    drop(session);
    wait_until("the session's connection to close", || {
        server.stats().connections_open() == 0
    });
    let stats = server.stop();
    assert_eq!(
        stats.connections_accepted, 1,
        "one connection for all lines"
    );
    // The CRLF became a LF, and the last line got one: as many bytes.
    assert_eq!(stats.bytes_in, input.len() as u64);
    assert_eq!(stats.bytes_out, expected.len() as u64);
}

#[test]
fn exchanges_report_the_peer_and_the_handshake_once() {
    let server = TestServer::start();
    let mut session = session(&server);
    let first = session.shout("größer\n".as_bytes()).unwrap();
    assert_eq!(first.reply, "GRÖSSER\n".as_bytes());
    assert_eq!(first.peer, server.tcp_addr());
    assert!(first.connect_time.is_some(), "the first exchange connects");
    for text in ["", "\n", "ǰ", "ΐ\n", "🦀 crab\n"] {
        let exchange = session.shout(text.as_bytes()).unwrap();
        assert_eq!(exchange.reply, text.to_uppercase().as_bytes(), "{text:?}");
        assert!(exchange.connect_time.is_none(), "{text:?} reconnected");
    }
}

#[test]
fn a_session_reconnects_after_the_server_closed_it_as_idle() {
    let server =
        TestServer::start_with(|builder| builder.idle_timeout(Some(Duration::from_millis(200))));
    let mut session = session(&server);
    assert_eq!(session.shout(b"before\n").unwrap().reply, b"BEFORE\n");
    wait_until("the idle timeout to close the connection", || {
        server.stats().idle_timeouts == 1
    });
    let after = session.shout(b"after\n").expect("the session reconnects");
    assert_eq!(after.reply, b"AFTER\n");
    assert!(after.connect_time.is_some(), "a new handshake was made");
    drop(session);
    wait_until("the second connection to close", || {
        server.stats().connections_open() == 0
    });
    assert_eq!(server.stop().connections_accepted, 2);
}
