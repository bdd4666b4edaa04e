//! The TCP load: connections driven by one `mio::Poll` per thread.
//!
//! Each connection keeps its unsent requests in a buffer of its own and its
//! requests in flight in a queue; a reply is checked as its bytes arrive,
//! against the uppercase the payload already knows, and completes the
//! oldest request when its last byte is in. Readiness is remembered per
//! connection (edge-triggered, as shoutd does) and forgotten only when a
//! call says `WouldBlock` or a short read says the same.
//!
//! A connection that fails (refused, reset, closed early, a wrong byte, no
//! byte for `timeout` with requests in flight) counts one error, settles its
//! requests as failed and closes; in new-connection mode the slot opens a
//! fresh connection, otherwise the run goes on with the others.

use super::record::{Progress, Recorder};
use super::schedule::{Pacer, Window, wait_until};
use super::{Held, Outcome, Plan, Shared};
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use shout_client::ClientError;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

/// Handshakes in progress at once while connections open: a burst, bounded
/// so that one thread's connects do not all wait on one listen backlog.
const MAX_CONNECTING: usize = 1024;
/// How often connections are checked for an overdue reply or handshake.
const TIMEOUT_SCAN: Duration = Duration::from_millis(50);
/// The most one read takes.
const READ_BUFFER: usize = 64 * 1024;

/// Runs one thread's share of a TCP benchmark.
pub(crate) fn run(plan: &Plan, shared: &Shared) -> Result<Outcome, ClientError> {
    let mut events = Events::with_capacity(1024);
    let prepared = Engine::new(plan, &shared.progress).and_then(|mut engine| {
        if !plan.new_connection {
            engine.open_all(&mut events)?;
        }
        Ok(engine)
    });
    // Every thread reaches the barrier, even one that failed, so that none
    // waits there forever.
    shared.ready.wait();
    let mut engine = prepared?;
    if plan.hold {
        engine.idle(&mut events, plan.idle)?;
    }
    engine.measure(&mut events)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unopened,
    Connecting,
    Open,
    Closed,
}

/// A request in flight: its number (which says its bytes) and when it was
/// sent, or due.
#[derive(Debug, Clone, Copy)]
struct Pending {
    n: u64,
    start: Instant,
}

/// One connection, or in new-connection mode one slot that opens a
/// connection per request.
struct Conn {
    stream: Option<TcpStream>,
    state: State,
    readable: bool,
    writable: bool,
    hung_up: bool,
    /// Requests not yet taken by the socket: `out[out_at..]`.
    out: Vec<u8>,
    out_at: usize,
    /// Shut the sending side once `out` is sent (new-connection mode).
    half_close: bool,
    inflight: VecDeque<Pending>,
    /// Bytes of the oldest request's reply received so far.
    received: usize,
    /// The number of the next request on this connection.
    next: u64,
    /// Open loop: requests due but not sent, the connection being at its
    /// depth.
    due: VecDeque<Instant>,
    /// When the handshake began or the last byte came: for timeouts.
    since: Instant,
}

impl Conn {
    fn new(now: Instant) -> Self {
        Self {
            stream: None,
            state: State::Unopened,
            readable: false,
            writable: false,
            hung_up: false,
            out: Vec::new(),
            out_at: 0,
            half_close: false,
            inflight: VecDeque::new(),
            received: 0,
            next: 0,
            due: VecDeque::new(),
            since: now,
        }
    }

    fn stream(&mut self) -> &mut TcpStream {
        self.stream
            .as_mut()
            .expect("an open connection has a stream")
    }
}

/// One thread's connections and what it knows about the run.
struct Engine<'a> {
    ctx: Context<'a>,
    conns: Vec<Conn>,
    buffer: Vec<u8>,
}

/// Everything but the connections, so that a connection and the rest can
/// be borrowed at once.
struct Context<'a> {
    plan: &'a Plan,
    progress: &'a Progress,
    poll: Poll,
    recorder: Recorder,
    window: Window,
    /// Requests issued (or due) and not settled, over all connections.
    outstanding: u64,
    connecting: usize,
    /// Connections connecting or open.
    alive: usize,
    opened: u64,
    /// When the first connection began, and the last one opened.
    open_started: Option<Instant>,
    last_opened: Option<Instant>,
    /// Held connections are idle: a server closing one is an error.
    holding: bool,
}

