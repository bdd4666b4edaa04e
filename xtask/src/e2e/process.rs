//! The processes a scenario starts, and how none of them outlives the run.
//!
//! Every child is wrapped in a [`Spawned`] guard that kills (SIGKILL) and
//! reaps it when dropped, whether the scenario passed, failed or panicked.
//! Its pid also sits in a fixed table while it runs, so that
//! [`kill_all`] can stop everything when a scenario misses its deadline, and
//! so that the signal handler [`kill_on_interrupt`] installs can do the same
//! when xtask itself is interrupted (Ctrl-C) and its destructors will not
//! run. The table is a static array of atomics because that is all a signal
//! handler may touch.
//!
//! [`Shoutd`], [`start_announcing`] (any server that prints shoutd's
//! `listening` lines) and [`start_python_server`] start servers and wait,
//! bounded, until they say they are ready; [`run_with_input`] runs a client to the end
//! with its standard input given and a timeout.

use shout_testkit::Listening;
pub(crate) use shout_testkit::join_within;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server may take to announce that it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Pids of the children alive now (0: free slot).
static RUNNING: [AtomicI32; 256] = [const { AtomicI32::new(0) }; 256];

/// Sends SIGKILL to every child still registered.
pub(crate) fn kill_all() {
    for slot in &RUNNING {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) takes plain integers; the pid is a child we
            // have not reaped yet, so it cannot name another process.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// On SIGINT, SIGTERM or SIGHUP: kill every child, then exit 128 + signal.
///
/// When run from a terminal, Ctrl-C also reaches the children directly (they
/// share our process group); this handler covers a signal sent to xtask
/// alone and children that ignore SIGINT.
pub(crate) fn kill_on_interrupt() {
    let handler: extern "C" fn(libc::c_int) = on_interrupt;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only does async-signal-safe work (atomic
        // loads, kill, write, _exit).
        unsafe {
            libc::signal(signal, handler as libc::sighandler_t);
        }
    }
}

extern "C" fn on_interrupt(signal: libc::c_int) {
    kill_all();
    let message = b"\nxtask: interrupted; killed the processes it started\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is valid.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::_exit(128 + signal);
    }
}

/// A child process this run started: killed and reaped when dropped.
/// Its standard error is collected in the background, for messages.
pub(crate) struct Spawned {
    /// What it is, for messages (`shoutd`, `tcp_server.py`, `nc`).
    name: String,
    child: Child,
    /// Index in [`RUNNING`] while the child is alive and unreaped.
    slot: Option<usize>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The thread that collects standard error, until the pipe closes.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
}

/// How long an exited child's standard error may take to be collected:
/// a grandchild that keeps the pipe open must not hold the run.
const STDERR_AFTER_EXIT: Duration = Duration::from_secs(1);

impl Spawned {
    /// Starts `command` with its standard error piped (and collected); the
    /// caller chooses standard input and output.
    pub(crate) fn start(name: &str, command: &mut Command) -> Result<Self, String> {
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start {name} ({}): {error}", crate::show(command)))?;
        let pid = i32::try_from(child.id()).expect("pids fit in pid_t");
        let slot = RUNNING.iter().position(|slot| {
            slot.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_reader = child.stderr.take().map(|mut pipe| {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buffer = [0; 4096];
                while let Ok(read @ 1..) = pipe.read(&mut buffer) {
                    stderr
                        .lock()
                        .expect("not poisoned")
                        .extend_from_slice(&buffer[..read]);
                }
            })
        });
        Ok(Self {
            name: name.to_owned(),
            child,
            slot,
            stderr,
            stderr_reader,
            status: None,
        })
    }

