//! ping: probe counts, loss, handshake and exchange timed apart.

use crate::support::{LossyUdpServer, UppercaseServer, run, start_java_udp_server};
use std::net::UdpSocket;

fn probe_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|line| line.contains(" bytes from "))
        .collect()
}

#[test]
fn tcp_ping_over_one_connection() {
    let server = UppercaseServer::start();
    let target = server.addr.to_string();
    let outcome = run(&["ping", "-c", "3", "-i", "10", &target], b"");
    let stdout = outcome.stdout_text();
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(
        stdout.starts_with(&format!(
            "SHOUT PING {target} over tcp: connected to {target} in "
        )),
        "{stdout}"
    );
    let probes = probe_lines(&stdout);
    assert_eq!(probes.len(), 3, "{stdout}");
    for (seq, line) in (1..).zip(&probes) {
        // "shout ping seq=N\n" comes back as 17 bytes.
        assert!(
            line.starts_with(&format!("17 bytes from {target}: seq={seq} time=")),
            "{line}"
        );
    }
    assert!(
        stdout.contains("3 sent, 3 received, 0% loss, min/avg/max/mdev = "),
        "{stdout}"
    );
    assert_eq!(server.connections(), 1);
}

#[test]
fn tcp_ping_with_a_new_connection_per_probe() {
    let server = UppercaseServer::start();
    let target = server.addr.to_string();
    let outcome = run(
        &["ping", "--new-connection", "-c", "3", "-i", "10", &target],
        b"",
    );
    let stdout = outcome.stdout_text();
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let probes = probe_lines(&stdout);
    assert_eq!(probes.len(), 3, "{stdout}");
    assert!(
        probes.iter().all(|line| line.contains(" connect=")
            && line.contains(" rtt=")
            && line.contains(" time=")),
        "{stdout}"
    );
    assert!(stdout.contains("\nconnect min/avg/max/mdev = "), "{stdout}");
    assert!(stdout.contains("\nrtt min/avg/max/mdev = "), "{stdout}");
    assert_eq!(server.connections(), 3);
}

/// Runs `shout ping --udp -c COUNT` 10 ms apart with a 0.5 s timeout, and
/// returns its standard output once it has exited 0.
fn udp_ping(target: &str, count: &str) -> String {
    let outcome = run(
        &[
            "ping",
            "--udp",
            "-c",
            count,
            "-i",
            "10",
            "--timeout",
            "0.5",
            target,
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    outcome.stdout_text()
}

#[test]
fn udp_ping_counts_lost_probes() {
    let server = LossyUdpServer::start();
    let target = server.addr.to_string();
    let stdout = udp_ping(&target, "4");
    let probes = probe_lines(&stdout);
    assert_eq!(probes.len(), 2, "{stdout}");
    assert!(probes[0].contains("seq=2 "), "{stdout}");
    // Probe 4's reply is preceded by probe 2's, sent again: not counted twice.
    assert!(probes[1].contains("seq=4 "), "{stdout}");
    assert!(stdout.contains("seq=1: no reply within 0.5s"), "{stdout}");
    assert!(stdout.contains("4 sent, 2 received, 50% loss"), "{stdout}");
}

#[test]
fn udp_ping_counts_a_padded_reply_as_answered() {
    let server = start_java_udp_server(true);
    let target = server.addr.to_string();
    let stdout = udp_ping(&target, "3");
    let probes = probe_lines(&stdout);
    assert_eq!(probes.len(), 3, "{stdout}");
    for (seq, line) in (1..).zip(&probes) {
        // The late exact reply to the previous probe is not counted.
        assert!(
            line.starts_with(&format!("1024 bytes from {target}: seq={seq} time=")),
            "{line}"
        );
    }
    assert!(stdout.contains("3 sent, 3 received, 0% loss"), "{stdout}");
}

#[test]
fn ping_with_no_reply_at_all_fails() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap().to_string();
    let outcome = run(
        &[
            "ping",
            "--udp",
            "-c",
            "2",
            "-i",
            "10",
            "--timeout",
            "0.1",
            &target,
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(5), "{}", outcome.stderr);
    assert!(
        outcome
            .stdout_text()
            .contains("2 sent, 0 received, 100% loss\n"),
        "{}",
        outcome.stdout_text()
    );
    assert_eq!(outcome.stderr, "shout: none of the 2 probes was answered\n");
}

/// Runs `shout ping --json ARGS`, checks that it exited 0, and returns the
/// parsed document.
fn ping_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["ping", "--json", "-i", "10"];
    all.extend_from_slice(args);
    let outcome = run(&all, b"");
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    serde_json::from_slice(&outcome.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", outcome.stdout_text()))
}

#[test]
fn tcp_ping_as_json_with_a_probe_size() {
    let server = UppercaseServer::start();
    let target = server.addr.to_string();
    let report = ping_json(&["-c", "3", "-s", "1400", &target]);
    assert_eq!(report["transport"], "tcp");
    assert_eq!(report["size"], 1400);
    assert_eq!(report["peer"], target);
    assert!(report["connect_ms"].as_f64().unwrap() > 0.0, "{report}");
    let probes = report["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 3, "{report}");
    for (seq, probe) in (1..).zip(probes) {
        assert_eq!(probe["seq"], seq);
        assert_eq!(probe["answered"], true);
        assert_eq!(probe["bytes"], 1400);
        assert!(probe["rtt_ms"].as_f64().unwrap() > 0.0, "{probe}");
        assert_eq!(probe["connect_ms"], serde_json::Value::Null);
    }
    assert_eq!(
        (report["sent"].clone(), report["received"].clone()),
        (3.into(), 3.into())
    );
    assert_eq!(report["loss_percent"], 0.0);
    assert_eq!(report["rtt"]["count"], 3);
    let rtt = &report["rtt"];
    let (min, avg, max) = (
        rtt["min_ms"].as_f64().unwrap(),
        rtt["avg_ms"].as_f64().unwrap(),
        rtt["max_ms"].as_f64().unwrap(),
    );
    assert!(min <= avg && avg <= max, "{report}");
    assert_eq!(report["connect"], serde_json::Value::Null);
}

#[test]
fn udp_ping_as_json_counts_lost_probes() {
    let server = LossyUdpServer::start();
    let report = ping_json(&[
        "--udp",
        "-c",
        "4",
        "-s",
        "600",
        "--timeout",
        "0.5",
        &server.addr.to_string(),
    ]);
    assert_eq!(report["transport"], "udp");
    let probes = report["probes"].as_array().unwrap();
    let answered: Vec<bool> = probes
        .iter()
        .map(|probe| probe["answered"].as_bool().unwrap())
        .collect();
    assert_eq!(answered, [false, true, false, true], "{report}");
    assert_eq!(probes[0]["error"], "no reply within 0.5s");
    assert_eq!(probes[1]["bytes"], 600);
    assert_eq!(report["loss_percent"], 50.0);
    // Each request was 600 bytes, so each datagram the server saw.
    assert!(server.requests().iter().all(|request| request.len() == 600));
}
