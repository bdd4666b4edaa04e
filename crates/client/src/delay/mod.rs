//! The lecture's response-time arithmetic, measured: N objects of L bytes
//! fetched in each of the four ways the lecture compares, every phase of
//! every object timed apart, each total set beside its prediction.
//!
//! An object is a request of L bytes of lowercase ASCII and its uppercase
//! back, read until all L bytes came back. The ways ([`Way`]):
//!
//! - non-persistent: a new connection per object, one at a time;
//! - parallel: non-persistent, at most k connections at a time;
//! - persistent: one connection, one request at a time;
//! - pipelined: one connection, every request sent at once, the answers
//!   read while the requests are still going out (`shout_stream`'s sender
//!   thread), so large objects cannot deadlock.
//!
//! Before the ways, [`delay`] measures the round-trip time (a few small
//! probes over one connection, as `shout ping` does) and the link's rate
//! (given, or measured on one large object), and from both computes what
//! the lecture predicts for each way (the `predict` module derives each
//! formula). docs/DELAY.md says it in plain words.
//!
//! Over UDP there is no handshake: each object is one datagram each way,
//! and a lost one is sent again after the timeout, as `shout udp` does.

mod predict;
mod quic;
mod report;
mod svg;
mod tcp;
mod udp;

pub use predict::Prediction;

use crate::{
    ClientError, Connector, Resolve, RttStats, SystemResolver, Target, TlsClient, TlsOptions,
    Transport,
};
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How to run `shout delay`.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayOptions {
    /// TCP (with TLS when `tls` is set) or UDP.
    pub transport: Transport,
    /// N: how many objects each way fetches.
    pub objects: NonZeroU32,
    /// L: the bytes of each request, and of each answer.
    pub size: NonZeroUsize,
    /// k: the connections at a time of the parallel way.
    pub parallel: NonZeroUsize,
    /// How many probes measure the round-trip time.
    pub probes: NonZeroU32,
    /// The link's rate R; measured on one large object when `None`.
    pub rate: Option<Rate>,
    /// The bytes of the object that measures the rate over TCP.
    pub rate_sample: usize,
    /// How long to wait for an answer, or for its next byte.
    pub timeout: Duration,
    /// How long a TCP handshake may take (the system's limit when `None`).
    pub connect_timeout: Option<Duration>,
    /// Over UDP, how many times a datagram is sent again.
    pub retries: u32,
    /// Over TCP, TLS on every connection; its handshake is timed apart.
    /// With `quic`, whom QUIC's TLS trusts.
    pub tls: Option<TlsOptions>,
    /// QUIC instead of TCP (with `transport` TCP): a connection per
    /// object, or one connection whose objects each take a stream; the
    /// one handshake (QUIC's and TLS's) timed as `connect`.
    pub quic: bool,
}

/// Ten objects of 10,000 bytes, six connections at a time as browsers
/// open, five probes, the rate measured on 1 MiB.
impl Default for DelayOptions {
    fn default() -> Self {
        Self {
            transport: Transport::Tcp,
            objects: NonZeroU32::new(10).expect("not zero"),
            size: NonZeroUsize::new(10_000).expect("not zero"),
            parallel: NonZeroUsize::new(6).expect("not zero"),
            probes: NonZeroU32::new(5).expect("not zero"),
            rate: None,
            rate_sample: 1 << 20,
            timeout: Duration::from_secs(10),
            connect_timeout: Some(Duration::from_secs(5)),
            retries: 3,
            tls: None,
            quic: false,
        }
    }
}

/// A link's rate in bits per second, written as tc writes it: `20mbit`,
/// `500kbit`, `1gbit`, `9600bit` (powers of 1,000).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate {
    bits_per_second: f64,
}

impl Rate {
    /// A rate of `bits_per_second`, which must be finite and above zero.
    pub fn from_bits_per_second(bits_per_second: f64) -> Option<Self> {
        (bits_per_second.is_finite() && bits_per_second > 0.0).then_some(Self { bits_per_second })
    }

