//! Per-connection timers: at most one deadline per connection key, due in
//! order, with lazy deletion.
//!
//! A heap of (deadline, generation, key); setting or cancelling a timer
//! only changes the key's current generation, and heap entries whose
//! generation is not current are skipped when they surface. Generations
//! come from one counter, so an entry left by a closed connection never
//! fires for the next connection on the same key. Stale entries are swept
//! when they outnumber live timers, so a service that re-arms its timer on
//! every read cannot grow the heap without bound.
//!
//! Time is passed in, so the queue is tested without sleeping.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// No timer on this key.
const NONE: u64 = 0;

#[derive(Debug)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    /// The current generation of each key's timer, `NONE` if unset.
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

    /// Sets `key`'s timer to `at`, replacing any other.
    pub(crate) fn set(&mut self, key: usize, at: Instant) {
        if key >= self.current.len() {
            self.current.resize(key + 1, NONE);
        }
        if self.current[key] == NONE {
            self.live += 1;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.current[key] = generation;
        self.heap.push(Reverse((at, generation, key)));
        if self.heap.len() > 2 * self.live + 64 {
            let current = &self.current;
            self.heap
                .retain(|Reverse((_, generation, key))| current[*key] == *generation);
        }
    }

    /// Cancels `key`'s timer, if set (its connection closed, or the service
    /// asked).
    pub(crate) fn cancel(&mut self, key: usize) {
        if let Some(generation) = self.current.get_mut(key) {
            if *generation != NONE {
                *generation = NONE;
                self.live -= 1;
            }
        }
    }

    /// Returns a key whose timer is due at `now`, and unsets it.
    pub(crate) fn expired(&mut self, now: Instant) -> Option<usize> {
        while let Some(&Reverse((at, generation, key))) = self.heap.peek() {
            if self.current[key] != generation {
                self.heap.pop();
                continue;
            }
            if at > now {
                return None;
            }
            self.heap.pop();
            self.current[key] = NONE;
            self.live -= 1;
            return Some(key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn due(queue: &mut TimerQueue, now: Instant) -> Vec<usize> {
        std::iter::from_fn(|| queue.expired(now)).collect()
    }

    #[test]
    fn timers_come_due_in_order_once_each() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        let second = Duration::from_secs(1);
        queue.set(2, start + 3 * second);
        queue.set(0, start + second);
        queue.set(5, start + 2 * second);
        assert_eq!(queue.next_deadline(), Some(start + second));
        assert_eq!(due(&mut queue, start), Vec::<usize>::new());
        assert_eq!(due(&mut queue, start + 2 * second), vec![0, 5]);
        assert_eq!(due(&mut queue, start + 10 * second), vec![2]);
        assert_eq!(due(&mut queue, start + 20 * second), Vec::<usize>::new());
        assert_eq!(queue.next_deadline(), None);
    }

    #[test]
    fn a_reset_or_cancelled_timer_fires_only_as_last_set() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        let second = Duration::from_secs(1);
        queue.set(1, start + second);
        queue.set(1, start + 5 * second); // re-armed later
        queue.set(2, start + second);
        queue.cancel(2);
        queue.cancel(2); // twice is harmless
        queue.cancel(99); // never set is harmless
        assert_eq!(due(&mut queue, start + 2 * second), Vec::<usize>::new());
        assert_eq!(due(&mut queue, start + 5 * second), vec![1]);
    }

    #[test]
    fn a_key_reused_by_a_new_connection_does_not_inherit_the_old_timer() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        queue.set(0, start);
        queue.cancel(0); // the connection closed
        queue.set(0, start + Duration::from_secs(9)); // the next one on key 0
        assert_eq!(due(&mut queue, start + Duration::from_secs(1)), vec![]);
        assert_eq!(due(&mut queue, start + Duration::from_secs(9)), vec![0]);
    }

    #[test]
    fn re_arming_on_every_read_keeps_the_heap_bounded() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        for round in 0..10_000u64 {
            queue.set((round % 3) as usize, start + Duration::from_millis(round));
            assert!(queue.heap_len() <= 2 * 3 + 65, "{}", queue.heap_len());
        }
        assert_eq!(due(&mut queue, start + Duration::from_secs(60)).len(), 3);
    }
}
