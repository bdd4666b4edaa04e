//! `shout`: the command-line client. Parses arguments, runs one subcommand of
//! the `shout_client` and `shout_bench` libraries, and turns its outcome into one line on
//! standard error and an exit code.

#[cfg(target_os = "linux")]
mod link;

use clap::{Args, Parser, Subcommand};
use shout_bench::{BenchError, BenchOptions, BenchReport, Expect, Stop, bench};
use shout_client::{
    ClientError, Connector, DEFAULT_PORT, DEFAULT_TLS_PORT, DEFAULT_WS_PORT, DEFAULT_WSS_PORT,
    DelayOptions, ErrorCategory, Fingerprint, LineSession, LinesReport, PingOptions, QuicClient,
    Rate, Target, TargetError, TlsClient, TlsOptions, Transport, Trust, UdpClient, WsConnection,
    WsUrl, delay, ping, quic_stream, shout_stream, ws_connect, ws_stream,
};
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

const AFTER_HELP: &str = "\
Examples:
  shout tcp                            type lines, get them back in upper case (localhost:12000)
  shout tcp example.org:12000 < in.txt > out.txt
                                       stream a file of any size through the server
  printf 'one\\ntwo\\n' | shout udp [::1]:12000 --timeout 0.5 --retries 5
  shout ping localhost:12000           round trips over one TCP connection
  shout ping --new-connection -c 10 localhost:12000
                                       a handshake per probe: about twice the time
  shout ping --udp -i 200 localhost:12000
  shout bench -c 100 -d 16 --duration 10 localhost:12000
                                       100 connections, 16 requests in flight on each
  shout bench --udp -c 50 --rate 20000 --duration 10 localhost:12000
                                       50 UDP clients, 20,000 datagrams/s in all
  shout bench --expect echo -c 10 -d 4 --duration 5 localhost:7
                                       an echo server: each reply must be the request
  shout bench --hold 10000 localhost:12000
                                       10,000 idle connections, then one request each
  shout tcp --tls --ca cert.pem localhost:12443
                                       over TLS, trusting that certificate only
  shout tcp --tls --pin 3F:A0:…:9C localhost:12443
                                       over TLS, trusting the certificate with that
                                       SHA-256 (shoutd prints it at start)
  shout ping --tls --new-connection localhost:12443
                                       TCP handshake, TLS handshake and exchange apart
  shout ping --quic --new-connection localhost:12443
                                       a QUIC connection per probe, 0-RTT from the second
  shout ping -s 1400 --json -c 20 localhost:12000
                                       probes of 1,400 bytes, as one JSON document
  shout delay -n 10 -s 10000 --rate 20mbit --svg waterfall.svg 198.18.0.1:12000
                                       10 objects of 10 KB in the lecture's four ways,
                                       each total beside its prediction, and a waterfall

Exit status:
  0  success
  1  other error: input or output failed, lines not sent (too long), the
     --svg file not written
  2  usage error
  3  the host name does not resolve
  4  connection refused (TCP reset, or ICMP port unreachable for UDP)
  5  timeout: connecting, waiting for a reply, no UDP reply after every
     retry, or no ping probe answered (bench: no reply at all)
  6  the connection broke, the server broke the protocol (a plain TCP port
     that answers with TLS: use --tls), or the network failed otherwise
  7  TLS: the server's certificate is not trusted, or the handshake failed

Logging: -v shows connections, retries and UDP replies that differ from the
uppercase, -vv every late UDP reply dropped;
RUST_LOG (e.g. RUST_LOG=debug) overrides both.";

const PING_AFTER_HELP: &str = "\
Examples:
  shout ping localhost:12000           round trips over one TCP connection
  shout ping --tls --new-connection localhost:12443
                                       TCP handshake, TLS handshake and exchange apart
  shout ping --quic --new-connection -c 3 localhost:12443
                                       a QUIC connection per probe; from the second on,
                                       the probe goes in the first flight (0-RTT). Over
                                       a 20 ms link (shout link), a line reads:
    17 bytes from 198.18.0.1:12443: seq=2 connect=21.318 ms rtt=21.375 ms time=21.375 ms 0rtt=yes
                                       connect= ends with the handshake; the answer
                                       came with it, so time= is rtt=, not their sum
                                       (with --no-0rtt, about 42 ms over a 20 ms link)
  shout ping --quic --new-connection --no-0rtt -c 3 localhost:12443
                                       the same, each probe after its handshake (0rtt=no)";

/// How a server is named; in a help attribute, since rustdoc would take the
/// brackets for a link. A HOST alone gets shoutd's port for the transport.
const TARGET_HELP: &str = "The server, as HOST:PORT, [IPV6]:PORT or HOST (port 12000; \
                           with --tls or --quic 12443, shoutd's TLS and QUIC port)";

/// [`TARGET_HELP`] for `shout udp`, which has one transport.
const UDP_TARGET_HELP: &str = "The server, as HOST:PORT, [IPV6]:PORT or HOST (port 12000)";

/// [`TARGET_HELP`] for the commands that also speak WebSocket.
const WS_TARGET_HELP: &str = "The server, as HOST:PORT, [IPV6]:PORT or HOST (port 12000; \
                              with --tls or --quic 12443, shoutd's TLS and QUIC port; \
                              with --ws 12080, and with --ws --tls 12444)";

