//! The QUIC load: one UDP socket and one quinn-proto client endpoint per
//! thread, its connections multiplexed on the socket, driven by one
//! `mio::Poll`.
//!
//! Two shapes of requests: pipelined on one stream per connection (the
//! default, as over TCP: the replies come back in order on the stream and
//! are checked as their bytes arrive), or a stream per request (`streams`:
//! the request, its FIN, the reply read to the server's FIN), with `depth`
//! streams in flight per connection. New-connection mode makes a
//! connection per request (a stream, then CONNECTION_CLOSE): the handshake
//! is counted and timed apart, and in the latency. Hold mode opens the
//! connections, keeps them idle, then sends one request on each.
//!
//! A connection that fails (lost, a stream reset, a wrong byte, nothing
//! for `timeout` with requests in flight) counts one error and settles its
//! requests as failed; in new-connection mode the slot connects again.

use super::payload::Payload;
use super::record::{Progress, Recorder};
use super::schedule::{Window, wait_until};
use super::{BenchError, Held, Outcome, Plan, Shared};
use bytes::BytesMut;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use quinn_proto::{
    ClientConfig, Connection, ConnectionHandle, DatagramEvent, Dir, Endpoint, EndpointConfig,
    Event, ReadError, StreamId, VarInt,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SOCKET: Token = Token(0);
/// How often connections are checked for an overdue reply or handshake.
const TIMEOUT_SCAN: Duration = Duration::from_millis(50);
/// The largest datagram received.
const MAX_DATAGRAM: usize = 65_536;
/// Handshakes in progress at once while connections open.
const MAX_CONNECTING: usize = 64;

/// How to make a QUIC connection: the configuration and the name.
#[derive(Clone)]
pub(crate) struct QuicPlan {
    pub(crate) config: ClientConfig,
    pub(crate) server_name: String,
    /// A stream per request instead of one per connection.
    pub(crate) streams: bool,
}

impl std::fmt::Debug for QuicPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicPlan")
            .field("server_name", &self.server_name)
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

/// A request in flight: its number, when it was sent, and its stream.
#[derive(Debug, Clone, Copy)]
struct Pending {
    n: u64,
    start: Instant,
    stream: StreamId,
    /// Reply bytes checked so far.
    received: usize,
}

/// One connection of the load.
struct Conn {
    conn: Option<Connection>,
    handle: Option<ConnectionHandle>,
    /// When it began connecting, while it does.
    connecting_since: Option<Instant>,
    /// The one stream of pipelined mode.
    stream: Option<StreamId>,
    /// Requests in flight, oldest first.
    inflight: VecDeque<Pending>,
    /// Request bytes the stream did not take yet (pipelined mode).
    unsent: Vec<u8>,
    last_progress: Instant,
    /// Requests answered on this connection.
    answered: u64,
    /// When it began connecting: a request's start in new-connection
    /// mode, so its latency includes the handshake.
    opened_at: Instant,
    /// Its quinn-proto timer, as last filed in [`QuicLoad::timers`].
    timer: Option<Instant>,
}

/// One thread's QUIC load.
struct QuicLoad<'a> {
    plan: &'a Plan,
    quic: &'a QuicPlan,
    shared: &'a Shared,
    poll: Poll,
    socket: UdpSocket,
    endpoint: Endpoint,
    conns: Vec<Conn>,
    /// Connection index by the endpoint's handle.
    handles: HashMap<ConnectionHandle, usize>,
    recorder: Recorder,
    window: Window,
    next_n: u64,
    transmit: Vec<u8>,
    received: Box<[u8]>,
    outstanding: usize,
    /// The connections' timers, soonest first; an entry whose connection
    /// has filed another since is stale.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Connections touched since they were last served.
    dirty: Vec<usize>,
}

