//! The four ways over UDP: no handshake, one datagram each way per object,
//! a lost one sent again after the timeout, as `shout udp` does.
//!
//! Non-persistent opens a new socket per object, which costs no round trip
//! (there is nothing to set up with the server); persistent uses one
//! socket; parallel runs k sockets at a time; pipelined sends every
//! request from one socket at once and matches the answers by content.

use super::{Lookup, ObjectTiming, Phases, Rate, RateSource, Run, Way};
use crate::{ClientError, Resolve, RttStats, Transport, UdpClient};
use shout_protocol::MAX_DATAGRAM_PAYLOAD;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The bytes of each round-trip probe.
const PROBE_SIZE: usize = 16;

/// The largest receive buffer the pipelined way asks for: 16 MiB.
const MAX_RECV_BUFFER: usize = 16 << 20;

/// How many exchanges of the largest datagram measure the rate; the
/// fastest counts.
const RATE_EXCHANGES: u32 = 3;

/// Refuses objects that do not fit one datagram: the server would not
/// answer them.
pub(super) fn check_size(size: usize) -> Result<(), ClientError> {
    if size > MAX_DATAGRAM_PAYLOAD {
        return Err(ClientError::DatagramTooLarge {
            request_len: size,
            reply_len: size,
        });
    }
    Ok(())
}

/// Returns the address that answered, the probes' statistics and each
/// probe's round trip.
pub(super) fn probe_rtt(
    run: &Run<'_>,
    addrs: &[SocketAddr],
) -> Result<(SocketAddr, RttStats, Vec<Duration>), ClientError> {
    let mut client = client(run, addrs)?;
    let mut stats = RttStats::default();
    let mut samples = Vec::new();
    let wanted = run.options.probes.get() as usize;
    // A probe sent again timed the timeout, not the path, so it is no
    // sample. On a lossy link probes go on until enough came back at the
    // first try, up to ten times as many; with none, the RTT is unknown
    // and the predictions would mean nothing.
    for probe in 0..wanted * 10 {
        if samples.len() == wanted {
            break;
        }
        let started = Instant::now();
        client.shout(&[b'a' + (probe % 26) as u8; PROBE_SIZE])?;
        if client.sends() == 1 {
            samples.push(started.elapsed());
            stats.add(started.elapsed());
        }
    }
    if samples.is_empty() {
        return Err(ClientError::Network {
            action: "measuring the round trip to",
            transport: Transport::Udp,
            addr: client.peer(),
            source: io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no probe of {} was answered at its first try", wanted * 10),
            ),
        });
    }
    Ok((client.peer(), stats, samples))
}

/// Measures the rate on the largest datagram: it is answered only once all
/// of it came, so the fastest of a few exchanges takes RTT + 2B/R.
pub(super) fn measure_rate(
    run: &Run<'_>,
    addrs: &[SocketAddr],
    rtt: Duration,
) -> Result<(Rate, RateSource), ClientError> {
    let bytes = run.options.rate_sample.clamp(1, MAX_DATAGRAM_PAYLOAD);
    let mut client = client(run, addrs)?;
    let request = vec![b'r'; bytes];
    let mut fastest = Duration::MAX;
    for _ in 0..RATE_EXCHANGES {
        let started = Instant::now();
        client.shout(&request)?;
        if client.sends() == 1 {
            fastest = fastest.min(started.elapsed());
        }
    }
    if fastest == Duration::MAX {
        return Err(ClientError::NoReply {
            addr: client.peer(),
            attempts: RATE_EXCHANGES,
            timeout: run.options.timeout,
        });
    }
    // On loopback the round trip is noise beside the exchange: then the
    // whole exchange counts as transfer.
    let transfer = match fastest.saturating_sub(rtt) {
        Duration::ZERO => fastest,
        transfer => transfer,
    };
    let rate = Rate::from_bits_per_second(2.0 * bytes as f64 * 8.0 / transfer.as_secs_f64())
        .expect("a positive size over a positive time");
    log::info!(
        "rate {rate}: a {bytes}-byte datagram and its answer in {:.3} ms",
        fastest.as_secs_f64() * 1e3
    );
    Ok((
        rate,
        RateSource::Measured {
            bytes: bytes as u64,
        },
    ))
}

/// Fetches the run's objects the way `way` does, and times them.
pub(super) fn fetch(
    run: &Run<'_>,
    resolver: &dyn Resolve,
    way: Way,
) -> Result<Vec<ObjectTiming>, ClientError> {
    let n = run.options.objects.get();
    let started = Instant::now();
    let lookup = Lookup::run(run.target, resolver)?;
    match way {
        Way::NonPersistent => {
            let mut objects = Vec::with_capacity(n as usize);
            let mut mark = started;
            for index in 0..n {
                let looked_up = (index == 0).then_some(&lookup);
                let object = one_socket(run, &lookup.addrs, &[index], started, mark, looked_up)?;
                mark = started + object[0].end();
                objects.extend(object);
            }
            Ok(objects)
        }
        Way::Parallel => super::in_parallel(run, started, &lookup, |index, mark, looked_up| {
            Ok(one_socket(run, &lookup.addrs, &[index], started, mark, looked_up)?[0])
        }),
        Way::Persistent => {
            let all: Vec<u32> = (0..n).collect();
            one_socket(run, &lookup.addrs, &all, started, started, Some(&lookup))
        }
        Way::Pipelined => pipelined(run, &lookup, started),
    }
}

/// A client for `addrs` (already resolved) with the run's timeout and
/// retries.
fn client(run: &Run<'_>, addrs: &[SocketAddr]) -> Result<UdpClient, ClientError> {
    let resolved = |_: &str, _: u16| Ok(addrs.to_vec());
    UdpClient::resolve_with(
        run.target,
        &resolved,
        run.options.timeout,
        run.options.retries,
    )
}

