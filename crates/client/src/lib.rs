//! The blocking shout client: talk to a shout server (or the lecture's
//! Python servers) over TCP and UDP, and measure round trips.
//!
//! shout's protocol is the textbook one: the client sends text, the server
//! answers with its uppercase. This crate is the client side with std's
//! blocking sockets, one thread at most per conversation:
//!
//! - [`Target`]: `HOST:PORT` as typed, resolved to every address by the
//!   system's resolver or any other [`Resolve`];
//!   [`Connector`] tries them in order until one accepts a [`Connection`].
//! - [`LineSession`]: TCP one line at a time, for a person at a keyboard;
//!   reads back exactly the reply's length, reconnects when the server closed.
//! - [`shout_stream`]: TCP piped mode, sending and receiving at once in
//!   constant memory, for inputs of any size.
//! - [`LineReader`]: lines from a keyboard or a pipe, each at most a set
//!   length, so that input without newlines cannot exhaust memory.
//! - [`UdpClient`]: one datagram per line, with timeout, retries and late
//!   replies told apart from the current one.
//! - [`TlsClient`]: TLS over any of the TCP modes, with the roots and the
//!   name to check from [`TlsOptions`]; set on the [`Connector`].
//! - [`QuicClient`]: QUIC, one connection driven from the calling
//!   thread; [`quic_stream`] is piped mode over one stream.
//! - [`WsUrl`], [`ws_connect`], [`ws_stream`]: WebSocket (`ws://`,
//!   `wss://`), a message at a time or piped in constant memory.
//! - [`ping`]: ping-like round-trip measurement over either transport.
//! - [`delay`]: the lecture's response-time arithmetic, measured: N
//!   objects fetched non-persistent, in parallel, persistent and
//!   pipelined, each phase timed and each total beside its prediction.
//!
//! Every failure is a [`ClientError`] with a one-line message and an
//! [`ErrorCategory`] that the `shout` binary maps to exit codes.
//!
//! It is *not* an async client, nor a server, nor a load generator: no
//! runtime and no event loop (the load generator is `shout-bench`). The protocol rules themselves live in
//! `shout-protocol`, socket construction in `shout-socket`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod connect;
mod delay;
mod error;
mod fingerprint;
mod lines;
mod ping;
mod quic;
mod session;
mod sniff;
mod stream;
mod target;
mod tls;
mod transport;
mod udp;
mod verify;
mod ws;

pub use connect::{Connection, Connector};
pub use delay::{
    DelayOptions, DelayReport, ObjectTiming, Phases, Prediction, Rate, RateError, RateSource, Way,
    WayReport, delay, delay_with,
};
pub use error::{ClientError, ErrorCategory};
pub use fingerprint::{Fingerprint, FingerprintError};
pub use lines::{DEFAULT_MAX_LINE, LineError, LineReader, LinesReport};
pub use ping::{PingOptions, PingSummary, RttStats, ZeroRttCounts, ping, probe_payload};
pub use quic::{QUIC_ALPN, QuicClient, QuicConnection, ZeroRtt, quic_stream};
pub use session::{Exchange, LineSession};
/// shoutd's ports, which a host typed without a port gets: 12000 for plain
/// TCP and UDP, the others by transport ([`Target::parse_with_default_port`]).
pub use shout_protocol::{DEFAULT_PORT, DEFAULT_TLS_PORT, DEFAULT_WS_PORT, DEFAULT_WSS_PORT};
pub use stream::{StreamTotals, shout_stream};
pub use target::{Resolve, SystemResolver, Target, TargetError};
pub use tls::{TlsClient, TlsOptions, Trust, tls_reason};
pub use transport::Transport;
pub use udp::{LATE_REPLY_WINDOW, LATE_REPLY_WINDOW_BYTES, UdpClient};
pub use ws::{WS_MESSAGE_SIZE, WS_WINDOW, WsConnection, WsUrl, ws_connect, ws_stream};