    /// Bits per second.
    pub fn bits_per_second(self) -> f64 {
        self.bits_per_second
    }

    /// Returns how long `bytes` take to cross a link of this rate.
    pub fn transmission(self, bytes: u64) -> Duration {
        // A rate of a few bits a century saturates instead of panicking.
        Duration::try_from_secs_f64(bytes as f64 * 8.0 / self.bits_per_second)
            .unwrap_or(Duration::MAX)
    }
}

impl fmt::Display for Rate {
    /// Shows the rate with the largest unit that keeps it at 1 or more:
    /// `20 Mbit/s`, `1.5 Gbit/s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bps = self.bits_per_second;
        let (value, unit) = [(1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")]
            .into_iter()
            .find(|(scale, _)| bps >= *scale)
            .map_or((bps, "bit/s"), |(scale, unit)| (bps / scale, unit));
        let shown = format!("{value:.3}");
        let shown = shown.trim_end_matches('0').trim_end_matches('.');
        write!(f, "{shown} {unit}")
    }
}

/// Why a text is not a rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate {text:?}: write it as tc does, such as 20mbit (bit, kbit, mbit, gbit)")]
pub struct RateError {
    text: String,
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = || RateError {
            text: text.to_owned(),
        };
        let lower = text.trim().to_ascii_lowercase();
        let (number, scale) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
            .into_iter()
            .find_map(|(unit, scale)| lower.strip_suffix(unit).map(|number| (number, scale)))
            .ok_or_else(fail)?;
        let value: f64 = number.trim().parse().map_err(|_| fail())?;
        Self::from_bits_per_second(value * scale).ok_or_else(fail)
    }
}

/// The four ways of fetching the objects that the lecture compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Way {
    /// A new connection per object, one at a time.
    NonPersistent,
    /// A new connection per object, k at a time.
    Parallel,
    /// One connection, one request at a time.
    Persistent,
    /// One connection, every request sent at once.
    Pipelined,
}

impl Way {
    /// The four, in the order they run and are shown.
    pub const ALL: [Way; 4] = [
        Way::NonPersistent,
        Way::Parallel,
        Way::Persistent,
        Way::Pipelined,
    ];

    /// The name in JSON: `non_persistent`, `parallel`, `persistent`,
    /// `pipelined`.
    pub fn key(self) -> &'static str {
        match self {
            Way::NonPersistent => "non_persistent",
            Way::Parallel => "parallel",
            Way::Persistent => "persistent",
            Way::Pipelined => "pipelined",
        }
    }
}

impl fmt::Display for Way {
    /// The name for people: `non-persistent`, `parallel`, `persistent`,
    /// `pipelined`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Way::NonPersistent => "non-persistent",
            Way::Parallel => "parallel",
            Way::Persistent => "persistent",
            Way::Pipelined => "pipelined",
        })
    }
}

/// The phases of one object, one after the other: their sum is the
/// object's time from its start to its last byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// The name lookup, on the objects that waited for it.
    pub lookup: Duration,
    /// The TCP handshake (and closing the previous connection before it).
    pub connect: Duration,
    /// The TLS handshake, after the TCP one.
    pub tls: Duration,
    /// From sending the request to the first byte of the answer.
    pub first_byte: Duration,
    /// From the first byte of the answer to its last.
    pub rest: Duration,
}

impl Phases {
    /// The names of the phases, in order, as JSON and the SVG's legend
    /// name them.
    pub const NAMES: [&'static str; 5] = ["lookup", "connect", "tls", "first_byte", "rest"];

    /// Returns the phases in the order of [`Phases::NAMES`].
    pub fn each(&self) -> [Duration; 5] {
        [
            self.lookup,
            self.connect,
            self.tls,
            self.first_byte,
            self.rest,
        ]
    }

    /// Returns the sum of the phases.
    pub fn total(&self) -> Duration {
        self.each().into_iter().sum()
    }
}

/// One object's fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectTiming {
    /// Which object, from 0.
    pub index: u32,
    /// Which connection (or UDP socket) of the way carried it, from 0.
    pub connection: u32,
    /// When it started, from the start of the way.
    pub start: Duration,
    /// Its phases, one after the other from `start`.
    pub phases: Phases,
    /// Over UDP, how many times its datagram was sent (1 when none was
    /// lost); 1 over TCP.
    pub attempts: u32,
}

