//! Each failure: one line on standard error, and its own exit status.

use crate::support::{ONE_READ, PythonPeer, run, start_mute_tcp, start_one_read_tcp};
use shout_client::{Connector, ErrorCategory, Target, UdpClient};
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A resolver that fails as the system's does for an unknown name, without
/// asking anyone: no test may send a DNS query off the machine.
fn unknown_name(_: &str, _: u16) -> io::Result<Vec<SocketAddr>> {
    Err(io::Error::other("Name or service not known"))
}

#[test]
fn a_name_that_does_not_resolve() {
    // The binary prints the error as `shout: {error}` and exits with its
    // category's status; main.rs's unit tests check that mapping (3 for
    // `Resolve`). Here: both transports come to that error and category.
    let target = Target::new("nowhere.test", 12000);
    let tcp = Connector::resolve_with(&target, &unknown_name, None).unwrap_err();
    let udp =
        UdpClient::resolve_with(&target, &unknown_name, Duration::from_secs(1), 0).unwrap_err();
    for error in [tcp, udp] {
        assert_eq!(error.category(), ErrorCategory::Resolve, "{error:?}");
        assert_eq!(
            error.to_string(),
            "cannot resolve nowhere.test: Name or service not known"
        );
    }
}

#[test]
fn a_refused_tcp_connection() {
    let target = format!("127.0.0.1:{}", closed_port());
    let outcome = run(&["tcp", &target], b"x\n");
    assert_eq!(outcome.code, Some(4), "{}", outcome.stderr);
    assert_eq!(
        outcome.stderr,
        format!("shout: tcp {target} refused the connection — is a server listening there?\n")
    );
    let ping = run(&["ping", "-c", "1", &target], b"");
    assert_eq!(ping.code, Some(4), "{}", ping.stderr);
}

#[test]
fn a_refused_datagram() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let outcome = run(&["udp", &target, "--timeout", "2"], b"x\n");
    // Loopback reports ICMP port unreachable; a host that filters it would
    // show as a timeout instead (status 5).
    assert_eq!(outcome.code, Some(4), "{}", outcome.stderr);
    assert_eq!(
        outcome.stderr,
        format!("shout: udp {target} refused the datagram — is a server listening there?\n")
    );
}

#[test]
fn a_udp_server_that_never_answers() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap().to_string();
    let outcome = run(
        &["udp", &target, "--timeout", "0.2", "--retries", "2"],
        b"anyone?\n",
    );
    assert_eq!(outcome.code, Some(5), "{}", outcome.stderr);
    assert_eq!(
        outcome.stderr,
        format!("shout: no reply from udp {target} after 3 attempts (timeout 0.2s each)\n")
    );
    assert!(outcome.stdout.is_empty());
}

#[test]
fn a_tcp_server_that_never_answers() {
    let target = start_mute_tcp().to_string();
    let outcome = run(&["tcp", &target, "--timeout", "0.3"], b"hello?\n");
    assert_eq!(outcome.code, Some(5), "{}", outcome.stderr);
    assert_eq!(
        outcome.stderr,
        format!("shout: tcp {target} sent no reply within 0.3s\n")
    );
}

#[test]
fn a_tcp_server_that_answers_part_and_goes_quiet() {
    let target = start_one_read_tcp().to_string();
    let input = vec![b'a'; 5000];
    let outcome = run(&["tcp", &target, "--timeout", "0.3"], &input);
    assert_eq!(outcome.code, Some(5), "{}", outcome.stderr);
    assert_eq!(
        outcome.stderr,
        format!(
            "shout: tcp {target} sent {ONE_READ} of the 5000 reply bytes, then nothing for 0.3s\n"
        )
    );
    assert_eq!(outcome.stdout, vec![b'A'; ONE_READ]);
}

#[test]
fn a_connection_that_closes_before_the_reply_is_complete() {
    let peer = PythonPeer::start("tcp_server.py");
    // The lecture server answers at most 1024 bytes, then closes.
    let outcome = run(&["tcp", &peer.target()], &vec![b'x'; 5000]);
    assert_eq!(outcome.code, Some(6), "{}", outcome.stderr);
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
}

#[test]
fn usage_errors() {
    for args in [
        &["ping"][..],
        &["udp", "--timeout", "0"],
        &["udp", "--timeout", "soon"],
        &["tcp", "host:port"],
        &["ping", "-c", "0", "localhost"],
        &["-v", "-q", "tcp"],
    ] {
        let outcome = run(args, b"");
        assert_eq!(outcome.code, Some(2), "{args:?}: {}", outcome.stderr);
    }
}

#[test]
fn a_connection_attempt_that_times_out() {
    // A listener that never accepts, with its queue full: the kernel drops
    // further handshakes, so a connection attempt waits and times out.
    let listener = shout_socket::TcpListenerBuilder::new("127.0.0.1:0".parse().unwrap())
        .backlog(0)
        .bind()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..8 {
        match shout_socket::connect_tcp(addr, Some(Duration::from_millis(200))) {
            Ok(stream) => queued.push(stream),
            Err(_) => break,
        }
    }
    let target = addr.to_string();
    let outcome = run(&["--connect-timeout", "0.3", "tcp", &target], b"x\n");
    eprintln!("queued {} connections", queued.len());
    assert_eq!(outcome.code, Some(5), "{}", outcome.stderr);
    assert_eq!(
        outcome.stderr,
        format!("shout: connecting to tcp {target} timed out\n")
    );
}