/// A server as typed: its port, when the text has none, depends on the
/// transport the other flags choose, so it is set once they are known.
#[derive(Debug, Clone)]
struct TargetArg {
    target: Target,
    port_given: bool,
}

impl FromStr for TargetArg {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // A port typed is the same whatever the default; one left out is
        // the default, so two defaults tell the cases apart.
        let target = Target::parse_with_default_port(text, 0)?;
        let other = Target::parse_with_default_port(text, 1)?;
        Ok(Self {
            port_given: target.port() == other.port(),
            target,
        })
    }
}

impl TargetArg {
    /// Returns the target, with `default_port` when none was typed.
    fn with_default_port(&self, default_port: u16) -> Target {
        if self.port_given {
            self.target.clone()
        } else {
            Target::new(self.target.host(), default_port)
        }
    }
}

/// Talk to a shout server: send lines, get them back in upper case.
#[derive(Debug, Parser)]
#[command(name = "shout", version, after_help = AFTER_HELP)]
struct Cli {
    /// More messages on standard error: -v connections and retries, -vv also each late UDP reply dropped.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Errors only on standard error.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Seconds a connection's handshake may take, per address: TCP's, and
    /// TLS's, QUIC's or the WebSocket upgrade when used (udp has none).
    #[arg(long, global = true, value_name = "SECS", default_value = "5", value_parser = timeout,
          allow_negative_numbers = true)]
    connect_timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Over TCP. From a terminal: a prompt, one reply per line. From a pipe:
    /// streams all input, writes exactly its uppercase.
    ///
    /// Piped input of any size is sent while the reply is received, in
    /// constant memory; at the end of input the sending side is shut down and
    /// shout exits once the server has answered every byte. A server that
    /// closes before that is an error (status 6).
    Tcp(TcpArgs),
    /// Over WebSocket (ws:// or wss://, shoutd --ws's socket is at /ws):
    /// from a terminal, each line is a message and its reply is printed
    /// as it comes; from a pipe, the input goes as messages of at most
    /// 16 KiB (cut between characters) and the replies, written in order,
    /// are exactly its uppercase. Constant memory whatever the input.
    ///
    /// A wss:// server's certificate is checked as with tcp --tls (--ca,
    /// --pin, --servername, --insecure). A refused upgrade (an HTTP
    /// status instead of 101) is exit status 6, and so is a server that
    /// closes before its last reply.
    Ws(WsArgs),
    /// Over UDP: each input line is one datagram (without its newline); each
    /// reply is printed on its own line.
    ///
    /// A lost datagram is sent again after --timeout, up to --retries times; a
    /// late reply to an earlier line is recognised and dropped. A reply that
    /// differs from the line's uppercase is printed as it came (-v says that
    /// it differs). A line too long
    /// for one datagram (or whose reply would be) is skipped with a warning,
    /// the other lines are still sent, and the exit status is then 1.
    Udp(UdpArgs),
    /// Measures round trips, like ping: per probe a line, then a summary.
    ///
    /// Over TCP the handshake is timed apart from the request and reply:
    /// one connection for all probes costs about one round trip per probe,
    /// --new-connection about two. Over QUIC the handshake is one round
    /// trip, and with --new-connection a probe after the first resumes the
    /// session and goes in the first flight (0-RTT; docs/QUIC.md says why
    /// an uppercaser may take it). The exit status is 5 when no probe was
    /// answered.
    #[command(after_help = PING_AFTER_HELP)]
    Ping(PingArgs),
    /// Load generator: many connections, requests pipelined on each, every
    /// reply checked byte for byte, latency percentiles.
    ///
    /// Requests are lowercase ASCII of --size bytes, so each reply is known
    /// and checked: their uppercase, or with --expect echo the requests
    /// themselves, to measure an echo server. A progress line goes to standard error every second; the
    /// summary (replies/s, MiB/s, latency p50/p90/p99/p99.9/max, errors) to
    /// standard output, as JSON with --json. Exit status 1 when any reply
    /// was wrong or a connection failed; lost UDP datagrams are reported,
    /// not failures.
    ///
    /// Closed loop by default: each connection keeps --depth requests in
    /// flight. With --rate, requests are due on a fixed schedule whatever
    /// the server does, and latency runs from when each was due (as wrk2
    /// measures it), so a stalled server shows in the percentiles.
    Bench(BenchArgs),
    /// The lecture's response-time arithmetic, measured: N objects of L
    /// bytes fetched non-persistent (a connection per object), in parallel
    /// (k connections at a time), persistent (one request at a time) and
    /// pipelined (every request at once).
    ///
    /// First the round-trip time is measured (--probes small exchanges over
    /// one connection, their median), and the rate R, unless --rate gives
    /// it: the second half of one object of 1 MiB, echoed, over TCP; the
    /// fastest of three 64 KB datagrams over UDP. Each object's phases are
    /// timed apart: the name lookup, the TCP handshake, the TLS handshake,
    /// the request to the first byte of its answer, and the rest. Beside
    /// each way's total, the lecture's prediction from RTT and R, with its
    /// formula, and the ratio measured ÷ predicted; then which way won.
    /// docs/DELAY.md derives each formula and lists the JSON's fields.
    ///
    /// Over UDP each object is one datagram each way, sent again after
    /// --timeout up to --retries times; the resent are counted. -v names
    /// the addresses the name resolved to and the one that answered. The
    /// first failure ends the run, with the exit status of its cause.
    Delay(DelayArgs),
    /// Runs a server and a client joined by an emulated link: real delay,
    /// rate, loss and queue between two network namespaces (Linux, root).
    ///
    /// The TCP handshake, slow start and retransmissions happen in the real
    /// kernel stacks, across a link that takes its time (docs/LINK.md). The
    /// examples below show how a server and a client are named.
    #[cfg(target_os = "linux")]
    #[command(after_help = link::LINK_AFTER_HELP)]
    Link(link::LinkArgs),
}

