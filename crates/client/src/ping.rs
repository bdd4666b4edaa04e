//! Round-trip measurement, ping's way: probes at an interval, one line per
//! reply, then loss and min/avg/max/mdev.
//!
//! Over TCP the handshake is timed apart from the request and reply: a
//! persistent connection costs one round trip per probe, a new connection per
//! probe (`new_connection`) about two, the lecture's non-persistent HTTP.
//! With TLS the TLS handshake is timed apart too: TLS 1.3 adds one round
//! trip to each new connection (TLS 1.2 two). Over QUIC the transport and
//! TLS handshakes are one (one round trip, timed as `connect`), and each
//! probe is a stream of its own on the connection; with a new connection
//! per probe, a probe after the first resumes the previous session and
//! goes in the first flight (0-RTT), beside the handshake rather than
//! after it. Over WebSocket the
//! upgrade (request to 101) is timed apart too, after TCP and TLS, and
//! each probe is one message.

use crate::{
    ClientError, Connector, ErrorCategory, LineSession, QuicClient, QuicConnection, Target,
    TlsClient, TlsOptions, Transport, UdpClient, WsConnection, WsUrl, ZeroRtt, ws_connect,
};
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

/// How to ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingOptions {
    /// TCP or UDP.
    pub transport: Transport,
    /// How many probes to send.
    pub count: u32,
    /// From the start of one probe to the start of the next.
    pub interval: Duration,
    /// How long to wait for each reply.
    pub timeout: Duration,
    /// How long a TCP handshake may take (the system's limit when `None`).
    pub connect_timeout: Option<Duration>,
    /// Over TCP, whether each probe opens its own connection.
    pub new_connection: bool,
    /// Over TCP, TLS on the connection; its handshake is timed apart.
    /// With `quic`, whom QUIC's TLS trusts.
    pub tls: Option<TlsOptions>,
    /// QUIC instead of TCP (with `transport` TCP): each probe a stream of
    /// its own, its FIN after the probe; the handshake (QUIC's and TLS's in
    /// one) timed as `connect`.
    pub quic: bool,
    /// With `quic` and `new_connection`, whether a probe after the first
    /// goes in its connection's first flight (0-RTT), on the session the
    /// previous connection left, instead of after the handshake.
    pub zero_rtt: bool,
    /// WebSocket over the TCP connection (with `tls`, wss), upgraded at
    /// `/ws`: each probe a message; the upgrade timed apart.
    pub ws: bool,
    /// The probe's size in bytes (its answer is as long); the text
    /// `shout ping seq=N` when `None`. See [`probe_payload`].
    pub size: Option<usize>,
    /// Writes one JSON document instead of ping's lines: each probe as it
    /// comes, then the summary.
    pub json: bool,
}

impl Default for PingOptions {
    /// Five TCP probes a second apart, each waiting a second for its reply,
    /// over one connection.
    fn default() -> Self {
        Self {
            transport: Transport::Tcp,
            count: 5,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            connect_timeout: Some(Duration::from_secs(5)),
            new_connection: false,
            tls: None,
            quic: false,
            zero_rtt: true,
            ws: false,
            size: None,
            json: false,
        }
    }
}

/// Times in milliseconds: count, minimum, average, maximum and mean
/// deviation (ping's `mdev`, the standard deviation).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RttStats {
    count: u32,
    sum: f64,
    sum_of_squares: f64,
    min: f64,
    max: f64,
}

impl RttStats {
    /// Adds one sample.
    pub fn add(&mut self, time: Duration) {
        let ms = time.as_secs_f64() * 1e3;
        if self.count == 0 || ms < self.min {
            self.min = ms;
        }
        if self.count == 0 || ms > self.max {
            self.max = ms;
        }
        self.count += 1;
        self.sum += ms;
        self.sum_of_squares += ms * ms;
    }

    /// How many samples.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The smallest sample in ms (0 when there are none).
    pub fn min_ms(&self) -> f64 {
        self.min
    }

    /// The largest sample in ms (0 when there are none).
    pub fn max_ms(&self) -> f64 {
        self.max
    }

