//! Accepting connections, and the limits on it: the server-wide connection
//! cap, descriptor exhaustion (the spare descriptor) and the back-off after
//! an accept error that would repeat.
//!
//! This module decides whether a connection may come in; what happens to
//! it then is [`streams`](super::streams)' business.

use super::{Context, ListenerKind, MAX_SOCKETS_PER_KIND, Source};
use crate::service::{LocalEnd, Transport};
use crate::sources::{ConnectionSlots, Slot};
use crate::stats::WorkerStats;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry};
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long to stop accepting when even the spare descriptor is gone, or
/// after an accept error that would only repeat.
pub(super) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What one accept gave.
pub(super) enum Accepted {
    /// A connection, with its slot under the cap taken (and charged to its
    /// peer, unless the listener expects a PROXY header).
    Connection(TcpStream, SocketAddr, Slot),
    /// No connection, but accepting may go on (a client that gave up, a
    /// connection shed for want of descriptors).
    Nothing,
    /// Nothing more this turn: the backlog is empty, or accepting is paused.
    Stop,
}

/// A worker's listeners and what limits accepting on them.
pub(super) struct Acceptor {
    listeners: Vec<TcpListener>,
    /// Each listener's address, kept after the listeners close.
    addrs: Vec<Arc<LocalEnd>>,
    /// What each listener serves.
    kinds: Vec<ListenerKind>,
    slots: Arc<ConnectionSlots>,
    /// A descriptor held in reserve for accepting (and closing) one
    /// connection when the process has no descriptor left.
    spare_descriptor: Option<File>,
    /// Opens the spare; a seam for tests that cannot exhaust descriptors.
    open_spare: fn() -> Option<File>,
    out_of_descriptors: bool,
    /// An accept error that would repeat was reported; cleared by the next
    /// connection accepted, so a new episode is reported again.
    failing: bool,
    limit_reported: bool,
    /// The listeners are deregistered because the server is at its cap.
    at_limit: bool,
    backoff_until: Option<Instant>,
}

/// The listener a connection came from, as [`Streams::admit`](super::streams::Streams::admit) takes it.
pub(super) struct Listener<'a> {
    pub(super) addr: &'a Arc<LocalEnd>,
    pub(super) kind: &'a ListenerKind,
}

impl Acceptor {
    pub(super) fn new(
        registry: &Registry,
        sockets: Vec<(std::net::TcpListener, ListenerKind)>,
        slots: Arc<ConnectionSlots>,
    ) -> io::Result<Self> {
        debug_assert!(sockets.len() <= MAX_SOCKETS_PER_KIND);
        let mut listeners = Vec::with_capacity(sockets.len());
        let mut addrs = Vec::with_capacity(sockets.len());
        let mut kinds = Vec::with_capacity(sockets.len());
        for (index, (listener, kind)) in sockets.into_iter().enumerate() {
            kinds.push(kind);
            let addr = listener.local_addr()?;
            addrs.push(Arc::new(LocalEnd {
                listener: index,
                listener_addr: addr,
                local: addr,
                transport: Transport::Plain,
            }));
            let mut socket = TcpListener::from_std(listener);
            let token = Source::Listener(index).token();
            registry.register(&mut socket, token, Interest::READABLE)?;
            listeners.push(socket);
        }
        Ok(Self {
            listeners,
            addrs,
            kinds,
            slots,
            spare_descriptor: open_spare_descriptor(),
            open_spare: open_spare_descriptor,
            out_of_descriptors: false,
            failing: false,
            limit_reported: false,
            at_limit: false,
            backoff_until: None,
        })
    }

