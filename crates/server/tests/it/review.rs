//! Defects a review of the loop against mio's readiness contract found,
//! each shown over loopback: urgent data, a UDP port shared with a
//! stranger, the connection cap over several workers, a zero idle timeout.

use crate::support::{TIMEOUT, connect, round_trip, start};
use shout_server::{ServerBuilder, ServerError, Uppercase};
use shout_socket::UdpSocketBuilder;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Reads until `len` bytes came or the stream stays silent for TIMEOUT;
/// returns what arrived, so that a stall or a lost byte shows as a wrong
/// answer rather than a timeout.
fn read_up_to(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut got = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match stream.read(&mut got[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break;
            }
            Err(error) => panic!("read failed: {error}"),
        }
    }
    got.truncate(filled);
    got
}

fn send_urgent(stream: &TcpStream, byte: u8) {
    let sent = socket2::SockRef::from(stream)
        .send_out_of_band(&[byte])
        .expect("sends urgent data");
    assert_eq!(sent, 1);
}

#[test]
fn urgent_data_is_answered_in_its_place_and_at_once() {
    // All of it waits in the kernel before the server accepts: held back
    // by the connection cap. The first read then stops short at the
    // urgent mark with the rest queued behind it, and no new event comes.
    let server = start(|b| b.max_connections(1));
    let mut holder = connect(server.tcp());
    round_trip(&mut holder, "hold\n");
    let mut client = connect(server.tcp());
    client.write_all(b"hello ").unwrap();
    send_urgent(&client, b'X');
    client.write_all(b"world\n").unwrap();
    drop(holder);
    let expected = b"HELLO XWORLD\n";
    let got = read_up_to(&mut client, expected.len());
    assert_eq!(String::from_utf8_lossy(&got), "HELLO XWORLD\n");

    // And on a connection being served, one piece at a time.
    drop(client);
    let mut live = connect(server.tcp());
    round_trip(&mut live, "hello ");
    send_urgent(&live, b'x');
    live.write_all(b" world\n").unwrap();
    let got = read_up_to(&mut live, b"X WORLD\n".len());
    assert_eq!(String::from_utf8_lossy(&got), "X WORLD\n");
}

#[test]
fn a_stranger_bound_to_the_udp_port_gets_none_of_its_datagrams() {
    let server = start(|b| b.workers(2));
    // Same user, SO_REUSEPORT: the kernel lets it join the port.
    let stranger = UdpSocketBuilder::new(server.udp())
        .reuse_port(true)
        .nonblocking(true)
        .bind()
        .expect("another SO_REUSEPORT socket may bind the port");
    let clients: Vec<UdpSocket> = (0..64)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            socket
        })
        .collect();
    for (n, client) in clients.iter().enumerate() {
        client
            .send_to(format!("request {n}").as_bytes(), server.udp())
            .unwrap();
    }
    let mut answered = vec![false; clients.len()];
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0; 64];
    while answered.contains(&false) && Instant::now() < deadline {
        for (n, client) in clients.iter().enumerate() {
            if !answered[n] {
                if let Ok(len) = client.recv(&mut buf) {
                    assert_eq!(&buf[..len], format!("REQUEST {n}").as_bytes());
                    answered[n] = true;
                }
            }
        }
    }
    let mut stolen = 0;
    while stranger.recv(&mut buf).is_ok() {
        stolen += 1;
    }
    assert_eq!(
        stolen, 0,
        "the stranger received requests meant for the server"
    );
    let unanswered = answered.iter().filter(|&&done| !done).count();
    assert_eq!(unanswered, 0, "requests left unanswered");
}

#[test]
fn a_udp_port_held_by_a_stranger_is_an_error_with_several_workers_too() {
    let stranger = UdpSocketBuilder::new("127.0.0.1:0".parse().unwrap())
        .reuse_port(true)
        .bind()
        .unwrap();
    let taken = stranger.local_addr().unwrap();
    let built = ServerBuilder::new(Uppercase, Uppercase)
        .udp(taken)
        .workers(2)
        .build();
    match built {
        Err(ServerError::Bind(error)) => {
            assert!(
                error.to_string().contains(&taken.port().to_string()),
                "{error}"
            );
        }
        Err(error) => panic!("wrong error: {error}"),
        Ok(_) => panic!("bound {taken}, which another socket holds"),
    }
}

#[test]
fn the_connection_cap_is_the_servers_not_each_workers() {
    let server = start(|b| b.workers(2).max_connections(2));
    let mut idle = connect(server.tcp());
    round_trip(&mut idle, "held\n");
    // Twenty clients one after another, never more than two open at once:
    // each lands on whichever worker the kernel picks, and each must be
    // served, whichever it is.
    for n in 0..20 {
        let mut client = connect(server.tcp());
        let request = format!("client {n}\n");
        client.write_all(request.as_bytes()).unwrap();
        let got = read_up_to(&mut client, request.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            request.to_uppercase(),
            "client {n} got no answer within {TIMEOUT:?}"
        );
        drop(client);
    }
    round_trip(&mut idle, "still held\n");
    drop(idle);

    // Both slots held and a third client waiting: closing one, on whichever
    // worker it is, lets the third in. Over ten rounds, the one closed is
    // on the other worker than the one the third waits on, almost surely.
    for round in 0..10 {
        let mut first = connect(server.tcp());
        round_trip(&mut first, "first\n");
        let mut second = connect(server.tcp());
        round_trip(&mut second, "second\n");
        let mut third = connect(server.tcp());
        third.write_all(b"third\n").unwrap();
        drop(first);
        let got = read_up_to(&mut third, b"THIRD\n".len());
        assert_eq!(got, b"THIRD\n", "round {round}: the third was not let in");
    }
    let stats = server.stop();
    assert_eq!(stats.connections_accepted, 21 + 30);
}

#[test]
fn a_zero_idle_timeout_is_refused_at_build() {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let built = ServerBuilder::new(Uppercase, Uppercase)
        .tcp(loopback)
        .idle_timeout(Some(Duration::ZERO))
        .build();
    assert!(
        matches!(built, Err(ServerError::InvalidSetting(_))),
        "a zero idle timeout was accepted"
    );
}
