//! The load generator behind `shout bench`: many connections, requests
//! pipelined on each, every reply checked byte for byte, every latency in an
//! HDR histogram.
//!
//! It must hold thousands of connections with a thread or two, so each of
//! its threads owns a share of the connections and a `mio::Poll`, and never
//! blocks but in it. The calling thread only prints the progress line once a
//! second. It reaches the target through `shout-client` (resolving, the
//! first connection) and keeps readiness with `shout_socket::StreamReadiness`,
//! as the server does. It is not a client library: embedders who want to
//! talk to a server use `shout-client`.
//!
//! [`bench()`] runs a benchmark and returns a [`BenchReport`]: its `Display`
//! is the human summary, [`BenchReport::summary`] the typed [`Summary`] that
//! `--json` prints. [`BenchError`] says why a run could not start.
//!
//! Modes:
//! - closed loop (the default): each connection keeps `depth` requests in
//!   flight, sending the next as soon as a reply completes;
//! - open loop (`rate`): requests are due at a fixed rate whatever the
//!   server does, and latency runs from when each was *due*, as wrk2 measures
//!   it, so a server stall shows in the percentiles instead of slowing the
//!   client down with it (coordinated omission);
//! - new connection per request (`new_connection`): connect, one request,
//!   half-close, read to the end, close; latency includes the handshake;
//! - hold (`hold`): open many idle connections, keep them, then use each
//!   once (the C10K test);
//! - blocking (`blocking`): a thread per TCP connection with std's blocking
//!   socket, one request and one reply at a time, as many real clients are.
//!
//! Every reply is checked byte for byte against what [`Expect`] says the
//! server answers: the request's uppercase (a shout server, the default) or
//! the request itself (an echo server).
//!
//! With `tls`, every TCP connection of the event loops speaks TLS through a
//! rustls `ClientConnection` made from `shout-client`'s configuration; the
//! handshakes are counted and timed apart from the replies. End of input is
//! a close_notify followed by a TCP half-close.
//!
//! Over UDP each socket is one client with `depth` datagrams in flight; a
//! datagram with no reply within `timeout` is counted lost and replaced.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod blocking;
mod error;
pub mod format;
mod payload;
mod quic;
mod record;
mod schedule;
mod summary;
mod tcp;
mod udp;
mod ws;

pub use error::BenchError;
pub use summary::{Mode, Summary};

use format::{Count, Latency, Secs};
use record::{Progress, Recorder};
use shout_client::{
    ClientError, Connector, QuicClient, Target, TlsClient, TlsOptions, Transport, WsUrl, ws_connect,
};
use std::fmt::{self, Write as _};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Says when a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this long (plus the warm-up).
    Duration(Duration),
    /// Once this many requests are answered (after the warm-up).
    Requests(u64),
}

/// Says what a server answers to a request, which every reply is checked
/// against byte for byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Expect {
    /// The request's uppercase: a shout server.
    #[default]
    Upper,
    /// The request itself: an echo server (`ncat --exec cat`, socat, the
    /// servers rust_echo_bench measures).
    Echo,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expect::Upper => "upper",
            Expect::Echo => "echo",
        })
    }
}

