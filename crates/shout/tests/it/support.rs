//! Test servers on loopback and a runner for the `shout` binary, every wait
//! bounded in time.

use shout_protocol::Uppercaser;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// The longest any one run of the binary or wait for a server may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// What a run of the binary produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
}

impl Outcome {
    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// The `shout` binary, with logging left to its flags.
pub(crate) fn shout() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shout"));
    command.env_remove("RUST_LOG");
    command
}

/// Starts `shout ARGS` with all three standard streams piped to the test.
pub(crate) fn spawn_piped(args: &[&str]) -> Child {
    shout()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the shout binary starts")
}

/// Runs `shout ARGS` with `stdin` as its input, killing it after
/// [`DEADLINE`].
pub(crate) fn run(args: &[&str], stdin: &[u8]) -> Outcome {
    let mut child = spawn_piped(args);
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // A broken pipe here means the child stopped reading, which its exit
    // status will show.
    let writer = thread::spawn(move || drop(input.write_all(&stdin)));
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let code = wait_bounded(&mut child, args);
    writer.join().unwrap();
    Outcome {
        code,
        stdout: stdout.join().unwrap(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Waits for `child` at most [`DEADLINE`], killing it and failing after.
pub(crate) fn wait_bounded(child: &mut Child, what: &[&str]) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shout {what:?} still running after {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// A shout-server the test built, running on a thread of its own:
/// shoutd's listeners without the binary. Told to stop when dropped.
pub(crate) struct LibraryServer {
    pub(crate) handle: shout_server::Handle,
    thread: Option<thread::JoinHandle<shout_server::Stats>>,
}

impl LibraryServer {
    /// Builds `builder` and runs the server.
    pub(crate) fn start<S, D>(builder: shout_server::ServerBuilder<S, D>) -> Self
    where
        S: shout_server::StreamService,
        D: shout_server::DatagramService,
    {
        let server = builder.build().expect("the server builds");
        let handle = server.handle();
        let thread = thread::spawn(move || server.run().expect("the server runs"));
        Self {
            handle,
            thread: Some(thread),
        }
    }

    /// Stops the server once its connections are drained, and returns
    /// what it counted.
    pub(crate) fn stop(mut self) -> shout_server::Stats {
        self.handle.shutdown();
        let thread = self.thread.take().expect("stopped once");
        shout_testkit::join_within(thread, shout_testkit::TIMEOUT).expect("the server stops")
    }
}

impl Drop for LibraryServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A TCP server that streams back the uppercase of what it receives and
/// closes after the client's half-close: the shoutd contract.
pub(crate) struct UppercaseServer {
    pub(crate) addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl UppercaseServer {
    /// Listens on 127.0.0.1, on a port of the system's choosing.
    pub(crate) fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).expect("loopback listens")
    }

    /// Listens on `addr`; `None` if it cannot be bound (no IPv6, say).
    pub(crate) fn start_on(addr: SocketAddr) -> Option<Self> {
        let listener = TcpListener::bind(addr).ok()?;
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        thread::spawn(move || {
            // Bounded: no test opens this many connections.
            for stream in listener.incoming().take(64) {
                let Ok(stream) = stream else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || serve_uppercase(stream));
            }
        });
        Some(Self { addr, connections })
    }

    /// How many connections it accepted.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve_uppercase(mut stream: TcpStream) {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut upper = Uppercaser::new();
    let mut buf = vec![0; 32 * 1024];
    let mut out = Vec::new();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.clear();
                upper.feed(&buf[..n], &mut out);
                if stream.write_all(&out).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    out.clear();
    upper.finish(&mut out);
    let _ = stream.write_all(&out);
}

/// Serves TCP on 127.0.0.1 with `serve`, one thread per connection, reads
/// timing out after [`DEADLINE`]. Bounded: at most 8 connections, more than
/// any test opens.
pub(crate) fn start_tcp_server(serve: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(stream) = stream else { continue };
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// A TCP server that accepts and reads but never answers, nor closes.
pub(crate) fn start_mute_tcp() -> SocketAddr {
    start_tcp_server(|mut stream| {
        let mut buf = [0; 1024];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
        // Keeps the connection open past the client's half-close,
        // answering nothing, until the client gives up.
        thread::sleep(Duration::from_secs(5));
    })
}

/// How many bytes [`start_one_read_tcp`] answers.
pub(crate) const ONE_READ: usize = 1024;

/// A TCP server that answers one read of [`ONE_READ`] bytes, as the
/// lecture's one-line-per-connection server does, and then neither answers
/// nor closes until the client gives up.
pub(crate) fn start_one_read_tcp() -> SocketAddr {
    start_tcp_server(|mut stream| {
        let mut request = [0; ONE_READ];
        if stream.read_exact(&mut request).is_err() {
            return;
        }
        let _ = stream.write_all(&uppercase(&request));
        thread::sleep(Duration::from_secs(5));
    })
}

/// A UDP server on 127.0.0.1 that answers each datagram with the datagrams
/// `answer` returns for it (none, one, or more), until dropped or
/// [`DEADLINE`].
pub(crate) struct UdpTestServer {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl UdpTestServer {
    pub(crate) fn start(mut answer: impl FnMut(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        thread::spawn(move || {
            let started = Instant::now();
            let mut buf = vec![0; 65_536];
            while !stopped.load(Ordering::SeqCst) && started.elapsed() < DEADLINE {
                let Ok((len, client)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                for datagram in answer(&buf[..len]) {
                    socket.send_to(&datagram, client).unwrap();
                }
            }
        });
        Self { addr, stop }
    }
}

impl Drop for UdpTestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The uppercase of `request`, by the protocol crate.
pub(crate) fn uppercase(request: &[u8]) -> Vec<u8> {
    let mut reply = Vec::new();
    shout_protocol::uppercase(request, &mut reply);
    reply
}

/// A UDP server that drops every other datagram (the first, third, …) and,
/// before each reply, sends the previous reply again: a late reply to an
/// earlier request, which a client must not take for the current one.
pub(crate) struct LossyUdpServer {
    /// Kept for its drop, which stops the server.
    _server: UdpTestServer,
    pub(crate) addr: SocketAddr,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl LossyUdpServer {
    pub(crate) fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let mut previous: Option<Vec<u8>> = None;
        let server = UdpTestServer::start(move |request| {
            let mut requests = seen.lock().unwrap();
            requests.push(request.to_vec());
            if requests.len() % 2 == 1 {
                return Vec::new();
            }
            let reply = uppercase(request);
            let stale = previous.replace(reply.clone());
            stale.into_iter().chain([reply]).collect()
        });
        Self {
            addr: server.addr,
            _server: server,
            requests,
        }
    }

    /// Every datagram received so far, in order.
    pub(crate) fn requests(&self) -> Vec<Vec<u8>> {
        self.requests.lock().unwrap().clone()
    }
}

/// The size of the textbook Java UDPServer's receive buffer.
pub(crate) const JAVA_BUFFER: usize = 1024;

/// A UDP server that answers as the textbook Java UDPServer does: it
/// receives into one 1,024-byte buffer, kept from datagram to datagram, and
/// sends back the uppercase of the whole buffer, trailing NULs (and what
/// longer earlier requests left there) included.
///
/// With `late_duplicates`, before each answer after the first it also sends
/// the exact uppercase of the previous request: a late reply the client
/// must recognise and drop.
pub(crate) fn start_java_udp_server(late_duplicates: bool) -> UdpTestServer {
    let mut buffer = [0; JAVA_BUFFER];
    let mut previous: Option<Vec<u8>> = None;
    UdpTestServer::start(move |request| {
        let len = request.len().min(JAVA_BUFFER);
        buffer[..len].copy_from_slice(&request[..len]);
        let late = previous.replace(uppercase(request));
        let late = late.filter(|_| late_duplicates);
        late.into_iter().chain([uppercase(&buffer)]).collect()
    })
}

/// One of the project's lecture-style Python servers (`peers/` at the
/// workspace root), stopped when dropped.
pub(crate) struct PythonPeer {
    child: Child,
    pub(crate) port: u16,
}

impl PythonPeer {
    /// Starts `script` (`tcp_server.py` or `udp_server.py`) from `peers/` on
    /// 127.0.0.1 and waits until it says it is ready. Panics, naming what is
    /// missing, when python3 does not start: the README requires Python 3,
    /// and a test that returned early here would pass without running.
    pub(crate) fn start(script: &str) -> Self {
        let path = peers_dir().join(script);
        assert!(path.is_file(), "{} is missing", path.display());
        let port = shout_testkit::free_port();
        let mut child = Command::new("python3")
            .arg(&path)
            .args([port.to_string().as_str(), "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "python3 is required for the tests (see README.md) and does not start: {error}"
                )
            });
        let mut stdout = child.stdout.take().unwrap();
        let (ready, is_ready) = mpsc::channel();
        thread::spawn(move || {
            let mut line = Vec::new();
            let mut byte = [0];
            while matches!(stdout.read(&mut byte), Ok(1)) && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            let _ = ready.send(line);
        });
        let peer = Self { child, port };
        let line = is_ready
            .recv_timeout(DEADLINE)
            .expect("the python server reports readiness");
        assert_eq!(
            String::from_utf8_lossy(&line),
            "The server is ready to receive"
        );
        peer
    }

    /// `localhost:PORT`: the name, so that resolution is exercised too
    /// (`localhost` comes from the hosts file, no DNS query).
    pub(crate) fn target(&self) -> String {
        format!("localhost:{}", self.port)
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The project's lecture-style peers: `<workspace>/peers`.
fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../peers")
}
