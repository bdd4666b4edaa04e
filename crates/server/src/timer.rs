//! Per-connection timers, keyed by connection and kind: at most one
//! deadline per (connection key, [`TimerKind`]), due in order, with lazy
//! deletion.
//!
//! A heap of (deadline, generation, slot); setting or cancelling a timer
//! only changes its slot's current generation, and heap entries whose
//! generation is not current are skipped when they surface. Generations
//! come from one counter, so an entry left by a closed connection never
//! fires for the next connection on the same key. Stale entries are swept
//! when they outnumber live timers, so a service that re-arms its timer on
//! every read cannot grow the heap without bound.
//!
//! Time is passed in, so the queue is tested without sleeping.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// What a connection's timer is for; each kind is a timer of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// The deadline of the handshake (a PROXY header, a TLS handshake),
    /// from the accept.
    Handshake,
    /// The service's own timer ([`ConnectionContext::set_timer`](crate::ConnectionContext::set_timer)).
    Service,
}

impl TimerKind {
    /// How many kinds there are.
    const COUNT: usize = 2;
    const ALL: [Self; Self::COUNT] = [Self::Handshake, Self::Service];

    fn index(self) -> usize {
        self as usize
    }
}

/// No timer in this slot.
const NONE: u64 = 0;

#[derive(Debug)]
pub(crate) struct TimerQueue {
    /// (deadline, generation, slot): a slot is `key * COUNT + kind`.
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    /// The current generation of each slot's timer, `NONE` if unset.
    current: Vec<u64>,
    next_generation: u64,
    live: usize,
}

impl TimerQueue {
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            current: Vec::new(),
            next_generation: NONE + 1,
            live: 0,
        }
    }

    /// Sets `key`'s timer of `kind` to `at`, replacing any other of that
    /// kind.
    pub(crate) fn set(&mut self, key: usize, kind: TimerKind, at: Instant) {
        let slot = key * TimerKind::COUNT + kind.index();
        if slot >= self.current.len() {
            self.current.resize((key + 1) * TimerKind::COUNT, NONE);
        }
        if self.current[slot] == NONE {
            self.live += 1;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.current[slot] = generation;
        self.heap.push(Reverse((at, generation, slot)));
        if self.heap.len() > 2 * self.live + 64 {
            let current = &self.current;
            self.heap
                .retain(|Reverse((_, generation, slot))| current[*slot] == *generation);
        }
    }

    /// Cancels `key`'s timer of `kind`, if set (its handshake ended, or the
    /// service asked).
    pub(crate) fn cancel(&mut self, key: usize, kind: TimerKind) {
        let slot = key * TimerKind::COUNT + kind.index();
        if let Some(generation) = self.current.get_mut(slot) {
            if *generation != NONE {
                *generation = NONE;
                self.live -= 1;
            }
        }
    }

    /// Cancels every timer of `key` (its connection closed).
    pub(crate) fn cancel_all(&mut self, key: usize) {
        for kind in TimerKind::ALL {
            self.cancel(key, kind);
        }
    }

    /// Returns a key and kind whose timer is due at `now`, and unsets it.
    pub(crate) fn expired(&mut self, now: Instant) -> Option<(usize, TimerKind)> {
        while let Some(&Reverse((at, generation, slot))) = self.heap.peek() {
            if self.current[slot] != generation {
                self.heap.pop();
                continue;
            }
            if at > now {
                return None;
            }
            self.heap.pop();
            self.current[slot] = NONE;
            self.live -= 1;
            let kind = TimerKind::ALL[slot % TimerKind::COUNT];
            return Some((slot / TimerKind::COUNT, kind));
        }
        None
    }

    /// Returns when the next timer is due. It may be a cancelled one: the
    /// loop then wakes once for nothing, and [`expired`](Self::expired)
    /// sweeps it.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

/// `now + after`, or a century from now where `after` is too large to add
/// (a timeout given as "practically never").
pub(crate) fn deadline_after(now: Instant, after: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    now.checked_add(after.min(CENTURY)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::TimerKind::{Handshake, Service};
    use super::*;
    use std::time::Duration;

    fn due(queue: &mut TimerQueue, now: Instant) -> Vec<(usize, TimerKind)> {
        std::iter::from_fn(|| queue.expired(now)).collect()
    }

    fn keys(queue: &mut TimerQueue, now: Instant) -> Vec<usize> {
        due(queue, now).into_iter().map(|(key, _)| key).collect()
    }

    #[test]
    fn timers_come_due_in_order_once_each() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        let second = Duration::from_secs(1);
        queue.set(2, Service, start + 3 * second);
        queue.set(0, Service, start + second);
        queue.set(5, Service, start + 2 * second);
        assert_eq!(queue.next_deadline(), Some(start + second));
        assert_eq!(keys(&mut queue, start), Vec::<usize>::new());
        assert_eq!(keys(&mut queue, start + 2 * second), vec![0, 5]);
        assert_eq!(keys(&mut queue, start + 10 * second), vec![2]);
        assert_eq!(keys(&mut queue, start + 20 * second), Vec::<usize>::new());
        assert_eq!(queue.next_deadline(), None);
    }

    #[test]
    fn a_reset_or_cancelled_timer_fires_only_as_last_set() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        let second = Duration::from_secs(1);
        queue.set(1, Service, start + second);
        queue.set(1, Service, start + 5 * second); // re-armed later
        queue.set(2, Service, start + second);
        queue.cancel(2, Service);
        queue.cancel(2, Service); // twice is harmless
        queue.cancel(99, Service); // never set is harmless
        assert_eq!(keys(&mut queue, start + 2 * second), Vec::<usize>::new());
        assert_eq!(keys(&mut queue, start + 5 * second), vec![1]);
    }

    #[test]
    fn a_key_reused_by_a_new_connection_does_not_inherit_the_old_timer() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        queue.set(0, Service, start);
        queue.set(0, Handshake, start);
        queue.cancel_all(0); // the connection closed
        queue.set(0, Service, start + Duration::from_secs(9)); // the next one on key 0
        assert_eq!(keys(&mut queue, start + Duration::from_secs(1)), vec![]);
        assert_eq!(
            due(&mut queue, start + Duration::from_secs(9)),
            vec![(0, Service)]
        );
    }

    #[test]
    fn each_kind_is_a_timer_of_its_own() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        let second = Duration::from_secs(1);
        queue.set(3, Handshake, start + 2 * second);
        // The service's timer neither replaces nor cancels the deadline.
        queue.set(3, Service, start + second);
        queue.set(3, Service, start + 3 * second);
        assert_eq!(due(&mut queue, start + 2 * second), vec![(3, Handshake)]);
        queue.set(3, Handshake, start + 4 * second);
        queue.cancel(3, Handshake);
        assert_eq!(due(&mut queue, start + 5 * second), vec![(3, Service)]);
        assert_eq!(queue.next_deadline(), None);
    }

    #[test]
    fn re_arming_on_every_read_keeps_the_heap_bounded() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        for round in 0..10_000u64 {
            queue.set(
                (round % 3) as usize,
                Service,
                start + Duration::from_millis(round),
            );
            assert!(queue.heap_len() <= 2 * 3 + 65, "{}", queue.heap_len());
        }
        assert_eq!(due(&mut queue, start + Duration::from_secs(60)).len(), 3);
    }
}
