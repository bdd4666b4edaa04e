//! The UDP sources the loop never answers, so that a spoofed datagram
//! cannot start a loop between shoutd and another server, or itself (the
//! "Loop DoS" class, CVE-2024-2169).
//!
//! A UDP server that answers every datagram will answer a datagram whose
//! source is forged to be another such server. If that server answers too,
//! the two answer each other for ever, and one datagram becomes unbounded
//! traffic. A client sends from an ephemeral port (RFC 6335: 49152–65535;
//! Linux: 32768–60999), while the servers that answer anything listen on
//! fixed ones, so the sure cases are known from the source alone.
//!
//! Refused, by [`RefusedSource`]:
//! - `ServerPort`: a source that is one of this server's own sockets (its
//!   address and port, on any of its listeners), whatever the port; and a
//!   source port this server or a default shout server (12000, the
//!   lecture's port) answers on, from any address, when that port is below
//!   32768, where no common system picks ephemeral ports: an answer would
//!   go to a server of this very protocol, which answers back. A server on
//!   a port of 32768 or above cannot tell a twin from a client that was
//!   given the same port number, so only its own address is refused there.
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
use std::net::{IpAddr, SocketAddr};

/// Source ports above 1023 of services that answer any datagram.
const REFLECTOR_PORTS: [u16; 8] = [1900, 3283, 3702, 5351, 5353, 5355, 5683, 11211];

/// The lowest port of the ephemeral ranges in common use (Linux's); below
/// it a source port names a server, not a client.
const EPHEMERAL_FROM: u16 = 32_768;

/// Addresses whose locality is remembered, so that a flood of spoofed
/// sources costs at most one probe per address in this many.
const LOCAL_CACHE: usize = 16;

/// Why a datagram's source is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusedSource {
    /// The source is this server's own socket, or its port is one this
    /// server, or a default shout server, answers on.
    ServerPort,
    /// The source port is a well-known port or a known reflector's.
    ReservedPort,
}

/// The sources one worker refuses to answer.
#[derive(Debug, Clone)]
pub(crate) struct ReflectionGuard {
    /// The addresses of this server's UDP sockets.
    own: Vec<SocketAddr>,
    /// Whether an address is this host's, for sockets bound to every
    /// address; a small ring of the last ones asked.
    local: Vec<(IpAddr, bool)>,
    next_local: usize,
    /// Says whether an address is this host's (a system call); a seam for
    /// tests.
    probe_local: fn(IpAddr) -> bool,
}

impl ReflectionGuard {
    /// Builds the guard of a server whose UDP sockets are bound to `own`.
    pub(crate) fn new(own: Vec<SocketAddr>) -> Self {
        Self {
            own,
            local: Vec::with_capacity(LOCAL_CACHE),
            next_local: 0,
            probe_local: shout_socket::is_local_address,
        }
    }

    /// Returns why a datagram from `source` must not be answered, or
    /// `None` when it may be.
    #[inline]
    pub(crate) fn check(&mut self, source: SocketAddr) -> Option<RefusedSource> {
        let port = source.port();
        // Ephemeral ports, the common case, pass a few comparisons.
        if port < 1024 || REFLECTOR_PORTS.contains(&port) {
            return Some(RefusedSource::ReservedPort);
        }
        let server_port = port == DEFAULT_PORT || self.own.iter().any(|own| own.port() == port);
        if !server_port {
            return None;
        }
        if port < EPHEMERAL_FROM || self.is_own_socket(source) {
            return Some(RefusedSource::ServerPort);
        }
        None
    }

    /// Returns whether `source` is one of this server's sockets: a reply to
    /// it would come back to this server.
    fn is_own_socket(&mut self, source: SocketAddr) -> bool {
        let ip = canonical(source.ip());
        let mut on_every_address = false;
        for own in self.own.iter().filter(|own| own.port() == source.port()) {
            let bound = canonical(own.ip());
            if bound == ip {
                return true;
            }
            on_every_address |= bound.is_unspecified();
        }
        on_every_address && self.is_local(ip)
    }

