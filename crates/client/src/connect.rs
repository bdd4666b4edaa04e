//! Opening TCP connections: every resolved address in order until one
//! accepts.

use crate::{ClientError, Resolve, Target};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A resolved target, ready to connect (and reconnect) without resolving
/// again, so that a reconnection costs a handshake and nothing more.
#[derive(Debug, Clone)]
pub struct Connector {
    target: Target,
    addrs: Vec<SocketAddr>,
    timeout: Option<Duration>,
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
        }
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
                Ok(stream) => {
                    let connect_time = started.elapsed();
                    log::info!(
                        "connected to tcp {addr} in {:.3} ms",
                        connect_time.as_secs_f64() * 1e3
                    );
                    return Ok(Connection {
                        stream,
                        peer: addr,
                        connect_time,
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

/// An open TCP connection to a shout server.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    connect_time: Duration,
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

    /// Gives back the socket.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}
