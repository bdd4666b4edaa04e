//! The report for people (a table, the formulas, the winner) and for
//! machines (JSON, its fields documented in docs/DELAY.md).

use super::{DelayReport, ObjectTiming, Phases, RateSource, Way, WayReport};
use crate::Transport;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

impl fmt::Display for DelayReport {
    /// The table `shout delay` prints: what ran, the RTT and rate, one row
    /// per way (its total, the prediction, their ratio and its mean phases
    /// per object), the formulas with the values put in, and the winner.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.options;
        writeln!(
            f,
            "SHOUT DELAY {} over {}: {} objects of {} bytes, {} in parallel",
            self.target,
            self.over(),
            options.objects,
            options.size,
            options.parallel
        )?;
        writeln!(
            f,
            "lookup {} in {:.3} ms: {}; {} answered",
            self.target.host(),
            ms(self.lookup),
            self.addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            self.peer
        )?;
        writeln!(
            f,
            "rtt {:.3} ms (median of {} probes; {})",
            ms(self.rtt),
            self.rtt_stats.count(),
            self.rtt_stats
        )?;
        match self.rate_source {
            RateSource::Given => writeln!(f, "rate {} (given)", self.rate)?,
            RateSource::Measured { bytes } => writeln!(
                f,
                "rate {} (measured on one object of {bytes} bytes)",
                self.rate
            )?,
        }
        let udp = options.transport == Transport::Udp;
        writeln!(f)?;
        write!(
            f,
            "{:<15} {:>10} {:>10} {:>8}   mean per object, ms: {:>8} {:>8} {:>8} {:>10} {:>8}",
            "way", "total ms", "predicted", "ratio", "lookup", "connect", "tls", "1st byte", "rest"
        )?;
        if udp {
            write!(f, " {:>7}", "resent")?;
        }
        writeln!(f)?;
        for way in &self.ways {
            let mean = mean_phases(&way.objects);
            write!(
                f,
                "{:<15} {:>10.3} {:>10.3} {:>8.2}   {:>20} {:>8.3} {:>8.3} {:>8.3} {:>10.3} {:>8.3}",
                way.way.to_string(),
                ms(way.total),
                ms(way.prediction.predicted),
                way.ratio(),
                "",
                ms(mean.lookup),
                ms(mean.connect),
                ms(mean.tls),
                ms(mean.first_byte),
                ms(mean.rest)
            )?;
            if udp {
                write!(f, " {:>7}", way.retries())?;
            }
            writeln!(f)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "predictions (RTT {:.3} ms, R {}, L/R {:.3} ms, N {}, k {}; ms):",
            ms(self.rtt),
            self.rate,
            ms(self.rate.transmission(options.size.get() as u64)),
            options.objects,
            options.parallel
        )?;
        for way in &self.ways {
            writeln!(
                f,
                "  {:<15} {} = {}",
                way.way.to_string(),
                way.prediction.formula,
                way.prediction.worked
            )?;
        }
        writeln!(f)?;
        writeln!(f, "{}", self.verdict())
    }
}

impl DelayReport {
    /// Returns one line saying which way won and by how much: against the
    /// next best, and against the slowest.
    pub fn verdict(&self) -> String {
        let mut ways: Vec<&WayReport> = self.ways.iter().collect();
        ways.sort_by_key(|way| way.total);
        let (Some(winner), Some(slowest)) = (ways.first(), ways.last()) else {
            return String::new();
        };
        let times = |other: &WayReport| {
            other.total.as_secs_f64() / winner.total.as_secs_f64().max(f64::MIN_POSITIVE)
        };
        let mut line = format!("{} won in {:.3} ms", winner.way, ms(winner.total));
        if let Some(next) = ways.get(1) {
            line += &format!(": {:.1}× faster than {}", times(next), next.way);
            if ways.len() > 2 {
                line += &format!(
                    " (the next), {:.1}× faster than {} (the slowest)",
                    times(slowest),
                    slowest.way
                );
            }
        }
        line
    }

