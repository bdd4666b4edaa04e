//! The TLS layer of a connection: rustls's sans-io, unbuffered
//! `UnbufferedServerConnection` between the socket and the service, so the
//! same [`StreamService`] runs over plain TCP or TLS.
//!
//! The layer owns its buffers, and each is given up the moment it is
//! empty: ciphertext read and not yet processed (a partial record),
//! plaintext decrypted and not yet taken by the service, and records
//! encoded and not yet taken by the socket. An idle connection after its
//! handshake holds none of them, only rustls's state (keys, the session's
//! parameters). A buffer given up goes to the worker thread's few spares
//! (at most [`SPARE_BUFFERS`]), so busy connections take their next buffer
//! there rather than from the allocator on every read and reply.
//! The service's output waits in the connection's own pending buffer and is
//! encrypted a record at a time, only once the socket took every record
//! before it, so the bytes the layer holds stay small and are counted as
//! pending output.
//!
//! This module is not for configuring TLS: the caller builds the
//! `rustls::ServerConfig` (certificates, versions); ALPN and client
//! certificates are whatever that config says, and shoutd sets neither.
//!
//! [`StreamService`]: crate::StreamService

use rustls::server::{
    ClientHello, ResolvesServerCert, ServerConnectionData, UnbufferedServerConnection,
};
use rustls::sign::CertifiedKey;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, ReadEarlyData, ReadTraffic, UnbufferedStatus,
    WriteTraffic,
};
use rustls::{ProtocolVersion, ServerConfig};
use shout_socket::StreamReadiness;
use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::Arc;

use crate::service::Transport;

/// Plaintext handed to rustls per call: one full TLS record.
const RECORD: usize = 16 * 1024;

/// The most ciphertext held unprocessed, a backstop: processing leaves
/// only a partial record or handshake message (rustls refuses one over
/// 64 KiB), and one read adds at most 64 KiB.
const MAX_INCOMING: usize = 256 * 1024;

/// What a record adds to its plaintext, at most: header, tag, padding.
const RECORD_OVERHEAD: usize = 64;

/// What [`TlsLayer::plaintext`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plaintext {
    /// The client's data, never empty: the caller owns the buffer and
    /// hands it to [`recycle`] once done with it.
    Data(Vec<u8>),
    /// Nothing more now.
    Nothing,
    /// The client's close_notify: its input is over, cleanly.
    Closed,
    /// The TCP stream ended without a close_notify: a truncation.
    Truncated,
}

/// One connection's TLS state.
pub(crate) struct TlsLayer {
    conn: UnbufferedServerConnection,
    /// Ciphertext received and not yet processed; unallocated when empty.
    incoming: Vec<u8>,
    /// Plaintext decrypted and not yet taken; unallocated when empty.
    plaintext: Vec<u8>,
    /// Records encoded and not yet taken by the socket; unallocated when
    /// empty.
    outgoing: Vec<u8>,
    /// Plaintext encrypted into `outgoing` and not yet sent; zero once
    /// `outgoing` is empty.
    in_flight: usize,
    /// The server name of the ClientHello, once seen.
    sni: Option<String>,
    /// The server's close_notify is asked for.
    closing: bool,
    /// The client's close_notify came.
    peer_closed: bool,
    /// The TCP stream ended.
    ended: bool,
    /// The error that ended the connection's use, once one came.
    failed: Option<rustls::Error>,
}

/// What [`TlsLayer::drive`] does once rustls may send application data.
enum Send<'a> {
    Nothing,
    Plaintext(&'a [u8]),
    CloseNotify,
}

impl TlsLayer {
    /// Returns the TLS state of a new connection under `config`, which
    /// should come from [`recording_sni`] for the SNI to be known.
    pub(crate) fn new(config: Arc<ServerConfig>) -> Result<Self, rustls::Error> {
        Ok(Self {
            conn: UnbufferedServerConnection::new(config)?,
            incoming: Vec::new(),
            plaintext: Vec::new(),
            outgoing: Vec::new(),
            in_flight: 0,
            sni: None,
            closing: false,
            peer_closed: false,
            ended: false,
            failed: None,
        })
    }