/// Describes what `shout bench` does. [`Default`] is one TCP connection,
/// one request in flight, 64 bytes, for ten seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// TCP connections, or UDP sockets.
    pub transport: Transport,
    /// Connections (or UDP sockets) at once.
    pub connections: usize,
    /// Requests in flight on each connection (pipelining); at a fixed rate,
    /// the most in flight, beyond which due requests wait (their latency
    /// still counts from when they were due).
    pub depth: usize,
    /// Bytes in each request, and so in each reply.
    pub size: usize,
    /// When to stop. Ignored by `hold`, which uses each connection once.
    pub stop: Stop,
    /// Requests answered during this first stretch are not counted.
    pub warmup: Duration,
    /// Open loop: requests per second in all, on a fixed schedule.
    pub rate: Option<f64>,
    /// Over TCP, connect for every request and close after its reply.
    pub new_connection: bool,
    /// Open this many idle TCP connections, hold them for `idle`, then send
    /// one request on each.
    pub hold: Option<usize>,
    /// How long held connections stay idle.
    pub idle: Duration,
    /// Event-loop threads sharing the connections.
    pub threads: usize,
    /// Over TCP, a blocking thread per connection instead of event loops,
    /// one request in flight on each; `threads` is then ignored.
    pub blocking: bool,
    /// A connection with requests in flight that receives nothing for this
    /// long has failed; a datagram not answered within it is lost.
    pub timeout: Duration,
    /// How long a TCP handshake may take, and then the TLS handshake.
    pub connect_timeout: Duration,
    /// Over TCP, speak TLS on every connection, trusting what this says.
    pub tls: Option<TlsOptions>,
    /// What the server answers: every reply is checked against it.
    pub expect: Expect,
    /// QUIC instead of TCP (with `transport` TCP), trusting what `tls`
    /// says: each connection a QUIC connection.
    pub quic: bool,
    /// Over QUIC, a stream per request (`depth` streams in flight per
    /// connection) instead of every request pipelined on one stream.
    pub streams: bool,
    /// Over TCP, WebSocket: each connection upgraded at `/ws`, each
    /// request one message, its reply one message.
    pub ws: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            transport: Transport::Tcp,
            connections: 1,
            depth: 1,
            size: 64,
            stop: Stop::Duration(Duration::from_secs(10)),
            warmup: Duration::ZERO,
            rate: None,
            new_connection: false,
            hold: None,
            idle: Duration::from_secs(1),
            threads: 1,
            blocking: false,
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            tls: None,
            expect: Expect::Upper,
            quic: false,
            streams: false,
            ws: false,
        }
    }
}

/// The most blocking clients, each a thread.
const MAX_BLOCKING_CLIENTS: usize = 1_000;

/// The largest request `bench` sends over UDP: one datagram.
const MAX_UDP_SIZE: usize = shout_protocol::MAX_DATAGRAM_PAYLOAD;

impl BenchOptions {
    /// Checks that the options make a run.
    ///
    /// # Errors
    /// [`BenchError::InvalidOptions`], naming the option that does not.
    pub fn validate(&self) -> Result<(), BenchError> {
        self.check().map_err(BenchError::InvalidOptions)
    }

    /// Returns why the options make no run, if they do not.
    fn check(&self) -> Result<(), String> {
        if self.connections == 0 || self.depth == 0 || self.threads == 0 {
            return Err("connections, depth and threads must be at least 1".into());
        }
        if self.size == 0 {
            return Err("the size must be at least 1 byte, so replies can be checked".into());
        }
        if self.transport == Transport::Udp {
            if self.size > MAX_UDP_SIZE {
                return Err(format!(
                    "a datagram holds at most {MAX_UDP_SIZE} bytes, not {}",
                    self.size
                ));
            }
            if self.new_connection || self.hold.is_some() {
                return Err("new connections and held connections are TCP only".into());
            }
        }
        if self.new_connection && self.hold.is_some() {
            return Err("hold keeps connections open; it cannot open one per request".into());
        }
        if self.new_connection && self.rate.is_some() {
            return Err("a fixed rate is for persistent connections or UDP".into());
        }
        if self.hold == Some(0) {
            return Err("hold at least 1 connection".into());
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("the rate must be a positive number of requests per second".into());
            }
        }
        if self.blocking {
            if self.transport == Transport::Udp
                || self.new_connection
                || self.hold.is_some()
                || self.rate.is_some()
            {
                return Err(
                    "blocking clients are closed-loop TCP only (no UDP, new connections, hold or rate)"
                        .into(),
                );
            }
            if self.depth != 1 {
                return Err("a blocking client has one request in flight: depth 1".into());
            }
            if self.connections > MAX_BLOCKING_CLIENTS {
                return Err(format!(
                    "blocking clients are a thread each: at most {MAX_BLOCKING_CLIENTS}"
                ));
            }
        }
        if self.ws
            && (self.transport == Transport::Udp
                || self.blocking
                || self.new_connection
                || self.quic
                || self.tls.is_some())
        {
            return Err(
                "WebSocket is for the event loops' plain TCP connections (no UDP, blocking, \
                 new connections, QUIC or TLS)"
                    .into(),
            );
        }
        if self.tls.is_some() && (self.transport == Transport::Udp || self.blocking) {
            return Err("TLS is for the event loops' TCP connections (no UDP, no blocking)".into());
        }
        if self.quic && (self.transport == Transport::Udp || self.blocking || self.rate.is_some()) {
            return Err(
                "QUIC is closed-loop over the event loops (no UDP, blocking or rate)".into(),
            );
        }
        if self.streams && !self.quic {
            return Err("a stream per request is QUIC's (--quic)".into());
        }
        if self.stop == Stop::Requests(0) {
            return Err("at least 1 request".into());
        }
        Ok(())
    }
}

