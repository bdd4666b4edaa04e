//! The four ways over QUIC: a connection per object (its one handshake,
//! QUIC's and TLS's together, timed as `connect`), or one connection
//! whose objects each take a stream of their own, one at a time
//! (persistent) or all at once (pipelined: QUIC's streams, no head-of-line
//! blocking between them). Also the round-trip probes and the rate.

use super::{Lookup, ObjectTiming, Phases, Rate, RateSource, Run, Way};
use crate::quic::Exchanged;
use crate::{ClientError, QuicClient, QuicConnection, Resolve, RttStats, TlsClient};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The bytes of each round-trip probe.
const PROBE_SIZE: usize = 16;

/// Returns the QUIC configuration of the run: its trust, or the system's.
pub(super) fn client(run: &Run<'_>) -> Result<QuicClient, ClientError> {
    let tls = run.options.tls.clone().unwrap_or_default();
    QuicClient::new(&TlsClient::new(&tls, run.target)?)
}

/// Returns the address that answered, the probes' statistics and each
/// probe's round trip: a stream each, one at a time, on one connection.
pub(super) fn probe_rtt(
    run: &Run<'_>,
    quic: &QuicClient,
    addrs: &[SocketAddr],
) -> Result<(SocketAddr, RttStats, Vec<Duration>), ClientError> {
    let mut connection = quic.connect(addrs, run.options.connect_timeout)?;
    let peer = connection.peer();
    let probes: Vec<Vec<u8>> = (0..run.options.probes.get())
        .map(|index| request(index, PROBE_SIZE))
        .collect();
    let timed = connection.exchanges(&probes, false, run.options.timeout)?;
    connection.close();
    let mut stats = RttStats::default();
    let samples: Vec<Duration> = (timed.iter())
        .map(|exchange| exchange.last.saturating_duration_since(exchange.sent))
        .collect();
    for &sample in &samples {
        stats.add(sample);
    }
    Ok((peer, stats, samples))
}

/// Measures the rate on two objects of half `rate_sample` bytes each, one
/// after the other on one connection: the second, once QUIC's congestion
/// window has opened, takes one RTT and its transfer, each direction
/// carrying it once.
pub(super) fn measure_rate(
    run: &Run<'_>,
    quic: &QuicClient,
    addrs: &[SocketAddr],
    rtt: Duration,
) -> Result<(Rate, RateSource), ClientError> {
    let half = (run.options.rate_sample / 2).max(1);
    let mut connection = quic.connect(addrs, run.options.connect_timeout)?;
    let halves = [request(0, half), request(1, half)];
    let timed = connection.exchanges(&halves, false, run.options.timeout)?;
    connection.close();
    let second = timed[1].last.saturating_duration_since(timed[1].sent);
    // On loopback the round trip is noise beside the transfer.
    let transfer = match second.saturating_sub(rtt) {
        Duration::ZERO => second,
        transfer => transfer,
    };
    let rate = Rate::from_bits_per_second(half as f64 * 8.0 / transfer.as_secs_f64().max(1e-9))
        .expect("a positive size over a positive time");
    Ok((
        rate,
        RateSource::Measured {
            bytes: 2 * half as u64,
        },
    ))
}

/// Fetches the run's objects the way `way` does over QUIC, and times them.
pub(super) fn fetch(
    run: &Run<'_>,
    quic: &QuicClient,
    resolver: &dyn Resolve,
    way: Way,
) -> Result<Vec<ObjectTiming>, ClientError> {
    let n = run.options.objects.get();
    let started = Instant::now();
    let lookup = Lookup::run(run.target, resolver)?;
    let fetch = Fetch {
        run,
        quic,
        addrs: &lookup.addrs,
        started,
    };
    match way {
        Way::NonPersistent => {
            let mut objects = Vec::with_capacity(n as usize);
            let mut mark = started;
            for index in 0..n {
                let looked_up = (index == 0).then_some(&lookup);
                let timed = fetch.connection(&[index], index, false, mark, looked_up)?;
                mark = started + timed[0].end();
                objects.extend(timed);
            }
            Ok(objects)
        }
        Way::Parallel => super::in_parallel(run, started, &lookup, |index, mark, looked_up| {
            let timed = fetch.connection(&[index], index, false, mark, looked_up)?;
            Ok(timed[0])
        }),
        Way::Persistent | Way::Pipelined => {
            let all: Vec<u32> = (0..n).collect();
            let at_once = way == Way::Pipelined;
            fetch.connection(&all, 0, at_once, started, Some(&lookup))
        }
    }
}

/// One way's fetching.
struct Fetch<'a> {
    run: &'a Run<'a>,
    quic: &'a QuicClient,
    addrs: &'a [SocketAddr],
    started: Instant,
}

impl Fetch<'_> {
    /// Opens a connection at `mark` (after `lookup`, when the objects
    /// waited for it), fetches `objects` over it, a stream each, and
    /// times each, its phases following one another from `mark`.
    fn connection(
        &self,
        objects: &[u32],
        connection: u32,
        at_once: bool,
        mark: Instant,
        lookup: Option<&Lookup>,
    ) -> Result<Vec<ObjectTiming>, ClientError> {
        let looked_up = lookup.map_or(mark, |lookup| lookup.done.max(mark));
        let mut opened: QuicConnection = self
            .quic
            .connect(self.addrs, self.run.options.connect_timeout)?;
        let ready = Instant::now();
        let size = self.run.options.size.get();
        let requests: Vec<Vec<u8>> = objects.iter().map(|&index| request(index, size)).collect();
        let timed = opened.exchanges(&requests, at_once, self.run.options.timeout);
        opened.close();
        let timed = timed?;
        let mut timings = Vec::with_capacity(objects.len());
        let mut previous_end = ready;
        for (position, (&index, times)) in objects.iter().zip(&timed).enumerate() {
            let (start, from) = match (position, at_once) {
                (0, _) => (mark, ready),
                (_, false) => (previous_end, previous_end),
                (_, true) => (times.sent, times.sent),
            };
            let phases = phases(
                times,
                from,
                (position == 0).then_some((mark, looked_up, ready)),
            );
            timings.push(ObjectTiming {
                index,
                connection,
                start: start.saturating_duration_since(self.started),
                phases,
                attempts: 1,
            });
            previous_end = times.last.max(previous_end);
        }
        Ok(timings)
    }
}

/// An object's phases: its wait for the first byte from `from`, the rest
/// of its answer; for a connection's first object also the lookup and the
/// handshake (`opening`: the mark, the lookup's end, the connection ready).
fn phases(
    times: &Exchanged,
    from: Instant,
    opening: Option<(Instant, Instant, Instant)>,
) -> Phases {
    let answer = Phases {
        first_byte: times.first.saturating_duration_since(from),
        rest: times.last.saturating_duration_since(times.first),
        ..Phases::default()
    };
    match opening {
        Some((mark, looked_up, ready)) => Phases {
            lookup: looked_up - mark,
            connect: ready - looked_up,
            ..answer
        },
        None => answer,
    }
}

/// The request of object `index`: `size` bytes of one lowercase letter,
/// as over TCP.
fn request(index: u32, size: usize) -> Vec<u8> {
    vec![b'a' + (index % 26) as u8; size]
}