    /// Returns listener `index`: its address and kind.
    pub(super) fn listener(&self, index: usize) -> Listener<'_> {
        Listener {
            addr: &self.addrs[index],
            kind: &self.kinds[index],
        }
    }

    /// When accepting resumes after a back-off, if one is on.
    pub(super) fn backoff_until(&self) -> Option<Instant> {
        self.backoff_until
    }

    /// Accepts one connection from listener `index`, within the cap.
    pub(super) fn accept(
        &mut self,
        index: usize,
        registry: &Registry,
        context: &mut Context,
    ) -> Accepted {
        if self.backoff_until.is_some() || self.at_limit || index >= self.listeners.len() {
            return Accepted::Stop;
        }
        let Some(mut slot) = self.slots.take() else {
            self.pause_at_limit(registry, context);
            return Accepted::Stop;
        };
        match self.listeners[index].accept() {
            Ok((stream, peer)) => {
                self.out_of_descriptors = false;
                self.failing = false;
                // Behind a PROXY balancer the peer is the balancer: the
                // share is charged to the client its header names.
                let charge_peer = self.kinds[index].proxy.is_none();
                if charge_peer && !slot.charge(peer.ip()) {
                    return refuse_per_source(stream, peer, context);
                }
                Accepted::Connection(stream, peer, slot)
            }
            // The slot goes back as it drops.
            Err(error) => self.on_error(index, &error, context),
        }
    }

    /// Decides what an accept error means for accepting.
    fn on_error(&mut self, index: usize, error: &io::Error, context: &mut Context) -> Accepted {
        if error.kind() == io::ErrorKind::WouldBlock {
            Accepted::Stop
        } else if is_out_of_descriptors(error) {
            if self.shed_one_connection(index, error, context) {
                Accepted::Nothing
            } else {
                Accepted::Stop
            }
        } else if is_transient_accept_error(error) {
            // The client gave up between handshake and accept, or the call
            // was interrupted: neither concerns other clients.
            Accepted::Nothing
        } else {
            // EPERM from a security module, EPROTO, or anything not known
            // to concern one client: it would fail again at once.
            log::log!(
                warn_once(&mut self.failing),
                "worker {}: accept failed: {error}; retrying every {ACCEPT_BACKOFF:?}",
                context.id
            );
            self.back_off(context);
            Accepted::Stop
        }
    }

    /// Out of descriptors: frees the spare to accept one waiting connection
    /// and close it, so it is refused rather than left hanging. Returns
    /// whether accepting may go on; if not, accepting backs off and is
    /// retried, so the backlog is served again without a new connection.
    fn shed_one_connection(
        &mut self,
        index: usize,
        error: &io::Error,
        context: &mut Context,
    ) -> bool {
        if !self.out_of_descriptors {
            self.out_of_descriptors = true;
            log::warn!(
                "worker {}: out of file descriptors ({error}); \
                 refusing new connections until some close",
                context.id,
            );
        }
        let Some(spare) = self.spare_descriptor.take() else {
            self.back_off(context);
            return false;
        };
        drop(spare);
        // The accepted stream is dropped (closed) inside this statement, so
        // its descriptor is free again when the spare is reopened below.
        let shed = self.listeners[index].accept().map(|(_stream, peer)| peer);
        self.spare_descriptor = (self.open_spare)();
        match shed {
            Ok(peer) => {
                WorkerStats::add(&context.stats.connections_shed, 1);
                log::debug!("{peer}: closed at once, no descriptor to serve it");
            }
            // Someone else took the freed descriptor.
            Err(_) => self.spare_descriptor = None,
        }
        if self.spare_descriptor.is_none() {
            self.back_off(context);
            return false;
        }
        true
    }

    fn back_off(&mut self, context: &Context) {
        self.backoff_until = Some(context.now + ACCEPT_BACKOFF);
    }

    /// Ends a back-off that is over: reopens the spare descriptor if it is
    /// missing and serves the listeners again.
    pub(super) fn resume_after_backoff(&mut self, context: &mut Context) {
        if self.backoff_until.is_some_and(|until| context.now >= until) {
            self.backoff_until = None;
            if self.spare_descriptor.is_none() {
                self.spare_descriptor = (self.open_spare)();
            }
            context
                .hot
                .extend((0..self.listeners.len()).map(Source::Listener));
        }
    }

    /// At the cap: stops listening for events entirely, so a burst of
    /// waiting clients costs no CPU.
    fn pause_at_limit(&mut self, registry: &Registry, context: &Context) {
        self.at_limit = true;
        self.slots.paused.fetch_add(1, Ordering::SeqCst);
        for listener in &mut self.listeners {
            if let Err(error) = registry.deregister(listener) {
                log::warn!("worker {}: cannot pause a listener: {error}", context.id);
            }
        }
        // Reported once at warning level; a server that lives at its limit
        // would otherwise log every time a client leaves and another enters.
        log::log!(
            warn_once(&mut self.limit_reported),
            "worker {}: {} connections, the limit: new clients wait until one closes",
            context.id,
            self.slots.max
        );
        // A slot freed before the pause was counted woke no one: look again.
        self.resume_if_room(registry, context);
    }

    /// Re-registers listeners paused at the cap once there is room;
    /// registering a socket that has connections waiting raises an event
    /// for it at once.
    #[inline]
    pub(super) fn resume_if_room(&mut self, registry: &Registry, context: &Context) {
        // The usual turn: not paused, one comparison.
        if self.at_limit {
            self.resume_now_if_room(registry, context);
        }
    }

    /// [`resume_if_room`](Self::resume_if_room) on paused listeners.
    #[inline(never)]
    fn resume_now_if_room(&mut self, registry: &Registry, context: &Context) {
        if !self.slots.has_room() {
            return;
        }
        self.at_limit = false;
        self.slots.paused.fetch_sub(1, Ordering::SeqCst);
        for (index, listener) in self.listeners.iter_mut().enumerate() {
            let token = Source::Listener(index).token();
            if let Err(error) = registry.register(listener, token, Interest::READABLE) {
                log::warn!("worker {}: cannot resume a listener: {error}", context.id);
            }
        }
    }

    /// Closes the listeners: new connections are refused from now on.
    pub(super) fn close(&mut self, registry: &Registry) {
        if self.at_limit {
            self.at_limit = false;
            self.slots.paused.fetch_sub(1, Ordering::SeqCst);
        }
        for mut listener in self.listeners.drain(..) {
            let _ = registry.deregister(&mut listener);
        }
    }
}

