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
    /// The end of lingering: how long a connection whose session ended
    /// waits for the client's end of stream.
    Linger,
    /// One of the service's own timers
    /// ([`ConnectionContext::set_timer_for`](crate::ConnectionContext::set_timer_for)).
    Service(Timer),
}

impl TimerKind {
    /// How many kinds there are: the handshake's, the linger's and the
    /// service's.
    const COUNT: usize = 2 + Timer::COUNT;

    fn index(self) -> usize {
        match self {
            Self::Handshake => 0,
            Self::Linger => 1,
            Self::Service(timer) => 2 + timer.index(),
        }
    }

    fn from_index(index: usize) -> Self {
        match index {
            0 => Self::Handshake,
            1 => Self::Linger,
            n => Self::Service(Timer::new(n - 2)),
        }
    }
}

/// One of a connection's service timers. Each connection has
/// [`Timer::COUNT`] of them, each with a deadline of its own: a heartbeat's
/// interval and its deadline are two timers, not one folded by hand.
///
/// ```
/// use shout_server::Timer;
///
/// const PING: Timer = Timer::new(1);
/// const PONG_DEADLINE: Timer = Timer::new(2);
/// assert_ne!(PING, PONG_DEADLINE);
/// assert_eq!(Timer::DEFAULT, Timer::new(0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timer(u8);

impl Timer {
    /// How many service timers a connection has.
    pub const COUNT: usize = 4;

    /// The timer of [`set_timer`](crate::ConnectionContext::set_timer) and
    /// [`cancel_timer`](crate::ConnectionContext::cancel_timer), timer 0.
    pub const DEFAULT: Timer = Timer(0);

    /// Returns timer `index`, from 0 to [`COUNT`](Self::COUNT) − 1.
    ///
    /// # Panics
    /// If `index` is [`COUNT`](Self::COUNT) or more. In a `const`, that is
    /// a compile error.
    pub const fn new(index: usize) -> Self {
        assert!(index < Self::COUNT, "a connection has 4 timers, 0 to 3");
        Self(index as u8)
    }

    /// Returns the timer's index, from 0 to [`COUNT`](Self::COUNT) − 1.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Returns every timer, in order of index.
    pub(crate) fn all() -> impl Iterator<Item = Timer> {
        (0..Self::COUNT).map(Self::new)
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
        for index in 0..TimerKind::COUNT {
            self.cancel(key, TimerKind::from_index(index));
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
            let kind = TimerKind::from_index(slot % TimerKind::COUNT);
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
    use super::TimerKind::Handshake;
    use super::*;
    use std::time::Duration;

    /// The service's default timer.
    const SERVICE: TimerKind = TimerKind::Service(Timer::DEFAULT);

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
        queue.set(2, SERVICE, start + 3 * second);
        queue.set(0, SERVICE, start + second);
        queue.set(5, SERVICE, start + 2 * second);
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
        queue.set(1, SERVICE, start + second);
        queue.set(1, SERVICE, start + 5 * second); // re-armed later
        queue.set(2, SERVICE, start + second);
        queue.cancel(2, SERVICE);
        queue.cancel(2, SERVICE); // twice is harmless
        queue.cancel(99, SERVICE); // never set is harmless
        assert_eq!(keys(&mut queue, start + 2 * second), Vec::<usize>::new());
        assert_eq!(keys(&mut queue, start + 5 * second), vec![1]);
    }

    #[test]
    fn a_key_reused_by_a_new_connection_does_not_inherit_the_old_timer() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        queue.set(0, SERVICE, start);
        queue.set(0, Handshake, start);
        queue.cancel_all(0); // the connection closed
        queue.set(0, SERVICE, start + Duration::from_secs(9)); // the next one on key 0
        assert_eq!(keys(&mut queue, start + Duration::from_secs(1)), vec![]);
        assert_eq!(
            due(&mut queue, start + Duration::from_secs(9)),
            vec![(0, SERVICE)]
        );
    }

    #[test]
    fn each_kind_is_a_timer_of_its_own() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        let second = Duration::from_secs(1);
        queue.set(3, Handshake, start + 2 * second);
        // The service's timer neither replaces nor cancels the deadline.
        queue.set(3, SERVICE, start + second);
        queue.set(3, SERVICE, start + 3 * second);
        assert_eq!(due(&mut queue, start + 2 * second), vec![(3, Handshake)]);
        queue.set(3, Handshake, start + 4 * second);
        queue.cancel(3, Handshake);
        assert_eq!(due(&mut queue, start + 5 * second), vec![(3, SERVICE)]);
        assert_eq!(queue.next_deadline(), None);
    }

    #[test]
    fn each_service_timer_has_a_deadline_of_its_own() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        let second = Duration::from_secs(1);
        let [interval, deadline] = [1, 2].map(|n| TimerKind::Service(Timer::new(n)));
        queue.set(4, interval, start + second);
        queue.set(4, deadline, start + 3 * second);
        queue.set(5, interval, start + 2 * second);
        assert_eq!(due(&mut queue, start + second), vec![(4, interval)]);
        // Re-armed: the deadline stays where it was.
        queue.set(4, interval, start + 2 * second);
        let mut both = due(&mut queue, start + 2 * second);
        both.sort_by_key(|(key, _)| *key);
        assert_eq!(both, vec![(4, interval), (5, interval)]);
        queue.cancel(4, deadline);
        assert_eq!(due(&mut queue, start + 9 * second), vec![]);
        queue.set(6, deadline, start);
        queue.cancel_all(6);
        assert_eq!(queue.next_deadline(), Some(start), "lazily deleted");
        assert_eq!(due(&mut queue, start + 9 * second), vec![]);
    }

    #[test]
    fn every_kind_maps_to_its_slot_and_back() {
        for index in 0..TimerKind::COUNT {
            assert_eq!(TimerKind::from_index(index).index(), index);
        }
        assert_eq!(Timer::all().count(), Timer::COUNT);
    }

    #[test]
    fn re_arming_on_every_read_keeps_the_heap_bounded() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        for round in 0..10_000u64 {
            queue.set(
                (round % 3) as usize,
                SERVICE,
                start + Duration::from_millis(round),
            );
            assert!(queue.heap_len() <= 2 * 3 + 65, "{}", queue.heap_len());
        }
        assert_eq!(due(&mut queue, start + Duration::from_secs(60)).len(), 3);
    }
}
