//! The shout-client library against the shout-server library over real
//! loopback sockets: behaviour that only shows when both crates meet. One
//! test binary, one module per concern; the shared support is the
//! `shout_tests` library (`tests/lib.rs`).

mod addresses;
mod concurrency;
mod fuzz_corpus;
mod no_newline;
mod ping;
mod stream;
mod tcp;
mod tidy;
mod udp;
mod ws;
