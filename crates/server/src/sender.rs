//! Writing to connections from outside their callbacks: from another
//! connection's callback, another worker, or any thread.
//!
//! A [`ConnectionSender`] puts a command in the owning worker's mailbox and
//! wakes the worker with its `mio::Waker`. It never blocks on the loop and
//! never grows memory past the per-connection output limit: each connection
//! has a shared count of the bytes it holds plus the bytes queued toward
//! it, and a send reserves its bytes there first or fails at once.
//!
//! This module is not the loop's side of delivery; that is
//! `worker/streams.rs`, which takes the commands and keeps the counts.

use crate::id::ConnectionId;
use crate::wake::Wakers;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Why [`ConnectionSender::send`] or [`close`](ConnectionSender::close)
/// did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection's pending and queued output would pass
    /// `max_pending_output` (always so for a message larger than that).
    #[error("the connection's output is full")]
    Full,
    /// No such connection: it closed, or never existed; or it can send
    /// nothing more (its service or a sender closed it, or its service
    /// shut its sending side), though its last output may still drain.
    #[error("no such connection")]
    Closed,
}

/// What a [`ConnectionSender::broadcast`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Broadcast {
    /// Connections the message was queued to.
    pub queued: usize,
    /// Connections whose output was full: they miss the message.
    pub skipped_full: usize,
    /// The connections counted in `skipped_full`, in no particular order.
    /// Empty, it holds no heap: a broadcast that skips no one allocates
    /// nothing for it.
    pub skipped: Vec<ConnectionId>,
}

/// Writes to connections by id from any thread; cloneable, cheap.
///
/// A successful call means the bytes are queued to the connection's worker,
/// which appends them to the connection's output on its next turn, after
/// whatever the connection already holds. If the connection closes in
/// between, they are dropped.
#[derive(Clone)]
pub struct ConnectionSender {
    pub(crate) post: Arc<Post>,
}

impl fmt::Debug for ConnectionSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSender")
            .field("workers", &self.post.mailboxes.len())
            .finish_non_exhaustive()
    }
}

impl ConnectionSender {
    pub(crate) fn new(post: Arc<Post>) -> Self {
        Self { post }
    }