    /// Returns whether the handshake is still going on.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Returns what the handshake agreed, for the service.
    pub(crate) fn transport(&self) -> Transport {
        Transport::Tls {
            version: self
                .conn
                .protocol_version()
                .unwrap_or(ProtocolVersion::Unknown(0)),
            sni: self.sni.clone(),
        }
    }

    /// Feeds ciphertext from the front of `input` into rustls and processes
    /// it; an empty `input` means the TCP stream ended. Returns whether the
    /// layer took `input` (or the end): it takes nothing after the client's
    /// close_notify, nor while plaintext waits for [`plaintext`](Self::plaintext).
    /// A rustls error leaves an alert queued for [`flush`](Self::flush).
    pub(crate) fn receive(&mut self, input: &mut &[u8]) -> Result<bool, rustls::Error> {
        if input.is_empty() {
            self.ended = true;
            return Ok(true);
        }
        if self.peer_closed || !self.plaintext.is_empty() {
            return Ok(false);
        }
        if self.incoming.len() + input.len() > MAX_INCOMING {
            let error = rustls::Error::General("more TLS input held than a message needs".into());
            self.fail(&error);
            return Err(error);
        }
        if self.incoming.capacity() == 0 {
            self.incoming = lend();
        }
        self.incoming.extend_from_slice(input);
        *input = &[];
        self.drive(Send::Nothing)?;
        Ok(true)
    }

    /// Takes all the plaintext the client sent and rustls decrypted, in
    /// the buffer it was decrypted to: the service reads it there, with no
    /// copy.
    pub(crate) fn plaintext(&mut self) -> Plaintext {
        if !self.plaintext.is_empty() {
            return Plaintext::Data(std::mem::take(&mut self.plaintext));
        }
        if self.peer_closed {
            Plaintext::Closed
        } else if self.ended {
            Plaintext::Truncated
        } else {
            Plaintext::Nothing
        }
    }