impl<'a> Engine<'a> {
    fn new(plan: &'a Plan, progress: &'a Progress) -> Result<Self, ClientError> {
        let now = Instant::now();
        Ok(Self {
            ctx: Context {
                plan,
                progress,
                poll: Poll::new().map_err(ClientError::EventLoop)?,
                recorder: Recorder::new(),
                // Replaced when measuring starts; until then nothing issues.
                window: Window::new(now, Duration::ZERO, None, Some(0)),
                outstanding: 0,
                connecting: 0,
                alive: 0,
                opened: 0,
                open_started: None,
                last_opened: None,
                holding: false,
            },
            conns: (0..plan.connections).map(|_| Conn::new(now)).collect(),
            buffer: vec![0; READ_BUFFER],
        })
    }

    /// Opens every connection, at most [`MAX_CONNECTING`] handshakes at a
    /// time, and waits until each is open or has failed.
    fn open_all(&mut self, events: &mut Events) -> Result<(), ClientError> {
        let started = Instant::now();
        self.ctx.open_started = Some(started);
        let mut next = 0;
        let mut next_scan = started + TIMEOUT_SCAN;
        loop {
            while self.ctx.connecting < MAX_CONNECTING && next < self.conns.len() {
                let now = Instant::now();
                if let Err(what) = self.ctx.open(&mut self.conns[next], next, now) {
                    self.ctx.fail(&mut self.conns[next], next, what, now);
                }
                next += 1;
            }
            if next == self.conns.len() && self.ctx.connecting == 0 {
                break;
            }
            self.poll(events, Some(TIMEOUT_SCAN))?;
            let now = Instant::now();
            if now >= next_scan {
                self.scan_timeouts(now);
                next_scan = now + TIMEOUT_SCAN;
            }
        }
        self.ctx.recorder.publish(self.ctx.progress);
        Ok(())
    }

    /// Keeps the connections open and idle for `idle`.
    fn idle(&mut self, events: &mut Events, idle: Duration) -> Result<(), ClientError> {
        let until = Instant::now() + idle;
        self.ctx.holding = true;
        loop {
            let now = Instant::now();
            if now >= until {
                self.ctx.holding = false;
                return Ok(());
            }
            self.poll(events, Some(until - now))?;
        }
    }

    /// The measured run: issues requests until the window closes, drains
    /// the replies still in flight, and reports.
    fn measure(mut self, events: &mut Events) -> Result<Outcome, ClientError> {
        let plan = self.ctx.plan;
        let now = Instant::now();
        let quota = if plan.hold {
            // One request on each connection still open.
            Some(
                self.conns
                    .iter()
                    .filter(|conn| conn.state == State::Open)
                    .count() as u64,
            )
        } else {
            plan.quota
        };
        self.ctx.window = Window::new(now, plan.warmup, plan.duration, quota);
        let mut pacer = plan.rate.map(|rate| Pacer::new(now, rate));
        for (key, conn) in self.conns.iter_mut().enumerate() {
            // Each request timed from its own start: sending to thousands
            // of connections takes a while.
            let now = Instant::now();
            if plan.new_connection {
                self.ctx.open_for_request(conn, key, now);
            } else if conn.state == State::Open && pacer.is_none() {
                self.ctx.refill(conn, now);
                self.ctx.step(conn, key, &mut self.buffer);
            }
        }
        let mut next_scan = now + TIMEOUT_SCAN;
        let mut drain_until = None;
        loop {
            let now = Instant::now();
            if let Some(pacer) = pacer.as_mut() {
                self.pace(pacer, now);
            }
            if self.ctx.window.tick(now) && drain_until.is_none() {
                drain_until = Some(now + plan.timeout);
            }
            if now >= next_scan {
                self.scan_timeouts(now);
                next_scan = now + TIMEOUT_SCAN;
            }
            self.ctx.recorder.publish(self.ctx.progress);
            if self.ctx.alive == 0 && !plan.new_connection {
                self.ctx.window.stop();
            }
            let done = (!self.ctx.window.issuing() && self.ctx.outstanding == 0)
                || self.ctx.window.quota_settled();
            if done {
                break;
            }
            if drain_until.is_some_and(|until| now >= until) {
                self.fail_in_flight(now);
                break;
            }
            let wake = self
                .ctx
                .window
                .next_wake(next_scan, pacer.as_ref(), drain_until);
            self.poll(events, Some(wait_until(now, wake)))?;
        }
        let now = Instant::now();
        let elapsed = self.ctx.window.elapsed(now);
        self.ctx.recorder.publish(self.ctx.progress);
        for conn in &mut self.conns {
            self.ctx.close(conn);
        }
        let held = plan.hold.then(|| Held {
            opened: self.ctx.opened,
            open_time: match (self.ctx.open_started, self.ctx.last_opened) {
                (Some(started), Some(last)) => last.saturating_duration_since(started),
                _ => Duration::ZERO,
            },
        });
        Ok(Outcome {
            recorder: self.ctx.recorder,
            elapsed,
            held,
        })
    }

