//! delay: the four ways over TCP, TLS and UDP (with losses), the table, the
//! JSON's fields, phases that add up, the SVG, bad input. Predictions are
//! not checked here: on loopback the RTT is tens of microseconds. The
//! e2e scenarios over `shout link` check them.

use crate::support::{DEADLINE, UdpTestServer, UppercaseServer, run, uppercase};
use crate::tls::{Pki, TlsServer};
use serde_json::Value;
use shout_client::{DelayOptions, ErrorCategory, Phases, Target, Transport, Way, delay_with};
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const WAYS: [&str; 4] = ["non_persistent", "parallel", "persistent", "pipelined"];

/// Runs `shout delay ARGS --json`, checks that it exited 0, and returns
/// the parsed report.
fn delay_json(args: &[&str]) -> Value {
    let mut all = vec!["delay", "--json"];
    all.extend_from_slice(args);
    let outcome = run(&all, b"");
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    serde_json::from_slice(&outcome.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", outcome.stdout_text()))
}

fn number(value: &Value, field: &str) -> f64 {
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {value}"))
}

/// Checks every way's fields and that each object's phases add up: to its
/// end, to the way's total for the last object, and, for the ways that
/// fetch one object after another, summed over the objects to the total.
fn check_ways(report: &Value, objects: usize) {
    assert!(number(report, "rtt_ms") > 0.0, "{report}");
    for way in WAYS {
        let way_report = &report[way];
        let total = number(way_report, "total_ms");
        assert!(total > 0.0, "{way}: {way_report}");
        assert!(number(way_report, "predicted_ms") > 0.0, "{way}");
        assert!(number(way_report, "ratio") > 0.0, "{way}");
        assert!(
            way_report["formula"]
                .as_str()
                .unwrap()
                .starts_with("DNS + ")
        );
        let list = way_report["objects"].as_array().unwrap();
        assert_eq!(list.len(), objects, "{way}");
        // Each figure is rounded to the microsecond.
        let slack = 0.001 * 6.0;
        let mut latest: f64 = 0.0;
        let mut sum = 0.0;
        for (index, object) in list.iter().enumerate() {
            assert_eq!(object["index"], index, "{way}");
            let phases: f64 = Phases::NAMES
                .iter()
                .map(|name| number(object, &format!("{name}_ms")))
                .sum();
            let (start, end) = (number(object, "start_ms"), number(object, "end_ms"));
            assert!(
                (start + phases - end).abs() <= slack,
                "{way} object {index}: {start} + {phases} != {end}"
            );
            latest = latest.max(end);
            sum += phases;
        }
        assert!(
            (latest - total).abs() <= slack,
            "{way}: {latest} != {total}"
        );
        if matches!(way, "non_persistent" | "persistent") {
            assert!(
                (sum - total).abs() <= slack * objects as f64,
                "{way}: the phases add up to {sum}, the total is {total}"
            );
        }
    }
}

#[test]
fn the_table_compares_the_four_ways_and_names_the_winner() {
    let server = UppercaseServer::start();
    let target = server.addr.to_string();
    let outcome = run(&["delay", "-n", "3", "-s", "2000", "-k", "2", &target], b"");
    let stdout = outcome.stdout_text();
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(
        stdout.starts_with(&format!(
            "SHOUT DELAY {target} over tcp: 3 objects of 2000 bytes, 2 in parallel\n"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("rate "), "{stdout}");
    assert!(
        stdout.contains("(measured on one object of 1048576 bytes)"),
        "{stdout}"
    );
    for (way, formula) in [
        ("non-persistent", "DNS + N × (2 RTT + L/R) = "),
        ("parallel", "DNS + ⌈N/k⌉ × 2 RTT + N × L/R = "),
        ("persistent", "DNS + RTT + N × (RTT + L/R) = "),
        ("pipelined", "DNS + RTT + RTT + N × L/R = "),
    ] {
        assert_eq!(
            stdout
                .lines()
                .filter(|line| line.starts_with(&format!("{way:<15} ")))
                .count(),
            1,
            "one row for {way}: {stdout}"
        );
        assert!(
            stdout.contains(&format!("  {way:<15} {formula}")),
            "{stdout}"
        );
    }
    let verdict = stdout.lines().last().unwrap();
    assert!(verdict.contains(" won in "), "{stdout}");
    assert!(verdict.contains("× faster than "), "{stdout}");
    // Probes, rate, 3 non-persistent, 3 parallel, 1 persistent, 1 pipelined.
    assert_eq!(server.connections(), 10);
}

#[test]
fn the_json_has_every_way_and_phases_that_add_up() {
    let server = UppercaseServer::start();
    let target = server.addr.to_string();
    let report = delay_json(&[
        "-n", "4", "-s", "3000", "-k", "3", "--rate", "1gbit", &target,
    ]);
    assert_eq!(report["transport"], "tcp");
    assert_eq!(report["objects"], 4);
    assert_eq!(report["size"], 3000);
    assert_eq!(report["parallel_connections"], 3);
    assert_eq!(report["rate_bps"], 1e9);
    assert_eq!(report["rate_source"], "given");
    assert_eq!(report["peer"], target);
    assert!(WAYS.contains(&report["winner"].as_str().unwrap()));
    check_ways(&report, 4);
    // Only the first object of a connection pays its handshake.
    let connects = |way: &str| -> Vec<bool> {
        report[way]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|object| number(object, "connect_ms") > 0.0)
            .collect()
    };
    assert_eq!(connects("non_persistent"), [true; 4]);
    assert_eq!(connects("persistent"), [true, false, false, false]);
    assert_eq!(connects("pipelined"), [true, false, false, false]);
    // Probes, 4 + 4 + 1 + 1: the rate was given.
    assert_eq!(server.connections(), 11);
}

#[test]
fn the_waterfall_is_svg_with_a_rect_per_object_and_phase() {
    let server = UppercaseServer::start();
    let path = std::env::temp_dir().join(format!("shout-delay-{}.svg", std::process::id()));
    let _remove = RemoveOnDrop(path.clone());
    let outcome = run(
        &[
            "delay",
            "-n",
            "3",
            "-s",
            "500",
            "--rate",
            "20mbit",
            "--svg",
            path.to_str().unwrap(),
            &server.addr.to_string(),
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    let svg = roxmltree::Document::parse(&text).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(svg.root_element().tag_name().name(), "svg");
    let rects: Vec<_> = svg
        .descendants()
        .filter(|node| node.has_tag_name("rect"))
        .filter_map(|node| node.attribute("class"))
        .filter_map(|class| class.strip_prefix("phase "))
        .collect();
    assert_eq!(rects.len(), 4 * 3 * Phases::NAMES.len());
    for name in Phases::NAMES {
        assert_eq!(rects.iter().filter(|&&phase| phase == name).count(), 4 * 3);
    }
    let texts: String = svg.descendants().filter_map(|node| node.text()).collect();
    for words in [
        "Non-persistent",
        "in parallel",
        "pipelined",
        "time since the way started (ms)",
    ] {
        assert!(texts.contains(words), "{words}: {texts}");
    }
    assert_eq!(
        svg.descendants()
            .filter(|node| node.attribute("class") == Some("prediction"))
            .count(),
        4
    );
}

#[test]
fn over_tls_each_new_connection_pays_a_handshake() {
    let pki = Pki::new("delay", &["localhost"], false);
    let server = TlsServer::start(&pki, 16);
    let report = delay_json(&[
        "--tls",
        "--ca",
        &pki.ca_arg(),
        "--servername",
        "localhost",
        "-n",
        "2",
        "-k",
        "2",
        "-s",
        "5000",
        "--rate",
        "1gbit",
        &server.target(),
    ]);
    assert_eq!(report["transport"], "tls");
    check_ways(&report, 2);
    let tls = |way: &str, index: usize| number(&report[way]["objects"][index], "tls_ms");
    for way in ["non_persistent", "parallel"] {
        assert!(tls(way, 0) > 0.0 && tls(way, 1) > 0.0, "{way}");
    }
    for way in ["persistent", "pipelined"] {
        assert!(tls(way, 0) > 0.0 && tls(way, 1) == 0.0, "{way}");
    }
    assert!(
        report["non_persistent"]["formula"]
            .as_str()
            .unwrap()
            .contains("3 RTT"),
        "{report}"
    );
    // Probes, 2 + 2 + 1 + 1.
    assert_eq!(server.handshakes.load(Ordering::Relaxed), 7);
}

#[test]
fn over_udp_an_rtt_no_probe_measured_at_its_first_try_is_an_error_not_zero() {
    // Answers every second datagram only: each probe needs a resend, so
    // none times the path.
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&seen);
    let server = UdpTestServer::start(move |request| {
        if counted.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
            Vec::new()
        } else {
            vec![uppercase(request)]
        }
    });
    let outcome = run(
        &[
            "delay",
            "--udp",
            "--timeout",
            "0.05",
            "--retries",
            "3",
            "--probes",
            "2",
            "--rate",
            "1gbit",
            &server.addr.to_string(),
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(5), "a timeout: {}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("no probe of 20 was answered at its first try"),
        "{}",
        outcome.stderr
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        40,
        "20 probes, each sent twice"
    );
}

#[test]
fn over_udp_lost_datagrams_are_sent_again_and_counted() {
    // Drops every third datagram, from the second on.
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&seen);
    let server = UdpTestServer::start(move |request| {
        if counted.fetch_add(1, Ordering::SeqCst) % 3 == 1 {
            Vec::new()
        } else {
            vec![uppercase(request)]
        }
    });
    let report = delay_json(&[
        "--udp",
        "--timeout",
        "0.1",
        "--retries",
        "8",
        "-n",
        "4",
        "-s",
        "1200",
        "-k",
        "2",
        "--rate",
        "1gbit",
        &server.addr.to_string(),
    ]);
    assert_eq!(report["transport"], "udp");
    check_ways(&report, 4);
    let mut resent = 0;
    for way in WAYS {
        let attempts: u64 = report[way]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|object| object["attempts"].as_u64().unwrap() - 1)
            .sum();
        assert_eq!(report[way]["resent"].as_u64(), Some(attempts), "{way}");
        resent += attempts;
        assert_eq!(
            number(&report[way]["objects"][0], "tls_ms"),
            0.0,
            "no TLS over UDP"
        );
    }
    assert!(
        resent > 0,
        "a third of the datagrams were dropped: {report}"
    );
    assert!(seen.load(Ordering::SeqCst) > 16);
}

#[test]
fn verbose_names_the_addresses_and_the_one_that_answered() {
    let server = UppercaseServer::start();
    let port = server.addr.port();
    // localhost comes from the hosts file: no DNS query leaves the machine.
    let target = format!("localhost:{port}");
    let outcome = run(
        &[
            "-v", "delay", "-n", "1", "-s", "10", "--rate", "1gbit", &target,
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("shout: info: localhost resolves to "),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome
            .stderr
            .contains(&format!("shout: info: 127.0.0.1:{port} answered")),
        "{}",
        outcome.stderr
    );
}

#[test]
fn bad_input_is_a_usage_error_or_a_clear_line() {
    for (args, words) in [
        (&["delay", "-n", "0", "localhost"][..], "must be at least 1"),
        (&["delay", "-s", "0", "localhost"], "must be at least 1"),
        (&["delay", "-k", "0", "localhost"], "must be at least 1"),
        (&["delay", "-n", "x", "localhost"], "is not a whole number"),
        (&["delay", "--rate", "fast", "localhost"], "such as 20mbit"),
        (&["delay", "--retries", "2", "localhost"], "--udp"),
        (
            &["delay", "--udp", "--tls", "localhost"],
            "cannot be used with",
        ),
        (&["ping", "-s", "0", "localhost"], "must be at least 1"),
    ] {
        let outcome = run(args, b"");
        assert_eq!(outcome.code, Some(2), "{args:?}: {}", outcome.stderr);
        assert!(
            outcome.stderr.contains(words),
            "{args:?}: {}",
            outcome.stderr
        );
    }
    let too_large = run(&["delay", "--udp", "-s", "70000", "127.0.0.1:9"], b"");
    assert_eq!(too_large.code, Some(1), "{}", too_large.stderr);
    assert_eq!(
        too_large.stderr,
        "shout: not sent: a request of 70000 bytes with a reply of 70000 bytes does not fit \
         the 65507-byte datagram limit\n"
    );
}

#[test]
fn a_refused_connection_is_status_4() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = closed.local_addr().unwrap().to_string();
    drop(closed);
    let outcome = run(&["delay", &target], b"");
    assert_eq!(outcome.code, Some(4), "{}", outcome.stderr);
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    assert!(outcome.stderr.contains("refused"), "{}", outcome.stderr);
}

#[test]
fn a_name_that_does_not_resolve_asks_no_one() {
    let asked = Mutex::new(0);
    let unknown = |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> {
        *asked.lock().unwrap() += 1;
        Err(io::Error::other("Name or service not known"))
    };
    let error = delay_with(
        &Target::new("nowhere.test", 12000),
        &unknown,
        &DelayOptions::default(),
    )
    .unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Resolve);
    assert_eq!(
        error.to_string(),
        "cannot resolve nowhere.test: Name or service not known"
    );
    assert_eq!(*asked.lock().unwrap(), 1);
}

