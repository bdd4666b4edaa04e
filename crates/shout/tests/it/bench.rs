//! The load generator (`shout bench`) against small servers of the test's
//! own: every request answered and checked, errors and lost datagrams
//! counted, each mode ending by itself. Counts are asserted, never times.

use crate::support::{
    LossyUdpServer, UdpTestServer, UppercaseServer, run, start_tcp_server, uppercase,
};
use shout_bench::{BenchOptions, Expect, Mode, Stop, Summary, bench};
use shout_client::{ErrorCategory, Target, Transport};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

fn target(addr: SocketAddr) -> Target {
    addr.to_string().parse().unwrap()
}

fn requests(count: u64) -> BenchOptions {
    BenchOptions {
        stop: Stop::Requests(count),
        timeout: Duration::from_secs(10),
        ..BenchOptions::default()
    }
}

#[test]
fn pipelined_requests_are_all_answered_and_checked() {
    let server = UppercaseServer::start();
    let options = BenchOptions {
        connections: 4,
        depth: 8,
        size: 100,
        ..requests(2_000)
    };
    let report = bench(&target(server.addr), &options, None).unwrap();
    assert_eq!(report.messages(), 2_000);
    assert_eq!(report.errors(), 0, "{:?}", report.first_error());
    assert!(report.latency(0.5) > Duration::ZERO);
    assert!(report.latency(0.5) <= report.max_latency());
    // Four connections, and the one that checked the server was there.
    assert_eq!(server.connections(), 5);
    let summary = report.to_string();
    assert!(
        summary.contains("4 connections × depth 8 × 100 B"),
        "{summary}"
    );
    assert!(summary.contains("2,000"), "{summary}");
}

#[test]
fn threads_share_the_work_without_losing_a_request() {
    let server = UppercaseServer::start();
    let options = BenchOptions {
        connections: 5,
        depth: 3,
        threads: 2,
        warmup: Duration::from_millis(50),
        ..requests(1_001)
    };
    let report = bench(&target(server.addr), &options, None).unwrap();
    assert_eq!(report.messages(), 1_001);
    assert_eq!(report.errors(), 0, "{:?}", report.first_error());
}

