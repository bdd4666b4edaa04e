//! QUIC: one connection, blocking, on a std `UdpSocket` with timeouts,
//! quinn-proto driven by hand (no runtime, no event loop). Each
//! conversation is one bidirectional stream: the input, then its FIN; the
//! answer, then the server's.
//!
//! This module is not for many connections at once (that is
//! `shout-bench`), nor for choosing whom to trust: the rustls
//! configuration comes from [`TlsClient`], with the ALPN `shout` added.

use crate::tls::tls_reason;
use crate::verify::Refusal;
use crate::{ClientError, StreamTotals, TlsClient};
use bytes::BytesMut;
use quinn_proto::crypto::rustls::QuicClientConfig;
use quinn_proto::{
    ClientConfig, Connection, ConnectionError, ConnectionHandle, DatagramEvent, Dir, Endpoint,
    EndpointConfig, Event, ReadError, StreamId, VarInt, WriteError,
};
use rustls::NamedGroup;
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

/// The application protocol shoutd's QUIC listener serves (ALPN).
pub const QUIC_ALPN: &[u8] = b"shout";

/// Bytes read from the input at a time.
const CHUNK: usize = 64 * 1024;

/// Input chunks read ahead of the stream, at most: memory stays this many
/// chunks whatever the input's size.
const CHUNKS_AHEAD: usize = 2;

/// The largest datagram received.
const MAX_DATAGRAM: usize = 65_536;

/// How to speak QUIC to a server: the TLS configuration and the name to
/// check, cheap to clone.
#[derive(Clone)]
pub struct QuicClient {
    config: ClientConfig,
    server_name: String,
    /// How many TLS 1.3 session tickets its connections have received.
    tickets: Arc<AtomicU64>,
    /// The last certificate its connections refused, named in words when
    /// a handshake fails with a TLS alert.
    refusal: Refusal,
}

impl std::fmt::Debug for QuicClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl QuicClient {
    /// Returns the QUIC configuration of `tls`: its roots and name, TLS
    /// 1.3, the ALPN `shout`.
    pub fn new(tls: &TlsClient) -> Result<Self, ClientError> {
        let mut rustls = (**tls.config()).clone();
        rustls.alpn_protocols = vec![QUIC_ALPN.to_vec()];
        // 0-RTT on a resumed session: the request goes with the first
        // flight (docs/QUIC.md says why replay is harmless here).
        rustls.enable_early_data = true;
        let tickets = Arc::new(AtomicU64::new(0));
        rustls.resumption = Resumption::store(Arc::new(CountedSessions {
            sessions: ClientSessionMemoryCache::new(256),
            tickets: Arc::clone(&tickets),
        }));
        let crypto = QuicClientConfig::try_from(Arc::new(rustls)).map_err(|error| {
            ClientError::TlsConfig {
                reason: error.to_string(),
            }
        })?;
        Ok(Self {
            config: ClientConfig::new(Arc::new(crypto)),
            server_name: tls.server_name().to_str().into_owned(),
            tickets,
            refusal: tls.refusal().clone(),
        })
    }

    /// Returns the quinn-proto configuration, for callers that drive
    /// connections themselves (the load generator).
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Returns the name sent as SNI and checked in the certificate.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// Connects to the first of `addrs` that completes a handshake within
    /// `timeout` each (ten seconds when `None`).
    pub fn connect(
        &self,
        addrs: &[SocketAddr],
        timeout: Option<Duration>,
    ) -> Result<QuicConnection, ClientError> {
        let timeout = timeout.unwrap_or(Duration::from_secs(10));
        let mut last = None;
        for &addr in addrs {
            log::info!("connecting to quic {addr}");
            match QuicConnection::handshake(self, addr, timeout) {
                Ok(connection) => return Ok(connection),
                // The same server presents the same certificate: a TLS
                // failure is not tried on the next address.
                Err(error @ ClientError::Tls { .. }) => return Err(error),
                Err(error) => {
                    log::info!("{error}");
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Resolve {
            host: self.server_name.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "the name has no addresses"),
        }))
    }

