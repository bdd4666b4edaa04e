//! Connection limits and per-source limits: the server's connection cap
//! and its permits, how many connections one source may hold open, and how
//! fast one source is answered over UDP.
//!
//! A source is a client's IP address, or its /64 for IPv6 (one subscriber's
//! share, usually); an IPv4-mapped IPv6 address counts as its IPv4 address.
//! Both tables are fixed-size hashed arrays: their memory does not depend on
//! how many sources there are, at the price of sources sharing a slot now and
//! then. The hash is keyed afresh in every process, so a client cannot choose
//! addresses that land in another's slot.
//!
//! This module keeps counts and buckets; it does no I/O and does not decide
//! what a refused connection or an unanswered datagram becomes (that is
//! [`worker`](crate::worker)'s business).

use crate::wake::Wakers;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Returns the key a source is tracked by: its IPv4 address (as mapped into
/// IPv6), or the first 64 bits of its IPv6 address.
pub(crate) fn source_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6) & !u128::from(u64::MAX),
        },
    }
}

/// The server's open connections against its cap, shared by every worker.
///
/// A worker at the cap deregisters its listeners; whoever frees a slot while
/// a worker is so paused wakes every worker, and a paused one resumes on its
/// next turn if there is room.
#[derive(Debug)]
pub(crate) struct ConnectionSlots {
    open: AtomicUsize,
    pub(crate) max: usize,
    /// Workers whose listeners are paused at the cap.
    pub(crate) paused: AtomicUsize,
    wakers: Arc<Wakers>,
    /// Each source's share of the open connections.
    per_source: ConnectionsPerSource,
}

impl ConnectionSlots {
    /// Returns the slots for `max` connections, at most `max_per_source`
    /// of them from one source (0: no such limit).
    pub(crate) fn new(max: usize, max_per_source: usize, wakers: Arc<Wakers>) -> Self {
        Self {
            open: AtomicUsize::new(0),
            max,
            paused: AtomicUsize::new(0),
            wakers,
            per_source: ConnectionsPerSource::new(max_per_source, max),
        }
    }

    /// Takes a slot for a connection about to be accepted, charged to no
    /// source yet. Returns `None` at the cap.
    pub(crate) fn take(self: &Arc<Self>) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| {
                (open < self.max).then_some(open + 1)
            })
            .ok()?;
        Some(Slot {
            slots: Arc::clone(self),
            source: None,
        })
    }

    /// Gives a slot back, waking the workers if one is paused at the cap.
    ///
    /// Both this and the acceptor's pause are `SeqCst`: either this sees
    /// the pause and wakes, or the pausing worker's second look sees the
    /// room, so a paused worker never sleeps through a free slot.
    fn give_back(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        if self.paused.load(Ordering::SeqCst) > 0 {
            self.wakers.wake_all("room under the connection cap");
        }
    }

    pub(crate) fn has_room(&self) -> bool {
        self.open.load(Ordering::SeqCst) < self.max
    }
}

/// One connection's place under the server-wide cap and, once charged,
/// in its source's share: a permit, given back when dropped, so no path
/// that ends a connection can keep or return it twice.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<ConnectionSlots>,
    source: Option<SourceShare>,
}

