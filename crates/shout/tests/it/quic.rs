//! `shout tcp --quic` against a QUIC server made here: shout-server's
//! QUIC listener on 127.0.0.1, uppercasing, with certificates rcgen makes
//! at test time.

use crate::delay::RemoveOnDrop;
use crate::support::{LibraryServer, run};
use crate::tls::{LOCAL_NAMES, Pki};
use shout_client::{QuicClient, Target, TlsClient, TlsOptions, Trust, ZeroRtt};
use shout_server::{ServerBuilder, Uppercase};
use std::net::{SocketAddr, UdpSocket};
use std::ops::Deref;
use std::time::Duration;

/// A QUIC uppercase server presenting `pki`'s certificate; stopped on drop.
pub(crate) struct QuicServer(LibraryServer);

impl QuicServer {
    pub(crate) fn start(pki: &Pki) -> Self {
        Self::start_at(pki, "127.0.0.1:0".parse().unwrap())
    }

    /// Starts the server on `addr`; port 0 picks one.
    fn start_at(pki: &Pki, addr: SocketAddr) -> Self {
        let builder = ServerBuilder::tcp_only(Uppercase).quic(addr, pki.server_config());
        Self(LibraryServer::start(builder))
    }

    /// Stops the server and waits until its socket is closed.
    fn stop(self) {
        self.0.stop();
    }

    pub(crate) fn target(&self) -> String {
        self.handle.quic_addrs()[0].to_string()
    }
}

impl Deref for QuicServer {
    type Target = LibraryServer;

    fn deref(&self) -> &LibraryServer {
        &self.0
    }
}

#[test]
fn piped_input_streams_over_one_quic_stream_and_ends_with_its_fin() {
    let pki = Pki::new("quic-piped", LOCAL_NAMES, false);
    let server = QuicServer::start(&pki);
    // Larger than any window on the way, so both directions must move.
    let input = "straße ﬁ and more\n".repeat(200_000);
    let outcome = run(
        &["tcp", "--quic", "--ca", &pki.ca_arg(), &server.target()],
        input.as_bytes(),
    );
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stdout_text(), input.to_uppercase());
    let stats = server.handle.stats();
    assert_eq!(stats.quic_handshakes_completed, 1);
    assert_eq!(stats.quic_streams, 1);
}

#[test]
fn a_certificate_for_another_name_is_a_tls_failure() {
    let pki = Pki::new("quic-name", &["elsewhere.example"], false);
    let server = QuicServer::start(&pki);
    let outcome = run(
        &["tcp", "--quic", "--ca", &pki.ca_arg(), &server.target()],
        b"hello\n",
    );
    assert_eq!(outcome.code, Some(7), "stderr: {}", outcome.stderr);
    // Named in words, as over TCP, though QUIC carries only the alert.
    assert!(
        outcome.stderr.contains("tls 127.0.0.1:")
            && outcome.stderr.contains(
                "the server's certificate is not trusted: not valid for 127.0.0.1 (it is for elsewhere.example)"
            ),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stdout.is_empty());
}

