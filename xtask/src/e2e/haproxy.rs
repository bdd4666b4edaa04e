//! TCP through HAProxy (2.6, TCP mode, `send-proxy-v2`, health checks) to
//! three shoutd with `--proxy-protocol`: the haproxy.cfg docs/DEPLOYMENT.md
//! shows, run in the foreground from a directory of its own.
//!
//! Proves the answers are exact, the backends log the client's real
//! address, a backend killed with SIGKILL costs no completed conversation
//! a byte, and one stopped with SIGTERM drains with no answer lost.

use super::activation::stop;
use super::process::TempDir;
use super::process::{Shoutd, Spawned, Transport, free_port};
use super::{Env, Outcome};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Conversations per phase: before the kill, after it, around the stop.
const CONVERSATIONS: usize = 60;
/// HAProxy's connection cap: it asks for about twice this in descriptors.
const MAXCONN: usize = 1000;

/// The haproxy.cfg docs/DEPLOYMENT.md shows, for `listen` and `backends`.
pub(crate) fn haproxy_cfg(listen: SocketAddr, backends: &[SocketAddr]) -> String {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(index, addr)| {
            format!(
                "    server shoutd{index} {addr} send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 2\n"
            )
        })
        .collect();
    format!(
        "\
global
    maxconn {MAXCONN}
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # A connection refused by a dead backend is retried on another.
    retries 3
    option redispatch
frontend shout
    bind {listen}
    default_backend shoutd
backend shoutd
    balance roundrobin
{servers}"
    )
}

/// One line through HAProxy: returns the client's port once it is
/// answered exactly, or why not.
fn converse(listen: SocketAddr, text: &str) -> Result<u16, String> {
    let stream = TcpStream::connect_timeout(&listen, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("timeout: {e}"))?;
    let port = stream.local_addr().map_err(|e| e.to_string())?.port();
    (&stream)
        .write_all(format!("{text}\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| format!("`{text}`: {e}"))?;
    if line.is_empty() {
        return Err(format!("`{text}`: closed unanswered"));
    }
    if line != format!("{}\n", text.to_uppercase()) {
        return Err(format!("WRONG: `{text}` was answered {line:?}"));
    }
    Ok(port)
}

/// HAProxy running in the foreground from a directory of its own, with
/// the haproxy.cfg of [`haproxy_cfg`]; killed when dropped, its directory
/// then removed.
pub(crate) struct Haproxy {
    pub(crate) process: Spawned,
    /// Where clients connect.
    pub(crate) listen: SocketAddr,
    /// Removed after the process is killed (fields drop in order).
    _dir: TempDir,
}

impl Haproxy {
    /// Writes haproxy.cfg for `backends` (which must take the PROXY
    /// protocol), starts `haproxy -f haproxy.cfg -db` on a free port and
    /// waits, bounded, until a line through it is answered.
    pub(crate) fn start(backends: &[SocketAddr]) -> Result<Self, String> {
        let dir = TempDir::new("haproxy")?;
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port(Transport::Tcp)?));
        let cfg = dir.0.join("haproxy.cfg");
        std::fs::write(&cfg, haproxy_cfg(listen, backends))
            .map_err(|e| format!("cannot write {}: {e}", cfg.display()))?;
        let mut command = Command::new("haproxy");
        command
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut process = Spawned::start("haproxy", &mut command)?;
        // HAProxy binds a moment after it starts, and marks the backends up
        // after their first checks: probe, bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        while converse(listen, "probe").is_err() {
            if let Some(status) = process.try_wait()? {
                return Err(format!(
                    "haproxy exited {status}; {}",
                    process.stderr_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err("haproxy answered no probe within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self {
            process,
            listen,
            _dir: dir,
        })
    }
}

/// HAProxy in front of three shoutd: exact answers, the real client in the
/// -v log, SIGKILL and SIGTERM of a backend.
pub(crate) fn haproxy(env: &Env) -> Result<Outcome, String> {
    let mut backends = Vec::new();
    for _ in 0..3 {
        backends.push(Shoutd::start_on(
            env,
            "127.0.0.1:0",
            "127.0.0.1:0",
            &["--proxy-protocol", "-v"],
        )?);
    }
    let addrs: Vec<SocketAddr> = backends.iter().map(|backend| backend.tcp).collect();
    let result = Haproxy::start(&addrs).and_then(|haproxy| phases(haproxy.listen, &mut backends));
    for backend in &mut backends {
        backend.process.kill();
    }
    result.map(|note| Outcome::Pass(Some(note)))
}

fn phases(listen: SocketAddr, backends: &mut [Shoutd]) -> Result<String, String> {
    // 1. Exact answers, and the real client in a backend's -v log.
    let mut ports = Vec::new();
    for index in 0..CONVERSATIONS {
        ports.push(converse(listen, &format!("before the kill {index}"))?);
    }
    let expected = format!("the client is 127.0.0.1:{}", ports[0]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !backends
        .iter()
        .any(|backend| backend.process.stderr().contains(&expected))
    {
        if Instant::now() > deadline {
            return Err(format!("no backend logged `{expected}`"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // 2. SIGKILL of a backend mid-run: conversations go on; any that fail
    // are those HAProxy sent before marking it down, and none completes
    // with a wrong byte.
    let mut failed_after_kill = 0;
    for index in 0..CONVERSATIONS {
        if index == CONVERSATIONS / 4 {
            backends[0].process.kill();
        }
        match converse(listen, &format!("around the kill {index}")) {
            Ok(_) => {}
            Err(error) if error.starts_with("WRONG") => return Err(error),
            Err(_) => failed_after_kill += 1,
        }
    }
    // Marked down by now (checks every 200 ms, down at the first failure):
    // every new conversation is answered.
    std::thread::sleep(Duration::from_millis(600));
    for index in 0..CONVERSATIONS {
        converse(listen, &format!("after the kill {index}"))?;
    }
    // 3. SIGTERM of a backend with conversations open: each gets its answer.
    let mut open = Vec::new();
    for index in 0..10 {
        let stream = TcpStream::connect_timeout(&listen, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        (&stream)
            .write_all(format!("open {index}\n").as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if line != format!("OPEN {index}\n") {
            return Err(format!("`open {index}` answered {line:?}"));
        }
        open.push(reader);
    }
    for (index, reader) in open.iter_mut().enumerate() {
        reader
            .get_mut()
            .write_all(format!("draining {index}\n").as_bytes())
            .map_err(|e| format!("send: {e}"))?;
    }
    backends[1].process.signal(libc::SIGTERM)?;
    for (index, reader) in open.iter_mut().enumerate() {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("`draining {index}`: {e}"))?;
        if line != format!("DRAINING {index}\n") {
            return Err(format!("`draining {index}` lost: answered {line:?}"));
        }
    }
    drop(open);
    let status = backends[1].process.wait_timeout(Duration::from_secs(15))?;
    if !status.success() {
        return Err(format!("the drained backend exited {status}"));
    }
    std::thread::sleep(Duration::from_millis(600));
    for index in 0..CONVERSATIONS {
        converse(listen, &format!("after the stop {index}"))?;
    }
    stop(&mut backends[2].process, "shoutd")?;
    Ok(format!(
        "{} conversations answered exactly; the -v log names 127.0.0.1:{}; \
         {failed_after_kill} refused around the SIGKILL, none wrong; \
         10 answers drained on SIGTERM",
        CONVERSATIONS * 4 - failed_after_kill,
        ports[0]
    ))
}
