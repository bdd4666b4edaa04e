//! The PROXY protocol (v1 text, v2 binary) on TCP and TLS listeners: the
//! header a balancer sends before anything else, parsed by the `ppp`
//! crate, whose source address replaces the socket's peer.
//!
//! This module only reads and checks the header, with no I/O: it is the
//! prelude stage of a [`Connection`](crate::connection::Connection) on a
//! listener that asks for one. Charging the client and opening the service
//! are the worker's business.

use ppp::{HeaderResult, PartialResult, v1, v2};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// The most header bytes buffered. A v1 header has at most 107; v2 allows
/// 16 + 65,535, but addresses and the usual TLVs take far less, and a
/// sender that needs more is refused rather than given 64 KiB per
/// connection.
pub const MAX_PROXY_HEADER: usize = 536;

/// A network in CIDR form (`10.0.0.0/8`, `::1/128`): an address and how
/// many of its leading bits count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// Returns the network of `addr`'s first `len` bits, or `None` if
    /// `len` is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        (len <= bits).then_some(Self { addr, len })
    }

    /// Returns the loopback networks, 127.0.0.0/8 and ::1/128.
    pub fn loopback() -> Vec<Self> {
        vec![
            Self {
                addr: IpAddr::from([127, 0, 0, 0]),
                len: 8,
            },
            Self {
                addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                len: 128,
            },
        ]
    }

    /// Returns whether `ip` is in this network. An IPv4-mapped IPv6
    /// address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.len,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(net.to_bits(), ip.to_bits(), 128, self.len)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: u128, ip: u128, bits: u8, len: u8) -> bool {
    let shift = bits - len;
    shift >= bits || (net >> shift) == (ip >> shift)
}

impl FromStr for IpPrefix {
    type Err = String;

    /// Parses `ADDR/LEN`, or a bare address (a network of one).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?}: not an IP address or CIDR network"))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(len) => len
                .parse::<u8>()
                .map_err(|_| format!("{text:?}: the prefix length is not a number"))?,
            None => bits,
        };
        Self::new(addr, len).ok_or_else(|| format!("{text:?}: a prefix longer than {bits} bits"))
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The senders allowed to send a header; a worker's copy.
#[derive(Debug, Clone)]
pub(crate) struct ProxyTrust(pub(crate) Vec<IpPrefix>);

impl ProxyTrust {
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

/// The header bytes received so far, on a connection whose header is not
/// complete yet.
#[derive(Debug, Default)]
pub(crate) struct HeaderBuffer(Vec<u8>);

/// What a header says about the client.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// The client's address (a PROXY command with TCP addresses).
    Client(SocketAddr),
    /// The socket's own peer stands: a LOCAL command (a health check), or
    /// an address the header does not give (UNKNOWN, UNSPEC, a Unix one).
    Socket,
}

/// How far a header has come.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Incomplete,
    /// The whole header, `len` bytes long.
    Complete {
        len: usize,
        source: Source,
    },
    Invalid(String),
}

/// The longest v1 header, its line end included.
const V1_MAX: usize = 107;

/// The v2 signature, the first 12 bytes of a binary header.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

fn parse(bytes: &[u8]) -> Parsed {
    // Input that cannot begin a header is refused at once, not at the
    // deadline: `ppp` would wait for 16 bytes to rule out a v2 header.
    let begins = |signature: &[u8]| {
        let n = bytes.len().min(signature.len());
        bytes[..n] == signature[..n]
    };
    if begins(b"PROXY ") {
        // `ppp` reads a v1 line cut short as a malformed one (and some
        // malformed ones as cut short): wait for its end, within the 107
        // bytes it may take, then parse it as v1 only.
        if !bytes.contains(&b'\n') {
            return if bytes.len() < V1_MAX {
                Parsed::Incomplete
            } else {
                Parsed::Invalid(format!("a v1 header longer than {V1_MAX} bytes"))
            };
        }
        return complete(HeaderResult::V1(v1::Header::try_from(bytes)));
    }
    if !begins(V2_SIGNATURE) {
        return Parsed::Invalid("not a PROXY protocol header".into());
    }
    let result = HeaderResult::parse(bytes);
    if result.is_incomplete() {
        return Parsed::Incomplete;
    }
    complete(result)
}

