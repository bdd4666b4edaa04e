//! `shoutd`: the shout server. Argument parsing, logging and signals over
//! the `shout_server` library, which does the real work.

mod activation;
mod metrics;
mod tls;

use clap::{ArgAction, Parser};
use shout_protocol::DEFAULT_PORT;
use shout_server::rustls::ServerConfig;
use shout_server::{
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_LINGER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_QUIC_RETRY_ABOVE, DEFAULT_QUIC_STREAMS_PER_CONNECTION, Handle,
    IpPrefix, ServerBuilder, ServerError, Uppercase, WebSocketConfig,
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::Write;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit status when a socket cannot be bound or a setting is invalid.
const EXIT_SETUP: u8 = 2;
/// Exit status when the event loop fails while serving.
const EXIT_RUNTIME: u8 = 1;

const EXAMPLES: &str = "\
Examples:
  shoutd                                  serve TCP and UDP on [::]:12000 (IPv4 too)
  shoutd --tcp 127.0.0.1:0                TCP only, on a free port (printed on stdout)
  shoutd --tcp [::]:7000 --udp [::]:7001  TCP and UDP on different ports
  shoutd --workers 2 --max-connections 50000
  shoutd --metrics 127.0.0.1:9190         also serve Prometheus metrics at /metrics
  shoutd --tls --cert chain.pem --key key.pem
                                          TLS on [::]:12443, the TLS port (plain
                                          TCP and UDP only if asked too)
  shoutd --tls 127.0.0.1:0                TLS with a self-signed certificate for
                                          localhost, 127.0.0.1 and ::1, written to
                                          a file named on stderr and removed at
                                          exit (--cert-out FILE: kept)
  shoutd --quic 127.0.0.1:12443           QUIC (UDP) with a self-signed certificate;
                                          --tls and --quic may share --cert/--key
  shoutd --ws                             WebSocket on [::]:12080: the page at
                                          http://HOST:12080/, the socket at /ws
  shoutd --wss 127.0.0.1:0                the same over TLS (--cert/--key, or a
                                          generated certificate): https and wss
  RUST_LOG=debug shoutd                   log every connection

On start-up shoutd prints one line per socket to stdout, e.g.
  listening tcp 127.0.0.1:40123
with the real port when 0 was asked (tcp, udp, tls, quic, ws, wss, metrics). Logs go to
stderr.

Under systemd socket activation (LISTEN_FDS) shoutd serves the sockets it
was given, TCP or UDP by their type, instead of the default addresses, and
says so: listening tcp [::]:12000 (socket activation, fd 3, shoutd), the
last word the unit's FileDescriptorName. With NOTIFY_SOCKET set it sends
READY=1 once serving and STOPPING=1 when a stop begins (Type=notify).
SIGINT or SIGTERM stops it gracefully: no new clients, answers to what was
received are sent (up to --drain-timeout), then a summary is logged. A second
signal exits at once. SIGHUP reloads the --cert and --key files: new
handshakes get the new certificate, open connections keep theirs, and a
file that does not load is logged and the old certificate kept.

Exit status: 0 after a graceful stop, 2 when a socket cannot be bound, a
setting is invalid, or a certificate or key does not load or match, 1 when
serving fails.";

/// Where `--tls` and `--quic` listen when given no address: 12443, the TLS
/// port ([`shout_protocol::DEFAULT_TLS_PORT`]), on TCP for one and UDP for
/// the other. clap takes these defaults as text; a test checks each port.
const DEFAULT_TLS_ADDR: &str = "[::]:12443";

/// Where `--ws` listens when given no address
/// ([`shout_protocol::DEFAULT_WS_PORT`]).
const DEFAULT_WS_ADDR: &str = "[::]:12080";

/// Where `--wss` listens when given no address
/// ([`shout_protocol::DEFAULT_WSS_PORT`]).
const DEFAULT_WSS_ADDR: &str = "[::]:12444";

/// Parses a listening address. shoutd resolves no names (it binds before
/// anything could answer for one), so the error says what to give instead.
fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        "shoutd takes an IP address and a port, not a host name (e.g. 127.0.0.1:0 or [::1]:0)"
            .to_string()
    })
}