/// Closes a connection whose source holds its share already, at once: the
/// client sees the connection end before any answer.
fn refuse_per_source(stream: TcpStream, peer: SocketAddr, context: &Context) -> Accepted {
    drop(stream);
    WorkerStats::add(&context.stats.connections_refused_per_source, 1);
    log::debug!("{peer}: closed at once, its source holds its share of connections");
    Accepted::Nothing
}

/// Returns the level to log a condition at: a warning the first time,
/// debug while `reported` stays set.
fn warn_once(reported: &mut bool) -> log::Level {
    let level = if *reported {
        log::Level::Debug
    } else {
        log::Level::Warn
    };
    *reported = true;
    level
}

fn open_spare_descriptor() -> Option<File> {
    File::open("/dev/null").ok()
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn is_transient_accept_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    //! The accept paths no loopback test can force: a security module's
    //! `EPERM`, and a spare descriptor that cannot be reopened. The errors
    //! come in through [`Acceptor::on_error`] and the `open_spare` seam; the
    //! listener and its waiting connection are real.

    use super::*;
    use crate::wake::Wakers;
    use mio::Poll;

    fn acceptor(poll: &Poll) -> (Acceptor, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let waiting = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let slots = Arc::new(ConnectionSlots::new(
            10,
            0,
            Arc::new(Wakers::new(Vec::new())),
        ));
        let plain = ListenerKind::default();
        let acceptor = Acceptor::new(poll.registry(), vec![(listener, plain)], slots).unwrap();
        (acceptor, waiting)
    }

    fn context() -> Context {
        Context {
            id: 0,
            stats: Arc::default(),
            now: Instant::now(),
            hot: Vec::new(),
        }
    }

    #[test]
    fn an_accept_error_that_would_repeat_backs_off_and_is_reported_once() {
        let poll = Poll::new().unwrap();
        let (mut acceptor, _waiting) = acceptor(&poll);
        let mut context = context();
        let denied = io::Error::from_raw_os_error(libc::EPERM);
        for round in 0..3 {
            assert!(matches!(
                acceptor.on_error(0, &denied, &mut context),
                Accepted::Stop
            ));
            assert_eq!(
                acceptor.backoff_until(),
                Some(context.now + ACCEPT_BACKOFF),
                "round {round}: no back-off"
            );
            assert!(acceptor.failing, "reported, so the next is not");
            // Accepting is paused until the back-off ends, then resumes.
            assert!(matches!(
                acceptor.accept(0, poll.registry(), &mut context),
                Accepted::Stop
            ));
            context.now += ACCEPT_BACKOFF;
            acceptor.resume_after_backoff(&mut context);
            assert_eq!(acceptor.backoff_until(), None);
            assert_eq!(context.hot, vec![Source::Listener(0)]);
            context.hot.clear();
        }
        let protocol = io::Error::from_raw_os_error(libc::EPROTO);
        assert!(matches!(
            acceptor.on_error(0, &protocol, &mut context),
            Accepted::Stop
        ));
        assert!(acceptor.backoff_until().is_some());
        // A connection accepted ends the episode: the next one is reported.
        assert!(matches!(
            acceptor.accept(0, poll.registry(), &mut context),
            Accepted::Stop
        ));
        context.now += ACCEPT_BACKOFF;
        acceptor.resume_after_backoff(&mut context);
        assert!(matches!(
            acceptor.accept(0, poll.registry(), &mut context),
            Accepted::Connection(..)
        ));
        assert!(!acceptor.failing);
    }

    #[test]
    fn a_client_that_gave_up_does_not_stop_accepting() {
        let poll = Poll::new().unwrap();
        let (mut acceptor, _waiting) = acceptor(&poll);
        let mut context = context();
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert!(matches!(
            acceptor.on_error(0, &aborted, &mut context),
            Accepted::Nothing
        ));
        assert_eq!(acceptor.backoff_until(), None);
    }

    #[test]
    fn a_spare_descriptor_that_cannot_be_reopened_backs_off_and_retries() {
        let poll = Poll::new().unwrap();
        let (mut acceptor, _waiting) = acceptor(&poll);
        acceptor.open_spare = || None;
        let mut context = context();
        let exhausted = io::Error::from_raw_os_error(libc::EMFILE);
        // The waiting connection is shed; the spare is gone for good.
        assert!(matches!(
            acceptor.on_error(0, &exhausted, &mut context),
            Accepted::Stop
        ));
        assert_eq!(context.stats.connections_shed.load(Ordering::Relaxed), 1);
        assert_eq!(
            acceptor.backoff_until(),
            Some(context.now + ACCEPT_BACKOFF),
            "no retry is due: the backlog would wait for a new connection"
        );
        context.now += ACCEPT_BACKOFF;
        acceptor.resume_after_backoff(&mut context);
        assert_eq!(context.hot, vec![Source::Listener(0)]);
        // Still no spare: the next exhaustion backs off again.
        assert!(matches!(
            acceptor.on_error(0, &exhausted, &mut context),
            Accepted::Stop
        ));
        assert!(acceptor.backoff_until().is_some());
    }
}
