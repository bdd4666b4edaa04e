//! The UDP load: sockets, each a client with `depth` datagrams in flight,
//! driven by one `mio::Poll` per thread.
//!
//! Each socket is connected to the server, so it receives from the server
//! only and an ICMP port-unreachable comes back as an error. A reply names
//! its request by the tag at its start (see `payload`), so replies may come
//! in any order; one that names no request in flight (its request was
//! already counted lost, or it came twice) is counted late and ignored. A
//! datagram with no reply within the timeout is counted lost and replaced.

use super::record::{Progress, Recorder};
use super::schedule::{Pacer, Window, wait_until};
use super::{BenchError, Outcome, Plan, Shared};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use shout_client::ClientError;
use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How often datagrams are checked for an overdue reply.
const TIMEOUT_SCAN: Duration = Duration::from_millis(10);
/// Larger than any datagram, so that a reply too long shows as one.
const RECEIVE_BUFFER: usize = 65_536;

/// Runs one thread's share of a UDP benchmark.
pub(crate) fn run(plan: &Plan, shared: &Shared) -> Result<Outcome, BenchError> {
    let prepared = UdpLoad::new(plan, &shared.progress);
    shared.ready.wait();
    prepared?.measure()
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    start: Instant,
}

struct Sock {
    socket: UdpSocket,
    readable: bool,
    writable: bool,
    /// Datagrams in flight, oldest first; the last `unsent` of them wait
    /// for the socket to take them.
    inflight: VecDeque<Pending>,
    unsent: usize,
    next_seq: u64,
    /// Open loop: datagrams due but not sent, the socket being at its depth.
    due: VecDeque<Instant>,
}

/// One thread's share of a UDP benchmark: its sockets and the run they
/// take part in.
struct UdpLoad<'a> {
    plan: &'a Plan,
    progress: &'a Progress,
    poll: Poll,
    socks: Vec<Sock>,
    recorder: Recorder,
    window: Window,
    outstanding: u64,
    buffer: Vec<u8>,
    datagram: Vec<u8>,
}

impl<'a> UdpLoad<'a> {
    fn new(plan: &'a Plan, progress: &'a Progress) -> Result<Self, BenchError> {
        let poll = Poll::new().map_err(BenchError::EventLoop)?;
        let local: SocketAddr = match plan.addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let mut socks = Vec::with_capacity(plan.connections);
        for key in 0..plan.connections {
            let socket_error = |error: io::Error| ClientError::Network {
                action: "opening a socket for",
                transport: shout_client::Transport::Udp,
                addr: plan.addr,
                source: error,
            };
            let mut socket = UdpSocket::bind(local).map_err(socket_error)?;
            socket.connect(plan.addr).map_err(socket_error)?;
            poll.registry()
                .register(
                    &mut socket,
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(BenchError::EventLoop)?;
            socks.push(Sock {
                socket,
                readable: false,
                writable: true,
                inflight: VecDeque::new(),
                unsent: 0,
                next_seq: 0,
                due: VecDeque::new(),
            });
        }
        Ok(Self {
            plan,
            progress,
            poll,
            socks,
            recorder: Recorder::new(),
            window: Window::new(Instant::now(), Duration::ZERO, None, Some(0)),
            outstanding: 0,
            buffer: vec![0; RECEIVE_BUFFER],
            datagram: Vec::with_capacity(plan.payload.size()),
        })
    }

    fn measure(mut self) -> Result<Outcome, BenchError> {
        let plan = self.plan;
        let now = Instant::now();
        self.window = Window::new(now, plan.warmup, plan.duration, plan.quota);
        let mut pacer = plan.rate.map(|rate| Pacer::new(now, rate));
        if pacer.is_none() {
            for key in 0..self.socks.len() {
                self.step(key, now);
            }
        }
        let mut events = Events::with_capacity(1024);
        let mut next_scan = now + TIMEOUT_SCAN;
        let mut drain_until = None;
        loop {
            let now = Instant::now();
            if let Some(pacer) = pacer.as_mut() {
                self.pace(pacer, now);
            }
            if self.window.tick(now) && drain_until.is_none() {
                drain_until = Some(now + plan.timeout);
            }
            if now >= next_scan {
                self.expire(now);
                next_scan = now + TIMEOUT_SCAN;
            }
            self.recorder.publish(self.progress);
            if (!self.window.issuing() && self.outstanding == 0) || self.window.quota_settled() {
                break;
            }
            if drain_until.is_some_and(|until| now >= until) {
                self.expire(now + plan.timeout);
                break;
            }
            let wake = self
                .window
                .next_wake(next_scan, pacer.as_ref(), drain_until);
            match self.poll.poll(&mut events, Some(wait_until(now, wake))) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(BenchError::EventLoop(error)),
            }
            let now = Instant::now();
            for event in events.iter() {
                let key = event.token().0;
                let Some(sock) = self.socks.get_mut(key) else {
                    continue;
                };
                sock.readable |= event.is_readable() || event.is_error();
                sock.writable |= event.is_writable() || event.is_error();
                self.step(key, now);
            }
        }
        let elapsed = self.window.elapsed(Instant::now());
        self.recorder.publish(self.progress);
        Ok(Outcome {
            recorder: self.recorder,
            elapsed,
            held: None,
        })
    }

