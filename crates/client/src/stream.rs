//! Piped mode: the input streamed to the server and the reply streamed to
//! the output at the same time, in constant memory.
//!
//! A client that writes all its input before reading deadlocks once the
//! server's send buffer and its own receive buffer are full: the server
//! stops reading because it cannot write, and the client cannot write
//! because the server does not read. Here a thread sends while the calling
//! thread receives, so both directions always move.
//!
//! Over TLS the two threads share one rustls `ClientConnection`, which
//! cannot be split, behind a mutex. Neither thread holds the lock while it
//! waits on the socket: the sender encrypts a chunk into its own buffer under
//! the lock and writes it to the socket after releasing it; the receiver
//! reads raw bytes from the socket without the lock and decrypts them under
//! it. So a send blocked by a full network never keeps the receiver from
//! draining the replies, and the deadlock above cannot come back. Only the
//! sender writes to the socket, so records leave in the order they were
//! made. Memory stays a few chunks: each encrypted chunk is sent before the
//! next is made, and decrypted bytes are written out before more are read.

use crate::sniff::{self, TLS_HEAD, Verdict};
use crate::{ClientError, Connection, Transport};
use rustls::ClientConnection;
use shout_protocol::Uppercaser;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::Duration;

/// Bytes moved per read and write.
const CHUNK: usize = 64 * 1024;

/// How long to wait for the sending thread once the server has closed. A
/// server that keeps the contract closes only after the input ended, when the
/// thread is done or nearly; one that closes earlier left input unsent.
const SENDER_GRACE: Duration = Duration::from_secs(2);

/// What a streamed conversation moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTotals {
    /// Input bytes sent.
    pub sent: u64,
    /// Reply bytes received and written to the output; always the length of
    /// the uppercase of the input when the stream succeeds.
    pub received: u64,
}

/// What the sending thread reports.
#[derive(Debug, Clone, Copy)]
struct Sent {
    bytes: u64,
    expected_reply: u64,
}

/// What the sending thread is doing, for the receiving side to judge an
/// idle connection.
#[derive(Debug, Default)]
struct Progress {
    sent: AtomicU64,
    writing: AtomicBool,
    /// The input's first bytes (up to [`TLS_HEAD`]), kept before they are
    /// sent, so that they are known when their reply comes.
    head: Mutex<Vec<u8>>,
}

/// Streams `input` to the server over `connection` and the server's reply
/// to `output`, until the input ends and the server has answered all of it.
///
/// A thread reads `input`, sends it, and shuts down the sending side of the
/// connection at the end of input (over TLS, a close_notify first, and the
/// reply ends with the server's); the calling thread copies what arrives to
/// `output`. Memory use is a few buffers whatever the input size.
///
/// The reply must be exactly as long as the uppercase of the input (the
/// thread computes it as it sends): a server that closes before that gives
/// [`ClientError::ClosedEarly`]. Over plain TCP, a reply that begins with
/// a TLS record header is [`ClientError::TlsAnswer`], and none of it is
/// written out. `idle_timeout` bounds how long the server
/// may stay silent once all input is sent, or while a send is stuck.
///
/// On error the connection is shut down; the sending thread ends when its
/// next read of `input` returns.
pub fn shout_stream<R, W>(
    connection: Connection,
    input: R,
    output: &mut W,
    idle_timeout: Option<Duration>,
) -> Result<StreamTotals, ClientError>
where
    R: Read + Send + 'static,
    W: Write + ?Sized,
{
    let peer = connection.peer();
    let (stream, tls) = connection.into_parts();
    let tls = tls.map(|tls| Arc::new(Mutex::new(tls)));
    let network = |action, source| ClientError::Network {
        action,
        transport: Transport::Tcp,
        addr: peer,
        source,
    };
    let sending = stream
        .try_clone()
        .map_err(|error| network("preparing to send to", error))?;
    stream
        .set_read_timeout(idle_timeout)
        .map_err(|error| network("setting a timeout for", error))?;
    let progress = Arc::new(Progress::default());
    let (done, finished) = mpsc::sync_channel(1);
    let sender_progress = Arc::clone(&progress);
    let sender_tls = tls.clone();
    thread::Builder::new()
        .name("shout-send".into())
        .spawn(move || {
            let mut sink = Sink {
                socket: &sending,
                tls: sender_tls.as_deref(),
                sealed: Vec::new(),
            };
            let result = send(input, &mut sink, peer, &sender_progress);
            // At the end of input the server learns that no more is coming and
            // closes after its last reply. After a failure both directions stop,
            // so that the receiving side does not wait for replies that will
            // never come.
            let result = match result {
                Ok(sent) => sink
                    .end()
                    .map(|()| sent)
                    .map_err(|error| closed_or(error, "ending the input to", peer, sent.bytes)),
                Err(error) => {
                    let _ = sending.shutdown(Shutdown::Both);
                    Err(error)
                }
            };
            let _ = done.send(result);
        })
        .map_err(ClientError::Sender)?;

    let mut sender = SenderWatch {
        finished,
        progress,
        result: None,
    };
    let mut incoming = Incoming {
        tls: tls.as_deref(),
        plain: Vec::new(),
        head: Vec::new(),
        verdict: Verdict::Undecided,
    };
    let outcome = receive(
        &stream,
        &mut incoming,
        output,
        &mut sender,
        peer,
        idle_timeout,
    )
    .and_then(|received| {
        let sent = sender.wait(peer)?;
        if received < sent.expected_reply {
            return Err(ClientError::ClosedEarly {
                addr: peer,
                received,
                expected: sent.expected_reply,
            });
        }
        if received > sent.expected_reply {
            log::warn!(
                "tcp {peer} sent {} bytes more than the uppercase of the input",
                received - sent.expected_reply
            );
        }
        Ok(StreamTotals {
            sent: sent.bytes,
            received,
        })
    });
    if outcome.is_err() {
        // Unblocks the sending thread if it is stuck sending.
        let _ = stream.shutdown(Shutdown::Both);
    }
    outcome
}