/// Holds what a run measured. `Display` prints the summary `shout bench`
/// shows; [`BenchReport::summary`] gives the typed one.
#[derive(Debug, Clone)]
pub struct BenchReport {
    target: SocketAddr,
    options: BenchOptions,
    recorder: Recorder,
    elapsed: Duration,
    held: Option<Held>,
}

/// Describes how the connections of a `hold` run opened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    /// Connections that opened.
    pub opened: u64,
    /// From the first connection attempt until the last one opened.
    pub open_time: Duration,
}

impl BenchReport {
    /// Returns the replies received whole and correct in the measured
    /// window.
    pub fn messages(&self) -> u64 {
        self.recorder.messages
    }

    /// Returns the length of the measured window.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Returns the replies per second.
    pub fn messages_per_sec(&self) -> f64 {
        per_second(self.recorder.messages as f64, self.elapsed)
    }

    /// Returns the reply payload, in MiB per second.
    pub fn mib_per_sec(&self) -> f64 {
        per_second(
            (self.recorder.messages * self.options.size as u64) as f64,
            self.elapsed,
        ) / (1024.0 * 1024.0)
    }

    /// Returns the count of wrong replies and of connections that failed
    /// or broke.
    pub fn errors(&self) -> u64 {
        self.recorder.errors
    }

    /// Returns the count of datagrams with no reply within the timeout.
    pub fn lost(&self) -> u64 {
        self.recorder.lost
    }

    /// Returns the first error, worded for a person.
    pub fn first_error(&self) -> Option<&str> {
        self.recorder.first_error.as_deref()
    }