    /// The mean in ms (0 when there are none).
    pub fn avg_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / f64::from(self.count)
        }
    }

    /// The standard deviation in ms, as ping computes it:
    /// `sqrt(mean(x²) − mean(x)²)`.
    pub fn mdev_ms(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let avg = self.avg_ms();
        (self.sum_of_squares / f64::from(self.count) - avg * avg)
            .max(0.0)
            .sqrt()
    }
}

impl fmt::Display for RttStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "min/avg/max/mdev = {:.3}/{:.3}/{:.3}/{:.3} ms",
            self.min_ms(),
            self.avg_ms(),
            self.max_ms(),
            self.mdev_ms()
        )
    }
}

/// How many probes of a QUIC new-connection run went in 0-RTT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZeroRttCounts {
    /// Answered probes whose early data the server took.
    pub accepted: u32,
    /// Answered probes whose early data the server refused, sent again
    /// after the handshake.
    pub rejected: u32,
    /// Answered probes sent after the handshake: the first, with no
    /// session to resume, or all with `zero_rtt` off.
    pub not_sent: u32,
}

impl ZeroRttCounts {
    /// Counts one answered probe.
    fn add(&mut self, zero_rtt: ZeroRtt) {
        match zero_rtt {
            ZeroRtt::Accepted => self.accepted += 1,
            ZeroRtt::Rejected => self.rejected += 1,
            ZeroRtt::NotSent | ZeroRtt::Pending => self.not_sent += 1,
        }
    }
}

/// The outcome of a ping run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PingSummary {
    /// Probes sent.
    pub sent: u32,
    /// Probes answered.
    pub received: u32,
    /// Per answered probe, the handshake (if it made one) plus the exchange.
    pub time: RttStats,
    /// Handshakes made during probes (new-connection mode, reconnections).
    pub connect: RttStats,
    /// TLS handshakes made during probes, after their TCP handshakes.
    pub tls: RttStats,
    /// WebSocket upgrades made during probes, after their handshakes.
    pub upgrade: RttStats,
    /// Request-and-reply times alone.
    pub rtt: RttStats,
    /// Over QUIC with a new connection per probe, how the answered probes
    /// used 0-RTT.
    pub zero_rtt: Option<ZeroRttCounts>,
}

impl PingSummary {
    /// The share of probes unanswered, in percent.
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            f64::from(self.sent - self.received) * 100.0 / f64::from(self.sent)
        }
    }
}

impl fmt::Display for PingSummary {
    /// ping's summary: `5 sent, 4 received, 20% loss, min/avg/max/mdev = …`,
    /// and over new connections the handshake and exchange apart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loss = self.loss_percent();
        write!(f, "{} sent, {} received, ", self.sent, self.received)?;
        if loss.fract() == 0.0 {
            write!(f, "{loss:.0}% loss")?;
        } else {
            write!(f, "{loss:.1}% loss")?;
        }
        if self.received > 0 {
            write!(f, ", {}", self.time)?;
        }
        if self.connect.count() > 0 {
            write!(f, "\nconnect {}", self.connect)?;
            if self.tls.count() > 0 {
                write!(f, "\ntls {}", self.tls)?;
            }
            if self.upgrade.count() > 0 {
                write!(f, "\nupgrade {}", self.upgrade)?;
            }
            write!(f, "\nrtt {}", self.rtt)?;
        }
        if let Some(counts) = &self.zero_rtt {
            write!(
                f,
                "\n0rtt yes={} rejected={} no={}",
                counts.accepted, counts.rejected, counts.not_sent
            )?;
        }
        Ok(())
    }
}

/// One answered probe.
struct Probe {
    bytes: usize,
    from: std::net::SocketAddr,
    connect: Option<Duration>,
    tls: Option<Duration>,
    upgrade: Option<Duration>,
    rtt: Duration,
    /// From the start to the answer, when the exchange overlapped the
    /// handshake (0-RTT); otherwise the handshakes plus `rtt`.
    time: Option<Duration>,
    /// Over QUIC with a new connection per probe, what it did with 0-RTT.
    zero_rtt: Option<ZeroRtt>,
}

/// The three ways to probe.
enum Prober {
    // Boxed: a session holds its TLS state inline, far larger than a UDP client.
    Tcp(Box<LineSession>),
    Udp(UdpClient),
    Quic(Box<QuicProber>),
    Ws(Box<WsProber>),
}

