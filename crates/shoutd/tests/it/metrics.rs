//! `shoutd --metrics`: the endpoint's counters equal the traffic sent, over
//! TCP and UDP, and every metric has its help line.

use crate::support::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};

/// Every metric shoutd exposes today.
const NAMES: [&str; 35] = [
    "shout_connections_refused_per_source_total",
    "shout_connections_accepted_total",
    "shout_connections_closed_total",
    "shout_connections_open",
    "shout_connections_shed_total",
    "shout_idle_timeouts_total",
    "shout_linger_timeouts_total",
    "shout_bytes_received_total",
    "shout_bytes_sent_total",
    "shout_datagrams_received_total",
    "shout_datagrams_sent_total",
    "shout_datagrams_from_senders_total",
    "shout_datagrams_dropped_total",
    "shout_service_panics_total",
    "shout_tls_handshakes_completed_total",
    "shout_tls_handshakes_failed_total",
    "shout_tls_handshake_timeouts_total",
    "shout_tls_truncated_total",
    "shout_proxy_headers_rejected_total",
    "shout_quic_handshakes_completed_total",
    "shout_quic_handshakes_failed_total",
    "shout_quic_connections_refused_total",
    "shout_quic_retries_sent_total",
    "shout_quic_streams_total",
    "shout_quic_bytes_received_total",
    "shout_quic_bytes_sent_total",
    "shout_quic_packets_lost_total",
    "shout_quic_idle_timeouts_total",
    "shout_quic_connections_closed_total",
    "shout_quic_connections_open",
    "shout_ws_upgrades_total",
    "shout_ws_upgrades_refused_total",
    "shout_ws_pages_served_total",
    "shout_ws_messages_received_total",
    "shout_ws_messages_sent_total",
];

/// `GET /metrics`: the body, which must come with a 200.
fn scrape_text(addr: SocketAddr) -> String {
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: shoutd\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8(read_to_end(&mut stream)).expect("a text answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    body.to_owned()
}

/// The samples of a scrape, by name (shoutd's have no labels).
fn samples(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(' ').expect("`name value`");
            (name.to_owned(), value.parse().expect("an integer value"))
        })
        .collect()
}

#[test]
fn the_counters_equal_the_traffic_sent_over_tcp_and_udp() {
    let shoutd = Shoutd::start(&[
        "--tcp",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let (tcp, udp) = (shoutd.tcp.unwrap(), shoutd.udp.unwrap());
    let metrics = shoutd.metrics.expect("a `listening metrics` line");

    let before = samples(&scrape_text(metrics));
    for name in NAMES {
        assert_eq!(before.get(name), Some(&0), "{name} before any traffic");
    }

    // TCP: 3 connections, text whose uppercase is longer (ß → SS).
    let text = "straße ﬁ ǆ 🎉 shout\n";
    let answer = text.to_uppercase();
    let connections = 3_u64;
    for _ in 0..connections {
        let mut stream = connect(tcp);
        stream.write_all(text.as_bytes()).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut stream), answer.as_bytes());
    }

    // UDP: 4 answered, and one whose answer would not fit in a datagram
    // (ΐ is 2 bytes, its uppercase 6), which is dropped.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let answered = 4_u64;
    let mut reply = vec![0; 65_536];
    for round in 0..answered {
        let datagram = format!("datagram {round}: straße");
        socket.send_to(datagram.as_bytes(), udp).unwrap();
        let (len, _) = socket.recv_from(&mut reply).expect("a reply");
        assert_eq!(&reply[..len], datagram.to_uppercase().as_bytes());
    }
    let too_long = "ΐ".repeat(20_000);
    socket.send_to(too_long.as_bytes(), udp).unwrap();

    // The server counts a close when it has seen the client's, a datagram
    // when it has read it, and its drop once it has tried to answer it:
    // wait until every datagram received is either answered or dropped.
    let mut after = HashMap::new();
    wait_until("the server has counted every close and datagram", || {
        after = samples(&scrape_text(metrics));
        let received = after["shout_datagrams_received_total"];
        after["shout_connections_closed_total"] == connections
            && received == answered + 1
            && after["shout_datagrams_sent_total"] + after["shout_datagrams_dropped_total"]
                == received
    });
    let expected = [
        ("shout_connections_accepted_total", connections),
        ("shout_connections_closed_total", connections),
        ("shout_connections_open", 0),
        ("shout_connections_shed_total", 0),
        ("shout_idle_timeouts_total", 0),
        ("shout_linger_timeouts_total", 0),
        (
            "shout_bytes_received_total",
            connections * text.len() as u64,
        ),
        ("shout_bytes_sent_total", connections * answer.len() as u64),
        ("shout_datagrams_received_total", answered + 1),
        ("shout_datagrams_sent_total", answered),
        ("shout_datagrams_dropped_total", 1),
        ("shout_service_panics_total", 0),
        ("shout_connections_refused_per_source_total", 0),
        (
            "shout_connections_closed_by_cause_total{cause=\"client\"}",
            connections,
        ),
        (
            "shout_datagrams_dropped_by_cause_total{cause=\"declined\"}",
            1,
        ),
        (
            "shout_datagrams_dropped_by_cause_total{cause=\"rate_limited\"}",
            0,
        ),
    ];
    for (name, value) in expected {
        assert_eq!(after.get(name), Some(&value), "{name}");
    }
    // The names above, the loop's turns, 8 close causes, 9 drop causes,
    // 16 turn-time buckets, 6 WebSocket close codes sent and 4 received.
    assert_eq!(
        after.len(),
        NAMES.len() + 1 + 8 + 9 + 16 + 6 + 4,
        "{after:?}"
    );
    assert_eq!(
        after["shout_loop_turns_total"],
        after["shout_loop_turns_within_total{at_most_us=\"inf\"}"]
    );

    // An open connection is a gauge that goes up, and down when it closes.
    let mut open = connect(tcp);
    open.write_all(b"x").unwrap();
    let mut one = [0; 1];
    open.read_exact(&mut one).unwrap();
    assert_eq!(samples(&scrape_text(metrics))["shout_connections_open"], 1);
    drop(open);
    wait_until("the gauge goes back to 0", || {
        samples(&scrape_text(metrics))["shout_connections_open"] == 0
    });
}

