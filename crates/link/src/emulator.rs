//! One direction of the link, without I/O: packets go in with the time they
//! arrived, and come out when they are due.
//!
//! The model, in the order a packet meets it:
//! 1. Loss: each packet is dropped with the configured probability, drawn
//!    independently from a seeded generator. A lost packet takes no room.
//! 2. The queue: drop-tail, at most `queue` packets waiting for the wire or
//!    on it. A packet that finds it full is dropped.
//! 3. Serialization: the wire sends one packet at a time; a packet of N
//!    bytes occupies it N × 8 / rate seconds, after the packets before it.
//! 4. Propagation: then the packet travels for the one-way delay (half the
//!    RTT), plus a jitter drawn uniformly in ±jitter.
//!
//! Jitter never reorders: a packet whose draw would make it leave before
//! the packet ahead of it leaves right after that one. Real links reorder
//! rarely; this one never does, so TCP never sees a reordering it would
//! take for a loss. The cost is that large jitter on a busy link is skewed
//! late.
//!
//! The caller passes the time in ([`Instant`]), so every property is tested
//! without sleeping; the forwarding loop in `forward` is the only caller
//! that reads the clock.

use crate::units::{Loss, Rate};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The default queue: 1,000 packets, the Linux default `txqueuelen`.
///
/// At 10 Mbit/s, 1,000 full-size packets are 1.2 s of queueing: deep enough
/// that a single TCP flow keeps the wire busy at any RTT up to a second, at
/// the price of bufferbloat once the flow fills it.
pub const DEFAULT_QUEUE: usize = 1_000;

/// At most this many packets travel at once, whatever the rate: a bound on
/// the memory a link without a rate holds. Past it, packets are dropped and
/// counted with the queue's drops. At 1 Gbit/s and 500 ms one way, full-size
/// packets in flight are about 42,000.
pub const MAX_IN_FLIGHT: usize = 65_536;

/// What one direction of the link does to the packets it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// The time from entering the wire to leaving it: half the RTT.
    pub delay: Duration,
    /// Each packet's delay varies uniformly within ± this.
    pub jitter: Duration,
    /// The wire's rate; `None` sends each packet in no time.
    pub rate: Option<Rate>,
    /// The probability that each packet is lost.
    pub loss: Loss,
    /// The most packets waiting for the wire or on it.
    pub queue: usize,
    /// Fixes the loss and jitter draws, so that a run can be replayed.
    pub seed: u64,
}

impl Default for LinkConfig {
    /// Returns a link with no delay, no rate limit, no loss and the default
    /// queue.
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate: None,
            loss: Loss::default(),
            queue: DEFAULT_QUEUE,
            seed: 0,
        }
    }
}

/// What became of a packet given to [`Emulator::arrive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It travels, and leaves at this time.
    Due(Instant),
    /// It was lost (the loss draw).
    Lost,
    /// The queue was full.
    QueueFull,
}

/// What one direction has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets that left the link.
    pub passed: u64,
    /// Bytes of the packets that left the link.
    pub passed_bytes: u64,
    /// Packets dropped by the loss draw.
    pub lost: u64,
    /// Packets dropped because the queue was full.
    pub queue_dropped: u64,
}

impl Counters {
    /// Returns every packet that arrived and was decided: passed, lost or
    /// dropped.
    pub fn arrived(&self) -> u64 {
        self.passed + self.lost + self.queue_dropped
    }
}

/// One direction of the emulated link: fed packets and the time they
/// arrived, asked which are due to leave and when to look again.
#[derive(Debug)]
pub struct Emulator {
    config: LinkConfig,
    rng: ChaCha8Rng,
    /// When each packet now queued finishes its serialization, oldest
    /// first: the queue's occupancy.
    serializing: VecDeque<Instant>,
    /// When the wire is free for the next packet.
    wire_free_at: Option<Instant>,
    /// Packets travelling, with the time each leaves; the times never
    /// decrease.
    in_flight: VecDeque<(Instant, Vec<u8>)>,
    counters: Counters,
}

