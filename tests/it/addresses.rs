//! Trying every resolved address in order: a name may resolve to `::1`
//! before `127.0.0.1` while the server listens on only one of them.

use shout_client::{ClientError, Connector, ErrorCategory, LineSession, Target};
use shout_tests::{RefusingAddr, TIMEOUT, TestServer, wait_until};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A refusing address on `::1` when this host has IPv6 (the `localhost`
/// case), on `127.0.0.1` otherwise.
fn refusing() -> RefusingAddr {
    RefusingAddr::on(IpAddr::V6(Ipv6Addr::LOCALHOST))
        .or_else(|| RefusingAddr::on(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        .expect("loopback can hold a port")
}

#[test]
fn a_refused_first_address_is_passed_over_for_the_server() {
    let server = TestServer::start();
    let refusing = refusing();
    let connector = Connector::new(
        Target::new("localhost", server.tcp_addr().port()),
        vec![refusing.addr(), server.tcp_addr()],
        Some(TIMEOUT),
    );
    let mut session = LineSession::new(connector, Some(TIMEOUT));
    let mut output = Vec::new();
    let input = "first\nΐ ß\n\nlast\n";
    let report = session
        .run(input.as_bytes(), &mut output, None)
        .expect("the second address answers");
    assert_eq!(report.answered, 4);
    assert_eq!(output, input.to_uppercase().as_bytes());
    let exchange = session.shout(b"peer?\n").unwrap();
    assert_eq!(exchange.peer, server.tcp_addr());
    drop(session);
    wait_until("the connection to close", || {
        server.stats().connections_open() == 0
    });
    assert_eq!(server.stop().connections_accepted, 1);
}

#[test]
fn when_every_address_refuses_the_error_says_so() {
    let (first, second) = (refusing(), refusing());
    let target = Target::new("localhost", 1);
    let connector = Connector::new(target, vec![first.addr(), second.addr()], Some(TIMEOUT));
    let error = connector.connect().expect_err("nothing listens");
    assert_eq!(error.category(), ErrorCategory::Refused, "{error}");
    assert!(
        matches!(error, ClientError::Connect { tried: 2, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("tried all 2 addresses of localhost"),
        "{error}"
    );
}
