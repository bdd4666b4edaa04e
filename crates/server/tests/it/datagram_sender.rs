//! UDP beyond one reply per request: a `DatagramSender` from the
//! embedder's thread and from the datagram callback, in order with the
//! fast path's replies, counted and rate-limited like them; and the reply
//! ratio that bounds amplification.

use crate::support::*;
use shout_server::{
    DatagramReply, DatagramSendError, DatagramService, Handle, ServerBuilder, Uppercase,
};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn client() -> UdpSocket {
    let socket = UdpSocket::bind(loopback()).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket
}

fn receive(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0; 65_536];
    let (len, _) = socket.recv_from(&mut buf).expect("a datagram in time");
    buf.truncate(len);
    buf
}

/// `SUB` answers `OK` at once and lists the peer for the ticks an
/// embedder's thread sends; `ECHO n TEXT` answers `TEXT` n times through
/// the sender, from the callback itself.
#[derive(Default)]
struct Ticks {
    /// Shared with the embedder's thread.
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    handle: OnceLock<Handle>,
}

impl DatagramService for Ticks {
    fn datagram(&self, request: &[u8], peer: SocketAddr, reply: &mut Vec<u8>) -> DatagramReply {
        if request == b"SUB" {
            self.peers.lock().unwrap().push(peer);
            reply.extend_from_slice(b"OK");
            return DatagramReply::Send;
        }
        let text = String::from_utf8_lossy(request);
        let Some((times, echo)) = text
            .strip_prefix("ECHO ")
            .and_then(|rest| rest.split_once(' '))
        else {
            return DatagramReply::Drop;
        };
        let sender = self.handle.get().expect("given at build").datagram_sender();
        for _ in 0..times.parse::<usize>().unwrap_or(0) {
            sender.send_to(peer, echo.as_bytes()).unwrap();
        }
        DatagramReply::Deferred
    }

    fn server_built(&self, handle: &Handle) {
        let _ = self.handle.set(handle.clone());
    }
}

#[test]
fn a_thread_of_the_embedders_sends_ticks_after_the_reply_and_stops_with_the_server() {
    let service = Ticks::default();
    let peers = Arc::clone(&service.peers);
    let server = run(ServerBuilder::udp_only(service).udp(loopback()).workers(2));
    let handle = server.handle.clone();
    let ticker = std::thread::spawn(move || {
        let sender = handle.datagram_sender();
        let mut tick = 0u64;
        // The stop wakes it at once.
        while !handle.wait_for_shutdown_timeout(Duration::from_millis(5)) {
            for peer in peers.lock().unwrap().iter() {
                let _ = sender.send_to(*peer, format!("tick {tick}").as_bytes());
            }
            tick += 1;
        }
        sender
    });
    let socket = client();
    socket.send_to(b"SUB", server.udp()).unwrap();
    assert_eq!(receive(&socket), b"OK", "the reply comes before any tick");
    let mut last = None;
    for _ in 0..5 {
        let tick = String::from_utf8(receive(&socket)).unwrap();
        let n: u64 = tick.strip_prefix("tick ").unwrap().parse().unwrap();
        assert!(last.is_none_or(|last| n > last), "in order: {tick}");
        last = Some(n);
    }
    // Counted once sent, which may be just after the client has them.
    wait_until("the six datagrams are counted", || {
        let stats = server.handle.stats();
        stats.datagrams_from_senders >= 5 && stats.datagrams_out >= 6
    });
    server.stop();
    let sender = join_within(ticker, TIMEOUT).expect("the ticker ends on the stop");
    let late = sender.send_to("127.0.0.1:40000".parse().unwrap(), b"late");
    assert_eq!(late, Err(DatagramSendError::Stopped));
}

#[test]
fn a_callback_answers_several_times_through_the_sender() {
    let server = run(ServerBuilder::udp_only(Ticks::default()).udp(loopback()));
    let socket = client();
    socket.send_to(b"ECHO 3 again", server.udp()).unwrap();
    for _ in 0..3 {
        assert_eq!(receive(&socket), b"again");
    }
    let stats = server.stop();
    assert_eq!(stats.datagrams_from_senders, 3, "{stats}");
    assert_eq!(stats.datagrams_out, 3, "{stats}");
    assert_eq!(
        stats.datagrams_dropped, 0,
        "deferred is not dropped: {stats}"
    );
}

#[test]
fn the_senders_datagrams_spend_the_peers_reply_rate() {
    let server = run(ServerBuilder::udp_only(Ticks::default())
        .udp(loopback())
        .udp_rate_per_source(1)
        .udp_burst_per_source(3));
    let socket = client();
    socket.send_to(b"SUB", server.udp()).unwrap();
    assert_eq!(receive(&socket), b"OK");
    socket.send_to(b"ECHO 10 more", server.udp()).unwrap();
    assert_eq!(receive(&socket), b"more");
    wait_until("the loop takes the ten", || {
        server.handle.stats().datagrams_from_senders == 10
    });
    let stats = server.stop();
    // A burst of 3: one for each request (checked as it comes, before
    // the service runs), one for the first echo, and at most a token or
    // two refilled at 1 a second while the test ran.
    assert!(stats.datagrams_rate_limited >= 7, "{stats}");
    assert_eq!(
        stats.datagrams_out + stats.datagrams_rate_limited,
        11,
        "{stats}"
    );
}

#[test]
fn a_sender_of_a_server_without_udp_has_no_socket() {
    let server = run(ServerBuilder::tcp_only(Uppercase).tcp(loopback()));
    let sender = server.handle.datagram_sender();
    let peer = "127.0.0.1:40000".parse().unwrap();
    assert_eq!(sender.send_to(peer, b"x"), Err(DatagramSendError::NoSocket));
}

/// Answers each request with its text repeated `FACTOR` times.
struct Amplifier;

const FACTOR: usize = 10;

impl DatagramService for Amplifier {
    fn datagram(&self, request: &[u8], _: SocketAddr, reply: &mut Vec<u8>) -> DatagramReply {
        let times = if request.starts_with(b"small") {
            2
        } else {
            FACTOR
        };
        for _ in 0..times {
            reply.extend_from_slice(request);
        }
        DatagramReply::Send
    }
}

#[test]
fn a_reply_larger_than_the_ratio_allows_is_not_sent_and_is_counted() {
    let server = run(ServerBuilder::udp_only(Amplifier)
        .udp(loopback())
        .udp_reply_ratio(3));
    let socket = client();
    socket.send_to(b"big", server.udp()).unwrap();
    socket.send_to(b"small", server.udp()).unwrap();
    // Datagrams on loopback keep their order: the first to come is the
    // answer to the second request.
    assert_eq!(receive(&socket), b"smallsmall");
    let stats = server.stop();
    assert_eq!(stats.datagrams_over_ratio, 1, "{stats}");
    assert_eq!(stats.datagrams_dropped, 1, "{stats}");
    assert_eq!(stats.datagrams_out, 1, "{stats}");
}

#[test]
fn without_a_ratio_a_reply_may_be_any_multiple() {
    let server = run(ServerBuilder::udp_only(Amplifier).udp(loopback()));
    let socket = client();
    socket.send_to(b"big", server.udp()).unwrap();
    assert_eq!(receive(&socket), b"big".repeat(FACTOR));
}
