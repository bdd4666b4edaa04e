//! Socket construction for shout: the only crate that calls `socket2`.
//!
//! `std::net` binds with fixed choices (a listen backlog of 128, no
//! `SO_REUSEPORT`, the system's `IPV6_V6ONLY`). A server meant for thousands of
//! clients needs to choose them, so this crate offers two builders that return
//! plain `std::net` sockets, ready for `mio` or for blocking use:
//!
//! - [`TcpListenerBuilder`]: `SO_REUSEADDR` on by default (a restarted server
//!   rebinds at once although old connections linger in `TIME_WAIT`),
//!   `SO_REUSEPORT` opt-in (several workers on one port), dual-stack by
//!   default (`[::]` serves IPv4 too, falling back to `0.0.0.0` where the host
//!   has no IPv6), a backlog of 1024, buffer sizes, non-blocking mode.
//! - [`UdpSocketBuilder`]: the same for datagrams.
//! - [`connect_tcp`]: a client connection with a timeout and `TCP_NODELAY`.
//! - [`UdpSocketBuilder::bind_group`]: several UDP sockets sharing one port
//!   that no other socket can take a share of (Linux).
//! - [`keep_urgent_data_inline`]: `SO_OOBINLINE` for accepted connections.
//! - [`is_listening`]: whether a passed stream socket is a listener.
//! - [`is_local_address`]: whether an address is this host's.
//!
//! Every failure is a [`SocketError`] whose message names the address and the
//! likely cause. Callers own the sockets it returns and do their own reading
//! and writing, with one exception std has no call for: [`batch`], many
//! datagrams per system call (`recvmmsg`/`sendmmsg`). Every `unsafe` call
//! into the OS lives here, so the libraries above it forbid `unsafe`.
//!
//! [`StreamReadiness`] is the readiness bookkeeping of an edge-triggered
//! stream socket under `mio`, with the reads and writes that keep it true:
//! the server's connections and the load generator's share it. It is
//! behind the `readiness` feature, so that blocking users pay for no `mio`.

#![deny(missing_docs)]

pub mod batch;
mod error;
#[cfg(feature = "readiness")]
mod readiness;
#[cfg(target_os = "linux")]
mod steering;

pub use error::{SocketError, SocketOperation};
#[cfg(feature = "readiness")]
pub use readiness::StreamReadiness;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

/// The listen backlog [`TcpListenerBuilder`] asks for: far above std's 128 so
/// that a burst of thousands of connects is queued, not dropped. The kernel
/// caps it at `net.core.somaxconn` (4096 on current Linux).
pub const DEFAULT_BACKLOG: i32 = 1024;

/// Options that TCP listeners and UDP sockets share.
#[derive(Debug, Clone)]
struct CommonOptions {
    reuse_address: bool,
    reuse_port: bool,
    only_v6: bool,
    ipv4_fallback: bool,
    nonblocking: bool,
    recv_buffer_size: Option<usize>,
    send_buffer_size: Option<usize>,
}

impl CommonOptions {
    fn new(reuse_address: bool) -> Self {
        Self {
            reuse_address,
            reuse_port: false,
            only_v6: false,
            ipv4_fallback: true,
            nonblocking: false,
            recv_buffer_size: None,
            send_buffer_size: None,
        }
    }

    /// Creates a socket of `kind` bound to `addr` with these options. Where
    /// `addr` is the IPv6 wildcard and the host has no IPv6, binds the IPv4
    /// wildcard on the same port instead.
    fn bind(
        &self,
        addr: SocketAddr,
        kind: Type,
        protocol: Protocol,
    ) -> Result<Socket, SocketError> {
        match self.bind_exactly(addr, kind, protocol) {
            Err(error) if self.ipv4_fallback && is_ipv6_wildcard(addr) && error.means_no_ipv6() => {
                let ipv4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
                self.bind_exactly(ipv4, kind, protocol)
            }
            result => result,
        }
    }

    fn bind_exactly(
        &self,
        addr: SocketAddr,
        kind: Type,
        protocol: Protocol,
    ) -> Result<Socket, SocketError> {
        let fail = |operation| move |source| SocketError::new(operation, addr, protocol, source);
        let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))
            .map_err(fail(SocketOperation::Create))?;
        let configure = || -> io::Result<()> {
            socket.set_reuse_address(self.reuse_address)?;
            if self.reuse_port {
                socket.set_reuse_port(true)?;
            }
            if addr.is_ipv6() {
                socket.set_only_v6(self.only_v6)?;
            }
            if let Some(size) = self.recv_buffer_size {
                socket.set_recv_buffer_size(size)?;
            }
            if let Some(size) = self.send_buffer_size {
                socket.set_send_buffer_size(size)?;
            }
            socket.set_nonblocking(self.nonblocking)
        };
        configure().map_err(fail(SocketOperation::Configure))?;
        socket
            .bind(&SockAddr::from(addr))
            .map_err(fail(SocketOperation::Bind))?;
        Ok(socket)
    }
}