impl ObjectTiming {
    /// Returns when its last byte came, from the start of the way.
    pub fn end(&self) -> Duration {
        self.start + self.phases.total()
    }
}

/// One way's run.
#[derive(Debug, Clone, PartialEq)]
pub struct WayReport {
    /// Which way.
    pub way: Way,
    /// From the start of the way (its name lookup) to the last byte of its
    /// last object.
    pub total: Duration,
    /// Every object, by index.
    pub objects: Vec<ObjectTiming>,
    /// What the lecture predicts for it.
    pub prediction: Prediction,
}

impl WayReport {
    /// Returns the measured total divided by the prediction.
    pub fn ratio(&self) -> f64 {
        let predicted = self.prediction.predicted.as_secs_f64();
        if predicted > 0.0 {
            self.total.as_secs_f64() / predicted
        } else {
            f64::INFINITY
        }
    }

    /// Returns how many datagrams were sent again (0 over TCP).
    pub fn retries(&self) -> u32 {
        self.objects.iter().map(|object| object.attempts - 1).sum()
    }

    /// Builds the report from the objects, the way's total being the last
    /// end.
    fn new(way: Way, mut objects: Vec<ObjectTiming>, prediction: Prediction) -> Self {
        objects.sort_by_key(|object| object.index);
        let total = objects
            .iter()
            .map(ObjectTiming::end)
            .max()
            .unwrap_or_default();
        Self {
            way,
            total,
            objects,
            prediction,
        }
    }
}

/// Where the rate R came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateSource {
    /// Given by the caller (`--rate`).
    Given,
    /// Measured on one object of this many bytes.
    Measured {
        /// The object's size.
        bytes: u64,
    },
}

/// What [`delay`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayReport {
    /// The target as given.
    pub target: Target,
    /// The options it ran with.
    pub options: DelayOptions,
    /// The addresses the name resolved to, in the order tried.
    pub addresses: Vec<SocketAddr>,
    /// The address that answered.
    pub peer: SocketAddr,
    /// The first name lookup's time.
    pub lookup: Duration,
    /// The round-trip time the predictions use: the median of the probes.
    pub rtt: Duration,
    /// Every probe's round trip.
    pub rtt_stats: RttStats,
    /// The rate R the predictions use.
    pub rate: Rate,
    /// Where R came from.
    pub rate_source: RateSource,
    /// The four ways, in [`Way::ALL`]'s order.
    pub ways: Vec<WayReport>,
}

impl DelayReport {
    /// Returns the way with the shortest total.
    pub fn winner(&self) -> &WayReport {
        self.ways
            .iter()
            .min_by_key(|way| way.total)
            .expect("a report has four ways")
    }

    /// Returns the report of `way`.
    pub fn way(&self, way: Way) -> &WayReport {
        self.ways
            .iter()
            .find(|report| report.way == way)
            .expect("a report has every way")
    }
}

/// Measures `target` with the system's resolver: see [`delay_with`].
pub fn delay(target: &Target, options: &DelayOptions) -> Result<DelayReport, ClientError> {
    delay_with(target, &SystemResolver, options)
}

