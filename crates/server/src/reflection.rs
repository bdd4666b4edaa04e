//! The UDP source ports the loop never answers, so that a spoofed datagram
//! cannot start a loop between shoutd and another server (the "Loop DoS"
//! class, CVE-2024-2169).
//!
//! A UDP server that answers every datagram will answer a datagram whose
//! source is forged to be another such server. If that server answers too,
//! the two answer each other for ever, and one datagram becomes unbounded
//! traffic. The sure cases are known from the source port alone: a client
//! sends from an ephemeral port (RFC 6335: 49152–65535; Linux 32768–60999),
//! while the servers that answer anything listen on fixed ones.
//!
//! Refused, by [`RefusedSource`]:
//! - `ServerPort`: a port this server answers on (its own sockets, its other
//!   workers' sockets and its other listeners), and 12000, the port of the
//!   lecture's servers and of every default shoutd. An answer would go to a
//!   server of this very protocol, which answers back.
//! - `ReservedPort`: ports 0 to 1023, where the classic reflectors live
//!   (echo 7, daytime 13, qotd 17, chargen 19, time 37, DNS 53, TFTP 69,
//!   portmap 111, NTP 123, NetBIOS 137–138, SNMP 161, CLDAP 389, ISAKMP 500)
//!   and which an unprivileged client cannot bind; port 0 cannot be answered
//!   at all. Above 1023, the services RFC 9308 §8.1 and reflection reports
//!   name: SSDP 1900, Apple Remote Desktop 3283, WS-Discovery 3702, NAT-PMP
//!   5351, mDNS 5353, LLMNR 5355, CoAP 5683, memcached 11211.
//!
//! Two servers of this protocol on other, arbitrary ports can still be
//! spoofed at each other: nothing in a datagram tells such a server from a
//! client. The per-source reply rate (`udp_rate_per_source`) bounds that
//! case; docs/PROTOCOL.md says so.

use shout_protocol::DEFAULT_PORT;

/// Source ports above 1023 of services that answer any datagram.
const REFLECTOR_PORTS: [u16; 8] = [1900, 3283, 3702, 5351, 5353, 5355, 5683, 11211];

/// Why a datagram's source is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusedSource {
    /// The source port is one this server, or a default shout server,
    /// answers on.
    ServerPort,
    /// The source port is a well-known port or a known reflector's.
    ReservedPort,
}

/// The source ports one server refuses to answer.
#[derive(Debug, Clone)]
pub(crate) struct ReflectionGuard {
    /// The ports this server answers on, and the default port.
    server_ports: Vec<u16>,
}

impl ReflectionGuard {
    /// Builds the guard of a server whose UDP sockets are on `own_ports`.
    pub(crate) fn new(own_ports: impl IntoIterator<Item = u16>) -> Self {
        let mut server_ports: Vec<u16> = own_ports.into_iter().collect();
        server_ports.push(DEFAULT_PORT);
        server_ports.sort_unstable();
        server_ports.dedup();
        Self { server_ports }
    }

    /// Returns why a datagram from source port `port` must not be answered,
    /// or `None` when it may be.
    #[inline]
    pub(crate) fn check(&self, port: u16) -> Option<RefusedSource> {
        // Ephemeral ports, the common case, pass the first comparison and
        // a few more: the lists are short.
        if port < 1024 || REFLECTOR_PORTS.contains(&port) {
            Some(RefusedSource::ReservedPort)
        } else if self.server_ports.contains(&port) {
            Some(RefusedSource::ServerPort)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_ports_are_answered() {
        let guard = ReflectionGuard::new([40_000]);
        for port in [1024, 32_768, 49_152, 60_999, 65_535] {
            assert_eq!(guard.check(port), None, "port {port}");
        }
    }

    #[test]
    fn the_servers_own_ports_and_the_default_port_are_refused() {
        let guard = ReflectionGuard::new([40_000, 40_001, 40_000]);
        for port in [40_000, 40_001, DEFAULT_PORT] {
            assert_eq!(
                guard.check(port),
                Some(RefusedSource::ServerPort),
                "port {port}"
            );
        }
    }

    #[test]
    fn well_known_and_reflector_ports_are_refused() {
        let guard = ReflectionGuard::new([]);
        for port in [
            0, 7, 13, 17, 19, 37, 53, 69, 123, 161, 1023, 1900, 5353, 11211,
        ] {
            assert_eq!(
                guard.check(port),
                Some(RefusedSource::ReservedPort),
                "port {port}"
            );
        }
    }
}