impl Slot {
    /// Charges the connection to source `ip` (the peer, or the client a
    /// PROXY header names). Returns `false`, charging nothing, if `ip`
    /// holds its share already.
    pub(crate) fn charge(&mut self, ip: IpAddr) -> bool {
        debug_assert!(self.source.is_none(), "a slot charged twice");
        match self.slots.per_source.take(ip) {
            Ok(source) => {
                self.source = source;
                true
            }
            Err(()) => false,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(source) = self.source.take() {
            self.slots.per_source.release(source);
        }
        self.slots.give_back();
    }
}

/// Open connections per source, shared by every worker.
///
/// Each slot is one atomic count; a source's slot is its key's hash. Two
/// sources in one slot share its count: a source may then be refused because
/// of another's connections (never given more than the limit). With at least
/// four slots per connection the server may hold, that needs one heavy
/// source and bad luck; the table is `4 × max_connections` slots rounded up
/// to a power of two (at most 2^20), four bytes each.
#[derive(Debug)]
pub(crate) struct ConnectionsPerSource {
    /// The most one source may hold open; 0 is no limit.
    max: u32,
    counts: Box<[AtomicU32]>,
    hasher: RandomState,
}

impl ConnectionsPerSource {
    /// Returns a table for at most `max` connections per source (0: no
    /// limit, and no table), sized for a server of `max_connections`.
    pub(crate) fn new(max: usize, max_connections: usize) -> Self {
        let slots = if max == 0 {
            0
        } else {
            max_connections
                .saturating_mul(4)
                .clamp(1024, 1 << 20)
                .next_power_of_two()
        };
        Self {
            max: u32::try_from(max).unwrap_or(u32::MAX),
            counts: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            hasher: RandomState::new(),
        }
    }

    fn index(&self, ip: IpAddr) -> Option<usize> {
        if self.counts.is_empty() {
            return None;
        }
        let hash = self.hasher.hash_one(source_key(ip)) as usize;
        Some(hash & (self.counts.len() - 1))
    }

    /// Counts a new connection from `ip`. Returns `Err`, counting nothing,
    /// when its source already holds the limit; `Ok` with what to give to
    /// [`release`](Self::release) when it closes (`None` without a limit).
    pub(crate) fn take(&self, ip: IpAddr) -> Result<Option<SourceShare>, ()> {
        let Some(index) = self.index(ip) else {
            return Ok(None);
        };
        self.counts[index]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                (open < self.max).then_some(open + 1)
            })
            .map(|_| Some(SourceShare(index as u32)))
            .map_err(drop)
    }

    /// Forgets a connection counted by [`take`](Self::take).
    pub(crate) fn release(&self, share: SourceShare) {
        let _ = self.counts[share.0 as usize].fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |open| open.checked_sub(1),
        );
    }

    /// Counts a new connection from `ip`. Returns `false`, counting nothing,
    /// when its source already holds the limit.
    #[cfg(test)]
    pub(crate) fn open(&self, ip: IpAddr) -> bool {
        // Held on for good: the tests close by address.
        self.take(ip).is_ok()
    }

    /// Forgets a connection from `ip` counted by [`open`](Self::open).
    #[cfg(test)]
    pub(crate) fn close(&self, ip: IpAddr) {
        if let Some(index) = self.index(ip) {
            self.release(SourceShare(index as u32));
        }
    }

    /// Returns the number of slots: fixed when the table is made.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.counts.len()
    }
}

/// One connection's count in its source's slot of [`ConnectionsPerSource`]
/// (at most 2^20 slots, so the index fits 32 bits).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SourceShare(u32);

/// Replies per source per second, and the burst above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ReplyRate {
    /// Tokens added per second; 0 is no limit.
    pub(crate) per_second: f64,
    /// The most tokens a bucket holds; a new source starts full.
    pub(crate) burst: f64,
}

/// Slots in each worker's reply-rate table: 32 bytes each, 256 KiB in all.
pub(crate) const REPLY_RATE_SLOTS: usize = 8192;

/// One source's token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    key: u128,
    tokens: f64,
    /// When `tokens` was last brought up to date, in nanoseconds since the
    /// table's epoch.
    updated: u64,
}

/// No real key: IPv4 keys have their top 80 bits clear, IPv6 keys their
/// low 64.
const EMPTY: u128 = u128::MAX;