/// Probes over WebSocket: a message per probe, on one connection or a
/// new one per probe.
struct WsProber {
    url: WsUrl,
    connector: Connector,
    connection: Option<WsConnection>,
    timeout: Duration,
    new_connection: bool,
}

impl WsProber {
    fn probe(&mut self, payload: &[u8]) -> Result<Probe, ClientError> {
        let mut timed = (None, None, None);
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let connection = ws_connect(&self.url, &self.connector, Some(self.timeout))?;
                timed = (
                    Some(connection.connect_time()),
                    connection.tls_time(),
                    Some(connection.upgrade_time()),
                );
                self.connection.insert(connection)
            }
        };
        let started = Instant::now();
        let answer = connection.exchange(payload);
        let rtt = started.elapsed();
        let from = connection.peer();
        // A connection that failed a probe, or that is used once, is
        // closed: the next probe makes a new one.
        if answer.is_err() || self.new_connection {
            if let Some(connection) = self.connection.take() {
                let _ = connection.close();
            }
        }
        let (connect, tls, upgrade) = timed;
        Ok(Probe {
            bytes: answer?.len(),
            from,
            connect,
            tls,
            upgrade,
            rtt,
            time: None,
            zero_rtt: None,
        })
    }
}

/// Probes over QUIC: a stream per probe, on one connection or a new one
/// per probe.
struct QuicProber {
    client: QuicClient,
    addrs: Vec<SocketAddr>,
    connection: Option<QuicConnection>,
    connect_timeout: Option<Duration>,
    timeout: Duration,
    new_connection: bool,
    zero_rtt: bool,
    /// The address the last connection reached: a resumed connection goes
    /// there, since its first flight cannot wait to learn which answers.
    last_peer: Option<SocketAddr>,
}

impl QuicProber {
    fn probe(&mut self, payload: &[u8]) -> Result<Probe, ClientError> {
        if self.new_connection {
            return self.probe_new(payload);
        }
        let mut connect = None;
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let connection = self.client.connect(&self.addrs, self.connect_timeout)?;
                connect = Some(connection.handshake_time());
                self.connection.insert(connection)
            }
        };
        let started = Instant::now();
        let answer = connection.exchange(payload, self.timeout);
        let rtt = started.elapsed();
        let from = connection.peer();
        // A connection that failed a probe is closed: the next probe makes
        // a new one.
        if answer.is_err()
            && let Some(connection) = self.connection.take()
        {
            connection.close();
        }
        Ok(Probe {
            bytes: answer?.len(),
            from,
            connect,
            tls: None,
            upgrade: None,
            rtt,
            time: None,
            zero_rtt: None,
        })
    }

    /// Probes on a connection of its own. After the first, with 0-RTT on,
    /// the probe goes in the first flight: the answer may then come before
    /// the handshake's end, so `time` is the start to the answer and
    /// `connect` the start to the handshake's end, side by side.
    fn probe_new(&mut self, payload: &[u8]) -> Result<Probe, ClientError> {
        let started = Instant::now();
        let mut connection = match self.last_peer {
            Some(peer) if self.zero_rtt => self.client.connect_early(peer, self.connect_timeout)?,
            _ => self.client.connect(&self.addrs, self.connect_timeout)?,
        };
        let exchanged = Instant::now();
        let answer = connection
            .exchange(payload, self.timeout)
            .and_then(|answer| {
                let answered = Instant::now();
                // Whether the server took the early data is known at the
                // handshake's end, which an early answer may precede.
                connection.wait_handshake(Some(self.timeout))?;
                Ok((answer, answered))
            });
        let from = connection.peer();
        let connect = connection.handshake_time();
        let zero_rtt = connection.zero_rtt();
        if self.zero_rtt && answer.is_ok() {
            // The next probe resumes with this connection's ticket; a
            // resumed connection gets it after its answer. Not timed.
            connection.wait_ticket(self.timeout);
        }
        connection.close();
        // After a failure the next probe tries every address again.
        self.last_peer = answer.is_ok().then_some(from);
        let (answer, answered) = answer?;
        let time = answered - started;
        let (rtt, time) = match zero_rtt {
            // Sent with the first flight: request to answer is the whole.
            ZeroRtt::Accepted => (time, Some(time)),
            // Sent again once the handshake ended.
            ZeroRtt::Rejected => (time.saturating_sub(connect), Some(time)),
            ZeroRtt::NotSent | ZeroRtt::Pending => (answered - exchanged, None),
        };
        Ok(Probe {
            bytes: answer.len(),
            from,
            connect: Some(connect),
            tls: None,
            upgrade: None,
            rtt,
            time,
            zero_rtt: Some(zero_rtt),
        })
    }
}

