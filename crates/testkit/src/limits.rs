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

/// Returns how many small datagrams (up to 64 bytes) `socket`'s receive
/// buffer holds at once, from the size the kernel granted (`SO_RCVBUF` read
/// back). A test that queues datagrams sizes its burst with this, because
/// the grant is capped by `net.core.rmem_max`: 212,992 bytes on a stock
/// kernel (doubled to 425,984 when set), which holds about 512 of them.
pub fn small_datagrams_that_fit(socket: &std::net::UdpSocket) -> usize {
    use std::os::fd::AsRawFd;
    // Each small datagram costs about 832 bytes of buffer on loopback
    // (measured); 1,024 leaves a margin.
    const COST: usize = 1024;
    let mut granted: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `granted`, which we own.
    let status = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw mut granted).cast(),
            &mut len,
        )
    };
    assert_eq!(status, 0, "getsockopt SO_RCVBUF");
    usize::try_from(granted).unwrap_or(0) / COST
}
