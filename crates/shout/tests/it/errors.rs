//! Each failure: one line on standard error, and its own exit status.

use crate::support::{PythonPeer, run, start_mute_tcp};
use std::net::{TcpListener, UdpSocket};

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_name_that_does_not_resolve() {
    for command in ["tcp", "udp"] {
        let outcome = run(&[command, "nonexistent.invalid:12000"], b"x\n");
        assert_eq!(outcome.code, Some(3), "{command}: {}", outcome.stderr);
        assert!(
            outcome
                .stderr
                .starts_with("shout: cannot resolve nonexistent.invalid: "),
            "{}",
            outcome.stderr
        );
        assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
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
        match shout_socket::connect_tcp(addr, Some(std::time::Duration::from_millis(200))) {
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
