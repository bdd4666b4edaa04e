//! Per-source limits: connections per source, and the UDP reply rate per
//! source, seen from clients on distinct loopback addresses (127.0.0.2 the
//! heavy one, 127.0.0.3 an ordinary one).

use crate::support::{TIMEOUT, round_trip, start, wait_until};
use shout_server::Handle;
use socket2::{Domain, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn from(ip: [u8; 4]) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(ip), 0))
}

/// Connects to `server` from the loopback address `source`.
fn connect_from(source: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&from(source).into()).unwrap();
    socket.connect_timeout(&server.into(), TIMEOUT).unwrap();
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Returns whether `stream` is answered; a refused connection is closed by
/// the server before any answer.
fn is_served(stream: &mut TcpStream) -> bool {
    // The write may meet the server's close already.
    if stream.write_all(b"hi\n").is_err() {
        return false;
    }
    let mut answer = [0; 3];
    match stream.read(&mut answer) {
        Ok(0) => false,
        Ok(_) => true,
        Err(error) if error.kind() == ErrorKind::ConnectionReset => false,
        Err(error) => panic!("neither served nor refused: {error}"),
    }
}

#[test]
fn a_source_past_its_share_is_refused_and_others_are_served_at_once() {
    const SHARE: usize = 20;
    let server = start(|b| b.max_connections_per_source(SHARE));
    let mut heavy: Vec<TcpStream> = (0..SHARE + 50)
        .map(|_| connect_from([127, 0, 0, 2], server.tcp()))
        .collect();
    let served = heavy
        .iter_mut()
        .map(is_served)
        .filter(|&served| served)
        .count();
    assert_eq!(served, SHARE, "the first {SHARE} are served, no more");
    let mut other = connect_from([127, 0, 0, 3], server.tcp());
    round_trip(&mut other, "another source\n");
    let stats = server.handle.stats();
    assert_eq!(stats.connections_refused_per_source, 50);
    assert_eq!(stats.connections_accepted, SHARE as u64 + 1);
    // A share given back is taken again.
    drop(heavy);
    wait_until("the heavy source's connections to close", || {
        server.handle.stats().connections_open() == 1
    });
    assert!(is_served(&mut connect_from([127, 0, 0, 2], server.tcp())));
}

/// A UDP socket on the loopback address `source`, with a receive timeout.
fn udp_from(source: [u8; 4]) -> UdpSocket {
    let socket = UdpSocket::bind(from(source)).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket
}

/// Waits until every datagram the server received is answered or dropped.
fn wait_until_answered(handle: &Handle) {
    wait_until("every datagram to be answered or dropped", || {
        let stats = handle.stats();
        stats.datagrams_in == stats.datagrams_out + stats.datagrams_dropped
    });
}

#[test]
fn a_udp_flood_gets_its_rate_plus_the_burst_and_others_lose_nothing() {
    const RATE: u32 = 200;
    const BURST: u32 = 50;
    // Before the server starts: a turn's clock may be read before the
    // first flood datagram is sent (the turn receives what arrives while it
    // runs), and tokens accrue from that reading.
    let started = Instant::now();
    let server = start(|b| b.udp_rate_per_source(RATE).udp_burst_per_source(BURST));
    let target = server.udp();
    let flood = udp_from([127, 0, 0, 2]);
    flood.set_nonblocking(true).unwrap();
    let quiet = std::thread::spawn(move || {
        // Like `shout ping --udp`: one request at a time, each answered
        // before the next, well under the rate. A ping may be lost before
        // the server sees it, when the flood fills the socket's buffer on a
        // starved machine, so each is sent again after a second, up to 3
        // times, as `shout udp` does: a source limited by the flood's
        // bucket would lose every try.
        let socket = udp_from([127, 0, 0, 3]);
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut answer = [0; 16];
        let mut sends = 0u64;
        for n in 0..20 {
            let request = format!("ping {n}");
            let expected = request.to_uppercase();
            let answered = (0..3).any(|_| {
                socket.send_to(request.as_bytes(), target).unwrap();
                sends += 1;
                // An answer to an earlier ping that came late is skipped.
                while let Ok((len, _)) = socket.recv_from(&mut answer) {
                    if answer[..len] == *expected.as_bytes() {
                        return true;
                    }
                }
                false
            });
            assert!(answered, "{request} answered within 3 tries");
            std::thread::sleep(Duration::from_millis(20));
        }
        sends
    });
    let mut sent = 0u64;
    let mut replies = 0u64;
    let mut answer = [0; 16];
    while started.elapsed() < Duration::from_millis(600) {
        for _ in 0..64 {
            match flood.send_to(b"flood", target) {
                Ok(_) => sent += 1,
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) => panic!("{error}"),
            }
        }
        while flood.recv_from(&mut answer).is_ok() {
            replies += 1;
        }
    }
    let quiet_sends = quiet.join().expect("the quiet client loses nothing");
    wait_until_answered(&server.handle);
    // Tokens accrue until the server has handled the last datagram.
    let elapsed = started.elapsed().as_secs_f64();
    flood.set_nonblocking(false).unwrap();
    flood
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while flood.recv_from(&mut answer).is_ok() {
        replies += 1;
    }
    let bound = f64::from(RATE) * elapsed + f64::from(BURST);
    assert!(
        (replies as f64) <= bound,
        "{replies} replies in {elapsed:.3} s, over {bound}"
    );
    assert!(replies >= u64::from(BURST), "the burst is given: {replies}");
    let stats = server.handle.stats();
    assert!(
        stats.datagrams_rate_limited >= sent.saturating_sub(bound as u64 + 20) / 2,
        "{stats:?} after {sent} sent"
    );
    assert!(stats.datagrams_rate_limited > 0, "{stats:?}");
    // Every reply sent was received: the flood's, and one per ping that
    // reached the server (20 unless the kernel lost some before).
    let quiet_replies = stats.datagrams_out - replies;
    assert!(
        (20..=quiet_sends).contains(&quiet_replies),
        "{quiet_replies} replies to {quiet_sends} pings sent: {stats:?}"
    );
    assert_eq!(stats.datagrams_dropped, stats.datagrams_rate_limited);
}

#[test]
fn thousands_of_sources_each_get_a_fresh_bucket_and_a_heavy_one_is_still_limited() {
    let server = start(|b| b.udp_rate_per_source(1).udp_burst_per_source(2));
    let mut answer = [0; 8];
    // 3,000 sources: fewer than the table's 8,192 slots, so each is still
    // tracked afterwards; the unit tests go to 100,000.
    for n in 0..3000u16 {
        let [c, d] = n.to_be_bytes();
        let socket = udp_from([127, 1, c, d]);
        socket.send_to(b"new", server.udp()).unwrap();
        let (len, _) = socket
            .recv_from(&mut answer)
            .expect("a new source is answered");
        assert_eq!(&answer[..len], b"NEW");
    }
    let heavy = udp_from([127, 0, 0, 2]);
    heavy
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for _ in 0..10 {
        heavy.send_to(b"x", server.udp()).unwrap();
    }
    wait_until_answered(&server.handle);
    let mut replies = 0;
    while heavy.recv_from(&mut answer).is_ok() {
        replies += 1;
    }
    // Its burst of 2, and 1 per second while this ran.
    assert!((2..=4).contains(&replies), "{replies}");
    let stats = server.handle.stats();
    assert_eq!(stats.datagrams_out, 3000 + replies);
    assert_eq!(stats.datagrams_rate_limited, 10 - replies);
}