    /// Returns the latency below which the fraction `quantile` (0 to 1) of
    /// replies came, or zero when none came.
    pub fn latency(&self, quantile: f64) -> Duration {
        if self.recorder.latency.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.recorder.latency.value_at_quantile(quantile))
    }

    /// Returns the latency of the slowest reply.
    pub fn max_latency(&self) -> Duration {
        Duration::from_nanos(self.recorder.latency.max())
    }

    /// Returns the mean latency.
    pub fn mean_latency(&self) -> Duration {
        Duration::from_nanos(self.recorder.latency.mean() as u64)
    }

    /// Returns the TLS handshakes completed, warm-up included.
    pub fn handshakes(&self) -> u64 {
        self.recorder.handshakes
    }

    /// Returns the time below which the fraction `quantile` (0 to 1) of TLS
    /// handshakes took, or `None` when none was made.
    pub fn handshake_latency(&self, quantile: f64) -> Option<Duration> {
        let histogram = &self.recorder.handshake;
        (!histogram.is_empty()).then(|| Duration::from_nanos(histogram.value_at_quantile(quantile)))
    }

    /// Returns how the connections of a `hold` run opened; `None` for
    /// other runs.
    pub fn held(&self) -> Option<Held> {
        self.held
    }

    fn mode(&self) -> Mode {
        match (&self.options, self.held) {
            (_, Some(_)) => Mode::Hold,
            (options, None) if options.new_connection => Mode::NewConnection,
            (options, None) if options.rate.is_some() => Mode::OpenLoop,
            _ => Mode::ClosedLoop,
        }
    }

    /// Returns the report as the typed summary `--json` prints.
    pub fn summary(&self) -> Summary {
        let us = |duration: Duration| summary::rounded(duration.as_secs_f64() * 1e6, 1);
        Summary {
            transport: if self.options.quic {
                "quic".to_owned()
            } else if self.options.ws {
                "ws".to_owned()
            } else {
                self.options.transport.to_string()
            },
            target: self.target,
            mode: self.mode(),
            connections: self.connections(),
            depth: self.options.depth,
            size: self.options.size,
            rate: self.options.rate,
            seconds: summary::rounded(self.elapsed.as_secs_f64(), 6),
            messages: self.recorder.messages,
            msgs_per_sec: summary::rounded(self.messages_per_sec(), 1),
            mib_per_sec: summary::rounded(self.mib_per_sec(), 3),
            p50_us: us(self.latency(0.5)),
            p90_us: us(self.latency(0.9)),
            p99_us: us(self.latency(0.99)),
            p999_us: us(self.latency(0.999)),
            max_us: us(self.max_latency()),
            mean_us: us(self.mean_latency()),
            errors: self.recorder.errors,
            lost: self.recorder.lost,
            late: self.recorder.late,
            held: self.held.map(|held| held.opened),
            open_seconds: self
                .held
                .map(|held| summary::rounded(held.open_time.as_secs_f64(), 6)),
            first_error: self.recorder.first_error.clone(),
            tls: self.options.tls.is_some() || self.options.quic,
            handshakes: self.recorder.handshakes,
            zero_rtt: self.recorder.zero_rtt,
            handshake_p50_us: self.handshake_latency(0.5).map(us),
            handshake_p90_us: self.handshake_latency(0.9).map(us),
            handshake_p99_us: self.handshake_latency(0.99).map(us),
            handshake_max_us: self.handshake_latency(1.0).map(us),
            expect: self.options.expect.to_string(),
        }
    }

    /// Returns the report as one line of JSON, for scripts (`--json`): the
    /// [`Summary`], serialised.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.summary())
            .expect("a summary has only string keys and serialises")
    }

    fn connections(&self) -> usize {
        self.options.hold.unwrap_or(self.options.connections)
    }
}

