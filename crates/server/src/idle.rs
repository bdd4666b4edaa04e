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

const NONE: usize = usize::MAX;

#[derive(Debug, Clone, Copy)]
struct Link {
    prev: usize,
    next: usize,
    since: Instant,
    linked: bool,
}

/// Connections in order of last activity, oldest first.
#[derive(Debug)]
pub(crate) struct IdleList {
    links: Vec<Link>,
    head: usize,
    tail: usize,
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
        // The usual touch: the connection that was active last is again.
        if self.tail == key {
            if let Some(link) = self.links.get_mut(key).filter(|link| link.linked) {
                link.since = now;
                return;
            }
        }
        self.move_to_tail(key, now);
    }

    /// [`touch`](Self::touch) on a key not at the tail yet.
    #[inline(never)]
    fn move_to_tail(&mut self, key: usize, now: Instant) {
        if key >= self.links.len() {
            let unlinked = Link {
                prev: NONE,
                next: NONE,
                since: now,
                linked: false,
            };
            self.links.resize(key + 1, unlinked);
        }
        if self.links[key].linked {
            if self.tail == key {
                self.links[key].since = now;
                return;
            }
            self.unlink(key);
        }
        self.links[key] = Link {
            prev: self.tail,
            next: NONE,
            since: now,
            linked: true,
        };
        match self.tail {
            NONE => self.head = key,
            tail => self.links[tail].next = key,
        }
        self.tail = key;
    }

    /// Forgets `key` (its connection closed).
    pub(crate) fn remove(&mut self, key: usize) {
        if self.links.get(key).is_some_and(|link| link.linked) {
            self.unlink(key);
        }
    }

    /// The connection idle longest, if it has been idle for `timeout` at `now`.
    pub(crate) fn expired(&self, now: Instant, timeout: Duration) -> Option<usize> {
        let head = *self.links.get(self.head)?;
        (now.saturating_duration_since(head.since) >= timeout).then_some(self.head)
    }

    /// When the connection idle longest will expire.
    /// `None` when nothing is listed, or when the deadline is too far to be
    /// represented (a timeout meaning "practically never").
    pub(crate) fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.links
            .get(self.head)
            .and_then(|link| link.since.checked_add(timeout))
    }

    fn unlink(&mut self, key: usize) {
        let Link { prev, next, .. } = self.links[key];
        match prev {
            NONE => self.head = next,
            prev => self.links[prev].next = next,
        }
        match next {
            NONE => self.tail = prev,
            next => self.links[next].prev = prev,
        }
        self.links[key].linked = false;
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