    /// Connects to `addr` and returns the connection before its handshake
    /// ends when it can send early data (0-RTT): when this client, or a
    /// clone, holds a session ticket from an earlier connection to the
    /// server. The first [`QuicConnection::exchange`] then goes in the
    /// first flight. Without a ticket it waits for the handshake within
    /// `timeout` (ten seconds when `None`), as [`connect`](Self::connect)
    /// does.
    ///
    /// Early data can be replayed by whoever captures it: use this only for
    /// requests that are safe to repeat (docs/QUIC.md).
    pub fn connect_early(
        &self,
        addr: SocketAddr,
        timeout: Option<Duration>,
    ) -> Result<QuicConnection, ClientError> {
        log::info!("connecting to quic {addr}, 0-RTT if resumed");
        let mut connection = QuicConnection::begin(self, addr)?;
        if connection.conn.has_0rtt() {
            return Ok(connection);
        }
        connection.wait_handshake(timeout)?;
        Ok(connection)
    }
}

/// rustls's memory cache of sessions, counting the TLS 1.3 tickets it is
/// given, so that a connection can wait for the ticket the next one will
/// resume with.
#[derive(Debug)]
struct CountedSessions {
    sessions: ClientSessionMemoryCache,
    tickets: Arc<AtomicU64>,
}

impl ClientSessionStore for CountedSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.sessions.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.sessions.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.sessions.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.sessions.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.sessions.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.sessions.insert_tls13_ticket(server_name, value);
        self.tickets.fetch_add(1, Ordering::Relaxed);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.sessions.take_tls13_ticket(server_name)
    }
}

/// What a connection did with 0-RTT, as [`QuicConnection::zero_rtt`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroRtt {
    /// No stream was opened before the handshake's end.
    NotSent,
    /// Early data went out; the handshake is still under way.
    Pending,
    /// The server took the early data.
    Accepted,
    /// The server refused the early data: what [`QuicConnection::exchange`]
    /// sent early, it sent again once the handshake ended.
    Rejected,
}

/// One QUIC connection to a server, driven from the calling thread.
pub struct QuicConnection {
    socket: UdpSocket,
    endpoint: Endpoint,
    conn: Connection,
    handle: ConnectionHandle,
    peer: SocketAddr,
    /// When the connection began, and when its handshake ended.
    started: Instant,
    handshake_done: Option<Instant>,
    /// Whether a stream was opened before the handshake's end (0-RTT).
    sent_early: bool,
    /// The client's count of session tickets, and its value at the start.
    tickets: Arc<AtomicU64>,
    tickets_before: u64,
    /// Its client's last certificate refusal.
    refusal: Refusal,
    lost: Option<ConnectionError>,
    transmit: Vec<u8>,
    received: Box<[u8]>,
    /// Where a datagram that only wakes the loop comes from.
    waker: Option<SocketAddr>,
}