    /// The child's process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's standard input, if it was piped and not yet taken.
    pub(crate) fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// The child's standard output, if it was piped and not yet taken.
    pub(crate) fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Sends `signal` (SIGTERM, say) unless the child was already reaped.
    pub(crate) fn signal(&mut self, signal: libc::c_int) -> Result<(), String> {
        if self.status.is_some() {
            return Err(format!("{} has already exited", self.name));
        }
        let pid = i32::try_from(self.child.id()).expect("pids fit in pid_t");
        // SAFETY: kill(2) takes plain integers; the child is not reaped yet.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(format!(
                "cannot signal {}: {}",
                self.name,
                std::io::Error::last_os_error()
            ))
        }
    }

    /// kill -9, and reap.
    pub(crate) fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.forget();
            self.status = self.child.wait().ok();
            self.collect_stderr();
        }
    }

    /// Waits for the child to exit, at most `timeout`.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not exit within {:.1} s",
                    self.name,
                    timeout.as_secs_f64()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status if the child has exited.
    pub(crate) fn try_wait(&mut self) -> Result<Option<ExitStatus>, String> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .map_err(|error| format!("cannot wait for {}: {error}", self.name))?;
            if self.status.is_some() {
                self.forget();
                self.collect_stderr();
            }
        }
        Ok(self.status)
    }

    /// Waits, at most [`STDERR_AFTER_EXIT`], for the reader to take the
    /// last of an exited child's standard error: its exit can be seen
    /// before its last line is read.
    fn collect_stderr(&mut self) {
        let deadline = Instant::now() + STDERR_AFTER_EXIT;
        while let Some(reader) = &self.stderr_reader {
            if reader.is_finished() || Instant::now() >= deadline {
                self.stderr_reader = None;
            } else {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// Everything the child wrote to standard error so far.
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("not poisoned")).into_owned()
    }

    /// The end of the child's standard error on one line, for a message.
    pub(crate) fn stderr_tail(&self) -> String {
        format!(
            "{} stderr: {}",
            self.name,
            one_line_tail(&self.stderr(), 400)
        )
    }

    fn forget(&mut self) {
        if let Some(slot) = self.slot.take() {
            RUNNING[slot].store(0, Ordering::SeqCst);
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `max` characters of `text`, lines joined with ` | `.
pub(crate) fn one_line_tail(text: &str, max: usize) -> String {
    let joined = text.trim().lines().collect::<Vec<_>>().join(" | ");
    let count = joined.chars().count();
    if count == 0 {
        "(empty)".into()
    } else if count <= max {
        joined
    } else {
        let tail: String = joined.chars().skip(count - max).collect();
        format!("…{tail}")
    }
}

/// Lines of a child's output, read on a thread, to wait for with a timeout.
/// The channel closes at end of output.
pub(crate) fn lines_of(stdout: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(1..) => {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    if sender.send(text).is_err() {
                        // Nobody listens any more; keep draining so the
                        // child never blocks on a full pipe.
                        let _ = std::io::copy(&mut reader, &mut std::io::sink());
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    receiver
}

/// A running shoutd, with the addresses it announced.
pub(crate) struct Shoutd {
    pub(crate) process: Spawned,
    pub(crate) tcp: SocketAddr,
    pub(crate) udp: SocketAddr,
    /// The metrics endpoint, when `--metrics` was among the options.
    pub(crate) metrics: Option<SocketAddr>,
    /// The TLS listener, when `--tls` was among the options.
    pub(crate) tls: Option<SocketAddr>,
    /// The QUIC listener, when `--quic` was among the options.
    pub(crate) quic: Option<SocketAddr>,
    /// The WebSocket listener, when `--ws` was among the options.
    pub(crate) ws: Option<SocketAddr>,
    /// The WebSocket-over-TLS listener, when `--wss` was among them.
    pub(crate) wss: Option<SocketAddr>,
}

impl Shoutd {
    /// Starts shoutd on loopback, TCP and UDP on ports of its choosing.
    pub(crate) fn start(env: &super::Env) -> Result<Self, String> {
        Self::start_on(env, "127.0.0.1:0", "127.0.0.1:0", &[])
    }

    /// Starts shoutd with one TCP and one UDP address and `extra` options,
    /// and waits for its `listening` lines (three with `--metrics`).
    pub(crate) fn start_on(
        env: &super::Env,
        tcp: &str,
        udp: &str,
        extra: &[&str],
    ) -> Result<Self, String> {
        let mut command = env.shoutd();
        command.args(["--tcp", tcp, "--udp", udp]).args(extra);
        let (process, listening) = start_announcing_all("shoutd", &mut command)?;
        Ok(Self {
            process,
            tcp: listening.tcp().expect("waited for"),
            udp: listening.udp().expect("waited for"),
            metrics: listening.addrs("metrics").first().copied(),
            tls: listening.addrs("tls").first().copied(),
            quic: listening.addrs("quic").first().copied(),
            ws: listening.addrs("ws").first().copied(),
            wss: listening.addrs("wss").first().copied(),
        })
    }
}

/// Starts a server that keeps shoutd's start-up contract (`listening tcp
/// ADDR`, then `listening udp ADDR`, on standard output) and waits, bounded,
/// for both lines. Returns the process and the two addresses.
pub(crate) fn start_announcing(
    name: &str,
    command: &mut Command,
) -> Result<(Spawned, SocketAddr, SocketAddr), String> {
    let (process, listening) = start_announcing_all(name, command)?;
    let (tcp, udp) = (listening.tcp(), listening.udp());
    Ok((process, tcp.expect("waited for"), udp.expect("waited for")))
}

/// [`start_announcing`], which also waits for the `listening metrics` line
/// when `command` has `--metrics`, and the `listening tls` line when it has
/// `--tls`; returns every line read. With `--tls` and neither `--tcp` nor
/// `--udp` only the `listening tls` line is awaited: shoutd then serves TLS
/// alone, and the TLS reference servers serve nothing else.
pub(crate) fn start_announcing_all(
    name: &str,
    command: &mut Command,
) -> Result<(Spawned, Listening), String> {
    let has = |flag: &str| command.get_args().any(|arg| arg == flag);
    let wants_metrics = has("--metrics");
    let wants_tls = has("--tls");
    let wants_quic = has("--quic");
    let wants_ws = has("--ws");
    let wants_wss = has("--wss");
    let wants_plain = !(wants_tls || wants_quic || wants_ws) || has("--tcp") || has("--udp");
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut process = Spawned::start(name, command)?;
    let lines = lines_of(process.take_stdout().expect("stdout is piped"));
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut listening = Listening::default();
    while (wants_plain && (listening.tcp().is_none() || listening.udp().is_none()))
        || (wants_metrics && listening.addrs("metrics").is_empty())
        || (wants_tls && listening.addrs("tls").is_empty())
        || (wants_quic && listening.addrs("quic").is_empty())
        || (wants_ws && listening.addrs("ws").is_empty())
        || (wants_wss && listening.addrs("wss").is_empty())
    {
        let line = match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "{name} did not print its listening lines within {} s; {}",
                    READY_TIMEOUT.as_secs(),
                    process.stderr_tail()
                ));
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = process.wait_timeout(Duration::from_secs(2));
                return Err(format!(
                    "{name} exited before listening ({}); {}",
                    status.map_or_else(|error| error, |status| status.to_string()),
                    process.stderr_tail()
                ));
            }
        };
        listening
            .add_line(&line)
            .map_err(|error| format!("{name}: {error}"))?;
    }
    Ok((process, listening))
}

/// A directory under the system's temporary one, removed on drop.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    /// Creates `shout-e2e-TAG-PID` there, empty.
    pub(crate) fn new(tag: &str) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("shout-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which of the lecture's servers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transport {
    Tcp,
    Udp,
}

/// Starts one of the lecture's Python servers on 127.0.0.1, as
/// [`start_python_server_of`] does.
pub(crate) fn start_python_server(
    env: &super::Env,
    script: &str,
    transport: Transport,
) -> Result<(Spawned, u16), String> {
    start_python_server_of(env, super::Peers::Lecture, script, transport)
}

/// Starts one of the Python servers of `peers` on 127.0.0.1 and a free
/// port, and waits for its "ready" line. The port is found by binding port
/// 0 and letting it go, so another program may take it first: then the
/// server exits and we try another, a few times.
pub(crate) fn start_python_server_of(
    env: &super::Env,
    peers: super::Peers,
    script: &str,
    transport: Transport,
) -> Result<(Spawned, u16), String> {
    start_on_free_port(script, transport, "ready to receive", |port| {
        let mut command = env.python(peers, script)?;
        command.args([port.to_string().as_str(), "127.0.0.1"]);
        Ok(command)
    })
}

/// Starts the server `command_on(port)` makes on a free loopback port, and
/// waits for its first line, which must contain `ready`. The port is found
/// by binding port 0 and letting it go, so another program may take it
/// first: then the server exits and we try another, a few times.
pub(crate) fn start_on_free_port(
    name: &str,
    transport: Transport,
    ready: &str,
    command_on: impl Fn(u16) -> Result<Command, String>,
) -> Result<(Spawned, u16), String> {
    const ATTEMPTS: usize = 5;
    let mut last_error = String::new();
    for _ in 0..ATTEMPTS {
        let port = free_port(transport)?;
        let mut command = command_on(port)?;
        command.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut server = Spawned::start(name, &mut command)?;
        let lines = lines_of(server.take_stdout().expect("stdout is piped"));
        match lines.recv_timeout(READY_TIMEOUT) {
            Ok(line) if line.contains(ready) => return Ok((server, port)),
            Ok(line) => last_error = format!("{name} printed `{}`", line.trim()),
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "{name} did not say it was ready within {} s; {}",
                    READY_TIMEOUT.as_secs(),
                    server.stderr_tail()
                ));
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = server.wait_timeout(Duration::from_secs(2));
                last_error = format!("{name} exited on port {port}; {}", server.stderr_tail());
            }
        }
    }
    Err(format!(
        "{name} did not start in {ATTEMPTS} attempts: {last_error}"
    ))
}

