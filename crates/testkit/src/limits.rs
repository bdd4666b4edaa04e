//! Process limits a test may need raised.

/// Makes sure this process, and the shoutd it starts (which inherits the
/// limit), may open `needed` descriptors: raises the soft limit up to the
/// hard one if need be.
///
/// # Panics
/// When the hard limit is lower: the test cannot run here, and says why.
pub fn ensure_descriptor_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the `rlimit` we own.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    if limit.rlim_cur >= needed {
        return;
    }
    assert!(
        limit.rlim_max >= needed,
        "this test needs {needed} open files; the hard limit is {} (raise it: ulimit -n)",
        limit.rlim_max
    );
    limit.rlim_cur = needed;
    // SAFETY: setrlimit reads the `rlimit` we own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}