impl Prober {
    fn probe(&mut self, seq: u32, size: Option<usize>) -> Result<Probe, ClientError> {
        match self {
            Prober::Tcp(session) => {
                let exchange = session.shout(&probe_payload(seq, size, Transport::Tcp))?;
                Ok(Probe {
                    bytes: exchange.reply.len(),
                    from: exchange.peer,
                    connect: exchange.connect_time,
                    tls: exchange.tls_time,
                    upgrade: None,
                    rtt: exchange.rtt,
                    time: None,
                    zero_rtt: None,
                })
            }
            Prober::Quic(prober) => prober.probe(&probe_payload(seq, size, Transport::Tcp)),
            Prober::Ws(prober) => prober.probe(&probe_payload(seq, size, Transport::Tcp)),
            Prober::Udp(client) => {
                let started = Instant::now();
                let bytes = client
                    .shout(&probe_payload(seq, size, Transport::Udp))?
                    .len();
                Ok(Probe {
                    bytes,
                    from: client.peer(),
                    connect: None,
                    tls: None,
                    upgrade: None,
                    rtt: started.elapsed(),
                    time: None,
                    zero_rtt: None,
                })
            }
        }
    }
}

/// Returns probe `seq`'s payload: the text `shout ping seq=N` (over TCP
/// with a newline), or with `size` exactly `size` bytes: the text cut or
/// padded with dots, over TCP its last byte a newline. A probe cut below
/// its number no longer tells a late UDP reply from the current one.
pub fn probe_payload(seq: u32, size: Option<usize>, transport: Transport) -> Vec<u8> {
    let newline = transport == Transport::Tcp;
    let mut payload = format!("shout ping seq={seq}").into_bytes();
    match size {
        None => {
            if newline {
                payload.push(b'\n');
            }
        }
        Some(size) => {
            payload.resize(size, b'.');
            if newline && let Some(last) = payload.last_mut() {
                *last = b'\n';
            }
        }
    }
    payload
}

/// Pings `target`, writing a header, one line per probe and the summary to
/// `out` (or with `json` one JSON document), and returns the summary.
///
/// Each probe is the text `shout ping seq=N` (see [`probe_payload`]), so a
/// late reply to an earlier probe is told apart and dropped. A probe that
/// gets no reply in time, or whose connection breaks, is lost and the run
/// goes on. An error before any probe was answered that no later probe
/// could change (the name does not resolve, the server refuses) ends the
/// run with that error.
pub fn ping(
    target: &Target,
    options: &PingOptions,
    out: &mut dyn Write,
) -> Result<PingSummary, ClientError> {
    let mut report = Report {
        out,
        json: options.json,
        probes: 0,
    };
    let mut prober = prober(target, options, &mut report)?;
    let mut summary = PingSummary {
        zero_rtt: (options.quic && options.new_connection).then(ZeroRttCounts::default),
        ..PingSummary::default()
    };
    for seq in 1..=options.count {
        let started = Instant::now();
        if let Prober::Tcp(session) = &mut prober
            && options.new_connection
        {
            session.disconnect();
        }
        summary.sent += 1;
        match prober.probe(seq, options.size) {
            Ok(probe) => {
                summary.received += 1;
                summary.rtt.add(probe.rtt);
                let time = probe.time.unwrap_or_else(|| {
                    probe.connect.unwrap_or_default()
                        + probe.tls.unwrap_or_default()
                        + probe.upgrade.unwrap_or_default()
                        + probe.rtt
                });
                summary.time.add(time);
                if let (Some(counts), Some(zero_rtt)) = (&mut summary.zero_rtt, probe.zero_rtt) {
                    counts.add(zero_rtt);
                }
                if let Some(connect) = probe.connect {
                    summary.connect.add(connect);
                }
                if let Some(tls) = probe.tls {
                    summary.tls.add(tls);
                }
                if let Some(upgrade) = probe.upgrade {
                    summary.upgrade.add(upgrade);
                }
                report.answered(seq, &probe, time)?;
            }
            Err(error)
                if summary.received == 0
                    && (matches!(
                        error.category(),
                        ErrorCategory::Resolve
                            | ErrorCategory::Refused
                            | ErrorCategory::Local
                            | ErrorCategory::Tls
                    ) || matches!(error, ClientError::TlsAnswer { .. })) =>
            {
                return Err(error);
            }
            Err(
                ClientError::NoReply { timeout, .. } | ClientError::ReplyTimeout { timeout, .. },
            ) => report.lost(seq, &format!("no reply within {}s", timeout.as_secs_f64()))?,
            Err(error) => report.lost(seq, &error.to_string())?,
        }
        if seq < options.count {
            thread::sleep(options.interval.saturating_sub(started.elapsed()));
        }
    }
    report.summary(target, &summary)?;
    Ok(summary)
}