/// Reads a parse result that is not waiting for more input.
fn complete(result: HeaderResult<'_>) -> Parsed {
    match result {
        HeaderResult::V1(Ok(header)) => {
            let source = match header.addresses {
                v1::Addresses::Tcp4(a) => {
                    Source::Client(SocketAddr::from((a.source_address, a.source_port)))
                }
                v1::Addresses::Tcp6(a) => {
                    Source::Client(SocketAddr::from((a.source_address, a.source_port)))
                }
                v1::Addresses::Unknown => Source::Socket,
            };
            Parsed::Complete {
                len: header.header.len(),
                source,
            }
        }
        HeaderResult::V2(Ok(header)) => {
            let source = match (header.command, header.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Source::Client(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Source::Client(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => Source::Socket,
            };
            Parsed::Complete {
                len: header.len(),
                source,
            }
        }
        HeaderResult::V1(Err(error)) => Parsed::Invalid(error.to_string()),
        HeaderResult::V2(Err(error)) => Parsed::Invalid(error.to_string()),
    }
}

impl HeaderBuffer {
    /// Takes one read's bytes into the header. Returns how many of them
    /// the header took and the client it names once it is whole (the rest
    /// is the client's), `None` while it is not, and why when it can never
    /// be a header. A LOCAL header (a balancer's health check) names
    /// `peer`, the socket's own.
    pub(crate) fn push(
        &mut self,
        data: &[u8],
        peer: SocketAddr,
    ) -> Result<Option<(usize, SocketAddr)>, String> {
        let buffer = &mut self.0;
        let before = buffer.len();
        let room = MAX_PROXY_HEADER - before;
        buffer.extend_from_slice(&data[..data.len().min(room)]);
        match parse(buffer) {
            Parsed::Incomplete if buffer.len() == MAX_PROXY_HEADER => {
                Err(format!("longer than {MAX_PROXY_HEADER} bytes"))
            }
            Parsed::Incomplete => Ok(None),
            Parsed::Invalid(error) => Err(error),
            Parsed::Complete { len, source } => {
                let client = match source {
                    Source::Client(client) => client,
                    Source::Socket => peer,
                };
                Ok(Some((len - before, client)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shout_testkit::proxy_v2_header;

    #[test]
    fn a_v1_header_gives_its_source_and_length() {
        let header = "PROXY TCP4 192.0.2.7 127.0.0.1 5555 4000\r\n";
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(b"hello\n");
        assert_eq!(
            parse(&bytes),
            Parsed::Complete {
                len: header.len(),
                source: Source::Client("192.0.2.7:5555".parse().unwrap()),
            }
        );
        for cut in 0..header.len() {
            assert_eq!(parse(&bytes[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn a_v2_header_gives_its_source_and_a_local_one_none() {
        let header = proxy_v2_header(v2::Command::Proxy, "[2001:db8::9]:7000");
        assert_eq!(
            parse(&header),
            Parsed::Complete {
                len: header.len(),
                source: Source::Client("[2001:db8::9]:7000".parse().unwrap()),
            }
        );
        for cut in 0..header.len() {
            assert_eq!(parse(&header[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
        let local = proxy_v2_header(v2::Command::Local, "192.0.2.7:5555");
        assert!(matches!(
            parse(&local),
            Parsed::Complete {
                source: Source::Socket,
                ..
            }
        ));
    }

    #[test]
    fn garbage_is_invalid() {
        assert!(matches!(parse(b"GET / HTTP/1.1\r\n"), Parsed::Invalid(_)));
        assert!(matches!(parse(b"hi\n"), Parsed::Invalid(_)));
        assert_eq!(parse(b"PROX"), Parsed::Incomplete);
        assert_eq!(parse(&V2_SIGNATURE[..5]), Parsed::Incomplete);
        assert!(matches!(
            parse(b"PROXY TCP4 nonsense\r\n"),
            Parsed::Invalid(_)
        ));
    }

    #[test]
    fn prefixes_parse_and_match() {
        let net: IpPrefix = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let all: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        assert!(!all.contains("::2".parse().unwrap()));
        let one: IpPrefix = "::1".parse().unwrap();
        assert_eq!(one.to_string(), "::1/128");
        assert!(one.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpPrefix>().is_err());
        assert!("ten/8".parse::<IpPrefix>().is_err());
        assert!("10.0.0.0/x".parse::<IpPrefix>().is_err());
        let loopback = ProxyTrust(IpPrefix::loopback());
        assert!(loopback.trusts("127.0.0.2".parse().unwrap()));
        assert!(!loopback.trusts("192.0.2.1".parse().unwrap()));
    }
}
