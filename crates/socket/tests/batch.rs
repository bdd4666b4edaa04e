//! Batched datagram I/O on real loopback sockets: every datagram arrives
//! whole, from the right sender, in order, and none is lost or duplicated
//! when a batch holds fewer or more than are waiting.

use shout_socket::batch::{MAX_BATCH, RECEIVE_SLOT_BYTES, RecvBatch, SendQueue};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(5);

fn bound(addr: &str) -> UdpSocket {
    let socket = UdpSocket::bind(addr).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket
}

fn nonblocking(addr: &str) -> UdpSocket {
    let socket = UdpSocket::bind(addr).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket
}

/// Receives into `batch` until `want` datagrams came (or the deadline),
/// collecting them; loopback delivers at once, but a test must not rely on
/// it.
fn receive_all(
    batch: &mut RecvBatch,
    socket: &UdpSocket,
    want: usize,
) -> Vec<(Vec<u8>, SocketAddr)> {
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        match batch.recv_from(socket) {
            Ok(count) => {
                assert!(count >= 1 && count <= batch.slots(), "{count}");
                assert_eq!(batch.iter().len(), count);
                got.extend(batch.iter().map(|(data, peer)| (data.to_vec(), peer)));
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(error) => panic!("receive failed: {error}"),
        }
    }
    got
}

#[test]
fn waiting_datagrams_arrive_whole_in_order_with_their_senders() {
    let server = nonblocking("127.0.0.1:0");
    let to = server.local_addr().unwrap();
    let clients: Vec<UdpSocket> = (0..3).map(|_| bound("127.0.0.1:0")).collect();
    // More than one batch holds: 4 slots, 10 datagrams, an empty one among them.
    let mut sent = Vec::new();
    for index in 0..10 {
        let client = &clients[index % clients.len()];
        let payload = if index == 5 {
            Vec::new()
        } else {
            format!("datagram {index}").into_bytes()
        };
        client.send_to(&payload, to).unwrap();
        sent.push((payload, client.local_addr().unwrap()));
    }
    let mut batch = RecvBatch::new(4);
    assert_eq!(batch.slots(), 4);
    let got = receive_all(&mut batch, &server, sent.len());
    assert_eq!(got, sent);
    // Nothing left, and nothing from the last batch is seen again.
    let error = batch.recv_from(&server).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WouldBlock);
    assert_eq!(batch.iter().len(), 0);
}

#[test]
fn the_largest_datagram_fits_a_slot() {
    let server = nonblocking("127.0.0.1:0");
    let client = bound("127.0.0.1:0");
    // 65,507 bytes: the largest UDP payload over IPv4.
    let large: Vec<u8> = (0..65_507u32).map(|i| (i % 251) as u8).collect();
    client
        .send_to(&large, server.local_addr().unwrap())
        .unwrap();
    client
        .send_to(b"after", server.local_addr().unwrap())
        .unwrap();
    let mut batch = RecvBatch::new(2);
    let got = receive_all(&mut batch, &server, 2);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, large);
    assert_eq!(got[1].0, b"after");
}

#[test]
fn ipv6_senders_are_read_back_exactly() {
    let server = nonblocking("[::1]:0");
    let client = bound("[::1]:0");
    client
        .send_to(b"six", server.local_addr().unwrap())
        .unwrap();
    let mut batch = RecvBatch::new(MAX_BATCH);
    let got = receive_all(&mut batch, &server, 1);
    assert_eq!(got, vec![(b"six".to_vec(), client.local_addr().unwrap())]);
}

#[test]
fn slot_counts_outside_the_range_are_brought_into_it() {
    assert_eq!(RecvBatch::new(0).slots(), 1);
    assert_eq!(RecvBatch::new(10_000).slots(), MAX_BATCH);
}

#[test]
fn queued_replies_reach_each_peer_in_order_past_one_batch() {
    let server = nonblocking("127.0.0.1:0");
    let peers: Vec<UdpSocket> = (0..4).map(|_| bound("127.0.0.1:0")).collect();
    let mut queue = SendQueue::new();
    // More than one sendmmsg takes.
    let total = 3 * MAX_BATCH + 5;
    for index in 0..total {
        let peer = &peers[index % peers.len()];
        queue.push(
            peer.local_addr().unwrap(),
            format!("reply {index}").as_bytes(),
        );
    }
    assert_eq!(queue.len(), total);
    assert!(queue.bytes() > 0);
    let outcome = queue.send_to(&server, |peer, error| panic!("{peer}: {error}"));
    assert_eq!(outcome.sent, total);
    assert_eq!(outcome.failed, 0);
    assert!(!outcome.would_block);
    assert!(queue.is_empty());
    assert_eq!(queue.bytes(), 0);
    for (index, peer) in peers.iter().enumerate() {
        let mut buffer = [0; 64];
        for expected in (index..total).step_by(peers.len()) {
            let (len, from) = peer.recv_from(&mut buffer).unwrap();
            assert_eq!(from, server.local_addr().unwrap());
            assert_eq!(&buffer[..len], format!("reply {expected}").as_bytes());
        }
    }
}

#[test]
fn a_refused_destination_is_dropped_and_the_rest_still_sent() {
    let server = nonblocking("127.0.0.1:0");
    let peer = bound("127.0.0.1:0");
    let to = peer.local_addr().unwrap();
    // Port 0 cannot be sent to: the kernel refuses that one datagram.
    let nowhere: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut queue = SendQueue::new();
    queue.push(to, b"first");
    queue.push(nowhere, b"lost");
    queue.push(to, b"second");
    let mut refused = Vec::new();
    let outcome = queue.send_to(&server, |peer, error| refused.push((peer, error.kind())));
    assert_eq!(outcome.sent, 2);
    assert_eq!(outcome.failed, 1);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, nowhere);
    assert!(queue.is_empty());
    let mut buffer = [0; 16];
    for expected in [&b"first"[..], b"second"] {
        let (len, _) = peer.recv_from(&mut buffer).unwrap();
        assert_eq!(&buffer[..len], expected);
    }
}

#[test]
fn clear_drops_and_counts_what_was_not_sent() {
    let mut queue = SendQueue::new();
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    queue.push(peer, &[0; RECEIVE_SLOT_BYTES / 2]);
    queue.push(peer, b"x");
    assert_eq!(queue.bytes(), RECEIVE_SLOT_BYTES / 2 + 1);
    assert_eq!(queue.clear(), 2);
    assert!(queue.is_empty());
    assert_eq!(queue.clear(), 0);
}