/// A loopback port free at the time of asking.
pub(crate) fn free_port(transport: Transport) -> Result<u16, String> {
    let port = match transport {
        Transport::Tcp => TcpListener::bind("127.0.0.1:0").and_then(|socket| socket.local_addr()),
        Transport::Udp => UdpSocket::bind("127.0.0.1:0").and_then(|socket| socket.local_addr()),
    };
    port.map(|addr| addr.port())
        .map_err(|error| format!("cannot find a free port: {error}"))
}

/// How a client run by [`run_with_input`] ended.
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Finished {
    /// Checks a successful exit and exactly `expected` on standard output.
    pub(crate) fn expect(&self, what: &str, expected: &[u8]) -> Result<(), String> {
        if !self.status.success() {
            return Err(format!(
                "{what}: exited with {}, expected success; stdout {}; stderr: {}",
                self.status,
                quote(&self.stdout),
                one_line_tail(&self.stderr, 400)
            ));
        }
        if self.stdout != expected {
            return Err(format!(
                "{what}: expected {}, got {}; stderr: {}",
                quote(expected),
                quote(&self.stdout),
                one_line_tail(&self.stderr, 400)
            ));
        }
        Ok(())
    }
}

/// Bytes as a quoted string for messages, escaped, shortened when long.
pub(crate) fn quote(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let shown = &bytes[..bytes.len().min(MAX)];
    let mut text = format!("{:?}", String::from_utf8_lossy(shown));
    if bytes.len() > MAX {
        text.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    text
}

/// Runs `command` with `input` on its standard input (then closed), and
/// collects its output; kills it and fails if it runs longer than `timeout`.
pub(crate) fn run_with_input(
    name: &str,
    command: &mut Command,
    input: &[u8],
    timeout: Duration,
) -> Result<Finished, String> {
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    let started = Instant::now();
    let mut process = Spawned::start(name, command)?;
    let mut stdin = process.take_stdin().expect("stdin is piped");
    let input = input.to_vec();
    // A client may exit without reading all its input: a failed write is
    // the client's business, judged by its exit status and output.
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = process.take_stdout().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut output = Vec::new();
        let _ = stdout.read_to_end(&mut output);
        output
    });
    let status = match process.wait_timeout(timeout) {
        Ok(status) => status,
        Err(error) => {
            process.kill();
            return Err(format!(
                "{error} ({}); {}",
                crate::show(command),
                process.stderr_tail()
            ));
        }
    };
    let elapsed = started.elapsed();
    // The output pipe may be held open by a grandchild; do not wait forever.
    let stdout = join_within(reader, Duration::from_secs(5))
        .ok_or_else(|| format!("{name} exited but its output did not end"))?;
    // Let the stderr collector catch up with the end of the pipe.
    std::thread::sleep(Duration::from_millis(20));
    Ok(Finished {
        status,
        stdout,
        stderr: process.stderr(),
        elapsed,
    })
}

