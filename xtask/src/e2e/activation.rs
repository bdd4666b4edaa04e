//! shoutd under socket activation, and process replacements measured under
//! load.
//!
//! `socket-activation` runs shoutd under the real `systemd-socket-activate`
//! (one for the UDP socket, nested around one for the TCP socket, since a
//! single one makes every socket of one type). `activation-restart` plays
//! the service manager itself: xtask holds a listening socket and hands it,
//! as fd 3, to successive shoutd processes, while clients connect all the
//! time; then it measures the `SO_REUSEPORT` hand-over the same way.
//!
//! Not for the library's own tests of passed sockets: crates/shoutd/tests
//! has those.

use super::process::{Spawned, Transport, free_port, lines_of};
use super::{Env, Outcome};
use command_fds::{CommandFdExt, FdMapping};
use shout_testkit::Listening;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a process may take to announce its sockets.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `command` with piped stdout and waits, bounded, for `sockets`
/// `listening` lines. Returns the process and what it announced.
pub(crate) fn start_listening(
    name: &str,
    command: &mut Command,
    sockets: usize,
) -> Result<(Spawned, Listening), String> {
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut process = Spawned::start(name, command)?;
    let lines = lines_of(process.take_stdout().expect("stdout is piped"));
    let deadline = Instant::now() + START_TIMEOUT;
    let mut listening = Listening::default();
    while listening.len() < sockets {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| {
                format!(
                    "{name} did not announce {sockets} socket(s) within {} s; {}",
                    START_TIMEOUT.as_secs(),
                    process.stderr_tail()
                )
            })?;
        listening
            .add_line(&line)
            .map_err(|error| format!("{name}: {error}"))?;
    }
    Ok((process, listening))
}

/// Sends SIGTERM and checks that the process exits 0 in time.
pub(crate) fn stop(process: &mut Spawned, name: &str) -> Result<(), String> {
    process.signal(libc::SIGTERM)?;
    let status = process.wait_timeout(Duration::from_secs(15))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{name} exited {status} on SIGTERM; {}",
            process.stderr_tail()
        ))
    }
}

/// `systemd-socket-activate` passes a UDP and a TCP socket; shoutd serves
/// both, says so, answers the datagram and the connection that started it,
/// and stops cleanly on SIGTERM.
pub(crate) fn socket_activation(env: &Env) -> Result<Outcome, String> {
    let port = free_port(Transport::Tcp)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if UdpSocket::bind(addr).is_err() {
        return Err(format!("UDP port {port} is taken; run again"));
    }
    let listen = addr.to_string();
    let mut command = Command::new("systemd-socket-activate");
    command
        .args(["--datagram", "-l", &listen])
        .args(["systemd-socket-activate", "-l", &listen])
        .arg(env.shoutd_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut process = Spawned::start("systemd-socket-activate", &mut command)?;
    let lines = lines_of(process.take_stdout().expect("stdout is piped"));

    // The outer one waits for a datagram, the inner one for a connection,
    // before each execs the next program: both stay queued for shoutd.
    let client = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("timeout: {e}"))?;
    let mut stream = None;
    let deadline = Instant::now() + START_TIMEOUT;
    while stream.is_none() && Instant::now() < deadline {
        client
            .send_to(b"activated by udp", addr)
            .map_err(|e| format!("send: {e}"))?;
        std::thread::sleep(Duration::from_millis(50));
        stream = TcpStream::connect(addr).ok();
    }
    let mut stream = stream.ok_or_else(|| {
        format!(
            "the TCP socket of the inner systemd-socket-activate never listened; {}",
            process.stderr_tail()
        )
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("timeout: {e}"))?;

    let mut listening = Listening::default();
    while listening.len() < 2 {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| format!("shoutd announced no sockets; {}", process.stderr_tail()))?;
        listening
            .add_line(&line)
            .map_err(|error| format!("shoutd: {error}"))?;
    }
    for proto in ["tcp", "udp"] {
        let note = listening.note(proto, addr).unwrap_or_default();
        if !note.starts_with("socket activation, fd ") {
            return Err(format!(
                "the {proto} line does not name socket activation: {listening:?}"
            ));
        }
    }

    stream
        .write_all(b"activated by tcp")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = [0; 16];
    stream
        .read_exact(&mut answer)
        .map_err(|e| format!("no TCP answer: {e}"))?;
    if &answer != b"ACTIVATED BY TCP" {
        return Err(format!("TCP answer {:?}", String::from_utf8_lossy(&answer)));
    }
    let mut buffer = [0; 64];
    let (len, from) = client
        .recv_from(&mut buffer)
        .map_err(|e| format!("no answer to the datagram that started it: {e}"))?;
    if &buffer[..len] != b"ACTIVATED BY UDP" || from != addr {
        return Err(format!(
            "UDP answer {:?} from {from}",
            String::from_utf8_lossy(&buffer[..len])
        ));
    }
    // Closed first, or the stop would wait its drain timeout for it.
    drop(stream);
    stop(&mut process, "shoutd")?;
    Ok(Outcome::Pass(Some(format!(
        "{}; {}",
        listening.note("tcp", addr).unwrap_or_default(),
        listening.note("udp", addr).unwrap_or_default()
    ))))
}

