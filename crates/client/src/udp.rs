//! UDP: one datagram per request, with a timeout, retries, and recognition
//! of replies that arrive too late.
//!
//! The protocol has no request ids, and the client needs none to tell a late
//! reply from the current one: it knows the reply each request calls for,
//! the uppercase of what it sent. While it waits, a datagram from the server
//! is the reply unless it equals the expected answer of an *earlier* request
//! of this client, in which case it is a late reply and is dropped. A reply
//! that differs from the expected uppercase (a server that pads its answer,
//! or answers something else) is still the reply: the client's job is to
//! show the server's answer, and it says at info level that it differs.
//!
//! The earlier answers kept are bounded ([`LATE_REPLY_WINDOW`] of them, at
//! most [`LATE_REPLY_WINDOW_BYTES`] in all), so a long run holds constant
//! memory; a reply later than that window is taken for the current one.
//! Two equal requests have equal replies, so confusing them is harmless.

use crate::lines::{LineOutcome, run_lines};
use crate::{ClientError, LinesReport, Resolve, SystemResolver, Target, Transport};
use shout_protocol::{DatagramError, MAX_DATAGRAM_PAYLOAD, uppercase_datagram, uppercased_len};
use shout_socket::UdpSocketBuilder;
use std::collections::VecDeque;
use std::io::{self, BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Room for any datagram: 64 KiB holds the largest UDP payload over IPv4 and
/// IPv6 alike (65,527 bytes), so a reply is printed whole, as it came.
const RECV_BUFFER: usize = 64 * 1024;

/// How many earlier requests' expected answers are kept to recognise late
/// replies. A late reply comes from a request that timed out, and a run
/// rarely has many of those in a row.
pub const LATE_REPLY_WINDOW: usize = 64;

/// The most bytes the kept earlier answers may hold in all: 1 MiB, sixteen
/// of the largest datagrams.
pub const LATE_REPLY_WINDOW_BYTES: usize = 1 << 20;

/// A UDP client that sends one request at a time and waits for its reply.
///
/// The socket is connected to the server's address, so the kernel delivers
/// only that address's datagrams, and an ICMP port-unreachable comes back as
/// a refusal. When the server's host refuses, the next resolved address is
/// tried (a name such as `localhost` may resolve to `::1` before
/// `127.0.0.1`, and a server may listen on only one of them).
#[derive(Debug)]
pub struct UdpClient {
    target: Target,
    addrs: Vec<SocketAddr>,
    current: usize,
    socket: UdpSocket,
    timeout: Duration,
    retries: u32,
    expected: Vec<u8>,
    earlier: EarlierAnswers,
    buf: Vec<u8>,
    sends: u32,
}

/// The expected answers of the latest earlier requests, oldest first,
/// bounded in count and bytes.
#[derive(Debug, Default)]
struct EarlierAnswers {
    answers: VecDeque<Vec<u8>>,
    bytes: usize,
}

impl EarlierAnswers {
    /// Keeps `answer`, forgetting the oldest ones beyond the bounds.
    fn remember(&mut self, answer: &[u8]) {
        if self.answers.back().is_some_and(|last| last[..] == *answer) {
            return;
        }
        self.answers.push_back(answer.to_vec());
        self.bytes += answer.len();
        while self.answers.len() > LATE_REPLY_WINDOW || self.bytes > LATE_REPLY_WINDOW_BYTES {
            let Some(oldest) = self.answers.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
        }
    }

    /// Whether `datagram` is the expected answer of a kept earlier request.
    fn contains(&self, datagram: &[u8]) -> bool {
        self.answers.iter().any(|answer| answer[..] == *datagram)
    }
}

/// How one datagram's wait ended.
enum Wait {
    Reply(usize),
    TimedOut,
}

impl UdpClient {
    /// Resolves `target` by the system's resolver and opens a socket
    /// connected to its first usable address. Each request is sent up to
    /// `1 + retries` times, waiting `timeout` for the reply after each.
    ///
    /// A zero `timeout` is raised to one millisecond.
    pub fn new(target: &Target, timeout: Duration, retries: u32) -> Result<Self, ClientError> {
        Self::resolve_with(target, &SystemResolver, timeout, retries)
    }

    /// Resolves `target` by `resolver`, then as [`UdpClient::new`].
    pub fn resolve_with(
        target: &Target,
        resolver: &dyn Resolve,
        timeout: Duration,
        retries: u32,
    ) -> Result<Self, ClientError> {
        let addrs = target.resolve_with(resolver)?;
        let (current, socket) = open_from(&addrs, 0)?;
        Ok(Self {
            target: target.clone(),
            addrs,
            current,
            socket,
            timeout: timeout.max(Duration::from_millis(1)),
            retries,
            expected: Vec::new(),
            earlier: EarlierAnswers::default(),
            buf: vec![0; RECV_BUFFER],
            sends: 0,
        })
    }

    /// The target as given.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The server address in use.
    pub fn peer(&self) -> SocketAddr {
        self.addrs[self.current]
    }

    /// Returns how many times the last request was sent: 1 when its first
    /// datagram was answered, more when some were lost (on every address
    /// tried).
    pub fn sends(&self) -> u32 {
        self.sends
    }

    /// Sends `request` as one datagram and returns the reply: the first
    /// datagram from the server that is not the expected answer of an earlier
    /// request (a late reply, dropped and logged at debug level). Resends
    /// after each timeout, `retries` times.
    ///
    /// The reply is returned as it came, also when it differs from the
    /// request's uppercase; that is logged at info level.
    ///
    /// A request whose uppercase (or itself) exceeds
    /// [`MAX_DATAGRAM_PAYLOAD`] is refused before sending with
    /// [`ClientError::DatagramTooLarge`]: the server would not answer it.
    pub fn shout(&mut self, request: &[u8]) -> Result<&[u8], ClientError> {
        let sent = self.exchange(request);
        if !matches!(sent, Err(ClientError::DatagramTooLarge { .. })) {
            // Sent: its reply may still come, during a later request.
            self.earlier.remember(&self.expected);
        }
        let len = sent?;
        let reply = &self.buf[..len];
        if reply != self.expected {
            log::info!(
                "the reply from udp {} differs from the uppercase of the request: {len} bytes, {} expected",
                self.peer(),
                self.expected.len()
            );
        }
        Ok(reply)
    }

    /// Sends `request` until a reply comes, and returns the reply's length
    /// in the receive buffer.
    fn exchange(&mut self, request: &[u8]) -> Result<usize, ClientError> {
        if let Err(error) = uppercase_datagram(request, &mut self.expected) {
            let reply_len = match error {
                DatagramError::ReplyTooLarge { len } => len,
                DatagramError::RequestTooLarge { .. } => uppercased_len(request),
            };
            return Err(ClientError::DatagramTooLarge {
                request_len: request.len(),
                reply_len,
            });
        }
        let attempts = self.retries.saturating_add(1);
        let mut attempt = 1;
        self.sends = 0;
        while attempt <= attempts {
            self.sends += 1;
            match self.attempt(request) {
                Ok(Wait::Reply(len)) => return Ok(len),
                Ok(Wait::TimedOut) => {
                    if attempt < attempts {
                        log::info!(
                            "no reply from udp {} within {}s; sending again ({} of {attempts})",
                            self.peer(),
                            self.timeout.as_secs_f64(),
                            attempt + 1
                        );
                    }
                    attempt += 1;
                }
                Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                    let refused = self.peer();
                    log::info!("udp {refused} refused the datagram");
                    let Some((current, socket)) = (self.current + 1 < self.addrs.len())
                        .then(|| open_from(&self.addrs, self.current + 1).ok())
                        .flatten()
                    else {
                        return Err(ClientError::UdpRefused { addr: refused });
                    };
                    self.current = current;
                    self.socket = socket;
                    attempt = 1;
                }
                Err(error) => {
                    return Err(ClientError::Network {
                        action: "exchanging datagrams with",
                        transport: Transport::Udp,
                        addr: self.peer(),
                        source: error,
                    });
                }
            }
        }
        Err(ClientError::NoReply {
            addr: self.peer(),
            attempts,
            timeout: self.timeout,
        })
    }

    /// For each line of `input` (without its terminator), sends it as one
    /// datagram and writes the reply and a newline to `output`. With
    /// `prompt`, writes `> ` there before each line.
    ///
    /// A line too long for a datagram, or whose reply would be, is skipped
    /// with a warning and the run goes on; [`LinesReport::skipped`] counts
    /// them. Any other error stops the run.
    pub fn run<R, W>(
        &mut self,
        input: R,
        output: &mut W,
        prompt: Option<&mut dyn Write>,
    ) -> Result<LinesReport, ClientError>
    where
        R: BufRead,
        W: Write + ?Sized,
    {
        run_lines(
            input,
            MAX_DATAGRAM_PAYLOAD,
            output,
            prompt,
            |number, line, output| match self.shout(line) {
                Ok(reply) => {
                    output
                        .write_all(reply)
                        .and_then(|()| output.write_all(b"\n"))
                        .map_err(ClientError::Output)?;
                    Ok(LineOutcome::Answered)
                }
                Err(error @ ClientError::DatagramTooLarge { .. }) => {
                    log::warn!("line {number} {error}");
                    Ok(LineOutcome::Skipped)
                }
                Err(error) => Err(error),
            },
        )
    }

    /// Sends once and waits up to the timeout for a datagram that is not a
    /// late reply.
    fn attempt(&mut self, request: &[u8]) -> io::Result<Wait> {
        self.socket.send(request)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Wait::TimedOut);
            }
            self.socket.set_read_timeout(Some(left))?;
            match self.socket.recv(&mut self.buf) {
                Ok(len)
                    if self.buf[..len] != self.expected[..]
                        && self.earlier.contains(&self.buf[..len]) =>
                {
                    log::debug!(
                        "dropped a late reply of {len} bytes from udp {}: the answer to an earlier request",
                        self.peer()
                    );
                }
                Ok(len) => return Ok(Wait::Reply(len)),
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Wait::TimedOut);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
}

