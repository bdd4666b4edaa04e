//! Where to send: a `HOST:PORT` as a person types it, and its resolution to
//! socket addresses by a resolver the caller may choose.

use crate::ClientError;
use shout_protocol::DEFAULT_PORT;
use std::fmt;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// Turns a host and a port into socket addresses.
///
/// The client asks [`SystemResolver`] unless told otherwise. Another resolver
/// serves a program with its own name service, and tests that must not send
/// a DNS query. Any `Fn(&str, u16) -> io::Result<Vec<SocketAddr>>` is one.
pub trait Resolve {
    /// Returns every address of `host` with `port`, in the order in which to
    /// try them. An empty list means the name has no addresses.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

impl<F> Resolve for F
where
    F: Fn(&str, u16) -> io::Result<Vec<SocketAddr>>,
{
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self(host, port)
    }
}

/// The system's resolver, through std's [`ToSocketAddrs`]: IP literals at
/// once, names by `getaddrinfo` (the hosts file, DNS, whatever the system is
/// set up to ask).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// A server to talk to: a host (a name, an IPv4 or an IPv6 literal) and a
/// port.
///
/// Parsed from `HOST:PORT`, `HOST` alone (port [`DEFAULT_PORT`]),
/// `[IPV6]:PORT`, `[IPV6]` or a bare IPv6 literal such as `::1`;
/// [`Target::parse_with_default_port`] gives a host without a port
/// another port, such as [`DEFAULT_TLS_PORT`](crate::DEFAULT_TLS_PORT).
///
/// ```
/// use shout_client::Target;
///
/// let target: Target = "[::1]:8080".parse().unwrap();
/// assert_eq!((target.host(), target.port()), ("::1", 8080));
/// assert_eq!(target.to_string(), "[::1]:8080");
/// let default: Target = "localhost".parse().unwrap();
/// assert_eq!(default.port(), 12000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    host: String,
    port: u16,
}

/// Why a text is not a `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {text:?}: {reason}")]
pub struct TargetError {
    text: String,
    reason: &'static str,
}

