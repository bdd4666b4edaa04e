//! `shout bench --tls` against the in-test rustls server of [`crate::tls`]:
//! every reply checked, handshakes counted, an untrusted certificate refused
//! in words.

use crate::support::{UppercaseServer, run};
use crate::tls::{LOCAL_NAMES, Pki, TlsServer};
use shout_bench::{Mode, Summary};
use std::sync::atomic::Ordering;

/// Runs `shout bench --json ARGS…` and returns its summary, expecting
/// success.
fn bench_json(args: &[&str]) -> Summary {
    let mut all = vec!["bench", "--json"];
    all.extend_from_slice(args);
    let outcome = run(&all, b"");
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    Summary::from_output(&outcome.stdout_text()).unwrap()
}

#[test]
fn pipelined_requests_over_tls_are_all_answered_and_checked() {
    let pki = Pki::new("bench-pipelined", LOCAL_NAMES, false);
    // The first connection, which checks the target, and two for the load.
    let server = TlsServer::start(&pki, 3);
    let summary = bench_json(&[
        "--tls",
        "--ca",
        &pki.ca_arg(),
        "--servername",
        "localhost",
        "-c",
        "2",
        "-d",
        "16",
        "-s",
        "700",
        "-n",
        "2000",
        &server.target(),
    ]);
    assert_eq!(summary.mode, Mode::ClosedLoop);
    assert!(summary.tls);
    assert_eq!(summary.messages, 2000);
    assert_eq!(summary.errors, 0, "{:?}", summary.first_error);
    assert_eq!(summary.handshakes, 2);
    assert!(summary.handshake_p50_us.is_some_and(|us| us > 0.0));
    assert_eq!(server.handshakes.load(Ordering::Relaxed), 3);
}

#[test]
fn new_connection_mode_makes_one_handshake_per_request() {
    let pki = Pki::new("bench-new", LOCAL_NAMES, false);
    let requests = 12;
    let server = TlsServer::start(&pki, requests + 1);
    let summary = bench_json(&[
        "--tls",
        "--ca",
        &pki.ca_arg(),
        "--new-connection",
        "-n",
        &requests.to_string(),
        &server.target(),
    ]);
    assert_eq!(summary.mode, Mode::NewConnection);
    assert_eq!(summary.messages, requests as u64);
    assert_eq!(summary.errors, 0, "{:?}", summary.first_error);
    assert_eq!(summary.handshakes, requests as u64);
    assert_eq!(server.handshakes.load(Ordering::Relaxed), requests + 1);
    // Each request's input ended with a close_notify, not a bare FIN.
    assert_eq!(server.close_notifies.load(Ordering::Relaxed), requests);
}

#[test]
fn an_untrusted_certificate_stops_the_bench_with_exit_7() {
    let pki = Pki::new("bench-untrusted", LOCAL_NAMES, false);
    let other = Pki::new("bench-other", LOCAL_NAMES, false);
    let server = TlsServer::start(&pki, 1);
    let outcome = run(
        &[
            "bench",
            "--tls",
            "--ca",
            &other.ca_arg(),
            "-n",
            "10",
            &server.target(),
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(7), "stderr: {}", outcome.stderr);
    assert!(
        outcome.stderr.contains("unknown issuer"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    assert!(outcome.stdout.is_empty());
}

#[test]
fn plain_tcp_summaries_say_no_tls() {
    let server = UppercaseServer::start();
    let summary = bench_json(&["-n", "5", &server.addr.to_string()]);
    assert!(!summary.tls);
    assert_eq!(summary.handshakes, 0);
    assert_eq!(summary.handshake_p50_us, None);
}
