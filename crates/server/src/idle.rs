//! Idle-timeout bookkeeping whose cost does not grow with idle connections.
//!
//! Every connection has the same timeout, so the connection idle longest is
//! always the one touched longest ago. An intrusive doubly linked list in
//! least-recently-active order gives that connection in O(1): touching moves a
//! connection to the tail, the head is the next to expire, and a poll looks at
//! the head only. Removing a closed connection is O(1) too, so the list never
//! holds stale entries (a lazy queue would keep one per closed connection for
//! a whole timeout).
//!
//! Keys are the event loop's connection keys (small, reused integers), and
//! time is passed in, so the list is tested without sleeping.

use std::time::{Duration, Instant};

/// No neighbour: the end of the list.
const NONE: u32 = u32::MAX;
/// A link's `prev` while its key is not listed.
const UNLINKED: u32 = u32::MAX - 1;

/// One key's place in the list, in 24 bytes: neighbours as `u32` (keys
/// are connection keys, far below [`UNLINKED`]).
#[derive(Debug, Clone, Copy)]
struct Link {
    since: Instant,
    prev: u32,
    next: u32,
}

impl Link {
    fn is_linked(&self) -> bool {
        self.prev != UNLINKED
    }
}

/// A key as a link's neighbour.
fn index(key: usize) -> u32 {
    debug_assert!(key < UNLINKED as usize, "connection key {key} out of range");
    key as u32
}

/// Connections in order of last activity, oldest first.
#[derive(Debug)]
pub(crate) struct IdleList {
    links: Vec<Link>,
    head: u32,
    tail: u32,
}

impl IdleList {
    pub(crate) fn new() -> Self {
        Self {
            links: Vec::new(),
            head: NONE,
            tail: NONE,
        }
    }

    /// Records activity on `key` at `now`, adding it if it is not listed.
    #[inline]
    pub(crate) fn touch(&mut self, key: usize, now: Instant) {
        // The usual touch: the connection that was active last is again
        // (the tail is always listed).
        if self.tail as usize == key {
            self.links[key].since = now;
            return;
        }
        self.move_to_tail(key, now);
    }

    /// [`touch`](Self::touch) on a key not at the tail.
    #[inline(never)]
    fn move_to_tail(&mut self, key: usize, now: Instant) {
        if key >= self.links.len() {
            let unlinked = Link {
                since: now,
                prev: UNLINKED,
                next: NONE,
            };
            self.links.resize(key + 1, unlinked);
        }
        if self.links[key].is_linked() {
            self.unlink(key);
        }
        self.links[key] = Link {
            since: now,
            prev: self.tail,
            next: NONE,
        };
        match self.tail {
            NONE => self.head = index(key),
            tail => self.links[tail as usize].next = index(key),
        }
        self.tail = index(key);
    }

    /// Forgets `key` (its connection closed).
    pub(crate) fn remove(&mut self, key: usize) {
        if self.links.get(key).is_some_and(Link::is_linked) {
            self.unlink(key);
        }
    }

    /// The connection idle longest, if it has been idle for `timeout` at `now`.
    pub(crate) fn expired(&self, now: Instant, timeout: Duration) -> Option<usize> {
        let head = *self.links.get(self.head as usize)?;
        (now.saturating_duration_since(head.since) >= timeout).then_some(self.head as usize)
    }

    /// When the connection idle longest will expire.
    /// `None` when nothing is listed, or when the deadline is too far to be
    /// represented (a timeout meaning "practically never").
    pub(crate) fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.links
            .get(self.head as usize)
            .and_then(|link| link.since.checked_add(timeout))
    }

    fn unlink(&mut self, key: usize) {
        let Link { prev, next, .. } = self.links[key];
        match prev {
            NONE => self.head = next,
            prev => self.links[prev as usize].next = next,
        }
        match next {
            NONE => self.tail = prev,
            next => self.links[next as usize].prev = prev,
        }
        self.links[key].prev = UNLINKED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn drain_expired(list: &mut IdleList, now: Instant) -> Vec<usize> {
        let mut expired = Vec::new();
        while let Some(key) = list.expired(now, TIMEOUT) {
            list.remove(key);
            expired.push(key);
        }
        expired
    }

    #[test]
    fn expires_in_order_of_last_activity() {
        let start = Instant::now();
        let mut list = IdleList::new();
        for key in 0..5 {
            list.touch(key, start + Duration::from_secs(key as u64));
        }
        list.touch(1, start + Duration::from_secs(6)); // 1 was active again
        assert_eq!(list.next_deadline(TIMEOUT), Some(start + TIMEOUT));
        assert_eq!(
            drain_expired(&mut list, start + Duration::from_secs(9)),
            Vec::<usize>::new()
        );
        assert_eq!(
            drain_expired(&mut list, start + Duration::from_secs(12)),
            vec![0, 2]
        );
        assert_eq!(
            drain_expired(&mut list, start + Duration::from_secs(16)),
            vec![3, 4, 1]
        );
        assert_eq!(list.next_deadline(TIMEOUT), None);
    }

    #[test]
    fn removed_keys_never_expire_and_can_be_reused() {
        let start = Instant::now();
        let mut list = IdleList::new();
        list.touch(0, start);
        list.touch(1, start);
        list.touch(2, start);
        list.remove(1);
        list.remove(1); // twice is harmless
        list.remove(99); // never seen is harmless
        list.touch(1, start + Duration::from_secs(5));
        assert_eq!(drain_expired(&mut list, start + TIMEOUT), vec![0, 2]);
        assert_eq!(drain_expired(&mut list, start + TIMEOUT * 2), vec![1]);
    }

    #[test]
    fn a_link_is_24_bytes() {
        // Every connection has one, idle or not: see docs/BENCHMARKS.md.
        assert_eq!(std::mem::size_of::<Link>(), 24);
    }

    #[test]
    fn touching_the_tail_and_the_only_entry() {
        let start = Instant::now();
        let mut list = IdleList::new();
        list.touch(7, start);
        list.touch(7, start + Duration::from_secs(3));
        assert_eq!(list.expired(start + TIMEOUT, TIMEOUT), None);
        assert_eq!(
            list.expired(start + Duration::from_secs(13), TIMEOUT),
            Some(7)
        );
    }
}
