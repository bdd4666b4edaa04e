//! `shoutd --tls`: the self-signed default a client can trust with no other
//! step, where its file lives and when it goes, and certificates that do not
//! load or match (exit 2, the file named).

use crate::support::*;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;

/// Returns the file and fingerprint of shoutd's self-signed line.
fn self_signed_line(stderr: &str) -> (String, String) {
    let line = stderr
        .lines()
        .find(|line| line.starts_with("shoutd: self-signed certificate"))
        .unwrap_or_else(|| panic!("no certificate line in {stderr}"));
    let (_, rest) = line.split_once(" in ").unwrap();
    let (path, fingerprint) = rest.split_once(" (SHA-256 ").unwrap();
    (
        path.to_string(),
        fingerprint.trim_end_matches(')').to_string(),
    )
}

#[test]
fn the_self_signed_default_is_named_on_stderr_and_a_client_trusting_it_connects() {
    let dir = std::env::temp_dir().join(format!("shoutd-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("cert.pem");
    let shoutd = Shoutd::start(&["--tls", "127.0.0.1:0", "--cert-out", out.to_str().unwrap()]);
    let addr = shoutd.listening().addrs("tls")[0];
    // stderr is read by a thread of its own: the line may trail the
    // `listening` line on stdout.
    wait_until("the self-signed certificate's line on stderr", || {
        shoutd.stderr_so_far().contains("self-signed certificate")
    });
    let (path, fingerprint) = self_signed_line(&shoutd.stderr_so_far());
    assert_eq!(path, out.to_str().unwrap());
    assert_eq!(fingerprint.split(':').count(), 32, "{fingerprint}");

    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&path).unwrap();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(client), "localhost".try_into().unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, connect(addr));
    tls.write_all("über tls\n".as_bytes()).unwrap();
    let mut answer = vec![0; "ÜBER TLS\n".len()];
    tls.read_exact(&mut answer).unwrap();
    assert_eq!(answer, "ÜBER TLS\n".as_bytes());
    drop(tls);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `shoutd --tls 127.0.0.1:0` with `extra` arguments and
/// `XDG_RUNTIME_DIR` at `runtime_dir`; returns it once its self-signed line
/// is on stderr, with the file that line names.
fn start_self_signed(runtime_dir: &std::path::Path, extra: &[&str]) -> (Shoutd, String) {
    let shoutd = Shoutd::start_with(
        Command::new(env!("CARGO_BIN_EXE_shoutd"))
            .args(["--tls", "127.0.0.1:0"])
            .args(extra)
            .env("XDG_RUNTIME_DIR", runtime_dir),
    );
    wait_until("the self-signed certificate's line on stderr", || {
        shoutd.stderr_so_far().contains("self-signed certificate")
    });
    let (path, _) = self_signed_line(&shoutd.stderr_so_far());
    (shoutd, path)
}

#[test]
fn a_generated_certificate_file_is_removed_at_a_graceful_stop_but_a_cert_out_file_stays() {
    let dir = std::env::temp_dir().join(format!("shoutd-tls-cleanup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let (shoutd, path) = start_self_signed(&dir, &[]);
    assert!(
        path.starts_with(dir.to_str().unwrap()),
        "{path} not in $XDG_RUNTIME_DIR"
    );
    assert!(
        std::path::Path::new(&path).is_file(),
        "{path} while running"
    );
    shoutd.signal(libc::SIGTERM);
    let (status, stderr) = shoutd.wait();
    assert_eq!(status, Some(0), "{stderr}");
    assert!(
        !std::path::Path::new(&path).exists(),
        "{path} left after SIGTERM"
    );

    let chosen = dir.join("chosen.pem");
    let (shoutd, path) = start_self_signed(&dir, &["--cert-out", chosen.to_str().unwrap()]);
    assert_eq!(path, chosen.to_str().unwrap());
    shoutd.signal(libc::SIGTERM);
    let (status, stderr) = shoutd.wait();
    assert_eq!(status, Some(0), "{stderr}");
    assert!(chosen.is_file(), "the --cert-out file must stay");
    let _ = std::fs::remove_dir_all(&dir);
}

use rustls::pki_types::pem::PemObject;

/// Runs shoutd with `--tls` and the given certificate files; returns its
/// status and stderr.
fn with_files(cert: &std::path::Path, key: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_shoutd"))
        .args(["--tls", "127.0.0.1:0", "--cert"])
        .arg(cert)
        .arg("--key")
        .arg(key)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_certificate_that_does_not_load_or_a_key_that_does_not_match_is_exit_2_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("shoutd-tls-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let one = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key, other_key, junk) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("other-key.pem"),
        dir.join("junk.pem"),
    );
    std::fs::write(&cert, one.cert.pem()).unwrap();
    std::fs::write(&key, one.signing_key.serialize_pem()).unwrap();
    std::fs::write(&other_key, other.signing_key.serialize_pem()).unwrap();
    std::fs::write(&junk, "not a certificate\n").unwrap();

    let (status, stderr) = with_files(&junk, &key);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains(junk.to_str().unwrap()), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let (status, stderr) = with_files(&cert, &other_key);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains(other_key.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("does not match"), "{stderr}");

    let missing = dir.join("missing.pem");
    let (status, stderr) = with_files(&cert, &missing);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
