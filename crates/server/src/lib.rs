//! shout's server: a `mio` event loop that serves thousands of TCP
//! connections and UDP datagrams on one thread per worker, with bounded
//! memory, limits and a graceful shutdown.
//!
//! The loop is not tied to uppercasing. It runs any [`StreamService`] (TCP:
//! a session per connection, fed bytes and events through a
//! [`ConnectionContext`]: greet, answer, close, half-close, timers, flow
//! control) and any [`DatagramService`] (UDP: one datagram in, at most one
//! out, the fast path); [`Uppercase`] is shout's own. A [`ConnectionSender`]
//! writes to any connection and a [`DatagramSender`] sends datagrams, from
//! any thread; the [`Handle`] reaches counters and the stop from callbacks
//! and from the embedder's threads; and a panicking service costs one
//! connection, not the process. docs/EMBEDDING.md is the contract of every callback;
//! `examples/` has a chat room, a key-value store, a publish/subscribe
//! server with heartbeats and ROT13.
//!
//! ```no_run
//! use shout_server::{ServerBuilder, Uppercase};
//!
//! let server = ServerBuilder::new(Uppercase, Uppercase)
//!     .tcp("[::]:12000".parse().unwrap())
//!     .udp("[::]:12000".parse().unwrap())
//!     .build()?;
//! let handle = server.handle(); // addresses, counters, shutdown()
//! server.run()?; // on this thread, until handle.shutdown()
//! # Ok::<(), shout_server::ServerError>(())
//! ```
//!
//! This crate is not for parsing command lines or installing signal
//! handlers: the `shoutd` binary (`crates/shoutd`) does that over this library.
//! How the loop works is told in `worker/mod.rs` and its modules, and in
//! docs/ARCHITECTURE.md.
//!
//! # Cargo features
//! - `tls` (off by default): TLS listeners ([`ServerBuilder::tls`]) on
//!   rustls with ring, and [`server_config_from_pem`]. Without it the crate
//!   builds neither rustls nor ring; the `tls_*` counters stay at zero.
//!
//! # Portability
//! Linux first: the loop relies on edge-triggered readiness (epoll, or kqueue
//! through mio) and on `SO_REUSEPORT` for several workers.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod connection;
mod datagram_sender;
mod handle;
mod id;
mod idle;
mod proxy;
#[cfg(feature = "quic")]
mod quic;
mod reflection;
mod sender;
mod server;
mod service;
mod sources;
mod stats;
mod timer;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
mod tls_config;
mod wake;
mod worker;
#[cfg(feature = "ws")]
mod ws;

/// The code in docs/EMBEDDING.md, compiled and run as doctests so that
/// the contract's examples stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/EMBEDDING.md")]
struct EmbeddingDoc;

pub use datagram_sender::{DatagramSendError, DatagramSender};
pub use handle::Handle;
pub use proxy::{IpPrefix, MAX_PROXY_HEADER};
#[cfg(feature = "quic")]
pub use quic::{DEFAULT_QUIC_STREAMS_PER_CONNECTION, QUIC_ALPN};
/// The TLS library the server runs on, for building its `ServerConfig`.
#[cfg(feature = "tls")]
pub use rustls;
pub use sender::{Broadcast, ConnectionSender, SendError};
#[cfg(feature = "quic")]
pub use server::DEFAULT_QUIC_RETRY_ABOVE;
pub use server::{
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_LINGER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PENDING_OUTPUT, DEFAULT_WORKER_THREAD_NAME, Server,
    ServerBuilder, ServerError,
};
pub use service::{
    CloseCause, ConnectionContext, ConnectionId, ConnectionInfo, DatagramReply, DatagramService,
    EndReason, NoService, StreamService, Timer, Transport, Uppercase,
};
pub use stats::{COUNTERS, Counter, CounterGroup, Exposure, Stats, TURN_BUCKETS};
#[cfg(feature = "tls")]
pub use tls_config::{PemError, certified_key_from_pem, crypto_provider, server_config_from_pem};
#[cfg(feature = "ws")]
pub use ws::{DEFAULT_MAX_MESSAGE, MAX_REQUEST_HEAD, WebSocketConfig};
