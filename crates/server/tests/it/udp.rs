//! UDP: one datagram in, one out; limits; bursts from many sockets.

use crate::support::{TIMEOUT, start, wait_until};
use shout_protocol::MAX_DATAGRAM_PAYLOAD;
use std::net::UdpSocket;
use std::time::Duration;

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket
}

#[test]
fn datagram_in_uppercase_datagram_out() {
    let server = start(|b| b);
    let socket = client();
    for text in ["hello", "", "straße ﬁ", "a\0b\r\n"] {
        socket.send_to(text.as_bytes(), server.udp()).unwrap();
        let mut buf = [0; 1024];
        let (len, from) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(from, server.udp());
        assert_eq!(&buf[..len], text.to_uppercase().as_bytes(), "{text:?}");
    }
}

#[test]
fn largest_datagram_is_answered_whole() {
    let server = start(|b| b);
    let socket = client();
    let request = vec![b'q'; MAX_DATAGRAM_PAYLOAD];
    socket.send_to(&request, server.udp()).unwrap();
    let mut buf = vec![0; 65_536];
    let (len, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(len, MAX_DATAGRAM_PAYLOAD);
    assert!(buf[..len].iter().all(|&b| b == b'Q'));
}

#[test]
fn reply_too_large_is_not_sent_and_is_counted() {
    let server = start(|b| b);
    let socket = client();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let request = "ΐ".repeat(MAX_DATAGRAM_PAYLOAD / 2);
    socket.send_to(request.as_bytes(), server.udp()).unwrap();
    let mut buf = vec![0; 65_536];
    assert!(
        socket.recv_from(&mut buf).is_err(),
        "a truncated or oversize reply was sent"
    );
    wait_until("the drop to be counted", || {
        server.handle.stats().datagrams_dropped == 1
    });
    // The server still answers the next one.
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket.send_to(b"next", server.udp()).unwrap();
    let (len, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"NEXT");
}

#[test]
fn burst_from_many_sockets_is_answered() {
    let server = start(|b| b);
    let clients: Vec<UdpSocket> = (0..100).map(|_| client()).collect();
    for round in 0..10 {
        for (id, socket) in clients.iter().enumerate() {
            socket
                .send_to(
                    format!("client {id} round {round}").as_bytes(),
                    server.udp(),
                )
                .unwrap();
        }
    }
    // 1000 datagrams in flight at once fit the socket buffers on loopback,
    // so each client gets exactly its own ten answers back, in order.
    for (id, socket) in clients.iter().enumerate() {
        for round in 0..10 {
            let mut buf = [0; 128];
            let (len, _) = socket.recv_from(&mut buf).expect("answer arrives");
            assert_eq!(&buf[..len], format!("CLIENT {id} ROUND {round}").as_bytes());
        }
    }
    let stats = server.stop();
    assert_eq!((stats.datagrams_in, stats.datagrams_out), (1000, 1000));
}

/// Uppercase over UDP, except that the datagram `stop` asks the server to
/// stop and then stalls the loop, so that the datagrams sent meanwhile are
/// waiting in the socket when the drain begins.
struct StopOnRequest {
    /// Set by the test once the server is built, before any traffic.
    handle: std::sync::Arc<std::sync::OnceLock<shout_server::Handle>>,
}

impl shout_server::DatagramService for StopOnRequest {
    fn datagram(
        &self,
        request: &[u8],
        peer: std::net::SocketAddr,
        reply: &mut Vec<u8>,
    ) -> shout_server::DatagramReply {
        if request == b"stop" {
            self.handle
                .get()
                .expect("handle set before traffic")
                .shutdown();
            std::thread::sleep(Duration::from_millis(300));
            return shout_server::DatagramReply::Drop;
        }
        shout_server::Uppercase.datagram(request, peer, reply)
    }
}

#[test]
fn a_stop_answers_every_datagram_already_received() {
    use shout_server::{ServerBuilder, Uppercase};
    use std::sync::Arc;

    let handle_slot = Arc::new(std::sync::OnceLock::new());
    let service = StopOnRequest {
        handle: Arc::clone(&handle_slot),
    };
    let server = ServerBuilder::new(Uppercase, service)
        .udp("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let handle = server.handle();
    handle_slot.set(handle.clone()).unwrap();
    let addr = handle.udp_addrs()[0];
    let running = std::thread::spawn(move || server.run());

    // More than two turns' shares (256 each) arrive while the loop stalls.
    const WAITING: usize = 600;
    // Room for every reply at once: they come in a burst when the loop
    // resumes, faster than a reader thread is sure to keep up.
    let socket = shout_socket::UdpSocketBuilder::new("127.0.0.1:0".parse().unwrap())
        .recv_buffer_size(4 << 20)
        .bind()
        .unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let receiver = socket.try_clone().unwrap();
    let replies = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0; 64];
        while got.len() < WAITING {
            match receiver.recv(&mut buf) {
                Ok(len) => got.push(buf[..len].to_vec()),
                Err(_) => break, // TIMEOUT passed: report what came
            }
        }
        got
    });
    socket.send_to(b"stop", addr).unwrap();
    for n in 0..WAITING {
        socket
            .send_to(format!("datagram {n}").as_bytes(), addr)
            .unwrap();
    }
    let stats = running.join().unwrap().unwrap();
    let got = replies.join().unwrap();
    assert_eq!(got.len(), WAITING, "{stats:?}");
    assert_eq!(stats.datagrams_out, WAITING as u64);
    assert_eq!(
        got[WAITING - 1],
        format!("DATAGRAM {}", WAITING - 1).into_bytes()
    );
}