/// TLS over TCP (`--tls`) or QUIC (`--quic`), and whom to trust.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("secure").args(["tls", "quic"]).multiple(false)))]
struct TlsArgs {
    /// Speak TLS over the TCP connection. The system's trusted roots check
    /// the server's certificate unless --ca, --pin or --insecure says
    /// otherwise.
    #[arg(long)]
    tls: bool,
    /// Speak QUIC (UDP, TLS 1.3 inside, ALPN "shout") instead of TCP.
    /// `tcp` sends its whole input on one stream, its FIN the end of input;
    /// `ping` and `delay` open a stream per probe or object; `bench` one
    /// per connection, or per request with --streams. The certificate is
    /// checked as with --tls (--ca, --pin, --servername, --insecure).
    /// shoutd's QUIC port is 12443.
    #[arg(long)]
    quic: bool,
    /// Trust only the certificates of this PEM file (a private CA, or the
    /// server's own certificate) instead of the system's roots. A server
    /// certificate that is one of them is trusted as itself, even marked
    /// CA:TRUE (as `openssl req -x509` makes it), once its name and dates
    /// are checked.
    #[arg(
        long,
        value_name = "FILE",
        requires = "secure",
        conflicts_with = "insecure"
    )]
    ca: Option<PathBuf>,
    /// Trust only the certificate with this SHA-256 fingerprint (AB:CD:…,
    /// as shoutd prints it for its generated certificate and `openssl x509
    /// -fingerprint -sha256 -noout -in cert.pem` for any; colons and case
    /// optional). Its name, dates and issuer are not checked, as with ssh's
    /// known hosts: the fingerprint names one certificate (--servername
    /// still sets the SNI). Another certificate is exit status 7, naming
    /// both fingerprints.
    #[arg(
        long,
        value_name = "SHA256",
        requires = "secure",
        conflicts_with_all = ["ca", "insecure"]
    )]
    pin: Option<Fingerprint>,
    /// The name sent as SNI and checked in the certificate (default: the
    /// host as typed; an IP address is checked as an IP address).
    #[arg(long, value_name = "NAME", requires = "secure")]
    servername: Option<String>,
    /// Accept any certificate: encrypted, but the server is not
    /// authenticated. Prints a warning.
    #[arg(long, requires = "secure")]
    insecure: bool,
}

impl TlsArgs {
    /// Returns shoutd's port for the transport: over WebSocket (`ws`)
    /// 12080, or 12444 with `--tls`; otherwise 12443 with `--tls` or
    /// `--quic`, else 12000.
    fn default_port(&self, ws: bool) -> u16 {
        match (ws, self.tls || self.quic) {
            (true, true) => DEFAULT_WSS_PORT,
            (true, false) => DEFAULT_WS_PORT,
            (false, true) => DEFAULT_TLS_PORT,
            (false, false) => DEFAULT_PORT,
        }
    }

    /// The TLS options, or `None` without `--tls` or `--quic`.
    fn options(&self) -> Option<TlsOptions> {
        if !self.tls && !self.quic {
            return None;
        }
        Some(trust_options(
            self.ca.as_ref(),
            self.pin,
            self.insecure,
            self.servername.as_ref(),
        ))
    }
}

/// The TLS options that --ca, --pin, --insecure and --servername give.
fn trust_options(
    ca: Option<&PathBuf>,
    pin: Option<Fingerprint>,
    insecure: bool,
    servername: Option<&String>,
) -> TlsOptions {
    {
        let trust = match (ca, pin, insecure) {
            (_, Some(pin), _) => Trust::Pin(pin),
            (Some(ca), None, _) => Trust::CaFile(ca.clone()),
            (None, None, true) => {
                log::warn!(
                    "--insecure: the server's certificate is not checked; anyone on the path can pose as the server"
                );
                Trust::Insecure
            }
            (None, None, false) => Trust::System,
        };
        TlsOptions {
            trust,
            server_name: servername.cloned(),
        }
    }
}

#[derive(Debug, Args)]
struct WsArgs {
    /// The socket's URL: ws://HOST:PORT/PATH or wss://HOST:PORT/PATH
    /// (default ports 80 and 443; shoutd serves ws on 12080 and wss on
    /// 12444, at /ws).
    #[arg(value_name = "URL", default_value = "ws://localhost:12080/ws")]
    url: WsUrl,
    /// For wss://: trust only the certificates of this PEM file, as with
    /// tcp --tls.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// For wss://: trust only the certificate with this SHA-256
    /// fingerprint, as with tcp --tls.
    #[arg(long, value_name = "SHA256", conflicts_with_all = ["ca", "insecure"])]
    pin: Option<Fingerprint>,
    /// For wss://: the name sent as SNI and checked in the certificate.
    #[arg(long, value_name = "NAME")]
    servername: Option<String>,
    /// For wss://: accept any certificate (a warning is printed).
    #[arg(long)]
    insecure: bool,
    /// Seconds to wait for the server at each step (the upgrade, each
    /// reply).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = timeout,
          allow_negative_numbers = true)]
    timeout: Duration,
}