impl fmt::Display for BenchReport {
    /// The summary `shout bench` prints: what ran, throughput, latency
    /// percentiles, errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.options;
        let over = match (options.quic, options.tls.is_some()) {
            (true, _) if options.streams => "quic (a stream per request)",
            (true, _) => "quic",
            (false, true) => "tcp over tls",
            (false, false) if options.ws => "ws",
            (false, false) => {
                if options.transport == Transport::Udp {
                    "udp"
                } else {
                    "tcp"
                }
            }
        };
        write!(f, "{over} {}: ", self.target)?;
        match self.held {
            Some(held) => writeln!(
                f,
                "held {} connections (all open after {}), idle {}, then one request of {} B on each",
                Count(held.opened),
                Secs(held.open_time),
                Secs(options.idle),
                options.size
            )?,
            None => {
                let unit = match options.transport {
                    Transport::Tcp if options.new_connection => "connection loop",
                    Transport::Tcp => "connection",
                    Transport::Udp => "socket",
                };
                let plural = if options.connections == 1 { "" } else { "s" };
                write!(
                    f,
                    "{} {unit}{plural} × depth {} × {} B",
                    Count(options.connections as u64),
                    if options.new_connection {
                        1
                    } else {
                        options.depth
                    },
                    options.size
                )?;
                match options.rate {
                    Some(rate) => write!(f, ", open loop at {} requests/s", Count(rate as u64))?,
                    None => write!(f, ", closed loop")?,
                }
                if options.new_connection {
                    write!(f, ", a new connection per request")?;
                }
                if options.expect == Expect::Echo {
                    write!(f, ", echo expected")?;
                }
                writeln!(f)?;
            }
        }
        writeln!(
            f,
            "  replies  {} in {}: {} msgs/s, {:.2} MiB/s",
            Count(self.recorder.messages),
            Secs(self.elapsed),
            Count(self.messages_per_sec().round() as u64),
            self.mib_per_sec()
        )?;
        writeln!(
            f,
            "  latency  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            Latency(self.latency(0.5)),
            Latency(self.latency(0.9)),
            Latency(self.latency(0.99)),
            Latency(self.latency(0.999)),
            Latency(self.max_latency())
        )?;
        if options.tls.is_some() || options.quic || options.ws {
            let shown = |quantile| self.handshake_latency(quantile).unwrap_or_default();
            let early = if options.quic && options.new_connection {
                format!(" ({} 0-RTT)", Count(self.recorder.zero_rtt))
            } else {
                String::new()
            };
            let (label, what) = if options.quic {
                ("quic", "handshakes")
            } else if options.ws {
                ("ws", "upgrades")
            } else {
                ("tls", "handshakes")
            };
            writeln!(
                f,
                "  {label:<8} {} {what}{early}  p50 {}  p90 {}  p99 {}  max {}",
                Count(self.recorder.handshakes),
                Latency(shown(0.5)),
                Latency(shown(0.9)),
                Latency(shown(0.99)),
                Latency(shown(1.0))
            )?;
        }
        write!(f, "  errors   {}", Count(self.recorder.errors))?;
        if options.transport == Transport::Udp {
            write!(
                f,
                ", lost {}, late {}",
                Count(self.recorder.lost),
                Count(self.recorder.late)
            )?;
        }
        if let Some(error) = self.first_error() {
            write!(f, " (first: {error})")?;
        }
        writeln!(f)
    }
}

fn per_second(amount: f64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        amount / elapsed.as_secs_f64()
    }
}

/// What one thread of a run is given.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) addr: SocketAddr,
    pub(crate) payload: payload::Payload,
    /// This thread's connections (or held connections, or sockets).
    pub(crate) connections: usize,
    pub(crate) depth: usize,
    pub(crate) duration: Option<Duration>,
    /// This thread's share of the requests.
    pub(crate) quota: Option<u64>,
    pub(crate) warmup: Duration,
    /// This thread's share of the rate.
    pub(crate) rate: Option<f64>,
    pub(crate) new_connection: bool,
    pub(crate) hold: bool,
    pub(crate) idle: Duration,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// The TLS configuration every connection uses, if any.
    pub(crate) tls: Option<TlsClient>,
    /// Over QUIC, how to connect.
    pub(crate) quic: Option<quic::QuicPlan>,
    /// Over TCP, WebSocket (`/ws`).
    pub(crate) ws: bool,
}

/// What the threads share: the progress counters, and a barrier so that
/// all start measuring together once their connections are open.
pub(crate) struct Shared {
    pub(crate) progress: Progress,
    pub(crate) ready: Barrier,
}

/// What one thread measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) recorder: Recorder,
    pub(crate) elapsed: Duration,
    pub(crate) held: Option<Held>,
}

