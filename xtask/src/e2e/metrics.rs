//! The `metrics` scenario: shoutd's `--metrics` endpoint as a Prometheus
//! server sees it. Known traffic, then a scrape over a plain TCP socket,
//! the real `promtool check metrics` on what came back, and each value
//! against the traffic sent.

use super::load::{check_answer, connect, exchange};
use super::process::{Shoutd, one_line_tail, run_with_input};
use super::{Env, Outcome};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

/// TCP connections the scenario makes, each with [`TEXT`].
const CONNECTIONS: u64 = 5;
/// What each connection sends: its uppercase is longer (ß → SS, ﬁ → FI),
/// so bytes in and bytes out differ.
const TEXT: &str = "metrics: straße ﬁ ǆ 🎉\n";
/// Datagrams sent, each answered.
const DATAGRAMS: u64 = 7;

/// Sends known traffic, scrapes, lints the scrape with promtool and checks
/// every value.
pub(crate) fn metrics(env: &Env) -> Result<Outcome, String> {
    let shoutd = Shoutd::start_on(
        env,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--metrics", "127.0.0.1:0"],
    )?;
    let endpoint = shoutd
        .metrics
        .ok_or("shoutd printed no `listening metrics` line")?;
    for _ in 0..CONNECTIONS {
        let answer = exchange(connect(shoutd.tcp)?, TEXT.as_bytes())?;
        check_answer(TEXT, &answer)?;
    }
    udp_exchanges(shoutd.udp)?;

    // A close is counted once the server has seen it, and a reply once it
    // is sent, which can be after the client has it: scrape until every
    // connection is closed and every datagram received is answered or
    // dropped.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (text, values) = loop {
        let text = scrape(endpoint)?;
        let values = samples(&text)?;
        let value = |name: &str| values.get(name).copied().unwrap_or_default();
        let settled = value("shout_connections_closed_total") == CONNECTIONS
            && value("shout_datagrams_sent_total") + value("shout_datagrams_dropped_total")
                == value("shout_datagrams_received_total");
        if settled {
            break (text, values);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "after 10 s the counters have not settled: {}",
                one_line_tail(&text, 400)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    let lint = run_with_input(
        "promtool",
        Command::new("promtool").args(["check", "metrics"]),
        text.as_bytes(),
        Duration::from_secs(20),
    )?;
    if !lint.status.success() {
        return Err(format!(
            "promtool check metrics: {} ({}; {})",
            lint.status,
            one_line_tail(&String::from_utf8_lossy(&lint.stdout), 300),
            one_line_tail(&lint.stderr, 300)
        ));
    }

    let bytes = |text: &str| text.len() as u64;
    let expected = [
        ("shout_connections_accepted_total", CONNECTIONS),
        ("shout_connections_closed_total", CONNECTIONS),
        ("shout_connections_open", 0),
        ("shout_connections_shed_total", 0),
        ("shout_idle_timeouts_total", 0),
        ("shout_linger_timeouts_total", 0),
        ("shout_bytes_received_total", CONNECTIONS * bytes(TEXT)),
        (
            "shout_bytes_sent_total",
            CONNECTIONS * bytes(&TEXT.to_uppercase()),
        ),
        ("shout_datagrams_received_total", DATAGRAMS),
        ("shout_datagrams_sent_total", DATAGRAMS),
        ("shout_datagrams_dropped_total", 0),
        ("shout_service_panics_total", 0),
        ("shout_connections_refused_per_source_total", 0),
        ("shout_tls_handshakes_completed_total", 0),
        ("shout_tls_handshakes_failed_total", 0),
        ("shout_tls_handshake_timeouts_total", 0),
        ("shout_tls_truncated_total", 0),
        ("shout_proxy_headers_rejected_total", 0),
        ("shout_datagrams_from_senders_total", 0),
        ("shout_quic_handshakes_completed_total", 0),
        ("shout_quic_handshakes_failed_total", 0),
        ("shout_quic_connections_refused_total", 0),
        ("shout_quic_retries_sent_total", 0),
        ("shout_quic_streams_total", 0),
        ("shout_quic_bytes_received_total", 0),
        ("shout_quic_bytes_sent_total", 0),
        ("shout_quic_packets_lost_total", 0),
        ("shout_quic_idle_timeouts_total", 0),
        ("shout_quic_connections_closed_total", 0),
        ("shout_quic_connections_open", 0),
        ("shout_ws_upgrades_total", 0),
        ("shout_ws_upgrades_refused_total", 0),
        ("shout_ws_pages_served_total", 0),
        ("shout_ws_messages_received_total", 0),
        ("shout_ws_messages_sent_total", 0),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(name, value)| values.get(*name) != Some(value))
        .map(|(name, value)| format!("{name} is {:?}, not {value}", values.get(*name)))
        .collect();
    if !wrong.is_empty() {
        return Err(wrong.join("; "));
    }
    // Besides those: the loop's turn count, which traffic makes non-zero,
    // and the labelled families (causes, turn times), which promtool checked.
    if values
        .get("shout_loop_turns_total")
        .is_none_or(|turns| *turns == 0)
    {
        return Err("shout_loop_turns_total is missing or 0 after traffic".to_owned());
    }
    let unlabelled = values.keys().filter(|name| !name.contains('{')).count();
    if unlabelled != expected.len() + 1 {
        return Err(format!(
            "{unlabelled} unlabelled samples, not the {} expected: {}",
            expected.len() + 1,
            one_line_tail(&text, 300)
        ));
    }
    Ok(Outcome::Pass(Some(format!(
        "{} metrics, promtool clean",
        values.len()
    ))))
}

/// Sends [`DATAGRAMS`] datagrams, one at a time, and checks each reply.
fn udp_exchanges(server: SocketAddr) -> Result<(), String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|error| format!("udp bind: {error}"))?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|error| format!("udp timeout: {error}"))?;
    let mut reply = vec![0; 65_536];
    for round in 0..DATAGRAMS {
        let datagram = format!("datagram {round}: straße");
        socket
            .send_to(datagram.as_bytes(), server)
            .map_err(|error| format!("udp send: {error}"))?;
        // Loopback does not lose datagrams at this pace: a lost one is a
        // failure, not a retry, so the counts stay exact.
        let (len, _) = socket
            .recv_from(&mut reply)
            .map_err(|error| format!("udp reply {round}: {error}"))?;
        check_answer(&datagram, &reply[..len])?;
    }
    Ok(())
}

