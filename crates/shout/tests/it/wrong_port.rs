//! A server reached with the wrong transport, as a newcomer does it: TLS
//! at a plain port, plain TCP at a TLS port, WebSocket at a plain port or
//! at the page's path, and a host typed without its port. Each gets one
//! clear error, on loopback, against shout-server or the test's servers.

use crate::support::{LibraryServer, UppercaseServer, run, start_tcp_server, uppercase};
use crate::tls::{LOCAL_NAMES, Pki};
use shout_client::{ClientError, Connector, LineSession, Target};
use shout_server::{ServerBuilder, Uppercase, WebSocketConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// shout-server's TLS listener on 127.0.0.1, as shoutd --tls serves it;
/// stopped on drop.
struct TlsPort {
    _server: LibraryServer,
    addr: SocketAddr,
    _pki: Pki,
}

impl TlsPort {
    fn start() -> Self {
        let pki = Pki::new("tls-port", LOCAL_NAMES, false);
        let builder = ServerBuilder::tcp_only(Uppercase)
            .tls("127.0.0.1:0".parse().unwrap(), pki.server_config());
        let server = LibraryServer::start(builder);
        Self {
            addr: server.handle.tls_addrs()[0],
            _server: server,
            _pki: pki,
        }
    }
}

const TLS_ANSWER: &str = "the server answered with TLS: use --tls";

#[test]
fn plain_tcp_at_a_tls_port_is_an_error_with_nothing_on_stdout() {
    let port = TlsPort::start();
    let target = port.addr.to_string();
    let outcome = run(&["tcp", &target], b"hi\n");
    assert_eq!(outcome.code, Some(6), "stderr: {}", outcome.stderr);
    assert!(outcome.stdout.is_empty(), "stdout: {:?}", outcome.stdout);
    assert_eq!(
        outcome.stderr.trim_end(),
        format!("shout: tcp {target}: {TLS_ANSWER}")
    );

    let outcome = run(&["ping", "-c", "2", "-i", "10", &target], b"");
    assert_eq!(outcome.code, Some(6), "stderr: {}", outcome.stderr);
    assert!(outcome.stderr.contains(TLS_ANSWER), "{}", outcome.stderr);
}

#[test]
fn a_line_session_at_a_tls_port_is_told_so_even_for_a_one_byte_request() {
    let port = TlsPort::start();
    let target = Target::new("127.0.0.1", port.addr.port());
    for request in [&b"hello\n"[..], b"\n", b"a\n"] {
        let connector = Connector::resolve(&target, Some(shout_testkit::TIMEOUT)).unwrap();
        let mut session = LineSession::new(connector, Some(Duration::from_secs(5)));
        let error = session.shout(request).unwrap_err();
        assert!(
            matches!(error, ClientError::TlsAnswer { .. }),
            "{request:?}: {error}"
        );
    }
}

#[test]
fn input_that_starts_like_a_tls_record_is_still_a_reply() {
    let server = UppercaseServer::start();
    let target = server.addr.to_string();
    for input in [
        &b"\x16\x03\x01 a handshake, lowercase\n"[..],
        b"\x15\x03\x03\x00\x02\x02\x32",
        b"\x16\x03",
    ] {
        let outcome = run(&["tcp", &target], input);
        assert_eq!(outcome.code, Some(0), "{input:?}: {}", outcome.stderr);
        assert_eq!(outcome.stdout, uppercase(input), "{input:?}");
        assert!(outcome.stderr.is_empty(), "{input:?}: {}", outcome.stderr);

        let connector = Connector::resolve(
            &Target::new("127.0.0.1", server.addr.port()),
            Some(shout_testkit::TIMEOUT),
        )
        .unwrap();
        let mut session = LineSession::new(connector, Some(Duration::from_secs(5)));
        let exchange = session.shout(input).unwrap();
        assert_eq!(exchange.reply, uppercase(input), "{input:?}");
    }
}

/// Sends back every byte it gets, as an echo server does.
fn echo(mut stream: TcpStream) {
    let mut buf = [0; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

#[test]
fn tls_at_a_plain_port_says_the_server_does_not_speak_tls_without_rustls_warnings() {
    let uppercaser = UppercaseServer::start();
    let echoer = start_tcp_server(echo);
    for addr in [uppercaser.addr, echoer] {
        let outcome = run(&["tcp", "--tls", "--insecure", &addr.to_string()], b"hi\n");
        assert_eq!(outcome.code, Some(7), "stderr: {}", outcome.stderr);
        assert!(outcome.stdout.is_empty());
        let lines: Vec<&str> = outcome.stderr.lines().collect();
        // The warning that --insecure gives, then the error: no line of
        // rustls's own.
        assert_eq!(lines.len(), 2, "{}", outcome.stderr);
        assert!(lines[0].contains("--insecure"), "{}", outcome.stderr);
        assert!(
            lines[1].starts_with(&format!("shout: tls {addr}: the server does not speak TLS")),
            "{}",
            outcome.stderr
        );
        assert!(
            lines[1].ends_with(
                "is it a TLS server? a plain shoutd port answers with the uppercase of what it got"
            ),
            "{}",
            outcome.stderr
        );
    }
}

#[test]
fn a_host_without_a_port_gets_the_port_of_its_transport() {
    // -v names the address connected to; what answers there, if anything,
    // does not matter.
    for (args, expected) in [
        (
            &["tcp", "--tls", "--insecure"][..],
            "connecting to tcp 127.0.0.1:12443",
        ),
        (&["tcp"][..], "connecting to tcp 127.0.0.1:12000"),
        (
            &["tcp", "--quic", "--insecure"][..],
            "connecting to quic 127.0.0.1:12443",
        ),
        (
            &["ping", "-c", "1", "--tls", "--insecure"][..],
            "connecting to tcp 127.0.0.1:12443",
        ),
    ] {
        let mut all = vec!["-v", "--connect-timeout", "1"];
        all.extend_from_slice(args);
        all.push("127.0.0.1");
        let outcome = run(&all, b"");
        assert!(
            outcome.stderr.contains(expected),
            "{all:?}: {}",
            outcome.stderr
        );
    }
}

#[test]
fn websocket_at_a_plain_port_says_the_server_did_not_answer_with_http() {
    let server = UppercaseServer::start();
    let url = format!("ws://{}/ws", server.addr);
    let outcome = run(&["ws", &url], b"hi\n");
    assert_eq!(outcome.code, Some(6), "stderr: {}", outcome.stderr);
    assert!(outcome.stdout.is_empty());
    assert!(
        outcome
            .stderr
            .contains("the server did not answer with HTTP"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("is it a WebSocket server?"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains("httparse"), "{}", outcome.stderr);
}

#[test]
fn websocket_at_another_path_of_shoutd_names_ws() {
    // As shoutd --ws serves it: the page at /, the socket at /ws.
    let server = LibraryServer::start(ServerBuilder::tcp_only(Uppercase).websocket(
        "127.0.0.1:0".parse().unwrap(),
        WebSocketConfig::new().page(&b"<!doctype html><title>shout</title>"[..]),
    ));
    let port = server.handle.ws_addrs()[0].port();
    for (path, status) in [("/", "HTTP 200 OK"), ("/nothing", "HTTP 404 Not Found")] {
        let url = format!("ws://127.0.0.1:{port}{path}");
        let outcome = run(&["ws", &url], b"hi\n");
        assert_eq!(outcome.code, Some(6), "stderr: {}", outcome.stderr);
        assert!(
            outcome.stderr.trim_end().ends_with(&format!(
                "the server refused the upgrade: {status} (shoutd serves its WebSocket at /ws)"
            )),
            "{path}: {}",
            outcome.stderr
        );
    }
    server.stop();
}

#[test]
fn a_negative_timeout_is_a_clear_usage_error() {
    for args in [
        &["tcp", "--timeout", "-1"][..],
        &["--connect-timeout", "-1", "tcp"],
        &["udp", "--timeout=-0.5"],
        &["ping", "--timeout", "-2", "localhost"],
        &["ws", "--timeout", "-1"],
        &["tcp", "--timeout", "0"],
    ] {
        let outcome = run(args, b"");
        assert_eq!(outcome.code, Some(2), "{args:?}: {}", outcome.stderr);
        assert!(
            outcome
                .stderr
                .contains("a timeout is a positive number of seconds"),
            "{args:?}: {}",
            outcome.stderr
        );
        assert!(
            !outcome.stderr.contains("-- -"),
            "{args:?}: {}",
            outcome.stderr
        );
    }
}
