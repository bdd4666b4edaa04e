//! Shared test support for shout's cross-crate tests: a real shout-server
//! library server on loopback, bounded waits, and streaming text sources and
//! checks that keep memory small however much is sent.
//!
//! The tests themselves live in `it/` (one test binary, one module per
//! concern). Everything here panics with a message on failure, as test code
//! should, and every wait is bounded by [`TIMEOUT`].
//!
//! ```no_run
//! use shout_tests::TestServer;
//!
//! let server = TestServer::start_with(|builder| builder.workers(2));
//! println!("tcp {} udp {}", server.tcp_addr(), server.udp_addr());
//! let stats = server.stop(); // shut down, joined, final counters
//! assert_eq!(stats.connections_accepted, 0);
//! ```

#![deny(missing_docs)]

pub use shout_testkit::{
    HeavyTest, TIMEOUT, ensure_descriptor_limit, heavy_test, join_within, wait_until,
};

use shout_client::Target;
use shout_server::{Handle, ServerBuilder, ServerError, Stats, Uppercase};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};

/// The builder [`TestServer::start_with`] hands to its closure: shout's
/// uppercase service over TCP and UDP.
pub type UppercaseBuilder = ServerBuilder<Uppercase, Uppercase>;

/// A shout-server library server on 127.0.0.1 (TCP and UDP, ports chosen by
/// the system), running on a thread of its own.
///
/// Dropping it shuts the server down and joins its thread; [`stop`](Self::stop)
/// does the same and returns the final counters.
#[derive(Debug)]
pub struct TestServer {
    handle: Handle,
    thread: Option<JoinHandle<Result<Stats, ServerError>>>,
}

impl TestServer {
    /// An uppercase server with the library's default settings.
    ///
    /// # Panics
    /// When the server cannot be built (no loopback, out of descriptors).
    pub fn start() -> Self {
        Self::start_with(|builder| builder)
    }

    /// An uppercase server on `127.0.0.1:0` for TCP and UDP, with further
    /// settings applied by `configure` (workers, limits, timeouts).
    ///
    /// # Panics
    /// When the server cannot be built, with the builder's error.
    pub fn start_with(configure: impl FnOnce(UppercaseBuilder) -> UppercaseBuilder) -> Self {
        let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let builder = ServerBuilder::new(Uppercase, Uppercase)
            .tcp(loopback)
            .udp(loopback);
        let server = match configure(builder).build() {
            Ok(server) => server,
            Err(error) => panic!("the test server does not build: {error}"),
        };
        let handle = server.handle();
        let thread = thread::Builder::new()
            .name("test-server".into())
            .spawn(move || server.run())
            .expect("the server thread starts");
        Self {
            handle,
            thread: Some(thread),
        }
    }

    /// The TCP address served, with its real port.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.handle.tcp_addrs()[0]
    }

    /// The UDP address served, with its real port.
    pub fn udp_addr(&self) -> SocketAddr {
        self.handle.udp_addrs()[0]
    }

    /// The TCP address as a client [`Target`] (`127.0.0.1:PORT`).
    pub fn tcp_target(&self) -> Target {
        target_of(self.tcp_addr())
    }

    /// The UDP address as a client [`Target`] (`127.0.0.1:PORT`).
    pub fn udp_target(&self) -> Target {
        target_of(self.udp_addr())
    }

    /// The server's handle: addresses, counters, shutdown.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The counters so far, summed over workers.
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// Shuts the server down, waits for it to stop, and returns its final
    /// counters.
    ///
    /// # Panics
    /// When the server failed, one of its workers panicked, or it did not
    /// stop within [`TIMEOUT`].
    pub fn stop(mut self) -> Stats {
        self.handle.shutdown();
        let thread = self.thread.take().expect("only stop takes the thread");
        match join_within(thread, TIMEOUT) {
            Some(Ok(stats)) => stats,
            Some(Err(error)) => panic!("the test server failed: {error}"),
            None => panic!("the test server did not stop within {TIMEOUT:?}, or panicked"),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.shutdown();
            // Drop may run while a failed test unwinds: a second panic here
            // would abort and hide the first failure.
            let _ = join_within(thread, TIMEOUT);
        }
    }
}

