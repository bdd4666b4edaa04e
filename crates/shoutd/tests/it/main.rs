//! The `shoutd` binary as a process: its command line, its start-up
//! contract, its signals, and its limits under load, over real loopback
//! sockets. One test binary, one module per concern.

mod activation;
mod binary;
mod busy_poll;
mod load;
mod metrics;
mod proxy;
mod quic;
mod reload;
mod signals;
mod support;
mod tls;
mod workers;
mod ws;
