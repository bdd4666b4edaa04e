//! TCP request and reply, one line at a time: what a person at a keyboard
//! and a TCP ping need.
//!
//! The protocol has no framing: the reply to a request is its uppercase, so
//! the client knows how many bytes to wait for
//! ([`shout_protocol::uppercased_len`]) and reads exactly that many.

use crate::lines::{DEFAULT_MAX_LINE, LineOutcome, run_lines};
use crate::sniff::{self, TLS_HEAD, Verdict};
use crate::{ClientError, Connection, Connector, LinesReport, Transport};
use shout_protocol::uppercased_len;
use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A TCP conversation of requests and their replies over one connection,
/// opened on first use and opened again when the server has closed it.
///
/// The lecture's server answers one request per connection and closes; this
/// session notices a connection that closed before any reply byte arrived,
/// reconnects once and sends the request again, so such a server works for
/// many lines too.
#[derive(Debug)]
pub struct LineSession {
    connector: Connector,
    reply_timeout: Option<Duration>,
    connection: Option<Connection>,
    reply: Vec<u8>,
}

/// One answered request.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The reply: exactly as many bytes as the uppercase of the request.
    pub reply: &'a [u8],
    /// The server's address.
    pub peer: SocketAddr,
    /// The handshake time when this exchange had to open a connection.
    pub connect_time: Option<Duration>,
    /// The TLS handshake time, after the TCP one, when this exchange opened
    /// a TLS connection.
    pub tls_time: Option<Duration>,
    /// From the first byte sent to the last byte of the reply received.
    pub rtt: Duration,
}

/// How an exchange on an open connection failed.
enum Failure {
    /// The connection closed or was reset; `received` reply bytes had come.
    Closed { received: usize },
    /// No further byte came within the timeout; `received` reply bytes had
    /// come.
    Timeout { received: usize },
    /// The reply began with a TLS record header: the port speaks TLS.
    TlsAnswer,
    /// Another error while doing `action`.
    Io {
        action: &'static str,
        error: io::Error,
    },
}

impl LineSession {
    /// A session that connects with `connector` and waits at most
    /// `reply_timeout` for each reply (forever when `None`).
    pub fn new(connector: Connector, reply_timeout: Option<Duration>) -> Self {
        Self {
            connector,
            reply_timeout,
            connection: None,
            reply: Vec::new(),
        }
    }

    /// Connects now unless connected: to fail early, before a person types.
    pub fn connect(&mut self) -> Result<&Connection, ClientError> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.open()?,
        };
        Ok(self.connection.insert(connection))
    }

    /// Closes the connection, if any; the next request opens a new one.
    pub fn disconnect(&mut self) {
        self.connection = None;
    }

    /// Sends `request` as it is (a line's newline included) and reads back
    /// exactly its uppercase's length.
    ///
    /// On any error the connection is closed: bytes of a late reply could
    /// otherwise be taken for the reply to the next request.
    pub fn shout(&mut self, request: &[u8]) -> Result<Exchange<'_>, ClientError> {
        let expected = uppercased_len(request);
        let (mut connection, mut connect_time, mut tls_time, reused) = match self.connection.take()
        {
            Some(connection) => (connection, None, None, true),
            None => {
                let connection = self.open()?;
                let connect_time = connection.connect_time();
                let tls_time = connection.tls_time();
                (connection, Some(connect_time), tls_time, false)
            }
        };
        let mut outcome = exchange(&mut connection, request, expected, &mut self.reply);
        if reused && matches!(outcome, Err(Failure::Closed { received: 0 })) {
            log::info!(
                "tcp {} closed the connection before this request; reconnecting",
                connection.peer()
            );
            connection = self.open()?;
            connect_time = Some(connection.connect_time());
            tls_time = connection.tls_time();
            outcome = exchange(&mut connection, request, expected, &mut self.reply);
        }
        let peer = connection.peer();
        match outcome {
            Ok(rtt) => {
                self.connection = Some(connection);
                Ok(Exchange {
                    reply: &self.reply,
                    peer,
                    connect_time,
                    tls_time,
                    rtt,
                })
            }
            // The connection is dropped, and so closed, on every failure.
            Err(failure) => Err(match failure {
                Failure::Closed { received } => ClientError::ClosedEarly {
                    addr: peer,
                    received: received as u64,
                    expected: expected as u64,
                },
                Failure::Timeout { received: 0 } => ClientError::ReplyTimeout {
                    addr: peer,
                    timeout: self.reply_timeout.unwrap_or_default(),
                },
                Failure::Timeout { received } => ClientError::ReplyStalled {
                    addr: peer,
                    received: received as u64,
                    expected: Some(expected as u64),
                    timeout: self.reply_timeout.unwrap_or_default(),
                },
                Failure::TlsAnswer => ClientError::TlsAnswer { addr: peer },
                Failure::Io { action, error } => ClientError::Network {
                    action,
                    transport: Transport::Tcp,
                    addr: peer,
                    source: error,
                },
            }),
        }
    }

    /// The interactive loop: for each line of `input` (at most
    /// [`DEFAULT_MAX_LINE`] bytes; longer ones are skipped with a warning),
    /// sends it with a newline, writes the reply to `output` and flushes.
    /// With `prompt`, writes `> ` there before each line.
    ///
    /// Stops at the end of input, or at the first error.
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
        let mut request = Vec::new();
        run_lines(
            input,
            DEFAULT_MAX_LINE,
            output,
            prompt,
            |_, line, output| {
                request.clear();
                request.extend_from_slice(line);
                request.push(b'\n');
                let exchange = self.shout(&request)?;
                output
                    .write_all(exchange.reply)
                    .map_err(ClientError::Output)?;
                Ok(LineOutcome::Answered)
            },
        )
    }

    fn open(&self) -> Result<Connection, ClientError> {
        let connection = self.connector.connect()?;
        let stream = connection.stream();
        stream
            .set_read_timeout(self.reply_timeout)
            .and_then(|()| stream.set_write_timeout(self.reply_timeout))
            .map_err(|source| ClientError::Network {
                action: "setting timeouts for",
                transport: Transport::Tcp,
                addr: connection.peer(),
                source,
            })?;
        Ok(connection)
    }
}

