//! The endpoint: a listening socket, the thread that accepts on it, and one
//! short-lived thread per connection, at most [`Limits::max_connections`],
//! at most [`Limits::max_connections_per_source`] of them from one source.

use crate::http::{self, HeadOutcome, Response, Status};
use crate::{CONTENT_TYPE, Metric, MetricsError, encode};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What one client may make the endpoint do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once. When all are taken, a new connection
    /// takes the place of one already answered (its client not yet gone),
    /// or else of the one that has waited longest for its request head,
    /// which is closed unanswered; when all are being answered, the new
    /// one is answered `503` and closed. 0 refuses every connection so.
    pub max_connections: usize,
    /// Connections not yet answered that one source (an IPv4 address, or
    /// an IPv6 /64) may hold at once; one more from it is answered `503`
    /// and closed, and takes no one's place. 0: no limit per source.
    pub max_connections_per_source: usize,
    /// Time from accept to a complete request head; past it, `408` and
    /// close. Writing the answer gets the same time again.
    pub request_timeout: Duration,
    /// Bytes of request line and headers; past it, `431` and close.
    pub max_head_bytes: usize,
}

impl Limits {
    /// Connections at once by default: a Prometheus server or two, and room
    /// for a person with `curl`.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4;
    /// Connections per source by default: a scraper needs one at a time,
    /// so a source that holds more is stuck or hostile.
    pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 2;
    /// The head timeout by default: a scraper sends its request at once.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    /// The head size by default: a scraper's head is a few hundred bytes.
    pub const DEFAULT_MAX_HEAD_BYTES: usize = 8 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_source: Self::DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            max_head_bytes: Self::DEFAULT_MAX_HEAD_BYTES,
        }
    }
}

/// The embedder's view of its numbers, called once per scrape.
type Snapshot = dyn Fn() -> Vec<Metric> + Send + Sync;

/// A running metrics endpoint; stopped when dropped.
#[derive(Debug)]
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Binds `addr` (port 0 picks a free port) and serves `GET /metrics`
    /// from `snapshot` on a thread of its own, within `limits`.
    ///
    /// `snapshot` runs on a connection's thread, once per `GET` or `HEAD` of
    /// `/metrics`; when it panics the scrape gets `500` and the endpoint
    /// serves on.
    ///
    /// # Errors
    /// [`MetricsError::Bind`] when the address cannot be bound,
    /// [`MetricsError::Start`] when the thread cannot be started.
    pub fn start(
        addr: SocketAddr,
        limits: Limits,
        snapshot: impl Fn() -> Vec<Metric> + Send + Sync + 'static,
    ) -> Result<Self, MetricsError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(MetricsError::Start)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = Acceptor {
            listener,
            limits,
            snapshot: Arc::new(snapshot),
            table: Arc::default(),
            stopping: Arc::clone(&stopping),
        };
        let acceptor = std::thread::Builder::new()
            .name("shout-metrics".into())
            .spawn(move || acceptor.run())
            .map_err(MetricsError::Start)?;
        Ok(Self {
            local_addr,
            stopping,
            acceptor: Some(acceptor),
        })
    }

    /// Returns the address it listens on, with the real port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and waits for the accepting thread to end.
    /// Connections being served finish on their own, within their limits.
    pub fn stop(mut self) {
        self.stop_accepting();
    }

    fn stop_accepting(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        // The acceptor blocks in accept(): one connection wakes it to see
        // the flag. If even that fails, leave it blocked rather than hang.
        let wake = wake_addr(self.local_addr);
        match TcpStream::connect_timeout(&wake, Duration::from_secs(1)) {
            Ok(_) => {
                let _ = acceptor.join();
            }
            Err(error) => log::warn!("metrics: cannot wake the endpoint at {wake}: {error}"),
        }
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.stop_accepting();
    }
}

/// Where to connect to reach a listener bound to `addr`: its own address,
/// or loopback for an unspecified one.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// What the accepting thread owns.
struct Acceptor {
    listener: TcpListener,
    limits: Limits,
    snapshot: Arc<Snapshot>,
    /// Connections being served now.
    table: Arc<Mutex<Table>>,
    stopping: Arc<AtomicBool>,
}

/// The connections being served, each with its source, its phase and a
/// handle that can end it.
#[derive(Default)]
struct Table {
    entries: Vec<Entry>,
    next_id: u64,
}

struct Entry {
    id: u64,
    source: IpAddr,
    accepted: Instant,
    phase: Phase,
    /// A clone of the socket: shutting it down ends a blocked read at once.
    handle: TcpStream,
}

/// Where a connection is in its one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for its request head: it may be evicted.
    Head,
    /// Being answered: never evicted.
    Answer,
    /// Answered and its FIN sent; its thread drops what the client still
    /// sends. It no longer counts against its source, and may be evicted.
    Drain,
}

