//! The `pubsub-example` scenario: shout-server's `examples/pubsub.rs`
//! built in release and run as a process, as its doc says to run it. Its
//! service is tested inside shout-server's tests; this proves the program
//! around it: the address argument and its default, the `listening` line,
//! and the heartbeat over real time.

use super::load::connect;
use super::process::{Spawned, lines_of};
use super::{Env, Outcome};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

/// Lines a client reads at most while waiting for one it expects: a
/// `PING` every 500 ms for a few seconds, with room to spare.
const MAX_LINES: usize = 64;

/// Runs the example with no address, then with one; over each, a
/// subscriber, a publisher, and a client that never answers its `PING`s.
pub(crate) fn pubsub_example(env: &Env) -> Result<Outcome, String> {
    let path = env.example("pubsub");
    if !path.is_file() {
        return Err(format!("the example is not built at {}", path.display()));
    }
    for address in [None, Some("127.0.0.1:0")] {
        let mut command = Command::new(&path);
        command.args(address);
        let (_process, addr) = start_listening_tcp(&mut command)?;
        if !addr.ip().is_loopback() || addr.port() == 0 {
            return Err(format!("listening on {addr}: not 127.0.0.1 with a port"));
        }
        publish_and_receive(addr)?;
        bye_without_pong(addr)?;
    }
    Ok(Outcome::Pass(None))
}

/// Starts `command` and waits, bounded, for its `listening tcp ADDR`.
fn start_listening_tcp(command: &mut Command) -> Result<(Spawned, SocketAddr), String> {
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut process = Spawned::start("pubsub", command)?;
    let lines = lines_of(process.take_stdout().expect("stdout is piped"));
    let line = match lines.recv_timeout(Duration::from_secs(10)) {
        Ok(line) => line,
        Err(RecvTimeoutError::Timeout) => {
            return Err(format!(
                "no listening line within 10 s; {}",
                process.stderr_tail()
            ));
        }
        Err(RecvTimeoutError::Disconnected) => {
            return Err(format!(
                "exited before listening; {}",
                process.stderr_tail()
            ));
        }
    };
    let addr = (line.trim_end())
        .strip_prefix("listening tcp ")
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| format!("`{line}` is not `listening tcp ADDR`"))?;
    Ok((process, addr))
}

/// One line-speaking client.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Result<Self, String> {
        let writer = connect(addr)?;
        let reader = writer.try_clone().map_err(|error| error.to_string())?;
        Ok(Self {
            reader: BufReader::new(reader),
            writer,
        })
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        (self.writer.write_all(format!("{line}\n").as_bytes()))
            .map_err(|error| format!("send {line:?}: {error}"))
    }

    /// Returns the next line, without its newline; empty at the end of
    /// the stream.
    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        (self.reader.read_line(&mut line)).map_err(|error| format!("read: {error}"))?;
        Ok(line.trim_end_matches('\n').to_owned())
    }

    /// Returns the next line that is not a `PING`, answering each `PING`.
    fn line_answering_pings(&mut self) -> Result<String, String> {
        for _ in 0..MAX_LINES {
            let line = self.line()?;
            if line != "PING" {
                return Ok(line);
            }
            self.send("PONG")?;
        }
        Err(format!("{MAX_LINES} PINGs and nothing else"))
    }

    /// Sends `line` and checks the answer, answering `PING`s meanwhile.
    fn ask(&mut self, line: &str, expected: &str) -> Result<(), String> {
        self.send(line)?;
        let answer = self.line_answering_pings()?;
        if answer != expected {
            return Err(format!("{line:?} got {answer:?}, not {expected:?}"));
        }
        Ok(())
    }
}

/// A subscriber gets what a publisher publishes, counted in `OK N`.
fn publish_and_receive(addr: SocketAddr) -> Result<(), String> {
    let mut subscriber = Client::connect(addr)?;
    let mut publisher = Client::connect(addr)?;
    subscriber.ask("SUB news", "OK")?;
    publisher.ask("PUB news e2e says hello", "OK 1")?;
    let message = subscriber.line_answering_pings()?;
    if message != "MSG news e2e says hello" {
        return Err(format!("the subscriber got {message:?}"));
    }
    subscriber.ask("UNSUB news", "OK")?;
    publisher.ask("PUB news nobody", "OK 0")
}

/// A client that reads its `PING`s and never answers gets `BYE timeout`
/// and the end of the stream, no sooner than the deadline allows.
fn bye_without_pong(addr: SocketAddr) -> Result<(), String> {
    let started = Instant::now();
    let mut silent = Client::connect(addr)?;
    let mut pings = 0;
    let last = loop {
        let line = silent.line()?;
        if line != "PING" || pings == MAX_LINES {
            break line;
        }
        pings += 1;
    };
    if last != "BYE timeout" {
        return Err(format!(
            "after {pings} PINGs: {last:?}, not \"BYE timeout\""
        ));
    }
    // The first PING after 500 ms, the BYE 1.5 s after it.
    if started.elapsed() < Duration::from_millis(2000) || pings < 3 {
        return Err(format!(
            "BYE after {:?} and {pings} PINGs: too soon",
            started.elapsed()
        ));
    }
    match silent.line()?.as_str() {
        "" => Ok(()),
        more => Err(format!(
            "after the BYE: {more:?}, not the end of the stream"
        )),
    }
}
