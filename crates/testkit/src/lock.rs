//! The machine-wide lock that lets one heavy test run at a time.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long a heavy test may wait for another to finish.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// Held by a test that moves hundreds of MiB or holds thousands of sockets;
/// see [`heavy_test`].
#[derive(Debug)]
pub struct HeavyTest {
    _lock: File,
}

/// Waits for the machine-wide lock of heavy tests, so that at most one runs
/// at a time, whether tests run as threads of one process (`cargo test`) or
/// as a process each (`cargo nextest`). On a two-core runner they would
/// otherwise starve each other of CPU and add up their sockets.
///
/// The lock is a `flock` on `shout-heavy-tests.lock` in the system's
/// temporary directory. Each call opens the file anew, and locks of two opens
/// exclude each other even within a process; dropping the value (or the
/// process dying) releases it.
///
/// # Panics
/// When another test held the lock for ten minutes.
pub fn heavy_test() -> HeavyTest {
    let path = std::env::temp_dir().join("shout-heavy-tests.lock");
    let lock = File::create(&path).expect("the lock file can be created");
    let started = Instant::now();
    // SAFETY: flock on a descriptor `lock` owns; no memory involved.
    while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        assert!(
            started.elapsed() < LOCK_WAIT,
            "another heavy test held {} for {LOCK_WAIT:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    HeavyTest { _lock: lock }
}