/// Runs a benchmark against `target` and reports; progress lines go to
/// `progress` once a second (and, with `hold`, once every connection is
/// open).
///
/// # Errors
/// Only when the run cannot start: the options make no run, the name does
/// not resolve, nothing accepts a first TCP connection (with `ws`, nothing
/// upgrades it), a socket, event loop or thread cannot be made. Wrong
/// replies and broken connections during the run are counted in the report
/// instead.
pub fn bench(
    target: &Target,
    options: &BenchOptions,
    progress: Option<&mut dyn Write>,
) -> Result<BenchReport, BenchError> {
    options.validate()?;
    let mut quic_plan = None;
    let (addr, tls) = match options.transport {
        // One QUIC connection first: a server that is not there, or an
        // untrusted certificate, is one clear error.
        Transport::Tcp if options.quic => {
            let connector = Connector::resolve(target, Some(options.connect_timeout))?;
            let tls = TlsClient::new(&options.tls.clone().unwrap_or_default(), target)?;
            let client = QuicClient::new(&tls)?;
            let connection = client.connect(connector.addrs(), Some(options.connect_timeout))?;
            let peer = connection.peer();
            connection.close();
            quic_plan = Some(quic::QuicPlan {
                config: client.config().clone(),
                server_name: client.server_name().to_owned(),
                streams: options.streams,
            });
            (peer, None)
        }
        // One blocking connection first: a server that is not there is one
        // clear error, not thousands of counted ones.
        Transport::Tcp => {
            let mut connector = Connector::resolve(target, Some(options.connect_timeout))?;
            if let Some(tls) = &options.tls {
                // The first connection makes a TLS handshake too, so an
                // untrusted certificate is one clear error at the start.
                connector = connector.with_tls(TlsClient::new(tls, target)?);
            }
            let peer = if options.ws {
                // Upgraded and closed cleanly, so the server counts an
                // upgrade, not a refusal, and a server that does not
                // upgrade is one clear error too.
                let url: WsUrl = format!("ws://{target}{}", ws::RESOURCE)
                    .parse()
                    .map_err(BenchError::InvalidOptions)?;
                let connection = ws_connect(&url, &connector, Some(options.connect_timeout))?;
                let peer = connection.peer();
                connection.close()?;
                peer
            } else {
                connector.connect()?.peer()
            };
            (peer, connector.tls().cloned())
        }
        Transport::Udp => (
            *target
                .resolve()?
                .first()
                .ok_or_else(|| ClientError::Resolve {
                    host: target.host().to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the name has no addresses",
                    ),
                })?,
            None,
        ),
    };
    let plans = plans(addr, options, tls.as_ref(), quic_plan.as_ref());
    let threads = plans.len();
    let shared = Arc::new(Shared {
        progress: Progress::default(),
        ready: Barrier::new(threads),
    });
    let (done, finished) = mpsc::channel();
    for plan in plans {
        let shared = Arc::clone(&shared);
        let done = done.clone();
        let (transport, blocking) = (options.transport, options.blocking);
        std::thread::Builder::new()
            .name("shout-bench".into())
            .spawn(move || {
                let outcome = match (transport, &plan.quic) {
                    (_, Some(quic)) => quic::run(&plan, quic, &shared),
                    _ => match transport {
                        Transport::Tcp if blocking => blocking::run(&plan, &shared),
                        Transport::Tcp => tcp::run(&plan, &shared),
                        Transport::Udp => udp::run(&plan, &shared),
                    },
                };
                let _ = done.send(outcome);
            })
            .map_err(BenchError::Thread)?;
    }
    drop(done);
    let outcomes = watch(options, threads, &shared.progress, &finished, progress)?;
    let mut recorder = Recorder::new();
    let mut elapsed = Duration::ZERO;
    let mut held: Option<Held> = None;
    for outcome in outcomes {
        recorder.merge(outcome.recorder);
        elapsed = elapsed.max(outcome.elapsed);
        if let Some(part) = outcome.held {
            let total = held.get_or_insert(Held {
                opened: 0,
                open_time: Duration::ZERO,
            });
            total.opened += part.opened;
            total.open_time = total.open_time.max(part.open_time);
        }
    }
    Ok(BenchReport {
        target: addr,
        options: options.clone(),
        recorder,
        elapsed,
        held,
    })
}

