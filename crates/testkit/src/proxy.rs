//! PROXY protocol headers for tests of listeners that expect one.

use ppp::v2;
use std::net::SocketAddr;

/// Returns a PROXY v2 header for a TCP stream from `source` with
/// `command` (`Proxy`, or `Local` for a balancer's own health check), to a
/// loopback destination of the same family.
pub fn proxy_v2_header(command: v2::Command, source: &str) -> Vec<u8> {
    let source: SocketAddr = source.parse().expect("a socket address");
    let destination: SocketAddr = if source.is_ipv4() {
        "127.0.0.1:4000".parse().unwrap()
    } else {
        "[::1]:4000".parse().unwrap()
    };
    v2::Builder::with_addresses(
        v2::Version::Two | command,
        v2::Protocol::Stream,
        (source, destination),
    )
    .build()
    .expect("a v2 header for two addresses of one family")
}
