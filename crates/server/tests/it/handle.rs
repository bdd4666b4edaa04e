//! The server's handle where a service needs it: inside callbacks
//! (`ConnectionContext::handle`), given to the services at build
//! (`server_built`), and on the embedder's own threads, which can wait for
//! the stop to begin.

use crate::support::*;
use shout_server::{
    ConnectionContext, DatagramReply, DatagramService, Handle, ServerBuilder, StreamService,
};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Answers `STATS` with the connections accepted so far, and stops the
/// server on `STOP`: both through the context's handle.
struct Admin;

impl StreamService for Admin {
    type Session = ();

    fn open(&self, _: &mut ConnectionContext<'_>) {}

    fn data(&self, _: &mut (), input: &[u8], conn: &mut ConnectionContext<'_>) {
        if input.starts_with(b"STATS") {
            let accepted = conn.handle().stats().connections_accepted;
            conn.write(format!("accepted {accepted}\n").as_bytes());
        } else if input.starts_with(b"STOP") {
            conn.write(b"stopping\n");
            conn.handle().shutdown();
        }
    }
}

#[test]
fn a_callback_reads_the_counters_and_stops_the_server_through_its_context() {
    let server = run(ServerBuilder::tcp_only(Admin).tcp("127.0.0.1:0".parse().unwrap()));
    let handle = server.handle.clone();
    let other = connect(server.tcp());
    let mut admin = connect(server.tcp());
    admin.write_all(b"STATS\n").unwrap();
    assert_eq!(read_exactly(&mut admin, 11), b"accepted 2\n");
    // An embedder's thread that waits for the stop, as a ticker would.
    let waiter = {
        let handle = handle.clone();
        std::thread::spawn(move || handle.wait_for_shutdown())
    };
    assert!(
        !handle.wait_for_shutdown_timeout(Duration::from_millis(50)),
        "no stop yet"
    );
    admin.write_all(b"STOP\n").unwrap();
    assert_eq!(read_exactly(&mut admin, 9), b"stopping\n");
    join_within(waiter, TIMEOUT).expect("the waiting thread learns of the stop");
    assert!(handle.wait_for_shutdown_timeout(Duration::ZERO));
    assert!(handle.is_shutting_down());
    drop((admin, other));
    let stats = server.stop();
    assert_eq!(stats.connections_accepted, 2, "{stats}");
}

/// Answers each datagram with the datagrams received so far, through the
/// handle it was given at build.
#[derive(Default)]
struct Counting {
    handle: OnceLock<Handle>,
}

impl DatagramService for Counting {
    fn datagram(&self, _: &[u8], _: SocketAddr, reply: &mut Vec<u8>) -> DatagramReply {
        let Some(handle) = self.handle.get() else {
            return DatagramReply::Drop;
        };
        let received = handle.stats().datagrams_in;
        reply.extend_from_slice(received.to_string().as_bytes());
        DatagramReply::Send
    }

    fn server_built(&self, handle: &Handle) {
        let _ = self.handle.set(handle.clone());
    }
}

#[test]
fn a_datagram_service_is_given_the_handle_before_its_first_datagram() {
    let server =
        run(ServerBuilder::udp_only(Counting::default()).udp("127.0.0.1:0".parse().unwrap()));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    for expected in [b"1", b"2"] {
        client.send_to(b"count", server.udp()).unwrap();
        let mut reply = [0; 16];
        let (len, _) = client.recv_from(&mut reply).unwrap();
        assert_eq!(&reply[..len], expected);
    }
}

#[test]
fn a_waiting_thread_learns_of_a_stop_asked_before_it_waited() {
    let server = run(ServerBuilder::tcp_only(Admin).tcp("127.0.0.1:0".parse().unwrap()));
    let handle = Arc::new(server.handle.clone());
    handle.shutdown();
    let waiter = std::thread::spawn(move || handle.wait_for_shutdown());
    join_within(waiter, TIMEOUT).expect("returns at once");
    server.stop();
}
