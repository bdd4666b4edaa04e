//! Opening TCP connections: every resolved address in order until one
//! accepts, then the TLS handshake when the connector has TLS.

use crate::{ClientError, Resolve, Target, TlsClient};
use rustls::ClientConnection;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A resolved target, ready to connect (and reconnect) without resolving
/// again, so that a reconnection costs a handshake and nothing more.
#[derive(Debug, Clone)]
pub struct Connector {
    target: Target,
    addrs: Vec<SocketAddr>,
    timeout: Option<Duration>,
    tls: Option<TlsClient>,
}

impl Connector {
    /// Resolves `target` by the system's resolver; each later connection
    /// attempt to one address waits at most `timeout` (the system's own limit
    /// when `None`).
    pub fn resolve(target: &Target, timeout: Option<Duration>) -> Result<Self, ClientError> {
        Ok(Self::new(target.clone(), target.resolve()?, timeout))
    }

    /// Resolves `target` by `resolver`, then as [`Connector::resolve`].
    pub fn resolve_with(
        target: &Target,
        resolver: &dyn Resolve,
        timeout: Option<Duration>,
    ) -> Result<Self, ClientError> {
        Ok(Self::new(
            target.clone(),
            target.resolve_with(resolver)?,
            timeout,
        ))
    }

    /// A connector for addresses resolved elsewhere, tried in the order given.
    pub fn new(target: Target, addrs: Vec<SocketAddr>, timeout: Option<Duration>) -> Self {
        Self {
            target,
            addrs,
            timeout,
            tls: None,
        }
    }

    /// Makes every connection speak TLS with `tls` once TCP is connected.
    pub fn with_tls(mut self, tls: TlsClient) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The TLS configuration, when connections speak TLS.
    pub fn tls(&self) -> Option<&TlsClient> {
        self.tls.as_ref()
    }

    /// The target as given.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The addresses, in the order they are tried.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Connects to the first address that accepts, trying each in order.
    /// When none does, the error is that of the last one tried.
    pub fn connect(&self) -> Result<Connection, ClientError> {
        let mut last_error = None;
        for &addr in &self.addrs {
            log::info!("connecting to tcp {addr}");
            let started = Instant::now();
            match shout_socket::connect_tcp(addr, self.timeout) {
                Ok(mut stream) => {
                    let connect_time = started.elapsed();
                    log::info!(
                        "connected to tcp {addr} in {:.3} ms",
                        connect_time.as_secs_f64() * 1e3
                    );
                    // A TLS failure is not tried on the next address: the
                    // same server would present the same certificate.
                    let tls = match &self.tls {
                        Some(tls) => Some(tls.handshake(&mut stream, addr, self.timeout)?),
                        None => None,
                    };
                    let (tls, tls_time) = match tls {
                        Some((tls, time)) => (Some(tls), Some(time)),
                        None => (None, None),
                    };
                    return Ok(Connection {
                        stream,
                        peer: addr,
                        connect_time,
                        tls,
                        tls_time,
                    });
                }
                Err(error) => {
                    log::info!("{error}");
                    last_error = Some(error);
                }
            }
        }
        match last_error {
            Some(source) => Err(ClientError::Connect {
                target: self.target.clone(),
                tried: self.addrs.len(),
                source,
            }),
            None => Err(ClientError::Resolve {
                host: self.target.host().to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the name has no addresses",
                ),
            }),
        }
    }
}

/// An open TCP connection to a shout server, with TLS on it when the
/// connector had TLS. Reading and writing it moves plaintext either way.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    connect_time: Duration,
    tls: Option<ClientConnection>,
    tls_time: Option<Duration>,
}

impl Connection {
    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The server's address that accepted.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// How long the handshake took (about one round trip).
    pub fn connect_time(&self) -> Duration {
        self.connect_time
    }

    /// How long the TLS handshake took, after the TCP one; `None` without
    /// TLS.
    pub fn tls_time(&self) -> Option<Duration> {
        self.tls_time
    }

    /// Whether the connection speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Gives back the socket, and the TLS state when there is one.
    pub fn into_parts(self) -> (TcpStream, Option<ClientConnection>) {
        (self.stream, self.tls)
    }

    /// Ends the sending direction: a TLS close_notify when TLS is on, then
    /// a TCP half-close.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            while tls.wants_write() {
                tls.write_tls(&mut self.stream)?;
            }
        }
        self.stream.shutdown(std::net::Shutdown::Write)
    }
}

/// Reads plaintext: the socket's bytes, or what TLS decrypted. Over TLS, the
/// end is the server's close_notify; a TCP close without it is an error of
/// kind `UnexpectedEof` (the reply may have been cut).
impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            Some(tls) => rustls::Stream::new(tls, &mut self.stream).read(buf),
            None => self.stream.read(buf),
        }
    }
}

/// Writes plaintext, encrypted first when TLS is on.
impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.tls {
            Some(tls) => rustls::Stream::new(tls, &mut self.stream).write(buf),
            None => self.stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.tls {
            Some(tls) => rustls::Stream::new(tls, &mut self.stream).flush(),
            None => self.stream.flush(),
        }
    }
}
