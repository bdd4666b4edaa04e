//! The TCP load: connections driven by one `mio::Poll` per thread.
//!
//! Each connection keeps its unsent requests in a buffer of its own and its
//! requests in flight in a queue; a reply is checked as its bytes arrive,
//! against the reply the payload already knows (the uppercase, or the
//! request itself from an echo server), and completes the
//! oldest request when its last byte is in. Readiness is kept per
//! connection by `shout_socket::StreamReadiness`, the bookkeeping the
//! server keeps too (edge-triggered: forgotten only when a call says
//! `WouldBlock` or a short read or write says the same).
//!
//! Over TLS a connection passes through `Handshaking` between connecting and
//! open; its rustls `ClientConnection` reads and writes the socket through
//! [`Ready`], so the same readiness bookkeeping holds. Requests go into
//! rustls's plaintext writer, replies come out of its reader into the same
//! check. The server's close_notify ends the stream, as a FIN does over
//! TCP; a FIN without it ends the stream too (the reply check has already
//! said whether anything is missing). New-connection mode sends a
//! close_notify, then half-closes.
//!
//! A connection that fails (refused, reset, closed early, a wrong byte, no
//! byte for `timeout` with requests in flight) counts one error, settles its
//! requests as failed and closes; in new-connection mode the slot opens a
//! fresh connection, otherwise the run goes on with the others.

use super::record::{Progress, Recorder};
use super::schedule::{Pacer, Window, wait_until};
use super::ws::{Piece, WsState};
use super::{BenchError, Held, Outcome, Plan, Shared};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::ClientConnection;
use shout_client::tls_reason;
use shout_socket::StreamReadiness;
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
pub(crate) fn run(plan: &Plan, shared: &Shared) -> Result<Outcome, BenchError> {
    let mut events = Events::with_capacity(1024);
    let prepared = TcpLoad::new(plan, &shared.progress).and_then(|mut load| {
        if !plan.new_connection {
            load.open_all(&mut events)?;
        }
        Ok(load)
    });
    // Every thread reaches the barrier, even one that failed, so that none
    // waits there forever.
    shared.ready.wait();
    let mut load = prepared?;
    if plan.hold {
        load.idle(&mut events, plan.idle)?;
    }
    load.measure(&mut events)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unopened,
    Connecting,
    /// Connected over TCP, the TLS handshake under way.
    Handshaking,
    /// Connected over TCP, the WebSocket upgrade under way.
    Upgrading,
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
    readiness: StreamReadiness,
    /// The TLS state of the connection, when it speaks TLS.
    tls: Option<ClientConnection>,
    /// Over TLS, the close_notify that ends the input is queued.
    close_notify_sent: bool,
    /// The WebSocket state of the connection, when it speaks WebSocket.
    ws: Option<Box<WsState>>,
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
    /// When the TCP or TLS handshake began or the last byte came: for
    /// timeouts, and the TLS handshake's time.
    since: Instant,
}

