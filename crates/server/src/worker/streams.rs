//! TCP connections: taking in an accepted stream, driving it (write what is
//! pending, read and answer, finish), closing it, and the idle timeout.
//!
//! Whether a connection may come in at all is [`accept`](super::accept)'s
//! decision; this module gives its slot under the cap back when it closes.

use super::{ConnectionSlots, Context, Limits, MAX_CONNECTION_KEY, Source};
use crate::connection::{Connection, Phase};
use crate::handle::WorkerStats;
use crate::idle::IdleList;
use crate::service::StreamService;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry};
use slab::Slab;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads per connection per turn: 16 × 64 KiB = 1 MiB before others get a turn.
const READS_PER_TURN: usize = 16;

/// What a connection is registered for. Urgent data raises the priority
/// event, after which reads go on to `WouldBlock` (a read stops short at
/// the urgent mark although more is queued).
#[cfg(any(target_os = "linux", target_os = "android"))]
const CONNECTION_INTEREST: Interest = Interest::READABLE
    .add(Interest::WRITABLE)
    .add(Interest::PRIORITY);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const CONNECTION_INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

/// A worker's TCP connections and what serving them needs.
pub(super) struct Streams<S: StreamService> {
    pub(super) connections: Slab<Connection<S::Session>>,
    pub(super) idle: IdleList,
    pub(super) service: Arc<S>,
    /// One read buffer for every connection of this worker.
    read_buffer: Box<[u8]>,
    /// Where the service writes its answer before it goes to the socket.
    pub(super) scratch: Vec<u8>,
    max_pending_output: usize,
    idle_timeout: Option<Duration>,
    slots: Arc<ConnectionSlots>,
}

