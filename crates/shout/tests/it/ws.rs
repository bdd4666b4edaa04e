//! `shout ws`, `ping --ws` and `bench --ws` against shout-server's
//! WebSocket listeners on 127.0.0.1: plain, and over TLS (wss) with
//! certificates rcgen makes at test time.

use crate::support::{LibraryServer, run};
use crate::tls::{LOCAL_NAMES, Pki};
use shout_bench::{Mode, Summary};
use shout_server::{NoService, ServerBuilder, Stats, Uppercase, WebSocketConfig};
use std::net::SocketAddr;

type Builder = ServerBuilder<Uppercase, NoService>;

/// An uppercase server with one WebSocket listener; stopped on drop.
pub(crate) struct WsServer(LibraryServer);

impl WsServer {
    /// Serves ws:// on a free port.
    pub(crate) fn plain() -> Self {
        Self::start(|builder, addr| builder.websocket(addr, WebSocketConfig::new()))
    }

    /// Serves wss:// on a free port, presenting `pki`'s certificate.
    fn secure(pki: &Pki) -> Self {
        let config = pki.server_config();
        Self::start(move |builder, addr| {
            builder.websocket_tls(addr, config, WebSocketConfig::new())
        })
    }

    fn start(listen: impl FnOnce(Builder, SocketAddr) -> Builder) -> Self {
        let loopback = "127.0.0.1:0".parse().unwrap();
        let builder = listen(ServerBuilder::tcp_only(Uppercase), loopback);
        Self(LibraryServer::start(builder))
    }

    pub(crate) fn port(&self) -> u16 {
        self.0.handle.ws_addrs()[0].port()
    }

    /// Stops the server once its connections are drained, and returns
    /// what it counted.
    fn stop(self) -> Stats {
        self.0.stop()
    }
}

/// Returns the number that `line` gives `field` (`connect=1.234 ms`),
/// failing when the field is missing or not a number.
fn field_ms(line: &str, field: &str) -> f64 {
    let Some((_, rest)) = line.split_once(&format!(" {field}=")) else {
        panic!("no {field}= in {line:?}");
    };
    let value = rest.split_whitespace().next().unwrap_or_default();
    assert!(
        rest[value.len()..].starts_with(" ms"),
        "{field} in {line:?}"
    );
    value
        .parse()
        .unwrap_or_else(|_| panic!("{field}={value} is not a number in {line:?}"))
}

#[test]
fn piped_lines_over_wss_come_back_uppercased() {
    let pki = Pki::new("ws-piped", LOCAL_NAMES, false);
    let server = WsServer::secure(&pki);
    let url = format!("wss://localhost:{}/ws", server.port());
    let input = "hello, straße\nﬁne ǆ 🎉\nlast line without a newline";
    let outcome = run(&["ws", &url, "--ca", &pki.ca_arg()], input.as_bytes());
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stdout_text(), input.to_uppercase());
    let stats = server.stop();
    assert_eq!(stats.tls_handshakes_completed, 1, "{stats}");
    assert_eq!(stats.ws_upgrades, 1, "{stats}");
    assert_eq!(stats.ws_close_received_1000, 1, "{stats}");
}

#[test]
fn wss_with_another_ca_is_a_tls_failure() {
    let pki = Pki::new("ws-served", LOCAL_NAMES, false);
    let other = Pki::new("ws-other", LOCAL_NAMES, false);
    let server = WsServer::secure(&pki);
    let url = format!("wss://localhost:{}/ws", server.port());
    let outcome = run(&["ws", &url, "--ca", &other.ca_arg()], b"x");
    assert_eq!(outcome.code, Some(7), "stderr: {}", outcome.stderr);
    assert!(outcome.stdout.is_empty());
    assert_eq!(server.stop().ws_upgrades, 0);
}

#[test]
fn ping_over_wss_times_tcp_tls_upgrade_and_exchange_apart() {
    let pki = Pki::new("ws-ping", LOCAL_NAMES, false);
    let server = WsServer::secure(&pki);
    let target = format!("localhost:{}", server.port());
    let outcome = run(
        &[
            "ping",
            "--ws",
            "--tls",
            "--ca",
            &pki.ca_arg(),
            "--new-connection",
            "-c",
            "3",
            "-i",
            "10",
            &target,
        ],
        b"",
    );
    let stdout = outcome.stdout_text();
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    assert!(
        stdout.starts_with(&format!("SHOUT PING {target} over wss, ")),
        "{stdout}"
    );
    let probes: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains(" bytes from "))
        .collect();
    assert_eq!(probes.len(), 3, "{stdout}");
    for (seq, line) in (1..).zip(&probes) {
        assert!(line.contains(&format!(": seq={seq} ")), "{line}");
        for field in ["connect", "tls", "upgrade", "rtt", "time"] {
            assert!(field_ms(line, field) >= 0.0, "{line}");
        }
    }
    assert!(stdout.contains("3 sent, 3 received, 0% loss"), "{stdout}");
    let stats = server.stop();
    assert_eq!(stats.tls_handshakes_completed, 3, "{stats}");
    assert_eq!(stats.ws_upgrades, 3, "{stats}");
    assert_eq!(stats.ws_messages_in, 3, "{stats}");
}