/// Opens a socket at `mark` and exchanges `objects` over it one at a time,
/// each object's phases following the previous one's.
fn one_socket(
    run: &Run<'_>,
    addrs: &[SocketAddr],
    objects: &[u32],
    started: Instant,
    mark: Instant,
    lookup: Option<&Lookup>,
) -> Result<Vec<ObjectTiming>, ClientError> {
    let looked_up = lookup.map_or(mark, |lookup| lookup.done.max(mark));
    let mut client = client(run, addrs)?;
    let ready = Instant::now();
    let mut timings = Vec::with_capacity(objects.len());
    let mut from = ready;
    for (position, &index) in objects.iter().enumerate() {
        client.shout(&run.request(index))?;
        let answered = Instant::now();
        let mut phases = Phases {
            first_byte: answered - from,
            ..Phases::default()
        };
        let start = if position == 0 {
            phases.lookup = looked_up - mark;
            phases.connect = ready - looked_up;
            mark
        } else {
            from
        };
        timings.push(ObjectTiming {
            index,
            connection: if objects.len() == 1 { index } else { 0 },
            start: start - started,
            phases,
            attempts: client.sends(),
        });
        from = answered;
    }
    Ok(timings)
}

/// Sends every request at once from one socket, then takes the answers in
/// whatever order they come, matching each to the first unanswered request
/// it is the uppercase of. After each timeout the unanswered are sent
/// again, up to the run's retries.
fn pipelined(
    run: &Run<'_>,
    lookup: &Lookup,
    started: Instant,
) -> Result<Vec<ObjectTiming>, ClientError> {
    let n = run.options.objects.get();
    // Room for every answer at once, as far as the system allows: the
    // answers come in a burst, and a short buffer would lose them here.
    let room = (n as usize)
        .saturating_mul(run.options.size.get() + 512)
        .min(MAX_RECV_BUFFER);
    let (socket, peer) = open(&lookup.addrs, room)?;
    let ready = Instant::now();
    let network = |action, source| ClientError::Network {
        action,
        transport: Transport::Udp,
        addr: peer,
        source,
    };
    let requests: Vec<Vec<u8>> = (0..n).map(|index| run.request(index)).collect();
    let expected: Vec<Vec<u8>> = requests.iter().map(|r| r.to_ascii_uppercase()).collect();
    let mut sent: Vec<Option<Instant>> = vec![None; n as usize];
    let mut answered: Vec<Option<Instant>> = vec![None; n as usize];
    let mut sends = vec![0u32; n as usize];
    let mut buf = vec![0; MAX_DATAGRAM_PAYLOAD + 1];
    let attempts = run.options.retries.saturating_add(1);
    for _ in 0..attempts {
        for (index, request) in requests.iter().enumerate() {
            if answered[index].is_none() {
                sent[index].get_or_insert_with(Instant::now);
                sends[index] += 1;
                socket
                    .send(request)
                    .map_err(|error| refused_or(error, peer, "sending to"))?;
            }
        }
        let deadline = Instant::now() + run.options.timeout;
        while answered.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket
                .set_read_timeout(Some(left))
                .map_err(|error| network("setting a timeout for", error))?;
            let len = match socket.recv(&mut buf) {
                Ok(len) => len,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(error) => return Err(refused_or(error, peer, "receiving from")),
            };
            let now = Instant::now();
            let matched = (0..n as usize)
                .find(|&index| answered[index].is_none() && expected[index] == buf[..len]);
            match matched {
                Some(index) => answered[index] = Some(now),
                None => log::debug!(
                    "dropped a datagram of {len} bytes from udp {peer}: a late or unknown answer"
                ),
            }
        }
        if answered.iter().all(Option::is_some) {
            break;
        }
        log::info!(
            "udp {peer}: {} of {n} answers missing; sending those again",
            answered.iter().filter(|answer| answer.is_none()).count()
        );
    }
    let mut timings = Vec::with_capacity(n as usize);
    for index in 0..n as usize {
        let (Some(sent), Some(answered)) = (sent[index], answered[index]) else {
            return Err(ClientError::NoReply {
                addr: peer,
                attempts,
                timeout: run.options.timeout,
            });
        };
        let phases = if index == 0 {
            Phases {
                lookup: lookup.done - started,
                connect: ready - lookup.done,
                first_byte: answered.saturating_duration_since(ready),
                ..Phases::default()
            }
        } else {
            Phases {
                first_byte: answered.saturating_duration_since(sent),
                ..Phases::default()
            }
        };
        timings.push(ObjectTiming {
            index: index as u32,
            connection: 0,
            start: if index == 0 {
                Duration::ZERO
            } else {
                sent - started
            },
            phases,
            attempts: sends[index],
        });
    }
    Ok(timings)
}

/// Opens a socket connected to the first of `addrs` that can have one,
/// asking for a receive buffer of `room` bytes.
fn open(addrs: &[SocketAddr], room: usize) -> Result<(UdpSocket, SocketAddr), ClientError> {
    let mut last_error = None;
    for &addr in addrs {
        let opened = crate::udp::connected_socket(addr, Some(room));
        match opened {
            Ok(socket) => return Ok((socket, addr)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.expect("a lookup gives at least one address"))
}

/// An ICMP port-unreachable is a refusal; anything else a network error.
fn refused_or(error: io::Error, peer: SocketAddr, action: &'static str) -> ClientError {
    if error.kind() == io::ErrorKind::ConnectionRefused {
        ClientError::UdpRefused { addr: peer }
    } else {
        ClientError::Network {
            action,
            transport: Transport::Udp,
            addr: peer,
            source: error,
        }
    }
}
