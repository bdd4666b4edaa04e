//! The builders' options, observed on real loopback sockets.

use shout_socket::{SocketOperation, TcpListenerBuilder, UdpSocketBuilder, connect_tcp};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

fn loopback_v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Leaves a connection of `listener` in `TIME_WAIT` on the listener's port:
/// the server side closes first, so the server side waits.
fn leave_time_wait(listener: &TcpListener) {
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (served, _) = listener.accept().unwrap();
    served.shutdown(Shutdown::Both).unwrap();
    drop(served);
    // Wait for the client to see the FIN, then close it so the server's side
    // completes its close and enters TIME_WAIT.
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0; 1];
    assert_eq!((&client).read(&mut buf).unwrap(), 0);
    drop(client);
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn port_zero_reads_back_a_real_port() {
    let listener = TcpListenerBuilder::new(loopback_v4()).bind().unwrap();
    assert_ne!(listener.local_addr().unwrap().port(), 0);
    let udp = UdpSocketBuilder::new(loopback_v4()).bind().unwrap();
    assert_ne!(udp.local_addr().unwrap().port(), 0);
}

#[test]
fn reuse_address_rebinds_over_time_wait() {
    let listener = TcpListenerBuilder::new(loopback_v4()).bind().unwrap();
    let addr = listener.local_addr().unwrap();
    leave_time_wait(&listener);
    drop(listener);

    // Without SO_REUSEADDR the port is still taken by the TIME_WAIT socket...
    let without = TcpListenerBuilder::new(addr)
        .reuse_address(false)
        .bind()
        .unwrap_err();
    assert_eq!(without.kind(), std::io::ErrorKind::AddrInUse);
    // ...with it, the restart binds at once.
    let rebound = TcpListenerBuilder::new(addr).bind().unwrap();
    assert_eq!(rebound.local_addr().unwrap(), addr);
}

#[test]
fn dual_stack_accepts_ipv4_on_the_ipv6_wildcard() {
    let listener = TcpListenerBuilder::new("[::]:0".parse().unwrap())
        .bind()
        .unwrap();
    let local = listener.local_addr().unwrap();
    assert!(local.is_ipv6(), "this test needs a host with IPv6 loopback");
    let mut client = TcpStream::connect(("127.0.0.1", local.port())).unwrap();
    let (mut served, peer) = listener.accept().unwrap();
    match peer {
        SocketAddr::V6(v6) => assert_eq!(v6.ip().to_ipv4_mapped(), Some([127, 0, 0, 1].into())),
        SocketAddr::V4(_) => panic!("a dual-stack listener reports IPv4 peers as mapped IPv6"),
    }
    client.write_all(b"hi").unwrap();
    let mut buf = [0; 2];
    served.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
}

#[test]
fn only_v6_refuses_ipv4() {
    let listener = TcpListenerBuilder::new("[::]:0".parse().unwrap())
        .only_v6(true)
        .bind()
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let error = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn two_reuse_port_sockets_share_one_port() {
    let first = TcpListenerBuilder::new(loopback_v4())
        .reuse_port(true)
        .bind()
        .unwrap();
    let addr = first.local_addr().unwrap();
    let second = TcpListenerBuilder::new(addr)
        .reuse_port(true)
        .bind()
        .unwrap();
    assert_eq!(second.local_addr().unwrap(), addr);

    let udp_first = UdpSocketBuilder::new(loopback_v4())
        .reuse_port(true)
        .bind()
        .unwrap();
    let udp_addr = udp_first.local_addr().unwrap();
    let udp_second = UdpSocketBuilder::new(udp_addr)
        .reuse_port(true)
        .bind()
        .unwrap();
    assert_eq!(udp_second.local_addr().unwrap(), udp_addr);
}

#[test]
fn taken_port_gives_a_clear_error() {
    let taken = TcpListenerBuilder::new(loopback_v4()).bind().unwrap();
    let addr = taken.local_addr().unwrap();
    let error = TcpListenerBuilder::new(addr).bind().unwrap_err();
    assert_eq!(error.operation(), SocketOperation::Bind);
    assert_eq!(error.addr(), addr);
    assert_eq!(
        error.to_string(),
        format!("tcp {addr} is already in use — is another shoutd running?")
    );

    let udp = UdpSocketBuilder::new(loopback_v4()).bind().unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let error = UdpSocketBuilder::new(udp_addr).bind().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("udp {udp_addr} is already in use — is another shoutd running?")
    );
}