fn is_ipv6_wildcard(addr: SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(v6) if v6.ip().is_unspecified())
}

/// Builds a socket of kind `K`: a [`TcpListenerBuilder`] or a
/// [`UdpSocketBuilder`]. The options both kinds share are set here; each kind
/// adds its own (the TCP backlog) and its `bind`.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `bind` is called"]
pub struct SocketBuilder<K> {
    addr: SocketAddr,
    options: CommonOptions,
    kind: K,
}

/// The TCP listener kind of [`SocketBuilder`].
#[derive(Debug, Clone)]
pub struct Listener {
    backlog: i32,
}

/// The UDP kind of [`SocketBuilder`].
#[derive(Debug, Clone)]
pub struct Datagram;

/// Builds a listening TCP socket.
///
/// ```
/// use shout_socket::TcpListenerBuilder;
///
/// let listener = TcpListenerBuilder::new("127.0.0.1:0".parse().unwrap())
///     .nonblocking(true)
///     .bind()
///     .unwrap();
/// assert_ne!(listener.local_addr().unwrap().port(), 0);
/// ```
pub type TcpListenerBuilder = SocketBuilder<Listener>;

/// Builds a bound UDP socket.
///
/// `SO_REUSEADDR` is off by default here: on Linux it would let two UDP
/// servers share a port silently, each receiving part of the traffic.
pub type UdpSocketBuilder = SocketBuilder<Datagram>;

impl<K> SocketBuilder<K> {
    /// `SO_REUSEADDR`. For TCP listeners (on by default) it lets a restarted
    /// server bind while connections of the previous one sit in `TIME_WAIT`.
    /// For UDP it is off by default: see [`UdpSocketBuilder`].
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.options.reuse_address = on;
        self
    }

    /// `SO_REUSEPORT`: lets several sockets (each with this option) bind the
    /// same address; the kernel spreads connections, or datagrams by source
    /// address, among them. Off by default, so that a second server on a
    /// taken port fails loudly.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.options.reuse_port = on;
        self
    }

    /// `IPV6_V6ONLY` for IPv6 addresses. Off by default: `[::]` then serves
    /// IPv4 clients too, as IPv4-mapped addresses (`::ffff:127.0.0.1`).
    pub fn only_v6(mut self, on: bool) -> Self {
        self.options.only_v6 = on;
        self
    }

    /// Whether binding `[::]` on a host without IPv6 falls back to `0.0.0.0`
    /// on the same port. On by default.
    pub fn ipv4_fallback(mut self, on: bool) -> Self {
        self.options.ipv4_fallback = on;
        self
    }

    /// `SO_RCVBUF`. Accepted TCP connections inherit it from their listener;
    /// for UDP it is how many bytes of datagrams queue before the kernel
    /// drops new ones, worth raising for bursts.
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.options.recv_buffer_size = Some(bytes);
        self
    }

    /// `SO_SNDBUF`. Accepted TCP connections inherit it from their listener.
    pub fn send_buffer_size(mut self, bytes: usize) -> Self {
        self.options.send_buffer_size = Some(bytes);
        self
    }

    /// Non-blocking mode, as an event loop needs. Off by default.
    pub fn nonblocking(mut self, on: bool) -> Self {
        self.options.nonblocking = on;
        self
    }
}

impl TcpListenerBuilder {
    /// A listener for `addr` with shout's defaults: `SO_REUSEADDR` on,
    /// `SO_REUSEPORT` off, dual-stack, backlog [`DEFAULT_BACKLOG`], blocking.
    pub fn new(addr: SocketAddr) -> Self {
        let kind = Listener {
            backlog: DEFAULT_BACKLOG,
        };
        Self {
            addr,
            options: CommonOptions::new(true),
            kind,
        }
    }

    /// The listen backlog: how many finished handshakes the kernel queues
    /// before the server accepts them.
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.kind.backlog = backlog;
        self
    }

    /// Creates, configures, binds and listens.
    pub fn bind(&self) -> Result<TcpListener, SocketError> {
        let socket = self.options.bind(self.addr, Type::STREAM, Protocol::TCP)?;
        socket.listen(self.kind.backlog).map_err(|source| {
            let addr = local_addr_or(&socket, self.addr);
            SocketError::new(SocketOperation::Listen, addr, Protocol::TCP, source)
        })?;
        Ok(socket.into())
    }
}