#[test]
fn the_library_resolves_through_the_resolver_it_is_given() {
    let server = UppercaseServer::start();
    let addr = server.addr;
    let lookups = AtomicUsize::new(0);
    let resolver = |host: &str, port: u16| -> io::Result<Vec<SocketAddr>> {
        assert_eq!((host, port), ("server.test", addr.port()));
        lookups.fetch_add(1, Ordering::SeqCst);
        Ok(vec![addr])
    };
    let options = DelayOptions {
        transport: Transport::Tcp,
        objects: NonZeroU32::new(2).unwrap(),
        rate: Some("100mbit".parse().unwrap()),
        timeout: DEADLINE,
        ..DelayOptions::default()
    };
    let report = delay_with(
        &Target::new("server.test", addr.port()),
        &resolver,
        &options,
    )
    .expect("delay runs");
    // One lookup to start, then one per way.
    assert_eq!(lookups.load(Ordering::SeqCst), 5);
    assert_eq!(report.addresses, [addr]);
    assert_eq!(report.peer, addr);
    for way in Way::ALL {
        let way_report = report.way(way);
        assert_eq!(way_report.objects.len(), 2, "{way}");
        assert!(way_report.total >= way_report.objects[1].end(), "{way}");
    }
    assert_eq!(
        report.winner().total,
        report.ways.iter().map(|w| w.total).min().unwrap()
    );
}

/// Removes a file when dropped, so a failed test leaves nothing behind.
pub(crate) struct RemoveOnDrop(pub(crate) PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