    /// Returns the plaintext bytes the layer holds unsent.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Returns whether the layer holds records to send.
    pub(crate) fn wants_write(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Returns the bytes the layer's own buffers hold allocated: zero on
    /// an idle connection.
    #[cfg(test)]
    fn buffered_capacity(&self) -> usize {
        self.incoming.capacity() + self.plaintext.capacity() + self.outgoing.capacity()
    }

    /// Queues the server's close_notify, once.
    pub(crate) fn close(&mut self) {
        if !self.closing {
            self.closing = true;
            // A connection already failed has its alert queued instead.
            let _ = self.drive(Send::CloseNotify);
        }
    }

    /// Sends the layer's records to the socket while it takes them, then
    /// encrypts more of `pending` (a record at a time) and goes on.
    /// Plaintext is held back during the handshake and after the
    /// close_notify. Returns the number of bytes the socket took.
    pub(crate) fn flush(
        &mut self,
        pending: &mut dyn PlaintextSource,
        readiness: &mut StreamReadiness,
        stream: &mut impl Write,
    ) -> io::Result<usize> {
        let mut written = 0;
        loop {
            while !self.outgoing.is_empty() {
                let sent = SocketWriter { readiness, stream }.write(&self.outgoing);
                match sent {
                    Ok(n) => {
                        written += n;
                        take_front(&mut self.outgoing, n);
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(written);
                    }
                    Err(error) => return Err(error),
                }
            }
            self.in_flight = 0;
            let bytes = pending.unsent();
            if bytes.is_empty() || self.conn.is_handshaking() || self.closing {
                return Ok(written);
            }
            let record = &bytes[..bytes.len().min(RECORD)];
            let taken = self
                .drive(Send::Plaintext(record))
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            if taken == 0 {
                return Ok(written);
            }
            pending.consume(taken);
            self.in_flight = taken;
        }
    }

    /// Runs rustls over the ciphertext held until it needs more: keeps the
    /// plaintext it decrypts and the records it encodes, and once it may
    /// send application data, encrypts `send` into `outgoing`. Returns the
    /// plaintext bytes encrypted. On an error, the alert rustls queued is
    /// encoded first.
    fn drive(&mut self, mut send: Send<'_>) -> Result<usize, rustls::Error> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut encrypted = 0;
        // What rustls is done with is skipped here and removed once at the
        // end: removing it after every record would move the rest of the
        // read each time.
        let mut processed = 0;
        let outcome = loop {
            // Only a ClientHello names a server; the thread-local is not
            // touched once the handshake is done.
            let handshaking = self.conn.is_handshaking();
            if handshaking {
                SNI_SEEN.with_borrow_mut(Option::take);
            }
            let UnbufferedStatus { discard, state } = self
                .conn
                .process_tls_records(&mut self.incoming[processed..]);
            let mut waits = false;
            let step = match state {
                Err(error) => Err(error),
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    read_records(&mut traffic, &mut self.plaintext)
                }
                Ok(ConnectionState::ReadEarlyData(mut early)) => skip_early_data(&mut early),
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    append_with(&mut self.outgoing, 0, |buffer| {
                        sorted(encode.encode(buffer))
                    })
                    .map(drop)
                }
                // The records are in `outgoing`: `flush` sends them.
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    Ok(())
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    Ok(())
                }
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    waits = true;
                    let send = std::mem::replace(&mut send, Send::Nothing);
                    write_traffic(&mut traffic, send, &mut self.outgoing)
                        .map(|taken| encrypted = taken)
                }
                Ok(_) => {
                    waits = true;
                    Ok(())
                }
            };
            if handshaking && self.sni.is_none() {
                self.sni = SNI_SEEN.with_borrow_mut(Option::take);
            }
            processed += discard;
            if self.peer_closed {
                // Nothing after the close_notify is read.
                processed = self.incoming.len();
            }
            if let Err(error) = step {
                break Err(error);
            }
            if waits {
                break Ok(encrypted);
            }
        };
        self.drop_processed(processed);
        if let Err(error) = &outcome {
            self.fail(error);
        }
        outcome
    }

    /// Removes the `processed` bytes from the front of the ciphertext held.
    /// A partial record should not pin the whole read it came in: it moves
    /// to a buffer of its own size, and the large one goes back to the
    /// spares instead of being shrunk out of their use.
    #[inline]
    fn drop_processed(&mut self, processed: usize) {
        take_front(&mut self.incoming, processed);
        if !self.incoming.is_empty() && self.incoming.capacity() > 2 * self.incoming.len() {
            let partial = self.incoming.clone();
            recycle(std::mem::replace(&mut self.incoming, partial));
        }
    }

    /// Ends the connection's use after `error`: encodes the alert rustls
    /// queued, and reads nothing more (rustls must not see the bad input
    /// twice: it would queue a second fatal alert).
    fn fail(&mut self, error: &rustls::Error) {
        self.failed = Some(error.clone());
        give_back(&mut self.incoming);
        give_back(&mut self.plaintext);
        while self.conn.wants_write() {
            let status = self.conn.process_tls_records(&mut []);
            let Ok(ConnectionState::EncodeTlsData(mut encode)) = status.state else {
                break;
            };
            let encoded = append_with(&mut self.outgoing, 0, |buffer| {
                sorted(encode.encode(buffer))
            });
            if encoded.is_err() {
                break;
            }
        }
    }
}

/// Removes `n` bytes from the front of `buffer`, giving it up once empty.
fn take_front(buffer: &mut Vec<u8>, n: usize) {
    if n >= buffer.len() {
        give_back(buffer);
    } else {
        buffer.drain(..n);
    }
}