#[test]
fn every_metric_has_help_and_type_lines() {
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    let text = scrape_text(shoutd.metrics.unwrap());
    for name in NAMES {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}: {text}"
        );
    }
}

#[test]
fn a_metrics_address_in_use_exits_2_naming_it() {
    let first = Shoutd::start(&["--tcp", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    let taken = first.metrics.unwrap().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shoutd"))
        .args(["--tcp", "127.0.0.1:0", "--metrics", &taken])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&taken), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening"),
        "a failed start announces nothing"
    );
}

#[test]
fn every_metric_exported_is_named_in_operating_md() {
    let shoutd = Shoutd::start(&[
        "--tcp",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
        "--tls",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let text = scrape_text(shoutd.metrics.unwrap());
    let exported: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    assert!(exported.len() >= NAMES.len(), "{text}");
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/OPERATING.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/OPERATING.md");
    // A name counts as documented in code quotes, alone or with its labels.
    let missing: Vec<&str> = exported
        .into_iter()
        .filter(|name| !doc.contains(&format!("`{name}`")) && !doc.contains(&format!("`{name}{{")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/OPERATING.md does not name these metrics: {missing:?}"
    );
}

#[test]
fn a_reset_during_a_tls_handshake_counts_as_a_failed_handshake() {
    let shoutd = Shoutd::start(&["--tls", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    let (tls, metrics) = (shoutd.listening().addrs("tls")[0], shoutd.metrics.unwrap());
    // The first half of a real ClientHello: the server waits for the rest.
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = "localhost".try_into().unwrap();
    let mut hello = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut bytes = Vec::new();
    hello.write_tls(&mut bytes).unwrap();
    let half = &bytes[..bytes.len() / 2];
    let mut stream = connect(tls);
    stream.write_all(half).unwrap();
    // Reset only once the server has read the half, so the reset meets a
    // handshake under way.
    wait_until("the server has read half a ClientHello", || {
        samples(&scrape_text(metrics))["shout_bytes_received_total"] == half.len() as u64
    });
    set_linger_zero(&stream);
    drop(stream);
    wait_until("the reset is counted as a failed handshake", || {
        let now = samples(&scrape_text(metrics));
        now["shout_connections_closed_total"] == 1 && now["shout_tls_handshakes_failed_total"] == 1
    });
    let now = samples(&scrape_text(metrics));
    assert_eq!(now["shout_tls_handshakes_completed_total"], 0);
    assert_eq!(
        now["shout_connections_closed_by_cause_total{cause=\"reset\"}"],
        1
    );
}