impl std::fmt::Debug for QuicConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicConnection")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl QuicConnection {
    /// Makes the handshake with `addr`, within `timeout`.
    fn handshake(
        client: &QuicClient,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let mut connection = Self::begin(client, addr)?;
        connection.handshake_until(connection.started + timeout, timeout)?;
        Ok(connection)
    }

    /// Begins a connection to `addr`: its first flight is ready to go.
    fn begin(client: &QuicClient, addr: SocketAddr) -> Result<Self, ClientError> {
        let started = Instant::now();
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).map_err(|error| network(addr, "binding for", error))?;
        let mut endpoint = Endpoint::new(Arc::new(EndpointConfig::default()), None, false, None);
        let (handle, conn) = endpoint
            .connect(started, client.config.clone(), addr, &client.server_name)
            .map_err(|error| quic_error(addr, error.to_string()))?;
        Ok(Self {
            socket,
            endpoint,
            conn,
            handle,
            peer: addr,
            started,
            handshake_done: None,
            sent_early: false,
            tickets: Arc::clone(&client.tickets),
            tickets_before: client.tickets.load(Ordering::Relaxed),
            refusal: client.refusal.clone(),
            lost: None,
            transmit: Vec::new(),
            received: vec![0; MAX_DATAGRAM].into_boxed_slice(),
            waker: None,
        })
    }

    /// Waits for the handshake's end, within `timeout` from now (ten
    /// seconds when `None`). Returns at once when it has ended.
    pub fn wait_handshake(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        let timeout = timeout.unwrap_or(Duration::from_secs(10));
        self.handshake_until(Instant::now() + timeout, timeout)
    }

    /// Drives the connection until its handshake ends, failing at
    /// `deadline` (`timeout` is what the error says).
    fn handshake_until(&mut self, deadline: Instant, timeout: Duration) -> Result<(), ClientError> {
        while self.handshake_done.is_none() {
            self.check_lost()?;
            if Instant::now() >= deadline {
                return Err(timed_out(self.peer, "no QUIC handshake", timeout));
            }
            self.step(deadline.saturating_duration_since(Instant::now()))?;
        }
        self.check_lost()
    }

    /// Waits up to `timeout` for a session ticket from this connection, so
    /// that the client's next connection can resume with 0-RTT, and returns
    /// whether one came. A server sends its tickets once the client's
    /// handshake reaches it, half a round trip after its end, so an answer
    /// that came in 0-RTT comes before them. Returns false at once when no
    /// connection of this client ever received a ticket: the server gives
    /// none.
    pub fn wait_ticket(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let tickets = self.tickets.load(Ordering::Relaxed);
            if tickets > self.tickets_before {
                return true;
            }
            let now = Instant::now();
            if tickets == 0 || self.lost.is_some() || now >= deadline {
                return false;
            }
            if self.step(deadline - now).is_err() {
                return false;
            }
        }
    }

    /// Returns whether the handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        self.handshake_done.is_none()
    }

    /// Returns what the connection did with 0-RTT: whether a stream went
    /// before the handshake's end, and if so whether the server took it.
    pub fn zero_rtt(&self) -> ZeroRtt {
        match (self.sent_early, self.handshake_done) {
            (false, _) => ZeroRtt::NotSent,
            (true, None) => ZeroRtt::Pending,
            (true, Some(_)) if self.conn.accepted_0rtt() => ZeroRtt::Accepted,
            (true, Some(_)) => ZeroRtt::Rejected,
        }
    }

    /// Returns whether early data went out and the server refused it: its
    /// streams are gone, and must be opened and sent again.
    fn rejected_0rtt(&self) -> bool {
        self.zero_rtt() == ZeroRtt::Rejected
    }

    /// Returns the server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Returns how long the handshake took: QUIC's and TLS's, together,
    /// from the connection's start (zero while it is under way).
    pub fn handshake_time(&self) -> Duration {
        (self.handshake_done).map_or(Duration::ZERO, |done| done - self.started)
    }

    /// Sends what quinn-proto has to send, waits up to `wait` for one
    /// datagram (or a wake), and handles it, the timer and the events.
    fn step(&mut self, wait: Duration) -> Result<(), ClientError> {
        self.flush()?;
        let now = Instant::now();
        let until_timer = (self.conn.poll_timeout()).map(|at| at.saturating_duration_since(now));
        let wait = until_timer.map_or(wait, |timer| timer.min(wait));
        let wait = wait.max(Duration::from_micros(100));
        (self.socket.set_read_timeout(Some(wait)))
            .map_err(|error| network(self.peer, "waiting on", error))?;
        match self.socket.recv_from(&mut self.received) {
            Ok((_, from)) if Some(from) == self.waker => {}
            Ok((len, from)) => {
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
                if let Some(DatagramEvent::ConnectionEvent(_, event)) = event {
                    self.conn.handle_event(event);
                }
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(error) => return Err(network(self.peer, "receiving from", error)),
        }
        let now = Instant::now();
        if self.conn.poll_timeout().is_some_and(|at| at <= now) {
            self.conn.handle_timeout(now);
        }
        while let Some(event) = self.conn.poll_endpoint_events() {
            if let Some(event) = self.endpoint.handle_event(self.handle, event) {
                self.conn.handle_event(event);
            }
        }
        while let Some(event) = self.conn.poll() {
            if let Event::ConnectionLost { reason } = event {
                self.lost.get_or_insert(reason);
            }
        }
        if self.handshake_done.is_none() && !self.conn.is_handshaking() && !self.conn.is_closed() {
            self.handshake_done = Some(Instant::now());
            log::info!(
                "connected to quic {} in {:.3} ms",
                self.peer,
                self.handshake_time().as_secs_f64() * 1e3
            );
        }
        self.flush()
    }

    /// Sends every datagram quinn-proto has ready.
    fn flush(&mut self) -> Result<(), ClientError> {
        loop {
            self.transmit.clear();
            let Some(transmit) = self
                .conn
                .poll_transmit(Instant::now(), 1, &mut self.transmit)
            else {
                return Ok(());
            };
            let datagram = &self.transmit[..transmit.size];
            if let Err(error) = self.socket.send_to(datagram, transmit.destination) {
                // A full buffer is a loss QUIC recovers from; others are not.
                if error.kind() != io::ErrorKind::WouldBlock {
                    return Err(network(self.peer, "sending to", error));
                }
            }
        }
    }

    /// Returns the connection's loss as an error, if it was lost.
    fn check_lost(&self) -> Result<(), ClientError> {
        match &self.lost {
            None => Ok(()),
            Some(reason) => Err(lost_error(self.peer, reason, &self.refusal)),
        }
    }

    /// Opens a bidirectional stream; before the handshake's end, one whose
    /// data goes as 0-RTT.
    fn open(&mut self) -> Result<StreamId, ClientError> {
        let id = (self.conn.streams().open(Dir::Bi))
            .ok_or_else(|| quic_error(self.peer, "the server allows no stream now".into()))?;
        self.sent_early |= self.handshake_done.is_none();
        Ok(id)
    }

    /// Sends `request` on a new stream with its FIN and returns the whole
    /// answer, waiting at most `timeout` with nothing moving.
    ///
    /// On a connection still in its handshake ([`QuicClient::connect_early`])
    /// the request goes as 0-RTT; if the server refuses it, the request
    /// goes again on a new stream once the handshake ends.
    pub fn exchange(&mut self, request: &[u8], timeout: Duration) -> Result<Vec<u8>, ClientError> {
        loop {
            let mut answer = Vec::new();
            let input = io::Cursor::new(request.to_vec());
            match self.stream_in_thread(StreamInput::Given(input), &mut answer, Some(timeout))? {
                Streamed::Done(_) => return Ok(answer),
                // Only once: the handshake has ended, so the next stream is
                // not early.
                Streamed::Rejected => log::info!("0-RTT rejected: the request goes again"),
            }
        }
    }

    /// Closes the connection: a CONNECTION_CLOSE (code 0) to the server.
    pub fn close(mut self) {
        self.conn
            .close(Instant::now(), VarInt::from_u32(0), bytes::Bytes::new());
        let _ = self.flush();
    }

    /// Streams `input` on one new stream and the answer to `output`, as
    /// [`quic_stream`] says. A stream opened in 0-RTT that the server
    /// refused is [`Streamed::Rejected`]: nothing of it reached the server.
    fn stream_in_thread<W: Write + ?Sized>(
        &mut self,
        input: StreamInput,
        output: &mut W,
        idle_timeout: Option<Duration>,
    ) -> Result<Streamed, ClientError> {
        let id = self.open()?;
        let early = self.handshake_done.is_none();
        let mut feed = Feed::start(input, self)?;
        let mut totals = StreamTotals::default();
        let mut last_progress = Instant::now();
        loop {
            // A refused 0-RTT stream is gone from quinn-proto, and its id
            // is the next stream's: check before touching it.
            if early && self.rejected_0rtt() {
                return Ok(Streamed::Rejected);
            }
            let mut moved = feed.send(self, id, &mut totals)?;
            let (read, ended) = self.read(id, output)?;
            totals.received += read as u64;
            moved |= read > 0;
            if ended {
                return Ok(Streamed::Done(totals));
            }
            self.check_lost()?;
            if moved {
                last_progress = Instant::now();
            } else if let Some(timeout) = idle_timeout {
                if feed.is_done() && last_progress.elapsed() >= timeout {
                    if self.handshake_done.is_none() {
                        return Err(timed_out(self.peer, "no QUIC handshake", timeout));
                    }
                    return Err(ClientError::ReplyStalled {
                        addr: self.peer,
                        received: totals.received,
                        expected: None,
                        timeout,
                    });
                }
            }
            self.step(idle_timeout.unwrap_or(Duration::from_secs(1)))?;
        }
    }

    /// Writes what stream `id` has now to `output`. Returns the bytes
    /// written and whether the server's FIN came.
    fn read<W: Write + ?Sized>(
        &mut self,
        id: StreamId,
        output: &mut W,
    ) -> Result<(usize, bool), ClientError> {
        let mut recv = self.conn.recv_stream(id);
        let Ok(mut chunks) = recv.read(true) else {
            return Ok((0, true));
        };
        let mut read = 0;
        let ended = loop {
            match chunks.next(usize::MAX) {
                Ok(Some(chunk)) => {
                    read += chunk.bytes.len();
                    if let Err(error) = output.write_all(&chunk.bytes) {
                        let _ = chunks.finalize();
                        return Err(ClientError::Output(error));
                    }
                }
                Ok(None) => break Ok(true),
                Err(ReadError::Blocked) => break Ok(false),
                Err(ReadError::Reset(code)) => {
                    break Err(quic_error(
                        self.peer,
                        format!("the server reset the stream (code {code})"),
                    ));
                }
            }
        };
        let _ = chunks.finalize();
        if read > 0 {
            output.flush().map_err(ClientError::Output)?;
        }
        Ok((read, ended?))
    }
}

