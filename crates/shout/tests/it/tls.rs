//! `shout tcp --tls`, `ping --tls` and `bench --tls` against a TLS server
//! made here: rustls's `ServerConnection` over std's listener, uppercasing,
//! with certificates rcgen makes at test time.

use crate::support::run;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};
use shout_client::{Connector, LineSession, Target, TlsClient, TlsOptions, Trust};
use shout_protocol::Uppercaser;
use shout_testkit::TIMEOUT;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

/// A CA, and a server certificate it signed.
pub(crate) struct Pki {
    dir: PathBuf,
    ca_pem: String,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: Vec<u8>,
}

impl Pki {
    /// A CA and a certificate for `names`, valid now, or expired since 2001
    /// when `expired`.
    pub(crate) fn new(label: &str, names: &[&str], expired: bool) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Each CA its own name: webpki finds an issuer by name, and two CAs
        // of one name would fail as a bad signature, not an unknown issuer.
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("shout test CA {label}"));
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "shout-tls-test-{}-{label}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Self {
            dir,
            ca_pem: ca.pem(),
            chain: vec![cert.der().clone()],
            key: key.serialize_der(),
        };
        std::fs::write(pki.ca_file(), &pki.ca_pem).unwrap();
        pki
    }

    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub(crate) fn ca_arg(&self) -> String {
        self.ca_file().display().to_string()
    }

    /// Returns a server configuration presenting this certificate, on
    /// the crypto provider shout-server uses.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let config = ServerConfig::builder_with_provider(shout_server::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .unwrap();
        Arc::new(config)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A TLS uppercase server for at most `connections` connections; counts the
/// handshakes completed and the inputs ended by a close_notify.
pub(crate) struct TlsServer {
    pub(crate) addr: SocketAddr,
    pub(crate) handshakes: Arc<AtomicUsize>,
    pub(crate) close_notifies: Arc<AtomicUsize>,
}

/// What the server counts, shared with its threads.
#[derive(Default)]
struct Counts {
    handshakes: Arc<AtomicUsize>,
    close_notifies: Arc<AtomicUsize>,
}

impl TlsServer {
    pub(crate) fn start(pki: &Pki, connections: usize) -> Self {
        Self::serving(
            pki.chain.clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.clone())),
            connections,
        )
    }

    /// A server that presents `chain`, whose first certificate is for `key`.
    pub(crate) fn serving(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        connections: usize,
    ) -> Self {
        let config = Arc::new(
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Counts::default();
        let server = Self {
            addr,
            handshakes: Arc::clone(&counts.handshakes),
            close_notifies: Arc::clone(&counts.close_notifies),
        };
        let counts = Arc::new(counts);
        thread::spawn(move || {
            for stream in listener.incoming().take(connections).flatten() {
                let config = Arc::clone(&config);
                let counts = Arc::clone(&counts);
                thread::spawn(move || {
                    let _ = serve(stream, config, &counts);
                });
            }
        });
        server
    }

    pub(crate) fn target(&self) -> String {
        self.addr.to_string()
    }
}

/// Uppercases until the client's close_notify, then closes with its own.
fn serve(mut socket: TcpStream, config: Arc<ServerConfig>, counts: &Counts) -> io::Result<()> {
    socket.set_read_timeout(Some(TIMEOUT))?;
    let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
    while tls.is_handshaking() {
        tls.complete_io(&mut socket)?;
    }
    counts.handshakes.fetch_add(1, Ordering::Relaxed);
    let mut stream = rustls::Stream::new(&mut tls, &mut socket);
    let mut upper = Uppercaser::new();
    let mut buf = vec![0; 16 * 1024];
    let mut reply = Vec::new();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                counts.close_notifies.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Ok(n) => n,
            // A client that closed TCP without close_notify.
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(error) => return Err(error),
        };
        reply.clear();
        upper.feed(&buf[..n], &mut reply);
        stream.write_all(&reply)?;
    }
    reply.clear();
    upper.finish(&mut reply);
    stream.write_all(&reply)?;
    tls.send_close_notify();
    while tls.wants_write() {
        tls.write_tls(&mut socket)?;
    }
    socket.shutdown(Shutdown::Write)
}

pub(crate) const LOCAL_NAMES: &[&str] = &["localhost", "127.0.0.1"];