/// Token buckets for UDP replies, one table per worker (no sharing on the
/// hot path), as DNS servers limit responses.
///
/// A source's bucket sits in one of two slots picked by its key's hash;
/// when neither holds it, the one updated longest ago is given to it, full.
/// So a collision costs the evicted source its history: it is given a fresh
/// bucket the next time, which is at most one more burst of replies. Memory
/// is [`REPLY_RATE_SLOTS`] buckets, whatever the number of sources.
#[derive(Debug)]
pub(crate) struct ReplyRateLimiter {
    rate: ReplyRate,
    buckets: Box<[Bucket]>,
    hasher: RandomState,
    epoch: Instant,
}

impl ReplyRateLimiter {
    /// Returns a limiter for `rate` (no table when the rate is 0), with time
    /// counted from `epoch`.
    pub(crate) fn new(rate: ReplyRate, epoch: Instant) -> Self {
        let slots = if rate.per_second > 0.0 {
            REPLY_RATE_SLOTS
        } else {
            0
        };
        let empty = Bucket {
            key: EMPTY,
            tokens: 0.0,
            updated: 0,
        };
        Self {
            rate,
            buckets: vec![empty; slots].into_boxed_slice(),
            hasher: RandomState::new(),
            epoch,
        }
    }

    /// Takes a token for a reply to `ip` at `now`. Returns `false` when its
    /// bucket is empty: the reply is not to be sent.
    pub(crate) fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.buckets.is_empty() {
            return true;
        }
        let key = source_key(ip);
        let mask = self.buckets.len() - 1;
        let first = self.hasher.hash_one(key) as usize & mask;
        let second = first ^ 1;
        let now =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let index = if self.buckets[first].key == key {
            first
        } else if self.buckets[second].key == key {
            second
        } else {
            let oldest = if self.buckets[second].updated < self.buckets[first].updated {
                second
            } else {
                first
            };
            self.buckets[oldest] = Bucket {
                key,
                tokens: self.rate.burst,
                updated: now,
            };
            oldest
        };
        let bucket = &mut self.buckets[index];
        let elapsed = Duration::from_nanos(now.saturating_sub(bucket.updated));
        bucket.tokens =
            (bucket.tokens + elapsed.as_secs_f64() * self.rate.per_second).min(self.rate.burst);
        bucket.updated = bucket.updated.max(now);
        // Tokens added a little at a time sum to a hair under a whole one
        // in floating point: a billionth of a reply is not worth refusing.
        if bucket.tokens >= 1.0 - 1e-9 {
            bucket.tokens = (bucket.tokens - 1.0).max(0.0);
            true
        } else {
            false
        }
    }

    /// Returns the number of buckets: fixed when the table is made.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn a_source_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_key(mapped), source_key(v4(192, 0, 2, 7)));
        assert_ne!(source_key(v4(192, 0, 2, 7)), source_key(v4(192, 0, 2, 8)));
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(one), source_key(same_64));
        assert_ne!(source_key(one), source_key(next_64));
        // The all-zero /64 is not any IPv4 address, nor the empty mark.
        let zero = source_key(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_ne!(zero, source_key(v4(0, 0, 0, 0)));
        for key in [zero, source_key(v4(255, 255, 255, 255)), source_key(one)] {
            assert_ne!(key, EMPTY);
        }
    }

    #[test]
    fn a_slot_gives_back_exactly_what_it_holds_when_dropped() {
        let slots = Arc::new(ConnectionSlots::new(
            2,
            1,
            Arc::new(Wakers::new(Vec::new())),
        ));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut first = slots.take().unwrap();
        assert!(first.charge(ip));
        let mut second = slots.take().unwrap();
        assert!(slots.take().is_none(), "past the cap");
        assert!(!second.charge(ip), "past the source's share");
        // Uncharged: it gives back its place under the cap only.
        drop(second);
        assert!(slots.has_room());
        drop(first);
        let mut again = slots.take().unwrap();
        assert!(again.charge(ip), "the source's share came back");
        let _other = slots.take().unwrap();
        assert!(!slots.has_room());
    }

    #[test]
    fn connections_past_the_limit_are_refused_until_one_closes() {
        let table = ConnectionsPerSource::new(3, 100);
        let (busy, other) = (v4(127, 0, 0, 2), v4(127, 0, 0, 3));
        for _ in 0..3 {
            assert!(table.open(busy));
        }
        assert!(!table.open(busy));
        assert!(table.open(other), "another source has its own count");
        table.close(busy);
        assert!(table.open(busy));
        assert!(!table.open(busy));
    }

    #[test]
    fn no_limit_keeps_no_table() {
        let table = ConnectionsPerSource::new(0, 10_000);
        assert_eq!(table.slots(), 0);
        for _ in 0..1000 {
            assert!(table.open(v4(127, 0, 0, 2)));
        }
        table.close(v4(127, 0, 0, 2));
    }

    #[test]
    fn the_connection_table_is_fixed_whatever_the_number_of_sources() {
        let table = ConnectionsPerSource::new(2, 10_000);
        assert_eq!(table.slots(), 65_536);
        let mut refused = 0;
        for n in 0..100_000u32 {
            let [_, b, c, d] = n.to_be_bytes();
            refused += usize::from(!table.open(v4(127, b, c, d)));
        }
        assert_eq!(table.slots(), 65_536);
        // 100,000 sources in 65,536 slots of 2: some share a full slot.
        assert!(refused < 100_000 / 4, "{refused}");
    }

    fn limiter(per_second: f64, burst: f64) -> (ReplyRateLimiter, Instant) {
        let epoch = Instant::now();
        let rate = ReplyRate { per_second, burst };
        (ReplyRateLimiter::new(rate, epoch), epoch)
    }

    #[test]
    fn a_bucket_gives_its_burst_then_the_rate() {
        let (mut limiter, start) = limiter(10.0, 5.0);
        let busy = v4(127, 0, 0, 2);
        let allowed = (0..100).filter(|_| limiter.allow(busy, start)).count();
        assert_eq!(allowed, 5, "the burst, at once");
        // One second on: ten more tokens, but the bucket holds five.
        let later = start + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| limiter.allow(busy, later)).count(), 5);
        // Then 10 per second: one every 100 ms.
        let mut now = later;
        let mut allowed = 0;
        for _ in 0..100 {
            now += Duration::from_millis(10);
            allowed += usize::from(limiter.allow(busy, now));
        }
        assert_eq!(allowed, 10, "1 s at 10 per second");
        assert!(limiter.allow(v4(127, 0, 0, 3), now), "others keep theirs");
    }

    #[test]
    fn time_going_backwards_adds_no_tokens() {
        let (mut limiter, start) = limiter(1000.0, 1.0);
        let busy = v4(127, 0, 0, 2);
        let later = start + Duration::from_secs(5);
        assert!(limiter.allow(busy, later));
        assert!(!limiter.allow(busy, start));
        assert!(!limiter.allow(busy, later));
    }

    #[test]
    fn no_rate_keeps_no_table() {
        let (mut limiter, start) = limiter(0.0, 0.0);
        assert_eq!(limiter.slots(), 0);
        assert!((0..1000).all(|_| limiter.allow(v4(127, 0, 0, 2), start)));
    }

    #[test]
    fn the_reply_table_is_fixed_whatever_the_number_of_sources() {
        let (mut limiter, start) = limiter(1.0, 2.0);
        let mut now = start;
        for n in 0..100_000u32 {
            let [_, b, c, d] = n.to_be_bytes();
            now += Duration::from_micros(1);
            // A new source starts with a full bucket.
            assert!(limiter.allow(v4(127, b, c, d), now), "source {n}");
        }
        assert_eq!(limiter.slots(), REPLY_RATE_SLOTS);
        assert_eq!(std::mem::size_of::<Bucket>(), 32);
        // A source seen just now is still tracked: its burst is spent.
        let last = v4(127, 1, 134, 159);
        assert!(limiter.allow(last, now));
        assert!(!limiter.allow(last, now));
    }
}