impl Target {
    /// The target `host:port`. `host` is a name or an IP literal without
    /// brackets.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// Parses `text` as [`FromStr`] does, giving `default_port` to a host
    /// typed without a port.
    ///
    /// ```
    /// use shout_client::{DEFAULT_TLS_PORT, Target};
    ///
    /// let tls = Target::parse_with_default_port("localhost", DEFAULT_TLS_PORT).unwrap();
    /// assert_eq!(tls.to_string(), "localhost:12443");
    /// let given = Target::parse_with_default_port("[::1]:9", DEFAULT_TLS_PORT).unwrap();
    /// assert_eq!(given.port(), 9);
    /// ```
    pub fn parse_with_default_port(text: &str, default_port: u16) -> Result<Self, TargetError> {
        let fail = |reason| TargetError {
            text: text.to_owned(),
            reason,
        };
        let parse_port = |port: &str| {
            port.parse::<u16>()
                .map_err(|_| fail("the port is not a number from 0 to 65535"))
        };
        if let Some(bracketed) = text.strip_prefix('[') {
            let (host, rest) = bracketed
                .split_once(']')
                .ok_or_else(|| fail("an IPv6 address opened with '[' needs its ']'"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(fail("only an IPv6 address goes between brackets"));
            }
            let port = match rest {
                "" => default_port,
                _ => parse_port(
                    rest.strip_prefix(':')
                        .ok_or_else(|| fail("expected ':PORT' after ']'"))?,
                )?,
            };
            return Ok(Self::new(host, port));
        }
        if text.parse::<Ipv6Addr>().is_ok() {
            return Ok(Self::new(text, default_port));
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (host, parse_port(port)?),
            None => (text, default_port),
        };
        if host.is_empty() {
            return Err(fail("the host is missing"));
        }
        if host.contains(':') {
            return Err(fail("write an IPv6 address with a port as [ADDRESS]:PORT"));
        }
        Ok(Self::new(host, port))
    }

    /// The host, as given (an IPv6 literal without its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns every address the host resolves to by the system's resolver,
    /// in its order (the order in which to try them).
    pub fn resolve(&self) -> Result<Vec<SocketAddr>, ClientError> {
        self.resolve_with(&SystemResolver)
    }

    /// Returns every address `resolver` gives the host, in its order.
    ///
    /// A resolver's failure, or an empty list, is [`ClientError::Resolve`].
    pub fn resolve_with(&self, resolver: &dyn Resolve) -> Result<Vec<SocketAddr>, ClientError> {
        let resolve_error = |source| ClientError::Resolve {
            host: self.host.clone(),
            source,
        };
        let addrs = resolver
            .resolve(&self.host, self.port)
            .map_err(resolve_error)?;
        if addrs.is_empty() {
            return Err(resolve_error(io::Error::new(
                io::ErrorKind::NotFound,
                "the name has no addresses",
            )));
        }
        log::debug!("{self} resolves to {addrs:?}");
        Ok(addrs)
    }
}

impl Default for Target {
    /// `localhost:12000`, where a server started without options listens.
    fn default() -> Self {
        Self::new("localhost", DEFAULT_PORT)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse_with_default_port(text, DEFAULT_PORT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shout_protocol::DEFAULT_TLS_PORT;

    fn parse(text: &str) -> Result<(String, u16), TargetError> {
        text.parse::<Target>()
            .map(|target| (target.host().to_owned(), target.port()))
    }

    #[test]
    fn accepted_forms() {
        let ok = |host: &str, port| Ok((host.to_owned(), port));
        assert_eq!(parse("localhost:12000"), ok("localhost", 12000));
        assert_eq!(parse("example.com"), ok("example.com", DEFAULT_PORT));
        assert_eq!(parse("127.0.0.1:80"), ok("127.0.0.1", 80));
        assert_eq!(parse("[::1]:12000"), ok("::1", 12000));
        assert_eq!(parse("[::1]"), ok("::1", DEFAULT_PORT));
        assert_eq!(parse("::1"), ok("::1", DEFAULT_PORT));
        assert_eq!(parse("fe80::1"), ok("fe80::1", DEFAULT_PORT));
    }

    #[test]
    fn a_host_without_a_port_takes_the_default_given() {
        let parse = |text| {
            Target::parse_with_default_port(text, DEFAULT_TLS_PORT)
                .map(|target| (target.host().to_owned(), target.port()))
        };
        let ok = |host: &str, port| Ok((host.to_owned(), port));
        assert_eq!(parse("localhost"), ok("localhost", 12443));
        assert_eq!(parse("[::1]"), ok("::1", 12443));
        assert_eq!(parse("::1"), ok("::1", 12443));
        assert_eq!(parse("localhost:12000"), ok("localhost", 12000));
        assert_eq!(parse("[::1]:7"), ok("::1", 7));
        assert!(parse("host:port").is_err());
    }

    #[test]
    fn refused_forms_say_why() {
        for (text, reason) in [
            ("", "host is missing"),
            (":12000", "host is missing"),
            ("host:port", "not a number"),
            ("host:70000", "not a number"),
            ("[::1", "needs its ']'"),
            ("[::1]x", "':PORT'"),
            ("[name]:1", "only an IPv6"),
            ("::1:zz", "not a number"),
            ("fe80::1::2:80", "[ADDRESS]:PORT"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["localhost:1", "[::1]:12000", "10.0.0.1:5"] {
            assert_eq!(text.parse::<Target>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn literals_resolve_without_a_name_service() {
        let addrs = Target::new("::1", 7).resolve().unwrap();
        assert_eq!(addrs, vec!["[::1]:7".parse().unwrap()]);
    }

    #[test]
    fn the_resolver_given_is_asked_for_the_host_as_typed() {
        let asked = std::cell::RefCell::new(Vec::new());
        let resolver = |host: &str, port| {
            asked.borrow_mut().push((host.to_owned(), port));
            Ok(vec![SocketAddr::from(([127, 0, 0, 2], port))])
        };
        let addrs = Target::new("server.test", 9)
            .resolve_with(&resolver)
            .unwrap();
        assert_eq!(addrs, vec!["127.0.0.2:9".parse().unwrap()]);
        assert_eq!(asked.into_inner(), vec![("server.test".to_owned(), 9)]);
    }

    #[test]
    fn a_failed_or_empty_resolution_is_a_resolve_error() {
        let target = Target::new("nowhere.test", 1);
        let failing = |_: &str, _| -> io::Result<Vec<SocketAddr>> {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "Name or service not known",
            ))
        };
        let error = target.resolve_with(&failing).unwrap_err();
        assert_eq!(error.category(), crate::ErrorCategory::Resolve);
        assert_eq!(
            error.to_string(),
            "cannot resolve nowhere.test: Name or service not known"
        );
        let empty = |_: &str, _| Ok(Vec::new());
        let error = target.resolve_with(&empty).unwrap_err();
        assert_eq!(error.category(), crate::ErrorCategory::Resolve);
        assert_eq!(
            error.to_string(),
            "cannot resolve nowhere.test: the name has no addresses"
        );
    }
}