fn target_of(addr: SocketAddr) -> Target {
    Target::new(addr.ip().to_string(), addr.port())
}

/// A TCP address on loopback that refuses connections, and is sure to go on
/// refusing for as long as this value lives.
///
/// Binding port 0 and closing it again leaves a port that a test running in
/// parallel may be given next. Instead, the port here is the local end of an
/// open connection: no one can listen on it while the connection is open,
/// and a connection attempt to it is answered with a reset.
#[derive(Debug)]
pub struct RefusingAddr {
    addr: SocketAddr,
    // Both ends of the connection that holds the port.
    _held: (TcpStream, TcpStream),
}

impl RefusingAddr {
    /// A refusing address on loopback `ip` (`127.0.0.1` or `::1`); `None`
    /// when that address cannot be used here (a host without IPv6).
    pub fn on(ip: IpAddr) -> Option<Self> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).ok()?;
        let client = TcpStream::connect_timeout(&listener.local_addr().ok()?, TIMEOUT).ok()?;
        let (server, _) = listener.accept().ok()?;
        Some(Self {
            addr: client.local_addr().ok()?,
            _held: (client, server),
        })
    }

    /// The address: its port is in use, by a connection, with no listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A [`Read`] that produces `unit` a given number of times, in reads of
/// varying, deterministic sizes that cut characters anywhere: an input of
/// any size in constant memory.
#[derive(Debug, Clone)]
pub struct RepeatedText {
    unit: Vec<u8>,
    /// Bytes left to produce.
    remaining: u64,
    /// Where the next byte comes from in `unit`.
    offset: usize,
    /// The state of the generator of read sizes.
    seed: u64,
}

impl RepeatedText {
    /// `unit`, `times` times over.
    ///
    /// # Panics
    /// When `unit` is empty.
    pub fn new(unit: &str, times: u64) -> Self {
        assert!(!unit.is_empty(), "an empty unit repeats to nothing");
        Self {
            unit: unit.as_bytes().to_vec(),
            remaining: unit.len() as u64 * times,
            offset: 0,
            seed: 0x2545_f491_4f6c_dd1d,
        }
    }

    /// How many bytes are still to be read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next read size, from 1 to 64 KiB: a xorshift sequence, so a run
    /// is the same every time.
    fn next_size(&mut self) -> usize {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed % (64 * 1024)) as usize + 1
    }
}

impl Read for RepeatedText {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len())
            .min(self.next_size());
        let mut filled = 0;
        while filled < want {
            let piece = (want - filled).min(self.unit.len() - self.offset);
            buf[filled..filled + piece]
                .copy_from_slice(&self.unit[self.offset..self.offset + piece]);
            filled += piece;
            self.offset = (self.offset + piece) % self.unit.len();
        }
        self.remaining -= filled as u64;
        Ok(filled)
    }
}

/// A [`Write`] that checks, byte for byte and in constant memory, that what
/// is written is the uppercase of what [`RepeatedText`]`::new(unit, times)`
/// produces:
/// `unit`'s uppercase, by the standard library's `str::to_uppercase` (not
/// shout's own transform), `times` times over.
///
/// Writes never fail; [`verify`](Self::verify) reports the result.
#[derive(Debug, Clone)]
pub struct UppercaseCheck {
    expected_unit: Vec<u8>,
    expected_len: u64,
    written: u64,
    first_difference: Option<Difference>,
}

/// Where a written stream first differed from the expected one.
#[derive(Debug, Clone)]
struct Difference {
    at: u64,
    expected: Vec<u8>,
    got: Vec<u8>,
}

