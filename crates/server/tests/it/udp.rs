//! UDP: one datagram in, one out; limits; bursts from many sockets.

use crate::support::{TIMEOUT, small_datagrams_that_fit, start, wait_until};
use shout_protocol::MAX_DATAGRAM_PAYLOAD;
use std::net::UdpSocket;
use std::time::Duration;

/// A socket that asks for the receive buffer the server's UDP socket asks
/// for by default (4 MiB), so that what the kernel grants it is what the
/// server got.
fn sized_like_the_server() -> UdpSocket {
    shout_socket::UdpSocketBuilder::new("127.0.0.1:0".parse().unwrap())
        .recv_buffer_size(4 << 20)
        .bind()
        .unwrap()
}

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
    const CLIENTS: usize = 100;
    let server = start(|b| b);
    // As many rounds as the server's receive buffer holds at once (up to
    // 10): 4 on a stock kernel, whose rmem_max caps the 4 MiB asked for.
    let rounds = (small_datagrams_that_fit(&sized_like_the_server()) / CLIENTS).clamp(1, 10);
    let clients: Vec<UdpSocket> = (0..CLIENTS).map(|_| client()).collect();
    for round in 0..rounds {
        for (id, socket) in clients.iter().enumerate() {
            socket
                .send_to(
                    format!("client {id} round {round}").as_bytes(),
                    server.udp(),
                )
                .unwrap();
        }
    }
    // Every datagram in flight fits the server's socket buffer, so each
    // client gets exactly its own answers back, in order.
    for (id, socket) in clients.iter().enumerate() {
        for round in 0..rounds {
            let mut buf = [0; 128];
            let (len, _) = socket.recv_from(&mut buf).expect("answer arrives");
            assert_eq!(&buf[..len], format!("CLIENT {id} ROUND {round}").as_bytes());
        }
    }
    let stats = server.stop();
    let sent = (CLIENTS * rounds) as u64;
    assert_eq!((stats.datagrams_in, stats.datagrams_out), (sent, sent));
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

    // Room for every reply at once: they come in a burst when the loop
    // resumes, faster than a reader thread is sure to keep up.
    let socket = sized_like_the_server();
    // More than one turn's share (256) arrives while the loop stalls: 600,
    // over two shares, where the receive buffers hold them (rmem_max of
    // 1 MiB or more), about 400 on a stock kernel.
    let waiting = small_datagrams_that_fit(&socket).min(600);
    assert!(
        waiting > 256,
        "the receive buffer holds only {waiting} datagrams; the test needs more than 256"
    );
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let receiver = socket.try_clone().unwrap();
    let replies = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0; 64];
        while got.len() < waiting {
            match receiver.recv(&mut buf) {
                Ok(len) => got.push(buf[..len].to_vec()),
                Err(_) => break, // TIMEOUT passed: report what came
            }
        }
        got
    });
    socket.send_to(b"stop", addr).unwrap();
    for n in 0..waiting {
        socket
            .send_to(format!("datagram {n}").as_bytes(), addr)
            .unwrap();
    }
    let stats = running.join().unwrap().unwrap();
    let got = replies.join().unwrap();
    assert_eq!(got.len(), waiting, "{stats:?}");
    assert_eq!(stats.datagrams_out, waiting as u64);
    assert_eq!(
        got[waiting - 1],
        format!("DATAGRAM {}", waiting - 1).into_bytes()
    );
}
