//! QUIC listeners: each bidirectional stream one session of the stream
//! service, the FIN as the end of input, the stream limit, Retry, the
//! anti-amplification limit, backpressure, garbage and the stop. Real
//! UDP on loopback, with a quinn-proto client driven by hand here.

use crate::support::*;
use bytes::BytesMut;
use quinn_proto::crypto::rustls::QuicClientConfig;
use quinn_proto::{
    ClientConfig, Connection, ConnectionError, ConnectionHandle, DatagramEvent, Dir, Endpoint,
    EndpointConfig, Event, ReadError, StreamId,
};
use shout_server::rustls::{self, ServerConfig};
use shout_server::{
    CloseCause, ConnectionContext, ConnectionInfo, EndReason, ServerBuilder, StreamService,
    Transport, Uppercase,
};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A blocking QUIC client on a std socket: quinn-proto driven by hand.
struct Client {
    socket: UdpSocket,
    endpoint: Endpoint,
    conn: Connection,
    handle: ConnectionHandle,
    lost: Option<ConnectionError>,
    buf: Vec<u8>,
    /// Set, the client sends several datagrams of one size in one system
    /// call (GSO) and takes coalesced ones on receipt (GRO), as quinn does.
    offload: Option<quinn_udp::UdpSocketState>,
}

/// A QUIC server config for a fresh self-signed localhost certificate,
/// and a client config that trusts only it, with the ALPN `shout`.
fn configs() -> (Arc<ServerConfig>, ClientConfig) {
    let (server, client) = crate::tls::configs(&[&rustls::version::TLS13]);
    let mut client = (*client).clone();
    client.alpn_protocols = vec![b"shout".to_vec()];
    // A resumed session may carry its first request (0-RTT).
    client.enable_early_data = true;
    let client = QuicClientConfig::try_from(Arc::new(client)).unwrap();
    (server, ClientConfig::new(Arc::new(client)))
}

/// An uppercase server serving QUIC only on 127.0.0.1, configured by
/// `configure`, and the client config that trusts it.
fn start_quic(
    configure: impl FnOnce(ServerBuilder<Uppercase, Uppercase>) -> ServerBuilder<Uppercase, Uppercase>,
) -> (Running, ClientConfig) {
    let (server, client) = configs();
    let builder =
        ServerBuilder::new(Uppercase, Uppercase).quic("127.0.0.1:0".parse().unwrap(), server);
    (run(configure(builder)), client)
}

fn quic_addr(server: &Running) -> SocketAddr {
    server.handle.quic_addrs()[0]
}

impl Client {
    /// Connects to `server` and completes the handshake.
    fn connect(server: SocketAddr, config: ClientConfig) -> Self {
        let mut client = Self::begin(server, config);
        client.drive_until("the handshake", |client| {
            !client.conn.is_handshaking() || client.lost.is_some()
        });
        assert!(client.lost.is_none(), "handshake failed: {:?}", client.lost);
        // Its last handshake flight (Finished) out now, not with its next
        // request: the server sees the handshake end.
        client.transmit();
        client
    }

    /// Connects to `server`, or returns why the connection ended in its
    /// handshake (a refusal).
    fn try_connect(server: SocketAddr, config: ClientConfig) -> Result<Self, ConnectionError> {
        let mut client = Self::begin(server, config);
        client.drive_until("the handshake or its end", |client| {
            !client.conn.is_handshaking() || client.lost.is_some()
        });
        match client.lost.take() {
            Some(reason) => Err(reason),
            None => {
                client.transmit();
                Ok(client)
            }
        }
    }

    /// Closes the connection (application code 0) and sends the close.
    fn close(&mut self) {
        (self.conn).close(Instant::now(), 0u32.into(), bytes::Bytes::new());
        self.transmit();
    }