/// Runs one thread's share of a QUIC benchmark.
pub(crate) fn run(plan: &Plan, quic: &QuicPlan, shared: &Shared) -> Result<Outcome, BenchError> {
    let prepared = QuicLoad::new(plan, quic, shared).and_then(|mut load| {
        let opened = if plan.new_connection {
            None
        } else {
            Some(load.open_all()?)
        };
        Ok((load, opened))
    });
    shared.ready.wait();
    let (mut load, opened) = prepared?;
    let held = if plan.hold {
        let open_time = opened.unwrap_or_default();
        load.idle(plan.idle)?;
        let opened = load.conns.iter().filter(|conn| conn.conn.is_some()).count();
        Some(Held {
            opened: opened as u64,
            open_time,
        })
    } else {
        None
    };
    load.measure(held)
}

impl<'a> QuicLoad<'a> {
    fn new(plan: &'a Plan, quic: &'a QuicPlan, shared: &'a Shared) -> Result<Self, BenchError> {
        let local: SocketAddr = if plan.addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("an address")
        } else {
            "[::]:0".parse().expect("an address")
        };
        let socket = shout_socket::UdpSocketBuilder::new(local)
            .recv_buffer_size(8 * 1024 * 1024)
            .send_buffer_size(8 * 1024 * 1024)
            .nonblocking(true)
            .bind()
            .map_err(|error| BenchError::EventLoop(io::Error::other(error.to_string())))?;
        let mut socket = UdpSocket::from_std(socket);
        let poll = Poll::new().map_err(BenchError::EventLoop)?;
        (poll.registry())
            .register(&mut socket, SOCKET, Interest::READABLE)
            .map_err(BenchError::EventLoop)?;
        let now = Instant::now();
        let conns = (0..plan.connections)
            .map(|_| Conn {
                conn: None,
                handle: None,
                connecting_since: None,
                stream: None,
                inflight: VecDeque::new(),
                unsent: Vec::new(),
                last_progress: now,
                answered: 0,
                opened_at: now,
                timer: None,
            })
            .collect();
        Ok(Self {
            plan,
            quic,
            shared,
            poll,
            socket,
            endpoint: Endpoint::new(Arc::new(EndpointConfig::default()), None, false, None),
            conns,
            handles: HashMap::new(),
            recorder: Recorder::new(),
            window: Window::new(now, Duration::ZERO, None, Some(0)),
            next_n: 0,
            transmit: Vec::new(),
            received: vec![0; MAX_DATAGRAM].into_boxed_slice(),
            outstanding: 0,
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
        })
    }

    /// Starts connection `key`'s handshake.
    fn connect(&mut self, key: usize, now: Instant) {
        let conn = &mut self.conns[key];
        match (self.endpoint).connect(
            now,
            self.quic.config.clone(),
            self.plan.addr,
            &self.quic.server_name,
        ) {
            Ok((handle, connection)) => {
                self.handles.insert(handle, key);
                conn.conn = Some(connection);
                conn.handle = Some(handle);
                conn.connecting_since = Some(now);
                conn.stream = None;
                conn.last_progress = now;
                conn.answered = 0;
                conn.opened_at = now;
                self.dirty.push(key);
            }
            Err(error) => self.recorder.error(|| format!("quic connect: {error}")),
        }
    }

    /// Opens every connection, a bounded number of handshakes at a time.
    /// Returns how long it took.
    fn open_all(&mut self) -> Result<Duration, BenchError> {
        let started = Instant::now();
        let deadline = started + self.plan.connect_timeout.max(Duration::from_secs(1)) * 4;
        let mut next = 0;
        loop {
            let now = Instant::now();
            let connecting = (self.conns.iter())
                .filter(|conn| conn.connecting_since.is_some())
                .count();
            let room = MAX_CONNECTING.saturating_sub(connecting);
            for key in next..(next + room).min(self.conns.len()) {
                self.connect(key, now);
            }
            next = (next + room).min(self.conns.len());
            if next == self.conns.len() && connecting == 0 {
                return Ok(started.elapsed());
            }
            if now >= deadline {
                self.fail_connecting(now);
                return Ok(started.elapsed());
            }
            self.turn(Some(Duration::from_millis(10)))?;
            self.scan(Instant::now());
        }
    }

    /// Keeps the connections open and idle for `idle`.
    fn idle(&mut self, idle: Duration) -> Result<(), BenchError> {
        let until = Instant::now() + idle;
        while Instant::now() < until {
            self.turn(Some(wait_until(Instant::now(), until)))?;
        }
        Ok(())
    }

    /// One turn: sends what the connections touched since the last turn
    /// have, waits up to `wait` for datagrams or a timer, and serves the
    /// connections they concern. Only those are looked at: thousands of
    /// idle connections cost nothing per turn.
    fn turn(&mut self, wait: Option<Duration>) -> Result<(), BenchError> {
        self.serve_dirty(Instant::now());
        let mut events = Events::with_capacity(8);
        let wait = self.next_timer().map_or(wait, |timer| {
            let until = wait_until(Instant::now(), timer);
            Some(wait.map_or(until, |wait| wait.min(until)))
        });
        match self.poll.poll(&mut events, wait) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(BenchError::EventLoop(error)),
        }
        self.receive();
        let now = Instant::now();
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.conns[key].timer == Some(at) {
                self.dirty.push(key);
            }
        }
        self.serve_dirty(now);
        Ok(())
    }

    /// Serves every connection touched, sends what each has, and keeps
    /// its timer in the heap.
    fn serve_dirty(&mut self, now: Instant) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &key in &dirty {
            self.service(key, now);
            self.flush(key, now);
        }
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// The earliest connection timer, stale ones dropped.
    fn next_timer(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if self.conns[key].timer == Some(at) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Receives every datagram waiting and hands each to its connection.
    fn receive(&mut self) {
        loop {
            let (len, from) = match self.socket.recv_from(&mut self.received) {
                Ok(received) => received,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => continue,
            };
            let datagram = BytesMut::from(&self.received[..len]);
            self.transmit.clear();
            let event = (self.endpoint).handle(
                Instant::now(),
                from,
                None,
                None,
                datagram,
                &mut self.transmit,
            );
            if let Some(DatagramEvent::ConnectionEvent(handle, event)) = event {
                if let Some(&key) = self.handles.get(&handle) {
                    if let Some(conn) = self.conns[key].conn.as_mut() {
                        conn.handle_event(event);
                        self.dirty.push(key);
                    }
                }
            }
        }
    }

    /// Sends every datagram connection `key` has, and files its timer.
    fn flush(&mut self, key: usize, now: Instant) {
        let conn = &mut self.conns[key];
        let Some(connection) = conn.conn.as_mut() else {
            conn.timer = None;
            return;
        };
        loop {
            self.transmit.clear();
            let Some(transmit) = connection.poll_transmit(now, 1, &mut self.transmit) else {
                break;
            };
            let _ = self
                .socket
                .send_to(&self.transmit[..transmit.size], transmit.destination);
        }
        conn.timer = connection.poll_timeout();
        if let Some(at) = conn.timer {
            self.timers.push(Reverse((at, key)));
        }
    }

    /// Sends every datagram of every connection.
    fn flush_all(&mut self) {
        let now = Instant::now();
        for key in 0..self.conns.len() {
            self.flush(key, now);
        }
    }

    /// Handles connection `key`'s timer and events, its replies, and sends
    /// its next requests.
    fn service(&mut self, key: usize, now: Instant) {
        let conn = &mut self.conns[key];
        let (Some(connection), Some(handle)) = (conn.conn.as_mut(), conn.handle) else {
            return;
        };
        if connection.poll_timeout().is_some_and(|at| at <= now) {
            connection.handle_timeout(now);
        }
        while let Some(event) = connection.poll_endpoint_events() {
            if let Some(event) = self.endpoint.handle_event(handle, event) {
                connection.handle_event(event);
            }
        }
        let mut lost = None;
        let mut connected = false;
        while let Some(event) = connection.poll() {
            match event {
                Event::Connected => connected = true,
                Event::ConnectionLost { reason } => lost = Some(reason.to_string()),
                _ => {}
            }
        }
        // A resumed connection in new-connection mode sends its request in
        // its first flight (0-RTT), without waiting for the handshake.
        let early =
            self.plan.new_connection && connection.is_handshaking() && connection.has_0rtt();
        if connected {
            if connection.accepted_0rtt() {
                self.recorder.zero_rtt += 1;
            } else if self.plan.new_connection {
                resend_refused_early_requests(connection, &mut conn.inflight, &self.plan.payload);
            }
            if let Some(since) = self.conns[key].connecting_since.take() {
                self.recorder.handshake(now - since);
                if self.plan.hold {
                    Progress::add(&self.shared.progress.open, 1);
                }
            }
        }
        if let Some(reason) = lost {
            self.fail(key, now, || format!("quic connection lost: {reason}"));
            return;
        }
        if self.conns[key].connecting_since.is_none() || early {
            self.read_replies(key, now);
            self.send_requests(key, now);
        }
    }

    /// Checks what came on connection `key`'s streams against the replies
    /// expected, completing requests as their last byte arrives.
    fn read_replies(&mut self, key: usize, now: Instant) {
        let conn = &mut self.conns[key];
        let Some(connection) = conn.conn.as_mut() else {
            return;
        };
        let payload = &self.plan.payload;
        let own_streams = self.quic.streams || self.plan.new_connection;
        let mut index = 0;
        while index < conn.inflight.len() {
            let mut pending = conn.inflight[index];
            let mut recv = connection.recv_stream(pending.stream);
            let Ok(mut chunks) = recv.read(true) else {
                index += 1;
                continue;
            };
            let mut wrong = None;
            let mut ended = false;
            loop {
                match chunks.next(usize::MAX) {
                    Ok(Some(chunk)) => {
                        let mut bytes = &chunk.bytes[..];
                        // Pipelined: one chunk may finish several replies.
                        while !bytes.is_empty() {
                            let expected = payload.reply_from(pending.n, pending.received);
                            let take = expected.len().min(bytes.len());
                            if bytes[..take] != expected[..take] {
                                wrong = Some("a reply byte differs from the request's answer");
                                break;
                            }
                            bytes = &bytes[take..];
                            pending.received += take;
                            // A stream of its own completes at its FIN.
                            if pending.received == payload.size() && !own_streams {
                                let tally = (&mut self.window, &mut self.recorder);
                                let of_conn = (
                                    &mut conn.inflight,
                                    &mut conn.answered,
                                    &mut conn.last_progress,
                                );
                                answered(of_conn, index, now, tally, &mut self.outstanding);
                                match conn.inflight.get(index) {
                                    Some(next) if next.stream == pending.stream => pending = *next,
                                    _ => {
                                        if !bytes.is_empty() {
                                            wrong = Some("more reply bytes than requests");
                                        }
                                        break;
                                    }
                                }
                            }
                        }
                        if wrong.is_some() {
                            break;
                        }
                    }
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(ReadError::Blocked) => break,
                    Err(ReadError::Reset(_)) => {
                        wrong = Some("the server reset a stream");
                        break;
                    }
                }
            }
            let _ = chunks.finalize();
            if wrong.is_none() && ended && own_streams && pending.received != payload.size() {
                wrong = Some("a stream ended before its whole reply");
            }
            if let Some(what) = wrong {
                self.fail(key, now, || what.to_string());
                return;
            }
            if ended && own_streams {
                let tally = (&mut self.window, &mut self.recorder);
                let of_conn = (
                    &mut conn.inflight,
                    &mut conn.answered,
                    &mut conn.last_progress,
                );
                answered(of_conn, index, now, tally, &mut self.outstanding);
                continue;
            }
            if let Some(slot) = conn.inflight.get_mut(index) {
                if slot.stream == pending.stream {
                    *slot = pending;
                }
            }
            index += 1;
        }
        if self.plan.new_connection && conn.inflight.is_empty() && conn.answered > 0 {
            // One request per connection: close it, and connect again.
            if let Some(mut connection) = conn.conn.take() {
                connection.close(now, VarInt::from_u32(0), bytes::Bytes::new());
                self.transmit.clear();
                if let Some(transmit) = connection.poll_transmit(now, 1, &mut self.transmit) {
                    let _ = self
                        .socket
                        .send_to(&self.transmit[..transmit.size], transmit.destination);
                }
                if let Some(handle) = conn.handle.take() {
                    self.handles.remove(&handle);
                }
            }
        }
    }

    /// Sends connection `key`'s next requests while the window issues and
    /// fewer than `depth` are in flight.
    fn send_requests(&mut self, key: usize, now: Instant) {
        let depth = self.plan.depth;
        let conn = &mut self.conns[key];
        let Some(connection) = conn.conn.as_mut() else {
            return;
        };
        let before = (conn.inflight.len(), conn.unsent.len());
        while conn.inflight.len() < depth && self.window.issuing() {
            if self.plan.new_connection && conn.answered + conn.inflight.len() as u64 > 0 {
                break;
            }
            let stream = if self.quic.streams || self.plan.new_connection {
                match connection.streams().open(Dir::Bi) {
                    Some(stream) => stream,
                    // The server's stream limit: wait for a stream to end.
                    None => break,
                }
            } else {
                match conn.stream {
                    Some(stream) => stream,
                    None => match connection.streams().open(Dir::Bi) {
                        Some(stream) => *conn.stream.insert(stream),
                        None => break,
                    },
                }
            };
            // In new-connection mode a request's time includes its handshake.
            let issued_at = if self.plan.new_connection {
                conn.opened_at
            } else {
                now
            };
            let Some((start, _)) = self.window.next_request(None, issued_at) else {
                // The window closed: a stream of its own ends unused.
                if conn.stream != Some(stream) {
                    let _ = connection.send_stream(stream).finish();
                }
                break;
            };
            let n = self.next_n;
            self.next_n += 1;
            conn.unsent.extend_from_slice(self.plan.payload.request(n));
            let mut send = connection.send_stream(stream);
            let written = send.write(&conn.unsent).unwrap_or(0);
            conn.unsent.drain(..written);
            if self.quic.streams || self.plan.new_connection {
                // The whole request fits the fresh stream's window here;
                // what did not is sent before its FIN by the next writes.
                if conn.unsent.is_empty() {
                    let _ = send.finish();
                }
            }
            conn.inflight.push_back(Pending {
                n,
                start,
                stream,
                received: 0,
            });
            self.outstanding += 1;
        }
        if !conn.unsent.is_empty() {
            if let Some(stream) = conn.inflight.back().map(|pending| pending.stream) {
                let written = connection
                    .send_stream(stream)
                    .write(&conn.unsent)
                    .unwrap_or(0);
                conn.unsent.drain(..written);
                if conn.unsent.is_empty() && (self.quic.streams || self.plan.new_connection) {
                    let _ = connection.send_stream(stream).finish();
                }
            }
        }
        if (conn.inflight.len(), conn.unsent.len()) != before {
            self.dirty.push(key);
        }
    }

    /// Counts connection `key` failed: its requests settle as failed, and
    /// it closes (to connect again in new-connection mode).
    fn fail(&mut self, key: usize, now: Instant, what: impl FnOnce() -> String) {
        self.recorder.error(what);
        let conn = &mut self.conns[key];
        if self.plan.hold && conn.connecting_since.is_some() {
            Progress::add(&self.shared.progress.failed, 1);
        }
        for pending in conn.inflight.drain(..) {
            self.window.settle(pending.start, now);
            self.outstanding -= 1;
        }
        conn.unsent.clear();
        conn.connecting_since = None;
        conn.stream = None;
        if let Some(mut connection) = conn.conn.take() {
            connection.close(now, VarInt::from_u32(0), bytes::Bytes::new());
        }
        if let Some(handle) = conn.handle.take() {
            self.handles.remove(&handle);
        }
    }

    /// Fails the connections still in their handshake.
    fn fail_connecting(&mut self, now: Instant) {
        for key in 0..self.conns.len() {
            if self.conns[key].connecting_since.is_some() {
                self.fail(key, now, || "no QUIC handshake in time".into());
            }
        }
    }

    /// Fails connections whose handshake or reply is overdue; in
    /// new-connection mode, connects the slots that have no connection.
    fn scan(&mut self, now: Instant) {
        for key in 0..self.conns.len() {
            let conn = &self.conns[key];
            let overdue =
                |since: Instant, limit: Duration| now.saturating_duration_since(since) > limit;
            if let Some(since) = conn.connecting_since {
                if overdue(since, self.plan.connect_timeout) {
                    self.fail(key, now, || "no QUIC handshake in time".into());
                }
            } else if !conn.inflight.is_empty() && overdue(conn.last_progress, self.plan.timeout) {
                let timeout = self.plan.timeout;
                self.fail(key, now, || format!("no reply for {timeout:?}"));
            }
        }
    }

    /// The measured run: requests until the window closes, then a drain.
    fn measure(mut self, held: Option<Held>) -> Result<Outcome, BenchError> {
        let plan = self.plan;
        let now = Instant::now();
        let quota = if plan.hold {
            Some(self.conns.iter().filter(|conn| conn.conn.is_some()).count() as u64)
        } else {
            plan.quota
        };
        self.window = Window::new(now, plan.warmup, plan.duration, quota);
        let mut next_scan = now + TIMEOUT_SCAN;
        let mut drain_until = None;
        loop {
            let now = Instant::now();
            if plan.new_connection && self.window.issuing() {
                for key in 0..self.conns.len() {
                    if self.conns[key].conn.is_none() {
                        self.connect(key, now);
                    }
                }
            }
            if self.window.tick(now) && drain_until.is_none() {
                drain_until = Some(now + plan.timeout);
            }
            if now >= next_scan {
                self.scan(now);
                next_scan = now + TIMEOUT_SCAN;
            }
            for key in 0..self.conns.len() {
                self.send_requests(key, now);
            }
            self.recorder.publish(&self.shared.progress);
            let done =
                (!self.window.issuing() && self.outstanding == 0) || self.window.quota_settled();
            if done {
                break;
            }
            if drain_until.is_some_and(|until| now >= until) {
                for key in 0..self.conns.len() {
                    if !self.conns[key].inflight.is_empty() {
                        self.fail(key, now, || "no reply by the end of the drain".into());
                    }
                }
                break;
            }
            let wake = self.window.next_wake(next_scan, None, drain_until);
            self.turn(Some(wait_until(now, wake)))?;
        }
        let now = Instant::now();
        for key in 0..self.conns.len() {
            if let Some(connection) = self.conns[key].conn.as_mut() {
                connection.close(now, VarInt::from_u32(0), bytes::Bytes::new());
            }
        }
        self.flush_all();
        self.recorder.publish(&self.shared.progress);
        Ok(Outcome {
            recorder: self.recorder,
            elapsed: self.window.elapsed(now),
            held,
        })
    }
}