/// Measures the round-trip time and the rate, then fetches the objects in
/// each of the four ways, resolving the name by `resolver` at the start of
/// each (a browser's cache would answer all but the first; here each way
/// pays its own lookup, timed apart).
///
/// The first error ends the run: an object that cannot be fetched makes
/// the comparison meaningless. Over UDP a request too large for one
/// datagram is [`ClientError::DatagramTooLarge`] before anything is sent.
pub fn delay_with(
    target: &Target,
    resolver: &dyn Resolve,
    options: &DelayOptions,
) -> Result<DelayReport, ClientError> {
    if options.transport == Transport::Udp {
        udp::check_size(options.size.get())?;
    }
    let tls = match (&options.tls, options.transport) {
        (Some(tls), Transport::Tcp) if !options.quic => Some(TlsClient::new(tls, target)?),
        _ => None,
    };
    let lookup = Lookup::run(target, resolver)?;
    log::info!(
        "{} resolves to {} in {:.3} ms",
        target.host(),
        lookup
            .addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        ms(lookup.time)
    );
    let run = Run {
        target,
        options,
        tls,
    };
    let quic_client = options.quic.then(|| quic::client(&run)).transpose()?;
    let (peer, rtt_stats, samples) = match (&quic_client, options.transport) {
        (Some(quic), _) => quic::probe_rtt(&run, quic, &lookup.addrs)?,
        (None, Transport::Tcp) => tcp::probe_rtt(&run, &lookup.addrs)?,
        (None, Transport::Udp) => udp::probe_rtt(&run, &lookup.addrs)?,
    };
    log::info!("{peer} answered");
    let rtt = median(samples);
    let (rate, rate_source) = match options.rate {
        Some(rate) => (rate, RateSource::Given),
        None => match (&quic_client, options.transport) {
            (Some(quic), _) => quic::measure_rate(&run, quic, &lookup.addrs, rtt)?,
            (None, Transport::Tcp) => tcp::measure_rate(&run, &lookup.addrs)?,
            (None, Transport::Udp) => udp::measure_rate(&run, &lookup.addrs, rtt)?,
        },
    };
    log::info!("rtt {:.3} ms, rate {rate}", ms(rtt));
    let mut ways = Vec::with_capacity(Way::ALL.len());
    for way in Way::ALL {
        let objects = match (&quic_client, options.transport) {
            (Some(quic), _) => quic::fetch(&run, quic, resolver, way)?,
            (None, Transport::Tcp) => tcp::fetch(&run, resolver, way)?,
            (None, Transport::Udp) => udp::fetch(&run, resolver, way)?,
        };
        // Each way's own lookup is the prediction's DNS term.
        let dns = objects
            .first()
            .map(|object: &ObjectTiming| object.phases.lookup)
            .unwrap_or_default();
        let prediction = predict::predict(
            way,
            &predict::Link {
                transport: options.transport,
                // QUIC's one handshake is TCP's one RTT without TLS's.
                tls: run.tls.is_some(),
                objects: options.objects.get(),
                size: options.size.get() as u64,
                parallel: options.parallel.get() as u64,
                rtt,
                rate,
                dns,
            },
        );
        let report = WayReport::new(way, objects, prediction);
        log::info!(
            "{way}: {:.3} ms, predicted {:.3} ms",
            ms(report.total),
            ms(report.prediction.predicted)
        );
        ways.push(report);
    }
    Ok(DelayReport {
        target: target.clone(),
        options: options.clone(),
        addresses: lookup.addrs,
        peer,
        lookup: lookup.time,
        rtt,
        rtt_stats,
        rate,
        rate_source,
        ways,
    })
}

/// What a run's parts share, the parallel way's threads too (the resolver,
/// which need not be shared between threads, is not part of it: each way
/// resolves on the calling thread).
struct Run<'a> {
    target: &'a Target,
    options: &'a DelayOptions,
    tls: Option<TlsClient>,
}

impl Run<'_> {
    /// A connector for `addrs`, with TLS when the run has it.
    fn connector(&self, addrs: &[SocketAddr]) -> Connector {
        let connector = Connector::new(
            self.target.clone(),
            addrs.to_vec(),
            self.options.connect_timeout,
        );
        match &self.tls {
            Some(tls) => connector.with_tls(tls.clone()),
            None => connector,
        }
    }

    /// The request of object `index`: L bytes of one lowercase letter, a
    /// different letter for each of 26 objects in turn, so that answers
    /// out of place would not look right; its uppercase is as long.
    fn request(&self, index: u32) -> Vec<u8> {
        vec![b'a' + (index % 26) as u8; self.options.size.get()]
    }
}