impl WsArgs {
    /// Connects and upgrades, with TLS for wss://.
    fn connect(&self, connect_timeout: Option<Duration>) -> Result<WsConnection, Failure> {
        let target = self.url.target()?;
        let mut connector = Connector::resolve(&target, connect_timeout)?;
        if self.url.is_secure() {
            let options = trust_options(
                self.ca.as_ref(),
                self.pin,
                self.insecure,
                self.servername.as_ref(),
            );
            connector = connector.with_tls(TlsClient::new(&options, &target)?);
        } else if self.ca.is_some() || self.pin.is_some() || self.insecure {
            log::warn!(
                "{} is not wss://: --ca, --pin and --insecure do nothing",
                self.url
            );
        }
        Ok(ws_connect(&self.url, &connector, Some(self.timeout))?)
    }
}

#[derive(Debug, Args)]
struct TcpArgs {
    #[arg(value_name = "HOST:PORT", default_value = "localhost", help = TARGET_HELP)]
    target: TargetArg,
    #[command(flatten)]
    tls: TlsArgs,
    /// Seconds to wait for a reply (interactive), or for the rest of the
    /// reply once all input is sent (piped).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = timeout,
          allow_negative_numbers = true)]
    timeout: Duration,
}

impl TcpArgs {
    /// Returns the server, with the port of the transport when none was typed.
    fn target(&self) -> Target {
        self.target.with_default_port(self.tls.default_port(false))
    }
}

#[derive(Debug, Args)]
struct UdpArgs {
    #[arg(value_name = "HOST:PORT", default_value = "localhost", help = UDP_TARGET_HELP)]
    target: TargetArg,
    /// Seconds to wait for each reply before sending again.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = timeout,
          allow_negative_numbers = true)]
    timeout: Duration,
    /// How many times to send a line again when no reply comes.
    #[arg(long, value_name = "N", default_value_t = 3)]
    retries: u32,
}

impl UdpArgs {
    /// Returns the server, with port 12000 when none was typed.
    fn target(&self) -> Target {
        self.target.with_default_port(DEFAULT_PORT)
    }
}

#[derive(Debug, Args)]
struct PingArgs {
    #[arg(value_name = "HOST:PORT", help = WS_TARGET_HELP)]
    target: TargetArg,
    /// Probe with UDP datagrams instead of over a TCP connection.
    #[arg(long, conflicts_with_all = ["new_connection", "tls", "quic"])]
    udp: bool,
    /// Probe over WebSocket at ws://HOST:PORT/ws (with --tls, wss://):
    /// each probe one message; the TCP handshake, the TLS handshake and
    /// the upgrade are timed apart from the exchange.
    #[arg(long, conflicts_with_all = ["udp", "quic"])]
    ws: bool,
    /// How many probes to send.
    #[arg(short, long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// Milliseconds from one probe to the next.
    #[arg(short, long, value_name = "MS", default_value_t = 1000)]
    interval: u64,
    /// Seconds to wait for each reply.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = timeout,
          allow_negative_numbers = true)]
    timeout: Duration,
    /// Open a new TCP connection for every probe, to see the handshake's cost.
    /// With --quic, each probe after the first resumes the previous
    /// connection's session and goes in the first flight (0-RTT), its
    /// answer as early as the handshake's end: each line ends with
    /// 0rtt=yes, no, or rejected (the server refused the early data and
    /// the probe went again after the handshake).
    #[arg(long)]
    new_connection: bool,
    /// With --quic --new-connection: wait for each handshake before the
    /// probe, as without a session to resume, to compare with 0-RTT.
    #[arg(long = "no-0rtt", requires_all = ["quic", "new_connection"])]
    no_0rtt: bool,
    /// The probe's size in bytes (its answer is as long): the text
    /// `shout ping seq=N` cut or padded with dots, over TCP ending in a
    /// newline. Default: that text alone (17 bytes over TCP, 16 over UDP).
    #[arg(short, long, value_name = "BYTES", value_parser = at_least_one::<usize>)]
    size: Option<usize>,
    /// One JSON document instead of ping's lines: each probe as it comes
    /// (seq, answered, bytes, from, time_ms, rtt_ms, connect_ms, tls_ms,
    /// zero_rtt with --quic --new-connection, or error), then sent,
    /// received, loss_percent, the min/avg/max/mdev of time, rtt, connect
    /// and tls, and zero_rtt's counts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

impl PingArgs {
    /// Returns the server, with the port of the transport when none was typed.
    fn target(&self) -> Target {
        self.target
            .with_default_port(self.tls.default_port(self.ws))
    }
}