/// Counts of a load run, shared by its client threads.
#[derive(Default)]
struct Tally {
    /// Conversations answered exactly.
    answered: AtomicU64,
    /// Connections refused or reset before an answer, or answered wrongly.
    failed: AtomicU64,
}

/// Clients that each connect, send one line, check its answer and close,
/// over and over, until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    threads: Vec<std::thread::JoinHandle<Option<String>>>,
}

/// Client threads: enough that connections wait in the accept queue.
const CLIENTS: usize = 16;
/// Most conversations per client, so that a run is bounded in count.
const MAX_CONVERSATIONS: u64 = 200_000;

impl Load {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let threads = (0..CLIENTS)
            .map(|client| {
                let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
                std::thread::spawn(move || {
                    let mut first_failure = None;
                    for turn in 0..MAX_CONVERSATIONS {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let line = format!("client {client} turn {turn}\n");
                        match converse(addr, &line) {
                            Ok(()) => tally.answered.fetch_add(1, Ordering::SeqCst),
                            Err(why) => {
                                first_failure.get_or_insert(why);
                                tally.failed.fetch_add(1, Ordering::SeqCst)
                            }
                        };
                    }
                    first_failure
                })
            })
            .collect();
        Self {
            stop,
            tally,
            threads,
        }
    }

    /// Waits until `more` conversations have been answered (bounded).
    fn run_for(&self, more: u64) {
        let target = self.tally.answered.load(Ordering::SeqCst) + more;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.tally.answered.load(Ordering::SeqCst) < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the clients and returns what they counted.
    fn finish(self) -> Counts {
        self.stop.store(true, Ordering::SeqCst);
        let first = self
            .threads
            .into_iter()
            .filter_map(|thread| thread.join().ok().flatten())
            .next();
        Counts {
            answered: self.tally.answered.load(Ordering::SeqCst),
            failed: self.tally.failed.load(Ordering::SeqCst),
            first,
        }
    }
}

/// One conversation: connect, one line, its exact uppercase back.
fn converse(addr: SocketAddr, line: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("timeout: {e}"))?;
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = vec![0; line.len()];
    stream
        .read_exact(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    if answer == line.to_uppercase().as_bytes() {
        Ok(())
    } else {
        Err(format!(
            "wrong answer {:?}",
            String::from_utf8_lossy(&answer)
        ))
    }
}

/// shoutd given `listener` as fd 3, the way systemd passes it.
fn shoutd_on_passed(env: &Env, listener: &TcpListener) -> Result<(Spawned, Listening), String> {
    let fd = listener
        .try_clone()
        .map_err(|e| format!("dup the listener: {e}"))?;
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"LISTEN_PID=$$ exec "$0" "$@""#)
        .arg(env.shoutd_path())
        .env("LISTEN_FDS", "1")
        .fd_mappings(vec![FdMapping {
            parent_fd: fd.into(),
            child_fd: 3,
        }])
        .map_err(|e| format!("map fd 3: {e}"))?;
    start_listening("shoutd", &mut command, 1)
}

/// Process replacements per hand-over kind: each one is a chance to lose
/// a queued connection.
const REPLACEMENTS: usize = 5;
/// Conversations between two replacements.
const BETWEEN: u64 = 2_000;

