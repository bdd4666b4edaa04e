//! Behaviour of the `shout` client through its binary and its library, on
//! real loopback sockets: one test binary, one module per area.

mod bench;
mod bench_tls;
mod cli;
mod delay;
mod errors;
mod memory;
mod ping;
mod quic;
mod support;
mod tcp;
mod tls;
mod tls_trust;
mod udp;
mod wrong_port;
mod ws;
