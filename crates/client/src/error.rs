//! The one error type of the client library, worded for the person who reads
//! it, and the coarse categories a command-line tool turns into exit codes.

use crate::{Target, Transport};
use shout_protocol::MAX_DATAGRAM_PAYLOAD;
use shout_socket::SocketError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// What went wrong, in the few classes a caller reacts to differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// The host name does not resolve to any address.
    Resolve,
    /// The server's host answered that nothing listens on that port (a TCP
    /// reset to the handshake, or an ICMP port-unreachable for a datagram).
    Refused,
    /// Nothing came back in time: a connection attempt, a TCP reply, or every
    /// try of a datagram.
    Timeout,
    /// A connection was made but broke, the server broke the protocol (a
    /// plain port that answers with TLS), or the network failed otherwise.
    Connection,
    /// The TLS handshake failed: the server's certificate is not trusted,
    /// or the server does not speak TLS as the client does.
    Tls,
    /// The problem is on this side: the input, the output, a request too
    /// large for a datagram, a socket that could not be created.
    Local,
}

/// Why a client operation failed. Each message names the address involved
/// and the cause, in one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The name as given.
        host: String,
        /// The resolver's answer.
        #[source]
        source: io::Error,
    },
    /// No address of the target accepted a TCP connection. `source` is the
    /// failure of the last address tried.
    #[error("{source}{}", tried_note(*.tried, target))]
    Connect {
        /// The target as given.
        target: Target,
        /// How many addresses were tried.
        tried: usize,
        /// Why the last address failed.
        #[source]
        source: SocketError,
    },
    /// A datagram was answered with ICMP port unreachable by every address.
    #[error("udp {addr} refused the datagram — is a server listening there?")]
    UdpRefused {
        /// The last address tried.
        addr: SocketAddr,
    },
    /// A socket could not be created or bound.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// No datagram reply came in any of the attempts.
    #[error(
        "no reply from udp {addr} after {attempts} attempt{} (timeout {}s each)",
        plural(u64::from(*.attempts)),
        Secs(*.timeout)
    )]
    NoReply {
        /// The server's address.
        addr: SocketAddr,
        /// How many datagrams were sent.
        attempts: u32,
        /// How long each attempt waited.
        timeout: Duration,
    },
    /// No byte of a TCP reply came in time.
    #[error("tcp {addr} sent no reply within {}s", Secs(*.timeout))]
    ReplyTimeout {
        /// The server's address.
        addr: SocketAddr,
        /// How long the client waited without receiving a byte.
        timeout: Duration,
    },
    /// A TCP reply began, then stopped: no further byte came in time.
    #[error(
        "tcp {addr} sent {received}{} reply bytes, then nothing for {}s",
        of_expected(*.expected),
        Secs(*.timeout)
    )]
    ReplyStalled {
        /// The server's address.
        addr: SocketAddr,
        /// The reply bytes that arrived.
        received: u64,
        /// The reply bytes the request called for, when known (in piped mode
        /// it is known once all input is sent).
        expected: Option<u64>,
        /// How long the client waited after the last byte.
        timeout: Duration,
    },
    /// The server closed (or reset) the connection before its reply was
    /// complete.
    #[error("tcp {addr} closed the connection after {received} of the {expected} reply bytes")]
    ClosedEarly {
        /// The server's address.
        addr: SocketAddr,
        /// The reply bytes that arrived.
        received: u64,
        /// The reply bytes the request called for.
        expected: u64,
    },
    /// The server closed the connection while input was still being sent.
    #[error("tcp {addr} closed the connection before taking all of the input ({sent} bytes sent)")]
    ClosedBeforeInputEnd {
        /// The server's address.
        addr: SocketAddr,
        /// The bytes sent before it closed.
        sent: u64,
    },
    /// Sending or receiving failed for another reason.
    #[error("{action} {transport} {addr} failed: {source}")]
    Network {
        /// What was being done, as a phrase ("sending to").
        action: &'static str,
        /// The transport in use.
        transport: Transport,
        /// The server's address.
        addr: SocketAddr,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// A plain TCP reply began with a TLS record header (an alert or a
    /// handshake) instead of the request's uppercase: the port speaks TLS.
    /// Nothing of it was written out.
    #[error("tcp {addr}: the server answered with TLS: use --tls")]
    TlsAnswer {
        /// The server's address.
        addr: SocketAddr,
    },
    /// A request, or its uppercase reply, does not fit in one datagram; it was
    /// not sent.
    #[error(
        "not sent: a request of {request_len} bytes with a reply of {reply_len} bytes does not fit the {MAX_DATAGRAM_PAYLOAD}-byte datagram limit"
    )]
    DatagramTooLarge {
        /// The request's length in bytes.
        request_len: usize,
        /// The length its reply would have.
        reply_len: usize,
    },
    /// The TLS handshake failed; `reason` names why in words ("the
    /// server's certificate is not trusted: unknown issuer").
    #[error("tls {addr}: {reason}")]
    Tls {
        /// The server's address.
        addr: SocketAddr,
        /// Why, in words.
        reason: String,
    },
    /// A QUIC connection failed or the server closed it; `reason` says why
    /// in words. A TLS failure inside QUIC is [`ClientError::Tls`].
    #[error("quic {addr}: {reason}")]
    Quic {
        /// The server's address.
        addr: SocketAddr,
        /// Why, in words.
        reason: String,
    },
    /// A WebSocket failed: the upgrade was refused, or the server broke
    /// the protocol or closed before its reply.
    #[error("ws {addr}: {reason}")]
    WebSocket {
        /// The server's address.
        addr: SocketAddr,
        /// Why, in words.
        reason: String,
    },
    /// The TLS configuration could not be made: a CA file that does not
    /// load, an invalid server name, no system roots.
    #[error("tls: {reason}")]
    TlsConfig {
        /// Why, naming the file when there is one.
        reason: String,
    },
    /// Reading the input failed.
    #[error("reading the input failed: {0}")]
    Input(#[source] io::Error),
    /// Writing the output failed.
    #[error("writing the output failed: {0}")]
    Output(#[source] io::Error),
    /// The thread that sends a stream could not be started or stopped
    /// without a result.
    #[error("the sending thread failed: {0}")]
    Sender(#[source] io::Error),
}

impl ClientError {
    /// The class of the failure, for exit codes and for deciding whether to
    /// go on.
    pub fn category(&self) -> ErrorCategory {
        match self {
            ClientError::Resolve { .. } => ErrorCategory::Resolve,
            ClientError::Connect { source, .. } => match source.kind() {
                io::ErrorKind::ConnectionRefused => ErrorCategory::Refused,
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorCategory::Timeout,
                _ => ErrorCategory::Connection,
            },
            ClientError::UdpRefused { .. } => ErrorCategory::Refused,
            ClientError::NoReply { .. }
            | ClientError::ReplyTimeout { .. }
            | ClientError::ReplyStalled { .. } => ErrorCategory::Timeout,
            ClientError::Network { source, .. } if source.kind() == io::ErrorKind::TimedOut => {
                ErrorCategory::Timeout
            }
            ClientError::ClosedEarly { .. }
            | ClientError::ClosedBeforeInputEnd { .. }
            | ClientError::TlsAnswer { .. }
            | ClientError::Network { .. }
            | ClientError::Quic { .. }
            | ClientError::WebSocket { .. } => ErrorCategory::Connection,
            ClientError::Tls { .. } => ErrorCategory::Tls,
            ClientError::Socket(_)
            | ClientError::TlsConfig { .. }
            | ClientError::DatagramTooLarge { .. }
            | ClientError::Input(_)
            | ClientError::Output(_)
            | ClientError::Sender(_) => ErrorCategory::Local,
        }
    }
}

fn tried_note(tried: usize, target: &Target) -> String {
    if tried > 1 {
        format!(" (tried all {tried} addresses of {})", target.host())
    } else {
        String::new()
    }
}

fn of_expected(expected: Option<u64>) -> String {
    expected.map_or_else(String::new, |expected| format!(" of the {expected}"))
}

fn plural(count: u64) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// A duration shown in seconds the way a person typed it: `1`, `0.25`.
#[derive(Debug, Clone, Copy)]
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_address_and_the_limit() {
        let addr: SocketAddr = "127.0.0.1:12000".parse().unwrap();
        let no_reply = ClientError::NoReply {
            addr,
            attempts: 4,
            timeout: Duration::from_millis(1500),
        };
        assert_eq!(
            no_reply.to_string(),
            "no reply from udp 127.0.0.1:12000 after 4 attempts (timeout 1.5s each)"
        );
        assert_eq!(no_reply.category(), ErrorCategory::Timeout);
        let one = ClientError::NoReply {
            addr,
            attempts: 1,
            timeout: Duration::from_secs(1),
        };
        assert!(
            one.to_string()
                .contains("after 1 attempt (timeout 1s each)")
        );
        let large = ClientError::DatagramTooLarge {
            request_len: 40_000,
            reply_len: 120_000,
        };
        assert!(large.to_string().contains("65507-byte datagram limit"));
        let stalled = ClientError::ReplyStalled {
            addr,
            received: 1024,
            expected: Some(5000),
            timeout: Duration::from_secs(10),
        };
        assert_eq!(
            stalled.to_string(),
            "tcp 127.0.0.1:12000 sent 1024 of the 5000 reply bytes, then nothing for 10s"
        );
        assert_eq!(stalled.category(), ErrorCategory::Timeout);
        assert_eq!(large.category(), ErrorCategory::Local);
    }
}