/// The receiving side's view of the sending thread.
struct SenderWatch {
    finished: mpsc::Receiver<Result<Sent, ClientError>>,
    progress: Arc<Progress>,
    result: Option<Result<Sent, ClientError>>,
}

impl SenderWatch {
    /// The thread's error, if it has reported one.
    fn failure(&mut self) -> Option<ClientError> {
        if self.result.is_none() {
            self.result = self.finished.try_recv().ok();
        }
        match self.result.take() {
            Some(Err(error)) => Some(error),
            other => {
                self.result = other;
                None
            }
        }
    }

    /// What was sent, once all of it was.
    fn done(&self) -> Option<Sent> {
        match self.result {
            Some(Ok(sent)) => Some(sent),
            _ => None,
        }
    }

    /// Waits for the thread's report after the server closed.
    fn wait(&mut self, peer: SocketAddr) -> Result<Sent, ClientError> {
        if let Some(result) = self.result.take() {
            return result;
        }
        match self.finished.recv_timeout(SENDER_GRACE) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ClientError::ClosedBeforeInputEnd {
                addr: peer,
                sent: self.progress.sent.load(Ordering::Relaxed),
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ClientError::Sender(
                io::Error::other("it stopped without a result"),
            )),
        }
    }
}

/// Copies the server's bytes to `output` until the server closes, and
/// returns how many there were.
///
/// An error of the sending thread, once reported, takes precedence: it is
/// the cause, and a broken receive only its consequence.
fn receive<W: Write + ?Sized>(
    mut stream: &TcpStream,
    incoming: &mut Incoming<'_>,
    output: &mut W,
    sender: &mut SenderWatch,
    peer: SocketAddr,
    idle_timeout: Option<Duration>,
) -> Result<u64, ClientError> {
    let mut buf = vec![0; CHUNK];
    let mut received = 0u64;
    loop {
        let sent_before = sender.progress.sent.load(Ordering::Relaxed);
        match stream.read(&mut buf) {
            Ok(0) => {
                if let Some(error) = sender.failure() {
                    return Err(error);
                }
                incoming.release(output)?;
                if incoming.tls.is_some() {
                    log::warn!(
                        "tls {peer} closed the connection without close_notify: the reply may be cut"
                    );
                }
                output.flush().map_err(ClientError::Output)?;
                return Ok(received);
            }
            Ok(n) => {
                let delivered = incoming.deliver(&buf[..n], output, peer, &sender.progress)?;
                received += delivered.bytes;
                if delivered.closed {
                    if let Some(error) = sender.failure() {
                        return Err(error);
                    }
                    output.flush().map_err(ClientError::Output)?;
                    return Ok(received);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if let Some(error) = sender.failure() {
                    return Err(error);
                }
                // Silence is normal while the input itself pauses. It is a
                // timeout once all input is sent, or when a send has not moved
                // for a whole timeout (the server stopped reading).
                let stuck = sender.progress.writing.load(Ordering::Relaxed)
                    && sender.progress.sent.load(Ordering::Relaxed) == sent_before;
                if sender.done().is_some() || stuck {
                    let timeout = idle_timeout.unwrap_or_default();
                    return Err(if received == 0 {
                        ClientError::ReplyTimeout {
                            addr: peer,
                            timeout,
                        }
                    } else {
                        // Part of the reply came: say how much, or a server
                        // that answers one read and then waits looks silent.
                        ClientError::ReplyStalled {
                            addr: peer,
                            received,
                            expected: sender.done().map(|sent| sent.expected_reply),
                            timeout,
                        }
                    });
                }
            }
            Err(error) => {
                if let Some(error) = sender.failure() {
                    return Err(error);
                }
                return Err(match error.kind() {
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                        ClientError::ClosedEarly {
                            addr: peer,
                            received,
                            // Unknown while input is still being sent: the
                            // message then shows what had arrived.
                            expected: sender.done().map_or(received, |sent| sent.expected_reply),
                        }
                    }
                    _ => ClientError::Network {
                        action: "receiving from",
                        transport: Transport::Tcp,
                        addr: peer,
                        source: error,
                    },
                });
            }
        }
    }
}