/// The shout server: uppercases every line (every byte, really) it gets over
/// TCP and UDP, for thousands of clients at once.
#[derive(Debug, Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// Serve TCP on ADDR (repeatable). Naming any listener (--tcp, --udp,
    /// --tls, --quic, --ws or --wss) replaces the default, TCP and UDP on
    /// [::]:12000; --metrics does not.
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    tcp: Vec<SocketAddr>,

    /// Serve UDP on ADDR (repeatable). Like any listener named, replaces the
    /// default TCP and UDP on [::]:12000.
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    udp: Vec<SocketAddr>,

    /// Serve TLS on ADDR (repeatable; without ADDR [::]:12443, the TLS
    /// port). Without --cert/--key, a self-signed certificate is generated
    /// at start. Like any listener named, replaces the default TCP and UDP
    /// on [::]:12000.
    #[arg(long, value_name = "ADDR", value_parser = socket_addr,
          num_args = 0..=1, default_missing_value = DEFAULT_TLS_ADDR)]
    tls: Vec<SocketAddr>,

    /// Serve QUIC on UDP ADDR (repeatable; without ADDR [::]:12443, the
    /// TLS port, as HTTP/3 shares 443 with HTTPS; --tls on the same port
    /// is TCP, so both may use it): each stream a client opens is answered
    /// as a TCP connection is. ALPN "shout"; the certificate of
    /// --cert/--key, or the generated one. One worker serves QUIC. Like
    /// any listener named, replaces the default TCP and UDP on [::]:12000.
    #[arg(long, value_name = "ADDR", value_parser = socket_addr,
          num_args = 0..=1, default_missing_value = DEFAULT_TLS_ADDR)]
    quic: Vec<SocketAddr>,

    /// Streams one QUIC client may have open at once.
    #[arg(long, default_value_t = DEFAULT_QUIC_STREAMS_PER_CONNECTION, value_name = "N")]
    quic_streams: u32,

    /// QUIC handshakes in progress past which a new client must first
    /// prove its address with a Retry (0: every client).
    #[arg(long, default_value_t = DEFAULT_QUIC_RETRY_ABOVE, value_name = "N")]
    quic_retry_above: usize,

    /// Serve WebSocket on ADDR (repeatable; without ADDR [::]:12080): the
    /// page at GET /, the uppercaser at GET /ws, each message answered
    /// with one message. Like any listener named, replaces the default TCP
    /// and UDP on [::]:12000.
    #[arg(long, value_name = "ADDR", value_parser = socket_addr,
          num_args = 0..=1, default_missing_value = DEFAULT_WS_ADDR)]
    ws: Vec<SocketAddr>,

    /// Serve WebSocket over TLS on ADDR (repeatable; without ADDR
    /// [::]:12444): the page over https, the socket over wss, with the
    /// --tls certificate. Like any listener named, replaces the default TCP
    /// and UDP on [::]:12000.
    #[arg(long, value_name = "ADDR", value_parser = socket_addr,
          num_args = 0..=1, default_missing_value = DEFAULT_WSS_ADDR)]
    wss: Vec<SocketAddr>,

    /// Let pages from ORIGIN (e.g. https://example.org) open the
    /// WebSocket (repeatable). Without it, a browser may open it only from
    /// the server's own page; clients that send no Origin header (not
    /// browsers) are let in whatever this says.
    #[arg(long, value_name = "ORIGIN")]
    ws_origin: Vec<String>,

    /// Close a WebSocket whose message (all its fragments) passes BYTES
    /// with 1009.
    #[arg(long, default_value_t = shout_server::DEFAULT_MAX_MESSAGE, value_name = "BYTES")]
    ws_max_message: usize,

    /// The TLS certificate chain, PEM (with --key).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,

    /// The TLS private key, PEM: PKCS#8, PKCS#1 or SEC1 (with --cert).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,

    /// Where to write a generated certificate, kept at exit (default:
    /// $XDG_RUNTIME_DIR/shoutd-PID.pem, or the temporary directory, removed
    /// at exit but not after a SIGKILL).
    #[arg(long, value_name = "FILE", conflicts_with = "cert")]
    cert_out: Option<PathBuf>,

    /// Cut a TLS client that has not finished its handshake (or, with
    /// --proxy-protocol, sent its whole PROXY header; on --ws and --wss,
    /// its upgrade) this long after connecting.
    #[arg(long, default_value_t = DEFAULT_HANDSHAKE_TIMEOUT.as_secs_f64(), value_name = "SECS")]
    handshake_timeout: f64,

    /// Expect a PROXY protocol header (v1 or v2, as HAProxy's send-proxy
    /// sends) before anything else on the TCP and TLS listeners: the
    /// client address it carries is the one logged and limited.
    #[arg(long)]
    proxy_protocol: bool,

    /// Accept PROXY headers only from peers in CIDR (repeatable; with
    /// --proxy-protocol). Default: loopback only, 127.0.0.0/8 and ::1/128.
    #[arg(long, value_name = "CIDR", requires = "proxy_protocol")]
    proxy_from: Vec<IpPrefix>,

    /// Event-loop threads, each with its own sockets on the same port
    /// (SO_REUSEPORT). More than one helps only when one core is saturated.
    #[arg(long, default_value_t = 1, value_name = "N")]
    workers: usize,

    /// Open TCP connections allowed at once; beyond it, clients wait in the
    /// listen backlog until one closes.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    max_connections: usize,

    /// Open connections one IP (an IPv6 /64) may hold; past it, its new
    /// connections are closed at once (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "N")]
    max_connections_per_ip: usize,

    /// UDP replies per second one IP (an IPv6 /64) is sent, counted per
    /// worker (with N workers one source may get up to N times it); over
    /// it, datagrams get no reply (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "R")]
    udp_rate_per_ip: u32,

    /// UDP replies one IP may get at once above its rate (default: R).
    #[arg(long, value_name = "B")]
    udp_burst_per_ip: Option<u32>,

    /// Close connections idle this long (0: never).
    #[arg(long, default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs(), value_name = "SECS")]
    idle_timeout: u64,

    /// Once a connection's answer and end of stream are sent (at a stop,
    /// or after a WebSocket close), wait this long at most for the client
    /// to close its side, reading and discarding what it sends, before
    /// closing the socket (0: close at once, which resets unread input).
    #[arg(long, default_value_t = DEFAULT_LINGER_TIMEOUT.as_secs_f64(), value_name = "SECS")]
    linger_timeout: f64,

    /// On SIGINT/SIGTERM, wait this long at most for answers to be sent.
    #[arg(long, default_value_t = DEFAULT_DRAIN_TIMEOUT.as_secs_f64(), value_name = "SECS")]
    drain_timeout: f64,

    /// After the last event, poll without sleeping for up to MICROS before
    /// blocking: lower latency for a client that answers quickly, paid with
    /// a busy core meanwhile (0: off).
    #[arg(long, default_value_t = 0, value_name = "MICROS")]
    busy_poll: u64,

    /// Serve Prometheus metrics at http://ADDR/metrics (port 0: a free port).
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    metrics: Option<SocketAddr>,

    /// More logging: -v debug, -vv trace.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Less logging: -q warnings and errors only, -qq errors only.
    #[arg(short, long, action = ArgAction::Count)]
    quiet: u8,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _generated_certificate = tls::RemoveGenerated;
    init_logging(args.verbose, args.quiet);
    let passed = match activation::PassedSockets::take() {
        Ok(passed) => passed,
        Err(error) => {
            eprintln!("shoutd: socket activation: {error}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    let handle = match start(&args, passed) {
        Ok(started) => started,
        Err(error) => {
            eprintln!("shoutd: {error}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    let (server, handle, notes, reload) = handle;
    let metrics = match args
        .metrics
        .map(|addr| metrics::serve(addr, handle.clone()))
        .transpose()
    {
        Ok(metrics) => metrics,
        Err(error) => {
            eprintln!("shoutd: {error}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    // Handlers first, then the `listening` lines: a supervisor may send
    // SIGTERM the moment it reads them, and must get a graceful stop.
    if let Err(error) = handle_signals(handle.clone(), reload) {
        eprintln!("shoutd: cannot install signal handlers: {error}");
        return ExitCode::from(EXIT_SETUP);
    }
    let metrics_addr = metrics.as_ref().map(|m| m.local_addr());
    if let Err(error) = announce(&handle, &notes, metrics_addr, args.ws.len()) {
        eprintln!("shoutd: {}", ServerError::EventLoop(error));
        return ExitCode::from(EXIT_SETUP);
    }
    activation::notify_ready();
    match server.run() {
        Ok(stats) => {
            log::info!("stopped: {stats}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("shoutd: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

type UppercaseServer = shout_server::Server<Uppercase, Uppercase>;

/// What `start` gives `main`: the server to run, its handle, the notes of
/// passed sockets, and what SIGHUP reloads.
type Started = (UppercaseServer, Handle, activation::Notes, tls::Reload);

/// Binds every socket; `main` announces them once signals are handled.
/// Sockets passed by socket activation replace the default addresses.
fn start(args: &Args, passed: activation::PassedSockets) -> Result<Started, StartError> {
    let drain_timeout = Duration::try_from_secs_f64(args.drain_timeout).map_err(|_| {
        ServerError::InvalidSetting("--drain-timeout must be a number of seconds >= 0")
    })?;
    let linger_timeout = Duration::try_from_secs_f64(args.linger_timeout).map_err(|_| {
        ServerError::InvalidSetting("--linger-timeout must be a number of seconds >= 0")
    })?;
    let handshake_timeout = Duration::try_from_secs_f64(args.handshake_timeout)
        .ok()
        .filter(|timeout| !timeout.is_zero())
        .ok_or(ServerError::InvalidSetting(
            "--handshake-timeout must be a number of seconds > 0",
        ))?;
    let asked_none = args.tcp.is_empty()
        && args.udp.is_empty()
        && args.tls.is_empty()
        && args.quic.is_empty()
        && args.ws.is_empty()
        && args.wss.is_empty();
    let (tcp, udp) = if asked_none && passed.is_empty() {
        let default = SocketAddr::from((Ipv6Addr::UNSPECIFIED, DEFAULT_PORT));
        (vec![default], vec![default])
    } else {
        (args.tcp.clone(), args.udp.clone())
    };
    let mut builder = ServerBuilder::new(Uppercase, Uppercase)
        .workers(args.workers)
        .max_connections(args.max_connections)
        .max_connections_per_source(args.max_connections_per_ip)
        .udp_rate_per_source(args.udp_rate_per_ip)
        .idle_timeout((args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout)))
        .drain_timeout(drain_timeout)
        .linger_timeout(linger_timeout)
        .busy_poll(Duration::from_micros(args.busy_poll))
        .handshake_timeout(handshake_timeout)
        // Named after the binary, as operators see it in `ps` and `top`.
        .worker_thread_name("shoutd-worker");
    let mut reload = tls::Reload::Nothing("no --tls, --quic or --wss");
    let websocket = websocket_config(args);
    for &addr in &args.ws {
        builder = builder.websocket(addr, websocket.clone());
    }
    if !args.tls.is_empty() || !args.quic.is_empty() || !args.wss.is_empty() {
        let config;
        (config, reload) = tls_config(args).map_err(StartError::Tls)?;
        for &addr in &args.tls {
            builder = builder.tls(addr, Arc::clone(&config));
        }
        for &addr in &args.quic {
            builder = builder.quic(addr, Arc::clone(&config));
        }
        builder = builder
            .quic_streams_per_connection(args.quic_streams)
            .quic_retry_above(args.quic_retry_above);
        for &addr in &args.wss {
            builder = builder.websocket_tls(addr, Arc::clone(&config), websocket.clone());
        }
    }
    if args.proxy_protocol {
        let trusted = if args.proxy_from.is_empty() {
            IpPrefix::loopback()
        } else {
            args.proxy_from.clone()
        };
        builder = builder.proxy_protocol(trusted);
    }
    if let Some(burst) = args.udp_burst_per_ip {
        builder = builder.udp_burst_per_source(burst);
    }
    if args.workers > 1 && (!tcp.is_empty() || !args.tls.is_empty()) {
        note_unmigrated_handover(args.workers);
    }
    for addr in tcp {
        builder = builder.tcp(addr);
    }
    for addr in udp {
        builder = builder.udp(addr);
    }
    let (builder, notes) = passed.add_to(builder);
    let server = builder.build()?;
    let handle = server.handle();
    log::info!(
        "serving with {} worker(s), at most {} connections, idle timeout {}",
        args.workers,
        args.max_connections,
        if args.idle_timeout > 0 {
            format!("{} s", args.idle_timeout)
        } else {
            "off".into()
        }
    );
    Ok((server, handle, notes, reload))
}

/// The per-namespace setting that moves a closing listener's queued
/// connections to another listener of its `SO_REUSEPORT` group.
const MIGRATE_REQ: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

/// Logs, when TCP listeners share their port (`--workers` > 1) and
/// `net.ipv4.tcp_migrate_req` reads 0, that a hand-over to another shoutd
/// on the port resets the connections queued on this one when it stops.
/// Says nothing where the setting is 1 or does not exist (not Linux, or
/// Linux < 5.14).
fn note_unmigrated_handover(workers: usize) {
    if std::fs::read_to_string(MIGRATE_REQ).is_ok_and(|value| value.trim() == "0") {
        log::info!(
            "{workers} workers share each TCP port (SO_REUSEPORT): when a new shoutd takes \
             over the port and this one stops, connections still queued here are reset, \
             unless net.ipv4.tcp_migrate_req = 1 (see DEPLOYMENT.md)"
        );
    }
}

/// Why the server could not start: a socket or setting, or TLS's
/// certificate (the line names the file).
#[derive(Debug)]
enum StartError {
    Server(ServerError),
    Tls(String),
}

impl From<ServerError> for StartError {
    fn from(error: ServerError) -> Self {
        Self::Server(error)
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Server(error) => error.fmt(f),
            Self::Tls(message) => write!(f, "tls: {message}"),
        }
    }
}

/// Loads `--cert`/`--key`, or generates a self-signed certificate and says
/// on stderr where it is and what its fingerprint is.
fn tls_config(args: &Args) -> Result<(Arc<ServerConfig>, tls::Reload), String> {
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        return tls::load(cert, key);
    }
    let generated = tls::self_signed(args.cert_out.as_deref())?;
    eprintln!(
        "shoutd: self-signed certificate for localhost, 127.0.0.1 and ::1 in {} (SHA-256 {})",
        generated.path.display(),
        generated.fingerprint
    );
    let reload = tls::Reload::Nothing("the certificate is generated, not read from --cert/--key");
    Ok((generated.config, reload))
}

/// The page served at `/` on the WebSocket listeners: the lecture's client
/// for a browser, self-contained (nothing fetched from elsewhere).
const PAGE: &[u8] = include_bytes!("page.html");

/// What the WebSocket listeners serve besides the uppercaser.
fn websocket_config(args: &Args) -> WebSocketConfig {
    let mut config = WebSocketConfig::new()
        .page(PAGE)
        .max_message_size(args.ws_max_message);
    for origin in &args.ws_origin {
        config = config.allow_origin(origin.trim_end_matches('/'));
    }
    config
}

/// The start-up contract: one `listening PROTO ADDR` line per socket on
/// stdout, flushed, once every socket is bound; a passed socket's line
/// ends with a note in parentheses, and the metrics endpoint's comes last.
fn announce(
    handle: &Handle,
    notes: &activation::Notes,
    metrics: Option<SocketAddr>,
    plain_ws: usize,
) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let (ws, wss) = handle.ws_addrs().split_at(plain_ws);
    for (proto, addrs) in [
        ("tcp", handle.tcp_addrs()),
        ("udp", handle.udp_addrs()),
        ("tls", handle.tls_addrs()),
        ("quic", handle.quic_addrs()),
        ("ws", ws),
        ("wss", wss),
    ] {
        for (index, addr) in addrs.iter().enumerate() {
            let note = notes.suffix(proto, index, addrs.len());
            writeln!(stdout, "listening {proto} {addr}{note}")?;
        }
    }
    if let Some(addr) = metrics {
        writeln!(stdout, "listening metrics {addr}")?;
    }
    stdout.flush()
}

/// First SIGINT/SIGTERM: graceful stop. Second: exit at once. SIGHUP:
/// reload the certificate files, as daemons under systemd do on
/// `systemctl reload`.
fn handle_signals(handle: Handle, reload: tls::Reload) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("shoutd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    reload.reload();
                    continue;
                }
                if handle.is_shutting_down() {
                    log::warn!("second signal ({signal}): exiting without finishing the drain");
                    tls::remove_generated();
                    std::process::exit(i32::from(EXIT_RUNTIME));
                }
                // Logged before the stop is requested: once it is, the
                // workers may finish and `main` log its summary at once.
                // A second signal sent on reading this line is still the
                // second: this thread takes it only after this turn, when
                // the stop is requested.
                log::info!("signal {signal}: stopping gracefully");
                activation::notify_stopping();
                handle.shutdown();
            }
        })?;
    Ok(())
}

fn init_logging(verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp_millis()
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_quic_without_an_address_take_12443() {
        let args = Args::try_parse_from(["shoutd", "--tls", "--quic"]).unwrap();
        let default: SocketAddr = "[::]:12443".parse().unwrap();
        assert_eq!(args.tls, [default]);
        assert_eq!(args.quic, [default]);
        let args = Args::try_parse_from(["shoutd", "--tls", "127.0.0.1:0", "--tls"]).unwrap();
        assert_eq!(args.tls, ["127.0.0.1:0".parse().unwrap(), default]);
    }

    #[test]
    fn the_default_listener_addresses_are_the_protocols_ports() {
        let args = Args::try_parse_from(["shoutd", "--tls", "--quic", "--ws", "--wss"]).unwrap();
        let port = |addrs: &[SocketAddr]| addrs[0].port();
        assert_eq!(port(&args.tls), shout_protocol::DEFAULT_TLS_PORT);
        assert_eq!(port(&args.quic), shout_protocol::DEFAULT_TLS_PORT);
        assert_eq!(port(&args.ws), shout_protocol::DEFAULT_WS_PORT);
        assert_eq!(port(&args.wss), shout_protocol::DEFAULT_WSS_PORT);
    }
}