impl Table {
    /// Makes room for a connection from `source` within `limits`: when
    /// the table is full, ends a finished exchange's drain or else the
    /// longest wait for a head. Returns the new entry's id, or `None` when
    /// the connection must be refused.
    fn admit(&mut self, source: IpAddr, stream: &TcpStream, limits: &Limits) -> Option<u64> {
        if limits.max_connections == 0 {
            return None;
        }
        let held = self
            .entries
            .iter()
            .filter(|entry| entry.source == source && entry.phase != Phase::Drain)
            .count();
        if limits.max_connections_per_source > 0 && held >= limits.max_connections_per_source {
            return None;
        }
        if self.entries.len() >= limits.max_connections {
            let (victim, _) = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, entry)| entry.phase != Phase::Answer)
                .min_by_key(|(_, entry)| (entry.phase != Phase::Drain, entry.accepted))?;
            let evicted = self.entries.swap_remove(victim);
            log::debug!(
                "metrics: full; closing a connection in phase {:?}",
                evicted.phase
            );
            let _ = evicted.handle.shutdown(Shutdown::Both);
        }
        // Without a handle the connection could not be evicted, so it is
        // not admitted: a table full of them would deny everyone.
        let handle = stream.try_clone().ok()?;
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            source,
            accepted: Instant::now(),
            phase: Phase::Head,
            handle,
        });
        Some(id)
    }
}

/// One connection's place in the table; given up when its thread ends,
/// even by a panic.
struct Slot {
    table: Arc<Mutex<Table>>,
    id: u64,
}

impl Slot {
    /// Moves the connection to `phase`. Moving to [`Phase::Drain`] comes
    /// before the FIN, so a client that has read its whole answer finds
    /// its source's share already given back when it connects again.
    fn enter(&self, phase: Phase) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = table.entries.iter_mut().find(|entry| entry.id == self.id) {
            entry.phase = phase;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.entries.retain(|entry| entry.id != self.id);
    }
}

/// Returns the source a peer's connections are counted under: its IPv4
/// address (an IPv4-mapped IPv6 one too), or its IPv6 /64, the block one
/// host or site is usually given.
fn source_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(ip) => IpAddr::V4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(ip.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

impl Acceptor {
    fn run(self) {
        loop {
            let accepted = self.listener.accept();
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, most likely: it would fail again
                    // at once, so pause instead of spinning.
                    log::warn!("metrics: accept failed: {error}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let admitted = self
                .table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .admit(source_of(peer.ip()), &stream, &self.limits);
            let Some(id) = admitted else {
                refuse(stream);
                continue;
            };
            let slot = Slot {
                table: Arc::clone(&self.table),
                id,
            };
            let (limits, snapshot) = (self.limits, Arc::clone(&self.snapshot));
            // On a failed spawn the closure, and with it the slot and the
            // stream, is dropped: the entry goes and the client sees a
            // close.
            let spawned = std::thread::Builder::new()
                .name("shout-metrics-conn".into())
                .spawn(move || serve(stream, limits, &*snapshot, &slot));
            if let Err(error) = spawned {
                log::warn!("metrics: cannot start a connection thread: {error}");
            }
        }
    }
}

/// Answers `503` without blocking the acceptor: a fresh socket's send
/// buffer takes a short answer whole, and if not, the client gets a close.
/// What the client already sent is read first, because closing over unread
/// input resets the connection, which can destroy the answer before the
/// client reads it; input that comes later may still meet a reset.
fn refuse(mut stream: TcpStream) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut sink = [0; 4096];
    let _ = stream.read(&mut sink);
    let _ = stream.write(&Response::error(Status::Unavailable).to_bytes(true));
    let _ = stream.shutdown(Shutdown::Write);
}

/// Serves one connection: one request, one answer, close.
fn serve(mut stream: TcpStream, limits: Limits, snapshot: &Snapshot, slot: &Slot) {
    let deadline = Instant::now() + limits.request_timeout;
    let head = http::read_head(&mut stream, deadline, limits.max_head_bytes);
    slot.enter(Phase::Answer);
    let (response, with_body) = match head {
        Ok(HeadOutcome::Request(request)) => {
            let head_only = request.method == "HEAD";
            (
                respond(&request.method, &request.path, snapshot),
                !head_only,
            )
        }
        Ok(HeadOutcome::TooLarge) => (Response::error(Status::HeadTooLarge), true),
        Ok(HeadOutcome::Malformed) => (Response::error(Status::BadRequest), true),
        Ok(HeadOutcome::TimedOut) => (Response::error(Status::RequestTimeout), true),
        Ok(HeadOutcome::Closed) => return,
        Err(error) => {
            log::debug!("metrics: reading a request failed: {error}");
            return;
        }
    };
    let bytes = response.to_bytes(with_body);
    if let Err(error) = http::answer_and_close(&mut stream, &bytes, limits.request_timeout, || {
        slot.enter(Phase::Drain);
    }) {
        log::debug!("metrics: answering failed: {error}");
    }
}

/// The answer to a well-formed request.
fn respond(method: &str, path: &str, snapshot: &Snapshot) -> Response {
    if method != "GET" && method != "HEAD" {
        return Response::error(Status::MethodNotAllowed);
    }
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    if path != "/metrics" {
        return Response::error(Status::NotFound);
    }
    let Ok(metrics) = std::panic::catch_unwind(AssertUnwindSafe(snapshot)) else {
        log::error!("metrics: the snapshot function panicked");
        return Response::error(Status::InternalError);
    };
    match encode(&metrics) {
        Ok(text) => Response {
            status: Status::Ok,
            content_type: CONTENT_TYPE,
            body: text.into_bytes(),
        },
        Err(error) => {
            log::error!("metrics: {error}");
            Response::error(Status::InternalError)
        }
    }
}