/// What [`Incoming::deliver`] wrote out.
struct Delivered {
    /// Plaintext bytes written to the output.
    bytes: u64,
    /// Whether the server's close_notify came: the reply is complete.
    closed: bool,
}

/// The receiving side of the connection: bytes from the socket go to the
/// output as they are, or decrypted.
struct Incoming<'a> {
    tls: Option<&'a Mutex<ClientConnection>>,
    plain: Vec<u8>,
    /// Over plain TCP, the reply's first bytes, held back while they could
    /// begin a TLS record header.
    head: Vec<u8>,
    /// Over plain TCP, what the reply's first bytes said.
    verdict: Verdict,
}

impl Incoming<'_> {
    /// Writes the plaintext in `raw` to `output`. Over plain TCP, the
    /// reply's first bytes are held until they tell whether a TLS server
    /// answered, which is an error.
    fn deliver<W: Write + ?Sized>(
        &mut self,
        mut raw: &[u8],
        output: &mut W,
        peer: SocketAddr,
        progress: &Progress,
    ) -> Result<Delivered, ClientError> {
        let Some(tls) = self.tls else {
            let bytes = raw.len() as u64;
            if self.verdict == Verdict::Undecided {
                let take = raw.len().min(TLS_HEAD - self.head.len());
                self.head.extend_from_slice(&raw[..take]);
                raw = &raw[take..];
                let request = lock(&progress.head).clone();
                self.verdict = sniff::judge(&self.head, &request);
                match self.verdict {
                    Verdict::Tls => return Err(ClientError::TlsAnswer { addr: peer }),
                    Verdict::Plain => self.release(output)?,
                    Verdict::Undecided => {}
                }
            }
            output.write_all(raw).map_err(ClientError::Output)?;
            return Ok(Delivered {
                bytes,
                closed: false,
            });
        };
        self.plain.resize(CHUNK, 0);
        let mut delivered = Delivered {
            bytes: 0,
            closed: false,
        };
        while !raw.is_empty() {
            let mut tls = lock(tls);
            // Reading from a slice cannot fail; rustls takes what fits its
            // buffer and the loop offers the rest after decrypting.
            let _ = tls.read_tls(&mut raw);
            tls.process_new_packets()
                .map_err(|error| crate::tls::handshake_error(peer, error))?;
            loop {
                match tls.reader().read(&mut self.plain) {
                    Ok(0) => {
                        delivered.closed = true;
                        return Ok(delivered);
                    }
                    Ok(n) => {
                        delivered.bytes += n as u64;
                        output
                            .write_all(&self.plain[..n])
                            .map_err(ClientError::Output)?;
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) => {
                        return Err(ClientError::Network {
                            action: "receiving from",
                            transport: Transport::Tcp,
                            addr: peer,
                            source: error,
                        });
                    }
                }
            }
        }
        Ok(delivered)
    }

    /// Writes out the reply's first bytes held back, if any: they are not
    /// a TLS server's answer, or the reply ended before they could be.
    fn release<W: Write + ?Sized>(&mut self, output: &mut W) -> Result<(), ClientError> {
        output.write_all(&self.head).map_err(ClientError::Output)?;
        self.head.clear();
        Ok(())
    }
}