/// How a stream of [`QuicConnection::stream_in_thread`] ended.
enum Streamed {
    /// The answer came to the server's FIN.
    Done(StreamTotals),
    /// The stream went in 0-RTT and the server refused it.
    Rejected,
}

/// When one exchange of [`QuicConnection::exchanges`] went out and its
/// answer came.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchanged {
    pub(crate) sent: Instant,
    pub(crate) first: Instant,
    pub(crate) last: Instant,
}

/// One exchange under way: its stream, what of its request left, what of
/// its answer came.
struct Exchange {
    stream: Option<StreamId>,
    written: usize,
    received: usize,
    sent: Option<Instant>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl QuicConnection {
    /// Sends each of `requests` on a stream of its own, with its FIN, and
    /// reads each answer to the server's FIN, checking it is the request's
    /// uppercase (ASCII): all at once (`at_once`, as many streams as the
    /// server allows), or each once the previous answer is complete.
    /// Returns each exchange's times; `timeout` bounds a wait with nothing
    /// moving.
    pub(crate) fn exchanges(
        &mut self,
        requests: &[Vec<u8>],
        at_once: bool,
        timeout: Duration,
    ) -> Result<Vec<Exchanged>, ClientError> {
        let mut all: Vec<Exchange> = (requests.iter())
            .map(|_| Exchange {
                stream: None,
                written: 0,
                received: 0,
                sent: None,
                first: None,
                last: None,
            })
            .collect();
        let mut last_progress = Instant::now();
        loop {
            let mut moved = false;
            for (index, request) in requests.iter().enumerate() {
                let previous_done = index == 0 || all[index - 1].last.is_some();
                if !at_once && !previous_done {
                    break;
                }
                moved |= self.advance(&mut all[index], request)?;
            }
            if all.iter().all(|exchange| exchange.last.is_some()) {
                return Ok((all.iter())
                    .map(|exchange| Exchanged {
                        sent: exchange.sent.expect("sent before answered"),
                        first: exchange.first.expect("answered"),
                        last: exchange.last.expect("answered"),
                    })
                    .collect());
            }
            self.check_lost()?;
            if moved {
                last_progress = Instant::now();
            } else if last_progress.elapsed() >= timeout {
                return Err(ClientError::ReplyTimeout {
                    addr: self.peer,
                    timeout,
                });
            }
            self.step(timeout)?;
        }
    }

    /// Moves one exchange on: opens its stream, writes its request and
    /// FIN, reads and checks its answer. Returns whether a byte moved.
    fn advance(&mut self, exchange: &mut Exchange, request: &[u8]) -> Result<bool, ClientError> {
        if exchange.last.is_some() {
            return Ok(false);
        }
        let stream = match exchange.stream {
            Some(stream) => stream,
            None => match self.conn.streams().open(Dir::Bi) {
                Some(stream) => *exchange.stream.insert(stream),
                // At the server's stream limit: later.
                None => return Ok(false),
            },
        };
        let mut moved = false;
        if exchange.written < request.len() {
            let written = (self.conn.send_stream(stream))
                .write(&request[exchange.written..])
                .unwrap_or(0);
            exchange.written += written;
            exchange.sent.get_or_insert_with(Instant::now);
            if exchange.written == request.len() {
                let _ = self.conn.send_stream(stream).finish();
            }
            moved |= written > 0;
        }
        let mut answer = Vec::new();
        let (read, ended) = self.read(stream, &mut answer)?;
        if read > 0 {
            let now = Instant::now();
            exchange.first.get_or_insert(now);
            let expected = request.to_ascii_uppercase();
            let at = exchange.received;
            if expected.get(at..at + read) != Some(&answer[..]) {
                return Err(quic_error(
                    self.peer,
                    "an answer is not its request's uppercase".into(),
                ));
            }
            exchange.received += read;
            moved = true;
        }
        if ended {
            if exchange.received != request.len() {
                return Err(ClientError::ClosedEarly {
                    addr: self.peer,
                    received: exchange.received as u64,
                    expected: request.len() as u64,
                });
            }
            let now = Instant::now();
            exchange.first.get_or_insert(now);
            exchange.last = Some(now);
            moved = true;
        }
        Ok(moved)
    }
}

/// Where a stream's input comes from.
enum StreamInput {
    /// Bytes in hand: sent from the calling thread.
    Given(io::Cursor<Vec<u8>>),
    /// A reader: read on a thread of its own, a few chunks ahead.
    Reader(Box<dyn Read + Send>),
}

/// The input of a stream as it is sent: chunks from a reader thread
/// (bounded), or bytes in hand.
struct Feed {
    chunks: Option<mpsc::Receiver<io::Result<Vec<u8>>>>,
    given: Option<io::Cursor<Vec<u8>>>,
    /// The chunk being sent, and how much of it is.
    current: Option<(Vec<u8>, usize)>,
    done: bool,
    finished: bool,
}

impl Feed {
    /// Starts taking `input`; a reader gets its own thread, which wakes
    /// `connection` through a datagram after each chunk.
    fn start(input: StreamInput, connection: &mut QuicConnection) -> Result<Self, ClientError> {
        let reader = match input {
            StreamInput::Given(cursor) => {
                return Ok(Self {
                    chunks: None,
                    given: Some(cursor),
                    current: None,
                    done: false,
                    finished: false,
                });
            }
            StreamInput::Reader(reader) => reader,
        };
        let own = connection
            .socket
            .local_addr()
            .map_err(|error| network(connection.peer, "preparing", error))?;
        let loopback: SocketAddr = if own.is_ipv4() {
            (Ipv4Addr::LOCALHOST, own.port()).into()
        } else {
            (Ipv6Addr::LOCALHOST, own.port()).into()
        };
        let waker =
            UdpSocket::bind(SocketAddr::new(loopback.ip(), 0)).map_err(ClientError::Sender)?;
        connection.waker = Some(waker.local_addr().map_err(ClientError::Sender)?);
        let (sender, chunks) = mpsc::sync_channel(CHUNKS_AHEAD);
        thread::Builder::new()
            .name("shout-quic-input".into())
            .spawn(move || read_input(reader, &sender, &waker, loopback))
            .map_err(ClientError::Sender)?;
        Ok(Self {
            chunks: Some(chunks),
            given: None,
            current: None,
            done: false,
            finished: false,
        })
    }