#[test]
fn no_quic_server_is_a_timeout() {
    // A UDP port that answers nothing: QUIC's Initial goes unanswered.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target: SocketAddr = silent.local_addr().unwrap();
    let outcome = run(
        &[
            "--connect-timeout",
            "0.5",
            "tcp",
            "--quic",
            "--insecure",
            &target.to_string(),
        ],
        b"hello\n",
    );
    assert_eq!(outcome.code, Some(5), "stderr: {}", outcome.stderr);
    assert!(
        outcome.stderr.contains("no QUIC handshake"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn ping_over_quic_is_a_stream_per_probe_and_times_the_handshake_apart() {
    let pki = Pki::new("quic-ping", LOCAL_NAMES, false);
    let server = QuicServer::start(&pki);
    let ca = pki.ca_arg();
    let target = server.target();
    let persistent = run(
        &[
            "ping", "--quic", "--ca", &ca, "-c", "3", "-i", "10", &target,
        ],
        b"",
    );
    assert_eq!(persistent.code, Some(0), "stderr: {}", persistent.stderr);
    let text = persistent.stdout_text();
    assert!(text.contains("over quic: connected to"), "{text}");
    assert!(text.contains("3 sent, 3 received, 0% loss"), "{text}");
    let stats = server.handle.stats();
    assert_eq!(stats.quic_handshakes_completed, 1);
    assert_eq!(stats.quic_streams, 3);

    let fresh = run(
        &[
            "ping",
            "--quic",
            "--ca",
            &ca,
            "--new-connection",
            "-c",
            "2",
            "-i",
            "10",
            &target,
        ],
        b"",
    );
    assert_eq!(fresh.code, Some(0), "stderr: {}", fresh.stderr);
    let text = fresh.stdout_text();
    assert_eq!(text.matches(" connect=").count(), 2, "{text}");
    assert!(
        !text.contains(" tls="),
        "one handshake for QUIC and TLS: {text}"
    );
    assert!(text.contains("\nconnect min/avg/max/mdev"), "{text}");
    // A connection closed at once after its answer may be counted a
    // moment later.
    shout_testkit::wait_until("three QUIC handshakes counted", || {
        server.handle.stats().quic_handshakes_completed == 3
    });
    assert_eq!(server.handle.stats().quic_streams, 5);
}

/// Runs `shout bench --quic ARGS --json` against `server` and returns its
/// summary, checking the exit status.
fn bench_json(pki: &Pki, server: &QuicServer, args: &[&str]) -> serde_json::Value {
    let ca = pki.ca_arg();
    let target = server.target();
    let mut all = vec!["bench", "--quic", "--ca", &ca, "--json"];
    all.extend_from_slice(args);
    all.push(&target);
    let outcome = run(&all, b"");
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    serde_json::from_str(outcome.stdout_text().trim()).expect("one JSON summary")
}

#[test]
fn bench_over_quic_pipelines_on_one_stream_or_a_stream_per_request() {
    let pki = Pki::new("quic-bench", LOCAL_NAMES, false);
    let server = QuicServer::start(&pki);
    let pipelined = bench_json(&pki, &server, &["-c", "2", "-d", "8", "-n", "2000"]);
    assert_eq!(pipelined["transport"], "quic");
    assert_eq!(pipelined["messages"], 2000);
    assert_eq!(pipelined["errors"], 0);
    // The check connection, then the two measured.
    assert_eq!(server.handle.stats().quic_streams, 2);

    let streams = bench_json(
        &pki,
        &server,
        &["--streams", "-c", "2", "-d", "8", "-n", "400", "-s", "1000"],
    );
    assert_eq!(streams["messages"], 400);
    assert_eq!(streams["errors"], 0);
    // A stream per request: at least the 400 measured.
    assert!(server.handle.stats().quic_streams >= 402);
}

#[test]
fn bench_over_quic_can_connect_for_every_request() {
    let pki = Pki::new("quic-bench-new", LOCAL_NAMES, false);
    let server = QuicServer::start(&pki);
    let summary = bench_json(&pki, &server, &["--new-connection", "-c", "2", "-n", "20"]);
    assert_eq!(summary["messages"], 20);
    assert_eq!(summary["errors"], 0);
    assert_eq!(summary["mode"], "new-connection");
    // The check connection, then one per request at least, each a stream;
    // a resumed connection answered early is no failed handshake (counted
    // a moment after it closes, perhaps).
    shout_testkit::wait_until("the connections counted", || {
        server.handle.stats().quic_handshakes_completed >= 21
    });
    let stats = server.handle.stats();
    assert!(stats.quic_streams >= 20, "{stats:?}");
    assert_eq!(stats.quic_handshakes_failed, 0, "{stats:?}");
    assert!(summary["handshakes"].as_u64().unwrap() >= 20, "{summary}");
    // Resumed connections send their request in their first flight. Not
    // every one: a resumed connection's own ticket comes after its answer,
    // when the load generator has closed it, so the tickets of a full
    // handshake run out and the next connection makes a full one.
    let early = summary["zero_rtt"].as_u64().unwrap();
    assert!(early >= 5, "{summary}");
}

#[test]
fn delay_over_quic_fetches_every_way_a_stream_per_object() {
    let pki = Pki::new("quic-delay", LOCAL_NAMES, false);
    let server = QuicServer::start(&pki);
    let ca = pki.ca_arg();
    let target = server.target();
    let args = [
        "delay", "--quic", "--ca", &ca, "-n", "3", "-s", "1000", "--rate", "100mbit", "--json",
        &target,
    ];
    let outcome = run(&args, b"");
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    let report: serde_json::Value =
        serde_json::from_str(outcome.stdout_text().trim()).expect("one JSON report");
    assert_eq!(report["transport"], "quic");
    for way in ["non_persistent", "parallel", "persistent", "pipelined"] {
        let objects = report[way]["objects"].as_array().expect(way);
        assert_eq!(objects.len(), 3, "{way}");
        // QUIC's one handshake is `connect`; there is no TLS phase apart.
        assert!(
            objects.iter().all(|object| object["tls_ms"] == 0.0),
            "{way}"
        );
    }
    // The probes' connection; non-persistent and parallel, a connection
    // per object; persistent and pipelined, one each (the rate is given).
    // A connection closed at once after its answers may be counted a
    // moment later.
    shout_testkit::wait_until("every QUIC connection counted", || {
        server.handle.stats().quic_handshakes_completed == 1 + 3 + 3 + 1 + 1
    });
    // The 5 probes, then a stream per object: 4 ways × 3.
    assert_eq!(server.handle.stats().quic_streams, 5 + 12);
}

#[test]
fn the_waterfall_over_quic_names_quic_and_its_one_handshake() {
    let pki = Pki::new("quic-delay-svg", LOCAL_NAMES, false);
    let server = QuicServer::start(&pki);
    let ca = pki.ca_arg();
    let target = server.target();
    let path = std::env::temp_dir().join(format!("shout-delay-quic-{}.svg", std::process::id()));
    let _remove = RemoveOnDrop(path.clone());
    let args = [
        "delay",
        "--quic",
        "--ca",
        &ca,
        "-n",
        "2",
        "-s",
        "500",
        "--rate",
        "100mbit",
        "--svg",
        path.to_str().unwrap(),
        &target,
    ];
    let outcome = run(&args, b"");
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    let svg = roxmltree::Document::parse(&text).unwrap_or_else(|error| panic!("{error}"));
    let texts: Vec<&str> = svg.descendants().filter_map(|node| node.text()).collect();
    let title = "objects of 500 bytes over QUIC";
    assert!(texts.iter().any(|text| text.ends_with(title)), "{texts:?}");
    // The legend names QUIC's handshake, and no TLS phase apart from it.
    assert!(texts.contains(&"QUIC handshake (TLS inside)"), "{texts:?}");
    for absent in ["TCP handshake", "TLS handshake"] {
        assert!(!texts.contains(&absent), "{absent}: {texts:?}");
    }
}

/// Runs `shout ping --quic --new-connection --json -c 3 EXTRA` against
/// `server` and returns its document, checking the exit status.
fn ping_new_connections_json(pki: &Pki, server: &QuicServer, extra: &[&str]) -> serde_json::Value {
    let ca = pki.ca_arg();
    let target = server.target();
    let mut args = vec![
        "ping",
        "--quic",
        "--ca",
        &ca,
        "--new-connection",
        "--json",
        "-c",
        "3",
        "-i",
        "10",
    ];
    args.extend_from_slice(extra);
    args.push(&target);
    let outcome = run(&args, b"");
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    serde_json::from_str(outcome.stdout_text().trim()).expect("one JSON document")
}

#[test]
fn ping_over_new_quic_connections_sends_probes_after_the_first_in_0rtt() {
    let pki = Pki::new("quic-ping-0rtt", LOCAL_NAMES, false);
    let server = QuicServer::start(&pki);
    let report = ping_new_connections_json(&pki, &server, &[]);
    let probes = report["probes"].as_array().expect("probes");
    let zero_rtt: Vec<&str> = (probes.iter())
        .map(|probe| probe["zero_rtt"].as_str().expect("zero_rtt"))
        .collect();
    assert_eq!(zero_rtt, ["no", "yes", "yes"], "{report}");
    for probe in probes {
        assert_eq!(probe["answered"], true, "{probe}");
        assert_eq!(probe["bytes"], 17, "{probe}");
        assert!(probe["connect_ms"].as_f64().unwrap() > 0.0, "{probe}");
    }
    // Sent with the first flight, a 0-RTT probe's exchange is its whole time.
    assert_eq!(probes[1]["rtt_ms"], probes[1]["time_ms"], "{report}");
    let counts = &report["zero_rtt"];
    assert_eq!(counts["accepted"], 2, "{report}");
    assert_eq!(counts["rejected"], 0, "{report}");
    assert_eq!(counts["not_sent"], 1, "{report}");
    shout_testkit::wait_until("three QUIC handshakes counted", || {
        server.handle.stats().quic_handshakes_completed == 3
    });
    assert_eq!(server.handle.stats().quic_streams, 3);

    // The lines say the same.
    let ca = pki.ca_arg();
    let target = server.target();
    let args = [
        "ping",
        "--quic",
        "--ca",
        &ca,
        "--new-connection",
        "-c",
        "2",
        "-i",
        "10",
        &target,
    ];
    let outcome = run(&args, b"");
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    let text = outcome.stdout_text();
    assert!(text.contains(" seq=1 connect="), "{text}");
    assert!(text.contains(" 0rtt=no\n"), "{text}");
    assert!(text.contains(" 0rtt=yes\n"), "{text}");
    assert!(text.contains("\n0rtt yes=1 rejected=0 no=1\n"), "{text}");
}

#[test]
fn ping_with_no_0rtt_waits_for_every_handshake() {
    let pki = Pki::new("quic-ping-no-0rtt", LOCAL_NAMES, false);
    let server = QuicServer::start(&pki);
    let report = ping_new_connections_json(&pki, &server, &["--no-0rtt"]);
    let probes = report["probes"].as_array().expect("probes");
    assert_eq!(probes.len(), 3, "{report}");
    for probe in probes {
        assert_eq!(probe["answered"], true, "{probe}");
        assert_eq!(probe["bytes"], 17, "{probe}");
        assert_eq!(probe["zero_rtt"], "no", "{probe}");
    }
    assert_eq!(report["zero_rtt"]["accepted"], 0, "{report}");
    assert_eq!(report["zero_rtt"]["not_sent"], 3, "{report}");
}

#[test]
fn no_0rtt_needs_quic_and_new_connections() {
    for args in [
        &["ping", "--no-0rtt", "--new-connection", "127.0.0.1:9"][..],
        &["ping", "--no-0rtt", "--quic", "--insecure", "127.0.0.1:9"][..],
    ] {
        let outcome = run(args, b"");
        assert_eq!(outcome.code, Some(2), "{args:?}: {}", outcome.stderr);
        assert!(
            outcome
                .stderr
                .contains("required arguments were not provided"),
            "{}",
            outcome.stderr
        );
    }
    // Without --new-connection, ping over QUIC prints no 0rtt field.
    let pki = Pki::new("quic-ping-one", LOCAL_NAMES, false);
    let server = QuicServer::start(&pki);
    let ca = pki.ca_arg();
    let target = server.target();
    let args = ["ping", "--quic", "--ca", &ca, "-c", "1", &target];
    let outcome = run(&args, b"");
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    assert!(
        !outcome.stdout_text().contains("0rtt"),
        "{}",
        outcome.stdout_text()
    );
}

/// Returns a QUIC client of `server` trusting `pki`.
fn quic_client(pki: &Pki, server: &QuicServer) -> QuicClient {
    let target: Target = server.target().parse().unwrap();
    let options = TlsOptions {
        trust: Trust::CaFile(pki.ca_file()),
        server_name: None,
    };
    QuicClient::new(&TlsClient::new(&options, &target).unwrap()).unwrap()
}

#[test]
fn an_early_request_is_answered_whether_the_server_takes_it_or_not() {
    let timeout = shout_testkit::TIMEOUT;
    let pki = Pki::new("quic-early", LOCAL_NAMES, false);
    let server = QuicServer::start(&pki);
    let addr: SocketAddr = server.target().parse().unwrap();
    let client = quic_client(&pki, &server);

    // The first connection leaves a ticket; the second resumes with it.
    let mut first = client.connect(&[addr], Some(timeout)).unwrap();
    assert_eq!(first.exchange(b"first\n", timeout).unwrap(), b"FIRST\n");
    assert_eq!(first.zero_rtt(), ZeroRtt::NotSent);
    assert!(first.wait_ticket(timeout), "a ticket");
    first.close();
    let mut early = client.connect_early(addr, Some(timeout)).unwrap();
    assert!(
        early.is_handshaking(),
        "returned before the handshake's end"
    );
    assert_eq!(early.exchange(b"early\n", timeout).unwrap(), b"EARLY\n");
    early.wait_handshake(Some(timeout)).unwrap();
    assert_eq!(early.zero_rtt(), ZeroRtt::Accepted);
    assert!(early.handshake_time() > Duration::ZERO);
    assert!(early.wait_ticket(timeout), "a ticket for the next");
    early.close();

    // A server started again on the same port knows none of its tickets:
    // it refuses the early data, and the request goes again.
    server.stop();
    let server = QuicServer::start_at(&pki, addr);
    let mut refused = client.connect_early(addr, Some(timeout)).unwrap();
    assert!(refused.is_handshaking());
    assert_eq!(refused.exchange(b"again\n", timeout).unwrap(), b"AGAIN\n");
    assert_eq!(refused.zero_rtt(), ZeroRtt::Rejected);
    refused.close();
    shout_testkit::wait_until("the request counted once", || {
        server.handle.stats().quic_handshakes_completed == 1
    });
    assert_eq!(server.handle.stats().quic_streams, 1);
}