    /// Open loop: hands every datagram now due to the next socket.
    fn pace(&mut self, pacer: &mut Pacer, now: Instant) {
        while self.window.issuing() {
            let Some((k, due)) = pacer.take_due(now) else {
                return;
            };
            if !self.window.issue(due) {
                return;
            }
            let key = k as usize % self.socks.len();
            self.socks[key].due.push_back(due);
            self.outstanding += 1;
            self.step(key, now);
        }
    }

    /// Receives and checks replies, issues what is due, sends what waits.
    fn step(&mut self, key: usize, now: Instant) {
        self.receive(key);
        self.refill(key, now);
        self.send(key, now);
    }

    fn refill(&mut self, key: usize, now: Instant) {
        let sock = &mut self.socks[key];
        let open_loop = self.plan.rate.is_some();
        while sock.inflight.len() < self.plan.depth {
            let due = open_loop.then_some(&mut sock.due);
            let Some((start, issued)) = self.window.next_request(due, now) else {
                return;
            };
            self.outstanding += u64::from(issued);
            sock.inflight.push_back(Pending {
                seq: sock.next_seq,
                start,
            });
            sock.next_seq += 1;
            sock.unsent += 1;
        }
    }

    fn send(&mut self, key: usize, now: Instant) {
        let addr = self.plan.addr;
        let sock = &mut self.socks[key];
        while sock.writable && sock.unsent > 0 {
            let index = sock.inflight.len() - sock.unsent;
            let pending = sock.inflight[index];
            self.plan.payload.datagram(pending.seq, &mut self.datagram);
            match sock.socket.send(&self.datagram) {
                Ok(_) => sock.unsent -= 1,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => sock.writable = false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // Refused (an ICMP error for an earlier datagram) or
                    // worse: this datagram is not sent, and fails.
                    sock.inflight.remove(index);
                    sock.unsent -= 1;
                    self.outstanding -= 1;
                    self.window.settle(pending.start, now);
                    self.recorder.error(|| {
                        format!(
                            "sending to udp {addr} failed: {error}{}",
                            refused_hint(&error)
                        )
                    });
                }
            }
        }
    }

    fn receive(&mut self, key: usize) {
        let addr = self.plan.addr;
        let tag_space = self.plan.payload.tag_space();
        while self.socks[key].readable {
            let sock = &mut self.socks[key];
            let len = match sock.socket.recv(&mut self.buffer) {
                Ok(len) => len,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    sock.readable = false;
                    break;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // An ICMP error for an earlier datagram: that one will
                    // be counted lost; this says why.
                    self.recorder.error(|| {
                        format!(
                            "receiving from udp {addr} failed: {error}{}",
                            refused_hint(&error)
                        )
                    });
                    continue;
                }
            };
            let now = Instant::now();
            let Some(tag) = self.plan.payload.check_datagram_reply(&self.buffer[..len]) else {
                let shown = String::from_utf8_lossy(&self.buffer[..len.min(16)]).into_owned();
                self.recorder.error(|| {
                    format!("udp {addr}: wrong reply of {len} bytes, starting {shown:?}")
                });
                continue;
            };
            let sent = sock.inflight.len() - sock.unsent;
            let Some(index) = (0..sent).find(|&i| sock.inflight[i].seq % tag_space == tag) else {
                self.recorder.late += 1;
                continue;
            };
            let pending = sock.inflight.remove(index).expect("the index was found");
            self.outstanding -= 1;
            if let Some(in_window) = self.window.settle(pending.start, now) {
                self.recorder.message(now - pending.start, in_window);
            }
            if sock.inflight.len() == sock.unsent {
                // Every reply awaited is in: spare the read that would say
                // `WouldBlock`. A datagram arriving later raises a new
                // event (epoll reports each arrival, even edge-triggered),
                // and the socket stays marked readable meanwhile.
                break;
            }
        }
    }

    /// Counts lost every sent datagram older than the timeout at `now`,
    /// and replaces it.
    fn expire(&mut self, now: Instant) {
        let timeout = self.plan.timeout;
        for key in 0..self.socks.len() {
            let sock = &mut self.socks[key];
            let mut expired = false;
            while sock.inflight.len() > sock.unsent
                && sock
                    .inflight
                    .front()
                    .is_some_and(|p| now - p.start >= timeout)
            {
                let pending = sock.inflight.pop_front().expect("checked above");
                self.outstanding -= 1;
                if self.window.settle(pending.start, now).is_some() {
                    self.recorder.lost += 1;
                }
                expired = true;
            }
            if expired {
                self.refill(key, now);
                self.send(key, now);
            }
        }
    }
}

fn refused_hint(error: &io::Error) -> &'static str {
    if error.kind() == io::ErrorKind::ConnectionRefused {
        " (is a server listening there?)"
    } else {
        ""
    }
}