    /// Returns whether all input was sent and the FIN queued.
    fn is_done(&self) -> bool {
        self.finished
    }

    /// Takes the next chunk of input, if one is ready.
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        if let Some(given) = &mut self.given {
            let mut chunk = vec![0; CHUNK];
            let len = given.read(&mut chunk).map_err(ClientError::Input)?;
            if len == 0 {
                self.done = true;
                return Ok(None);
            }
            chunk.truncate(len);
            return Ok(Some(chunk));
        }
        let Some(chunks) = &self.chunks else {
            return Ok(None);
        };
        match chunks.try_recv() {
            Ok(Ok(chunk)) if chunk.is_empty() => {
                self.done = true;
                Ok(None)
            }
            Ok(Ok(chunk)) => Ok(Some(chunk)),
            Ok(Err(error)) => Err(ClientError::Input(error)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => {
                self.done = true;
                Ok(None)
            }
        }
    }

    /// Writes input to stream `id` as far as the stream takes it, and the
    /// FIN after the last byte. Returns whether a byte moved.
    fn send(
        &mut self,
        connection: &mut QuicConnection,
        id: StreamId,
        totals: &mut StreamTotals,
    ) -> Result<bool, ClientError> {
        let mut moved = false;
        while !self.finished {
            if self.current.is_none() && !self.done {
                self.current = self.next_chunk()?.map(|chunk| (chunk, 0));
            }
            let Some((chunk, sent)) = &mut self.current else {
                if self.done {
                    let _ = connection.conn.send_stream(id).finish();
                    self.finished = true;
                    moved = true;
                }
                break;
            };
            match connection.conn.send_stream(id).write(&chunk[*sent..]) {
                Ok(written) => {
                    *sent += written;
                    totals.sent += written as u64;
                    moved = true;
                    if *sent == chunk.len() {
                        self.current = None;
                    }
                }
                Err(WriteError::Blocked) => break,
                Err(WriteError::Stopped(_) | WriteError::ClosedStream) => {
                    return Err(ClientError::ClosedBeforeInputEnd {
                        addr: connection.peer,
                        sent: totals.sent,
                    });
                }
            }
        }
        Ok(moved)
    }
}

/// Reads `reader` in chunks into `chunks` (an empty chunk: the end), and
/// wakes the connection's socket at `wake` after each.
fn read_input(
    mut reader: Box<dyn Read + Send>,
    chunks: &mpsc::SyncSender<io::Result<Vec<u8>>>,
    waker: &UdpSocket,
    wake: SocketAddr,
) {
    loop {
        let mut chunk = vec![0; CHUNK];
        let read = match reader.read(&mut chunk) {
            Ok(len) => {
                chunk.truncate(len);
                Ok(chunk)
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => Err(error),
        };
        let last = !matches!(&read, Ok(chunk) if !chunk.is_empty());
        if chunks.send(read).is_err() {
            return;
        }
        let _ = waker.send_to(&[0], wake);
        if last {
            return;
        }
    }
}

/// Streams `input` to the server on one new stream of `connection` and
/// the answer to `output`, until the server's FIN; then closes the
/// connection.
///
/// A thread reads `input` a few chunks ahead of the stream (memory stays
/// a few chunks whatever its size), and the FIN follows its end; the
/// calling thread drives the connection and writes the answer as it
/// comes. `idle_timeout` bounds how long the server may stay silent once
/// all input is sent.
pub fn quic_stream<R, W>(
    mut connection: QuicConnection,
    input: R,
    output: &mut W,
    idle_timeout: Option<Duration>,
) -> Result<StreamTotals, ClientError>
where
    R: Read + Send + 'static,
    W: Write + ?Sized,
{
    // Input read from a reader cannot be sent again if the server refused
    // it as early data: the stream waits for the handshake.
    let peer = connection.peer();
    let streamed = connection.wait_handshake(idle_timeout).and_then(|()| {
        connection.stream_in_thread(StreamInput::Reader(Box::new(input)), output, idle_timeout)
    });
    connection.close();
    match streamed? {
        Streamed::Done(totals) => Ok(totals),
        Streamed::Rejected => Err(quic_error(peer, "the server refused 0-RTT data".into())),
    }
}

fn network(addr: SocketAddr, action: &'static str, source: io::Error) -> ClientError {
    ClientError::Network {
        action,
        transport: crate::Transport::Udp,
        addr,
        source,
    }
}

fn quic_error(addr: SocketAddr, reason: String) -> ClientError {
    ClientError::Quic { addr, reason }
}

fn timed_out(addr: SocketAddr, what: &str, timeout: Duration) -> ClientError {
    ClientError::Network {
        action: "connecting over QUIC to",
        transport: crate::Transport::Udp,
        addr,
        source: io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} within {}s", timeout.as_secs_f64()),
        ),
    }
}

/// Returns the error a lost connection means: a TLS failure (a crypto
/// error code), the idle timeout, or another close. A certificate this
/// client refused is named as over TCP, from `refusal`.
fn lost_error(addr: SocketAddr, reason: &ConnectionError, refusal: &Refusal) -> ClientError {
    match reason {
        ConnectionError::TransportError(error) if is_crypto(error.code) => ClientError::Tls {
            addr,
            reason: refusal
                .take()
                .map_or_else(|| error.to_string(), |refused| tls_reason(&refused)),
        },
        ConnectionError::ConnectionClosed(close) if is_crypto(close.error_code) => {
            ClientError::Tls {
                addr,
                reason: close.to_string(),
            }
        }
        ConnectionError::TimedOut => ClientError::Network {
            action: "waiting on",
            transport: crate::Transport::Udp,
            addr,
            source: io::Error::new(io::ErrorKind::TimedOut, "the QUIC connection went idle"),
        },
        other => quic_error(addr, other.to_string()),
    }
}

/// Returns whether a QUIC transport error code is a TLS alert (0x100 to
/// 0x1ff, RFC 9001 §4.8).
fn is_crypto(code: quinn_proto::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}