/// Appends what `write` puts in a slice at the end of `buffer`, `guess`
/// bytes long at first; `write` answers `Err(required)` when the slice is
/// too short, and is then called once more with `required` bytes.
/// Appends every record `traffic` decrypts to `plaintext`, lent from the
/// spares if it holds no buffer.
#[inline]
fn read_records(
    traffic: &mut ReadTraffic<'_, '_, ServerConnectionData>,
    plaintext: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    while let Some(record) = traffic.next_record() {
        let record = record?;
        if plaintext.capacity() == 0 {
            *plaintext = lend();
        }
        plaintext.extend_from_slice(record.payload);
    }
    Ok(())
}

/// Passes over early data: off unless the config asks, and left unread as
/// the buffered connection's reader leaves it.
#[inline]
fn skip_early_data(
    early: &mut ReadEarlyData<'_, '_, ServerConnectionData>,
) -> Result<(), rustls::Error> {
    while let Some(record) = early.next_record() {
        record?;
    }
    Ok(())
}

/// Encrypts what `send` asks for into `outgoing`. Returns how many
/// plaintext bytes it took.
#[inline]
fn write_traffic(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    send: Send<'_>,
    outgoing: &mut Vec<u8>,
) -> Result<usize, rustls::Error> {
    match send {
        Send::Nothing => Ok(0),
        Send::Plaintext(bytes) => append_with(outgoing, bytes.len() + RECORD_OVERHEAD, |buffer| {
            sorted(traffic.encrypt(bytes, buffer))
        })
        .map(|_| bytes.len()),
        Send::CloseNotify => append_with(outgoing, RECORD_OVERHEAD, |buffer| {
            sorted(traffic.queue_close_notify(buffer))
        })
        .map(|_| 0),
    }
}

fn append_with(
    buffer: &mut Vec<u8>,
    guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<Result<usize, rustls::Error>, usize>,
) -> Result<usize, rustls::Error> {
    if buffer.capacity() == 0 {
        *buffer = lend();
    }
    let start = buffer.len();
    let mut size = guess;
    for _ in 0..2 {
        buffer.resize(start + size, 0);
        match write(&mut buffer[start..]) {
            Ok(result) => {
                let n = result.as_ref().map_or(0, |n| *n);
                buffer.truncate(start + n);
                if buffer.is_empty() {
                    give_back(buffer);
                }
                return result;
            }
            Err(required) => size = required,
        }
    }
    buffer.truncate(start);
    if buffer.is_empty() {
        give_back(buffer);
    }
    Err(rustls::Error::General(
        "a TLS record outgrew the size rustls asked for".into(),
    ))
}

/// An error of rustls's encoding or encryption, which may ask for room.
trait NeedsRoom: std::fmt::Display {
    /// Returns the bytes needed, when the slice was too short.
    fn required(&self) -> Option<usize>;
}

impl NeedsRoom for EncodeError {
    fn required(&self) -> Option<usize> {
        match self {
            Self::InsufficientSize(size) => Some(size.required_size),
            _ => None,
        }
    }
}

impl NeedsRoom for EncryptError {
    fn required(&self) -> Option<usize> {
        match self {
            Self::InsufficientSize(size) => Some(size.required_size),
            _ => None,
        }
    }
}

/// Sorts an encoding's or encryption's outcome for [`append_with`].
fn sorted<E: NeedsRoom>(result: Result<usize, E>) -> Result<Result<usize, rustls::Error>, usize> {
    match result {
        Ok(n) => Ok(Ok(n)),
        Err(error) => match error.required() {
            Some(required) => Err(required),
            None => Ok(Err(rustls::Error::General(error.to_string()))),
        },
    }
}

/// The most spare buffers a worker thread keeps.
pub(crate) const SPARE_BUFFERS: usize = 8;

/// The capacity of a new buffer: a whole record with its overhead, so a
/// buffer rarely grows.
const LENT_CAPACITY: usize = RECORD + RECORD_OVERHEAD;

/// The buffers worth keeping as spares: a smaller one would grow at once,
/// a larger one came from an unusual burst.
const SPARE_CAPACITY: std::ops::RangeInclusive<usize> = LENT_CAPACITY..=MAX_INCOMING + 64 * 1024;