    /// Returns the report as one JSON object: docs/DELAY.md lists its
    /// fields. Times are in milliseconds, to the microsecond.
    pub fn to_json(&self) -> String {
        let options = &self.options;
        let json = Json {
            target: self.target.to_string(),
            transport: self.over(),
            objects: options.objects.get(),
            size: options.size.get(),
            parallel_connections: options.parallel.get(),
            addresses: self.addresses.iter().map(ToString::to_string).collect(),
            peer: self.peer.to_string(),
            lookup_ms: round_ms(self.lookup),
            rtt_ms: round_ms(self.rtt),
            rtt_probes: RttJson {
                count: self.rtt_stats.count(),
                min_ms: round(self.rtt_stats.min_ms()),
                avg_ms: round(self.rtt_stats.avg_ms()),
                max_ms: round(self.rtt_stats.max_ms()),
                mdev_ms: round(self.rtt_stats.mdev_ms()),
            },
            rate_bps: self.rate.bits_per_second().round(),
            rate_source: match self.rate_source {
                RateSource::Given => "given",
                RateSource::Measured { .. } => "measured",
            },
            rate_sample_bytes: match self.rate_source {
                RateSource::Given => None,
                RateSource::Measured { bytes } => Some(bytes),
            },
            winner: self.winner().way.key(),
            non_persistent: WayJson::new(self.way(Way::NonPersistent)),
            parallel: WayJson::new(self.way(Way::Parallel)),
            persistent: WayJson::new(self.way(Way::Persistent)),
            pipelined: WayJson::new(self.way(Way::Pipelined)),
        };
        serde_json::to_string(&json).expect("a report has only string keys and serialises")
    }

    /// Returns `tcp`, `tls`, `quic` or `udp`: the transport measured.
    pub(super) fn over(&self) -> &'static str {
        match (self.options.transport, self.options.tls.is_some()) {
            (Transport::Udp, _) => "udp",
            (Transport::Tcp, _) if self.options.quic => "quic",
            (Transport::Tcp, true) => "tls",
            (Transport::Tcp, false) => "tcp",
        }
    }
}

#[derive(Serialize)]
struct Json {
    target: String,
    transport: &'static str,
    objects: u32,
    size: usize,
    parallel_connections: usize,
    addresses: Vec<String>,
    peer: String,
    lookup_ms: f64,
    rtt_ms: f64,
    rtt_probes: RttJson,
    rate_bps: f64,
    rate_source: &'static str,
    rate_sample_bytes: Option<u64>,
    winner: &'static str,
    non_persistent: WayJson,
    parallel: WayJson,
    persistent: WayJson,
    pipelined: WayJson,
}

#[derive(Serialize)]
struct RttJson {
    count: u32,
    min_ms: f64,
    avg_ms: f64,
    max_ms: f64,
    mdev_ms: f64,
}

#[derive(Serialize)]
struct WayJson {
    total_ms: f64,
    predicted_ms: f64,
    ratio: f64,
    formula: String,
    worked: String,
    resent: u32,
    objects: Vec<ObjectJson>,
}

impl WayJson {
    fn new(way: &WayReport) -> Self {
        Self {
            total_ms: round_ms(way.total),
            predicted_ms: round_ms(way.prediction.predicted),
            ratio: (way.ratio() * 1e4).round() / 1e4,
            formula: way.prediction.formula.clone(),
            worked: way.prediction.worked.clone(),
            resent: way.retries(),
            objects: way.objects.iter().map(ObjectJson::new).collect(),
        }
    }
}

#[derive(Serialize)]
struct ObjectJson {
    index: u32,
    connection: u32,
    start_ms: f64,
    end_ms: f64,
    lookup_ms: f64,
    connect_ms: f64,
    tls_ms: f64,
    first_byte_ms: f64,
    rest_ms: f64,
    attempts: u32,
}

impl ObjectJson {
    fn new(object: &ObjectTiming) -> Self {
        let phases = &object.phases;
        Self {
            index: object.index,
            connection: object.connection,
            start_ms: round_ms(object.start),
            end_ms: round_ms(object.end()),
            lookup_ms: round_ms(phases.lookup),
            connect_ms: round_ms(phases.connect),
            tls_ms: round_ms(phases.tls),
            first_byte_ms: round_ms(phases.first_byte),
            rest_ms: round_ms(phases.rest),
            attempts: object.attempts,
        }
    }
}

/// Returns each phase's mean over `objects`.
fn mean_phases(objects: &[ObjectTiming]) -> Phases {
    let count = u32::try_from(objects.len().max(1)).unwrap_or(u32::MAX);
    let sum = |phase: fn(&Phases) -> Duration| {
        objects
            .iter()
            .map(|object| phase(&object.phases))
            .sum::<Duration>()
            / count
    };
    Phases {
        lookup: sum(|phases| phases.lookup),
        connect: sum(|phases| phases.connect),
        tls: sum(|phases| phases.tls),
        first_byte: sum(|phases| phases.first_byte),
        rest: sum(|phases| phases.rest),
    }
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1e3
}

/// Milliseconds to the microsecond.
fn round_ms(time: Duration) -> f64 {
    round(ms(time))
}

fn round(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}