impl Emulator {
    /// Returns an empty link that behaves as `config` says.
    pub fn new(config: LinkConfig) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            serializing: VecDeque::new(),
            wire_free_at: None,
            in_flight: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Returns the configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Takes a packet that arrived at `now`, and says what becomes of it.
    ///
    /// `now` must not go back in time from one call to the next.
    pub fn arrive(&mut self, now: Instant, packet: Vec<u8>) -> Admission {
        if self.config.loss.fraction() > 0.0 && self.uniform() < self.config.loss.fraction() {
            self.counters.lost += 1;
            return Admission::Lost;
        }
        while self.serializing.front().is_some_and(|&done| done <= now) {
            self.serializing.pop_front();
        }
        if self.serializing.len() >= self.config.queue || self.in_flight.len() >= MAX_IN_FLIGHT {
            self.counters.queue_dropped += 1;
            return Admission::QueueFull;
        }
        let sent = match self.config.rate {
            Some(rate) => {
                let start = self.wire_free_at.map_or(now, |free| free.max(now));
                let sent = start + rate.serialization(packet.len());
                self.wire_free_at = Some(sent);
                self.serializing.push_back(sent);
                sent
            }
            None => now,
        };
        let mut due = sent + self.travel_time();
        if let Some(&(last, _)) = self.in_flight.back() {
            due = due.max(last);
        }
        self.in_flight.push_back((due, packet));
        Admission::Due(due)
    }

    /// Returns the next packet due to leave at `now`, oldest first.
    pub fn depart(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.in_flight.front()?.0 > now {
            return None;
        }
        let (_, packet) = self.in_flight.pop_front()?;
        self.counters.passed += 1;
        self.counters.passed_bytes += packet.len() as u64;
        Some(packet)
    }

    /// Returns when the next packet is due to leave, if any travels.
    pub fn next_departure(&self) -> Option<Instant> {
        self.in_flight.front().map(|&(due, _)| due)
    }

    /// Returns how many packets travel or wait.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Returns what the link has done so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Returns the delay plus this packet's jitter draw, never below zero.
    fn travel_time(&mut self) -> Duration {
        let delay = self.config.delay;
        let jitter = self.config.jitter;
        if jitter.is_zero() {
            return delay;
        }
        let offset = (self.uniform() * 2.0 - 1.0) * jitter.as_secs_f64();
        Duration::try_from_secs_f64(delay.as_secs_f64() + offset).unwrap_or(Duration::ZERO)
    }

    /// Returns a draw uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        // The top 53 bits: every double in [0, 1) at that spacing.
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn link(config: LinkConfig) -> (Emulator, Instant) {
        (Emulator::new(config), Instant::now())
    }

    /// Collects every packet due by `until`, each with the time it is due.
    fn drain(link: &mut Emulator, until: Instant) -> Vec<(Instant, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(due) = link.next_departure().filter(|&due| due <= until) {
            out.push((due, link.depart(due).expect("a packet is due")));
        }
        out
    }

    #[test]
    fn a_packet_leaves_after_the_delay_and_not_before() {
        let (mut link, t0) = link(LinkConfig {
            delay: ms(25),
            ..LinkConfig::default()
        });
        assert_eq!(link.arrive(t0, vec![1; 100]), Admission::Due(t0 + ms(25)));
        assert_eq!(link.next_departure(), Some(t0 + ms(25)));
        assert_eq!(link.depart(t0 + ms(24)), None);
        assert_eq!(link.depart(t0 + ms(25)), Some(vec![1; 100]));
        assert_eq!(link.depart(t0 + ms(100)), None);
        assert_eq!(link.next_departure(), None);
        assert_eq!(link.counters().passed, 1);
        assert_eq!(link.counters().passed_bytes, 100);
    }

    #[test]
    fn without_delay_or_rate_a_packet_is_due_at_once() {
        let (mut link, t0) = link(LinkConfig::default());
        assert_eq!(link.arrive(t0, vec![0; 1500]), Admission::Due(t0));
        assert_eq!(link.depart(t0), Some(vec![0; 1500]));
    }

