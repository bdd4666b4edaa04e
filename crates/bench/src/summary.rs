//! The typed JSON summary of a run (`shout bench --json`): one flat object,
//! the same fields whoever writes or reads it. Scripts and `cargo xtask
//! bench` read it back with serde.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Holds what a run measured, as `shout bench --json` prints it. Latencies are in
/// microseconds to 0.1 µs; `null` stands for what does not apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `tcp`, `udp`, `quic` or `ws` (WebSocket over TCP).
    pub transport: String,
    /// The address the load went to.
    pub target: SocketAddr,
    /// How requests were issued.
    pub mode: Mode,
    /// Connections (or UDP sockets, or held connections).
    pub connections: usize,
    /// Requests in flight on each connection.
    pub depth: usize,
    /// Bytes in each request, and so in each reply.
    pub size: usize,
    /// Open loop: requests per second in all.
    pub rate: Option<f64>,
    /// The measured window, in seconds.
    pub seconds: f64,
    /// Replies received whole and correct in the measured window.
    pub messages: u64,
    /// Replies per second.
    pub msgs_per_sec: f64,
    /// Reply payload, in MiB per second.
    pub mib_per_sec: f64,
    /// The median latency.
    pub p50_us: f64,
    /// The 90th percentile latency.
    pub p90_us: f64,
    /// The 99th percentile latency.
    pub p99_us: f64,
    /// The 99.9th percentile latency.
    pub p999_us: f64,
    /// The slowest reply.
    pub max_us: f64,
    /// The mean latency.
    pub mean_us: f64,
    /// Wrong replies, and connections that failed or broke.
    pub errors: u64,
    /// Datagrams with no reply within the timeout.
    pub lost: u64,
    /// Datagram replies that came after their request was counted lost, or
    /// twice.
    pub late: u64,
    /// A `hold` run: the connections that opened.
    pub held: Option<u64>,
    /// A `hold` run: seconds from the first connection attempt until the
    /// last connection opened.
    pub open_seconds: Option<f64>,
    /// The first error, worded for a person.
    pub first_error: Option<String>,
    /// Whether the connections spoke TLS.
    #[serde(default)]
    pub tls: bool,
    /// TLS or QUIC handshakes, or WebSocket upgrades, completed (warm-up
    /// included); 0 without any.
    #[serde(default)]
    pub handshakes: u64,
    /// QUIC handshakes whose early data (0-RTT) the server took: in
    /// new-connection mode, the resumed connections that sent their
    /// request in their first flight; 0 without QUIC.
    #[serde(default)]
    pub zero_rtt: u64,
    /// The median TLS handshake (or WebSocket upgrade), from the TCP
    /// connection's opening to its end; `null` without any.
    #[serde(default)]
    pub handshake_p50_us: Option<f64>,
    /// The 90th percentile TLS handshake.
    #[serde(default)]
    pub handshake_p90_us: Option<f64>,
    /// The 99th percentile TLS handshake.
    #[serde(default)]
    pub handshake_p99_us: Option<f64>,
    /// The slowest TLS handshake.
    #[serde(default)]
    pub handshake_max_us: Option<f64>,
    /// What each reply was checked against: `upper` (the request's
    /// uppercase) or `echo` (the request itself).
    #[serde(default = "upper")]
    pub expect: String,
}

/// The `expect` of a summary written before there was a choice.
fn upper() -> String {
    crate::Expect::Upper.to_string()
}

/// Names how a run issued its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Each connection keeps `depth` requests in flight.
    ClosedLoop,
    /// Requests are due at a fixed rate.
    OpenLoop,
    /// A new connection for every request.
    NewConnection,
    /// Idle connections held, then used once each.
    Hold,
}

impl Summary {
    /// Reads the summary from the output of `shout bench --json`: the first
    /// line that opens a JSON object.
    ///
    /// # Errors
    /// When no line opens an object, or that line is not a summary.
    pub fn from_output(output: &str) -> Result<Self, serde_json::Error> {
        let line = output
            .lines()
            .find(|line| line.trim_start().starts_with('{'))
            .unwrap_or_default();
        serde_json::from_str(line)
    }
}

/// Rounds `value` to `decimals` places, so the JSON carries the precision
/// the measurement has and no more.
pub(crate) fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_back_from_the_output() {
        let output = "bench: 1 s: 5 msgs/s\n{\"transport\":\"tcp\",\"target\":\"127.0.0.1:1\",\"mode\":\"closed-loop\",\"connections\":1,\"depth\":1,\"size\":64,\"rate\":null,\"seconds\":2.000000,\"messages\":10,\"msgs_per_sec\":5.0,\"mib_per_sec\":0.000,\"p50_us\":16.0,\"p90_us\":17.1,\"p99_us\":31.8,\"p999_us\":57.3,\"max_us\":5530.0,\"mean_us\":16.5,\"errors\":0,\"lost\":0,\"late\":0,\"held\":null,\"open_seconds\":null,\"first_error\":\"a \\\"b\\\"\\n\"}\n";
        let summary = Summary::from_output(output).unwrap();
        assert_eq!(summary.mode, Mode::ClosedLoop);
        assert_eq!(summary.msgs_per_sec, 5.0);
        assert_eq!(summary.p99_us, 31.8);
        assert_eq!(summary.held, None);
        assert_eq!(summary.first_error.as_deref(), Some("a \"b\"\n"));
        let again = serde_json::to_string(&summary).unwrap();
        assert_eq!(serde_json::from_str::<Summary>(&again).unwrap(), summary);
        assert!(Summary::from_output("shout: refused").is_err());
    }

    #[test]
    fn figures_keep_their_precision() {
        assert_eq!(rounded(16.04, 1), 16.0);
        assert_eq!(rounded(2.000_000_4, 6), 2.0);
        assert_eq!(rounded(0.123_456, 3), 0.123);
    }
}