impl UppercaseCheck {
    /// Expects the uppercase of `unit`, `times` times over. The uppercase of
    /// valid UTF-8 depends on no context, so that is the uppercase of the
    /// whole.
    pub fn new(unit: &str, times: u64) -> Self {
        let expected_unit = unit.to_uppercase().into_bytes();
        Self {
            expected_len: expected_unit.len() as u64 * times,
            expected_unit,
            written: 0,
            first_difference: None,
        }
    }

    /// The bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The length the output must have.
    pub fn expected_len(&self) -> u64 {
        self.expected_len
    }

    /// Checks that exactly the expected bytes were written.
    ///
    /// # Panics
    /// Unless they were, naming the first difference.
    pub fn verify(&self) {
        if let Some(difference) = &self.first_difference {
            panic!(
                "output differs from the uppercase at byte {} of {}: expected {:?}, got {:?}",
                difference.at,
                self.expected_len,
                String::from_utf8_lossy(&difference.expected),
                String::from_utf8_lossy(&difference.got),
            );
        }
        assert_eq!(
            self.written, self.expected_len,
            "output length differs from the uppercase's"
        );
    }

    /// Compares `bytes`, written at `self.written`, with the expected stream.
    fn compare(&mut self, bytes: &[u8]) {
        let unit_len = self.expected_unit.len();
        let mut position = self.written;
        let mut rest = bytes;
        while !rest.is_empty() {
            if position >= self.expected_len {
                self.record(position, &[], rest);
                return;
            }
            let offset = (position % unit_len as u64) as usize;
            let left = usize::try_from(self.expected_len - position).unwrap_or(usize::MAX);
            let piece = rest.len().min(unit_len - offset).min(left);
            let expected = &self.expected_unit[offset..offset + piece];
            if expected != &rest[..piece] {
                let at = expected
                    .iter()
                    .zip(rest)
                    .position(|(want, got)| want != got)
                    .unwrap_or(0);
                let expected = self.expected_unit[offset + at..offset + piece].to_vec();
                self.record(position + at as u64, &expected, &rest[at..piece]);
                return;
            }
            position += piece as u64;
            rest = &rest[piece..];
        }
    }

    fn record(&mut self, at: u64, expected: &[u8], got: &[u8]) {
        const SHOWN: usize = 40;
        self.first_difference = Some(Difference {
            at,
            expected: expected[..expected.len().min(SHOWN)].to_vec(),
            got: got[..got.len().min(SHOWN)].to_vec(),
        });
    }
}

impl Write for UppercaseCheck {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.first_difference.is_none() {
            self.compare(bytes);
        }
        self.written += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_text_is_the_unit_over_and_over() {
        let mut text = String::new();
        RepeatedText::new("aß🦀", 1000)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "aß🦀".repeat(1000));
    }

    #[test]
    fn uppercase_check_accepts_the_uppercase_cut_anywhere() {
        let mut check = UppercaseCheck::new("aßΐ\n", 100);
        for piece in "aßΐ\n".repeat(100).to_uppercase().as_bytes().chunks(7) {
            check.write_all(piece).unwrap();
        }
        check.verify();
    }

    #[test]
    fn uppercase_check_names_the_first_difference() {
        let mut check = UppercaseCheck::new("ab", 3);
        check.write_all(b"ABAXAB").unwrap();
        let message = std::panic::catch_unwind(|| check.verify()).unwrap_err();
        let message = message.downcast_ref::<String>().unwrap();
        assert!(message.contains("at byte 3 of 6"), "{message}");
        let mut short = UppercaseCheck::new("ab", 3);
        short.write_all(b"ABAB").unwrap();
        assert!(std::panic::catch_unwind(|| short.verify()).is_err());
        let mut long = UppercaseCheck::new("ab", 1);
        long.write_all(b"ABC").unwrap();
        assert!(std::panic::catch_unwind(|| long.verify()).is_err());
    }

    #[test]
    fn refusing_addr_refuses() {
        let refusing = RefusingAddr::on(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        let error = TcpStream::connect_timeout(&refusing.addr(), TIMEOUT).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }
}
