//! Fuzz target: `shout_client::LineReader`, the client's line reader,
//! with fuzzer-chosen limits and buffer sizes, against the input split on
//! `\n` independently. The input layout and the properties checked are
//! documented on `oracles::check_line_reader`.

#![no_main]

// Each target uses one of the oracles.
#[allow(dead_code)]
#[path = "../oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::check_line_reader(data));