#[test]
fn ping_over_wss_as_json_gives_each_phase_as_a_number() {
    let pki = Pki::new("ws-ping-json", LOCAL_NAMES, false);
    let server = WsServer::secure(&pki);
    let target = format!("localhost:{}", server.port());
    let outcome = run(
        &[
            "ping",
            "--json",
            "--ws",
            "--tls",
            "--ca",
            &pki.ca_arg(),
            "--new-connection",
            "-c",
            "2",
            "-i",
            "10",
            &target,
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    let report: serde_json::Value = serde_json::from_slice(&outcome.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", outcome.stdout_text()));
    assert_eq!(report["transport"], "wss");
    let probes = report["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 2, "{report}");
    for probe in probes {
        assert_eq!(probe["answered"], true, "{probe}");
        for field in ["connect_ms", "tls_ms", "upgrade_ms", "rtt_ms", "time_ms"] {
            assert!(probe[field].is_number(), "{field} in {probe}");
        }
    }
}

/// Runs `shout bench --ws --json ARGS… TARGET` and returns its summary,
/// expecting success.
fn bench_ws(server: &WsServer, args: &[&str]) -> Summary {
    let target = format!("127.0.0.1:{}", server.port());
    let mut all = vec!["bench", "--ws", "--json"];
    all.extend_from_slice(args);
    all.push(&target);
    let outcome = run(&all, b"");
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    Summary::from_output(&outcome.stdout_text()).unwrap()
}

#[test]
fn bench_over_websocket_checks_every_reply_and_upgrades_every_connection() {
    let server = WsServer::plain();
    let summary = bench_ws(&server, &["-c", "2", "-d", "8", "-s", "300", "-n", "2000"]);
    assert_eq!(summary.transport, "ws");
    assert_eq!(summary.mode, Mode::ClosedLoop);
    assert_eq!(summary.messages, 2000);
    assert_eq!(summary.errors, 0, "{:?}", summary.first_error);
    assert_eq!(summary.handshakes, 2, "an upgrade per connection");
    assert!(summary.handshake_p50_us.is_some_and(|us| us > 0.0));
    let stats = server.stop();
    // The first connection, which checks the target, and two for the load.
    assert_eq!(stats.ws_upgrades, 3, "{stats}");
    assert_eq!(stats.ws_upgrades_refused, 0, "{stats}");
    assert!(stats.ws_messages_in >= 2000, "{stats}");
}

#[test]
fn bench_over_websocket_for_a_duration_says_ws_in_its_summary() {
    let server = WsServer::plain();
    let target = format!("127.0.0.1:{}", server.port());
    let outcome = run(
        &[
            "-q",
            "bench",
            "--ws",
            "-c",
            "2",
            "--duration",
            "0.5",
            &target,
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    let stdout = outcome.stdout_text();
    assert!(
        stdout.starts_with(&format!("ws {target}: 2 connections × depth 1 × 64 B")),
        "{stdout}"
    );
    assert!(stdout.contains("\n  ws       2 upgrades  p50 "), "{stdout}");
    assert!(stdout.contains("\n  errors   0\n"), "{stdout}");
    let stats = server.stop();
    assert_eq!(stats.ws_upgrades, 3, "{stats}");
    assert_eq!(stats.ws_upgrades_refused, 0, "{stats}");
}

#[test]
fn bench_hold_over_websocket_holds_upgraded_connections() {
    let server = WsServer::plain();
    let summary = bench_ws(&server, &["--hold", "20", "--idle", "0.2"]);
    assert_eq!(summary.mode, Mode::Hold);
    assert_eq!(summary.held, Some(20));
    assert_eq!(summary.messages, 20, "one request on each");
    assert_eq!(summary.errors, 0, "{:?}", summary.first_error);
    assert_eq!(summary.handshakes, 20);
    let stats = server.stop();
    assert_eq!(stats.ws_upgrades, 21, "{stats}");
    assert_eq!(stats.ws_upgrades_refused, 0, "{stats}");
    assert_eq!(stats.ws_messages_in, 20, "{stats}");
}

#[test]
fn bench_against_a_path_that_does_not_upgrade_is_one_clear_error() {
    // A plain TCP uppercaser: the upgrade request comes back uppercased,
    // which is no 101.
    let server = crate::support::UppercaseServer::start();
    let outcome = run(&["bench", "--ws", "-n", "5", &server.addr.to_string()], b"");
    assert_eq!(outcome.code, Some(6), "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    assert!(outcome.stdout.is_empty());
}