#[test]
fn piped_input_streams_over_tls_and_ends_with_close_notify() {
    let pki = Pki::new("piped", LOCAL_NAMES, false);
    let server = TlsServer::start(&pki, 1);
    // Larger than any buffer on the way, so both directions must move at once.
    let input: Vec<u8> = (0..3_000_000u32)
        .map(|i| b"abcdefghij\n"[(i % 11) as usize])
        .collect();
    let outcome = run(
        &["tcp", "--tls", "--ca", &pki.ca_arg(), &server.target()],
        &input,
    );
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stdout, input.to_ascii_uppercase());
    assert!(
        !outcome.stderr.contains("close_notify"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn line_session_talks_over_tls() {
    let pki = Pki::new("session", LOCAL_NAMES, false);
    let server = TlsServer::start(&pki, 1);
    let target = Target::new("localhost", server.addr.port());
    let options = TlsOptions {
        trust: Trust::CaFile(pki.ca_file()),
        server_name: None,
    };
    let connector = Connector::new(target.clone(), vec![server.addr], Some(TIMEOUT))
        .with_tls(TlsClient::new(&options, &target).unwrap());
    let mut session = LineSession::new(connector, Some(TIMEOUT));
    for line in ["one\n", "two words\n"] {
        let exchange = session.shout(line.as_bytes()).unwrap();
        assert_eq!(exchange.reply, line.to_uppercase().as_bytes());
    }
    assert_eq!(server.handshakes.load(Ordering::Relaxed), 1);
}

/// Runs `shout tcp --tls EXTRA… ADDR` with one line and expects status 7
/// and `words` on standard error.
pub(crate) fn refused(server: &TlsServer, extra: &[&str], words: &str) {
    let mut args = vec!["tcp", "--tls"];
    args.extend_from_slice(extra);
    let target = server.target();
    args.push(&target);
    let outcome = run(&args, b"hello\n");
    assert_eq!(outcome.code, Some(7), "stderr: {}", outcome.stderr);
    assert!(outcome.stderr.contains(words), "{}", outcome.stderr);
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    assert!(outcome.stdout.is_empty());
}

#[test]
fn an_unknown_issuer_is_exit_7_in_words() {
    let pki = Pki::new("issuer", LOCAL_NAMES, false);
    let other = Pki::new("other", LOCAL_NAMES, false);
    let server = TlsServer::start(&pki, 1);
    refused(&server, &["--ca", &other.ca_arg()], "unknown issuer");
}

#[test]
fn a_certificate_for_another_name_is_exit_7_naming_it() {
    let pki = Pki::new("name", LOCAL_NAMES, false);
    let server = TlsServer::start(&pki, 1);
    refused(
        &server,
        &["--ca", &pki.ca_arg(), "--servername", "other.example"],
        "not valid for other.example",
    );
}

#[test]
fn an_expired_certificate_is_exit_7() {
    let pki = Pki::new("expired", LOCAL_NAMES, true);
    let server = TlsServer::start(&pki, 1);
    refused(&server, &["--ca", &pki.ca_arg()], "expired");
}

#[test]
fn a_plain_tcp_server_is_a_tls_failure() {
    let addr = crate::support::start_tcp_server(|mut stream| {
        let mut buf = [0; 1024];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(b"HELLO\n");
    });
    let outcome = run(&["tcp", "--tls", "--insecure", &addr.to_string()], b"hi\n");
    assert_eq!(outcome.code, Some(7), "stderr: {}", outcome.stderr);
}

#[test]
fn insecure_warns_and_works() {
    let pki = Pki::new("insecure", LOCAL_NAMES, false);
    let server = TlsServer::start(&pki, 1);
    let outcome = run(
        &["tcp", "--tls", "--insecure", &server.target()],
        b"hello\n",
    );
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stdout, b"HELLO\n");
    assert!(
        outcome.stderr.contains("warning: --insecure"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn ping_times_tcp_and_tls_handshakes_apart() {
    let pki = Pki::new("ping", LOCAL_NAMES, false);
    let server = TlsServer::start(&pki, 3);
    let outcome = run(
        &[
            "ping",
            "--tls",
            "--ca",
            &pki.ca_arg(),
            "--new-connection",
            "-c",
            "3",
            "-i",
            "10",
            &server.target(),
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    let text = outcome.stdout_text();
    let probes = text
        .lines()
        .filter(|line| {
            line.contains(" connect=") && line.contains(" tls=") && line.contains(" rtt=")
        })
        .count();
    assert_eq!(probes, 3, "{text}");
    assert!(text.contains("\ntls min/avg/max"), "{text}");
    assert_eq!(server.handshakes.load(Ordering::Relaxed), 3);
}
