//! Starting servers on port 0 — the library on a thread, or the `shoutd`
//! binary as a process — and talking to them, with every wait bounded.

use shout_server::{Handle, ServerBuilder, Stats, Uppercase};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// The answer the protocol defines for `input` (PROTOCOL.md §2), built from
/// the standard library alone: each well-formed run `str::to_uppercase`d,
/// each ill-formed run (a maximal subpart) kept byte for byte.
pub(crate) fn reference_uppercase(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for chunk in input.utf8_chunks() {
        out.extend_from_slice(chunk.valid().to_uppercase().as_bytes());
        out.extend_from_slice(chunk.invalid());
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift64): garbage that is the same
/// on every run, so a failure can be replayed.
pub(crate) fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 32) as u8
        })
        .collect()
}

/// Sets `SO_LINGER` to 0, so that closing `stream` sends a reset (RST)
/// instead of a FIN, discarding whatever is unsent or unread.
pub(crate) fn set_linger_zero(stream: &TcpStream) {
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

/// Held by a test that moves hundreds of MiB or holds thousands of sockets:
/// at most one such test runs at a time on the machine, whether the tests
/// run as threads of one process (`cargo test`) or as one process each
/// (`cargo nextest`), so that they neither starve each other of CPU on a
/// two-core runner nor add up their descriptors and ports.
pub(crate) struct HeavyTest {
    _lock: File,
}

/// Waits (bounded) for the machine-wide heavy-test lock: a `flock` on
/// `shout-heavy-tests.lock` in the system's temporary directory, the file
/// `shout_tests::heavy_test` locks too. Each call opens the file
/// anew, and `flock` locks of two opens exclude each other even within one
/// process; the lock is released when the value is dropped, or when the
/// process dies.
pub(crate) fn heavy_test() -> HeavyTest {
    let path = std::env::temp_dir().join("shout-heavy-tests.lock");
    let lock = File::create(&path).expect("the lock file can be created");
    let started = Instant::now();
    loop {
        // SAFETY: flock on a descriptor `lock` owns; no memory involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "another heavy test held {} for 10 minutes",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    HeavyTest { _lock: lock }
}

/// A running `shoutd`, killed on drop if still running. Its stderr is
/// collected by a thread, so that logging never blocks it.
pub(crate) struct Shoutd {
    child: Child,
    pub(crate) tcp: Option<SocketAddr>,
    pub(crate) udp: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Shoutd {
    pub(crate) fn start(args: &[&str]) -> Self {
        Self::start_with(Command::new(env!("CARGO_BIN_EXE_shoutd")).args(args))
    }

    pub(crate) fn start_with(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("shoutd starts");
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = {
            let pipe = child.stderr.take().unwrap();
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut all = stderr.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            })
        };
        let mut shoutd = Self {
            child,
            tcp: None,
            udp: None,
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        // The contract: one `listening PROTO ADDR` line per socket.
        let expected = command
            .get_args()
            .filter(|a| *a == "--tcp" || *a == "--udp")
            .count();
        for _ in 0..expected {
            let line = lines_rx.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
                panic!("a `listening` line; stderr: {}", shoutd.stderr_so_far())
            });
            let mut words = line.split(' ');
            assert_eq!(words.next(), Some("listening"), "{line}");
            let proto = words.next().unwrap();
            let addr: SocketAddr = words.next().unwrap().parse().unwrap();
            assert_ne!(addr.port(), 0);
            match proto {
                "tcp" => shoutd.tcp = Some(addr),
                "udp" => shoutd.udp = Some(addr),
                other => panic!("unknown protocol {other}"),
            }
        }
        shoutd
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we spawned and own; no memory involved.
        let status = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(status, 0);
    }

    /// Kills it with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub(crate) fn kill_9(mut self) {
        self.signal(libc::SIGKILL);
        let status = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }

    /// A field of `/proc/PID/status` in KiB: `VmRSS` (resident now) or
    /// `VmHWM` (the peak resident set since start).
    pub(crate) fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("shoutd's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }

    /// How many descriptors the process has open now.
    pub(crate) fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("shoutd's /proc fd list")
            .count()
    }

    /// What it has logged so far.
    pub(crate) fn stderr_so_far(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the exit (bounded) and returns status code and stderr.
    pub(crate) fn wait(mut self) -> (Option<i32>, String) {
        wait_until("shoutd to exit", || {
            self.child.try_wait().unwrap().is_some()
        });
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.stderr_reader.take() {
            reader.join().expect("the stderr reader");
        }
        (status.code(), self.stderr_so_far())
    }
}

impl Drop for Shoutd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes bytes `at..to` of the endless stream `unit, unit, unit, …`, as
/// far as the socket takes them. Returns the position reached and the error
/// that stopped it early (a write timeout, when the peer pushes back).
pub(crate) fn send_periodic(
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

/// Reads to end of stream, checking in constant memory that what arrives is
/// `unit, unit, …` for exactly `len` bytes.
pub(crate) fn expect_periodic(stream: &mut TcpStream, unit: &[u8], len: u64) {
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

/// A figure from the `stopped: …` summary shoutd logs when it stops, e.g.
/// `summary_figure(stderr, "bytes in")`.
pub(crate) fn summary_figure(stderr: &str, name: &str) -> u64 {
    let summary = stderr
        .lines()
        .find_map(|line| line.split_once("stopped: ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no `stopped:` summary in {stderr}"));
    // "12 connections (0 shed, 3 idle timeouts), 5 bytes in, ..."
    let words: Vec<&str> = summary
        .split([' ', ',', '(', ')'])
        .filter(|word| !word.is_empty())
        .collect();
    let name: Vec<&str> = name.split(' ').collect();
    words
        .windows(name.len() + 1)
        .find(|window| window[1..] == name[..])
        .and_then(|window| window[0].parse().ok())
        .unwrap_or_else(|| panic!("no figure for {name:?} in {summary}"))
}

/// Makes sure this process, and the shoutd it starts (which inherits the
/// limit), may open `needed` descriptors: raises the soft limit up to the
/// hard one if need be.
///
/// # Panics
/// When the hard limit is lower: the test cannot run here, and says why.
pub(crate) fn ensure_descriptor_limit(needed: u64) {
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
