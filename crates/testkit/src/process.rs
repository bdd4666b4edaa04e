//! A server started as a process, its start-up lines read back, its stderr
//! collected, killed on drop.

use crate::{Listening, TIMEOUT};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running server process that announced its sockets; killed and reaped on
/// drop if still running.
///
/// Its stderr is collected by a thread, so that logging never blocks it.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Child,
    listening: Listening,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts `command` with piped stdout and stderr and waits, for at most
    /// [`TIMEOUT`], until it printed `sockets` `listening PROTO ADDR` lines.
    ///
    /// # Errors
    /// When it cannot start, exits first, prints another line, or is too
    /// slow: the message names `name` and quotes its stderr.
    pub fn start(name: &str, command: &mut Command, sockets: usize) -> Result<Self, String> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("{name} does not start: {error}"))?;
        let lines = lines_of(child.stdout.take().expect("stdout is piped"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = {
            let pipe = child.stderr.take().expect("stderr is piped");
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut all = stderr.lock().unwrap_or_else(|e| e.into_inner());
                    all.push_str(&line);
                    all.push('\n');
                }
            })
        };
        let mut server = Self {
            name: name.to_owned(),
            child,
            listening: Listening::default(),
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        let deadline = Instant::now() + TIMEOUT;
        while server.listening.len() < sockets {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{name} did not print its listening lines within {TIMEOUT:?}; stderr: {}",
                        server.stderr_so_far()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = server.wait_timeout(Duration::from_secs(2));
                    return Err(format!(
                        "{name} exited before listening ({}); stderr: {}",
                        status.map_or_else(|error| error, |status| status.to_string()),
                        server.stderr_so_far()
                    ));
                }
            };
            server
                .listening
                .add_line(&line)
                .map_err(|error| format!("{name}: {error}"))?;
        }
        Ok(server)
    }

    /// Returns the sockets it announced.
    pub fn listening(&self) -> &Listening {
        &self.listening
    }

    /// Returns its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends it `signal`.
    ///
    /// # Panics
    /// When `kill(2)` fails: the process is ours, so it cannot but by a bug.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) with a pid we spawned and own; no memory involved.
        let status = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            status,
            0,
            "kill {signal} {}: {}",
            self.name,
            std::io::Error::last_os_error()
        );
    }

    /// Kills it with SIGKILL, as a crash or the OOM killer would, and reaps it.
    ///
    /// # Panics
    /// When it had already exited for another reason.
    pub fn kill_9(mut self) {
        self.signal(libc::SIGKILL);
        let status = self.child.wait().expect("the process can be reaped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "{} ended otherwise: {status}",
            self.name
        );
    }

    /// Returns a field of `/proc/PID/status` in KiB: `VmRSS` (resident now)
    /// or `VmHWM` (the peak resident set since start).
    ///
    /// # Panics
    /// When the field is missing (the process is gone, or not Linux).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }

    /// Returns how many descriptors the process has open now.
    ///
    /// # Panics
    /// When `/proc/PID/fd` cannot be read.
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("the server's /proc fd list")
            .count()
    }

    /// Returns what it has written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits at most `timeout` for it to exit.
    ///
    /// # Errors
    /// When it is still running at the deadline (it is left running).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    return Err(format!("{} still running after {timeout:?}", self.name));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(error) => return Err(format!("{}: {error}", self.name)),
            }
        }
    }

    /// Waits (at most [`TIMEOUT`]) for it to exit; returns its exit code and
    /// all it wrote to stderr.
    ///
    /// # Panics
    /// When it does not exit in time.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let status = self
            .wait_timeout(TIMEOUT)
            .unwrap_or_else(|error| panic!("{error}; stderr: {}", self.stderr_so_far()));
        if let Some(reader) = self.stderr_reader.take() {
            join_within(reader, TIMEOUT).expect("stderr closes when the process exits");
        }
        (status.code(), self.stderr_so_far())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards each line of `pipe` to the returned channel, from a thread.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Joins `thread` if it finishes within `timeout`; returns `None` (leaving it
/// detached) when it does not, or when it panicked.
pub fn join_within<T>(thread: JoinHandle<T>, timeout: Duration) -> Option<T> {
    let deadline = Instant::now() + timeout;
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    thread.join().ok()
}
