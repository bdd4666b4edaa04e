//! TLS listeners: the same service over TLS, the end of input as the
//! client's close_notify, truncation, and what bad input and slow clients
//! cost. Real loopback TLS, with a rustls client.

use crate::support::*;
use shout_server::rustls::{self, ClientConfig, ClientConnection, ServerConfig, StreamOwned};
use shout_server::{
    ConnectionContext, EndReason, ServerBuilder, Stats, StreamService, Transport, Uppercase,
};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A server config for a fresh self-signed localhost certificate, and a
/// client config that trusts only it, limited to `versions`.
pub(super) fn configs(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = certified.cert.der().clone();
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

fn connect_tls(addr: SocketAddr, client: &Arc<ClientConfig>) -> Tls {
    let name = "localhost".try_into().unwrap();
    let conn = ClientConnection::new(Arc::clone(client), name).unwrap();
    StreamOwned::new(conn, connect(addr))
}

/// Answers only at the end of input, so an answer proves the end came.
struct AtEnd;

impl StreamService for AtEnd {
    type Session = Vec<u8>;

    fn open(&self, _conn: &mut ConnectionContext<'_>) -> Vec<u8> {
        Vec::new()
    }

    fn data(&self, held: &mut Vec<u8>, input: &[u8], _conn: &mut ConnectionContext<'_>) {
        held.extend_from_slice(input);
    }

    fn end(&self, held: &mut Vec<u8>, conn: &mut ConnectionContext<'_>, _: EndReason) {
        conn.write(&held.to_ascii_uppercase());
    }
}

/// Greets with what the context says of the transport, then uppercases.
struct Probe;

impl StreamService for Probe {
    type Session = shout_protocol::Uppercaser;

    fn open(&self, conn: &mut ConnectionContext<'_>) -> Self::Session {
        let greeting = match conn.transport() {
            Transport::Plain => "plain\n".to_string(),
            Transport::Tls { version, sni } => format!("{version:?} {sni:?}\n"),
            other => format!("{other:?}\n"),
        };
        conn.write(greeting.as_bytes());
        shout_protocol::Uppercaser::new()
    }

    fn data(&self, session: &mut Self::Session, input: &[u8], conn: &mut ConnectionContext<'_>) {
        session.feed(input, conn.output());
    }
}

fn tls_server<S: StreamService>(
    service: S,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Running {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    run(ServerBuilder::tcp_only(service)
        .tls(loopback, config)
        .tcp(loopback)
        .handshake_timeout(timeout))
}

fn tls_addr(server: &Running) -> SocketAddr {
    server.handle.tls_addrs()[0]
}

pub(super) fn read_line(stream: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut byte = [0];
    while line.last() != Some(&b'\n') {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "a whole line, got {line:?}"
        );
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn the_same_service_sees_tls_with_its_version_and_sni_and_plain_tcp_as_plain() {
    let (server_config, client) = configs(&[&rustls::version::TLS13]);
    let server = tls_server(Probe, server_config, TIMEOUT);
    let mut tls = connect_tls(tls_addr(&server), &client);
    assert_eq!(read_line(&mut tls), "TLSv1_3 Some(\"localhost\")\n");
    let text = "grüße, ὕβρις — straße ß\n";
    tls.write_all(text.as_bytes()).unwrap();
    let expected = reference_uppercase(text.as_bytes());
    let mut answer = vec![0; expected.len()];
    tls.read_exact(&mut answer).unwrap();
    assert_eq!(
        String::from_utf8(answer).unwrap(),
        String::from_utf8(expected).unwrap()
    );

    let mut plain = connect(server.tcp());
    assert_eq!(read_line(&mut plain), "plain\n");

    // A client limited to TLS 1.2 gets 1.2.
    let (server_config12, client12) = configs(&[&rustls::version::TLS12]);
    let server12 = tls_server(Probe, server_config12, TIMEOUT);
    let mut tls12 = connect_tls(tls_addr(&server12), &client12);
    assert_eq!(read_line(&mut tls12), "TLSv1_2 Some(\"localhost\")\n");
    drop((tls, plain));
    let stats = server.stop();
    assert_eq!(stats.tls_handshakes_completed, 1, "{stats}");
    assert_eq!(stats.tls_handshakes_failed, 0, "{stats}");
}

#[test]
fn close_notify_ends_input_and_the_answer_comes_before_the_servers_close_notify() {
    let (server_config, client) = configs(&[&rustls::version::TLS13]);
    let server = tls_server(AtEnd, server_config, TIMEOUT);
    let mut tls = connect_tls(tls_addr(&server), &client);
    tls.write_all(b"said before the end").unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    // The TCP stream stays open both ways: only TLS says the input ended.
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .expect("a clean close_notify, not a truncation");
    assert_eq!(answer, b"SAID BEFORE THE END");
    let stats = server.stop();
    assert_eq!(stats.tls_truncated, 0, "{stats}");
}

#[test]
fn a_fin_without_close_notify_is_a_truncation_counted_and_still_answered() {
    let (server_config, client) = configs(&[&rustls::version::TLS13]);
    let server = tls_server(AtEnd, server_config, TIMEOUT);
    let mut tls = connect_tls(tls_addr(&server), &client);
    tls.write_all(b"cut short").unwrap();
    tls.flush().unwrap();
    tls.sock.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .expect("the server still ends with close_notify");
    assert_eq!(answer, b"CUT SHORT");
    wait_until("the truncation is counted", || {
        server.handle.stats().tls_truncated == 1
    });
}

/// Sends `bytes` raw to the TLS port, half-closes if `then_fin`, and
/// returns once the server closed (whatever it sent first).
fn raw_client_is_closed(addr: SocketAddr, bytes: &[u8], then_fin: bool) {
    let mut stream = connect(addr);
    stream.write_all(bytes).unwrap();
    if then_fin {
        stream.shutdown(Shutdown::Write).unwrap();
    }
    // read_to_end has a read timeout of TIMEOUT (connect sets it): a hang
    // fails here.
    let mut sent = Vec::new();
    let _ = stream.read_to_end(&mut sent);
    if let Some(&first) = sent.first() {
        assert_eq!(first, 0x15, "only an alert record may come back: {sent:?}");
    }
}

fn failed(stats: Stats) -> u64 {
    stats.tls_handshakes_failed
}

#[test]
fn plaintext_garbage_and_a_truncated_record_are_closed_counted_and_cost_no_one_else() {
    let (server_config, client) = configs(&[&rustls::version::TLS13]);
    let server = tls_server(Uppercase, server_config, TIMEOUT);
    let addr = tls_addr(&server);
    // Someone in the middle of a conversation all along.
    let mut bystander = connect_tls(addr, &client);
    bystander.write_all(b"before ").unwrap();

    raw_client_is_closed(addr, b"hello, plain text\n", false);
    raw_client_is_closed(addr, &garbage(4096, 16), false);
    // The first bytes of a real ClientHello, then the end of the stream.
    let mut hello = Vec::new();
    let mut fresh =
        ClientConnection::new(Arc::clone(&client), "localhost".try_into().unwrap()).unwrap();
    fresh.write_tls(&mut hello).unwrap();
    raw_client_is_closed(addr, &hello[..hello.len() / 2], true);
    wait_until("three failed handshakes", || {
        failed(server.handle.stats()) == 3
    });

    bystander.write_all(b"after").unwrap();
    let mut answer = [0; 12];
    bystander.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"BEFORE AFTER");
    drop(bystander);
    let stats = server.stop();
    assert_eq!(stats.tls_handshakes_completed, 1, "{stats}");
}

#[test]
fn a_client_that_sends_nothing_is_cut_at_the_handshake_deadline() {
    let (server_config, _) = configs(&[&rustls::version::TLS13]);
    let server = tls_server(Uppercase, server_config, Duration::from_millis(300));
    let mut silent = connect(tls_addr(&server));
    let mut sent = Vec::new();
    silent
        .read_to_end(&mut sent)
        .expect("closed before the read timeout");
    assert!(sent.is_empty(), "{sent:?}");
    let stats = server.handle.stats();
    assert_eq!(stats.tls_handshake_timeouts, 1, "{stats}");
    assert_eq!(stats.tls_handshakes_failed, 1, "{stats}");
}

#[test]
fn a_stop_cuts_a_trickled_handshake_at_once() {
    let (server_config, client_config) = configs(&[&rustls::version::TLS13]);
    // A drain far longer than the joins below wait: only a cut handshake
    // lets the stop end in time.
    let server = run(ServerBuilder::tcp_only(Uppercase)
        .tls("127.0.0.1:0".parse().unwrap(), server_config)
        .handshake_timeout(Duration::from_secs(60))
        .drain_timeout(Duration::from_secs(60)));
    let name = "localhost".try_into().unwrap();
    let mut client = ClientConnection::new(client_config, name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    let addr = tls_addr(&server);
    let stats = stop_while_trickling(server, addr, hello);
    assert_eq!(stats.tls_handshakes_completed, 0, "{stats}");
}

/// Writes `contents` to a file of its own in the temporary directory.
fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shout-pem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn a_config_from_pem_files_serves_their_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = temp_file("served-cert.pem", &certified.cert.pem());
    let key = temp_file("served-key.pem", &certified.signing_key.serialize_pem());
    let config = shout_server::server_config_from_pem(&cert, &key).unwrap();
    let server = tls_server(Uppercase, config, TIMEOUT);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let client = Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let mut tls = connect_tls(tls_addr(&server), &client);
    tls.write_all(b"pem files\n").unwrap();
    assert_eq!(read_line(&mut tls), "PEM FILES\n");
    drop(tls);
    assert_eq!(server.stop().tls_handshakes_completed, 1);
    let _ = (std::fs::remove_file(cert), std::fs::remove_file(key));
}

#[test]
fn pem_files_that_cannot_serve_are_refused_naming_the_file() {
    use shout_server::{PemError, server_config_from_pem};
    let one = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = temp_file("cert.pem", &one.cert.pem());
    let key = temp_file("key.pem", &one.signing_key.serialize_pem());
    let other_key = temp_file("other-key.pem", &other.signing_key.serialize_pem());
    let missing = std::env::temp_dir().join("shout-pem-no-such-file.pem");

    let error = server_config_from_pem(&missing, &key).unwrap_err();
    assert!(matches!(error, PemError::Chain { .. }), "{error:?}");
    assert!(
        error.to_string().contains("shout-pem-no-such-file.pem"),
        "{error}"
    );

    // A key file given as the certificate holds no CERTIFICATE block.
    let error = server_config_from_pem(&key, &key).unwrap_err();
    assert!(matches!(error, PemError::NoCertificate { .. }), "{error:?}");

    // A certificate given as the key holds no private key.
    let error = server_config_from_pem(&cert, &cert).unwrap_err();
    assert!(matches!(error, PemError::Key { .. }), "{error:?}");

    let error = server_config_from_pem(&cert, &other_key).unwrap_err();
    assert!(matches!(error, PemError::KeyMismatch { .. }), "{error:?}");
    assert!(error.to_string().contains("other-key.pem"), "{error}");
    for file in [cert, key, other_key] {
        let _ = std::fs::remove_file(file);
    }
}