#[derive(Debug, Args)]
struct DelayArgs {
    #[arg(value_name = "HOST:PORT", help = TARGET_HELP)]
    target: TargetArg,
    /// Over UDP: no handshake, one datagram each way per object.
    #[arg(long, conflicts_with_all = ["tls", "quic"])]
    udp: bool,
    #[command(flatten)]
    tls: TlsArgs,
    /// N: how many objects each way fetches.
    #[arg(short = 'n', long, value_name = "N", default_value = "10",
          value_parser = at_least_one::<NonZeroU32>)]
    objects: NonZeroU32,
    /// L: the bytes of each object's request, and of its answer (over UDP
    /// at most 65507).
    #[arg(short, long, value_name = "BYTES", default_value = "10000",
          value_parser = at_least_one::<NonZeroUsize>)]
    size: NonZeroUsize,
    /// k: the connections at a time of the parallel way (browsers open 6
    /// per server).
    #[arg(short = 'k', long, value_name = "K", default_value = "6",
          value_parser = at_least_one::<NonZeroUsize>)]
    parallel: NonZeroUsize,
    /// The link's rate R, as tc writes it (20mbit, 500kbit, 1gbit);
    /// measured when not given.
    #[arg(long, value_name = "R")]
    rate: Option<Rate>,
    /// How many small exchanges measure the round-trip time.
    #[arg(long, value_name = "N", default_value = "5",
          value_parser = at_least_one::<NonZeroU32>)]
    probes: NonZeroU32,
    /// Seconds to wait for an answer or its next byte (default 10), or over
    /// UDP for each datagram's answer before sending it again (default 1).
    #[arg(long, value_name = "SECS", value_parser = timeout,
          allow_negative_numbers = true)]
    timeout: Option<Duration>,
    /// Over UDP, how many times a datagram is sent again.
    #[arg(long, value_name = "N", default_value_t = 3, requires = "udp")]
    retries: u32,
    /// The report as one JSON object (docs/DELAY.md lists its fields).
    #[arg(long)]
    json: bool,
    /// Also write the waterfall to FILE as SVG: one bar per object,
    /// coloured by phase, the four ways one under another.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

impl DelayArgs {
    /// Returns the server, with the port of the transport when none was typed.
    fn target(&self) -> Target {
        self.target.with_default_port(self.tls.default_port(false))
    }

    fn options(&self, connect_timeout: Duration) -> DelayOptions {
        let transport = if self.udp {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let default_timeout = match transport {
            Transport::Tcp => Duration::from_secs(10),
            Transport::Udp => Duration::from_secs(1),
        };
        DelayOptions {
            transport,
            objects: self.objects,
            size: self.size,
            parallel: self.parallel,
            probes: self.probes,
            rate: self.rate,
            timeout: self.timeout.unwrap_or(default_timeout),
            connect_timeout: Some(connect_timeout),
            retries: self.retries,
            tls: self.tls.options(),
            quic: self.tls.quic,
            ..DelayOptions::default()
        }
    }
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[arg(value_name = "HOST:PORT", help = WS_TARGET_HELP)]
    target: TargetArg,
    /// UDP: each of --connections is a socket with --depth datagrams in flight.
    #[arg(long, conflicts_with_all = ["tls", "quic"])]
    udp: bool,
    /// WebSocket: each connection is upgraded at ws://HOST:PORT/ws (shoutd
    /// --ws), each request sent as one text message, its reply one
    /// message; the upgrade is counted and timed apart, as a handshake.
    #[arg(long, conflicts_with_all = ["udp", "tls", "quic", "new_connection", "blocking"])]
    ws: bool,
    /// Every connection speaks TLS (--tls) or is a QUIC connection
    /// (--quic); handshakes are counted and timed apart.
    #[command(flatten)]
    tls: TlsArgs,
    /// Over QUIC, a stream per request (--depth streams in flight per
    /// connection, up to the server's stream limit) instead of every
    /// request pipelined on one stream.
    #[arg(long, requires = "quic")]
    streams: bool,
    /// Connections (or UDP sockets) at once.
    #[arg(short, long, value_name = "C", default_value_t = 1)]
    connections: usize,
    /// Requests in flight on each connection (pipelining); with --rate, the
    /// most in flight.
    #[arg(short, long, value_name = "D", default_value_t = 1)]
    depth: usize,
    /// Bytes per request (and per reply).
    #[arg(short, long, value_name = "BYTES", default_value_t = 64)]
    size: usize,
    /// Seconds to measure for.
    #[arg(long, value_name = "SECS", value_parser = seconds, allow_negative_numbers = true,
          required_unless_present_any = ["requests", "hold"], conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Requests to measure (in all), then stop.
    #[arg(short = 'n', long, value_name = "N")]
    requests: Option<u64>,
    /// Seconds run before measuring: replies checked, not counted.
    #[arg(long, value_name = "SECS", value_parser = seconds_or_zero, default_value = "0",
          allow_negative_numbers = true)]
    warmup: Duration,
    /// Open loop: requests per second in all, on a fixed schedule. Above
    /// 1,000/s per thread the schedule is kept by polling without sleep,
    /// which keeps a core busy.
    #[arg(long, value_name = "R", conflicts_with = "quic")]
    rate: Option<f64>,
    /// A new TCP connection for every request: connect, send, half-close,
    /// read to the end, close. Latency includes the handshake.
    #[arg(long, conflicts_with_all = ["udp", "hold", "rate"])]
    new_connection: bool,
    /// The C10K test: open C idle connections, hold them --idle seconds,
    /// then send one request on each.
    #[arg(long, value_name = "C", conflicts_with_all = ["udp", "duration", "requests"])]
    hold: Option<usize>,
    /// Seconds held connections stay idle before they are used.
    #[arg(long, value_name = "SECS", value_parser = seconds_or_zero, default_value = "1",
          allow_negative_numbers = true, requires = "hold")]
    idle: Duration,
    /// Event-loop threads sharing the connections.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
    /// Blocking clients: a thread per connection, one request and one reply
    /// at a time (std's blocking socket), instead of event loops.
    #[arg(long, conflicts_with_all = ["udp", "hold", "rate", "new_connection", "threads", "tls", "quic"])]
    blocking: bool,
    /// Seconds without a reply after which a connection has failed, or a
    /// datagram is lost.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = timeout,
          allow_negative_numbers = true)]
    timeout: Duration,
    /// What the server answers, which every reply is checked against byte
    /// for byte: the request's uppercase (a shout server), or the request
    /// itself (an echo server: `ncat -l -k --exec /bin/cat`, socat).
    #[arg(long, value_name = "REPLY", value_enum, default_value_t = ExpectArg::Upper)]
    expect: ExpectArg,
    /// The summary as one JSON object (latencies in microseconds).
    #[arg(long)]
    json: bool,
}

