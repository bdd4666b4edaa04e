//! Many clients at once: concurrent sessions spread over two workers, and
//! thousands of idle connections held together (C10K at test scale).

use shout_client::{Connector, LineSession};
use shout_tests::{TIMEOUT, TestServer, ensure_descriptor_limit, wait_until};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

const CLIENTS: usize = 300;
const LINES_PER_CLIENT: usize = 3;

/// Client `id`'s own text, so that an answer meant for another client, or a
/// mix of two, cannot pass.
fn text_of(id: usize, line: usize) -> String {
    format!(
        "client {id:04} line {line}: grüße ﬁ ΐ ǰ 🦀 {}\n",
        "x".repeat(id % 17)
    )
}

#[test]
fn three_hundred_concurrent_clients_over_two_workers_each_get_their_own_answers() {
    let server = TestServer::start_with(|builder| builder.workers(2));
    let connector = Connector::new(server.tcp_target(), vec![server.tcp_addr()], Some(TIMEOUT));
    // A starting line: every client connects, then all talk at once. Unlike
    // a `Barrier`, the wait is bounded, so a client that failed to start
    // fails the test instead of hanging it.
    let connected = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let connector = connector.clone();
            let connected = Arc::clone(&connected);
            thread::Builder::new()
                .name(format!("client-{id}"))
                .spawn(move || {
                    let mut session = LineSession::new(connector, Some(TIMEOUT));
                    let connection = session
                        .connect()
                        .map(|_| ())
                        .map_err(|error| error.to_string());
                    connected.fetch_add(1, Ordering::SeqCst);
                    if let Err(error) = connection {
                        panic!("client {id} does not connect: {error}");
                    }
                    wait_until("every client to connect", || {
                        connected.load(Ordering::SeqCst) == CLIENTS
                    });
                    for line in 0..LINES_PER_CLIENT {
                        let text = text_of(id, line);
                        let exchange = session
                            .shout(text.as_bytes())
                            .unwrap_or_else(|error| panic!("client {id}: {error}"));
                        assert_eq!(
                            String::from_utf8_lossy(exchange.reply),
                            text.to_uppercase(),
                            "client {id} line {line}"
                        );
                    }
                    // Kept open, so that all of them are open at once below.
                    session
                })
                .expect("a client thread starts")
        })
        .collect();
    let sessions: Vec<LineSession> = clients
        .into_iter()
        .map(|client| {
            client
                .join()
                .expect("a client saw a wrong or missing answer")
        })
        .collect();
    wait_until("all clients to be connected at once", || {
        server.stats().connections_open() == CLIENTS as u64
    });
    drop(sessions);
    wait_until("all connections to close", || {
        server.stats().connections_open() == 0
    });
    // Each worker counts its own connections: only the sum over both can be
    // 300 (the kernel spreads 300 clients over both workers, all but surely).
    let stats = server.stop();
    assert_eq!(stats.connections_accepted, CLIENTS as u64);
    assert_eq!(stats.connections_closed, CLIENTS as u64);
    let bytes: usize = (0..CLIENTS)
        .flat_map(|id| (0..LINES_PER_CLIENT).map(move |line| text_of(id, line)))
        .map(|text| text.len())
        .sum();
    assert_eq!(stats.bytes_in, bytes as u64);
}

/// The test process holds both ends of every connection: 2 × 2000
/// descriptors, plus room for the server and the test harness.
const IDLE_CONNECTIONS: usize = 2000;

#[test]
fn two_thousand_idle_connections_held_at_once_then_each_used() {
    // A stock soft limit is 1,024; the test raises it up to the hard limit,
    // and says so if the hard limit is too low.
    ensure_descriptor_limit(2 * IDLE_CONNECTIONS as u64 + 128);
    let server = TestServer::start();
    let mut streams: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|id| {
            let stream = TcpStream::connect_timeout(&server.tcp_addr(), TIMEOUT)
                .unwrap_or_else(|error| panic!("connection {id}: {error}"));
            stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            stream.set_write_timeout(Some(TIMEOUT)).unwrap();
            stream
        })
        .collect();
    wait_until("the server to accept every connection", || {
        server.stats().connections_accepted == IDLE_CONNECTIONS as u64
    });
    assert_eq!(server.stats().connections_open(), IDLE_CONNECTIONS as u64);
    // Last opened first, so the oldest connections have waited longest.
    for (id, stream) in streams.iter_mut().enumerate().rev() {
        let text = format!("idle connection {id} wakes: straße 🦀\n");
        stream.write_all(text.as_bytes()).unwrap();
        let expected = text.to_uppercase();
        let mut reply = vec![0; expected.len()];
        stream
            .read_exact(&mut reply)
            .unwrap_or_else(|error| panic!("connection {id}: {error}"));
        assert_eq!(String::from_utf8_lossy(&reply), expected);
    }
    assert_eq!(server.stats().connections_open(), IDLE_CONNECTIONS as u64);
    drop(streams);
    wait_until("every connection to close", || {
        server.stats().connections_open() == 0
    });
    let stats = server.stop();
    assert_eq!(stats.connections_accepted, IDLE_CONNECTIONS as u64);
    assert_eq!((stats.connections_shed, stats.idle_timeouts), (0, 0));
}
