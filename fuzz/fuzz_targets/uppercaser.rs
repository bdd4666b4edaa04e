//! Fuzz target: `shout_protocol::Uppercaser`, the streaming transform, cut
//! at fuzzer-chosen places, against the standard library's uppercase of the
//! whole. The input layout and the properties checked are documented on
//! `oracles::check_uppercaser`.

#![no_main]

// Each target uses one of the oracles.
#[allow(dead_code)]
#[path = "../oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::check_uppercaser(data));
