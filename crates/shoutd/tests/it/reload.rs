//! SIGHUP against the `shoutd` binary: it reloads `--cert`/`--key`, so new
//! handshakes get the new certificate while open connections keep theirs;
//! a file that does not load is logged and the old certificate kept; with
//! nothing to reload it says so and serves on.

use crate::support::*;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A certificate for localhost and its key, as PEM and as the DER a client
/// sees.
struct Certificate {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn certificate() -> Certificate {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    Certificate {
        der: made.cert.der().clone(),
        cert_pem: made.cert.pem(),
        key_pem: made.signing_key.serialize_pem(),
    }
}

/// A directory of this test's own, removed when dropped.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("shoutd-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `certificate` to cert.pem and key.pem, each through a rename
    /// so that a reload never reads half a file.
    fn install(&self, certificate: &Certificate) -> (PathBuf, PathBuf) {
        let (cert, key) = (self.0.join("cert.pem"), self.0.join("key.pem"));
        for (path, text) in [(&cert, &certificate.cert_pem), (&key, &certificate.key_pem)] {
            let staged = path.with_extension("new");
            std::fs::write(&staged, text).unwrap();
            std::fs::rename(&staged, path).unwrap();
        }
        (cert, key)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `shoutd --tls` serving the files at `cert` and `key`.
fn start_with_files(cert: &Path, key: &Path) -> (Shoutd, SocketAddr) {
    let shoutd = Shoutd::start(&[
        "--tls",
        "127.0.0.1:0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    let addr = shoutd.listening().addrs("tls")[0];
    (shoutd, addr)
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Connects over TLS trusting every one of `trusted`, checks one round
/// trip, and returns the stream with the certificate the server showed.
fn connect_tls(addr: SocketAddr, trusted: &[&Certificate]) -> (TlsStream, CertificateDer<'static>) {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in trusted {
        roots.add(certificate.der.clone()).unwrap();
    }
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, connect(addr));
    tls_round_trip(&mut tls, "first");
    let shown = tls.conn.peer_certificates().expect("a server certificate")[0].clone();
    (tls, shown)
}

/// Sends `text` and a newline, and checks its uppercase comes back.
fn tls_round_trip(tls: &mut TlsStream, text: &str) {
    tls.write_all(format!("{text}\n").as_bytes()).unwrap();
    let expected = format!("{}\n", text.to_uppercase());
    let mut answer = vec![0; expected.len()];
    tls.read_exact(&mut answer).unwrap();
    assert_eq!(answer, expected.as_bytes());
}

/// Sends SIGHUP and waits (bounded) for the log line that contains `what`.
fn hang_up(shoutd: &Shoutd, what: &str) -> String {
    shoutd.signal(libc::SIGHUP);
    wait_until(&format!("a log line with {what:?} after SIGHUP"), || {
        shoutd.stderr_so_far().contains(what)
    });
    let stderr = shoutd.stderr_so_far();
    stderr
        .lines()
        .find(|line| line.contains(what))
        .unwrap()
        .to_owned()
}

#[test]
fn sighup_serves_new_certificate_files_to_new_handshakes_and_open_connections_keep_theirs() {
    let dir = TestDir::new("reload");
    let (old, new) = (certificate(), certificate());
    let (cert, key) = dir.install(&old);
    let (shoutd, addr) = start_with_files(&cert, &key);
    let (mut before, shown) = connect_tls(addr, &[&old, &new]);
    assert_eq!(shown, old.der);

    dir.install(&new);
    let line = hang_up(&shoutd, "SIGHUP: reloaded");
    assert!(line.contains(cert.to_str().unwrap()), "{line}");

    let (mut after, shown) = connect_tls(addr, &[&old, &new]);
    assert_eq!(shown, new.der, "a handshake after the reload");
    tls_round_trip(&mut before, "opened before the reload");
    tls_round_trip(&mut after, "opened after it");
    drop((before, after));
    shoutd.signal(libc::SIGTERM);
    let (status, stderr) = shoutd.wait();
    assert_eq!(status, Some(0), "{stderr}");
}

#[test]
fn sighup_with_a_broken_file_logs_it_and_keeps_the_old_certificate() {
    let dir = TestDir::new("reload-broken");
    let old = certificate();
    let (cert, key) = dir.install(&old);
    let (shoutd, addr) = start_with_files(&cert, &key);

    std::fs::write(&cert, "not a certificate\n").unwrap();
    let line = hang_up(&shoutd, "reload failed");
    assert!(line.contains(cert.to_str().unwrap()), "{line}");
    let (mut after, shown) = connect_tls(addr, &[&old]);
    assert_eq!(shown, old.der, "the old certificate, still served");
    tls_round_trip(&mut after, "still here");

    // A key of another certificate: named, and the old one kept again.
    let other = certificate();
    std::fs::write(&cert, &old.cert_pem).unwrap();
    std::fs::write(&key, &other.key_pem).unwrap();
    shoutd.signal(libc::SIGHUP);
    wait_until("the mismatched key's line", || {
        shoutd.stderr_so_far().contains("does not match")
    });
    let (_, shown) = connect_tls(addr, &[&old]);
    assert_eq!(shown, old.der);
    drop(after);
    shoutd.signal(libc::SIGTERM);
    let (status, stderr) = shoutd.wait();
    assert_eq!(status, Some(0), "{stderr}");
}

#[test]
fn sighup_without_certificate_files_says_so_and_serves_on() {
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0"]);
    let mut stream = connect(shoutd.tcp.unwrap());
    round_trip(&mut stream, "before");
    let line = hang_up(&shoutd, "nothing to reload");
    assert!(line.contains("no --tls"), "{line}");
    round_trip(&mut stream, "after");
    round_trip(&mut connect(shoutd.tcp.unwrap()), "a new connection");
    drop(stream);
    shoutd.signal(libc::SIGTERM);
    let (status, stderr) = shoutd.wait();
    assert_eq!(status, Some(0), "{stderr}");
}

#[test]
fn sighup_with_a_generated_certificate_says_so_and_keeps_its_file() {
    let dir = TestDir::new("reload-generated");
    let out = dir.0.join("generated.pem");
    let shoutd = Shoutd::start(&["--tls", "127.0.0.1:0", "--cert-out", out.to_str().unwrap()]);
    let line = hang_up(&shoutd, "nothing to reload");
    assert!(line.contains("generated"), "{line}");
    assert!(out.is_file());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&out).unwrap())
        .unwrap();
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let addr = shoutd.listening().addrs("tls")[0];
    tls_round_trip(&mut StreamOwned::new(conn, connect(addr)), "served on");
    shoutd.signal(libc::SIGTERM);
    let (status, stderr) = shoutd.wait();
    assert_eq!(status, Some(0), "{stderr}");
}