impl Conn {
    fn new(now: Instant) -> Self {
        Self {
            stream: None,
            state: State::Unopened,
            readiness: StreamReadiness::new(),
            tls: None,
            close_notify_sent: false,
            ws: None,
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

/// One thread's share of a TCP benchmark: its connections, and the run
/// they take part in.
struct TcpLoad<'a> {
    run: Run<'a>,
    conns: Vec<Conn>,
    buffer: Vec<u8>,
}

/// One thread's run, apart from its connections: the plan, the event loop,
/// the measurement window and the counts. Its methods act on one
/// connection (`&mut Conn`) and on the run together, which borrowing the
/// connection out of [`TcpLoad`] allows.
struct Run<'a> {
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

impl<'a> TcpLoad<'a> {
    fn new(plan: &'a Plan, progress: &'a Progress) -> Result<Self, BenchError> {
        let now = Instant::now();
        Ok(Self {
            run: Run {
                plan,
                progress,
                poll: Poll::new().map_err(BenchError::EventLoop)?,
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
    fn open_all(&mut self, events: &mut Events) -> Result<(), BenchError> {
        let started = Instant::now();
        self.run.open_started = Some(started);
        let mut next = 0;
        let mut next_scan = started + TIMEOUT_SCAN;
        loop {
            while self.run.connecting < MAX_CONNECTING && next < self.conns.len() {
                let now = Instant::now();
                if let Err(what) = self.run.open(&mut self.conns[next], next, now) {
                    self.run.fail(&mut self.conns[next], next, what, now);
                }
                next += 1;
            }
            if next == self.conns.len() && self.run.connecting == 0 {
                break;
            }
            self.poll(events, Some(TIMEOUT_SCAN))?;
            let now = Instant::now();
            if now >= next_scan {
                self.scan_timeouts(now);
                next_scan = now + TIMEOUT_SCAN;
            }
        }
        self.run.recorder.publish(self.run.progress);
        Ok(())
    }

    /// Keeps the connections open and idle for `idle`.
    fn idle(&mut self, events: &mut Events, idle: Duration) -> Result<(), BenchError> {
        let until = Instant::now() + idle;
        self.run.holding = true;
        loop {
            let now = Instant::now();
            if now >= until {
                self.run.holding = false;
                return Ok(());
            }
            self.poll(events, Some(until - now))?;
        }
    }

    /// The measured run: issues requests until the window closes, drains
    /// the replies still in flight, and reports.
    fn measure(mut self, events: &mut Events) -> Result<Outcome, BenchError> {
        let plan = self.run.plan;
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
        self.run.window = Window::new(now, plan.warmup, plan.duration, quota);
        let mut pacer = plan.rate.map(|rate| Pacer::new(now, rate));
        for (key, conn) in self.conns.iter_mut().enumerate() {
            // Each request timed from its own start: sending to thousands
            // of connections takes a while.
            let now = Instant::now();
            if plan.new_connection {
                self.run.open_for_request(conn, key, now);
            } else if conn.state == State::Open && pacer.is_none() {
                self.run.refill(conn, now);
                self.run.step(conn, key, &mut self.buffer);
            }
        }
        let mut next_scan = now + TIMEOUT_SCAN;
        let mut drain_until = None;
        loop {
            let now = Instant::now();
            if let Some(pacer) = pacer.as_mut() {
                self.pace(pacer, now);
            }
            if self.run.window.tick(now) && drain_until.is_none() {
                drain_until = Some(now + plan.timeout);
            }
            if now >= next_scan {
                self.scan_timeouts(now);
                next_scan = now + TIMEOUT_SCAN;
            }
            self.run.recorder.publish(self.run.progress);
            if self.run.alive == 0 && !plan.new_connection {
                self.run.window.stop();
            }
            let done = (!self.run.window.issuing() && self.run.outstanding == 0)
                || self.run.window.quota_settled();
            if done {
                break;
            }
            if drain_until.is_some_and(|until| now >= until) {
                self.fail_in_flight(now);
                break;
            }
            let wake = self
                .run
                .window
                .next_wake(next_scan, pacer.as_ref(), drain_until);
            self.poll(events, Some(wait_until(now, wake)))?;
        }
        let now = Instant::now();
        let elapsed = self.run.window.elapsed(now);
        self.run.recorder.publish(self.run.progress);
        for conn in &mut self.conns {
            self.run.close(conn);
        }
        let held = plan.hold.then(|| Held {
            opened: self.run.opened,
            open_time: match (self.run.open_started, self.run.last_opened) {
                (Some(started), Some(last)) => last.saturating_duration_since(started),
                _ => Duration::ZERO,
            },
        });
        Ok(Outcome {
            recorder: self.run.recorder,
            elapsed,
            held,
        })
    }

    /// Open loop: hands every request now due to the next open connection.
    fn pace(&mut self, pacer: &mut Pacer, now: Instant) {
        while self.run.window.issuing() {
            let Some((k, due)) = pacer.take_due(now) else {
                return;
            };
            if !self.run.window.issue(due) {
                return;
            }
            let count = self.conns.len();
            let open = (0..count)
                .map(|offset| (k as usize + offset) % count)
                .find(|&key| self.conns[key].state == State::Open);
            let Some(key) = open else {
                // Nothing left to send on: the request fails with the run.
                self.run.window.settle(due, now);
                self.run.window.stop();
                return;
            };
            let conn = &mut self.conns[key];
            conn.due.push_back(due);
            self.run.outstanding += 1;
            self.run.refill(conn, now);
            self.run.step(conn, key, &mut self.buffer);
        }
    }

    /// Waits for readiness at most `timeout` and serves what is ready.
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<(), BenchError> {
        match self.run.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(error) => return Err(BenchError::EventLoop(error)),
        }
        for event in events.iter() {
            let key = event.token().0;
            if let Some(conn) = self.conns.get_mut(key) {
                conn.readiness.note(event);
                self.run.step(conn, key, &mut self.buffer);
            }
        }
        Ok(())
    }

    /// Fails connections whose handshake or reply is overdue; in
    /// new-connection mode, retries slots whose connection could not start.
    fn scan_timeouts(&mut self, now: Instant) {
        let plan = self.run.plan;
        for (key, conn) in self.conns.iter_mut().enumerate() {
            if plan.new_connection && conn.state == State::Closed && self.run.window.issuing() {
                self.run.open_for_request(conn, key, now);
                continue;
            }
            let overdue = match conn.state {
                State::Connecting | State::Handshaking | State::Upgrading => {
                    now - conn.since > plan.connect_timeout
                }
                State::Open => !conn.inflight.is_empty() && now - conn.since > plan.timeout,
                State::Unopened | State::Closed => false,
            };
            if overdue {
                let what = if conn.state == State::Connecting {
                    format!(
                        "tcp {}: no handshake within {:?}",
                        plan.addr, plan.connect_timeout
                    )
                } else if conn.state == State::Upgrading {
                    format!(
                        "ws {}: no upgrade within {:?}",
                        plan.addr, plan.connect_timeout
                    )
                } else if conn.state == State::Handshaking {
                    format!(
                        "tls {}: no TLS handshake within {:?}",
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
                self.run.fail(conn, key, what, now);
            }
        }
    }

    /// At the end of the drain: whatever is still in flight failed.
    fn fail_in_flight(&mut self, now: Instant) {
        let plan = self.run.plan;
        for (key, conn) in self.conns.iter_mut().enumerate() {
            if !conn.inflight.is_empty() || !conn.due.is_empty() {
                let what = format!(
                    "tcp {}: {} replies still missing {:?} after the end",
                    plan.addr,
                    conn.inflight.len(),
                    plan.timeout
                );
                self.run.fail(conn, key, what, now);
            }
        }
    }
}

impl Run<'_> {
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
            if !(conn.readiness.is_readable() || conn.readiness.is_writable())
                || !self.connected(conn)?
            {
                return Ok(());
            }
            let now = Instant::now();
            match &self.plan.tls {
                Some(tls) => {
                    let started = tls
                        .start()
                        .map_err(|error| tls_error(self.plan.addr, &error))?;
                    conn.tls = Some(started);
                    conn.state = State::Handshaking;
                    conn.since = now;
                }
                None if self.plan.ws => {
                    let seed = (key as u64) << 32 | conn.next;
                    conn.out = super::ws::upgrade_request(self.plan.addr, seed);
                    conn.out_at = 0;
                    conn.ws = Some(Box::new(WsState::new(seed)));
                    conn.state = State::Upgrading;
                    conn.since = now;
                }
                None => self.on_open(conn, now),
            }
        }
        if conn.state == State::Handshaking && !self.handshake(conn)? {
            return Ok(());
        }
        if conn.state == State::Upgrading && !self.upgrade(conn, buffer)? {
            return Ok(());
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
                conn.readiness.clear_readable();
                conn.readiness.clear_writable();
                Ok(false)
            }
            Err(error) => Err(failed(error)),
        }
    }

    /// Drives the TLS handshake as far as the socket allows; whether it is
    /// over (and the connection open).
    fn handshake(&mut self, conn: &mut Conn) -> Result<bool, String> {
        let addr = self.plan.addr;
        let Conn {
            stream,
            readiness,
            tls,
            ..
        } = conn;
        let tls = tls.as_mut().expect("a TLS handshake has a TLS state");
        let mut io = Ready {
            stream: stream
                .as_mut()
                .expect("a handshaking connection has a stream"),
            readiness,
        };
        let io_failed = |error: io::Error| format!("tls {addr}: the handshake failed: {error}");
        send_tls(tls, &mut io).map_err(io_failed)?;
        while tls.is_handshaking() {
            match tls.read_tls(&mut io) {
                Ok(0) => {
                    return Err(format!(
                        "tls {addr} closed the connection during the handshake (is it a TLS server?)"
                    ));
                }
                Ok(_) => {
                    tls.process_new_packets()
                        .map_err(|error| tls_error(addr, &error))?;
                    send_tls(tls, &mut io).map_err(io_failed)?;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) => return Err(io_failed(error)),
            }
        }
        let now = Instant::now();
        self.recorder.handshake(now - conn.since);
        self.on_open(conn, now);
        Ok(true)
    }

    /// Sends the upgrade request and reads the response as far as the
    /// socket allows; whether the connection is upgraded (and open).
    fn upgrade(&mut self, conn: &mut Conn, buffer: &mut [u8]) -> Result<bool, String> {
        self.flush(conn)?;
        let addr = self.plan.addr;
        loop {
            let stream = conn.stream.as_mut().expect("a connection has a stream");
            let read = match conn.readiness.read(stream, buffer) {
                Ok(Some(0)) => {
                    return Err(format!(
                        "ws {addr} closed the connection during the upgrade"
                    ));
                }
                Ok(Some(read)) => read,
                Ok(None) => return Ok(false),
                Err(error) => return Err(format!("ws {addr}: the upgrade failed: {error}")),
            };
            let ws = conn.ws.as_mut().expect("an upgrade has a WebSocket state");
            let Some(taken) = ws.take_head(addr, &buffer[..read])? else {
                continue;
            };
            if taken < read {
                return Err(format!("ws {addr} sent frames before any request"));
            }
            let now = Instant::now();
            self.recorder.handshake(now - conn.since);
            self.on_open(conn, now);
            return Ok(true);
        }
    }

    /// Appends request `n` to the connection's unsent bytes: as a message
    /// over WebSocket.
    fn push_request(&self, conn: &mut Conn, n: u64) {
        let request = self.plan.payload.request(n);
        match &mut conn.ws {
            Some(ws) => ws.frame(request, &mut conn.out),
            None => conn.out.extend_from_slice(request),
        }
    }

    /// Checks reply bytes as [`check`](Self::check) does; over WebSocket,
    /// the payload of the server's frames. Returns whether the server
    /// closed.
    fn check_read(
        &mut self,
        conn: &mut Conn,
        mut data: &[u8],
        now: Instant,
    ) -> Result<bool, String> {
        if conn.ws.is_none() {
            self.check(conn, data, now)?;
            return Ok(false);
        }
        let addr = self.plan.addr;
        loop {
            let ws = conn.ws.as_mut().expect("checked above");
            match ws.next(addr, &mut data)? {
                None => return Ok(false),
                Some(Piece::Closed) => return Ok(true),
                Some(Piece::Payload(payload)) => self.check(conn, payload, now)?,
            }
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
            self.push_request(conn, n);
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
            self.push_request(conn, n);
            conn.inflight.push_back(Pending { n, start });
        }
    }

    /// Sends what the socket takes of `conn.out` (through rustls over
    /// TLS), then the end of input if it is due and all is sent.
    fn flush(&mut self, conn: &mut Conn) -> Result<(), String> {
        let addr = self.plan.addr;
        let send_failed = |error: io::Error| match error.kind() {
            io::ErrorKind::WriteZero => format!("tcp {addr} takes no more bytes"),
            _ => format!("sending to tcp {addr} failed: {error}"),
        };
        let Conn {
            stream,
            readiness,
            tls,
            out,
            out_at,
            ..
        } = conn;
        let stream = stream.as_mut().expect("an open connection has a stream");
        let all_sent = match tls {
            None => {
                *out_at += readiness
                    .write(stream, &out[*out_at..])
                    .map_err(send_failed)?;
                *out_at == out.len()
            }
            Some(tls) => {
                let mut io = Ready { stream, readiness };
                feed_tls(tls, &mut io, &out[..], out_at).map_err(send_failed)?;
                if conn.half_close && *out_at == out.len() && !conn.close_notify_sent {
                    tls.send_close_notify();
                    conn.close_notify_sent = true;
                    send_tls(tls, &mut io).map_err(send_failed)?;
                }
                *out_at == out.len() && !tls.wants_write()
            }
        };
        if conn.out_at == conn.out.len() {
            conn.out.clear();
            conn.out_at = 0;
        }
        if all_sent && conn.half_close {
            conn.half_close = false;
            conn.stream()
                .shutdown(Shutdown::Write)
                .map_err(|error| format!("half-closing tcp {addr} failed: {error}"))?;
        }
        Ok(())
    }

    /// Reads and checks what has arrived, completing requests.
    fn receive(&mut self, conn: &mut Conn, key: usize, buffer: &mut [u8]) -> Result<(), String> {
        if conn.tls.is_some() {
            return self.receive_tls(conn, key, buffer);
        }
        let addr = self.plan.addr;
        while conn.state == State::Open {
            let stream = conn
                .stream
                .as_mut()
                .expect("an open connection has a stream");
            let read = match conn.readiness.read(stream, buffer) {
                Ok(Some(read)) => read,
                Ok(None) => break,
                Err(error) => return Err(format!("receiving from tcp {addr} failed: {error}")),
            };
            let now = Instant::now();
            if read == 0 {
                return self.end_of_stream(conn, key, now);
            }
            conn.since = now;
            if self.check_read(conn, &buffer[..read], now)? {
                return self.end_of_stream(conn, key, now);
            }
            self.refill(conn, now);
        }
        Ok(())
    }

    /// Over TLS: reads records, decrypts them, and checks the plaintext.
    fn receive_tls(
        &mut self,
        conn: &mut Conn,
        key: usize,
        buffer: &mut [u8],
    ) -> Result<(), String> {
        let addr = self.plan.addr;
        let failed = |error: io::Error| format!("receiving from tls {addr} failed: {error}");
        while conn.state == State::Open {
            let Conn {
                stream,
                readiness,
                tls,
                ..
            } = &mut *conn;
            let tls = tls.as_mut().expect("a TLS connection has a TLS state");
            let mut io = Ready {
                stream: stream.as_mut().expect("an open connection has a stream"),
                readiness,
            };
            let tcp_ended = match tls.read_tls(&mut io) {
                Ok(read) => read == 0,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) => return Err(failed(error)),
            };
            tls.process_new_packets()
                .map_err(|error| tls_error(addr, &error))?;
            let now = Instant::now();
            loop {
                let tls = conn.tls.as_mut().expect("a TLS connection has a TLS state");
                match tls.reader().read(buffer) {
                    // The server's close_notify, or (UnexpectedEof) a FIN
                    // without one: either ends the stream.
                    Ok(0) => return self.end_of_stream(conn, key, now),
                    Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                        return self.end_of_stream(conn, key, now);
                    }
                    Ok(read) => {
                        conn.since = now;
                        self.check(conn, &buffer[..read], now)?;
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) => return Err(failed(error)),
                }
            }
            if tcp_ended {
                return self.end_of_stream(conn, key, now);
            }
            self.refill(conn, now);
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
            State::Connecting | State::Handshaking | State::Upgrading => {
                self.connecting -= 1;
                self.alive -= 1;
            }
            State::Open => self.alive -= 1,
            State::Unopened | State::Closed => {}
        }
        conn.state = State::Closed;
    }
}

/// A socket as rustls reads and writes it: through the connection's
/// readiness, with "nothing more now" said as `WouldBlock`, as rustls
/// expects of a non-blocking socket.
struct Ready<'a> {
    stream: &'a mut TcpStream,
    readiness: &'a mut StreamReadiness,
}

