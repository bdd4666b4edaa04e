//! Test support shared by every shout test suite and by `cargo xtask e2e`:
//! bounded waits, the machine-wide lock of heavy tests, server processes
//! started on port 0 whose `listening PROTO ADDR` lines are read back, and
//! PROXY protocol headers.
//!
//! It is for tests only, and knows nothing of shout's libraries: a server
//! process is any program that keeps shoutd's start-up contract, so the same
//! code starts `shoutd`, a reference server or a lecture peer.
//!
//! ```no_run
//! use shout_testkit::{ServerProcess, wait_until};
//! use std::process::Command;
//!
//! let mut command = Command::new("target/release/shoutd");
//! command.args(["--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
//! let shoutd = ServerProcess::start("shoutd", &mut command, 2).unwrap();
//! let tcp = shoutd.listening().tcp().unwrap();
//! wait_until("a log line", || !shoutd.stderr_so_far().is_empty());
//! # let _ = tcp;
//! ```
//!
//! Every function here panics with a message on failure, as test code should,
//! except those that return a `Result` for the e2e runner, which reports
//! failures instead of panicking.

#![deny(missing_docs)]

mod announce;
mod limits;
mod lock;
mod port;
mod process;
mod proxy;
mod stream;
mod text;

pub use announce::{Listening, ParseListeningError};
pub use limits::{ensure_descriptor_limit, small_datagrams_that_fit};
pub use lock::{HeavyTest, heavy_test};
pub use port::free_port;
pub use process::{ServerProcess, join_within};
pub use proxy::proxy_v2_header;
pub use stream::{
    PUSHBACK_QUIET, assert_closed_unanswered, connect, expect_periodic, read_exactly, read_to_end,
    round_trip, send_periodic, send_until_pushed_back, set_linger_zero, trickle_in_background,
};
pub use text::{garbage, reference_uppercase};

use std::time::{Duration, Instant};

/// The longest any single wait in a test may take before it fails: a reply,
/// a connection, a condition polled by [`wait_until`].
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `condition` every few milliseconds until it holds.
///
/// # Panics
/// After [`TIMEOUT`], naming `what` was awaited.
pub fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    wait_until_within(TIMEOUT, what, condition);
}

/// Polls `condition` every few milliseconds until it holds, for at most
/// `timeout`.
///
/// # Panics
/// After `timeout`, naming `what` was awaited.
pub fn wait_until_within(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