/// Returns the prober of `options`, connected unless each probe makes its
/// own connection, once the header is written.
fn prober(
    target: &Target,
    options: &PingOptions,
    report: &mut Report<'_>,
) -> Result<Prober, ClientError> {
    if options.transport == Transport::Udp {
        let client = UdpClient::new(target, options.timeout, 0)?;
        report.header(target, options, "udp", None)?;
        return Ok(Prober::Udp(client));
    }
    let mut connector = Connector::resolve(target, options.connect_timeout)?;
    if options.quic {
        let tls = options.tls.clone().unwrap_or_default();
        let mut prober = QuicProber {
            client: QuicClient::new(&TlsClient::new(&tls, target)?)?,
            addrs: connector.addrs().to_vec(),
            connection: None,
            connect_timeout: options.connect_timeout,
            timeout: options.timeout,
            new_connection: options.new_connection,
            zero_rtt: options.zero_rtt,
            last_peer: None,
        };
        let mut connected = None;
        if !options.new_connection {
            let connection = (prober.client).connect(&prober.addrs, options.connect_timeout)?;
            connected = Some((connection.peer(), connection.handshake_time(), None, None));
            prober.connection = Some(connection);
        }
        report.header(target, options, "quic", connected)?;
        return Ok(Prober::Quic(Box::new(prober)));
    }
    let over = match &options.tls {
        Some(tls) => {
            connector = connector.with_tls(TlsClient::new(tls, target)?);
            "tls"
        }
        None => "tcp",
    };
    if options.ws {
        return ws_prober(target, options, connector, report);
    }
    let mut session = LineSession::new(connector, Some(options.timeout));
    if options.new_connection {
        report.header(target, options, over, None)?;
    } else {
        let connection = session.connect()?;
        let connected = (
            connection.peer(),
            connection.connect_time(),
            connection.tls_time(),
            None,
        );
        report.header(target, options, over, Some(connected))?;
    }
    Ok(Prober::Tcp(Box::new(session)))
}

/// Returns the WebSocket prober of `options` over `connector` (with its
/// TLS for wss), connected unless each probe makes its own connection,
/// once the header is written.
fn ws_prober(
    target: &Target,
    options: &PingOptions,
    connector: Connector,
    report: &mut Report<'_>,
) -> Result<Prober, ClientError> {
    let scheme = if options.tls.is_some() { "wss" } else { "ws" };
    let url: WsUrl = format!("{scheme}://{target}/ws")
        .parse()
        .map_err(|reason| ClientError::TlsConfig { reason })?;
    let mut prober = WsProber {
        url,
        connector,
        connection: None,
        timeout: options.timeout,
        new_connection: options.new_connection,
    };
    let mut connected = None;
    if !options.new_connection {
        let connection = ws_connect(&prober.url, &prober.connector, Some(options.timeout))?;
        connected = Some((
            connection.peer(),
            connection.connect_time(),
            connection.tls_time(),
            Some(connection.upgrade_time()),
        ));
        prober.connection = Some(connection);
    }
    report.header(target, options, scheme, connected)?;
    Ok(Prober::Ws(Box::new(prober)))
}