/// Splits the run among the threads: connections, requests and rate.
fn plans(
    addr: SocketAddr,
    options: &BenchOptions,
    tls: Option<&TlsClient>,
    quic: Option<&quic::QuicPlan>,
) -> Vec<Plan> {
    let threads = if options.blocking {
        options.connections
    } else {
        options.threads
    };
    let share = |total: u64, index: usize| {
        total / threads as u64 + u64::from((index as u64) < total % threads as u64)
    };
    let connections = options.hold.unwrap_or(options.connections);
    let payload = payload::Payload::new(options.size, options.expect);
    (0..threads)
        .map(|index| Plan {
            addr,
            payload: payload.clone(),
            connections: share(connections as u64, index) as usize,
            depth: if options.new_connection || options.hold.is_some() {
                1
            } else {
                options.depth
            },
            duration: match options.stop {
                Stop::Duration(duration) if options.hold.is_none() => Some(duration),
                _ => None,
            },
            quota: match options.stop {
                _ if options.hold.is_some() => None,
                Stop::Requests(requests) => Some(share(requests, index)),
                Stop::Duration(_) => None,
            },
            warmup: if options.hold.is_some() {
                Duration::ZERO
            } else {
                options.warmup
            },
            rate: options.rate.map(|rate| rate / threads as f64),
            new_connection: options.new_connection,
            hold: options.hold.is_some(),
            idle: options.idle,
            timeout: options.timeout,
            connect_timeout: options.connect_timeout,
            tls: tls.cloned(),
            quic: quic.cloned(),
            ws: options.ws,
        })
        .filter(|plan| plan.connections > 0)
        .collect()
}

