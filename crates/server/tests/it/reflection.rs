//! Spoofed UDP sources that would start a loop: the server's own port, a
//! twin server's port, a reflecting service's port. Each is sent from a
//! real socket bound to that address, as a spoofer's packet would arrive.

use crate::support::{Running, TIMEOUT, run, start, try_run, wait_until};
use shout_server::{ServerBuilder, Stats, Uppercase};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// How long a loop, if one started, is given to show: thousands of turns.
const SETTLE: Duration = Duration::from_millis(300);

/// A socket on `addr` beside the server's own, with `SO_REUSEPORT`: a
/// server of two workers lets it join their port (it receives none of the
/// port's datagrams), so what it sends has the server's own address as
/// its source.
fn spoofer_on(addr: SocketAddr) -> UdpSocket {
    let socket = shout_socket::UdpSocketBuilder::new(addr)
        .reuse_port(true)
        .bind()
        .expect("a socket joins the server's port");
    socket.set_read_timeout(Some(SETTLE)).unwrap();
    socket
}

/// Waits until the server received the spoofed datagram, lets a loop show
/// if one started, and returns the counters.
fn settled(server: &Running) -> Stats {
    wait_until("the datagram to arrive", || {
        server.handle.stats().datagrams_in >= 1
    });
    std::thread::sleep(SETTLE);
    server.handle.stats()
}

#[test]
fn a_datagram_from_the_servers_own_address_is_not_answered() {
    let server = start(|b| b.workers(2));
    let spoofer = spoofer_on(server.udp());
    spoofer.send_to(b"loop", server.udp()).unwrap();
    let stats = settled(&server);
    assert_eq!(
        stats.datagrams_in, 1,
        "the server answered itself: {stats:?}"
    );
    assert_eq!(stats.datagrams_out, 0, "{stats:?}");
    assert_eq!(stats.datagrams_from_server_port, 1, "{stats:?}");
    assert_eq!(stats.datagrams_dropped, 1, "{stats:?}");
    // Clients are still answered.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.send_to(b"still here", server.udp()).unwrap();
    let mut buf = [0; 64];
    let (len, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"STILL HERE");
}

#[test]
fn a_server_on_every_address_does_not_answer_one_of_its_addresses() {
    let server = run(ServerBuilder::udp_only(Uppercase)
        .udp("0.0.0.0:0".parse().unwrap())
        .workers(2));
    let port = server.udp().port();
    // 127.0.0.1 is one of the host's addresses, so 127.0.0.1:PORT is the
    // server itself.
    let spoofer = spoofer_on(SocketAddr::from(([127, 0, 0, 1], port)));
    // Sent to another of its addresses: 127.0.0.1:PORT is the spoofer.
    spoofer.send_to(b"loop", ("127.0.0.2", port)).unwrap();
    let stats = settled(&server);
    assert_eq!(stats.datagrams_from_server_port, 1, "{stats:?}");
    assert_eq!(stats.datagrams_out, 0, "{stats:?}");
    let mut buf = [0; 64];
    assert!(
        spoofer.recv_from(&mut buf).is_err(),
        "the server answered its own address"
    );
}

#[test]
fn two_servers_on_one_port_spoofed_at_each_other_do_not_bounce() {
    // Two servers on the same port of two addresses, as two hosts running
    // shoutd on 12000 are: a port below the ephemeral range, where a
    // source port names a server. The port may be taken: try a few.
    let udp_on = |addr: SocketAddr| ServerBuilder::udp_only(Uppercase).udp(addr).workers(2);
    let first_port = 20_000 + (std::process::id() % 10_000) as u16;
    let (twin, first) = (first_port..first_port + 20)
        .find_map(|port| {
            let twin = try_run(udp_on(SocketAddr::from(([127, 0, 0, 2], port)))).ok()?;
            let first = try_run(udp_on(SocketAddr::from(([127, 0, 0, 1], port)))).ok()?;
            Some((twin, first))
        })
        .expect("a port below 32768 free on both 127.0.0.1 and 127.0.0.2 in 20 tries");
    // A datagram to the first server that claims to come from the twin.
    let spoofer = spoofer_on(twin.udp());
    spoofer.send_to(b"bounce", first.udp()).unwrap();
    let stats = settled(&first);
    assert_eq!(stats.datagrams_in, 1, "the servers bounced: {stats:?}");
    assert_eq!(stats.datagrams_out, 0, "{stats:?}");
    assert_eq!(stats.datagrams_from_server_port, 1, "{stats:?}");
    let twin_stats = twin.handle.stats();
    assert_eq!(
        twin_stats.datagrams_in, 0,
        "the twin was answered: {twin_stats:?}"
    );
}

#[test]
fn a_client_given_the_servers_port_number_on_another_address_is_answered() {
    // Port 0 gives a port in the ephemeral range, which another address
    // may give a client too: that client is no loop.
    let server = start(|b| b);
    let client = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 4], server.udp().port())))
        .expect("the server's port number is free on 127.0.0.4");
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.send_to(b"same port", server.udp()).unwrap();
    let mut buf = [0; 64];
    let (len, _) = client.recv_from(&mut buf).expect("the client is answered");
    assert_eq!(&buf[..len], b"SAME PORT");
}

#[test]
fn a_datagram_from_a_reflecting_services_port_is_not_answered() {
    let server = start(|b| b);
    // memcached's port: unprivileged, unlike the well-known ports below
    // 1024, and on a loopback address of its own so that a real memcached
    // on the machine does not matter.
    let reflector = UdpSocket::bind("127.0.0.3:11211").expect("127.0.0.3:11211 is free");
    reflector.set_read_timeout(Some(SETTLE)).unwrap();
    reflector.send_to(b"stats", server.udp()).unwrap();
    let stats = settled(&server);
    let mut buf = [0; 64];
    assert!(
        reflector.recv_from(&mut buf).is_err(),
        "the reflector was answered"
    );
    assert_eq!(stats.datagrams_from_reserved_port, 1, "{stats:?}");
    assert_eq!(stats.datagrams_out, 0, "{stats:?}");
}
