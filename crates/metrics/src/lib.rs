//! A small Prometheus endpoint: `GET /metrics` over HTTP/1.1, answered from a
//! snapshot function the embedder gives.
//!
//! It is for a server that already keeps its own counters and wants them
//! scraped: the embedder maps its numbers to [`Metric`]s in a closure, and
//! [`MetricsEndpoint::start`] serves that closure's answer, in the text
//! exposition format (version 0.0.4, encoded by the `prometheus` crate), to
//! every scrape. It is not a metrics library: it keeps no counters, and it
//! is not a general HTTP server: one path, `GET` and `HEAD`, one request per
//! connection, then close.
//!
//! # Limits
//! The endpoint faces the same network as the server it reports on, so it
//! bounds what a client can make it do ([`Limits`]):
//! - at most `max_connections_per_source` not yet answered at once from one
//!   source (an IPv4 address or an IPv6 /64); one more from it is answered
//!   `503` and closed at once;
//! - at most `max_connections` at once, each on its own short-lived thread;
//!   when all are taken, a newcomer takes the place of a connection already
//!   answered, or else of the one that has waited longest for its request
//!   head, which is closed; if every one is being answered, the newcomer
//!   is answered `503`. So idle sockets cannot deny a scrape: a scraper
//!   sends its head at once and is answered at once;
//! - the request head (request line and headers) in at most
//!   `request_timeout` from accept, counted in total, not per read, so
//!   dripping one byte at a time does not extend it; past it, `408` and close;
//! - a head of at most `max_head_bytes`; past it, `431` and close;
//! - a head that can never be valid HTTP/1.x: `400` and close;
//! - another method than `GET` or `HEAD`: `405`; another path than
//!   `/metrics` (a query string is ignored): `404`.
//!
//! Why threads and not an event loop: a scrape every few seconds needs no
//! readiness machinery, blocking sockets with timeouts bound every wait, and
//! a handful of threads lets one slow client (up to `request_timeout`) delay
//! no other scrape. The thread count is bounded by `max_connections` (plus,
//! for a moment, the threads of connections just closed to make room).
//!
//! Architecture: depends on no crate of shout's; the arrow points from the
//! embedder (`shoutd`) to this crate.

#![deny(missing_docs)]

mod endpoint;
mod error;
mod http;
mod metric;

pub use endpoint::{Limits, MetricsEndpoint};
pub use error::MetricsError;
pub use metric::{CONTENT_TYPE, Metric, MetricKind, encode};