    /// Starts connecting to `server`, sending nothing yet.
    fn begin(server: SocketAddr, config: ClientConfig) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut endpoint = Endpoint::new(Arc::new(EndpointConfig::default()), None, false, None);
        let (handle, conn) = endpoint
            .connect(Instant::now(), config, server, "localhost")
            .unwrap();
        Self {
            socket,
            endpoint,
            conn,
            handle,
            lost: None,
            buf: Vec::new(),
            offload: None,
        }
    }

    /// Connects to `server` as [`Client::connect`], sending and receiving
    /// with the kernel's offloads (GSO and GRO).
    fn connect_with_offloads(server: SocketAddr, config: ClientConfig) -> Self {
        let mut client = Self::begin(server, config);
        client.offload = Some(quinn_udp::UdpSocketState::new((&client.socket).into()).unwrap());
        client.drive_until("the handshake", |client| {
            !client.conn.is_handshaking() || client.lost.is_some()
        });
        assert!(client.lost.is_none(), "handshake failed: {:?}", client.lost);
        client
    }

    /// Sends what the connection has to send: a datagram per system call,
    /// or with offloads as many of one size as the kernel segments.
    fn transmit(&mut self) {
        // quinn's own cap: more segments of a full size would pass the 64 KiB
        // one send carries, which the kernel refuses.
        let segments = (self.offload.as_ref()).map_or(1, |udp| udp.max_gso_segments().min(10));
        loop {
            self.buf.clear();
            let Some(transmit) = self
                .conn
                .poll_transmit(Instant::now(), segments, &mut self.buf)
            else {
                break;
            };
            let contents = &self.buf[..transmit.size];
            match &self.offload {
                Some(udp) => {
                    let batch = quinn_udp::Transmit {
                        destination: transmit.destination,
                        ecn: None,
                        contents,
                        segment_size: transmit.segment_size,
                        src_ip: None,
                    };
                    let _ = udp.send((&self.socket).into(), &batch);
                }
                None => {
                    let _ = self.socket.send_to(contents, transmit.destination);
                }
            }
        }
    }

    /// Waits up to `wait` for datagrams and returns each with its sender,
    /// with those that came meanwhile (up to 256 system calls' worth, so
    /// that a fast sender does not overflow the socket's buffer): with
    /// offloads, a coalesced buffer is cut at its stride.
    fn receive(&mut self, wait: Duration) -> Vec<(SocketAddr, BytesMut)> {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buffer = vec![0; 65_536];
        let mut datagrams = Vec::new();
        for call in 0..256 {
            if call == 1 {
                self.socket.set_nonblocking(true).unwrap();
            }
            let Some((from, len, stride)) = self.receive_one(&mut buffer) else {
                break;
            };
            let mut data = BytesMut::from(&buffer[..len]);
            while !data.is_empty() {
                datagrams.push((from, data.split_to(stride.max(1).min(data.len()))));
            }
        }
        self.socket.set_nonblocking(false).unwrap();
        datagrams
    }

    /// Receives one buffer: its sender, length and stride (the size of
    /// each datagram in it), or `None` when nothing came.
    fn receive_one(&self, buffer: &mut [u8]) -> Option<(SocketAddr, usize, usize)> {
        let Some(udp) = &self.offload else {
            let (len, from) = self.socket.recv_from(buffer).ok()?;
            return Some((from, len, len));
        };
        let mut meta = [quinn_udp::RecvMeta::default()];
        let slots = &mut [std::io::IoSliceMut::new(buffer)];
        let count = udp.recv((&self.socket).into(), slots, &mut meta).ok()?;
        (count == 1).then_some((meta[0].addr, meta[0].len, meta[0].stride))
    }

    /// Sends what the connection has to send, waits up to `wait` for a
    /// datagram, and handles it, the timers and the events.
    fn step(&mut self, wait: Duration) {
        self.transmit();
        let now = Instant::now();
        let until_timer = (self.conn.poll_timeout()).map(|at| at.saturating_duration_since(now));
        let wait = until_timer
            .unwrap_or(wait)
            .min(wait)
            .max(Duration::from_millis(1));
        for (from, data) in self.receive(wait) {
            self.buf.clear();
            let event =
                (self.endpoint).handle(Instant::now(), from, None, None, data, &mut self.buf);
            if let Some(DatagramEvent::ConnectionEvent(_, event)) = event {
                self.conn.handle_event(event);
            }
        }
        let now = Instant::now();
        if self.conn.poll_timeout().is_some_and(|at| at <= now) {
            self.conn.handle_timeout(now);
        }
        while let Some(event) = self.conn.poll_endpoint_events() {
            if let Some(event) = self.endpoint.handle_event(self.handle, event) {
                self.conn.handle_event(event);
            }
        }
        while let Some(event) = self.conn.poll() {
            if let Event::ConnectionLost { reason } = event {
                self.lost = Some(reason);
            }
        }
    }

    /// Steps until `done`, for at most `TIMEOUT`.
    fn drive_until(&mut self, what: &str, mut done: impl FnMut(&mut Self) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !done(self) {
            assert!(Instant::now() < deadline, "{what} within {TIMEOUT:?}");
            self.step(Duration::from_millis(20));
        }
    }

    /// Opens a bidirectional stream, if the server's limit allows one.
    fn open(&mut self) -> Option<StreamId> {
        self.conn.streams().open(Dir::Bi)
    }

    /// Writes all of `bytes` to stream `id`, as the server takes them.
    fn send_all(&mut self, id: StreamId, bytes: &[u8]) {
        let mut sent = 0;
        self.drive_until("the stream takes every byte", |client| {
            while sent < bytes.len() {
                match client.conn.send_stream(id).write(&bytes[sent..]) {
                    Ok(written) => sent += written,
                    Err(_) => break,
                }
            }
            sent == bytes.len()
        });
    }

    /// Ends the stream's input: its FIN.
    fn finish(&mut self, id: StreamId) {
        self.conn.send_stream(id).finish().unwrap();
    }

    /// Reads what stream `id` has now, into `out`. Returns whether its end
    /// (the server's FIN) came.
    fn read_some(&mut self, id: StreamId, out: &mut Vec<u8>) -> Result<bool, ReadError> {
        let mut recv = self.conn.recv_stream(id);
        let Ok(mut chunks) = recv.read(true) else {
            return Ok(true);
        };
        let ended = loop {
            match chunks.next(usize::MAX) {
                Ok(Some(chunk)) => out.extend_from_slice(&chunk.bytes),
                Ok(None) => break Ok(true),
                Err(ReadError::Blocked) => break Ok(false),
                Err(error) => break Err(error),
            }
        };
        let _ = chunks.finalize();
        ended
    }

    /// Reads stream `id` to its end.
    fn read_to_end(&mut self, id: StreamId) -> Vec<u8> {
        let mut out = Vec::new();
        self.drive_until("the stream's end", |client| {
            client.read_some(id, &mut out).expect("no reset")
        });
        out
    }

    /// Sends `request` on a new stream with its FIN, and returns the answer.
    fn exchange(&mut self, request: &[u8]) -> Vec<u8> {
        let id = self.open().expect("a stream under the limit");
        self.send_all(id, request);
        self.finish(id);
        self.read_to_end(id)
    }
}