    /// Open loop: hands every request now due to the next open connection.
    fn pace(&mut self, pacer: &mut Pacer, now: Instant) {
        while self.ctx.window.issuing() {
            let Some((k, due)) = pacer.take_due(now) else {
                return;
            };
            if !self.ctx.window.issue(due) {
                return;
            }
            let count = self.conns.len();
            let open = (0..count)
                .map(|offset| (k as usize + offset) % count)
                .find(|&key| self.conns[key].state == State::Open);
            let Some(key) = open else {
                // Nothing left to send on: the request fails with the run.
                self.ctx.window.settle(due, now);
                self.ctx.window.stop();
                return;
            };
            let conn = &mut self.conns[key];
            conn.due.push_back(due);
            self.ctx.outstanding += 1;
            self.ctx.refill(conn, now);
            self.ctx.step(conn, key, &mut self.buffer);
        }
    }

    /// Waits for readiness at most `timeout` and serves what is ready.
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<(), ClientError> {
        match self.ctx.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(error) => return Err(ClientError::EventLoop(error)),
        }
        for event in events.iter() {
            let key = event.token().0;
            if let Some(conn) = self.conns.get_mut(key) {
                remember(conn, event);
                self.ctx.step(conn, key, &mut self.buffer);
            }
        }
        Ok(())
    }

    /// Fails connections whose handshake or reply is overdue; in
    /// new-connection mode, retries slots whose connection could not start.
    fn scan_timeouts(&mut self, now: Instant) {
        let plan = self.ctx.plan;
        for (key, conn) in self.conns.iter_mut().enumerate() {
            if plan.new_connection && conn.state == State::Closed && self.ctx.window.issuing() {
                self.ctx.open_for_request(conn, key, now);
                continue;
            }
            let overdue = match conn.state {
                State::Connecting => now - conn.since > plan.connect_timeout,
                State::Open => !conn.inflight.is_empty() && now - conn.since > plan.timeout,
                State::Unopened | State::Closed => false,
            };
            if overdue {
                let what = if conn.state == State::Connecting {
                    format!(
                        "tcp {}: no handshake within {:?}",
                        plan.addr, plan.connect_timeout
                    )
                } else {
                    format!(
                        "tcp {}: no reply within {:?} ({} requests in flight)",
                        plan.addr,
                        plan.timeout,
                        conn.inflight.len()
                    )
                };
                self.ctx.fail(conn, key, what, now);
            }
        }
    }

    /// At the end of the drain: whatever is still in flight failed.
    fn fail_in_flight(&mut self, now: Instant) {
        let plan = self.ctx.plan;
        for (key, conn) in self.conns.iter_mut().enumerate() {
            if !conn.inflight.is_empty() || !conn.due.is_empty() {
                let what = format!(
                    "tcp {}: {} replies still missing {:?} after the end",
                    plan.addr,
                    conn.inflight.len(),
                    plan.timeout
                );
                self.ctx.fail(conn, key, what, now);
            }
        }
    }
}

/// Readiness is a hint: remember it, let the calls tell the truth.
fn remember(conn: &mut Conn, event: &Event) {
    conn.readable |= event.is_readable() || event.is_read_closed() || event.is_error();
    conn.writable |= event.is_writable() || event.is_write_closed() || event.is_error();
    conn.hung_up |= event.is_read_closed();
}