/// Waits for the threads, printing a progress line every second; returns
/// what each measured, or the first thread's error.
fn watch(
    options: &BenchOptions,
    threads: usize,
    progress: &Progress,
    finished: &mpsc::Receiver<Result<Outcome, BenchError>>,
    mut out: Option<&mut dyn Write>,
) -> Result<Vec<Outcome>, BenchError> {
    const TICK: Duration = Duration::from_secs(1);
    let started = Instant::now();
    let mut next_tick = started + TICK;
    let mut outcomes = Vec::with_capacity(threads);
    let mut first_error = None;
    let mut last = (0, 0, 0);
    let mut announced_hold = false;
    while outcomes.len() + usize::from(first_error.is_some()) < threads {
        let received = match progress_wait(
            out.is_some(),
            options.hold.is_some() && !announced_hold,
            next_tick.saturating_duration_since(Instant::now()),
        ) {
            Some(wait) => finished.recv_timeout(wait),
            None => finished
                .recv()
                .map_err(|mpsc::RecvError| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let Some(out) = out.as_deref_mut() else {
            continue;
        };
        let now = Instant::now();
        if let Some(hold) = options.hold {
            let open = Progress::get(&progress.open);
            let failed = Progress::get(&progress.failed);
            if !announced_hold && open + failed >= hold as u64 {
                announced_hold = true;
                let _ = writeln!(
                    out,
                    "bench: holding {} connections, all open after {:.3} s{}",
                    open,
                    started.elapsed().as_secs_f64(),
                    if failed > 0 {
                        format!(" ({failed} failed)")
                    } else {
                        String::new()
                    }
                );
            }
        }
        if now >= next_tick {
            let seconds = (now - started).as_secs_f64();
            let current = (
                Progress::get(&progress.messages),
                Progress::get(&progress.errors),
                Progress::get(&progress.lost),
            );
            let span = TICK.as_secs_f64() + (now - next_tick).as_secs_f64();
            let rate = (current.0 - last.0) as f64 / span;
            let mut line = format!(
                "bench: {seconds:.0} s: {} msgs/s, {:.2} MiB/s, {} errors",
                Count(rate.round() as u64),
                rate * options.size as f64 / (1024.0 * 1024.0),
                Count(current.1)
            );
            if options.transport == Transport::Udp {
                let _ = write!(line, ", {} lost", Count(current.2));
            }
            if let Some(hold) = options.hold {
                if !announced_hold {
                    line = format!(
                        "bench: {seconds:.0} s: {} of {} connections open",
                        Count(Progress::get(&progress.open)),
                        Count(hold as u64)
                    );
                }
            }
            let _ = writeln!(out, "{line}");
            last = current;
            next_tick += TICK;
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(outcomes),
    }
}

/// How long the watching thread may sleep before it has progress to tell:
/// `None` when it tells nothing and just waits for the load threads.
///
/// The load threads and the server under test share the machine with this
/// thread, so it must never spin: without progress output there is no tick
/// to wake for, and with it the wait runs to the next tick, or at most 5 ms
/// while held connections are still opening (so the moment they are all open
/// is told within a few milliseconds).
fn progress_wait(
    has_output: bool,
    announcing_hold: bool,
    until_tick: Duration,
) -> Option<Duration> {
    const HOLD_POLL: Duration = Duration::from_millis(5);
    if !has_output {
        return None;
    }
    Some(if announcing_hold {
        until_tick.min(HOLD_POLL)
    } else {
        until_tick
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watcher_sleeps_until_it_has_something_to_tell() {
        let second = Duration::from_secs(1);
        // Quiet (`-q`, as `cargo xtask bench` runs it): no tick to wake for,
        // even once the first tick is long past (a spin here once cost the
        // load generator a third of a core).
        assert_eq!(progress_wait(false, false, Duration::ZERO), None);
        assert_eq!(progress_wait(false, true, second), None);
        // Progress lines: sleep to the next one.
        assert_eq!(progress_wait(true, false, second), Some(second));
        // Held connections opening: look every 5 ms, never past the tick.
        assert_eq!(
            progress_wait(true, true, second),
            Some(Duration::from_millis(5))
        );
        assert_eq!(
            progress_wait(true, true, Duration::from_millis(2)),
            Some(Duration::from_millis(2))
        );
    }

    #[test]
    fn work_is_shared_among_threads_without_losing_any() {
        let options = BenchOptions {
            connections: 10,
            threads: 3,
            stop: Stop::Requests(1_000),
            rate: Some(300.0),
            ..BenchOptions::default()
        };
        let shares = plans("127.0.0.1:1".parse().unwrap(), &options, None, None);
        assert_eq!(shares.len(), 3);
        assert_eq!(shares.iter().map(|p| p.connections).sum::<usize>(), 10);
        assert_eq!(shares.iter().map(|p| p.quota.unwrap()).sum::<u64>(), 1_000);
        assert!(shares.iter().all(|p| p.rate == Some(100.0)));
        // More threads than connections: the idle ones are not started.
        let options = BenchOptions {
            connections: 2,
            threads: 4,
            ..BenchOptions::default()
        };
        assert_eq!(
            plans("127.0.0.1:1".parse().unwrap(), &options, None, None).len(),
            2
        );
        // Blocking clients: a thread per connection, whatever `threads` says.
        let options = BenchOptions {
            connections: 5,
            blocking: true,
            stop: Stop::Requests(12),
            ..BenchOptions::default()
        };
        let shares = plans("127.0.0.1:1".parse().unwrap(), &options, None, None);
        assert_eq!(shares.len(), 5);
        assert!(shares.iter().all(|p| p.connections == 1));
        assert_eq!(shares.iter().map(|p| p.quota.unwrap()).sum::<u64>(), 12);
    }

    #[test]
    fn options_that_make_no_run_are_refused() {
        let valid = BenchOptions::default();
        assert!(valid.validate().is_ok());
        for invalid in [
            BenchOptions {
                size: 0,
                ..valid.clone()
            },
            BenchOptions {
                depth: 0,
                ..valid.clone()
            },
            BenchOptions {
                transport: Transport::Udp,
                size: 70_000,
                ..valid.clone()
            },
            BenchOptions {
                transport: Transport::Udp,
                new_connection: true,
                ..valid.clone()
            },
            BenchOptions {
                rate: Some(0.0),
                ..valid.clone()
            },
            BenchOptions {
                hold: Some(10),
                new_connection: true,
                ..valid.clone()
            },
            BenchOptions {
                blocking: true,
                depth: 2,
                ..valid.clone()
            },
            BenchOptions {
                blocking: true,
                rate: Some(10.0),
                ..valid.clone()
            },
            BenchOptions {
                blocking: true,
                connections: 5_000,
                ..valid.clone()
            },
        ] {
            assert!(invalid.validate().is_err(), "{invalid:?}");
        }
    }
}
