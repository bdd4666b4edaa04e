//! One run of the link: two namespaces, the forwarding in both directions,
//! the server command, the client command, and the cleanup.
//!
//! The order: both namespaces and their devices, then the forwarding, then
//! the server; the client starts once something listens in the server's
//! namespace (at most [`READY_TIMEOUT`] after the server started). When the
//! client ends, or a stop is asked, the client and then the server are
//! stopped (SIGTERM, SIGKILL after [`GRACE`]), each as a whole process
//! group, so that a shell's children go too.

use crate::emulator::{Counters, LinkConfig};
use crate::forward::Direction;
use crate::namespace::Namespace;
use crate::{CLIENT_ADDR, CLIENT_VAR, LinkError, SERVER_ADDR, SERVER_VAR};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The longest the client waits for the server to listen.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a command has to end after SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);
/// How often the run looks at its commands and at the stop flag.
const TICK: Duration = Duration::from_millis(10);

/// The client command: a shell line, or a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// Run through `sh -c`, so `$SHOUT_LINK_SERVER` expands inside it.
    Shell(String),
    /// Run directly, with the variables in its environment.
    Exec(Vec<OsString>),
}

/// What to run over which link.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Each direction's link; the server-to-client direction draws from the
    /// seed plus one.
    pub link: LinkConfig,
    /// The server command, run through `sh -c`.
    pub server: String,
    /// The client command.
    pub client: ClientCommand,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Report {
    /// The client command's status.
    pub client: ExitStatus,
    /// The server command's status, if it ended by itself before the stop.
    pub server_ended: Option<ExitStatus>,
    /// Whether a stop was asked (a signal) before the client ended.
    pub stopped: bool,
    /// What the client-to-server direction did.
    pub client_to_server: Counters,
    /// What the server-to-client direction did.
    pub server_to_client: Counters,
}

/// Runs `plan` and returns how it ended. Setting `stop` (from a signal
/// handler) stops the client, then everything else, within about
/// [`GRACE`] twice.
pub fn run(plan: &Plan, stop: &AtomicBool) -> Result<Report, LinkError> {
    let (server_ns, server_dev) = Namespace::new("server", SERVER_ADDR, CLIENT_ADDR)?;
    let (client_ns, client_dev) = Namespace::new("client", CLIENT_ADDR, SERVER_ADDR)?;
    let (server_dev, client_dev) = (Arc::new(server_dev), Arc::new(client_dev));
    let upstream = Direction::start(
        "client to server",
        Arc::clone(&client_dev),
        Arc::clone(&server_dev),
        plan.link.clone(),
    )
    .map_err(LinkError::Thread)?;
    let downstream = Direction::start(
        "server to client",
        Arc::clone(&server_dev),
        Arc::clone(&client_dev),
        LinkConfig {
            seed: plan.link.seed.wrapping_add(1),
            ..plan.link.clone()
        },
    )
    .map_err(LinkError::Thread)?;

    let mut server_command = Command::new("sh");
    server_command
        .arg("-c")
        .arg(&plan.server)
        .stdin(Stdio::null())
        .process_group(0);
    let mut server = Group::spawn(&server_ns, "server", server_command, true)?;
    wait_ready(&mut server, stop)?;

    let mut client_command = match &plan.client {
        ClientCommand::Shell(line) => {
            let mut command = Command::new("sh");
            command.arg("-c").arg(line);
            command
        }
        ClientCommand::Exec(argv) => {
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| LinkError::Setup("the client command is empty".into()))?;
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    };
    // From a terminal the client stays in the terminal's process group, so
    // that it can read the terminal and Ctrl-C reaches it; otherwise it gets
    // a group of its own, which the stop ends as a whole.
    let own_group = !std::io::stdin().is_terminal();
    if own_group {
        client_command.process_group(0);
    }
    let mut client = Group::spawn(&client_ns, "client", client_command, own_group)?;
    let mut stopped = false;
    let client_status = loop {
        if client.exited() {
            break client.finish();
        }
        if stop.load(Ordering::SeqCst) {
            stopped = true;
            break client.stop();
        }
        std::thread::sleep(TICK);
    };
    let server_ended = server.exited().then(|| server.finish());
    if server_ended.is_none() {
        server.stop();
    }
    let report = Report {
        client: client_status,
        server_ended,
        stopped,
        client_to_server: upstream.stop(),
        server_to_client: downstream.stop(),
    };
    drop((server_ns, client_ns));
    Ok(report)
}