/// A TCP server that echoes instead of uppercasing.
fn start_echo_server() -> SocketAddr {
    start_tcp_server(|mut stream| {
        let mut buffer = [0; 4096];
        while let Ok(read @ 1..) = stream.read(&mut buffer) {
            if stream.write_all(&buffer[..read]).is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_wrong_reply_is_an_error_not_a_message() {
    let addr = start_echo_server();
    let options = BenchOptions {
        connections: 2,
        ..requests(100)
    };
    let report = bench(&target(addr), &options, None).unwrap();
    assert_eq!(report.messages(), 0);
    assert_eq!(report.errors(), 2, "one per connection, each then closed");
    let first = report.first_error().unwrap();
    assert!(first.contains("wrong reply"), "{first}");
}

#[test]
fn blocking_clients_answer_one_request_at_a_time_each_on_its_thread() {
    let server = UppercaseServer::start();
    let options = BenchOptions {
        connections: 4,
        size: 512,
        blocking: true,
        warmup: Duration::from_millis(20),
        ..requests(1_000)
    };
    let report = bench(&target(server.addr), &options, None).unwrap();
    assert_eq!(report.messages(), 1_000);
    assert_eq!(report.errors(), 0, "{:?}", report.first_error());
    assert!(report.latency(0.5) > Duration::ZERO);
    // Four blocking clients, and the connection that checked the server.
    assert_eq!(server.connections(), 5);
}

#[test]
fn a_wrong_reply_stops_a_blocking_client_with_one_error() {
    let addr = start_echo_server();
    let options = BenchOptions {
        connections: 3,
        blocking: true,
        ..requests(100)
    };
    let report = bench(&target(addr), &options, None).unwrap();
    assert_eq!(report.messages(), 0);
    assert_eq!(report.errors(), 3, "one per client, each then stopped");
    let first = report.first_error().unwrap();
    assert!(first.contains("wrong reply"), "{first}");
}

#[test]
fn the_binary_runs_blocking_clients() {
    let server = UppercaseServer::start();
    let addr = server.addr.to_string();
    let outcome = run(
        &[
            "bench",
            "--json",
            "--blocking",
            "-c",
            "3",
            "-n",
            "90",
            &addr,
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let summary = Summary::from_output(&outcome.stdout_text()).unwrap();
    assert_eq!((summary.messages, summary.errors), (90, 0));
    let refused = run(&["bench", "--blocking", "-d", "2", "-n", "9", &addr], b"");
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("depth 1"), "{}", refused.stderr);
    let udp = run(&["bench", "--blocking", "--udp", "-n", "9", &addr], b"");
    assert_eq!(udp.code, Some(2), "{}", udp.stderr);
}

#[test]
fn a_new_connection_per_request() {
    let server = UppercaseServer::start();
    let options = BenchOptions {
        new_connection: true,
        connections: 2,
        ..requests(20)
    };
    let report = bench(&target(server.addr), &options, None).unwrap();
    assert_eq!(report.messages(), 20);
    assert_eq!(report.errors(), 0, "{:?}", report.first_error());
    assert_eq!(server.connections(), 21);
    assert!(report.to_string().contains("a new connection per request"));
}

#[test]
fn held_connections_are_opened_then_used_once_each() {
    let server = UppercaseServer::start();
    let options = BenchOptions {
        hold: Some(30),
        idle: Duration::from_millis(100),
        ..BenchOptions::default()
    };
    let report = bench(&target(server.addr), &options, None).unwrap();
    let held = report.held().expect("a hold run says how it opened");
    assert_eq!(held.opened, 30);
    assert_eq!(report.messages(), 30);
    assert_eq!(report.errors(), 0, "{:?}", report.first_error());
    assert_eq!(server.connections(), 31);
    assert!(report.to_json().contains("\"held\":30"));
}

#[test]
fn an_open_loop_never_sends_ahead_of_its_schedule() {
    let server = UppercaseServer::start();
    let options = BenchOptions {
        connections: 2,
        depth: 4,
        rate: Some(2_000.0),
        stop: Stop::Duration(Duration::from_millis(300)),
        timeout: Duration::from_secs(10),
        ..BenchOptions::default()
    };
    let report = bench(&target(server.addr), &options, None).unwrap();
    assert_eq!(report.errors(), 0, "{:?}", report.first_error());
    assert!(report.messages() > 0);
    // 2,000 a second for 0.3 s: no more can be due.
    assert!(report.messages() <= 600, "{}", report.messages());
    assert!(report.to_json().contains("\"mode\":\"open-loop\""));
}

#[test]
fn datagrams_in_flight_are_told_apart_by_their_tag() {
    let server = UdpTestServer::start(|request| vec![uppercase(request)]);
    let options = BenchOptions {
        transport: Transport::Udp,
        connections: 4,
        depth: 4,
        size: 3,
        ..requests(500)
    };
    let report = bench(&target(server.addr), &options, None).unwrap();
    assert_eq!(report.messages(), 500);
    assert_eq!(report.errors(), 0, "{:?}", report.first_error());
    assert_eq!(report.lost(), 0);
}

#[test]
fn lost_datagrams_are_counted_and_replaced_and_late_replies_ignored() {
    // Drops every other datagram, and sends each reply twice (once late).
    let server = LossyUdpServer::start();
    let options = BenchOptions {
        transport: Transport::Udp,
        timeout: Duration::from_millis(100),
        ..requests(10)
    };
    let report = bench(&target(server.addr), &options, None).unwrap();
    assert_eq!(report.errors(), 0, "{:?}", report.first_error());
    assert!(report.lost() > 0);
    assert_eq!(report.messages() + report.lost(), 10);
    assert!(report.to_string().contains("lost"));
}

#[test]
fn a_server_that_is_not_there_is_one_clear_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let error = bench(&target(addr), &requests(10), None).unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Refused);
}

#[test]
fn options_that_make_no_run_are_refused_before_connecting() {
    let options = BenchOptions {
        size: 0,
        ..requests(1)
    };
    let error = bench(&target("127.0.0.1:9".parse().unwrap()), &options, None).unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Local);
    assert!(error.to_string().contains("size"), "{error}");
}

#[test]
fn the_binary_prints_a_json_summary_and_progress() {
    let server = UppercaseServer::start();
    let addr = server.addr.to_string();
    let outcome = run(
        &["bench", "--json", "-c", "2", "-d", "4", "-n", "300", &addr],
        b"",
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let json = outcome.stdout_text();
    assert!(json.trim_start().starts_with('{') && json.trim_end().ends_with('}'));
    assert!(json.contains("\"messages\":300"), "{json}");
    assert!(json.contains("\"errors\":0"), "{json}");
    assert!(json.contains("\"p99_us\":"), "{json}");
    // The fields scripts read, in the order they have always come.
    let mut rest = json.as_str();
    for field in [
        "transport",
        "target",
        "mode",
        "connections",
        "depth",
        "size",
        "rate",
        "seconds",
        "messages",
        "msgs_per_sec",
        "mib_per_sec",
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "max_us",
        "mean_us",
        "errors",
        "lost",
        "late",
        "held",
        "open_seconds",
        "first_error",
    ] {
        let at = rest
            .find(&format!("\"{field}\":"))
            .unwrap_or_else(|| panic!("no `{field}` after the fields before it: {json}"));
        rest = &rest[at..];
    }
    let summary = Summary::from_output(&json).unwrap();
    assert_eq!(summary.mode, Mode::ClosedLoop);
    assert_eq!(
        (summary.messages, summary.connections, summary.depth),
        (300, 2, 4)
    );
    assert_eq!(summary.target, server.addr);
    assert!(summary.p50_us > 0.0 && summary.p50_us <= summary.max_us);
}

#[test]
fn the_binary_fails_on_wrong_replies_and_without_a_stop() {
    let addr = start_echo_server().to_string();
    let outcome = run(&["bench", "-n", "10", &addr], b"");
    assert_eq!(outcome.code, Some(1), "{}", outcome.stderr);
    assert!(outcome.stderr.contains("wrong reply"), "{}", outcome.stderr);
    let usage = run(&["bench", &addr], b"");
    assert_eq!(usage.code, Some(2), "{}", usage.stderr);
}

#[test]
fn an_echo_server_is_measured_with_expect_echo_and_fails_the_default() {
    let addr = start_echo_server().to_string();
    let outcome = run(
        &[
            "bench", "--expect", "echo", "-c", "2", "-d", "4", "-s", "300", "-n", "500", "--json",
            &addr,
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let summary = Summary::from_output(&outcome.stdout_text()).unwrap();
    assert_eq!((summary.messages, summary.errors), (500, 0));
    assert_eq!(summary.expect, "echo");
    // The default still wants the uppercase, and says the echo is wrong.
    let outcome = run(&["bench", "-n", "10", &addr], b"");
    assert_eq!(outcome.code, Some(1), "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("wrong reply: byte 0 of a reply is 'a', expected 'A'"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn every_client_shape_checks_an_echo_byte_for_byte() {
    let tcp = target(start_echo_server());
    for options in [
        BenchOptions {
            expect: Expect::Echo,
            connections: 2,
            depth: 8,
            ..requests(400)
        },
        BenchOptions {
            expect: Expect::Echo,
            connections: 2,
            blocking: true,
            ..requests(100)
        },
    ] {
        let report = bench(&tcp, &options, None).unwrap();
        assert_eq!(report.messages(), options_requests(&options), "{options:?}");
        assert_eq!(report.errors(), 0, "{:?}", report.first_error());
        assert!(report.to_string().contains("echo expected"), "{report}");
    }
    let echo = UdpTestServer::start(|request| vec![request.to_vec()]);
    let udp = BenchOptions {
        transport: Transport::Udp,
        expect: Expect::Echo,
        connections: 2,
        depth: 4,
        size: 40,
        ..requests(300)
    };
    let report = bench(&target(echo.addr), &udp, None).unwrap();
    assert_eq!(report.messages(), 300);
    assert_eq!((report.errors(), report.lost()), (0, 0));
    // Expecting the uppercase, every echoed datagram is a wrong reply, and
    // its request is lost: one round of the timeout for the 8 in flight.
    let upper = BenchOptions {
        expect: Expect::Upper,
        timeout: Duration::from_millis(200),
        stop: Stop::Requests(8),
        ..udp
    };
    let report = bench(&target(echo.addr), &upper, None).unwrap();
    assert_eq!(report.messages(), 0);
    assert!(report.errors() > 0);
    let first = report.first_error().unwrap();
    assert!(first.contains("wrong reply"), "{first}");
}

fn options_requests(options: &BenchOptions) -> u64 {
    match options.stop {
        Stop::Requests(count) => count,
        Stop::Duration(_) => unreachable!("these runs stop after a count"),
    }
}