/// The sending side of the connection: plaintext to the socket as it is,
/// or encrypted.
struct Sink<'a> {
    socket: &'a TcpStream,
    tls: Option<&'a Mutex<ClientConnection>>,
    /// Encrypted records made under the lock, sent after releasing it.
    sealed: Vec<u8>,
}

impl Sink<'_> {
    /// Sends part of `data`, and returns how much.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls else {
            return (&mut &*self.socket).write(data);
        };
        let taken = {
            let mut tls = lock(tls);
            let taken = tls.writer().write(data)?;
            self.seal(&mut tls)?;
            taken
        };
        self.send_sealed()?;
        Ok(taken)
    }

    /// Ends the sending direction: close_notify over TLS, then a TCP
    /// half-close.
    fn end(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls {
            {
                let mut tls = lock(tls);
                tls.send_close_notify();
                self.seal(&mut tls)?;
            }
            self.send_sealed()?;
        }
        self.socket.shutdown(Shutdown::Write)
    }

    /// Moves every record rustls has ready into `sealed`.
    fn seal(&mut self, tls: &mut ClientConnection) -> io::Result<()> {
        while tls.wants_write() {
            tls.write_tls(&mut self.sealed)?;
        }
        Ok(())
    }

    fn send_sealed(&mut self) -> io::Result<()> {
        let sent = (&mut &*self.socket).write_all(&self.sealed);
        self.sealed.clear();
        sent
    }
}

/// Locks state the two threads share (the TLS connection, the input's
/// first bytes); a panic of the other thread while holding it leaves that
/// state whole enough to report errors, so the poison is ignored.
fn lock<T>(shared: &Mutex<T>) -> MutexGuard<'_, T> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends all of `input`, counting the reply it calls for.
fn send<R: Read>(
    mut input: R,
    socket: &mut Sink<'_>,
    peer: SocketAddr,
    progress: &Progress,
) -> Result<Sent, ClientError> {
    let mut buf = vec![0; CHUNK];
    let mut upper = Uppercaser::new();
    let mut reply = Vec::with_capacity(CHUNK * shout_protocol::MAX_EXPANSION);
    let mut sent = Sent {
        bytes: 0,
        expected_reply: 0,
    };
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(ClientError::Input(error)),
        };
        let mut rest = &buf[..n];
        {
            let mut head = lock(&progress.head);
            let take = n.min(TLS_HEAD.saturating_sub(head.len()));
            head.extend_from_slice(&rest[..take]);
        }
        progress.writing.store(true, Ordering::Relaxed);
        while !rest.is_empty() {
            match socket.write(rest) {
                Ok(0) => {
                    return Err(closed_or(
                        io::ErrorKind::WriteZero.into(),
                        "sending to",
                        peer,
                        sent.bytes,
                    ));
                }
                Ok(written) => {
                    rest = &rest[written..];
                    sent.bytes += written as u64;
                    progress.sent.store(sent.bytes, Ordering::Relaxed);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(closed_or(error, "sending to", peer, sent.bytes)),
            }
        }
        progress.writing.store(false, Ordering::Relaxed);
        // The server's own transform, run here only to learn the reply's length.
        reply.clear();
        upper.feed(&buf[..n], &mut reply);
        sent.expected_reply += reply.len() as u64;
    }
    reply.clear();
    upper.finish(&mut reply);
    sent.expected_reply += reply.len() as u64;
    Ok(sent)
}

/// A send error: the server closed, or something else went wrong.
fn closed_or(error: io::Error, action: &'static str, peer: SocketAddr, sent: u64) -> ClientError {
    match error.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::NotConnected => ClientError::ClosedBeforeInputEnd { addr: peer, sent },
        _ => ClientError::Network {
            action,
            transport: Transport::Tcp,
            addr: peer,
            source: error,
        },
    }
}