thread_local! {
    /// Buffers connections of this thread's worker gave up, empty, for the
    /// next connection that needs one. Each worker is one thread, so this
    /// is the worker's own pool, with no lock.
    static SPARES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Returns an empty buffer: a spare if the thread has one.
fn lend() -> Vec<u8> {
    SPARES
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(LENT_CAPACITY))
}

/// Takes `buffer` from its owner, leaving it unallocated, and keeps it as
/// a spare if there is room and it is worth keeping.
fn give_back(buffer: &mut Vec<u8>) {
    recycle(std::mem::take(buffer));
}

/// Keeps `spare` for the next connection that needs a buffer, if there is
/// room and it is worth keeping; frees it otherwise.
pub(crate) fn recycle(mut spare: Vec<u8>) {
    if !SPARE_CAPACITY.contains(&spare.capacity()) {
        return;
    }
    spare.clear();
    SPARES.with_borrow_mut(|spares| {
        if spares.len() < SPARE_BUFFERS {
            spares.push(spare);
        }
    });
}

thread_local! {
    /// The server name of the last ClientHello this thread's rustls saw:
    /// the unbuffered connection does not tell it, the certificate resolver
    /// does, inside the call that processes the ClientHello.
    static SNI_SEEN: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Returns `config` with a certificate resolver that notes the SNI for the
/// connection being served, then resolves as `config` does.
pub(crate) fn recording_sni(config: &Arc<ServerConfig>) -> Arc<ServerConfig> {
    let mut recording = ServerConfig::clone(config);
    recording.cert_resolver = Arc::new(SniRecorder(Arc::clone(&config.cert_resolver)));
    Arc::new(recording)
}

/// A certificate resolver that notes the ClientHello's server name.
#[derive(Debug)]
struct SniRecorder(Arc<dyn ResolvesServerCert>);

impl ResolvesServerCert for SniRecorder {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = client_hello.server_name().map(str::to_owned);
        SNI_SEEN.with_borrow_mut(|seen| *seen = name);
        self.0.resolve(client_hello)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.0.only_raw_public_keys()
    }
}

/// Plaintext waiting to go into rustls: the connection's pending output.
pub(crate) trait PlaintextSource {
    /// Returns the bytes not yet given to rustls.
    fn unsent(&self) -> &[u8];
    /// Marks `n` bytes from the front as given.
    fn consume(&mut self, n: usize);
}

/// The socket as rustls writes to it, through the readiness bookkeeping.
struct SocketWriter<'a, W> {
    readiness: &'a mut StreamReadiness,
    stream: &'a mut W,
}