    /// Queues `bytes` to connection `id`.
    ///
    /// # Errors
    /// [`SendError::Full`] when the connection's output would pass the
    /// limit, [`SendError::Closed`] when the connection is gone.
    pub fn send(&self, id: ConnectionId, bytes: &[u8]) -> Result<(), SendError> {
        let mailbox = self.post.mailbox(id)?;
        let (key, reserved) = mailbox.reserve(id, bytes.len(), self.post.max_pending_output)?;
        if let Reserved::Full { tell } = reserved {
            if tell {
                self.post
                    .deliver(id.worker(), vec![Command::Full { key, id }]);
            }
            return Err(SendError::Full);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let command = Command::Send {
            key,
            id,
            bytes: Arc::from(bytes),
        };
        self.post.deliver(id.worker(), vec![command]);
        Ok(())
    }

    /// Closes connection `id` once the output it holds and what was queued
    /// to it before this call are sent, as [`ConnectionContext::close`]
    /// does; sends after this call get [`SendError::Closed`], and
    /// broadcasts skip it. Asking twice is harmless.
    ///
    /// [`ConnectionContext::close`]: crate::ConnectionContext::close
    ///
    /// # Errors
    /// [`SendError::Closed`] when the connection is gone.
    pub fn close(&self, id: ConnectionId) -> Result<(), SendError> {
        let mailbox = self.post.mailbox(id)?;
        // One close command per connection at most: repeated calls cannot
        // grow the mailbox.
        let (first, key) = {
            let mut connections = lock(&mailbox.connections);
            let share = connections.get_mut(&id.as_u64()).ok_or(SendError::Closed)?;
            share.sends_over = true;
            let first = !std::mem::replace(&mut share.close_requested, true);
            (first, share.key as usize)
        };
        if first {
            let command = Command::Close { key, id };
            self.post.deliver(id.worker(), vec![command]);
        }
        Ok(())
    }

    /// Posts a close for connection `id` (at `key`) behind the bytes
    /// senders reserved for it that its worker has not taken yet, if any:
    /// its service closed it from a callback, and those bytes were sent
    /// before. Sends from now on are refused. `held` is what the worker
    /// last published it holds. Returns whether a close command is coming
    /// (this one, or one asked before).
    pub(crate) fn close_behind_queued(&self, id: ConnectionId, key: usize, held: usize) -> bool {
        let Ok(mailbox) = self.post.mailbox(id) else {
            return false;
        };
        {
            let mut connections = lock(&mailbox.connections);
            let Some(share) = connections.get_mut(&id.as_u64()) else {
                return false;
            };
            share.sends_over = true;
            if share.close_requested {
                return true;
            }
            // Its worker calls this between taking commands: with none
            // waiting, none is queued to the connection (the usual close).
            // Nothing reserved beyond what the worker holds: nothing queued.
            if !mailbox.has_commands() || share.held_and_queued == held {
                return false;
            }
            share.close_requested = true;
        }
        self.post
            .deliver(id.worker(), vec![Command::Close { key, id }]);
        true
    }

    /// Refuses sends to connection `id` from now on: its service shut its
    /// sending side.
    pub(crate) fn end_sends(&self, id: ConnectionId) {
        if let Ok(mailbox) = self.post.mailbox(id) {
            mailbox.end_sends(id);
        }
    }

    /// Queues `bytes` to every open connection of the server; those whose
    /// output is full miss it, and are counted and named. Connections that
    /// can send nothing more (closed or half-closed, their last output
    /// draining) are neither reached nor counted.
    pub fn broadcast(&self, bytes: &[u8]) -> Broadcast {
        self.broadcast_except(bytes, None)
    }

    /// Queues `bytes` to every open connection but `except`, as
    /// [`broadcast`](Self::broadcast) does.
    pub fn broadcast_except(&self, bytes: &[u8], except: Option<ConnectionId>) -> Broadcast {
        let mut outcome = Broadcast::default();
        if bytes.is_empty() {
            return outcome;
        }
        let message: Arc<[u8]> = Arc::from(bytes);
        for (worker, mailbox) in self.post.mailboxes.iter().enumerate() {
            let mut commands = Vec::new();
            for (&id, share) in lock(&mailbox.connections).iter_mut() {
                let id = ConnectionId(id);
                if Some(id) == except {
                    continue;
                }
                if share.sends_over {
                    continue;
                }
                let key = share.key as usize;
                match share.reserve(bytes.len(), self.post.max_pending_output) {
                    Reserved::Taken => {
                        outcome.queued += 1;
                        commands.push(Command::Send {
                            key,
                            id,
                            bytes: Arc::clone(&message),
                        });
                    }
                    Reserved::Full { tell } => {
                        outcome.skipped_full += 1;
                        outcome.skipped.push(id);
                        if tell {
                            commands.push(Command::Full { key, id });
                        }
                    }
                }
            }
            if !commands.is_empty() {
                self.post.deliver(worker, commands);
            }
        }
        outcome
    }
}

/// What a worker is asked to do for a connection.
#[derive(Debug)]
pub(crate) enum Command {
    /// Append `bytes` (reserved in the connection's share) to its output.
    Send {
        key: usize,
        id: ConnectionId,
        bytes: Arc<[u8]>,
    },
    /// Close the connection once its output is sent.
    Close { key: usize, id: ConnectionId },
    /// A message to the connection was refused [`SendError::Full`]: tell
    /// the service its output is full.
    Full { key: usize, id: ConnectionId },
}

/// One mailbox per worker, and how to wake each.
pub(crate) struct Post {
    pub(crate) mailboxes: Vec<Mailbox>,
    wakers: Arc<Wakers>,
    max_pending_output: usize,
}

impl Post {
    pub(crate) fn new(workers: usize, wakers: Arc<Wakers>, max_pending_output: usize) -> Self {
        Self {
            mailboxes: (0..workers).map(|_| Mailbox::default()).collect(),
            wakers,
            max_pending_output,
        }
    }

    fn mailbox(&self, id: ConnectionId) -> Result<&Mailbox, SendError> {
        self.mailboxes.get(id.worker()).ok_or(SendError::Closed)
    }

    fn deliver(&self, worker: usize, mut commands: Vec<Command>) {
        let mailbox = &self.mailboxes[worker];
        lock(&mailbox.commands).append(&mut commands);
        // Wake only on the first command since the worker last looked: a
        // burst of sends costs one wake-up.
        if !mailbox.has_commands.swap(true, Ordering::AcqRel) {
            self.wakers.wake(worker, "a command for a connection");
        }
    }
}

/// A worker's open connections, as senders see them, and its commands.
#[derive(Default)]
pub(crate) struct Mailbox {
    /// Keyed by [`ConnectionId::as_u64`]; a connection is here from its
    /// open to its close.
    /// Every open connection's share, by id: in the table itself, one
    /// entry of 24 bytes per connection and no allocation of its own.
    connections: Mutex<HashMap<u64, Share>>,
    commands: Mutex<Vec<Command>>,
    has_commands: AtomicBool,
}

impl Mailbox {
    /// Reserves `bytes` for connection `id` if they fit under `limit`;
    /// returns its key and whether they did.
    fn reserve(
        &self,
        id: ConnectionId,
        bytes: usize,
        limit: usize,
    ) -> Result<(usize, Reserved), SendError> {
        let mut connections = lock(&self.connections);
        let share = (connections.get_mut(&id.as_u64()))
            .filter(|share| !share.sends_over)
            .ok_or(SendError::Closed)?;
        Ok((share.key as usize, share.reserve(bytes, limit)))
    }