#[test]
fn backlog_queues_connections_before_accept() {
    let listener = TcpListenerBuilder::new(loopback_v4())
        .backlog(512)
        .bind()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    // 300 connects complete without a single accept: more than std's 128.
    let clients: Vec<TcpStream> = (0..300)
        .map(|_| connect_tcp(addr, Some(TIMEOUT)).unwrap())
        .collect();
    for _ in 0..clients.len() {
        listener.accept().unwrap();
    }
}

#[test]
fn connect_sets_nodelay_and_names_refusals() {
    let listener = TcpListenerBuilder::new(loopback_v4()).bind().unwrap();
    let stream = connect_tcp(listener.local_addr().unwrap(), Some(TIMEOUT)).unwrap();
    assert!(stream.nodelay().unwrap());

    let closed = listener.local_addr().unwrap();
    drop((stream, listener));
    let error = connect_tcp(closed, Some(TIMEOUT)).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        error.to_string().contains("refused the connection"),
        "{error}"
    );
}

#[test]
fn nonblocking_listener_would_block() {
    let listener = TcpListenerBuilder::new(loopback_v4())
        .nonblocking(true)
        .bind()
        .unwrap();
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
}

/// Sends one datagram from each of `senders` fresh sockets to `addr`, then
/// counts what each of `receivers` got (every datagram must arrive).
fn spread(addr: SocketAddr, senders: usize, receivers: &[std::net::UdpSocket]) -> Vec<usize> {
    let unspecified: SocketAddr = if addr.is_ipv6() {
        "[::1]:0".parse().unwrap()
    } else {
        loopback_v4()
    };
    let clients: Vec<_> = (0..senders)
        .map(|_| std::net::UdpSocket::bind(unspecified).unwrap())
        .collect();
    for client in &clients {
        client.send_to(b"which?", addr).unwrap();
    }
    let mut counts = vec![0; receivers.len()];
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut buf = [0; 16];
    while counts.iter().sum::<usize>() < senders && std::time::Instant::now() < deadline {
        for (count, receiver) in counts.iter_mut().zip(receivers) {
            while receiver.recv(&mut buf).is_ok() {
                *count += 1;
            }
        }
    }
    counts
}

#[cfg(target_os = "linux")]
#[test]
fn a_udp_group_keeps_its_port_and_its_datagrams_to_itself() {
    for addr in [loopback_v4(), "[::1]:0".parse().unwrap()] {
        let group = UdpSocketBuilder::new(addr)
            .nonblocking(true)
            .bind_group(3)
            .unwrap();
        let port = group[0].local_addr().unwrap();
        assert_ne!(port.port(), 0);
        for member in &group {
            assert_eq!(member.local_addr().unwrap(), port);
        }
        // A stranger of the same user may still join the port...
        let stranger = UdpSocketBuilder::new(port)
            .reuse_port(true)
            .nonblocking(true)
            .bind()
            .unwrap();
        let mut receivers = group;
        receivers.push(stranger);
        let counts = spread(port, 96, &receivers);
        assert_eq!(counts.iter().sum::<usize>(), 96, "{addr}: {counts:?}");
        // ...but gets none of the datagrams, which every member shares.
        assert_eq!(
            counts[3], 0,
            "{addr}: the stranger got datagrams: {counts:?}"
        );
        assert!(
            counts[..3].iter().all(|&count| count > 0),
            "{addr}: a member got none: {counts:?}"
        );
    }
}

#[test]
fn a_udp_group_refuses_a_port_another_socket_holds() {
    let holder = UdpSocketBuilder::new(loopback_v4())
        .reuse_port(true)
        .bind()
        .unwrap();
    let taken = holder.local_addr().unwrap();
    let error = UdpSocketBuilder::new(taken).bind_group(2).unwrap_err();
    assert_eq!(error.operation(), SocketOperation::Bind, "{error}");
}

#[test]
fn the_hosts_addresses_include_loopback_and_no_test_address() {
    let addresses = shout_socket::local_addresses().expect("getifaddrs");
    assert!(
        addresses.contains(&std::net::IpAddr::from([127, 0, 0, 1])),
        "{addresses:?}"
    );
    // 192.0.2.0/24 is for documentation: no host has it.
    assert!(
        !addresses.contains(&std::net::IpAddr::from([192, 0, 2, 1])),
        "{addresses:?}"
    );
}