impl Read for Ready<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self.readiness.read(self.stream, buffer)? {
            Some(read) => Ok(read),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Ready<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.is_empty() {
            return Ok(0);
        }
        match self.readiness.write(self.stream, bytes)? {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            written => Ok(written),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends the TLS records rustls has ready, as far as the socket takes them.
fn send_tls(tls: &mut ClientConnection, io: &mut Ready<'_>) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(io) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Hands `out[*out_at..]` to rustls and sends the records, until all is
/// sent or the socket takes no more; rustls's buffer limit keeps what it
/// holds bounded.
fn feed_tls(
    tls: &mut ClientConnection,
    io: &mut Ready<'_>,
    out: &[u8],
    out_at: &mut usize,
) -> io::Result<()> {
    loop {
        let taken = if *out_at < out.len() {
            tls.writer().write(&out[*out_at..])?
        } else {
            0
        };
        *out_at += taken;
        send_tls(tls, io)?;
        if *out_at == out.len() || tls.wants_write() || taken == 0 {
            return Ok(());
        }
    }
}

/// A TLS failure, worded as `shout tcp --tls` words it.
fn tls_error(addr: std::net::SocketAddr, error: &rustls::Error) -> String {
    format!("tls {addr}: {}", tls_reason(error))
}

/// A hint for the error a person hits first when holding many connections.
fn fd_hint(error: &io::Error) -> &'static str {
    if error.raw_os_error() == Some(24) {
        " (too many open files: raise the limit with `ulimit -n`)"
    } else {
        ""
    }
}
