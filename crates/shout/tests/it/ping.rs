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