#[test]
fn a_stream_is_answered_and_its_fin_is_the_end_of_input() {
    let (server, config) = start_quic(|builder| builder);
    let mut client = Client::connect(quic_addr(&server), config);
    assert_eq!(client.exchange(b"hello, quic"), b"HELLO, QUIC");
    let stats = server.stop();
    assert_eq!(stats.quic_handshakes_completed, 1);
    assert_eq!(stats.quic_streams, 1);
    assert_eq!(stats.quic_bytes_in, 11);
    assert_eq!(stats.quic_bytes_out, 11);
}

#[test]
fn datagrams_a_client_sends_in_one_system_call_are_each_taken() {
    let (server, config) = start_quic(|builder| builder);
    let mut client = Client::connect_with_offloads(quic_addr(&server), config);
    let segments = client
        .offload
        .as_ref()
        .map_or(1, |udp| udp.max_gso_segments());
    assert!(
        segments > 1,
        "loopback segments UDP sends (GSO, Linux 4.18)"
    );
    // Enough for full windows of full-size datagrams, sent GSO-batched: a
    // server that took each coalesced buffer as one datagram would drop
    // every batch and the client would count them lost.
    let request: Vec<u8> = (0..256 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(client.exchange(&request), request.to_ascii_uppercase());
    assert_eq!(client.conn.stats().path.lost_packets, 0, "no datagram lost");
    let stats = server.stop();
    assert_eq!(stats.quic_bytes_in, request.len() as u64);
}

/// Says on open how the stream came (its transport), answers in upper
/// case, and says "end" at the client's end; counts the closes.
struct Describe {
    closed_by_client: Arc<AtomicUsize>,
}

impl StreamService for Describe {
    type Session = ();

    fn open(&self, conn: &mut ConnectionContext<'_>) {
        let said = match conn.transport() {
            Transport::Quic { stream, sni } => format!("quic {stream} {sni:?}\n"),
            other => format!("{other:?}\n"),
        };
        conn.write(said.as_bytes());
    }

    fn data(&self, _: &mut (), input: &[u8], conn: &mut ConnectionContext<'_>) {
        conn.write(&input.to_ascii_uppercase());
    }

    fn end(&self, _: &mut (), conn: &mut ConnectionContext<'_>, reason: EndReason) {
        conn.write(format!("\nend {reason:?}").as_bytes());
    }

    fn closed(&self, _: (), _: &ConnectionInfo, cause: CloseCause) {
        if cause == CloseCause::ClientClosed {
            self.closed_by_client.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn each_stream_is_its_own_session_told_its_stream_id() {
    let (tls, config) = configs();
    let closed_by_client = Arc::new(AtomicUsize::new(0));
    let service = Describe {
        closed_by_client: Arc::clone(&closed_by_client),
    };
    let server = run(ServerBuilder::tcp_only(service).quic("127.0.0.1:0".parse().unwrap(), tls));
    let mut client = Client::connect(quic_addr(&server), config);
    // Opened together, answered each on its own.
    let ids: Vec<StreamId> = (0..5).map(|_| client.open().unwrap()).collect();
    for (n, &id) in ids.iter().enumerate() {
        client.send_all(id, format!("stream {n}").as_bytes());
        client.finish(id);
    }
    for (n, &id) in ids.iter().enumerate() {
        let answer = String::from_utf8(client.read_to_end(id)).unwrap();
        let stream = 4 * n;
        assert_eq!(
            answer,
            format!("quic {stream} Some(\"localhost\")\nSTREAM {n}\nend ClientClosed")
        );
    }
    wait_until("every stream closed as the client's end", || {
        closed_by_client.load(Ordering::SeqCst) == 5
    });
}

/// Says on open which listener the connection came from.
struct WhichListener;

impl StreamService for WhichListener {
    type Session = ();

    fn open(&self, conn: &mut ConnectionContext<'_>) {
        conn.write(format!("listener {}", conn.listener()).as_bytes());
    }

    fn data(&self, _: &mut (), _: &[u8], _: &mut ConnectionContext<'_>) {}
}

#[test]
fn quic_listeners_are_numbered_after_every_tcp_tls_and_websocket_one() {
    let (tls, config) = configs();
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = run(ServerBuilder::tcp_only(WhichListener)
        .quic(loopback, Arc::clone(&tls))
        .tcp(loopback)
        .websocket(loopback, shout_server::WebSocketConfig::new())
        .tls(loopback, tls));
    let mut client = Client::connect(quic_addr(&server), config);
    // TCP 0, TLS 1, WebSocket 2, QUIC 3, whatever the order of the calls.
    let said = String::from_utf8(client.exchange(b"")).unwrap();
    assert_eq!(said, "listener 3");
}

#[test]
fn a_client_at_its_stream_limit_waits_for_a_stream_to_end() {
    let (server, config) = start_quic(|builder| builder.quic_streams_per_connection(2));
    let mut client = Client::connect(quic_addr(&server), config);
    let first = client.open().unwrap();
    let second = client.open().unwrap();
    assert_eq!(client.open(), None, "a third stream over the limit of 2");
    // Still served on its open streams, and a stream ended frees a place.
    client.send_all(second, b"second");
    client.finish(second);
    assert_eq!(client.read_to_end(second), b"SECOND");
    let mut third = None;
    client.drive_until("the server raises the limit", |client| {
        third = client.open();
        third.is_some()
    });
    let third = third.unwrap();
    client.send_all(third, b"third");
    client.finish(third);
    assert_eq!(client.read_to_end(third), b"THIRD");
    client.send_all(first, b"first");
    client.finish(first);
    assert_eq!(client.read_to_end(first), b"FIRST");
}

#[test]
fn unidirectional_streams_are_not_allowed() {
    let (server, config) = start_quic(|builder| builder);
    let mut client = Client::connect(quic_addr(&server), config);
    assert_eq!(client.conn.streams().open(Dir::Uni), None);
    assert_eq!(client.exchange(b"bi"), b"BI");
}

#[test]
fn garbage_and_truncated_datagrams_are_dropped_and_clients_served() {
    let (server, config) = start_quic(|builder| builder);
    let addr = quic_addr(&server);
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A long header with a bad version, one with QUIC v1 and nothing
    // after, random-looking bytes, an empty datagram, a 1,200-byte
    // Initial-looking datagram of zeros after its first bytes.
    let mut initial_like = vec![0xc0, 0, 0, 0, 1, 8];
    initial_like.resize(1200, 0);
    let garbage: Vec<Vec<u8>> = vec![
        vec![0xc0, 0xde, 0xad, 0xbe, 0xef],
        vec![0xc0, 0, 0, 0, 1],
        (0..=255u8).map(|n| n.wrapping_mul(37)).collect(),
        Vec::new(),
        vec![0x40; 40],
        initial_like,
    ];
    for datagram in &garbage {
        attacker.send_to(datagram, addr).unwrap();
    }
    // A real client's Initial cut short, and one with a byte of its
    // sealed payload flipped (its header intact, its tag wrong).
    let initial = first_initial(addr, config.clone());
    for cut in [1, 20, 100, initial.len() - 1] {
        attacker.send_to(&initial[..cut], addr).unwrap();
    }
    let mut forged = initial.clone();
    let last = forged.len() - 30;
    forged[last] ^= 0x55;
    attacker.send_to(&forged, addr).unwrap();
    // A forged packet on a real connection: a short header with its
    // connection's bytes scrambled.
    let mut client = Client::connect(addr, config);
    attacker
        .send_to(&[0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9], addr)
        .unwrap();
    assert_eq!(client.exchange(b"still served"), b"STILL SERVED");
    let stats = server.stop();
    assert_eq!(stats.quic_handshakes_completed, 1);
    assert_eq!(stats.quic_streams, 1);
    assert_eq!(stats.service_panics, 0);
}

#[test]
fn under_load_a_client_proves_its_address_with_a_retry_first() {
    // Every client counts as "under load": each is sent a Retry.
    let (server, config) = start_quic(|builder| builder.quic_retry_above(0));
    let mut client = Client::connect(quic_addr(&server), config);
    assert_eq!(client.exchange(b"after a retry"), b"AFTER A RETRY");
    let stats = server.stop();
    assert_eq!(stats.quic_retries_sent, 1);
    assert_eq!(stats.quic_handshakes_completed, 1);
}

/// Returns the first datagram a client sends: its Initial, 1,200 bytes.
fn first_initial(server: SocketAddr, config: ClientConfig) -> Vec<u8> {
    let mut client = Client::begin(server, config);
    client.buf.clear();
    let transmit = (client.conn)
        .poll_transmit(Instant::now(), 1, &mut client.buf)
        .unwrap();
    client.buf[..transmit.size].to_vec()
}

#[test]
fn an_unvalidated_address_gets_at_most_three_times_what_it_sent() {
    let (server, config) = start_quic(|builder| {
        builder
            .handshake_timeout(Duration::from_secs(1))
            .drain_timeout(Duration::from_millis(300))
    });
    let addr = quic_addr(&server);
    // A victim's address, forged: it sends one Initial and never answers.
    let victim = UdpSocket::bind("127.0.0.1:0").unwrap();
    let initial = first_initial(addr, config);
    victim.send_to(&initial, addr).unwrap();
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut buffer = vec![0; 65_536];
    victim
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Bounded: until the handshake deadline has passed, with retransmits.
    while Instant::now() < deadline {
        if let Ok((len, _)) = victim.recv_from(&mut buffer) {
            received += len;
        }
    }
    assert!(received > 0, "the server answered the Initial");
    assert!(
        received <= 3 * initial.len(),
        "{received} bytes sent to an address that sent {}",
        initial.len()
    );
    let stats = server.stop();
    assert_eq!(stats.quic_handshakes_failed, 1);
}

#[test]
fn a_flood_of_initials_from_many_ports_is_met_with_retries() {
    let (server, config) = start_quic(|builder| {
        builder
            .quic_retry_above(8)
            .drain_timeout(Duration::from_millis(300))
    });
    let addr = quic_addr(&server);
    // A new client's Initial from each of 100 source ports: past 8
    // handshakes in progress, each is sent a Retry and costs no state.
    let flooders: Vec<UdpSocket> = (0..100)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for flooder in &flooders {
        let initial = first_initial(addr, config.clone());
        flooder.send_to(&initial, addr).unwrap();
    }
    let mut client = Client::connect(addr, config);
    assert_eq!(client.exchange(b"served meanwhile"), b"SERVED MEANWHILE");
    wait_until("the flood is answered with Retries", || {
        server.handle.stats().quic_retries_sent >= 90
    });
    let stats = server.stop();
    assert!(stats.quic_handshakes_completed >= 1);
}

#[test]
fn a_client_that_never_reads_is_held_to_the_output_limit() {
    let limit = 64 * 1024;
    let (server, config) = start_quic(|builder| {
        builder
            .max_pending_output(limit)
            .drain_timeout(Duration::from_millis(300))
    });
    let addr = quic_addr(&server);
    // Its own windows small, as a client that reads nothing has.
    let mut transport = quinn_proto::TransportConfig::default();
    transport.stream_receive_window(quinn_proto::VarInt::from_u32(16 * 1024));
    transport.receive_window(quinn_proto::VarInt::from_u32(32 * 1024));
    let mut hog_config = config.clone();
    hog_config.transport_config(Arc::new(transport));
    let mut hog = Client::connect(addr, hog_config);
    let id = hog.open().unwrap();
    let chunk = vec![b'a'; 16 * 1024];
    let mut offered = 0;
    // Writes as long as the server's windows take bytes, for a while.
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if let Ok(written) = hog.conn.send_stream(id).write(&chunk) {
            offered += written;
        }
        hog.step(Duration::from_millis(5));
    }
    let taken = server.handle.stats().quic_bytes_in;
    assert!(
        taken <= 6 * limit as u64,
        "the server took {taken} bytes from a client that reads none (limit {limit})"
    );
    assert!(offered as u64 >= taken);
    let mut other = Client::connect(addr, config);
    assert_eq!(other.exchange(b"others are served"), b"OTHERS ARE SERVED");
}

#[test]
fn a_stop_answers_the_streams_in_flight_then_closes_the_connection() {
    let (server, config) = start_quic(|builder| builder);
    let mut client = Client::connect(quic_addr(&server), config);
    let id = client.open().unwrap();
    client.send_all(id, b"in flight");
    let mut answer = Vec::new();
    client.drive_until("the answer", |client| {
        let _ = client.read_some(id, &mut answer);
        answer.len() == 9
    });
    let stats = std::thread::scope(|scope| {
        let stopping = scope.spawn(|| server.stop());
        // The stream's end (FIN, no reset), then the connection's close.
        client.drive_until("the stream's end and the close", |client| {
            let _ = client.read_some(id, &mut answer);
            client.lost.is_some()
        });
        stopping.join().unwrap()
    });
    assert_eq!(answer, b"IN FLIGHT");
    assert!(
        matches!(client.lost, Some(ConnectionError::ApplicationClosed(_))),
        "{:?}",
        client.lost
    );
    assert_eq!(stats.quic_streams, 1);
}

#[test]
fn a_resumed_client_is_answered_in_its_first_flight_with_0rtt() {
    let (server, config) = start_quic(|builder| builder);
    let addr = quic_addr(&server);
    // The first connection leaves a session ticket in the client's config.
    let mut first = Client::connect(addr, config.clone());
    assert_eq!(first.exchange(b"first"), b"FIRST");
    assert!(!first.conn.accepted_0rtt());
    // The second sends its request before its handshake is done.
    let mut second = Client::begin(addr, config);
    assert!(second.conn.has_0rtt(), "the client resumes with 0-RTT keys");
    let id = second.open().expect("a stream in 0-RTT");
    second.send_all(id, b"early");
    second.finish(id);
    assert_eq!(second.read_to_end(id), b"EARLY");
    assert!(
        second.conn.accepted_0rtt(),
        "the server took the early data"
    );
    let stats = server.stop();
    assert_eq!(stats.quic_streams, 2);
    assert_eq!(stats.quic_handshakes_failed, 0);
}

/// Notes each stream's id, answers nothing: what reaches the client comes
/// from a sender.
struct Quiet {
    ids: Arc<std::sync::Mutex<Vec<shout_server::ConnectionId>>>,
}

impl StreamService for Quiet {
    type Session = ();

    fn open(&self, conn: &mut ConnectionContext<'_>) {
        self.ids.lock().unwrap().push(conn.id());
    }

    fn data(&self, _: &mut (), _: &[u8], _: &mut ConnectionContext<'_>) {}
}

#[test]
fn a_sender_writes_to_a_quic_stream_and_closes_it() {
    let (tls, config) = configs();
    let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
    let service = Quiet {
        ids: Arc::clone(&ids),
    };
    let server = run(ServerBuilder::tcp_only(service).quic("127.0.0.1:0".parse().unwrap(), tls));
    let mut client = Client::connect(quic_addr(&server), config);
    let stream = client.open().unwrap();
    // The stream opens on the server with its first bytes.
    client.send_all(stream, b"hello");
    let mut id = None;
    client.drive_until("the service opens the stream", |_| {
        id = ids.lock().unwrap().first().copied();
        id.is_some()
    });
    let id = id.unwrap();
    let sender = server.handle.sender();
    sender.send(id, b"pushed from outside").unwrap();
    sender.close(id).unwrap();
    // The bytes, then the stream's end (the service's close).
    assert_eq!(client.read_to_end(stream), b"pushed from outside");
    // Gone once closed: a sender is told so.
    wait_until("the stream forgotten", || {
        sender.send(id, b"late") == Err(shout_server::SendError::Closed)
    });
}

/// At its first bytes, queues `pushed` to its own stream through a
/// sender, answers `bye` and closes; notes how each stream closed.
struct PushQuit {
    closes: Arc<std::sync::Mutex<Vec<CloseCause>>>,
}

impl StreamService for PushQuit {
    type Session = ();

    fn open(&self, _: &mut ConnectionContext<'_>) {}

    fn data(&self, _: &mut (), _: &[u8], conn: &mut ConnectionContext<'_>) {
        // Queued, and not delivered before the close below.
        conn.sender().send(conn.id(), b"pushed\n").unwrap();
        conn.write(b"bye\n");
        conn.close();
    }

    fn closed(&self, _: (), _: &ConnectionInfo, cause: CloseCause) {
        self.closes.lock().unwrap().push(cause);
    }
}

#[test]
fn a_close_from_a_callback_sends_what_senders_queued_before_it_on_a_quic_stream() {
    let (tls, config) = configs();
    let closes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let service = PushQuit {
        closes: Arc::clone(&closes),
    };
    let server = run(ServerBuilder::tcp_only(service).quic("127.0.0.1:0".parse().unwrap(), tls));
    let mut client = Client::connect(quic_addr(&server), config);
    let stream = client.open().unwrap();
    // No FIN: the service's close ends the stream.
    client.send_all(stream, b"push-quit\n");
    // The call's own output first, then what was queued before the close,
    // then the FIN.
    assert_eq!(client.read_to_end(stream), b"bye\npushed\n");
    wait_until("the stream closed", || !closes.lock().unwrap().is_empty());
    assert_eq!(*closes.lock().unwrap(), [CloseCause::ServiceClosed]);
}

/// Whether `outcome` is the server's CONNECTION_REFUSED.
fn refused<T>(outcome: &Result<T, ConnectionError>) -> bool {
    matches!(
        outcome,
        Err(ConnectionError::ConnectionClosed(close))
            if close.error_code == quinn_proto::TransportErrorCode::CONNECTION_REFUSED
    )
}

/// Connects to `addr` until a connection is accepted (at most `TIMEOUT`):
/// a place freed on the server comes back once the connection that held it
/// is drained. Returns the client and how many tries were refused.
fn connect_once_room(addr: SocketAddr, config: &ClientConfig) -> (Client, u64) {
    let deadline = Instant::now() + TIMEOUT;
    let mut refusals = 0;
    loop {
        let outcome = Client::try_connect(addr, config.clone());
        match outcome {
            Ok(client) => return (client, refusals),
            Err(_) if refused(&outcome) => refusals += 1,
            Err(error) => panic!("not a refusal: {error:?}"),
        }
        assert!(Instant::now() < deadline, "a place within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn at_the_connection_cap_a_quic_client_is_refused_until_one_closes() {
    let (server, config) = start_quic(|builder| builder.max_connections(2));
    let addr = quic_addr(&server);
    let mut first = Client::connect(addr, config.clone());
    let mut second = Client::connect(addr, config.clone());
    let third = Client::try_connect(addr, config.clone());
    assert!(refused(&third), "{:?}", third.err());
    assert_eq!(server.handle.stats().quic_connections_refused, 1);
    // Those in are served meanwhile.
    assert_eq!(second.exchange(b"second"), b"SECOND");
    first.close();
    let (mut next, refusals) = connect_once_room(addr, &config);
    assert_eq!(next.exchange(b"next"), b"NEXT");
    let stats = server.stop();
    assert_eq!(stats.quic_connections_refused, 1 + refusals);
    assert_eq!(stats.quic_handshakes_completed, 3);
    assert_eq!(stats.quic_handshakes_failed, 0);
    // The source's share is off: no refusal is counted there.
    assert_eq!(stats.connections_refused_per_source, 0);
}

#[test]
fn over_its_source_share_a_quic_client_is_refused_until_one_closes() {
    let (server, config) = start_quic(|builder| builder.max_connections_per_source(2));
    let addr = quic_addr(&server);
    // Every client is 127.0.0.1, whatever its port.
    let mut first = Client::connect(addr, config.clone());
    let mut second = Client::connect(addr, config.clone());
    let third = Client::try_connect(addr, config.clone());
    assert!(refused(&third), "{:?}", third.err());
    let stats = server.handle.stats();
    assert_eq!(stats.connections_refused_per_source, 1);
    assert_eq!(stats.quic_connections_refused, 1);
    assert_eq!(second.exchange(b"second"), b"SECOND");
    first.close();
    let (mut next, refusals) = connect_once_room(addr, &config);
    assert_eq!(next.exchange(b"next"), b"NEXT");
    let stats = server.stop();
    assert_eq!(stats.connections_refused_per_source, 1 + refusals);
    assert_eq!(stats.quic_connections_refused, 1 + refusals);
    assert_eq!(stats.quic_handshakes_completed, 3);
}

/// Notes how each stream closed.
struct CloseCauses {
    causes: Arc<std::sync::Mutex<Vec<CloseCause>>>,
}

impl StreamService for CloseCauses {
    type Session = ();

    fn open(&self, _: &mut ConnectionContext<'_>) {}

    fn data(&self, _: &mut (), input: &[u8], conn: &mut ConnectionContext<'_>) {
        conn.write(&input.to_ascii_uppercase());
    }

    fn closed(&self, _: (), _: &ConnectionInfo, cause: CloseCause) {
        self.causes.lock().unwrap().push(cause);
    }
}

#[test]
fn an_idle_quic_connection_is_closed_by_the_idle_timeout_and_a_busy_one_is_not() {
    let idle_timeout = Duration::from_millis(300);
    let (tls, config) = configs();
    let causes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let service = CloseCauses {
        causes: Arc::clone(&causes),
    };
    let server = run(ServerBuilder::tcp_only(service)
        .quic("127.0.0.1:0".parse().unwrap(), tls)
        .idle_timeout(Some(idle_timeout)));
    let addr = quic_addr(&server);
    let mut idle = Client::connect(addr, config.clone());
    let mut busy = Client::connect(addr, config);
    // The idle one holds a stream open and sends nothing more.
    let held = idle.open().unwrap();
    idle.send_all(held, b"then quiet");
    let mut echo = Vec::new();
    idle.drive_until("the echo", |client| {
        let _ = client.read_some(held, &mut echo);
        echo == b"THEN QUIET"
    });
    let started = Instant::now();
    // The busy one exchanges every 50 ms for four idle timeouts.
    let mut exchanges = 0;
    while started.elapsed() < idle_timeout * 4 {
        assert_eq!(busy.exchange(b"busy"), b"BUSY");
        exchanges += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exchanges >= 8, "{exchanges} exchanges");
    wait_until("the idle connection's stream closed", || {
        causes.lock().unwrap().contains(&CloseCause::IdleTimeout)
    });
    assert_eq!(server.handle.stats().quic_idle_timeouts, 1);
    // The idle client learns it too: on its own timer, or from the
    // stateless reset its next packet gets (the server forgot it).
    idle.drive_until("the idle client's end", |client| client.lost.is_some());
    assert!(
        matches!(
            idle.lost,
            Some(ConnectionError::TimedOut | ConnectionError::Reset)
        ),
        "{:?}",
        idle.lost
    );
    // The busy one is still served, on the connection it had.
    assert_eq!(busy.exchange(b"still"), b"STILL");
    assert!(busy.lost.is_none());
    let stats = server.stop();
    assert_eq!(stats.quic_idle_timeouts, 1);
    let idle_closes = (causes.lock().unwrap().iter())
        .filter(|cause| **cause == CloseCause::IdleTimeout)
        .count();
    assert_eq!(idle_closes, 1, "only the idle connection's stream");
}

#[test]
fn a_clean_exchange_on_loopback_loses_no_packet_and_counts_what_it_did() {
    let (server, config) = start_quic(|builder| builder);
    let mut client = Client::connect(quic_addr(&server), config);
    let requests: [&[u8]; 3] = [b"one", b"two two", b"three three three"];
    for request in requests {
        assert_eq!(client.exchange(request), request.to_ascii_uppercase());
    }
    assert_eq!(client.conn.stats().path.lost_packets, 0);
    let stats = server.stop();
    let bytes: u64 = requests.iter().map(|request| request.len() as u64).sum();
    assert_eq!(stats.quic_handshakes_completed, 1);
    assert_eq!(stats.quic_handshakes_failed, 0);
    assert_eq!(stats.quic_connections_refused, 0);
    assert_eq!(stats.quic_retries_sent, 0);
    assert_eq!(stats.quic_streams, 3);
    assert_eq!(stats.quic_bytes_in, bytes);
    assert_eq!(stats.quic_bytes_out, bytes);
    assert_eq!(stats.quic_idle_timeouts, 0);
    // Added as the connection ends: the stop ended it.
    assert_eq!(stats.quic_packets_lost, 0);
    assert_eq!(stats.service_panics, 0);
}

#[test]
fn the_open_quic_connections_follow_handshakes_and_closes() {
    let (server, config) = start_quic(|builder| builder);
    let addr = quic_addr(&server);
    let mut first = Client::connect(addr, config.clone());
    let mut second = Client::connect(addr, config);
    assert_eq!(first.exchange(b"first"), b"FIRST");
    assert_eq!(second.exchange(b"second"), b"SECOND");
    wait_until("both handshakes are counted", || {
        server.handle.stats().quic_connections_open() == 2
    });
    first.close();
    // Counted closed once drained and forgotten, a few round trips later.
    wait_until("the closed connection is forgotten", || {
        server.handle.stats().quic_connections_closed == 1
    });
    let stats = server.handle.stats();
    assert_eq!(stats.quic_connections_open(), 1);
    assert_eq!(stats.quic_handshakes_completed, 2);
    let stats = server.stop();
    // The stop closed the second.
    assert_eq!(stats.quic_connections_closed, 2);
    assert_eq!(stats.quic_connections_open(), 0);
}
