//! Starting servers on port 0 and talking to them, with every wait bounded.

use shout_server::{Handle, ServerBuilder, Stats, Uppercase};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest any single wait in these tests may take before it fails.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// A library server running on a thread; shut down and joined on drop.
pub(crate) struct Running {
    pub(crate) handle: Handle,
    thread: Option<JoinHandle<Result<Stats, shout_server::ServerError>>>,
}

impl Running {
    pub(crate) fn tcp(&self) -> SocketAddr {
        self.handle.tcp_addrs()[0]
    }

    pub(crate) fn udp(&self) -> SocketAddr {
        self.handle.udp_addrs()[0]
    }

    /// Stops the server and returns its final counters.
    pub(crate) fn stop(mut self) -> Stats {
        self.handle.shutdown();
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("server thread panicked")
            .expect("server failed")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.shutdown();
            let _ = thread.join();
        }
    }
}

/// An uppercase server on 127.0.0.1, TCP and UDP on port 0, configured by
/// `configure`.
pub(crate) fn start(
    configure: impl FnOnce(ServerBuilder<Uppercase, Uppercase>) -> ServerBuilder<Uppercase, Uppercase>,
) -> Running {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let builder = ServerBuilder::new(Uppercase, Uppercase)
        .tcp(loopback)
        .udp(loopback);
    let server = configure(builder).build().expect("server builds");
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run());
    Running {
        handle,
        thread: Some(thread),
    }
}

pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connects");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Reads exactly `len` bytes (or fails after TIMEOUT).
pub(crate) fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).expect("reply arrives in time");
    buf
}

/// Sends `text` and checks the reply is its uppercase.
pub(crate) fn round_trip(stream: &mut TcpStream, text: &str) {
    stream.write_all(text.as_bytes()).unwrap();
    let expected = text.to_uppercase();
    let got = read_exactly(stream, expected.len());
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

/// Waits until `condition` holds, polling; fails after TIMEOUT.
pub(crate) fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads until end of stream (or fails after TIMEOUT per read).
pub(crate) fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("stream ends in time");
    all
}