    #[test]
    fn packets_queue_behind_each_other_at_the_rate() {
        // 10 Mbit/s: a 1,500-byte packet occupies the wire 1.2 ms.
        let (mut link, t0) = link(LinkConfig {
            delay: ms(10),
            rate: Some("10mbit".parse().unwrap()),
            ..LinkConfig::default()
        });
        let serial = Duration::from_micros(1200);
        for k in 1..=3 {
            assert_eq!(
                link.arrive(t0, vec![0; 1500]),
                Admission::Due(t0 + serial * k + ms(10))
            );
        }
        // One arriving after the wire went idle starts at once.
        let later = t0 + ms(50);
        assert_eq!(
            link.arrive(later, vec![0; 1500]),
            Admission::Due(later + serial + ms(10))
        );
    }

    #[test]
    fn a_long_run_passes_exactly_the_rate() {
        // 1,000 packets of 1,250 bytes offered at once on 1 Mbit/s: the last
        // leaves 10 s later, 1,250 × 8 × 1,000 bits / 1 Mbit/s.
        let (mut link, t0) = link(LinkConfig {
            rate: Some("1mbit".parse().unwrap()),
            queue: 1_000,
            ..LinkConfig::default()
        });
        for _ in 0..1_000 {
            assert!(matches!(link.arrive(t0, vec![0; 1250]), Admission::Due(_)));
        }
        let out = drain(&mut link, t0 + Duration::from_secs(60));
        assert_eq!(out.len(), 1_000);
        assert_eq!(out.last().unwrap().0, t0 + Duration::from_secs(10));
        assert_eq!(link.counters().passed_bytes, 1_250_000);
    }

    #[test]
    fn a_full_queue_drops_the_newcomer() {
        let (mut link, t0) = link(LinkConfig {
            rate: Some("1mbit".parse().unwrap()),
            queue: 3,
            ..LinkConfig::default()
        });
        // 1,250 bytes at 1 Mbit/s: 10 ms each on the wire.
        for _ in 0..3 {
            assert!(matches!(link.arrive(t0, vec![0; 1250]), Admission::Due(_)));
        }
        assert_eq!(link.arrive(t0, vec![0; 1250]), Admission::QueueFull);
        assert_eq!(link.arrive(t0 + ms(9), vec![0; 1250]), Admission::QueueFull);
        // The first one is off the wire at 10 ms: room for one more.
        assert_eq!(
            link.arrive(t0 + ms(10), vec![0; 1250]),
            Admission::Due(t0 + ms(40))
        );
        assert_eq!(link.counters().queue_dropped, 2);
        assert_eq!(drain(&mut link, t0 + ms(40)).len(), 4);
        assert_eq!(link.counters().arrived(), 6);
    }

    #[test]
    fn without_a_rate_the_queue_never_fills() {
        let (mut link, t0) = link(LinkConfig {
            delay: ms(50),
            queue: 1,
            ..LinkConfig::default()
        });
        for _ in 0..100 {
            assert!(matches!(link.arrive(t0, vec![0; 1500]), Admission::Due(_)));
        }
        assert_eq!(link.in_flight(), 100);
    }

    #[test]
    fn loss_drops_about_its_share_independently() {
        let (mut link, t0) = link(LinkConfig {
            loss: "10%".parse().unwrap(),
            seed: 7,
            ..LinkConfig::default()
        });
        let mut longest_run = 0;
        let mut run = 0;
        for _ in 0..100_000 {
            if link.arrive(t0, vec![0; 10]) == Admission::Lost {
                run += 1;
                longest_run = longest_run.max(run);
            } else {
                run = 0;
            }
            while link.depart(t0).is_some() {}
        }
        let counters = link.counters();
        assert_eq!(counters.arrived(), 100_000);
        // 10% of 100,000: a standard deviation of 95 packets.
        assert!(
            (9_600..=10_400).contains(&counters.lost),
            "{}",
            counters.lost
        );
        // Independent draws: a run of 10 losses has odds 1e-10 per packet.
        assert!(longest_run < 10, "{longest_run} losses in a row");
    }