    /// Returns whether `ip` is an address of this host.
    fn is_local(&mut self, ip: IpAddr) -> bool {
        if ip.is_loopback() || ip.is_unspecified() {
            return true;
        }
        if let Some(&(_, local)) = self.local.iter().find(|(known, _)| *known == ip) {
            return local;
        }
        let local = (self.probe_local)(ip);
        if self.local.len() < LOCAL_CACHE {
            self.local.push((ip, local));
        } else {
            self.local[self.next_local] = (ip, local);
            self.next_local = (self.next_local + 1) % LOCAL_CACHE;
        }
        local
    }
}

/// Returns `ip` with an IPv4-mapped IPv6 address (what a dual-stack socket
/// reports for an IPv4 peer) as the IPv4 address it maps.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// A guard for sockets on `own`, whose host has the addresses
    /// `local` (and loopback).
    fn guard(own: &[&str], probe_local: fn(IpAddr) -> bool) -> ReflectionGuard {
        ReflectionGuard {
            probe_local,
            ..ReflectionGuard::new(own.iter().map(|text| addr(text)).collect())
        }
    }

    fn only_192_0_2_1(ip: IpAddr) -> bool {
        ip == IpAddr::from([192, 0, 2, 1])
    }

    #[test]
    fn ephemeral_ports_are_answered() {
        let mut guard = guard(&["127.0.0.1:40000"], only_192_0_2_1);
        for port in [1024, 32_768, 49_152, 60_999, 65_535] {
            let source = SocketAddr::from(([198, 51, 100, 7], port));
            assert_eq!(guard.check(source), None, "{source}");
        }
    }

    #[test]
    fn well_known_and_reflector_ports_are_refused() {
        let mut guard = guard(&[], only_192_0_2_1);
        for port in [
            0, 7, 13, 17, 19, 37, 53, 69, 123, 161, 1023, 1900, 5353, 11211,
        ] {
            let source = SocketAddr::from(([198, 51, 100, 7], port));
            assert_eq!(
                guard.check(source),
                Some(RefusedSource::ReservedPort),
                "{source}"
            );
        }
    }

    #[test]
    fn a_server_port_below_the_ephemeral_range_is_refused_from_anywhere() {
        let mut guard = guard(&["0.0.0.0:20000"], only_192_0_2_1);
        for source in [
            "198.51.100.7:20000",
            "198.51.100.7:12000",
            "[2001:db8::1]:12000",
        ] {
            assert_eq!(
                guard.check(addr(source)),
                Some(RefusedSource::ServerPort),
                "{source}"
            );
        }
    }

    #[test]
    fn a_high_server_port_is_refused_only_from_the_servers_own_address() {
        let mut specific = guard(&["127.0.0.1:40000"], only_192_0_2_1);
        assert_eq!(
            specific.check(addr("127.0.0.1:40000")),
            Some(RefusedSource::ServerPort)
        );
        // Another address given the same port number: a client.
        assert_eq!(specific.check(addr("127.0.0.2:40000")), None);
        assert_eq!(specific.check(addr("198.51.100.7:40000")), None);
        let mut every = guard(&["[::]:40000"], only_192_0_2_1);
        for own in [
            "127.0.0.9:40000",
            "[::ffff:192.0.2.1]:40000",
            "[::1]:40000",
            "192.0.2.1:40000",
        ] {
            assert_eq!(
                every.check(addr(own)),
                Some(RefusedSource::ServerPort),
                "{own}"
            );
        }
        assert_eq!(every.check(addr("198.51.100.7:40000")), None);
        assert_eq!(every.check(addr("198.51.100.7:40001")), None);
    }

    #[test]
    fn the_local_probe_is_asked_once_per_address_and_the_cache_stays_small() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static PROBES: AtomicUsize = AtomicUsize::new(0);
        fn counting(_: IpAddr) -> bool {
            PROBES.fetch_add(1, Ordering::Relaxed);
            false
        }
        let mut guard = guard(&["0.0.0.0:40000"], counting);
        for _ in 0..10 {
            assert_eq!(guard.check(addr("198.51.100.7:40000")), None);
        }
        assert_eq!(PROBES.load(Ordering::Relaxed), 1);
        for n in 0..100u8 {
            guard.check(SocketAddr::from(([198, 51, 100, n], 40_000)));
        }
        assert!(guard.local.len() <= LOCAL_CACHE);
    }
}