/// Sends `line` to a client tool and returns the first line it prints and
/// its standard error so far. Standard input stays open until the reply is
/// in: tools differ on whether they wait for replies after EOF (UDP modes,
/// TLS clients that close at once), and this way none has to.
pub(crate) fn exchange_line(
    name: &str,
    command: &mut Command,
    line: &str,
    timeout: Duration,
) -> Result<(String, String), String> {
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut process = Spawned::start(name, command)?;
    let mut stdin = process.take_stdin().expect("stdin is piped");
    let lines = lines_of(process.take_stdout().expect("stdout is piped"));
    stdin
        .write_all(line.as_bytes())
        .and_then(|()| stdin.flush())
        .map_err(|error| format!("cannot write to {name}: {error}"))?;
    let reply = lines.recv_timeout(timeout).map_err(|_| {
        format!(
            "{name}: no reply within {} s ({}); {}",
            timeout.as_secs(),
            crate::show(command),
            process.stderr_tail()
        )
    });
    drop(stdin);
    process.kill();
    // Let the stderr collector catch up with the end of the pipe.
    std::thread::sleep(Duration::from_millis(20));
    reply.map(|reply| (reply, process.stderr()))
}

/// Held by every unit test that starts children, because the deadline test
/// calls [`kill_all`], which would kill the children of tests running beside
/// it.
#[cfg(test)]
pub(crate) static CHILDREN_TEST_LOCK: Mutex<()> = Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        CHILDREN_TEST_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[test]
    fn a_dropped_guard_kills_and_reaps_its_child() {
        let _children = lock();
        let mut command = Command::new("sleep");
        command.arg("30").stdin(Stdio::null()).stdout(Stdio::null());
        let spawned = Spawned::start("sleep", &mut command).unwrap();
        let pid = spawned.child.id();
        let slot = spawned.slot.unwrap();
        assert_eq!(RUNNING[slot].load(Ordering::SeqCst), pid as i32);
        drop(spawned);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn run_with_input_gives_up_at_the_timeout() {
        let _children = lock();
        let started = Instant::now();
        let result = run_with_input(
            "sleep",
            Command::new("sleep").arg("30"),
            b"",
            Duration::from_millis(200),
        );
        assert!(result.is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn run_with_input_collects_output() {
        let _children = lock();
        let finished = run_with_input(
            "cat",
            &mut Command::new("cat"),
            b"abc",
            Duration::from_secs(10),
        )
        .unwrap();
        finished.expect("cat", b"abc").unwrap();
    }

    #[test]
    fn tails_are_one_line_and_short() {
        assert_eq!(one_line_tail("a\nb\n", 10), "a | b");
        assert_eq!(one_line_tail("", 10), "(empty)");
        assert_eq!(one_line_tail("abcdef", 3), "…def");
    }
}
