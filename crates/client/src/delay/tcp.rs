//! The four ways over TCP (and TLS), the round-trip probes and the rate
//! measured on one large object.
//!
//! Every conversation runs through [`shout_stream`]: its sender thread
//! sends the requests while the calling thread reads the answers, so an
//! object of any size moves without deadlock, over TLS too. What is sent
//! and when is decided by [`Requests`], the stream's input: everything at
//! once (pipelined), or each request only once the previous answer is
//! complete (persistent, one at a time). [`Answers`], the stream's output,
//! notes when each answer's first and last bytes came.

use super::{Lookup, ObjectTiming, Phases, Rate, RateSource, Run, Way};
use crate::{ClientError, Connection, Connector, Resolve, RttStats, shout_stream};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The bytes of each round-trip probe: small, so that its transmission
/// time does not count.
const PROBE_SIZE: usize = 16;

/// Returns the address that answered, the probes' statistics and each
/// probe's round trip, measured over one connection.
pub(super) fn probe_rtt(
    run: &Run<'_>,
    addrs: &[SocketAddr],
) -> Result<(SocketAddr, RttStats, Vec<Duration>), ClientError> {
    let connection = run.connector(addrs).connect()?;
    let peer = connection.peer();
    let probes: Vec<u32> = (0..run.options.probes.get()).collect();
    let timed = converse(run, connection, &probes, PROBE_SIZE, Send::OneAtATime)?;
    let mut stats = RttStats::default();
    let samples: Vec<Duration> = timed
        .iter()
        .map(|object| object.last.saturating_duration_since(object.sent))
        .collect();
    for &sample in &samples {
        stats.add(sample);
    }
    Ok((peer, stats, samples))
}

/// Measures the rate on one object of `rate_sample` bytes, sent as two
/// halves: the second half's time, after slow start has opened the
/// window, gives R. The echo streams, so each direction carries the half
/// once in that time.
pub(super) fn measure_rate(
    run: &Run<'_>,
    addrs: &[SocketAddr],
) -> Result<(Rate, RateSource), ClientError> {
    let half = (run.options.rate_sample / 2).max(1);
    let connection = run.connector(addrs).connect()?;
    let timed = converse(run, connection, &[0, 1], half, Send::AllAtOnce)?;
    let second_half = timed[1].last.saturating_duration_since(timed[0].last);
    let seconds = second_half.as_secs_f64().max(1e-9);
    let rate = Rate::from_bits_per_second(half as f64 * 8.0 / seconds)
        .expect("a positive size over a positive time");
    log::info!(
        "rate {rate}: the second half of a {}-byte object came in {:.3} ms",
        2 * half,
        seconds * 1e3
    );
    Ok((
        rate,
        RateSource::Measured {
            bytes: 2 * half as u64,
        },
    ))
}

/// Fetches the run's objects the way `way` does, and times them.
pub(super) fn fetch(
    run: &Run<'_>,
    resolver: &dyn Resolve,
    way: Way,
) -> Result<Vec<ObjectTiming>, ClientError> {
    let n = run.options.objects.get();
    let started = Instant::now();
    let lookup = Lookup::run(run.target, resolver)?;
    let connector = run.connector(&lookup.addrs);
    let fetch = Fetch {
        run,
        connector: &connector,
        started,
    };
    match way {
        Way::NonPersistent => {
            let mut objects = Vec::with_capacity(n as usize);
            let mut mark = started;
            for index in 0..n {
                let looked_up = (index == 0).then_some(&lookup);
                let timed = fetch.connection(&[index], index, Send::OneAtATime, mark, looked_up)?;
                mark = started + timed[0].end();
                objects.extend(timed);
            }
            Ok(objects)
        }
        Way::Parallel => super::in_parallel(run, started, &lookup, |index, mark, looked_up| {
            let timed = fetch.connection(&[index], index, Send::OneAtATime, mark, looked_up)?;
            Ok(timed[0])
        }),
        Way::Persistent => {
            let all: Vec<u32> = (0..n).collect();
            fetch.connection(&all, 0, Send::OneAtATime, started, Some(&lookup))
        }
        Way::Pipelined => {
            let all: Vec<u32> = (0..n).collect();
            fetch.connection(&all, 0, Send::AllAtOnce, started, Some(&lookup))
        }
    }
}

/// One way's fetching.
struct Fetch<'a> {
    run: &'a Run<'a>,
    connector: &'a Connector,
    started: Instant,
}

impl Fetch<'_> {
    /// Opens a connection at `mark` (after `lookup`, when the objects
    /// waited for it), fetches `objects` over it and times each, its
    /// phases following one another from `mark`.
    fn connection(
        &self,
        objects: &[u32],
        connection: u32,
        send: Send,
        mark: Instant,
        lookup: Option<&Lookup>,
    ) -> Result<Vec<ObjectTiming>, ClientError> {
        let looked_up = lookup.map_or(mark, |lookup| lookup.done.max(mark));
        let opened = self.connector.connect()?;
        let ready = Instant::now();
        let tls = opened.tls_time().unwrap_or_default();
        let size = self.run.options.size.get();
        let timed = converse(self.run, opened, objects, size, send)?;
        let mut timings = Vec::with_capacity(objects.len());
        let mut previous_end = ready;
        for (position, (&index, times)) in objects.iter().zip(&timed).enumerate() {
            // Each object's wait for its first byte starts when it could be
            // sent: the connection ready, the previous answer complete (one
            // at a time), or its own request going out (pipelined).
            let (start, from) = match (position, send) {
                (0, _) => (mark, ready),
                (_, Send::OneAtATime) => (previous_end, previous_end),
                (_, Send::AllAtOnce) => (times.sent, times.sent),
            };
            let phases = if position == 0 {
                Phases {
                    lookup: looked_up - mark,
                    connect: (ready - looked_up).saturating_sub(tls),
                    tls,
                    first_byte: times.first.saturating_duration_since(from),
                    rest: times.last.saturating_duration_since(times.first),
                }
            } else {
                Phases {
                    first_byte: times.first.saturating_duration_since(from),
                    rest: times.last.saturating_duration_since(times.first),
                    ..Phases::default()
                }
            };
            timings.push(ObjectTiming {
                index,
                connection,
                start: start.saturating_duration_since(self.started),
                phases,
                attempts: 1,
            });
            previous_end = times.last.max(previous_end);
        }
        Ok(timings)
    }
}

