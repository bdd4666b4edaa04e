//! What a run measures: latencies in an HDR histogram and the counters,
//! kept per thread and merged at the end, plus the few shared atomics from
//! which the progress line is printed while the run goes on.

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The longest latency recorded exactly; longer ones count as this.
const HIGHEST_NANOS: u64 = 3_600_000_000_000;

/// One thread's measurements.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    /// Latency per message, in nanoseconds, three significant digits.
    pub(crate) latency: Histogram<u64>,
    /// Replies received whole and correct, in the measured window.
    pub(crate) messages: u64,
    /// Wrong replies, and connections that failed or broke.
    pub(crate) errors: u64,
    /// Datagrams with no reply within the timeout.
    pub(crate) lost: u64,
    /// Datagram replies that came after their request was counted lost,
    /// or twice.
    pub(crate) late: u64,
    /// TLS handshakes completed, warm-up included.
    pub(crate) handshakes: u64,
    /// QUIC handshakes whose early data (0-RTT) the server took.
    pub(crate) zero_rtt: u64,
    /// Time per TLS handshake, from the TCP connection's opening to the
    /// handshake's end, in nanoseconds.
    pub(crate) handshake: Histogram<u64>,
    /// The first error, worded for a person.
    pub(crate) first_error: Option<String>,
    /// What has been told to [`Progress`] already.
    published: (u64, u64, u64),
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, HIGHEST_NANOS, 3)
                .expect("constant bounds are valid"),
            messages: 0,
            errors: 0,
            lost: 0,
            late: 0,
            handshakes: 0,
            zero_rtt: 0,
            handshake: Histogram::new_with_bounds(1, HIGHEST_NANOS, 3)
                .expect("constant bounds are valid"),
            first_error: None,
            published: (0, 0, 0),
        }
    }

    /// One reply received and checked, `latency` after its request was
    /// sent (or was due, at a fixed rate); `in_window` when it counts in the
    /// throughput too.
    pub(crate) fn message(&mut self, latency: Duration, in_window: bool) {
        self.latency.saturating_record(nanos(latency));
        self.messages += u64::from(in_window);
    }

    /// One TLS handshake completed in `took`.
    pub(crate) fn handshake(&mut self, took: Duration) {
        self.handshakes += 1;
        self.handshake.saturating_record(nanos(took));
    }

    /// One error; the first one is kept for the summary.
    pub(crate) fn error(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            let what = what();
            log::debug!("bench: {what}");
            self.first_error = Some(what);
        }
    }

    /// Tells the progress line what happened since the last call.
    pub(crate) fn publish(&mut self, progress: &Progress) {
        let now = (self.messages, self.errors, self.lost);
        let (messages, errors, lost) = self.published;
        if now != self.published {
            progress
                .messages
                .fetch_add(now.0 - messages, Ordering::Relaxed);
            progress.errors.fetch_add(now.1 - errors, Ordering::Relaxed);
            progress.lost.fetch_add(now.2 - lost, Ordering::Relaxed);
            self.published = now;
        }
    }

    /// Adds another thread's measurements to these.
    pub(crate) fn merge(&mut self, other: Recorder) {
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds add up");
        self.messages += other.messages;
        self.errors += other.errors;
        self.lost += other.lost;
        self.late += other.late;
        self.handshakes += other.handshakes;
        self.zero_rtt += other.zero_rtt;
        self.handshake
            .add(&other.handshake)
            .expect("histograms with the same bounds add up");
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// A duration as a histogram value: whole nanoseconds, at least 1.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Counters the threads of a run add to and the progress line reads.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) messages: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) lost: AtomicU64,
    /// Connections open (`--hold`).
    pub(crate) open: AtomicU64,
    /// Connections that could not be opened (`--hold`).
    pub(crate) failed: AtomicU64,
}

impl Progress {
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_counts_and_keeps_the_first_error() {
        let mut one = Recorder::new();
        one.message(Duration::from_micros(10), true);
        let mut two = Recorder::new();
        two.message(Duration::from_micros(30), true);
        two.error(|| "wrong reply".into());
        two.lost += 2;
        one.merge(two);
        assert_eq!(one.messages, 2);
        assert_eq!(one.errors, 1);
        assert_eq!(one.lost, 2);
        assert_eq!(one.first_error.as_deref(), Some("wrong reply"));
        assert_eq!(one.latency.len(), 2);
        let max = Duration::from_nanos(one.latency.max());
        assert!(max >= Duration::from_micros(29) && max <= Duration::from_micros(31));
    }

    #[test]
    fn publishing_adds_only_what_is_new() {
        let progress = Progress::default();
        let mut recorder = Recorder::new();
        recorder.message(Duration::from_micros(1), true);
        recorder.publish(&progress);
        recorder.publish(&progress);
        recorder.message(Duration::from_micros(1), true);
        recorder.lost += 1;
        recorder.publish(&progress);
        assert_eq!(Progress::get(&progress.messages), 2);
        assert_eq!(Progress::get(&progress.lost), 1);
    }

    #[test]
    fn an_absurd_latency_is_clamped_not_lost() {
        let mut recorder = Recorder::new();
        recorder.message(Duration::from_secs(100_000), false);
        assert_eq!(recorder.messages, 0);
        assert_eq!(recorder.latency.len(), 1);
    }
}