    /// Lists connection `id`, at `key` in its worker, with nothing held.
    pub(crate) fn open(&self, id: ConnectionId, key: usize) {
        let key = u32::try_from(key).expect("connection keys fit 32 bits");
        let share = Share {
            key,
            close_requested: false,
            sends_over: false,
            told_full: false,
            held_and_queued: 0,
        };
        lock(&self.connections).insert(id.as_u64(), share);
    }

    /// Notes that connection `id`'s service learnt its output drained (or
    /// will not hear that it is full): the next refusal tells it again.
    pub(crate) fn drained(&self, id: ConnectionId) {
        if let Some(share) = lock(&self.connections).get_mut(&id.as_u64()) {
            share.told_full = false;
        }
    }

    /// Refuses sends to connection `id` from now on: its service shut its
    /// sending side. A close still reaches it.
    pub(crate) fn end_sends(&self, id: ConnectionId) {
        if let Some(share) = lock(&self.connections).get_mut(&id.as_u64()) {
            share.sends_over = true;
        }
    }

    pub(crate) fn forget(&self, id: ConnectionId) {
        lock(&self.connections).remove(&id.as_u64());
    }

    /// Changes what connection `id` is counted to hold from `from` bytes
    /// to `to`: its worker's count of its pending output.
    pub(crate) fn publish(&self, id: ConnectionId, from: usize, to: usize) {
        if let Some(share) = lock(&self.connections).get_mut(&id.as_u64()) {
            share.held_and_queued = share.held_and_queued.wrapping_sub(from).wrapping_add(to);
        }
    }

    #[cfg(test)]
    fn held_and_queued(&self, id: ConnectionId) -> Option<usize> {
        lock(&self.connections)
            .get(&id.as_u64())
            .map(|share| share.held_and_queued)
    }

    #[inline]
    pub(crate) fn has_commands(&self) -> bool {
        self.has_commands.load(Ordering::Acquire)
    }

    /// Moves the waiting commands into `into` (empty); returns whether any were.
    /// One atomic load per turn when there are none.
    pub(crate) fn take(&self, into: &mut Vec<Command>) -> bool {
        if !self.has_commands.load(Ordering::Acquire) {
            return false;
        }
        self.has_commands.store(false, Ordering::Release);
        std::mem::swap(into, &mut *lock(&self.commands));
        true
    }
}

/// What one connection's senders and its worker share.
#[derive(Debug)]
struct Share {
    /// The connection's key in its worker's slab.
    key: u32,
    close_requested: bool,
    /// The connection can send nothing more (closed, or its sending side
    /// shut): sends are refused [`SendError::Closed`] and broadcasts skip
    /// it, while a close still reaches it.
    sends_over: bool,
    /// A refusal was posted to the worker, and the connection has not
    /// drained since: later refusals post nothing, so a sender retrying
    /// against a full connection cannot grow the mailbox.
    told_full: bool,
    /// Bytes the connection holds (as last published by its worker) plus
    /// bytes reserved by sends not yet delivered.
    held_and_queued: usize,
}

/// Whether a send's bytes were reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reserved {
    Taken,
    /// They would pass the limit. `tell`: the connection holds or has
    /// queued more than half the limit (a message too large for a
    /// connection nearly empty says nothing of its reader), and its
    /// worker was not told yet: post [`Command::Full`].
    Full {
        tell: bool,
    },
}