/// Writes `request` and reads `expected` bytes into `reply`.
///
/// On a plain connection, a reply that begins with a TLS record header
/// is [`Failure::TlsAnswer`], whether the rest came or not.
fn exchange(
    stream: &mut Connection,
    request: &[u8],
    expected: usize,
    reply: &mut Vec<u8>,
) -> Result<Duration, Failure> {
    let started = Instant::now();
    if let Err(error) = stream.write_all(request) {
        return Err(classify(error, "sending to", 0));
    }
    reply.clear();
    reply.resize(expected, 0);
    let mut received = 0;
    let mut outcome = Ok(());
    while received < expected {
        match stream.read(&mut reply[received..]) {
            Ok(0) => {
                outcome = Err(Failure::Closed { received });
                break;
            }
            Ok(n) => received += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                outcome = Err(classify(error, "receiving from", received));
                break;
            }
        }
    }
    reply.truncate(received);
    if !stream.is_tls() && answers_with_tls(stream, reply, request, outcome.is_ok()) {
        return Err(Failure::TlsAnswer);
    }
    outcome.map(|()| started.elapsed())
}

/// Whether the reply so far, on a plain connection, is a TLS server's.
///
/// A `complete` reply shorter than a TLS record header that could begin
/// one is completed by a look at the bytes waiting (a TLS alert is 7
/// bytes, sent at once), which are left unread.
fn answers_with_tls(stream: &Connection, reply: &[u8], request: &[u8], complete: bool) -> bool {
    match sniff::judge(reply, request) {
        Verdict::Tls => true,
        Verdict::Plain => false,
        // The bytes that could begin a header are their own uppercase: a
        // reply that repeats the request's is the server's answer.
        Verdict::Undecided if !complete || request.starts_with(reply) => false,
        Verdict::Undecided => {
            let mut waiting = [0; TLS_HEAD];
            // Waits at most the reply timeout, and only for a reply that
            // is not the request's uppercase already.
            let Ok(n) = stream.stream().peek(&mut waiting) else {
                return false;
            };
            let mut head = reply.to_vec();
            head.extend_from_slice(&waiting[..n]);
            sniff::judge(&head, request) == Verdict::Tls
        }
    }
}

fn classify(error: io::Error, action: &'static str, received: usize) -> Failure {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::Timeout { received },
        // UnexpectedEof: a TLS server closed TCP without close_notify.
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted => Failure::Closed { received },
        _ => Failure::Io { action, error },
    }
}
