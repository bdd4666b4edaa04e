//! The WebSocket client library against the server library's WebSocket
//! listener: one message and its reply, 16 MiB piped through in messages
//! and back byte for byte, a refused upgrade worded and classed.

use shout_client::{Connector, ErrorCategory, WsUrl, ws_connect, ws_stream};
use shout_server::WebSocketConfig;
use shout_tests::{RepeatedText, TIMEOUT, TestServer, UppercaseCheck};
use std::net::SocketAddr;

const UNIT: &str = "WebSocket carries text: straße, ΐ, ǰ, ﬁ, 日本語, 🦀 and more.\n";

fn server() -> (TestServer, SocketAddr) {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = TestServer::start_with(|b| b.websocket(loopback, WebSocketConfig::new()));
    let addr = server.handle().ws_addrs()[0];
    (server, addr)
}

fn connector(url: &WsUrl, addr: SocketAddr) -> Connector {
    Connector::new(url.target().unwrap(), vec![addr], Some(TIMEOUT))
}

#[test]
fn a_message_gets_its_uppercase_and_the_close_is_clean() {
    let (server, addr) = server();
    let url: WsUrl = format!("ws://{addr}/ws").parse().unwrap();
    let mut connection = ws_connect(&url, &connector(&url, addr), Some(TIMEOUT)).unwrap();
    assert_eq!(
        connection.exchange("grüße".as_bytes()).unwrap(),
        "GRÜSSE".as_bytes()
    );
    assert_eq!(connection.exchange(b"\xffbin").unwrap(), b"\xffBIN");
    assert_eq!(connection.exchange(b"").unwrap(), b"", "an empty reply");
    connection.close().unwrap();
    let stats = server.stop();
    assert_eq!((stats.ws_messages_in, stats.ws_messages_out), (3, 3));
    assert_eq!(stats.ws_close_received_1000, 1, "{stats}");
}

#[test]
fn sixteen_mib_piped_through_in_messages_is_the_uppercase_byte_for_byte() {
    let (server, addr) = server();
    let url: WsUrl = format!("ws://{addr}/ws").parse().unwrap();
    let connection = ws_connect(&url, &connector(&url, addr), Some(TIMEOUT)).unwrap();
    let times = (16u64 << 20).div_ceil(UNIT.len() as u64);
    let input = RepeatedText::new(UNIT, times);
    let input_len = input.remaining();
    let mut output = UppercaseCheck::new(UNIT, times);
    let totals = ws_stream(connection, input, &mut output).expect("every message answered");
    output.verify();
    assert_eq!(totals.sent, input_len);
    assert_eq!(totals.received, output.expected_len());
    let stats = server.stop();
    assert_eq!(stats.ws_messages_in, stats.ws_messages_out);
    assert!(stats.ws_messages_in >= input_len / 16_384, "{stats}");
}

#[test]
fn a_refused_upgrade_is_a_connection_error_naming_the_status() {
    let (_server, addr) = server();
    let url: WsUrl = format!("ws://{addr}/not-here").parse().unwrap();
    let error = ws_connect(&url, &connector(&url, addr), Some(TIMEOUT))
        .err()
        .expect("refused");
    assert_eq!(error.category(), ErrorCategory::Connection);
    assert!(error.to_string().contains("404"), "{error}");
}

#[test]
fn ping_over_websocket_times_the_upgrade_apart_on_each_new_connection() {
    let (server, addr) = server();
    let target: shout_client::Target = addr.to_string().parse().unwrap();
    let options = shout_client::PingOptions {
        count: 3,
        interval: std::time::Duration::from_millis(10),
        timeout: TIMEOUT,
        connect_timeout: Some(TIMEOUT),
        new_connection: true,
        ws: true,
        ..shout_client::PingOptions::default()
    };
    let mut out = Vec::new();
    let summary = shout_client::ping(&target, &options, &mut out).expect("ping runs");
    let out = String::from_utf8(out).unwrap();
    assert_eq!((summary.sent, summary.received), (3, 3), "{out}");
    assert_eq!(summary.upgrade.count(), 3, "{out}");
    assert_eq!(summary.connect.count(), 3, "{out}");
    assert!(out.contains(" upgrade="), "{out}");
    let stats = server.stop();
    assert_eq!(stats.ws_upgrades, 3, "{stats}");
    assert_eq!(stats.ws_messages_in, 3, "{stats}");
}