/// Opens a UDP socket of `addr`'s family on any local port, connected to
/// `addr` so that an ICMP port-unreachable comes back as an error, with a
/// receive buffer of `recv_buffer` bytes if given.
pub(crate) fn connected_socket(
    addr: SocketAddr,
    recv_buffer: Option<usize>,
) -> Result<UdpSocket, ClientError> {
    let local = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let mut builder = UdpSocketBuilder::new(SocketAddr::new(local, 0));
    if let Some(size) = recv_buffer {
        builder = builder.recv_buffer_size(size);
    }
    let socket = builder.bind()?;
    socket
        .connect(addr)
        .map_err(|source| ClientError::Network {
            action: "connecting to",
            transport: Transport::Udp,
            addr,
            source,
        })?;
    Ok(socket)
}

/// Opens a socket connected to the first address from `first` on that can
/// have one (a host without IPv6 cannot open one for `::1`).
fn open_from(addrs: &[SocketAddr], first: usize) -> Result<(usize, UdpSocket), ClientError> {
    let mut last_error = None;
    for (index, &addr) in addrs.iter().enumerate().skip(first) {
        let opened = connected_socket(addr, None);
        match opened {
            Ok(socket) => {
                log::info!("sending to udp {addr}");
                return Ok((index, socket));
            }
            Err(error) => {
                log::info!("{error}");
                last_error = Some(error);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| ClientError::Resolve {
        host: String::new(),
        source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_answers_are_bounded_in_count_and_bytes() {
        let mut earlier = EarlierAnswers::default();
        for n in 0..LATE_REPLY_WINDOW + 1 {
            earlier.remember(format!("ANSWER {n}").as_bytes());
        }
        assert!(!earlier.contains(b"ANSWER 0"), "the oldest is forgotten");
        assert!(earlier.contains(b"ANSWER 1"));
        assert!(earlier.contains(format!("ANSWER {LATE_REPLY_WINDOW}").as_bytes()));
        assert!(!earlier.contains(b"ANSWER"));

        // Large answers: the byte bound comes first.
        let large = |fill: u8| vec![fill; MAX_DATAGRAM_PAYLOAD];
        let fits = LATE_REPLY_WINDOW_BYTES / MAX_DATAGRAM_PAYLOAD;
        for fill in 0..=fits {
            earlier.remember(&large(fill as u8));
        }
        assert!(
            earlier.bytes <= LATE_REPLY_WINDOW_BYTES,
            "{} bytes",
            earlier.bytes
        );
        assert_eq!(
            earlier.bytes,
            earlier.answers.iter().map(Vec::len).sum::<usize>()
        );
        assert!(!earlier.contains(&large(0)), "the oldest is forgotten");
        assert!(earlier.contains(&large(fits as u8)));
    }

    #[test]
    fn a_repeated_answer_is_kept_once() {
        let mut earlier = EarlierAnswers::default();
        earlier.remember(b"SAME");
        earlier.remember(b"SAME");
        assert_eq!(earlier.answers.len(), 1);
        assert!(earlier.contains(b"SAME"));
    }
}
