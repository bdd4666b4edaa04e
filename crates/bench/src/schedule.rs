//! When to send and what counts: the measured window of a run, and the
//! fixed-rate schedule of open-loop mode. Time is passed in, never read
//! here, so both are tested without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The part of a run that is measured, and whether requests may still be
/// issued.
///
/// A request issued (or, at a fixed rate, due) before `measure_from` is
/// warm-up: answered and checked, never counted. The run stops issuing at
/// the deadline, or once the quota of measured requests is issued; replies
/// that complete after the deadline are checked but not counted, since the
/// figures are per second of the window.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    measure_from: Instant,
    deadline: Option<Instant>,
    quota: Option<u64>,
    issued: u64,
    settled: u64,
    issuing: bool,
    last_settled: Option<Instant>,
}

impl Window {
    /// A window that opens after `warmup` from `now` and lasts `duration`,
    /// or until `quota` measured requests are settled.
    pub(crate) fn new(
        now: Instant,
        warmup: Duration,
        duration: Option<Duration>,
        quota: Option<u64>,
    ) -> Self {
        let measure_from = now + warmup;
        Self {
            measure_from,
            deadline: duration.map(|duration| measure_from + duration),
            quota,
            issued: 0,
            settled: 0,
            issuing: quota != Some(0),
            last_settled: None,
        }
    }

    /// Whether a request sent (or due) at `start` counts.
    pub(crate) fn measured(&self, start: Instant) -> bool {
        start >= self.measure_from
    }

    /// Asks to issue one request sent (or due) at `start`; counts it
    /// against the quota when it is measured.
    pub(crate) fn issue(&mut self, start: Instant) -> bool {
        if !self.issuing || self.deadline.is_some_and(|deadline| start >= deadline) {
            return false;
        }
        if self.measured(start) {
            self.issued += 1;
            if self.quota == Some(self.issued) {
                self.issuing = false;
            }
        }
        true
    }

    /// A request sent (or due) at `start` is over at `now`: answered, lost
    /// or failed. `None` when it is not measured (warm-up); otherwise
    /// whether it ended within the window, so that its reply counts in the
    /// throughput. Its latency counts either way: a reply slowed past the
    /// deadline is still a slow reply.
    pub(crate) fn settle(&mut self, start: Instant, now: Instant) -> Option<bool> {
        if !self.measured(start) {
            return None;
        }
        self.settled += 1;
        let in_time = self.deadline.is_none_or(|deadline| now <= deadline);
        if in_time {
            self.last_settled = Some(now);
        }
        Some(in_time)
    }

    /// The start of the next request a connection may send, and whether it
    /// was issued just now: in open loop (`due` given) the oldest due time
    /// queued for it (issued when it fell due), in closed loop `now` if the
    /// window still issues.
    pub(crate) fn next_request(
        &mut self,
        due: Option<&mut VecDeque<Instant>>,
        now: Instant,
    ) -> Option<(Instant, bool)> {
        match due {
            Some(due) => due.pop_front().map(|start| (start, false)),
            None => self.issue(now).then_some((now, true)),
        }
    }

    /// When a loop must wake up at the latest: at its next timeout scan,
    /// when the next request falls due or the window closes (while it
    /// issues), at the end of the drain.
    pub(crate) fn next_wake(
        &self,
        next_scan: Instant,
        pacer: Option<&Pacer>,
        drain_until: Option<Instant>,
    ) -> Instant {
        let issuing = |at: Option<Instant>| at.filter(|_| self.issuing);
        [
            Some(next_scan),
            issuing(pacer.map(Pacer::next_due)),
            issuing(self.deadline),
            drain_until,
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("the scan is always there")
    }

    /// Stops issuing once the deadline has passed; returns whether it has.
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        let past = self.deadline.is_some_and(|deadline| now >= deadline);
        if past {
            self.issuing = false;
        }
        past
    }

    /// Stops issuing (every connection failed, say).
    pub(crate) fn stop(&mut self) {
        self.issuing = false;
    }

    /// Whether requests may still be issued.
    pub(crate) fn issuing(&self) -> bool {
        self.issuing
    }

    /// Whether every measured request of a quota is settled.
    pub(crate) fn quota_settled(&self) -> bool {
        self.quota.is_some_and(|quota| self.settled >= quota)
    }

    /// How long the measured part lasted, as of `now`.
    pub(crate) fn elapsed(&self, now: Instant) -> Duration {
        let end = match self.deadline {
            Some(deadline) => deadline.min(now),
            None => self.last_settled.unwrap_or(now),
        };
        end.saturating_duration_since(self.measure_from)
    }
}

/// Open-loop pacing: request `k` is due at `start + k / rate`, whatever
/// happened to the earlier ones.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    start: Instant,
    interval: Duration,
    next: u64,
}

impl Pacer {
    /// `rate` requests per second from `start`.
    pub(crate) fn new(start: Instant, rate: f64) -> Self {
        Self {
            start,
            interval: Duration::from_secs_f64(1.0 / rate),
            next: 0,
        }
    }

    /// When the next request is due.
    pub(crate) fn next_due(&self) -> Instant {
        self.start + self.interval.mul_f64(self.next as f64)
    }