/// A connection made before the first probe: its peer, its handshake
/// time, and its TLS handshake's and WebSocket upgrade's when timed apart.
type Connected = (SocketAddr, Duration, Option<Duration>, Option<Duration>);

/// Writes a ping run as it goes: ping's lines, or one JSON document whose
/// probes are written as they come.
struct Report<'a> {
    out: &'a mut dyn Write,
    json: bool,
    probes: u32,
}

impl Report<'_> {
    /// The first line, or the JSON document's opening fields.
    fn header(
        &mut self,
        target: &Target,
        options: &PingOptions,
        over: &str,
        connection: Option<Connected>,
    ) -> Result<(), ClientError> {
        if self.json {
            let mut head = serde_json::json!({
                "target": target.to_string(),
                "transport": over,
                "new_connection": options.new_connection,
                "size": options.size,
            });
            if let Some((peer, connect, tls, upgrade)) = connection {
                head["peer"] = peer.to_string().into();
                head["connect_ms"] = round(ms(connect)).into();
                head["tls_ms"] = tls.map(|tls| round(ms(tls))).into();
                if let Some(upgrade) = upgrade {
                    head["upgrade_ms"] = round(ms(upgrade)).into();
                }
            }
            // The object stays open for the probes that follow.
            let head = head.to_string();
            let head = head.strip_suffix('}').unwrap_or(&head);
            return self.write(&format!("{head},\"probes\":["));
        }
        let line = match connection {
            None if over == "udp" => format!("SHOUT PING {target} over udp"),
            None => format!("SHOUT PING {target} over {over}, a new connection per probe"),
            Some((peer, connect, tls, upgrade)) => {
                let mut tls = tls.map_or_else(String::new, |tls| {
                    format!(", tls handshake in {:.3} ms", ms(tls))
                });
                if let Some(upgrade) = upgrade {
                    tls += &format!(", upgraded in {:.3} ms", ms(upgrade));
                }
                format!(
                    "SHOUT PING {target} over {over}: connected to {peer} in {:.3} ms{tls}",
                    ms(connect)
                )
            }
        };
        self.write(&format!("{line}\n"))
    }

    /// One answered probe; `time` is its handshakes and exchange.
    fn answered(&mut self, seq: u32, probe: &Probe, time: Duration) -> Result<(), ClientError> {
        let probe_zero_rtt = probe.zero_rtt.map(|zero_rtt| match zero_rtt {
            ZeroRtt::Accepted => "yes",
            ZeroRtt::Rejected => "rejected",
            ZeroRtt::NotSent | ZeroRtt::Pending => "no",
        });
        if self.json {
            let mut probe = serde_json::json!({
                "seq": seq,
                "answered": true,
                "bytes": probe.bytes,
                "from": probe.from.to_string(),
                "time_ms": round(ms(time)),
                "rtt_ms": round(ms(probe.rtt)),
                "connect_ms": probe.connect.map(|connect| round(ms(connect))),
                "tls_ms": probe.tls.map(|tls| round(ms(tls))),
                "upgrade_ms": probe.upgrade.map(|upgrade| round(ms(upgrade))),
            });
            if let (Some(zero_rtt), serde_json::Value::Object(fields)) =
                (probe_zero_rtt, &mut probe)
            {
                fields.insert("zero_rtt".into(), zero_rtt.into());
            }
            return self.probe(&probe);
        }
        let mut line = format!("{} bytes from {}: seq={seq}", probe.bytes, probe.from);
        if let Some(connect) = probe.connect {
            line += &format!(" connect={:.3} ms", ms(connect));
            if let Some(tls) = probe.tls {
                line += &format!(" tls={:.3} ms", ms(tls));
            }
            if let Some(upgrade) = probe.upgrade {
                line += &format!(" upgrade={:.3} ms", ms(upgrade));
            }
            line += &format!(" rtt={:.3} ms", ms(probe.rtt));
        }
        line += &format!(" time={:.3} ms", ms(time));
        if let Some(zero_rtt) = probe_zero_rtt {
            line += &format!(" 0rtt={zero_rtt}");
        }
        self.write(&format!("{line}\n"))
    }

    /// One lost probe, and why.
    fn lost(&mut self, seq: u32, why: &str) -> Result<(), ClientError> {
        if self.json {
            let probe = serde_json::json!({"seq": seq, "answered": false, "error": why});
            return self.probe(&probe);
        }
        self.write(&format!("seq={seq}: {why}\n"))
    }

    /// The statistics, or the JSON document's closing fields.
    fn summary(&mut self, target: &Target, summary: &PingSummary) -> Result<(), ClientError> {
        if self.json {
            let stats = |stats: &RttStats| {
                (stats.count() > 0).then(|| {
                    serde_json::json!({
                        "count": stats.count(),
                        "min_ms": round(stats.min_ms()),
                        "avg_ms": round(stats.avg_ms()),
                        "max_ms": round(stats.max_ms()),
                        "mdev_ms": round(stats.mdev_ms()),
                    })
                })
            };
            let mut tail = serde_json::json!({
                "sent": summary.sent,
                "received": summary.received,
                "loss_percent": round(summary.loss_percent()),
                "time": stats(&summary.time),
                "rtt": stats(&summary.rtt),
                "connect": stats(&summary.connect),
                "tls": stats(&summary.tls),
                "upgrade": stats(&summary.upgrade),
            });
            if let (Some(counts), serde_json::Value::Object(fields)) =
                (&summary.zero_rtt, &mut tail)
            {
                let counts = serde_json::json!({
                    "accepted": counts.accepted,
                    "rejected": counts.rejected,
                    "not_sent": counts.not_sent,
                });
                fields.insert("zero_rtt".into(), counts);
            }
            let tail = tail.to_string();
            let tail = tail.strip_prefix('{').unwrap_or(&tail);
            return self.write(&format!("\n],{tail}\n"));
        }
        self.write(&format!(
            "--- {target} shout ping statistics ---\n{summary}\n"
        ))
    }

    /// A probe of the JSON document, after a comma unless it is the first.
    fn probe(&mut self, probe: &serde_json::Value) -> Result<(), ClientError> {
        let comma = if self.probes == 0 { "" } else { "," };
        self.probes += 1;
        self.write(&format!("{comma}\n{probe}"))
    }

    /// Writes `text` and flushes, so each probe shows as it comes.
    fn write(&mut self, text: &str) -> Result<(), ClientError> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(ClientError::Output)
    }
}

