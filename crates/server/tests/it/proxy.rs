//! PROXY protocol listeners: v1 and v2 headers (built with `ppp`, sent a
//! byte at a time), the client address they carry as the service's peer
//! and as the source per-source limits count, LOCAL health checks, and
//! what is refused unanswered: untrusted senders, garbage, oversized
//! headers, silence past the deadline. Over TLS the header comes first.

use crate::support::*;
use crate::tls::{configs, read_line};
use ppp::v2;
use shout_server::rustls::{self, ClientConnection, StreamOwned};
use shout_server::{ConnectionContext, IpPrefix, ServerBuilder, StreamService, Transport};
use shout_testkit::proxy_v2_header;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Greets with the peer and transport the context says, then uppercases.
struct Peer;

impl StreamService for Peer {
    type Session = shout_protocol::Uppercaser;

    fn open(&self, conn: &mut ConnectionContext<'_>) -> Self::Session {
        let tls = matches!(conn.transport(), Transport::Tls { .. });
        let greeting = format!("{} tls={tls}\n", conn.peer());
        conn.write(greeting.as_bytes());
        shout_protocol::Uppercaser::new()
    }

    fn data(&self, session: &mut Self::Session, input: &[u8], conn: &mut ConnectionContext<'_>) {
        session.feed(input, conn.output());
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn proxied(
    trusted: &str,
    configure: impl FnOnce(
        ServerBuilder<Peer, shout_server::NoService>,
    ) -> ServerBuilder<Peer, shout_server::NoService>,
) -> Running {
    let builder = ServerBuilder::tcp_only(Peer)
        .tcp(loopback())
        .proxy_protocol(vec![trusted.parse().unwrap()])
        .handshake_timeout(Duration::from_millis(400));
    run(configure(builder))
}

fn v1(source: &str) -> Vec<u8> {
    let source: SocketAddr = source.parse().unwrap();
    let (SocketAddr::V4(source), destination) = (source, "127.0.0.1:4000") else {
        panic!("a v4 source");
    };
    let destination: std::net::SocketAddrV4 = destination.parse().unwrap();
    ppp::v1::Addresses::new_tcp4(
        *source.ip(),
        *destination.ip(),
        source.port(),
        destination.port(),
    )
    .to_string()
    .into_bytes()
}

/// Writes `bytes` one at a time, each its own segment.
fn trickle(stream: &mut TcpStream, bytes: &[u8]) {
    for byte in bytes {
        stream.write_all(std::slice::from_ref(byte)).unwrap();
        stream.flush().unwrap();
    }
}

/// Connects from `from` (a loopback address) to `to`.
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    socket.connect_timeout(&to.into(), TIMEOUT).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

#[test]
fn v1_and_v2_headers_split_into_single_bytes_name_the_client() {
    let server = proxied("127.0.0.0/8", |builder| builder);
    for (header, client) in [
        (v1("192.0.2.7:5555"), "192.0.2.7:5555"),
        (
            proxy_v2_header(v2::Command::Proxy, "198.51.100.9:6000"),
            "198.51.100.9:6000",
        ),
        (
            proxy_v2_header(v2::Command::Proxy, "[2001:db8::9]:7000"),
            "[2001:db8::9]:7000",
        ),
    ] {
        let mut stream = connect(server.tcp());
        trickle(&mut stream, &header);
        assert_eq!(read_line(&mut stream), format!("{client} tls=false\n"));
        round_trip(&mut stream, "hello\n");
    }
    // The header and the first request in one write: the rest is served.
    let mut stream = connect(server.tcp());
    let mut both = v1("192.0.2.8:5556");
    both.extend_from_slice(b"at once\n");
    stream.write_all(&both).unwrap();
    assert_eq!(read_line(&mut stream), "192.0.2.8:5556 tls=false\n");
    assert_eq!(read_line(&mut stream), "AT ONCE\n");
    drop(stream);
    let stats = server.stop();
    assert_eq!(stats.proxy_headers_rejected, 0, "{stats}");
}

#[test]
fn a_local_header_keeps_the_sockets_peer() {
    let server = proxied("127.0.0.0/8", |builder| builder);
    let mut stream = connect(server.tcp());
    let own = stream.local_addr().unwrap();
    stream
        .write_all(&proxy_v2_header(v2::Command::Local, "192.0.2.7:5555"))
        .unwrap();
    assert_eq!(read_line(&mut stream), format!("{own} tls=false\n"));
    round_trip(&mut stream, "ok\n");
}

#[test]
fn untrusted_senders_garbage_oversized_and_late_headers_are_closed_unanswered_and_counted() {
    let server = proxied("127.0.0.3/32", |builder| builder);
    // A valid header, from a sender not trusted.
    let mut untrusted = connect_from("127.0.0.2", server.tcp());
    let mut header = v1("192.0.2.7:5555");
    header.extend_from_slice(b"hello\n");
    let _ = untrusted.write_all(&header);
    assert_closed_unanswered(untrusted);
    let trusted = proxied("127.0.0.2/32", |builder| builder);
    let refusals = [
        b"hello\n".to_vec(),
        b"PROXY TCP4 nonsense here 1 2\r\n".to_vec(),
        // v1 without its end of line past 107 bytes.
        [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat(),
        // v2 announcing more than the cap, then sending it.
        {
            let mut long = v2::Builder::with_addresses(
                v2::Version::Two | v2::Command::Proxy,
                v2::Protocol::Stream,
                (
                    "192.0.2.7:5555".parse::<SocketAddr>().unwrap(),
                    "127.0.0.1:4000".parse::<SocketAddr>().unwrap(),
                ),
            )
            .write_tlv(v2::Type::NoOp, &[0; 1000])
            .unwrap()
            .build()
            .unwrap();
            long.extend_from_slice(b"hello\n");
            long
        },
        // Half a header, then nothing until the deadline.
        b"PROXY TCP4 192.0".to_vec(),
    ];
    let count = refusals.len() as u64;
    for bytes in refusals {
        let mut stream = connect_from("127.0.0.2", trusted.tcp());
        // The server may close before all is written: a reset is fine.
        let _ = stream.write_all(&bytes);
        assert_closed_unanswered(stream);
    }
    let stats = server.stop();
    assert_eq!(stats.proxy_headers_rejected, 1, "{stats}");
    let stats = trusted.stop();
    assert_eq!(stats.proxy_headers_rejected, count, "{stats}");
    assert_eq!(stats.connections_open(), 0, "{stats}");
}

#[test]
fn per_source_limits_count_the_headers_client() {
    let server = proxied("127.0.0.0/8", |builder| {
        builder.max_connections_per_source(1)
    });
    // Two clients behind one balancer address: both served.
    let mut first = connect(server.tcp());
    first.write_all(&v1("192.0.2.1:1000")).unwrap();
    assert_eq!(read_line(&mut first), "192.0.2.1:1000 tls=false\n");
    let mut second = connect(server.tcp());
    second.write_all(&v1("192.0.2.2:1000")).unwrap();
    assert_eq!(read_line(&mut second), "192.0.2.2:1000 tls=false\n");
    // A second connection of the first client: over its share.
    let mut again = connect(server.tcp());
    again.write_all(&v1("192.0.2.1:1001")).unwrap();
    assert_closed_unanswered(again);
    round_trip(&mut first, "still\n");
    drop(first);
    // Its share came back with its connection, under the header's address.
    wait_until("the first client's share is back", || {
        let mut retry = connect(server.tcp());
        retry.write_all(&v1("192.0.2.1:1002")).unwrap();
        read_to_end_lossy(&mut retry).starts_with("192.0.2.1:1002")
    });
    drop(second);
    let stats = server.stop();
    assert!(stats.connections_refused_per_source >= 1, "{stats}");
    // Refused by a limit, not closed by the service, which never saw it.
    assert_eq!(
        stats.closed_by_refusal, stats.connections_refused_per_source,
        "{stats}"
    );
    assert_eq!(stats.closed_by_service, 0, "{stats}");
}

#[test]
fn clients_connecting_at_once_through_one_balancer_are_each_charged_to_themselves() {
    let server = proxied("127.0.0.0/8", |builder| {
        builder.max_connections_per_source(3)
    });
    // Twelve connections from the balancer's one address, all accepted
    // before any header arrives, as a busy balancer opens them.
    let mut streams: Vec<TcpStream> = (0..12).map(|_| connect(server.tcp())).collect();
    wait_until("the twelve to be accepted", || {
        server.handle.stats().connections_accepted == 12
    });
    for (index, stream) in streams.iter_mut().enumerate() {
        let client = format!("192.0.2.{}:1000", index + 1);
        stream.write_all(&v1(&client)).unwrap();
        assert_eq!(read_line(stream), format!("{client} tls=false\n"));
    }
    for stream in &mut streams {
        round_trip(stream, "each\n");
    }
    drop(streams);
    let stats = server.stop();
    assert_eq!(stats.connections_refused_per_source, 0, "{stats}");
}

#[test]
fn a_stop_cuts_a_header_still_arriving_and_never_opens_it() {
    let server = proxied("127.0.0.0/8", |builder| {
        builder
            .handshake_timeout(Duration::from_secs(60))
            .drain_timeout(Duration::from_secs(60))
    });
    let mut header = v1("192.0.2.1:1000");
    header.extend_from_slice(b"hello\n");
    let stream = connect(server.tcp());
    let trickler = trickle_in_background(
        stream.try_clone().unwrap(),
        header,
        Duration::from_millis(50),
    );
    wait_until("the connection to be accepted", || {
        server.handle.stats().connections_accepted == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    let stats = server.stop();
    assert_eq!(stats.closed_by_stop, 1, "{stats}");
    assert_closed_unanswered(stream);
    assert!(
        join_within(trickler, TIMEOUT).is_some(),
        "the trickler ends"
    );
}

fn read_to_end_lossy(stream: &mut TcpStream) -> String {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    String::from_utf8_lossy(&read_to_end(stream)).into_owned()
}

#[test]
fn over_tls_the_header_comes_before_the_handshake() {
    let (server_config, client_config) = configs(&[&rustls::version::TLS13]);
    let server = run(ServerBuilder::tcp_only(Peer)
        .tls(loopback(), server_config)
        .proxy_protocol(IpPrefix::loopback()));
    let mut tcp = connect(server.handle.tls_addrs()[0]);
    trickle(
        &mut tcp,
        &proxy_v2_header(v2::Command::Proxy, "203.0.113.5:4433"),
    );
    let conn = ClientConnection::new(client_config, "localhost".try_into().unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    assert_eq!(read_line(&mut tls), "203.0.113.5:4433 tls=true\n");
    tls.write_all(b"secret\n").unwrap();
    assert_eq!(read_line(&mut tls), "SECRET\n");
    drop(tls);
    let stats = server.stop();
    assert_eq!(stats.tls_handshakes_completed, 1, "{stats}");
    assert_eq!(stats.proxy_headers_rejected, 0, "{stats}");
}