/// `--expect`: what a reply must be.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExpectArg {
    /// The request's uppercase.
    Upper,
    /// The request itself.
    Echo,
}

impl From<ExpectArg> for Expect {
    fn from(expect: ExpectArg) -> Self {
        match expect {
            ExpectArg::Upper => Expect::Upper,
            ExpectArg::Echo => Expect::Echo,
        }
    }
}

impl BenchArgs {
    /// Returns the server, with the port of the transport when none was typed.
    fn target(&self) -> Target {
        self.target
            .with_default_port(self.tls.default_port(self.ws))
    }

    fn options(&self, connect_timeout: Duration) -> BenchOptions {
        BenchOptions {
            transport: if self.udp {
                Transport::Udp
            } else {
                Transport::Tcp
            },
            connections: self.connections,
            depth: self.depth,
            size: self.size,
            stop: match (self.requests, self.duration) {
                (Some(requests), _) => Stop::Requests(requests),
                (None, Some(duration)) => Stop::Duration(duration),
                (None, None) => Stop::Requests(1),
            },
            warmup: self.warmup,
            rate: self.rate,
            new_connection: self.new_connection,
            hold: self.hold,
            idle: self.idle,
            threads: self.threads,
            blocking: self.blocking,
            timeout: self.timeout,
            connect_timeout,
            tls: self.tls.options(),
            expect: self.expect.into(),
            quic: self.tls.quic,
            streams: self.streams,
            ws: self.ws,
        }
    }
}

/// Why the program failed, beyond a library error.
#[derive(Debug)]
enum Failure {
    Client(ClientError),
    Bench(BenchError),
    LinesSkipped(u64),
    NoProbeAnswered(u32),
    BenchErrors(u64, String),
    NoReply,
    Svg(PathBuf, io::Error),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Failure::Client(error)
    }
}

impl From<BenchError> for Failure {
    fn from(error: BenchError) -> Self {
        Failure::Bench(error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Client(error) => error.fmt(f),
            Failure::Bench(error) => error.fmt(f),
            Failure::LinesSkipped(1) => f.write_str("1 line was not sent (see above)"),
            Failure::LinesSkipped(count) => write!(f, "{count} lines were not sent (see above)"),
            Failure::NoProbeAnswered(sent) => write!(f, "none of the {sent} probes was answered"),
            Failure::BenchErrors(count, first) => {
                write!(
                    f,
                    "{count} error{} during the benchmark; the first: {first}",
                    if *count == 1 { "" } else { "s" }
                )
            }
            Failure::NoReply => f.write_str("no reply came during the benchmark"),
            Failure::Svg(path, error) => write!(f, "cannot write {}: {error}", path.display()),
        }
    }
}

impl Failure {
    /// The exit status documented in `--help`.
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Client(error) => category_code(error.category()),
            Failure::Bench(error) => category_code(error.category()),
            Failure::LinesSkipped(_) | Failure::BenchErrors(..) | Failure::Svg(..) => 1,
            Failure::NoProbeAnswered(_) | Failure::NoReply => 5,
        }
    }
}

/// `shout tcp --quic`: one QUIC connection, one stream, from a terminal
/// or a pipe alike: the input as it comes, the answer as it comes.
fn run_quic(args: &TcpArgs, connect_timeout: Option<Duration>, quiet: bool) -> Result<(), Failure> {
    let target = args.target();
    let connector = Connector::resolve(&target, connect_timeout)?;
    let tls = args.tls.options().unwrap_or_default();
    let client = QuicClient::new(&TlsClient::new(&tls, &target)?)?;
    let connection = client.connect(connector.addrs(), connect_timeout)?;
    if io::stdin().is_terminal() && !quiet {
        let peer = connection.peer();
        eprintln!("shout: connected to quic {peer}; type lines, end with Ctrl-D");
    }
    let totals = quic_stream(
        connection,
        io::stdin(),
        &mut io::stdout().lock(),
        Some(args.timeout),
    )?;
    log::info!("sent {} bytes, received {}", totals.sent, totals.received);
    Ok(())
}

