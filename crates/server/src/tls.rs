//! The TLS layer of a connection: rustls's sans-io `ServerConnection`
//! between the socket and the service, so the same [`StreamService`]
//! runs over plain TCP or TLS.
//!
//! Ciphertext read from the socket goes into rustls; plaintext out of
//! rustls goes to the service; the service's output waits in the
//! connection's own pending buffer and is handed to rustls a record's worth
//! at a time, only when rustls has sent everything it held, so the bytes
//! rustls holds stay small and are counted as pending output.
//!
//! This module is not for configuring TLS: the caller builds the
//! `rustls::ServerConfig` (certificates, versions); ALPN and client
//! certificates are whatever that config says, and shoutd sets neither.
//!
//! [`StreamService`]: crate::StreamService

use rustls::{ProtocolVersion, ServerConfig, ServerConnection};
use shout_socket::StreamReadiness;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// How a connection reaches the service: plain TCP, or TLS over TCP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Transport {
    /// Plain TCP: bytes as they came.
    #[default]
    Plain,
    /// TLS, once the handshake is done.
    Tls {
        /// The protocol version agreed (TLS 1.2 or 1.3).
        version: ProtocolVersion,
        /// The server name the client asked for (SNI), if it sent one.
        sni: Option<String>,
    },
}

/// Plaintext handed to rustls per call: one full TLS record.
const RECORD: usize = 16 * 1024;

/// What [`TlsLayer::plaintext`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plaintext {
    /// `n` bytes of the client's data.
    Data(usize),
    /// Nothing more now.
    Nothing,
    /// The client's close_notify: its input is over, cleanly.
    Closed,
    /// The TCP stream ended without a close_notify: a truncation.
    Truncated,
}

/// One connection's TLS state.
pub(crate) struct TlsLayer {
    conn: ServerConnection,
    /// Plaintext given to rustls and not yet sent as records; zero once
    /// rustls holds nothing to send.
    in_flight: usize,
    /// The server's close_notify is queued.
    closing: bool,
}

impl TlsLayer {
    /// Returns the TLS state of a new connection under `config`.
    pub(crate) fn new(config: Arc<ServerConfig>) -> Result<Self, rustls::Error> {
        Ok(Self {
            conn: ServerConnection::new(config)?,
            in_flight: 0,
            closing: false,
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
            sni: self.conn.server_name().map(str::to_owned),
        }
    }

    /// Feeds ciphertext from the front of `input` into rustls and processes
    /// it; an empty `input` means the TCP stream ended. Returns whether
    /// rustls took any byte (or the end). A rustls error leaves an alert
    /// queued for [`flush`](Self::flush).
    pub(crate) fn receive(&mut self, input: &mut &[u8]) -> Result<bool, rustls::Error> {
        let before = input.len();
        let ended = before == 0;
        match self.conn.read_tls(input) {
            // The close_notify came: rustls takes nothing more.
            Ok(0) if !ended => return Ok(false),
            Ok(_) => {}
            // The received plaintext is full: the caller drains it first.
            Err(_) => return Ok(false),
        }
        self.conn.process_new_packets()?;
        Ok(ended || input.len() < before)
    }

    /// Takes the next plaintext the client sent into `buffer`.
    pub(crate) fn plaintext(&mut self, buffer: &mut [u8]) -> Plaintext {
        match self.conn.reader().read(buffer) {
            Ok(0) => Plaintext::Closed,
            Ok(n) => Plaintext::Data(n),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Plaintext::Truncated,
            Err(_) => Plaintext::Nothing,
        }
    }

    /// Returns the plaintext bytes rustls holds unsent.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Returns whether rustls holds records to send.
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Queues the server's close_notify, once.
    pub(crate) fn close(&mut self) {
        if !self.closing {
            self.closing = true;
            self.conn.send_close_notify();
        }
    }

    /// Sends rustls's records to the socket while it takes them, then
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
            while self.conn.wants_write() {
                let sent = self.conn.write_tls(&mut SocketWriter { readiness, stream });
                match sent {
                    Ok(0) => return Ok(written),
                    Ok(n) => written += n,
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
            let taken = self
                .conn
                .writer()
                .write(&bytes[..bytes.len().min(RECORD)])?;
            if taken == 0 {
                return Ok(written);
            }
            pending.consume(taken);
            self.in_flight = taken;
        }
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