/// A name lookup and how long it took.
struct Lookup {
    addrs: Vec<SocketAddr>,
    time: Duration,
    done: Instant,
}

impl Lookup {
    fn run(target: &Target, resolver: &dyn Resolve) -> Result<Self, ClientError> {
        let started = Instant::now();
        let addrs = target.resolve_with(resolver)?;
        let done = Instant::now();
        Ok(Self {
            addrs,
            time: done - started,
            done,
        })
    }
}

/// Fetches every object with `fetch`, `parallel` at a time: each of
/// `parallel` threads takes the next object as soon as its previous one is
/// done, as a browser's connection pool does. `fetch` is given the object,
/// when it starts (its thread's previous end, or the way's start) and, for
/// each thread's first object, the lookup it waited for.
///
/// The first error stops the threads from taking more objects and is
/// returned.
fn in_parallel<F>(
    run: &Run<'_>,
    started: Instant,
    lookup: &Lookup,
    fetch: F,
) -> Result<Vec<ObjectTiming>, ClientError>
where
    F: Fn(u32, Instant, Option<&Lookup>) -> Result<ObjectTiming, ClientError> + Sync,
{
    let n = run.options.objects.get();
    let next = AtomicU32::new(0);
    let failed = AtomicBool::new(false);
    let results = Mutex::new((Vec::with_capacity(n as usize), None));
    let threads = run.options.parallel.get().min(n as usize);
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut mark = started;
                let mut looked_up = Some(lookup);
                while !failed.load(Ordering::SeqCst) {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= n {
                        break;
                    }
                    let fetched = fetch(index, mark, looked_up.take());
                    let mut results = results.lock().unwrap_or_else(PoisonError::into_inner);
                    match fetched {
                        Ok(object) => {
                            mark = started + object.end();
                            results.0.push(object);
                        }
                        Err(error) => {
                            failed.store(true, Ordering::SeqCst);
                            results.1.get_or_insert(error);
                        }
                    }
                }
            });
        }
    });
    let (objects, error) = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    match error {
        Some(error) => Err(error),
        None => Ok(objects),
    }
}

/// Returns the median of `samples` (the mean of the middle two when their
/// number is even); zero when there are none.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let middle = samples.len() / 2;
    match samples.len() {
        0 => Duration::ZERO,
        len if len % 2 == 1 => samples[middle],
        _ => (samples[middle - 1] + samples[middle]) / 2,
    }
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_as_tc_writes_them() {
        let bps = |text: &str| text.parse::<Rate>().map(Rate::bits_per_second);
        assert_eq!(bps("20mbit"), Ok(20e6));
        assert_eq!(bps("20Mbit"), Ok(20e6));
        assert_eq!(bps("1.5gbit"), Ok(1.5e9));
        assert_eq!(bps("500kbit"), Ok(500e3));
        assert_eq!(bps("9600bit"), Ok(9600.0));
        for bad in [
            "20", "20mb", "mbit", "0mbit", "-1mbit", "fastmbit", "infmbit",
        ] {
            let error = bad.parse::<Rate>().unwrap_err().to_string();
            assert!(error.contains("such as 20mbit"), "{bad}: {error}");
        }
        let rate: Rate = "20mbit".parse().unwrap();
        assert_eq!(rate.to_string(), "20 Mbit/s");
        assert_eq!("1.5gbit".parse::<Rate>().unwrap().to_string(), "1.5 Gbit/s");
        assert_eq!("300bit".parse::<Rate>().unwrap().to_string(), "300 bit/s");
        // 10 KB at 20 Mbit/s: 80,000 bits, 4 ms.
        assert_eq!(rate.transmission(10_000), Duration::from_millis(4));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median(vec![ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(
            median(vec![ms(4), ms(1), ms(2), ms(3)]),
            Duration::from_micros(2500)
        );
        assert_eq!(median(Vec::new()), Duration::ZERO);
    }
}