/// The exit status of a library failure of class `category`.
fn category_code(category: ErrorCategory) -> u8 {
    match category {
        ErrorCategory::Local => 1,
        ErrorCategory::Resolve => 3,
        ErrorCategory::Refused => 4,
        ErrorCategory::Timeout => 5,
        ErrorCategory::Connection => 6,
        ErrorCategory::Tls => 7,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    #[cfg(target_os = "linux")]
    if let Command::Link(args) = cli.command {
        return link::run(args, cli.quiet);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // Output closed early (`shout tcp < big | head`): the reader has what
        // it wanted, as ripgrep and friends treat it.
        Err(Failure::Client(ClientError::Output(error)))
            if error.kind() == io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("shout: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let connect_timeout = Some(cli.connect_timeout);
    match cli.command {
        Command::Tcp(args) if args.tls.quic => run_quic(&args, connect_timeout, cli.quiet),
        Command::Tcp(args) => {
            let target = args.target();
            let mut connector = Connector::resolve(&target, connect_timeout)?;
            if let Some(tls) = args.tls.options() {
                connector = connector.with_tls(TlsClient::new(&tls, &target)?);
            }
            if io::stdin().is_terminal() {
                let mut session = LineSession::new(connector, Some(args.timeout));
                let connection = session.connect()?;
                let over = if connection.is_tls() { "tls" } else { "tcp" };
                let peer = connection.peer();
                if !cli.quiet {
                    eprintln!("shout: connected to {over} {peer}; type lines, end with Ctrl-D");
                }
                let report = session.run(
                    io::stdin().lock(),
                    &mut io::stdout().lock(),
                    Some(&mut io::stderr()),
                )?;
                check_skipped(report)
            } else {
                let totals = shout_stream(
                    connector.connect()?,
                    io::stdin(),
                    &mut io::stdout().lock(),
                    Some(args.timeout),
                )?;
                log::info!("sent {} bytes, received {}", totals.sent, totals.received);
                Ok(())
            }
        }
        Command::Ws(args) => {
            let connection = args.connect(connect_timeout)?;
            if io::stdin().is_terminal() && !cli.quiet {
                eprintln!(
                    "shout: connected to {} ({}); type lines, end with Ctrl-D",
                    args.url,
                    connection.peer()
                );
            }
            let totals = ws_stream(connection, io::stdin(), &mut io::stdout().lock())?;
            log::info!("sent {} bytes, received {}", totals.sent, totals.received);
            Ok(())
        }
        Command::Udp(args) => {
            let mut client = UdpClient::new(&args.target(), args.timeout, args.retries)?;
            let stdin = io::stdin();
            let mut stderr = io::stderr();
            let prompt = stdin.is_terminal().then_some(&mut stderr as &mut dyn Write);
            let report = client.run(stdin.lock(), &mut io::stdout().lock(), prompt)?;
            check_skipped(report)
        }
        Command::Ping(args) => {
            let options = PingOptions {
                transport: if args.udp {
                    Transport::Udp
                } else {
                    Transport::Tcp
                },
                count: args.count,
                interval: Duration::from_millis(args.interval),
                timeout: args.timeout,
                connect_timeout,
                new_connection: args.new_connection,
                tls: args.tls.options(),
                quic: args.tls.quic,
                zero_rtt: !args.no_0rtt,
                ws: args.ws,
                size: args.size,
                json: args.json,
            };
            let summary = ping(&args.target(), &options, &mut io::stdout().lock())?;
            if summary.received == 0 {
                return Err(Failure::NoProbeAnswered(summary.sent));
            }
            Ok(())
        }
        Command::Bench(args) => {
            let options = args.options(cli.connect_timeout);
            let mut stderr = io::stderr();
            let progress = (!cli.quiet).then_some(&mut stderr as &mut dyn Write);
            let report = bench(&args.target(), &options, progress)?;
            print_report(&report, args.json)?;
            check_bench(&report)
        }
        Command::Delay(args) => {
            let report = delay(&args.target(), &args.options(cli.connect_timeout))?;
            let mut stdout = io::stdout().lock();
            let written = if args.json {
                writeln!(stdout, "{}", report.to_json())
            } else {
                write!(stdout, "{report}")
            };
            written
                .and_then(|()| stdout.flush())
                .map_err(|error| Failure::Client(ClientError::Output(error)))?;
            if let Some(path) = &args.svg {
                std::fs::write(path, report.to_svg())
                    .map_err(|error| Failure::Svg(path.clone(), error))?;
            }
            Ok(())
        }
        #[cfg(target_os = "linux")]
        Command::Link(_) => unreachable!("main runs the link"),
    }
}

fn print_report(report: &BenchReport, json: bool) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    let written = if json {
        writeln!(stdout, "{}", report.to_json())
    } else {
        write!(stdout, "{report}")
    };
    written
        .and_then(|()| stdout.flush())
        .map_err(|error| Failure::Client(ClientError::Output(error)))
}

fn check_bench(report: &BenchReport) -> Result<(), Failure> {
    if report.errors() > 0 {
        let first = report.first_error().unwrap_or("(not recorded)").to_owned();
        return Err(Failure::BenchErrors(report.errors(), first));
    }
    if report.messages() == 0 && report.latency(1.0).is_zero() {
        return Err(Failure::NoReply);
    }
    Ok(())
}

fn check_skipped(report: LinesReport) -> Result<(), Failure> {
    match report.skipped {
        0 => Ok(()),
        skipped => Err(Failure::LinesSkipped(skipped)),
    }
}

/// Messages go to standard error as `shout: …`; `-v`/`-q` set the level and
/// `RUST_LOG`, when set, overrides it.
fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        (false, 2) => log::LevelFilter::Debug,
        (false, _) => log::LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    // rustls warns of what a failed handshake then returns as an error,
    // which shout words itself: its lines show from -v on. RUST_LOG, when
    // set, decides alone.
    if cli.verbose == 0 && std::env::var_os("RUST_LOG").is_none() {
        builder.filter_module("rustls", log::LevelFilter::Error);
    }
    builder
        .parse_default_env()
        .format(|buf, record| match record.level() {
            log::Level::Error => writeln!(buf, "shout: {}", record.args()),
            log::Level::Warn => writeln!(buf, "shout: warning: {}", record.args()),
            level => writeln!(
                buf,
                "shout: {}: {}",
                level.as_str().to_lowercase(),
                record.args()
            ),
        })
        .init();
}

/// Parses a whole number of at least 1, saying so when it is not.
fn at_least_one<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(_) => text
            .trim()
            .parse()
            .map_err(|_| format!("{text} is too large")),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// Parses a number of seconds that may be zero.
fn seconds_or_zero(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        Ok(secs) if secs < 0.0 => Err("must be 0 seconds or more".into()),
        _ => seconds(text),
    }
}

