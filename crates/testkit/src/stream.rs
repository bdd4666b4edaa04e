//! Blocking TCP helpers for tests: connect with timeouts, read exactly, and
//! stream or check endless periodic text in constant memory.

use crate::TIMEOUT;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Connects to `addr` with read and write timeouts of [`TIMEOUT`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connects");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Reads exactly `len` bytes (or fails after TIMEOUT).
pub fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).expect("reply arrives in time");
    buf
}

/// Sends `text` and checks the reply is its uppercase.
pub fn round_trip(stream: &mut TcpStream, text: &str) {
    stream.write_all(text.as_bytes()).unwrap();
    let expected = text.to_uppercase();
    let got = read_exactly(stream, expected.len());
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

/// Reads until end of stream (or fails after TIMEOUT per read).
pub fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("stream ends in time");
    all
}

/// Sets `SO_LINGER` to 0, so that closing `stream` sends a reset (RST)
/// instead of a FIN, discarding whatever is unsent or unread.
pub fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a descriptor `stream` owns, with a pointer to a
    // live `linger` and its exact size.
    let status = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(status, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// Writes bytes `at..to` of the endless stream `unit, unit, unit, …`, as
/// far as the socket takes them. Returns the position reached and the error
/// that stopped it early (a write timeout, when the peer pushes back).
pub fn send_periodic(
    stream: &mut TcpStream,
    unit: &[u8],
    mut at: u64,
    to: u64,
) -> (u64, Option<std::io::Error>) {
    // Every turn of the loop writes at least one byte or returns.
    while at < to {
        let offset = (at % unit.len() as u64) as usize;
        let len = usize::try_from(to - at)
            .unwrap_or(usize::MAX)
            .min(unit.len() - offset);
        match stream.write(&unit[offset..offset + len]) {
            Ok(0) => return (at, Some(std::io::ErrorKind::WriteZero.into())),
            Ok(written) => at += written as u64,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return (at, Some(error)),
        }
    }
    (at, None)
}

/// How long a write must make no progress at all before the peer counts as
/// pushing back. A single timed-out write is not enough: a busy machine can
/// delay the peer's reads for longer than a short write timeout.
pub const PUSHBACK_QUIET: Duration = Duration::from_secs(1);

/// Writes bytes `at..to` of the endless stream `unit, unit, …` until the peer
/// stops taking them: no byte taken for [`PUSHBACK_QUIET`]. Returns the
/// position reached. Each write waits at most 50 ms, so the stream's write
/// timeout is replaced.
///
/// # Panics
/// When the peer takes all of `at..to` (it never pushed back), when a write
/// fails otherwise than by timing out, or after a minute of slow progress.
pub fn send_until_pushed_back(stream: &mut TcpStream, unit: &[u8], mut at: u64, to: u64) -> u64 {
    stream
        .set_write_timeout(Some(Duration::from_millis(50)))
        .expect("a write timeout can be set");
    let started = Instant::now();
    let mut progress_at = Instant::now();
    loop {
        let (reached, stopped) = send_periodic(stream, unit, at, to);
        let Some(error) = stopped else {
            panic!("the peer took all {to} bytes: it never pushed back");
        };
        assert!(
            matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "a write failed at byte {reached}: {error}"
        );
        if reached > at {
            at = reached;
            progress_at = Instant::now();
        } else if progress_at.elapsed() >= PUSHBACK_QUIET {
            return at;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still taking bytes after a minute (at byte {at})"
        );
    }
}

/// Reads to end of stream, checking in constant memory that what arrives is
/// `unit, unit, …` for exactly `len` bytes.
pub fn expect_periodic(stream: &mut TcpStream, unit: &[u8], len: u64) {
    let mut buf = vec![0; 64 * 1024];
    let mut at = 0u64;
    loop {
        let read = stream.read(&mut buf).expect("the answer arrives in time");
        if read == 0 {
            break;
        }
        assert!(at + read as u64 <= len, "more than {len} bytes of answer");
        // Compared a piece of `unit` at a time: slices, not bytes, so that
        // hundreds of MiB check quickly even in a debug build.
        let mut checked = 0;
        while checked < read {
            let offset = ((at + checked as u64) % unit.len() as u64) as usize;
            let piece = (read - checked).min(unit.len() - offset);
            let got = &buf[checked..checked + piece];
            if got != &unit[offset..offset + piece] {
                let wrong = got
                    .iter()
                    .zip(&unit[offset..])
                    .position(|(got, expected)| got != expected)
                    .unwrap_or(0);
                panic!(
                    "byte {} of {len} differs: got {:#04x}, expected {:#04x}",
                    at + (checked + wrong) as u64,
                    got[wrong],
                    unit[offset + wrong]
                );
            }
            checked += piece;
        }
        at += read as u64;
    }
    assert_eq!(at, len, "the answer is cut short");
}

/// Checks that the peer closes `stream` without sending a byte: a FIN, or a
/// reset when it closed with the client's bytes unread.
///
/// # Panics
/// When a byte arrives, or the read fails otherwise (its timeout included).
pub fn assert_closed_unanswered(mut stream: TcpStream) {
    let mut byte = [0];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("not closed unanswered: {other:?}"),
    }
}

/// Writes `bytes` to `stream` on a thread of its own, one byte every
/// `every`, until all are written or a write fails (the peer closed).
/// Returns the thread; it answers how many bytes were written.
pub fn trickle_in_background(
    mut stream: TcpStream,
    bytes: Vec<u8>,
    every: Duration,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        for (written, byte) in bytes.iter().enumerate() {
            if stream.write_all(std::slice::from_ref(byte)).is_err() {
                return written;
            }
            std::thread::sleep(every);
        }
        bytes.len()
    })
}