/// (a) shoutd replaced while xtask holds the listening socket: no failure.
/// (b) the `SO_REUSEPORT` hand-over: failures counted and reported.
/// (c) the same hand-over in a network namespace of its own with
/// `net.ipv4.tcp_migrate_req = 1`: no failure. Where no namespace can be
/// made, (c) is a skip the outcome names.
pub(crate) fn activation_restart(env: &Env) -> Result<Outcome, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("addr: {e}"))?;
    let (mut old, _) = shoutd_on_passed(env, &listener)?;
    let load = Load::start(addr);
    for _ in 0..REPLACEMENTS {
        load.run_for(BETWEEN);
        let (new, _) = shoutd_on_passed(env, &listener)?;
        stop(&mut old, "the replaced shoutd")?;
        old = new;
    }
    load.run_for(BETWEEN);
    let passed = load.finish();
    stop(&mut old, "the last shoutd")?;
    if passed.failed > 0 || passed.answered == 0 {
        return Err(format!("passed socket: {passed}"));
    }
    let reuseport = reuseport_handover(env)?;
    let note = format!("passed socket: {passed}; SO_REUSEPORT: {reuseport}");
    match handover_with_migration(env)? {
        Migration::Measured(migrated) if migrated.failed > 0 || migrated.answered == 0 => Err(
            format!("{note}; SO_REUSEPORT with tcp_migrate_req=1: {migrated}"),
        ),
        Migration::Measured(migrated) => Ok(Outcome::Pass(Some(format!(
            "{note}; SO_REUSEPORT with tcp_migrate_req=1: {migrated}; \
             {REPLACEMENTS} replacements each"
        )))),
        Migration::Unavailable(why) => Ok(Outcome::Skip(format!(
            "{note}; SO_REUSEPORT with tcp_migrate_req=1 not measured: {why}"
        ))),
    }
}

/// What a load run over some replacements counted.
struct Counts {
    answered: u64,
    failed: u64,
    /// The first failure, if any.
    first: Option<String>,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} failed",
            self.failed,
            self.answered + self.failed
        )?;
        match &self.first {
            Some(why) => write!(f, " (first: {why})"),
            None => Ok(()),
        }
    }
}

/// The `SO_REUSEPORT` hand-over: a new `shoutd --workers 2` on the same
/// port, then SIGTERM to the old one, [`REPLACEMENTS`] times under load.
fn reuseport_handover(env: &Env) -> Result<Counts, String> {
    let start_reuseport = |tcp: &str| {
        let mut command = env.shoutd();
        command.args(["--tcp", tcp, "--workers", "2"]);
        start_listening("shoutd", &mut command, 1)
    };
    let (mut old, listening) = start_reuseport("127.0.0.1:0")?;
    let addr = listening.tcp().expect("one tcp line");
    let load = Load::start(addr);
    for _ in 0..REPLACEMENTS {
        load.run_for(BETWEEN);
        let (new, _) = start_reuseport(&addr.to_string())?;
        stop(&mut old, "the replaced shoutd")?;
        old = new;
    }
    load.run_for(BETWEEN);
    let counts = load.finish();
    stop(&mut old, "the last shoutd")?;
    Ok(counts)
}

/// The per-namespace setting that moves a closing listener's queued
/// connections to another listener of its `SO_REUSEPORT` group (Linux 5.14).
const MIGRATE_REQ: &str = "/proc/sys/net/ipv4/tcp_migrate_req";
/// The hidden xtask task that runs [`reuseport_handover`] inside the
/// namespace: `xtask __handover-in-netns SHOUTD`.
pub(crate) const IN_NETNS_TASK: &str = "__handover-in-netns";
/// How the task's result line starts: `handover ANSWERED FAILED [FIRST]`.
const RESULT_PREFIX: &str = "handover ";

/// What the migrated hand-over needs beyond root, by name in
/// [`super::needs::NEEDS`]: without them only that part is skipped.
pub(crate) const MIGRATION_NEEDS: &[&str] = &["unshare", "ip"];

/// The migrated hand-over's counts, or why it cannot run here.
enum Migration {
    Measured(Counts),
    Unavailable(String),
}