    #[test]
    fn the_same_seed_loses_the_same_packets() {
        let losses = |seed| {
            let (mut link, t0) = link(LinkConfig {
                loss: "30%".parse().unwrap(),
                seed,
                ..LinkConfig::default()
            });
            (0..200)
                .map(|_| link.arrive(t0, vec![0; 10]) == Admission::Lost)
                .collect::<Vec<_>>()
        };
        assert_eq!(losses(1), losses(1));
        assert_ne!(losses(1), losses(2));
    }

    #[test]
    fn no_loss_and_full_loss_are_exact() {
        let (mut none, t0) = link(LinkConfig::default());
        let (mut all, _) = link(LinkConfig {
            loss: "100%".parse().unwrap(),
            ..LinkConfig::default()
        });
        for _ in 0..1_000 {
            assert_ne!(none.arrive(t0, vec![0; 10]), Admission::Lost);
            assert_eq!(all.arrive(t0, vec![0; 10]), Admission::Lost);
        }
    }

    #[test]
    fn jitter_stays_within_bounds_and_never_reorders() {
        let (mut link, t0) = link(LinkConfig {
            delay: ms(20),
            jitter: ms(5),
            seed: 3,
            ..LinkConfig::default()
        });
        let mut earliest = Duration::MAX;
        let mut latest = Duration::ZERO;
        let mut sum = Duration::ZERO;
        let count = 10_000u32;
        for n in 0..count {
            // One packet every 10 ms: far enough apart that none waits for
            // the one ahead, so each delay is its own draw.
            let at = t0 + ms(10) * n;
            link.arrive(at, n.to_be_bytes().to_vec());
            let (due, packet) = drain(&mut link, at + ms(100)).pop().unwrap();
            assert_eq!(packet, n.to_be_bytes());
            let delay = due - at;
            earliest = earliest.min(delay);
            latest = latest.max(delay);
            sum += delay;
        }
        assert!(
            earliest >= ms(15) && latest <= ms(25),
            "{earliest:?}..{latest:?}"
        );
        // Spread over the whole range, centred on the delay.
        assert!(
            earliest < ms(16) && latest > ms(24),
            "{earliest:?}..{latest:?}"
        );
        let mean = sum / count;
        assert!(mean > Duration::from_micros(19_900) && mean < Duration::from_micros(20_100));

        // Back to back, packets leave in the order they came.
        let (mut burst, t0) = self::link(LinkConfig {
            delay: ms(20),
            jitter: ms(5),
            seed: 4,
            ..LinkConfig::default()
        });
        for n in 0..1_000u32 {
            burst.arrive(
                t0 + Duration::from_micros(u64::from(n)),
                n.to_be_bytes().to_vec(),
            );
        }
        let out = drain(&mut burst, t0 + Duration::from_secs(1));
        assert_eq!(out.len(), 1_000);
        for (n, (_, packet)) in out.iter().enumerate() {
            assert_eq!(packet[..], (n as u32).to_be_bytes());
        }
        assert!(out.windows(2).all(|pair| pair[0].0 <= pair[1].0));
    }

    #[test]
    fn jitter_larger_than_the_delay_never_goes_below_zero() {
        let (mut link, t0) = link(LinkConfig {
            delay: ms(1),
            jitter: ms(5),
            seed: 5,
            ..LinkConfig::default()
        });
        for n in 0..1_000u32 {
            let at = t0 + ms(10) * n;
            match link.arrive(at, vec![0; 10]) {
                Admission::Due(due) => assert!(due >= at && due <= at + ms(6)),
                other => panic!("{other:?}"),
            }
            drain(&mut link, at + ms(10));
        }
    }

    #[test]
    fn in_flight_is_bounded_even_without_a_rate() {
        let (mut link, t0) = link(LinkConfig {
            delay: Duration::from_secs(1),
            ..LinkConfig::default()
        });
        for _ in 0..MAX_IN_FLIGHT {
            assert!(matches!(link.arrive(t0, Vec::new()), Admission::Due(_)));
        }
        assert_eq!(link.arrive(t0, Vec::new()), Admission::QueueFull);
        assert_eq!(link.counters().queue_dropped, 1);
    }
}