/// How the requests of one connection go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Send {
    /// Each request once the previous answer is complete.
    OneAtATime,
    /// Every request at once.
    AllAtOnce,
}

/// When one object's request went out and its answer came.
#[derive(Debug, Clone, Copy)]
struct Times {
    sent: Instant,
    first: Instant,
    last: Instant,
}

/// Sends `objects.len()` requests of `size` bytes over `connection` as
/// `send` says, reads every answer, and returns each object's times.
/// The connection is half-closed after the last request and read to its
/// end.
fn converse(
    run: &Run<'_>,
    connection: Connection,
    objects: &[u32],
    size: usize,
    send: Send,
) -> Result<Vec<Times>, ClientError> {
    let peer = connection.peer();
    let timeout = run.options.timeout;
    let gate = Arc::new(Gate::default());
    let requests = Requests {
        letters: objects
            .iter()
            .map(|&index| b'a' + (index % 26) as u8)
            .collect(),
        size,
        next: 0,
        offset: 0,
        send,
        timeout,
        gate: Arc::clone(&gate),
    };
    let mut answers = Answers {
        size: size as u64,
        received: 0,
        first: vec![None; objects.len()],
        last: vec![None; objects.len()],
        gate: Arc::clone(&gate),
    };
    let streamed = shout_stream(connection, requests, &mut answers, Some(timeout));
    gate.close();
    if let Err(error) = streamed {
        // The gate gave up on an answer: that is the server's silence, not
        // a failure to read the input.
        return Err(match (&error, gate.timed_out.load(Ordering::SeqCst)) {
            (ClientError::Input(_), true) if answers.received == 0 => ClientError::ReplyTimeout {
                addr: peer,
                timeout,
            },
            (ClientError::Input(_), true) => ClientError::ReplyStalled {
                addr: peer,
                received: answers.received,
                expected: None,
                timeout,
            },
            _ => error,
        });
    }
    let sent = lock(&gate.state).sent.clone();
    let mut times = Vec::with_capacity(objects.len());
    for position in 0..objects.len() {
        match (
            sent.get(position),
            answers.first[position],
            answers.last[position],
        ) {
            (Some(&sent), Some(first), Some(last)) => times.push(Times { sent, first, last }),
            // shout_stream checked that every answer byte came.
            _ => {
                return Err(ClientError::ClosedEarly {
                    addr: peer,
                    received: answers.received,
                    expected: size as u64 * objects.len() as u64,
                });
            }
        }
    }
    Ok(times)
}

/// What the requests' side and the answers' side share: when each request
/// went out, how many answers are complete, and whether the answers'
/// side is gone.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
    timed_out: AtomicBool,
}

#[derive(Debug, Default)]
struct GateState {
    sent: Vec<Instant>,
    answered: usize,
    closed: bool,
}

impl Gate {
    /// Notes that the answers' side is gone: a request waiting for an
    /// answer waits no more.
    fn close(&self) {
        lock(&self.state).closed = true;
        self.changed.notify_all();
    }
}

/// The stream's input: the requests, one lowercase letter repeated `size`
/// times each.
struct Requests {
    letters: Vec<u8>,
    size: usize,
    next: usize,
    offset: usize,
    send: Send,
    timeout: Duration,
    gate: Arc<Gate>,
}

impl Read for Requests {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(&letter) = self.letters.get(self.next) else {
            return Ok(0);
        };
        if self.offset == 0 {
            let mut state = lock(&self.gate.state);
            if self.send == Send::OneAtATime {
                let deadline = Instant::now() + self.timeout;
                while state.answered < self.next && !state.closed {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.gate.timed_out.store(true, Ordering::SeqCst);
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the previous answer did not come in time",
                        ));
                    }
                    state = self
                        .gate
                        .changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                if state.closed {
                    return Err(io::Error::other("the answers stopped"));
                }
            }
            state.sent.push(Instant::now());
        }
        let len = buf.len().min(self.size - self.offset);
        buf[..len].fill(letter);
        self.offset += len;
        if self.offset == self.size {
            self.next += 1;
            self.offset = 0;
        }
        Ok(len)
    }
}

/// The stream's output: counts the answers' bytes and notes when each
/// answer's first and last came.
struct Answers {
    size: u64,
    received: u64,
    first: Vec<Option<Instant>>,
    last: Vec<Option<Instant>>,
    gate: Arc<Gate>,
}

impl Write for Answers {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let now = Instant::now();
        let mut rest = buf.len() as u64;
        while rest > 0 {
            let object = (self.received / self.size) as usize;
            if object >= self.first.len() {
                // More than was asked for: shout_stream says so.
                self.received += rest;
                break;
            }
            let within = self.received % self.size;
            if within == 0 {
                self.first[object] = Some(now);
            }
            let taken = rest.min(self.size - within);
            self.received += taken;
            rest -= taken;
            if within + taken == self.size {
                self.last[object] = Some(now);
                lock(&self.gate.state).answered = object + 1;
                self.gate.changed.notify_all();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Locks `mutex`; a panic elsewhere leaves plain data behind, so the poison
/// is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