/// Milliseconds to the microsecond, for JSON.
fn round(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_like_ping() {
        let mut stats = RttStats::default();
        assert_eq!(
            stats.to_string(),
            "min/avg/max/mdev = 0.000/0.000/0.000/0.000 ms"
        );
        for ms in [1, 2, 3, 4] {
            stats.add(Duration::from_millis(ms));
        }
        assert_eq!(stats.count(), 4);
        assert_eq!(
            stats.to_string(),
            "min/avg/max/mdev = 1.000/2.500/4.000/1.118 ms"
        );
    }

    #[test]
    fn probe_payloads_of_any_size() {
        assert_eq!(
            probe_payload(3, None, Transport::Tcp),
            b"shout ping seq=3\n"
        );
        assert_eq!(probe_payload(3, None, Transport::Udp), b"shout ping seq=3");
        assert_eq!(
            probe_payload(3, Some(20), Transport::Tcp),
            b"shout ping seq=3...\n"
        );
        assert_eq!(
            probe_payload(3, Some(20), Transport::Udp),
            b"shout ping seq=3...."
        );
        assert_eq!(probe_payload(3, Some(5), Transport::Tcp), b"shou\n");
        assert_eq!(probe_payload(3, Some(1), Transport::Udp), b"s");
        assert_eq!(probe_payload(3, Some(0), Transport::Tcp), b"");
        assert_eq!(probe_payload(3, Some(1000), Transport::Udp).len(), 1000);
    }

    #[test]
    fn summary_loss() {
        let mut summary = PingSummary {
            sent: 3,
            received: 2,
            ..PingSummary::default()
        };
        summary.time.add(Duration::from_millis(1));
        summary.time.add(Duration::from_millis(1));
        assert_eq!(
            summary.to_string(),
            "3 sent, 2 received, 33.3% loss, min/avg/max/mdev = 1.000/1.000/1.000/0.000 ms"
        );
        summary.received = 0;
        summary.sent = 4;
        assert_eq!(summary.to_string(), "4 sent, 0 received, 100% loss");
    }
}