impl Share {
    /// Reserves `bytes` if they fit under `limit`.
    fn reserve(&mut self, bytes: usize, limit: usize) -> Reserved {
        match self.held_and_queued.checked_add(bytes) {
            Some(total) if total <= limit => {
                self.held_and_queued = total;
                Reserved::Taken
            }
            _ => {
                let tell = !self.told_full && self.held_and_queued > limit / 2;
                self.told_full |= tell;
                Reserved::Full { tell }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(limit: usize) -> Arc<Post> {
        Arc::new(Post::new(2, Arc::new(Wakers::new(Vec::new())), limit))
    }

    #[test]
    fn a_send_reserves_under_the_limit_and_fails_full_past_it() {
        let post = post(10);
        let sender = ConnectionSender::new(Arc::clone(&post));
        let id = ConnectionId::new(1, 7);
        post.mailboxes[1].open(id, 3);
        assert_eq!(sender.send(id, b"123456"), Ok(()));
        assert_eq!(sender.send(id, b"12345"), Err(SendError::Full));
        assert_eq!(sender.send(id, b"1234"), Ok(()));
        assert_eq!(post.mailboxes[1].held_and_queued(id), Some(10));
        assert_eq!(sender.send(id, b"an eleven b"), Err(SendError::Full));
        let mut commands = Vec::new();
        assert!(post.mailboxes[1].take(&mut commands));
        let sends = commands
            .iter()
            .filter(|command| matches!(command, Command::Send { .. }))
            .count();
        assert_eq!(sends, 2, "{commands:?}");
        // The first refusal past half the limit tells the worker, once.
        assert_eq!(commands.len(), 3, "{commands:?}");
        assert!(!post.mailboxes[1].take(&mut commands), "taken once");
    }

    #[test]
    fn unknown_forgotten_and_foreign_ids_are_closed() {
        let post = post(10);
        let sender = ConnectionSender::new(Arc::clone(&post));
        let id = ConnectionId::new(0, 1);
        assert_eq!(sender.send(id, b"x"), Err(SendError::Closed));
        post.mailboxes[0].open(id, 0);
        assert_eq!(sender.close(id), Ok(()));
        assert_eq!(sender.close(id), Ok(()));
        post.mailboxes[0].forget(id);
        assert_eq!(sender.send(id, b"x"), Err(SendError::Closed));
        assert_eq!(sender.close(id), Err(SendError::Closed));
        // A new connection in the same slot has another id.
        post.mailboxes[0].open(ConnectionId::new(0, 2), 0);
        assert_eq!(sender.send(id, b"x"), Err(SendError::Closed));
        assert_eq!(
            sender.send(ConnectionId::new(9, 1), b"x"),
            Err(SendError::Closed)
        );
        let mut commands = Vec::new();
        post.mailboxes[0].take(&mut commands);
        assert_eq!(commands.len(), 1, "two closes, one command");
    }

    #[test]
    fn a_refusal_past_half_the_limit_tells_the_worker_once_until_drained() {
        let post = post(10);
        let sender = ConnectionSender::new(Arc::clone(&post));
        let id = ConnectionId::new(0, 1);
        post.mailboxes[0].open(id, 0);
        let fulls = |commands: &[Command]| {
            commands
                .iter()
                .filter(|command| matches!(command, Command::Full { .. }))
                .count()
        };
        // Too large for an empty connection: says nothing of its reader.
        assert_eq!(sender.send(id, b"an eleven b"), Err(SendError::Full));
        assert_eq!(sender.send(id, b"123456"), Ok(()));
        assert_eq!(sender.send(id, b"12345"), Err(SendError::Full));
        assert_eq!(sender.send(id, b"12345"), Err(SendError::Full));
        let mut commands = Vec::new();
        post.mailboxes[0].take(&mut commands);
        assert_eq!(fulls(&commands), 1, "told once: {commands:?}");
        post.mailboxes[0].drained(id);
        assert_eq!(sender.send(id, b"12345"), Err(SendError::Full));
        commands.clear();
        post.mailboxes[0].take(&mut commands);
        assert_eq!(fulls(&commands), 1, "told again: {commands:?}");
    }

    #[test]
    fn a_broadcast_skips_full_connections_and_counts_them() {
        let post = post(4);
        let sender = ConnectionSender::new(Arc::clone(&post));
        let full = ConnectionId::new(0, 1);
        post.mailboxes[0].open(full, 0);
        post.mailboxes[0].publish(full, 0, 3);
        post.mailboxes[0].open(ConnectionId::new(0, 2), 1);
        post.mailboxes[1].open(ConnectionId::new(1, 1), 0);
        let outcome = sender.broadcast(b"ab");
        assert_eq!(
            outcome,
            Broadcast {
                queued: 2,
                skipped_full: 1,
                skipped: vec![full],
            }
        );
        let outcome = sender.broadcast_except(b"ab", Some(ConnectionId::new(1, 1)));
        assert_eq!(outcome.queued, 1, "{outcome:?}");
        assert_eq!(outcome.skipped, [full]);

        let post = self::post(4);
        let sender = ConnectionSender::new(Arc::clone(&post));
        post.mailboxes[0].open(ConnectionId::new(0, 1), 0);
        post.mailboxes[1].open(ConnectionId::new(1, 1), 0);
        let outcome = sender.broadcast(b"ab");
        assert_eq!(outcome.queued, 2, "{outcome:?}");
        assert_eq!(outcome.skipped.capacity(), 0, "none skipped, no heap");
    }
}