    /// The next request due at or before `now`: its number and due time.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<(u64, Instant)> {
        let due = self.next_due();
        (due <= now).then(|| {
            self.next += 1;
            (self.next - 1, due)
        })
    }
}

/// How long a poll may sleep before `at`: never past it. Readiness waits
/// are rounded up to whole milliseconds by epoll, so the last millisecond
/// is spent polling without sleeping.
pub(crate) fn wait_until(now: Instant, at: Instant) -> Duration {
    let wait = at.saturating_duration_since(now);
    if wait < Duration::from_millis(1) {
        Duration::ZERO
    } else {
        Duration::from_millis(wait.as_millis() as u64 - 1).max(Duration::from_micros(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, millis: u64) -> Instant {
        base + Duration::from_millis(millis)
    }

    #[test]
    fn warm_up_is_answered_but_not_counted() {
        let t0 = Instant::now();
        let mut window = Window::new(
            t0,
            Duration::from_millis(100),
            Some(Duration::from_secs(1)),
            None,
        );
        assert!(window.issue(at(t0, 50)));
        assert_eq!(window.settle(at(t0, 50), at(t0, 60)), None);
        assert!(window.issue(at(t0, 150)));
        assert_eq!(window.settle(at(t0, 150), at(t0, 160)), Some(true));
        // Answered after the deadline: its latency counts, not its reply.
        assert!(window.issue(at(t0, 1_099)));
        assert_eq!(window.settle(at(t0, 1_099), at(t0, 1_101)), Some(false));
        assert!(!window.issue(at(t0, 1_100)));
        assert!(!window.tick(at(t0, 1_000)));
        assert!(window.issuing());
        assert!(window.tick(at(t0, 1_100)));
        assert!(!window.issuing());
        assert_eq!(window.elapsed(at(t0, 5_000)), Duration::from_secs(1));
    }

    #[test]
    fn a_quota_counts_measured_requests_only() {
        let t0 = Instant::now();
        let mut window = Window::new(t0, Duration::from_millis(10), None, Some(2));
        assert!(window.issue(t0)); // warm-up, free
        assert!(window.issue(at(t0, 10)));
        assert!(window.issue(at(t0, 11)));
        assert!(!window.issuing());
        assert!(!window.issue(at(t0, 12)));
        assert!(!window.quota_settled());
        window.settle(at(t0, 10), at(t0, 20));
        window.settle(at(t0, 11), at(t0, 30));
        assert!(window.quota_settled());
        assert_eq!(window.elapsed(at(t0, 99)), Duration::from_millis(20));
        assert!(!Window::new(t0, Duration::ZERO, None, Some(0)).issuing());
    }

    #[test]
    fn loops_wake_for_the_earliest_thing_to_do() {
        let t0 = Instant::now();
        let window = Window::new(t0, Duration::ZERO, Some(Duration::from_millis(5)), None);
        let pacer = Pacer::new(t0 + Duration::from_millis(2), 1000.0);
        assert_eq!(window.next_wake(at(t0, 50), None, None), at(t0, 5));
        assert_eq!(window.next_wake(at(t0, 50), Some(&pacer), None), at(t0, 2));
        assert_eq!(window.next_wake(at(t0, 1), Some(&pacer), None), at(t0, 1));
        let mut closed = window.clone();
        closed.stop();
        assert_eq!(
            closed.next_wake(at(t0, 50), Some(&pacer), Some(at(t0, 9))),
            at(t0, 9)
        );
    }

    #[test]
    fn the_next_request_is_due_or_issued() {
        let t0 = Instant::now();
        let mut window = Window::new(t0, Duration::ZERO, None, Some(1));
        assert_eq!(window.next_request(None, t0), Some((t0, true)));
        assert_eq!(window.next_request(None, t0), None);
        let mut due = VecDeque::from([at(t0, 3)]);
        assert_eq!(
            window.next_request(Some(&mut due), t0),
            Some((at(t0, 3), false))
        );
        assert_eq!(window.next_request(Some(&mut due), t0), None);
    }

    #[test]
    fn a_pacer_keeps_its_schedule_whatever_happens() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(t0, 1000.0);
        assert_eq!(pacer.take_due(t0), Some((0, t0)));
        assert_eq!(pacer.take_due(t0), None);
        // Late by 3 ms: three requests are due, each at its own time.
        let due: Vec<_> = std::iter::from_fn(|| pacer.take_due(at(t0, 3))).collect();
        assert_eq!(due, [(1, at(t0, 1)), (2, at(t0, 2)), (3, at(t0, 3))]);
        assert_eq!(pacer.next_due(), at(t0, 4));
    }

    #[test]
    fn waits_never_overshoot() {
        let t0 = Instant::now();
        assert_eq!(wait_until(t0, t0), Duration::ZERO);
        assert_eq!(wait_until(at(t0, 5), t0), Duration::ZERO);
        assert_eq!(
            wait_until(t0, t0 + Duration::from_micros(900)),
            Duration::ZERO
        );
        assert!(wait_until(t0, at(t0, 10)) <= Duration::from_millis(9));
    }
}
