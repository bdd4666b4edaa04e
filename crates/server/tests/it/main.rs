//! The server library's behaviour through its public API, over real
//! loopback sockets; the `shoutd` binary has its own tests, in
//! `crates/shoutd`. One test binary, one module per concern.

mod abuse;
mod bad_input;
mod datagram_sender;
mod examples;
mod handle;
mod limits;
mod proxy;
#[cfg(feature = "quic")]
mod quic;
mod reflection;
mod review;
mod services;
mod sources;
mod support;
mod tcp;
mod timers;
mod tls;
mod udp;
#[cfg(feature = "ws")]
mod ws;
