//! The blocking TCP load: one thread per connection, each sending one
//! request and reading its whole reply before the next, with std's blocking
//! `TcpStream` alone. It is the shape of many real clients (and of
//! rust_echo_bench), where a server is woken once per request and cannot
//! batch; the event-loop load of `tcp` pipelines instead.
//!
//! A connection that fails (refused, closed, a wrong byte, no reply within
//! `timeout`) counts one error and its thread stops; the others go on.

use super::record::Recorder;
use super::schedule::Window;
use super::{BenchError, Outcome, Plan, Shared};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Replies between two updates of the shared progress counters.
const PUBLISH_EVERY: u64 = 64;

/// Runs one blocking connection: `plan.connections` is 1.
pub(crate) fn run(plan: &Plan, shared: &Shared) -> Result<Outcome, BenchError> {
    let connected = connect(plan);
    // Every thread reaches the barrier, even one that failed to connect.
    shared.ready.wait();
    let mut recorder = Recorder::new();
    let started = Instant::now();
    let mut window = Window::new(started, plan.warmup, plan.duration, plan.quota);
    let mut stream = match connected {
        Ok(stream) => stream,
        Err(error) => {
            recorder.error(|| format!("cannot connect to {}: {error}", plan.addr));
            return Ok(outcome(recorder, Duration::ZERO));
        }
    };
    let payload = &plan.payload;
    let mut reply = vec![0; payload.size()];
    let mut n = 0;
    loop {
        let sent = Instant::now();
        if !window.issue(sent) {
            break;
        }
        let answered = stream
            .write_all(payload.request(n))
            .and_then(|()| stream.read_exact(&mut reply));
        let now = Instant::now();
        let measured = window.settle(sent, now);
        if let Err(error) = answered {
            recorder.error(|| match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    format!("no reply within {:?}", plan.timeout)
                }
                io::ErrorKind::UnexpectedEof => "the server closed the connection".into(),
                _ => format!("the connection failed: {error}"),
            });
            break;
        }
        if reply != payload.reply_from(n, 0) {
            recorder.error(|| format!("a wrong reply to request {n}"));
            break;
        }
        if let Some(in_window) = measured {
            recorder.message(now - sent, in_window);
        }
        n += 1;
        if n % PUBLISH_EVERY == 0 {
            recorder.publish(&shared.progress);
        }
    }
    let elapsed = window.elapsed(Instant::now());
    recorder.publish(&shared.progress);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(outcome(recorder, elapsed))
}

/// Connects, with Nagle off (a request is one write) and reads bounded by
/// the timeout.
fn connect(plan: &Plan) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&plan.addr, plan.connect_timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(plan.timeout))?;
    stream.set_write_timeout(Some(plan.timeout))?;
    Ok(stream)
}

fn outcome(recorder: Recorder, elapsed: Duration) -> Outcome {
    Outcome {
        recorder,
        elapsed,
        held: None,
    }
}