impl Context<'_> {
    /// Starts a handshake on `conn`, registered as `key`. The error, when
    /// it cannot even start, is for the caller to count.
    fn open(&mut self, conn: &mut Conn, key: usize, now: Instant) -> Result<(), String> {
        *conn = Conn {
            next: conn.next,
            ..Conn::new(now)
        };
        let addr = self.plan.addr;
        let mut stream = TcpStream::connect(addr)
            .map_err(|error| format!("cannot connect to tcp {addr}: {error}{}", fd_hint(&error)))?;
        // Requests are small and pipelined: send each at once.
        let _ = stream.set_nodelay(true);
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut stream, Token(key), interest)
            .map_err(|error| format!("cannot watch a connection to tcp {addr}: {error}"))?;
        conn.stream = Some(stream);
        conn.state = State::Connecting;
        self.connecting += 1;
        self.alive += 1;
        Ok(())
    }

    /// New-connection mode: one request, due now, on a connection of its
    /// own; its latency runs from the start of the handshake.
    fn open_for_request(&mut self, conn: &mut Conn, key: usize, now: Instant) {
        if !self.window.issue(now) {
            *conn = Conn {
                state: State::Closed,
                ..Conn::new(now)
            };
            return;
        }
        self.outstanding += 1;
        let opened = self.open(conn, key, now);
        let n = conn.next;
        conn.next += 1;
        conn.inflight.push_back(Pending { n, start: now });
        if let Err(what) = opened {
            // The request failed with its connection; the slot is retried
            // at the next timeout scan, not at once, in case the failure is
            // lasting (no descriptor left).
            self.recorder.error(|| what);
            self.settle_all(conn, now);
            conn.state = State::Closed;
        }
    }

    /// Does all `conn` can do now: finish its handshake, send, receive.
    fn step(&mut self, conn: &mut Conn, key: usize, buffer: &mut [u8]) {
        if let Err(what) = self.try_step(conn, key, buffer) {
            self.fail(conn, key, what, Instant::now());
        }
    }

    fn try_step(&mut self, conn: &mut Conn, key: usize, buffer: &mut [u8]) -> Result<(), String> {
        if conn.state == State::Connecting {
            if !(conn.readable || conn.writable) || !self.connected(conn)? {
                return Ok(());
            }
            self.on_open(conn, Instant::now());
        }
        if conn.state != State::Open {
            return Ok(());
        }
        self.flush(conn)?;
        self.receive(conn, key, buffer)?;
        if conn.state == State::Open {
            self.flush(conn)?;
        }
        Ok(())
    }

    /// Whether the handshake is over; an error if it failed.
    fn connected(&mut self, conn: &mut Conn) -> Result<bool, String> {
        let addr = self.plan.addr;
        let stream = conn.stream();
        let failed = |error: io::Error| format!("cannot connect to tcp {addr}: {error}");
        if let Some(error) = stream.take_error().map_err(failed)? {
            return Err(failed(error));
        }
        match stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotConnected => {
                // A spurious wake-up: the handshake goes on.
                conn.readable = false;
                conn.writable = false;
                Ok(false)
            }
            Err(error) => Err(failed(error)),
        }
    }

    fn on_open(&mut self, conn: &mut Conn, now: Instant) {
        conn.state = State::Open;
        self.connecting -= 1;
        self.opened += 1;
        self.last_opened = Some(now);
        Progress::add(&self.progress.open, 1);
        if self.plan.new_connection {
            let n = conn
                .inflight
                .front()
                .expect("a request waits for this connection")
                .n;
            conn.out.extend_from_slice(self.plan.payload.request(n));
            conn.half_close = true;
        } else {
            self.refill(conn, now);
        }
    }

    /// Issues requests until `conn` has `depth` in flight, or the window
    /// says stop (closed loop), or no request is due (open loop).
    fn refill(&mut self, conn: &mut Conn, now: Instant) {
        if self.plan.new_connection {
            return;
        }
        let open_loop = self.plan.rate.is_some();
        while conn.inflight.len() < self.plan.depth {
            let due = open_loop.then_some(&mut conn.due);
            let Some((start, issued)) = self.window.next_request(due, now) else {
                return;
            };
            self.outstanding += u64::from(issued);
            if conn.inflight.is_empty() {
                conn.since = now;
            }
            let n = conn.next;
            conn.next += 1;
            conn.out.extend_from_slice(self.plan.payload.request(n));
            conn.inflight.push_back(Pending { n, start });
        }
    }

    /// Sends what the socket takes of `conn.out`.
    fn flush(&mut self, conn: &mut Conn) -> Result<(), String> {
        let addr = self.plan.addr;
        while conn.writable && conn.out_at < conn.out.len() {
            let Conn {
                stream,
                out,
                out_at,
                ..
            } = conn;
            let stream = stream.as_mut().expect("an open connection has a stream");
            match stream.write(&out[*out_at..]) {
                Ok(0) => return Err(format!("tcp {addr} takes no more bytes")),
                Ok(written) => *out_at += written,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => conn.writable = false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(format!("sending to tcp {addr} failed: {error}")),
            }
        }
        if conn.out_at == conn.out.len() {
            conn.out.clear();
            conn.out_at = 0;
            if conn.half_close {
                conn.half_close = false;
                conn.stream()
                    .shutdown(Shutdown::Write)
                    .map_err(|error| format!("half-closing tcp {addr} failed: {error}"))?;
            }
        }
        Ok(())
    }

    /// Reads and checks what has arrived, completing requests.
    fn receive(&mut self, conn: &mut Conn, key: usize, buffer: &mut [u8]) -> Result<(), String> {
        let addr = self.plan.addr;
        while conn.readable && conn.state == State::Open {
            let read = match conn.stream().read(buffer) {
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    conn.readable = false;
                    break;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(format!("receiving from tcp {addr} failed: {error}")),
            };
            let now = Instant::now();
            if read == 0 {
                return self.end_of_stream(conn, key, now);
            }
            conn.since = now;
            self.check(conn, &buffer[..read], now)?;
            self.refill(conn, now);
            // A short read emptied the socket, unless the server hung up:
            // then read on to the end of stream, which raises no new event.
            if read < buffer.len() && !conn.hung_up {
                conn.readable = false;
            }
        }
        Ok(())
    }

    /// Checks reply bytes against the requests in flight, in order.
    fn check(&mut self, conn: &mut Conn, mut data: &[u8], now: Instant) -> Result<(), String> {
        let size = self.plan.payload.size();
        while !data.is_empty() {
            let Some(&front) = conn.inflight.front() else {
                return Err(format!(
                    "tcp {} sent {} bytes that answer no request",
                    self.plan.addr,
                    data.len()
                ));
            };
            let expected = self.plan.payload.reply_from(front.n, conn.received);
            let take = expected.len().min(data.len());
            if data[..take] != expected[..take] {
                let at = (0..take).find(|&i| data[i] != expected[i]).unwrap_or(0);
                return Err(format!(
                    "tcp {}: wrong reply: byte {} of a reply is {:?}, expected {:?}",
                    self.plan.addr,
                    conn.received + at,
                    char::from(data[at]),
                    char::from(expected[at])
                ));
            }
            conn.received += take;
            data = &data[take..];
            if conn.received == size {
                conn.received = 0;
                conn.inflight.pop_front();
                self.outstanding -= 1;
                if let Some(in_window) = self.window.settle(front.start, now) {
                    self.recorder.message(now - front.start, in_window);
                }
            }
        }
        Ok(())
    }

    fn end_of_stream(&mut self, conn: &mut Conn, key: usize, now: Instant) -> Result<(), String> {
        let addr = self.plan.addr;
        if !conn.inflight.is_empty() {
            return Err(format!(
                "tcp {addr} closed the connection with {} replies missing ({} bytes of the first received)",
                conn.inflight.len(),
                conn.received
            ));
        }
        if self.plan.new_connection {
            // The whole exchange is done: the next request, on a new connection.
            self.close(conn);
            self.open_for_request(conn, key, now);
            return Ok(());
        }
        if self.window.issuing() || self.holding {
            return Err(format!("tcp {addr} closed the connection"));
        }
        self.close(conn);
        Ok(())
    }

    /// Counts an error, fails the requests of `conn`, and closes it; a
    /// new-connection slot starts over with a fresh connection.
    fn fail(&mut self, conn: &mut Conn, key: usize, what: String, now: Instant) {
        self.recorder.error(|| what);
        if conn.state != State::Open && self.plan.hold {
            Progress::add(&self.progress.failed, 1);
        }
        self.settle_all(conn, now);
        self.close(conn);
        if self.plan.new_connection && self.window.issuing() {
            self.open_for_request(conn, key, now);
        }
    }

    /// Settles every request of `conn` as failed.
    fn settle_all(&mut self, conn: &mut Conn, now: Instant) {
        for pending in conn.inflight.drain(..) {
            self.window.settle(pending.start, now);
            self.outstanding -= 1;
        }
        for due in conn.due.drain(..) {
            self.window.settle(due, now);
            self.outstanding -= 1;
        }
        conn.received = 0;
    }

    fn close(&mut self, conn: &mut Conn) {
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        match conn.state {
            State::Connecting => {
                self.connecting -= 1;
                self.alive -= 1;
            }
            State::Open => self.alive -= 1,
            State::Unopened | State::Closed => {}
        }
        conn.state = State::Closed;
    }
}

/// A hint for the error a person hits first when holding many connections.
fn fd_hint(error: &io::Error) -> &'static str {
    if error.raw_os_error() == Some(24) {
        " (too many open files: raise the limit with `ulimit -n`)"
    } else {
        ""
    }
}
