//! Whom `shout tcp --tls` trusts: certificates made by the `openssl`
//! command in the shapes people make them, given as `--ca`, and `--pin`.
//!
//! The openssl tests need the `openssl` command. Without it they say that
//! they skipped, or fail under `SHOUT_REQUIRE_PEERS=1`, as the e2e
//! scenarios do.

use crate::support::run;
use crate::tls::{LOCAL_NAMES, Pki, TlsServer, refused};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use shout_client::Fingerprint;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The usual test certificate's names, as `-addext` takes them.
const SAN: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1";

/// Whether `SHOUT_REQUIRE_PEERS` asks that nothing be skipped (any value
/// but empty and `0`, as for `cargo xtask e2e`).
fn peers_required() -> bool {
    std::env::var_os("SHOUT_REQUIRE_PEERS").is_some_and(|value| !value.is_empty() && value != "0")
}

/// A temporary directory with a key and a certificate made by `openssl`.
struct OpensslCert {
    dir: PathBuf,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl OpensslCert {
    /// Runs `openssl ARGS…` in a new directory, which then holds `key.pem`
    /// and `cert.pem`. Returns `None`, saying so, when there is no
    /// openssl, and panics then under `SHOUT_REQUIRE_PEERS=1`.
    fn make(test: &str, steps: &[&[&str]]) -> Option<Self> {
        let present = Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !present {
            assert!(
                !peers_required(),
                "{test}: openssl is not installed (Debian: openssl), and SHOUT_REQUIRE_PEERS=1"
            );
            eprintln!("skipped: {test}: openssl is not installed (Debian: openssl)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "shout-openssl-{}-{test}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let made = Self { dir };
        for step in steps {
            made.openssl(step);
        }
        Some(made)
    }

    /// Runs `openssl ARGS…` in the directory; panics with its stderr when
    /// it fails.
    fn openssl(&self, args: &[&str]) -> String {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn cert_arg(&self) -> String {
        self.cert().display().to_string()
    }

    /// A TLS uppercase server for `connections` connections presenting
    /// this certificate.
    fn server(&self, connections: usize) -> TlsServer {
        TlsServer::serving(
            certs(&self.cert()),
            PrivateKeyDer::from_pem_file(self.dir.join("key.pem")).unwrap(),
            connections,
        )
    }

    /// The fingerprint as `openssl x509 -fingerprint -sha256` prints it,
    /// `sha256 Fingerprint=` and all.
    fn openssl_fingerprint(&self) -> String {
        self.openssl(&[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            "cert.pem",
        ])
        .trim()
        .to_owned()
    }
}

impl Drop for OpensslCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `openssl req -x509 -newkey KEY… -nodes -keyout key.pem -out cert.pem
/// -days 30 -subj /CN=localhost -addext SAN EXTRA…`: the one-line test
/// certificate of countless how-tos.
fn req_x509<'a>(key: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["req", "-x509", "-newkey"];
    args.extend_from_slice(key);
    args.extend_from_slice(&[
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "30",
        "-subj",
        "/CN=localhost",
        "-addext",
        SAN,
    ]);
    args.extend_from_slice(extra);
    args
}

const EC: &[&str] = &["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
const RSA: &[&str] = &["rsa:2048"];

/// Runs `shout tcp --tls --ca cert.pem` against a server presenting the
/// certificate `cert` and expects the uppercase of a line back.
fn accepted_as_ca(cert: &OpensslCert) {
    let server = cert.server(1);
    let outcome = run(
        &["tcp", "--tls", "--ca", &cert.cert_arg(), &server.target()],
        b"hello\n",
    );
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stdout, b"HELLO\n");
}

#[test]
fn an_openssl_self_signed_ec_certificate_marked_ca_is_trusted_as_its_own_ca() {
    let Some(cert) = OpensslCert::make("ec-default", &[&req_x509(EC, &[])]) else {
        return;
    };
    // What the how-tos make, whether the user knows it or not.
    let text = cert.openssl(&["x509", "-noout", "-text", "-in", "cert.pem"]);
    assert!(text.contains("CA:TRUE"), "{text}");
    accepted_as_ca(&cert);
}

#[test]
fn an_openssl_self_signed_rsa_certificate_is_trusted_as_its_own_ca() {
    let Some(cert) = OpensslCert::make("rsa-default", &[&req_x509(RSA, &[])]) else {
        return;
    };
    accepted_as_ca(&cert);
    // Through ping too, which makes its own handshakes.
    let server = cert.server(1);
    let outcome = run(
        &[
            "ping",
            "--tls",
            "--ca",
            &cert.cert_arg(),
            "-c",
            "2",
            "-i",
            "10",
            &server.target(),
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
}

#[test]
fn an_openssl_certificate_marked_not_ca_is_trusted_as_its_own_ca() {
    let extra = ["-addext", "basicConstraints=critical,CA:FALSE"];
    let Some(cert) = OpensslCert::make("ec-ca-false", &[&req_x509(EC, &extra)]) else {
        return;
    };
    accepted_as_ca(&cert);
}

#[test]
fn a_listed_certificate_for_another_name_is_still_refused_naming_it() {
    let Some(cert) = OpensslCert::make("ec-name", &[&req_x509(EC, &[])]) else {
        return;
    };
    let server = cert.server(2);
    refused(
        &server,
        &["--ca", &cert.cert_arg(), "--servername", "other.example"],
        "not valid for other.example (it is for localhost, 127.0.0.1)",
    );
    // An address is checked as an IP address SAN.
    refused(
        &server,
        &["--ca", &cert.cert_arg(), "--servername", "127.0.0.2"],
        "not valid for 127.0.0.2",
    );
}

#[test]
fn a_listed_certificate_that_expired_is_still_refused() {
    // `openssl req` of OpenSSL 3.0 cannot backdate; `x509 -days -1` signs
    // one that ended a day before it began, CA:TRUE as `req -x509` makes it.
    let Some(cert) = OpensslCert::make(
        "ec-expired",
        &[
            &[
                "req",
                "-new",
                "-newkey",
                EC[0],
                EC[1],
                EC[2],
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "req.pem",
                "-subj",
                "/CN=localhost",
                "-addext",
                SAN,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "req.pem",
                "-signkey",
                "key.pem",
                "-days",
                "-1",
                "-copy_extensions",
                "copy",
                "-out",
                "cert.pem",
            ],
        ],
    ) else {
        return;
    };
    let server = cert.server(1);
    refused(&server, &["--ca", &cert.cert_arg()], "expired");
}

#[test]
fn the_fingerprint_openssl_prints_pins_the_server() {
    let Some(cert) = OpensslCert::make("pin", &[&req_x509(EC, &[])]) else {
        return;
    };
    let printed = cert.openssl_fingerprint();
    let fingerprint = printed.rsplit_once('=').unwrap().1.to_owned();
    let bare = fingerprint.replace(':', "").to_lowercase();
    for pin in [printed.as_str(), &fingerprint, &bare] {
        let server = cert.server(1);
        let outcome = run(&["tcp", "--tls", "--pin", pin, &server.target()], b"hi\n");
        assert_eq!(outcome.code, Some(0), "{pin}: {}", outcome.stderr);
        assert_eq!(outcome.stdout, b"HI\n");
    }
}

#[test]
fn a_pin_trusts_one_certificate_whatever_its_name_dates_and_issuer() {
    // Expired, issued by a CA nobody trusts here, and asked for by another
    // name: the pin alone decides.
    let pki = Pki::new("pin-only", &["elsewhere.example"], true);
    let pin = Fingerprint::of(&pki.chain[0]).to_string();
    let server = TlsServer::start(&pki, 3);
    let outcome = run(
        &["tcp", "--tls", "--pin", &pin, &server.target()],
        b"pinned\n",
    );
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stdout, b"PINNED\n");
    let outcome = run(
        &[
            "ping",
            "--tls",
            "--pin",
            &pin,
            "--new-connection",
            "-c",
            "2",
            "-i",
            "10",
            &server.target(),
        ],
        b"",
    );
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    assert_eq!(server.handshakes.load(Ordering::Relaxed), 3);
}

#[test]
fn a_wrong_pin_is_exit_7_naming_both_fingerprints() {
    let pki = Pki::new("pin-wrong", LOCAL_NAMES, false);
    let presented = Fingerprint::of(&pki.chain[0]).to_string();
    let expected = Fingerprint::of(b"another certificate").to_string();
    let server = TlsServer::start(&pki, 1);
    refused(
        &server,
        &["--pin", &expected],
        &format!("its SHA-256 fingerprint is {presented}, not the pinned {expected}"),
    );
}

#[test]
fn a_malformed_pin_is_a_usage_error() {
    let fingerprint = Fingerprint::of(b"").to_string();
    for pin in [
        "zz",
        &fingerprint[..fingerprint.len() - 3],
        &format!("{fingerprint}:00"),
        &fingerprint.replace(':', "-"),
    ] {
        let outcome = run(&["tcp", "--tls", "--pin", pin, "127.0.0.1:9"], b"");
        assert_eq!(outcome.code, Some(2), "{pin}: {}", outcome.stderr);
        // The flag is known and its value refused, saying what it should be.
        assert!(outcome.stderr.contains("--pin"), "{}", outcome.stderr);
        assert!(
            outcome
                .stderr
                .contains("a SHA-256 fingerprint is 32 hex pairs"),
            "{}",
            outcome.stderr
        );
    }
}