/// Counts a connection's request `index` (of its `inflight`) answered at
/// `now`: its latency, and in the throughput if the window says so.
/// Sends again, each on a new stream, the requests `inflight` that went in
/// its first flight when the server refused early data: quinn-proto drops
/// the streams opened early, and the server never saw them. Their start
/// times stay, so their latency counts the refusal.
fn resend_refused_early_requests(
    connection: &mut Connection,
    inflight: &mut VecDeque<Pending>,
    payload: &Payload,
) {
    for pending in inflight.iter_mut() {
        let Some(stream) = connection.streams().open(Dir::Bi) else {
            return;
        };
        let request = payload.request(pending.n);
        let mut send = connection.send_stream(stream);
        // A fresh stream's window takes a request whole (as in
        // `send_requests`).
        if send
            .write(request)
            .is_ok_and(|written| written == request.len())
        {
            let _ = send.finish();
        }
        pending.stream = stream;
        pending.received = 0;
    }
}

fn answered(
    (inflight, answered, last_progress): (&mut VecDeque<Pending>, &mut u64, &mut Instant),
    index: usize,
    now: Instant,
    (window, recorder): (&mut Window, &mut Recorder),
    outstanding: &mut usize,
) {
    let Some(pending) = inflight.remove(index) else {
        return;
    };
    *answered += 1;
    *last_progress = now;
    *outstanding -= 1;
    if let Some(in_window) = window.settle(pending.start, now) {
        recorder.message(now - pending.start, in_window);
    }
}