impl<W: Write> Write for SocketWriter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if !self.readiness.is_writable() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match self.readiness.write(self.stream, bytes) {
            Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};
    use std::io::Read;

    #[test]
    fn a_worker_keeps_a_bounded_number_of_spare_buffers_of_useful_size() {
        // Each test runs on its own thread, so its spares are its own.
        for _ in 0..3 * SPARE_BUFFERS {
            give_back(&mut Vec::with_capacity(LENT_CAPACITY));
        }
        give_back(&mut Vec::with_capacity(16));
        give_back(&mut Vec::with_capacity(4 * MAX_INCOMING));
        let capacities: Vec<usize> =
            SPARES.with_borrow(|spares| spares.iter().map(Vec::capacity).collect());
        assert_eq!(capacities, vec![LENT_CAPACITY; SPARE_BUFFERS]);
        let mut buffer = lend();
        assert!(buffer.is_empty() && buffer.capacity() >= LENT_CAPACITY);
        buffer.extend_from_slice(b"abc");
        give_back(&mut buffer);
        assert_eq!(buffer.capacity(), 0, "the owner holds nothing after");
        assert!(SPARES.with_borrow(|spares| spares.iter().all(Vec::is_empty)));
    }

    /// A layer and a client under one self-signed certificate.
    pub(crate) fn pair() -> (TlsLayer, ClientConnection) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der: CertificateDer<'static> = certified.cert.der().clone();
        let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
        let server = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(der).unwrap();
        let client = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let layer = TlsLayer::new(recording_sni(&Arc::new(server))).unwrap();
        let client =
            ClientConnection::new(Arc::new(client), "localhost".try_into().unwrap()).unwrap();
        (layer, client)
    }

    /// Moves the client's records to the layer and the layer's to the
    /// client, `rounds` times.
    fn exchange(layer: &mut TlsLayer, client: &mut ClientConnection, rounds: usize) {
        for _ in 0..rounds {
            let mut records = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut records).unwrap();
            }
            if !records.is_empty() {
                assert!(layer.receive(&mut &records[..]).unwrap());
            }
            let sent = std::mem::take(&mut layer.outgoing);
            if !sent.is_empty() {
                client.read_tls(&mut &sent[..]).unwrap();
                client.process_new_packets().unwrap();
            }
        }
    }

    #[test]
    fn an_idle_connection_holds_no_buffer_after_its_handshake_and_an_exchange() {
        let (mut layer, mut client) = pair();
        exchange(&mut layer, &mut client, 4);
        assert!(!layer.is_handshaking() && !client.is_handshaking());
        assert_eq!(
            layer.transport(),
            Transport::Tls {
                version: ProtocolVersion::TLSv1_3,
                sni: Some("localhost".into()),
            }
        );

        client.writer().write_all(b"hello").unwrap();
        exchange(&mut layer, &mut client, 1);
        assert_eq!(layer.plaintext(), Plaintext::Data(b"hello".to_vec()));
        assert_eq!(layer.plaintext(), Plaintext::Nothing);
        assert_eq!(layer.drive(Send::Plaintext(b"HELLO")).unwrap(), 5);
        exchange(&mut layer, &mut client, 1);
        let mut answer = [0; 5];
        client.reader().read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"HELLO");

        assert_eq!(layer.buffered_capacity(), 0, "idle buffers stay allocated");
    }

    #[test]
    fn a_close_notify_reads_as_closed_and_a_bare_end_as_truncated() {
        let (mut layer, mut client) = pair();
        exchange(&mut layer, &mut client, 4);
        client.send_close_notify();
        exchange(&mut layer, &mut client, 1);
        assert_eq!(layer.plaintext(), Plaintext::Closed);
        assert!(
            !layer.receive(&mut &b"more"[..]).unwrap(),
            "taken after close_notify"
        );

        let (mut layer, mut client) = pair();
        exchange(&mut layer, &mut client, 4);
        assert!(layer.receive(&mut &b""[..]).unwrap());
        assert_eq!(layer.plaintext(), Plaintext::Truncated);
    }

    #[test]
    fn a_handshake_message_too_large_to_hold_is_an_error_not_a_growing_buffer() {
        let (mut layer, _) = pair();
        // A ClientHello announcing 1 MiB, then record after record of it.
        let mut first = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x10, 0x00, 0x00];
        first.resize(5 + 0x4000, 0);
        let mut more = vec![0x16, 0x03, 0x01, 0x40, 0x00];
        more.resize(5 + 0x4000, 0);
        let mut outcome = layer.receive(&mut &first[..]);
        for _ in 0..64 {
            if outcome.is_err() {
                break;
            }
            assert!(layer.buffered_capacity() <= 2 * MAX_INCOMING);
            outcome = layer.receive(&mut &more[..]);
        }
        assert!(outcome.is_err(), "1 MiB of one handshake message taken");
    }

    #[test]
    fn bad_records_are_an_error_with_an_alert_queued() {
        let (mut layer, mut client) = pair();
        exchange(&mut layer, &mut client, 4);
        // An application-data record whose content cannot authenticate.
        let forged = [0x17, 0x03, 0x03, 0x00, 0x20].into_iter().chain([0xAA; 32]);
        let forged: Vec<u8> = forged.collect();
        assert!(layer.receive(&mut &forged[..]).is_err());
        assert!(layer.wants_write(), "the alert is queued");
    }
}