/// Waits until something listens in the server's namespace: a TCP socket
/// in LISTEN or a bound UDP socket, as /proc/PID/net shows them for the
/// server's namespace. Gives up quietly after [`READY_TIMEOUT`].
fn wait_ready(server: &mut Group, stop: &AtomicBool) -> Result<(), LinkError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let pid = server.child.id();
    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        if listens(pid) {
            return Ok(());
        }
        if server.exited() {
            return Err(LinkError::ServerEnded(server.finish()));
        }
        std::thread::sleep(TICK);
    }
    if stop.load(Ordering::SeqCst) {
        // A signal ended the wait; the caller stops what it started.
        return Ok(());
    }
    log::warn!(
        "nothing listens in the server's namespace after {} s; starting the client anyway",
        READY_TIMEOUT.as_secs()
    );
    Ok(())
}

/// Whether the network namespace of process `pid` has a listening TCP
/// socket or a bound UDP socket.
fn listens(pid: u32) -> bool {
    let table = |name: &str| std::fs::read_to_string(format!("/proc/{pid}/net/{name}"));
    // The fourth column is the state: 0A is LISTEN.
    let tcp = ["tcp", "tcp6"].iter().any(|name| {
        table(name).is_ok_and(|text| {
            text.lines()
                .skip(1)
                .any(|line| line.split_whitespace().nth(3) == Some("0A"))
        })
    });
    tcp || ["udp", "udp6"]
        .iter()
        .any(|name| table(name).is_ok_and(|text| text.lines().count() > 1))
}

/// A command started in a namespace, stopped with its process group.
struct Group {
    role: &'static str,
    child: Child,
    /// Whether the command leads a process group of its own.
    own_group: bool,
    /// Its status, once reaped.
    status: Option<ExitStatus>,
}

impl Group {
    /// Starts `command` on the namespace's thread, with the link's
    /// addresses in its environment.
    fn spawn(
        namespace: &Namespace,
        role: &'static str,
        mut command: Command,
        own_group: bool,
    ) -> Result<Self, LinkError> {
        command
            .env(SERVER_VAR, SERVER_ADDR.to_string())
            .env(CLIENT_VAR, CLIENT_ADDR.to_string());
        let program = command.get_program().to_string_lossy().into_owned();
        let child = namespace
            .run(move || command.spawn())?
            .map_err(|source| LinkError::Spawn {
                role,
                program,
                source,
            })?;
        Ok(Self {
            role,
            child,
            own_group,
            status: None,
        })
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }

    /// Whether the command has ended. It stays unreaped (a zombie), so that
    /// its pid, which names its process group, cannot be reused before the
    /// group is cleared.
    fn exited(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        !matches!(
            waitid(Id::Pid(self.pid()), flags),
            Ok(WaitStatus::StillAlive)
        )
    }

    /// Sends `signal` to the command's group, or to the command alone when
    /// it has none of its own.
    fn signal(&self, signal: Signal) {
        let sent = if self.own_group {
            killpg(self.pid(), signal)
        } else {
            kill(self.pid(), signal)
        };
        if let Err(errno) = sent {
            log::debug!("{signal} to the {} command: {}", self.role, errno.desc());
        }
    }

    /// Stops the command: SIGTERM, then SIGKILL after [`GRACE`]. Returns
    /// its status.
    fn stop(&mut self) -> ExitStatus {
        if !self.exited() {
            self.signal(Signal::SIGTERM);
            let deadline = Instant::now() + GRACE;
            while !self.exited() && Instant::now() < deadline {
                std::thread::sleep(TICK);
            }
            if !self.exited() {
                log::warn!(
                    "the {} command did not end {} s after SIGTERM; killing it",
                    self.role,
                    GRACE.as_secs()
                );
            }
        }
        self.finish()
    }

    /// Kills what is left of the group, then reaps the command.
    fn finish(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        // The leader is a zombie or alive, so its pid still names the group.
        self.signal(Signal::SIGKILL);
        let status = match self.child.wait() {
            Ok(status) => status,
            Err(error) => {
                log::warn!("waiting for the {} command: {error}", self.role);
                std::os::unix::process::ExitStatusExt::from_raw(0)
            }
        };
        self.status = Some(status);
        status
    }
}

impl Drop for Group {
    /// Stops the command if it still runs, so an error leaves none behind.
    fn drop(&mut self) {
        if self.status.is_none() {
            self.stop();
        }
    }
}