/// Runs [`reuseport_handover`] in a fresh network (and pid) namespace with
/// `tcp_migrate_req` set to 1 there, so the host's setting stays as it is.
/// xtask re-runs itself through `unshare` as [`IN_NETNS_TASK`]; the pid
/// namespace makes sure that killing `unshare` kills every shoutd inside.
fn handover_with_migration(env: &Env) -> Result<Migration, String> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(Migration::Unavailable(
            "making a network namespace needs root".into(),
        ));
    }
    let missing = super::needs::missing(env, MIGRATION_NEEDS);
    if !missing.is_empty() {
        return Ok(Migration::Unavailable(format!(
            "missing {}",
            missing.join(", ")
        )));
    }
    if !std::path::Path::new(MIGRATE_REQ).exists() {
        return Ok(Migration::Unavailable(format!(
            "this kernel has no {MIGRATE_REQ} (Linux < 5.14)"
        )));
    }
    let xtask = std::env::current_exe().map_err(|e| format!("xtask's own path: {e}"))?;
    let mut command = Command::new("unshare");
    command
        .args(["--net", "--pid", "--fork", "--kill-child", "--"])
        .arg(xtask)
        .arg(IN_NETNS_TASK)
        .arg(env.shoutd_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut process = Spawned::start("unshare", &mut command)?;
    let lines = lines_of(process.take_stdout().expect("stdout is piped"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let line = loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.starts_with(RESULT_PREFIX) => break line,
            Ok(_) => {}
            Err(_) => {
                let status = process.wait_timeout(Duration::from_secs(1));
                let stderr = process.stderr();
                if stderr.contains("unshare failed") {
                    return Ok(Migration::Unavailable(format!(
                        "unshare cannot make the namespace: {}",
                        process.stderr_tail()
                    )));
                }
                return Err(format!(
                    "the hand-over in the namespace gave no result ({status:?}); {}",
                    process.stderr_tail()
                ));
            }
        }
    };
    let status = process.wait_timeout(Duration::from_secs(10))?;
    if !status.success() {
        return Err(format!(
            "the hand-over in the namespace exited {status}; {}",
            process.stderr_tail()
        ));
    }
    parse_result(&line).map(Migration::Measured)
}

/// Reads [`IN_NETNS_TASK`]'s result line.
fn parse_result(line: &str) -> Result<Counts, String> {
    let rest = line.trim_end().strip_prefix(RESULT_PREFIX).unwrap_or("");
    let mut fields = rest.splitn(3, ' ');
    let mut number = || fields.next().and_then(|field| field.parse::<u64>().ok());
    match (number(), number()) {
        (Some(answered), Some(failed)) => Ok(Counts {
            answered,
            failed,
            first: fields
                .next()
                .filter(|why| !why.is_empty())
                .map(str::to_owned),
        }),
        _ => Err(format!("unreadable result from the namespace: {line:?}")),
    }
}

/// [`IN_NETNS_TASK`]: inside the fresh namespace, brings loopback up, sets
/// `tcp_migrate_req` to 1 and prints the hand-over's counts as one line.
pub(crate) fn handover_in_netns(args: &[String]) -> Result<(), String> {
    let [shoutd] = args else {
        return Err(format!("`{IN_NETNS_TASK}` takes the path of shoutd"));
    };
    crate::run_inherited(Command::new("ip").args(["link", "set", "lo", "up"]))?;
    std::fs::write(MIGRATE_REQ, "1").map_err(|e| format!("write {MIGRATE_REQ}: {e}"))?;
    let set = std::fs::read_to_string(MIGRATE_REQ).map_err(|e| format!("{MIGRATE_REQ}: {e}"))?;
    if set.trim() != "1" {
        return Err(format!(
            "{MIGRATE_REQ} reads {:?} after writing 1",
            set.trim()
        ));
    }
    let shoutd = std::path::PathBuf::from(shoutd);
    let env = Env::new(shoutd.clone(), shoutd.with_file_name("shout"), "".into());
    let counts = reuseport_handover(&env)?;
    println!(
        "{RESULT_PREFIX}{} {} {}",
        counts.answered,
        counts.failed,
        counts.first.unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_result_line_reads_back() {
        let counts = parse_result("handover 13740 2 read: Connection reset by peer\n").unwrap();
        assert_eq!((counts.answered, counts.failed), (13740, 2));
        assert_eq!(
            counts.to_string(),
            "2 of 13742 failed (first: read: Connection reset by peer)"
        );
        let clean = parse_result("handover 100 0 \n").unwrap();
        assert_eq!(clean.to_string(), "0 of 100 failed");
        assert!(parse_result("handover many 0").is_err());
        assert!(parse_result("listening tcp 127.0.0.1:1").is_err());
    }
}