/// `GET /metrics` over a plain TCP socket, as a scraper sends it; the body
/// of a `200`.
fn scrape(endpoint: SocketAddr) -> Result<String, String> {
    let request = "GET /metrics HTTP/1.1\r\nHost: shoutd\r\nAccept: text/plain\r\n\r\n";
    let answer = exchange(connect(endpoint)?, request.as_bytes())?;
    let answer = String::from_utf8(answer).map_err(|_| "the scrape is not UTF-8")?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {}", one_line_tail(&answer, 200)))?;
    if !head.starts_with("HTTP/1.1 200 ") {
        return Err(format!("scrape answered {}", one_line_tail(head, 200)));
    }
    Ok(body.to_owned())
}

/// The `name value` samples of a scrape (shoutd's have no labels).
fn samples(text: &str) -> Result<HashMap<String, u64>, String> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line
                .split_once(' ')
                .ok_or_else(|| format!("`{line}` is not `name value`"))?;
            let value = value
                .parse()
                .map_err(|_| format!("`{line}`: the value is not an integer"))?;
            Ok((name.to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_and_skips_comments() {
        let values =
            samples("# HELP a_total A.\n# TYPE a_total counter\na_total 3\nb 0\n").unwrap();
        assert_eq!(values.len(), 2);
        assert_eq!(values["a_total"], 3);
        assert!(samples("a_total three\n").is_err());
        assert!(samples("lonely\n").is_err());
    }
}