impl<S: StreamService> Streams<S> {
    pub(super) fn new(service: Arc<S>, limits: &Limits, slots: Arc<ConnectionSlots>) -> Self {
        Self {
            connections: Slab::new(),
            idle: IdleList::new(),
            service,
            read_buffer: vec![0; limits.read_buffer_size].into_boxed_slice(),
            scratch: Vec::new(),
            max_pending_output: limits.max_pending_output,
            idle_timeout: limits.idle_timeout,
            slots,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    pub(super) fn contains(&self, key: usize) -> bool {
        self.connections.contains(key)
    }

    /// Records what `event` says of connection `key`. Returns whether the
    /// connection exists (an event may name one closed this turn).
    pub(super) fn note(&mut self, key: usize, event: &Event) -> bool {
        match self.connections.get_mut(key) {
            Some(connection) => {
                // Readiness is a hint: remember it, let the syscalls tell
                // the truth.
                connection.readiness.note(event);
                true
            }
            None => false,
        }
    }

    /// When the connection idle longest times out, if a timeout is set.
    pub(super) fn next_idle_deadline(&self) -> Option<Instant> {
        self.idle_timeout
            .and_then(|timeout| self.idle.next_deadline(timeout))
    }

    /// Takes an accepted connection into the loop; its slot under the cap
    /// is already taken, and given back if the connection cannot be served.
    pub(super) fn admit(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        registry: &Registry,
        context: &mut Context,
    ) {
        if let Err(error) = stream.set_nodelay(true) {
            log::debug!("{peer}: TCP_NODELAY not set: {error}");
        }
        // Urgent data stays in the stream, answered like any byte.
        if let Err(error) = shout_socket::keep_urgent_data_inline(&stream) {
            log::debug!("{peer}: SO_OOBINLINE not set: {error}");
        }
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        if key > MAX_CONNECTION_KEY {
            log::warn!("{peer}: no token left for another connection, closing it");
            self.slots.give_back();
            return;
        }
        let token = Source::Connection(key).token();
        if let Err(error) = registry.register(&mut stream, token, CONNECTION_INTEREST) {
            log::warn!("{peer}: cannot watch the connection, closing it: {error}");
            self.slots.give_back();
            return;
        }
        let session = self.service.open(peer);
        // The most one connection can have pending: the cap, reached by
        // less than one byte, plus the answer to one read.
        let output_capacity = self.max_pending_output + self.read_buffer.len() * 3;
        entry.insert(Connection::new(stream, peer, session, output_capacity));
        self.idle.touch(key, context.now);
        WorkerStats::add(&context.stats.connections_accepted, 1);
        log::debug!("{peer}: connected");
    }

    /// Does all a connection can do now: write, read and answer, finish.
    pub(super) fn drive(&mut self, key: usize, registry: &Registry, context: &mut Context) {
        match self.step(key, context) {
            Ok(true) => {}
            Ok(false) => self.close(key, None, registry, context),
            Err(error) => self.close(key, Some(error), registry, context),
        }
    }

    /// Returns `Ok(false)` when the connection is done and should close.
    fn step(&mut self, key: usize, context: &mut Context) -> io::Result<bool> {
        let stats = &context.stats;
        let connection = &mut self.connections[key];
        let mut active = add_bytes_out(stats, connection.flush()?) > 0;

        let mut reads = 0;
        while connection.readiness.is_readable() && !connection.input_ended {
            if connection.pending_output() >= self.max_pending_output {
                // Backpressure: stay readable, resume when output drains.
                break;
            }
            if reads == READS_PER_TURN {
                context.hot.push(Source::Connection(key));
                break;
            }
            reads += 1;
            let Some(read) = connection
                .readiness
                .read(&mut connection.stream, &mut self.read_buffer)?
            else {
                break;
            };
            active = true;
            self.scratch.clear();
            if read == 0 {
                connection.input_ended = true;
                if connection.phase == Phase::Serving {
                    self.service.end(&mut connection.session, &mut self.scratch);
                }
            } else {
                WorkerStats::add(&stats.bytes_in, read as u64);
                // In the later phases input is discarded: the answer is over.
                if connection.phase == Phase::Serving {
                    let request = &self.read_buffer[..read];
                    self.service
                        .data(&mut connection.session, request, &mut self.scratch);
                }
            }
            if !self.scratch.is_empty() {
                add_bytes_out(stats, connection.send(&self.scratch)?);
            }
        }

        if active {
            self.idle.touch(key, context.now);
        }
        if connection.pending_output() > 0 {
            return Ok(true);
        }
        // Everything answered has been sent.
        match connection.phase {
            Phase::Serving => Ok(!connection.input_ended),
            Phase::Finishing => {
                connection.stream.shutdown(Shutdown::Write)?;
                connection.phase = Phase::Lingering;
                Ok(!connection.input_ended)
            }
            Phase::Lingering => Ok(!connection.input_ended),
        }
    }

    /// Closes connection `key` and gives its slot under the cap back.
    pub(super) fn close(
        &mut self,
        key: usize,
        error: Option<io::Error>,
        registry: &Registry,
        context: &Context,
    ) {
        let mut connection = self.connections.remove(key);
        self.idle.remove(key);
        // Deregistering is optional (closing the descriptor does it), but
        // keeps the registry exact if a descriptor is ever shared.
        let _ = registry.deregister(&mut connection.stream);
        drop(connection.stream);
        self.slots.give_back();
        WorkerStats::add(&context.stats.connections_closed, 1);
        match error {
            Some(error) => log::debug!("{}: closed on error: {error}", connection.peer),
            None => log::debug!("{}: closed", connection.peer),
        }
    }

    /// Closes the connections idle for longer than the idle timeout.
    pub(super) fn expire_idle(&mut self, registry: &Registry, context: &mut Context) {
        let Some(timeout) = self.idle_timeout else {
            return;
        };
        while let Some(key) = self.idle.expired(context.now, timeout) {
            log::debug!(
                "{}: idle for {timeout:?}, closing",
                self.connections[key].peer
            );
            WorkerStats::add(&context.stats.idle_timeouts, 1);
            self.close(key, None, registry, context);
        }
    }
}

/// Counts `written` bytes out, and returns them.
pub(super) fn add_bytes_out(stats: &WorkerStats, written: usize) -> usize {
    WorkerStats::add(&stats.bytes_out, written as u64);
    written
}
