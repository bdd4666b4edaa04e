//! The one error type of this crate, worded for the person who reads it.

use socket2::Protocol;
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// The step of setting up a socket that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketOperation {
    /// Creating the socket (`socket(2)`).
    Create,
    /// Setting an option on it.
    Configure,
    /// Binding it to a local address.
    Bind,
    /// Listening on it.
    Listen,
    /// Connecting it to a remote address.
    Connect,
}

/// A socket could not be set up. The message names the address and, where the
/// error code tells, the likely cause and what to do about it.
#[derive(Debug)]
pub struct SocketError {
    operation: SocketOperation,
    addr: SocketAddr,
    transport: &'static str,
    source: io::Error,
}

impl SocketError {
    pub(crate) fn new(
        operation: SocketOperation,
        addr: SocketAddr,
        protocol: Protocol,
        source: io::Error,
    ) -> Self {
        let transport = if protocol == Protocol::UDP {
            "udp"
        } else {
            "tcp"
        };
        Self {
            operation,
            addr,
            transport,
            source,
        }
    }

    /// Names the socket by what it serves, e.g. `ws` or `quic`, instead of
    /// its transport (`tcp` or `udp`), so that a message says which
    /// listener failed.
    #[must_use]
    pub fn serving(mut self, kind: &'static str) -> Self {
        self.transport = kind;
        self
    }

    /// The step that failed.
    pub fn operation(&self) -> SocketOperation {
        self.operation
    }

    /// The address being bound or connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The kind of the underlying I/O error, for callers that react to it
    /// (a client that maps refusals and timeouts to exit codes).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// Whether the error says the host has no IPv6 at all.
    pub(crate) fn means_no_ipv6(&self) -> bool {
        matches!(
            self.source.raw_os_error(),
            Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
        )
    }
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            operation,
            addr,
            transport,
            source,
        } = self;
        match (operation, source.kind()) {
            (SocketOperation::Bind, io::ErrorKind::AddrInUse) => {
                write!(
                    f,
                    "{transport} {addr} is already in use — is another shoutd running?"
                )
            }
            (SocketOperation::Bind, io::ErrorKind::PermissionDenied) => write!(
                f,
                "cannot bind {transport} {addr}: permission denied — ports below 1024 need root or CAP_NET_BIND_SERVICE"
            ),
            (SocketOperation::Bind, io::ErrorKind::AddrNotAvailable) => write!(
                f,
                "cannot bind {transport} {addr}: no network interface of this host has that address"
            ),
            (SocketOperation::Connect, io::ErrorKind::ConnectionRefused) => {
                write!(
                    f,
                    "{transport} {addr} refused the connection — is a server listening there?"
                )
            }
            (SocketOperation::Connect, io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                write!(f, "connecting to {transport} {addr} timed out")
            }
            (operation, _) => {
                let verb = match operation {
                    SocketOperation::Create => "create a socket for",
                    SocketOperation::Configure => "set socket options for",
                    SocketOperation::Bind => "bind",
                    SocketOperation::Listen => "listen on",
                    SocketOperation::Connect => "connect to",
                };
                write!(f, "cannot {verb} {transport} {addr}: {source}")
            }
        }
    }
}

impl std::error::Error for SocketError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
