//! `ping` over TCP (one connection, or one per probe) and UDP: every probe
//! answered, and the server saw exactly the connections and datagrams the
//! mode calls for.

use shout_client::{PingOptions, PingSummary, Target, Transport, ping};
use shout_tests::{TIMEOUT, TestServer, wait_until};
use std::time::Duration;

const PROBES: u32 = 5;

fn options(transport: Transport, new_connection: bool) -> PingOptions {
    PingOptions {
        transport,
        count: PROBES,
        interval: Duration::from_millis(20),
        timeout: TIMEOUT,
        connect_timeout: Some(TIMEOUT),
        new_connection,
        tls: None,
        quic: false,
        zero_rtt: true,
        ws: false,
        size: None,
        json: false,
    }
}

/// Pings and checks the report: every probe answered, one line each.
fn ping_all(target: &Target, options: &PingOptions) -> (PingSummary, String) {
    let mut out = Vec::new();
    let summary = ping(target, options, &mut out).expect("ping runs");
    let out = String::from_utf8(out).unwrap();
    assert_eq!((summary.sent, summary.received), (PROBES, PROBES), "{out}");
    assert_eq!(summary.loss_percent(), 0.0, "{out}");
    assert_eq!(summary.time.count(), PROBES, "{out}");
    for seq in 1..=PROBES {
        assert!(
            out.contains(&format!(": seq={seq} ")),
            "seq={seq} missing: {out}"
        );
    }
    assert!(
        out.contains(&format!("{PROBES} sent, {PROBES} received, 0% loss")),
        "{out}"
    );
    (summary, out)
}

#[test]
fn tcp_ping_over_one_connection() {
    let server = TestServer::start();
    let (summary, out) = ping_all(&server.tcp_target(), &options(Transport::Tcp, false));
    assert_eq!(
        summary.connect.count(),
        0,
        "no probe made a handshake: {out}"
    );
    // `shout ping seq=1\n` is 17 bytes, and so is its reply.
    assert!(
        out.contains(&format!("17 bytes from {}: seq=1 ", server.tcp_addr())),
        "{out}"
    );
    wait_until("the ping's connection to close", || {
        server.stats().connections_open() == 0
    });
    assert_eq!(server.stop().connections_accepted, 1);
}

#[test]
fn tcp_ping_with_a_new_connection_per_probe() {
    let server = TestServer::start();
    let (summary, out) = ping_all(&server.tcp_target(), &options(Transport::Tcp, true));
    assert_eq!(summary.connect.count(), PROBES, "{out}");
    assert!(out.contains("connect="), "{out}");
    wait_until("every probe's connection to close", || {
        let stats = server.stats();
        stats.connections_accepted == u64::from(PROBES) && stats.connections_open() == 0
    });
    assert_eq!(server.stop().connections_accepted, u64::from(PROBES));
}

#[test]
fn udp_ping() {
    let server = TestServer::start();
    let (_, out) = ping_all(&server.udp_target(), &options(Transport::Udp, false));
    assert!(
        out.contains(&format!("16 bytes from {}: seq=1 ", server.udp_addr())),
        "{out}"
    );
    let stats = server.stop();
    assert_eq!(stats.datagrams_in, u64::from(PROBES));
    assert_eq!(stats.datagrams_out, u64::from(PROBES));
    assert_eq!(stats.connections_accepted, 0);
}