/// Parses a timeout: a positive number of seconds, as [`seconds`] does.
///
/// Its argument takes negative numbers as values, so that `--timeout -1`
/// gets this error rather than clap's advice to write `-- -1`.
fn timeout(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs <= 0.0 => Err("a timeout is a positive number of seconds".into()),
        _ => seconds(text),
    }
}

/// Parses a positive number of seconds, fractions allowed (`0.25`).
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err("must be more than 0 seconds".into());
    }
    // Deadlines are the clock plus this: past a year is a typo, and far
    // past it the clock's arithmetic overflows.
    if secs > 365.0 * 24.0 * 3600.0 {
        return Err(format!("{text} seconds is too long: at most a year"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text} seconds is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_past_a_year_are_refused_not_overflowed() {
        assert_eq!(seconds("0.25"), Ok(Duration::from_millis(250)));
        for bad in ["1e19", "31536001", "inf"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }

    /// Returns the port `shout ARGS` connects to.
    fn port_of(args: &[&str]) -> u16 {
        let cli = Cli::try_parse_from(std::iter::once("shout").chain(args.iter().copied()))
            .unwrap_or_else(|error| panic!("{args:?}: {error}"));
        let target = match cli.command {
            Command::Tcp(args) => args.target(),
            Command::Udp(args) => args.target(),
            Command::Ping(args) => args.target(),
            Command::Bench(args) => args.target(),
            Command::Delay(args) => args.target(),
            other => panic!("{other:?} has no HOST:PORT"),
        };
        target.port()
    }

    #[test]
    fn a_host_alone_gets_shoutds_port_for_the_transport() {
        for (args, port) in [
            (&["tcp"][..], 12000),
            (&["tcp", "--tls"], 12443),
            (&["tcp", "--quic", "example.org"], 12443),
            (&["tcp", "--tls", "[::1]"], 12443),
            (&["tcp", "--tls", "localhost:12000"], 12000),
            (&["udp", "localhost"], 12000),
            (&["ping", "localhost"], 12000),
            (&["ping", "--tls", "localhost"], 12443),
            (&["ping", "--quic", "localhost"], 12443),
            (&["ping", "--ws", "localhost"], 12080),
            (&["ping", "--ws", "--tls", "localhost"], 12444),
            (&["ping", "--ws", "localhost:9"], 9),
            (&["bench", "-n", "1", "localhost"], 12000),
            (&["bench", "-n", "1", "--tls", "localhost"], 12443),
            (&["bench", "-n", "1", "--quic", "localhost"], 12443),
            (&["bench", "-n", "1", "--ws", "localhost"], 12080),
            (&["delay", "localhost"], 12000),
            (&["delay", "--udp", "localhost"], 12000),
            (&["delay", "--tls", "localhost"], 12443),
            (&["delay", "--quic", "localhost"], 12443),
        ] {
            assert_eq!(port_of(args), port, "{args:?}");
        }
    }

    #[test]
    fn each_error_category_has_the_exit_status_in_the_help() {
        let resolve = ClientError::Resolve {
            host: "nowhere.test".into(),
            source: io::Error::other("Name or service not known"),
        };
        assert_eq!(
            Failure::Client(resolve).to_string(),
            "cannot resolve nowhere.test: Name or service not known"
        );
        let addr = "127.0.0.1:1".parse().unwrap();
        let cases = [
            (ClientError::Input(io::Error::other("x")), 1),
            (
                ClientError::Resolve {
                    host: "nowhere.test".into(),
                    source: io::Error::other("x"),
                },
                3,
            ),
            (ClientError::UdpRefused { addr }, 4),
            (
                ClientError::ReplyTimeout {
                    addr,
                    timeout: Duration::from_secs(1),
                },
                5,
            ),
            (ClientError::ClosedBeforeInputEnd { addr, sent: 0 }, 6),
            (
                ClientError::Tls {
                    addr,
                    reason: "the server's certificate is not trusted: unknown issuer".into(),
                },
                7,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(
                AFTER_HELP
                    .lines()
                    .filter(|line| line.starts_with(&format!("  {status}  ")))
                    .count(),
                1,
                "status {status} in the help"
            );
            assert_eq!(Failure::Client(error).exit_code(), status);
        }
    }
}