impl UdpSocketBuilder {
    /// A UDP socket for `addr`: no address or port reuse, dual-stack,
    /// blocking.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            options: CommonOptions::new(false),
            kind: Datagram,
        }
    }

    /// Creates, configures and binds.
    pub fn bind(&self) -> Result<UdpSocket, SocketError> {
        Ok(self
            .options
            .bind(self.addr, Type::DGRAM, Protocol::UDP)?
            .into())
    }

    /// Binds `count` sockets (at least one) on this address that share its
    /// port and its datagrams (`SO_REUSEPORT`), the first as configured,
    /// the others on the port it got. Whatever [`reuse_port`](Self::reuse_port)
    /// says, a group of more than one shares the port.
    ///
    /// On Linux the port is the group's alone: the first socket binds
    /// without `SO_REUSEPORT` (so port 0 gives a port no socket uses, and a
    /// taken port is an error), and the group's datagrams go only to its
    /// first `count` members (a classic BPF program, by source port), so a
    /// socket that joins later receives none. Elsewhere, the sockets are
    /// bound with `SO_REUSEPORT` and the system spreads datagrams among any
    /// that join.
    pub fn bind_group(&self, count: usize) -> Result<Vec<UdpSocket>, SocketError> {
        if count <= 1 {
            return Ok(vec![self.bind()?]);
        }
        let first = self.clone().reuse_port(!cfg!(target_os = "linux"));
        let leader = first.options.bind(self.addr, Type::DGRAM, Protocol::UDP)?;
        let port_addr = local_addr_or(&leader, self.addr);
        #[cfg(target_os = "linux")]
        let configure =
            |source| SocketError::new(SocketOperation::Configure, port_addr, Protocol::UDP, source);
        #[cfg(target_os = "linux")]
        steering::allow_joining(&leader).map_err(configure)?;
        let mut group = vec![leader];
        // The others bind the address the first got, fallback included.
        let mut member = self.clone().reuse_port(true);
        member.options.ipv4_fallback = false;
        for _ in 1..count {
            group.push(member.options.bind(port_addr, Type::DGRAM, Protocol::UDP)?);
        }
        #[cfg(target_os = "linux")]
        {
            let members = u32::try_from(count).unwrap_or(u32::MAX);
            steering::steer_to_first_members(&group[0], members).map_err(configure)?;
        }
        Ok(group.into_iter().map(UdpSocket::from).collect())
    }
}

/// Connects to `addr`, waiting at most `timeout` (or the system's own limit
/// when `None`), and sets `TCP_NODELAY` so that short requests leave at once
/// instead of waiting on Nagle's algorithm.
pub fn connect_tcp(addr: SocketAddr, timeout: Option<Duration>) -> Result<TcpStream, SocketError> {
    let fail = |operation| move |source| SocketError::new(operation, addr, Protocol::TCP, source);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(fail(SocketOperation::Create))?;
    let target = SockAddr::from(addr);
    match timeout {
        Some(timeout) => socket.connect_timeout(&target, timeout),
        None => socket.connect(&target),
    }
    .map_err(fail(SocketOperation::Connect))?;
    socket
        .set_tcp_nodelay(true)
        .map_err(fail(SocketOperation::Configure))?;
    Ok(socket.into())
}

/// Sets `SO_OOBINLINE` on a stream socket: urgent (out-of-band) data stays
/// in the byte stream, read in its place, instead of being taken out of it
/// and held apart for a `MSG_OOB` read that a stream server never makes.
///
/// # Errors
/// The `setsockopt` error.
pub fn keep_urgent_data_inline(socket: &impl AsFd) -> io::Result<()> {
    socket2::SockRef::from(socket).set_out_of_band_inline(true)
}

/// Returns whether a stream socket is listening (`SO_ACCEPTCONN`): a
/// socket passed by another process may be a connected one instead, on
/// which accepting would fail for ever.
///
/// # Errors
/// The `getsockopt` error.
pub fn is_listening(socket: &impl AsFd) -> io::Result<bool> {
    socket2::SockRef::from(socket).is_listener()
}

/// Returns whether `ip` is an address of this host: whether a socket can
/// be bound to it. Only "address not available" counts as no; any other
/// failure (no descriptor left, say) counts as yes, the cautious answer
/// for a caller that refuses datagrams from its own addresses.
pub fn is_local_address(ip: std::net::IpAddr) -> bool {
    match UdpSocket::bind(SocketAddr::new(ip, 0)) {
        Ok(_) => true,
        Err(error) => error.kind() != io::ErrorKind::AddrNotAvailable,
    }
}

fn local_addr_or(socket: &Socket, fallback: SocketAddr) -> SocketAddr {
    socket
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_socket())
        .unwrap_or(fallback)
}
