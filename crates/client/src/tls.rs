//! TLS for the client: which certificates it trusts, which name it checks,
//! the handshake over a blocking socket, and the failure named in words.
//!
//! rustls is sans-io: a [`ClientConnection`] is fed the socket's bytes and
//! asked for bytes to send, so the same state machine runs here over std's
//! blocking sockets and in `shout-bench` over a mio loop. This module makes
//! the configuration both use. It is not a TLS server (that is
//! `shout-server`), and it offers no client certificates or ALPN.
//!
//! Trust by default comes from the operating system's store, read by
//! `rustls-native-certs` (the files `SSL_CERT_FILE`/`SSL_CERT_DIR` name, or
//! the distribution's bundle): the roots an administrator added or removed
//! are the ones shout trusts, as curl and openssl do, and the list is updated
//! with the system, not by rebuilding shout.
//!
//! A CA file, a pin and `--insecure` each have a verifier of their own (the
//! `verify` module): a CA file's also trusts a server certificate that is
//! one of the file's, as OpenSSL does; a pin trusts one fingerprint. Each
//! is wrapped in one that keeps its last refusal, which the QUIC client
//! names in words.

use crate::verify::{
    AnyCertificate, CaFileVerifier, PinMismatch, PinnedVerifier, RecordingVerifier, Refusal,
};
use crate::{ClientError, Fingerprint, Target};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, HandshakeType, RootCertStore};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which certificates the client trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's roots.
    #[default]
    System,
    /// Only the certificates of this PEM file: a private CA, or a server's
    /// own certificate. A server certificate that is one of them is trusted
    /// as itself, even when it is marked as a CA (as `openssl req -x509`
    /// marks it), once its name and dates are checked.
    CaFile(PathBuf),
    /// Only the certificate with this SHA-256 fingerprint, whatever its
    /// name, dates and issuer.
    Pin(Fingerprint),
    /// None: any certificate is accepted. The connection is encrypted but
    /// the server is not authenticated.
    Insecure,
}

/// How to speak TLS to a server: whom to trust and what name to check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The certificates trusted.
    pub trust: Trust,
    /// The name sent as SNI and checked in the certificate; the target's host
    /// as typed when `None`. An IP address is checked as an IP address SAN.
    pub server_name: Option<String>,
}

/// A ready TLS configuration with the name to check, cheap to clone: one
/// per run, used for every connection.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    /// The last certificate refusal of its connections.
    refusal: Refusal,
}

impl TlsClient {
    /// Builds the configuration for `target`: loads the roots `options`
    /// names and checks the server name.
    pub fn new(options: &TlsOptions, target: &Target) -> Result<Self, ClientError> {
        let name = options
            .server_name
            .clone()
            .unwrap_or_else(|| target.host().to_owned());
        let server_name =
            ServerName::try_from(name.clone()).map_err(|_| ClientError::TlsConfig {
                reason: format!("{name:?} is not a valid server name"),
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| ClientError::TlsConfig {
                reason: error.to_string(),
            })?;
        let verifier: Arc<dyn ServerCertVerifier> = match &options.trust {
            Trust::Insecure => Arc::new(AnyCertificate { provider }),
            Trust::Pin(pin) => Arc::new(PinnedVerifier::new(*pin, provider)),
            Trust::CaFile(path) => {
                let listed = ca_file(path)?;
                let mut roots = RootCertStore::empty();
                for cert in &listed {
                    roots
                        .add(cert.clone())
                        .map_err(|error| ClientError::TlsConfig {
                            reason: format!("{}: {error}", path.display()),
                        })?;
                }
                let webpki = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|error| ClientError::TlsConfig {
                    reason: format!("{}: {error}", path.display()),
                })?;
                Arc::new(CaFileVerifier::new(webpki, listed, provider))
            }
            Trust::System => {
                WebPkiServerVerifier::builder_with_provider(Arc::new(system_roots()?), provider)
                    .build()
                    .map_err(|error| ClientError::TlsConfig {
                        reason: format!("the system's certificates: {error}"),
                    })?
            }
        };
        let refusal = Refusal::default();
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RecordingVerifier::new(
                verifier,
                refusal.clone(),
            )))
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            server_name,
            refusal,
        })
    }

    /// The configuration, for callers that drive connections themselves.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The name sent as SNI and checked in the certificate.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// Returns where its connections keep their last certificate refusal:
    /// what a QUIC handshake reports only as an alert.
    pub(crate) fn refusal(&self) -> &Refusal {
        &self.refusal
    }

    /// Starts a connection: nothing is sent until it is driven.
    pub fn start(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(Arc::clone(&self.config), self.server_name.clone())
    }

    /// Makes the handshake over `socket`, blocking, and returns the
    /// connection and how long the handshake took.
    /// Each read waits at most `timeout` (forever when `None`); the socket's
    /// timeouts are cleared afterwards.
    pub fn handshake(
        &self,
        socket: &mut TcpStream,
        peer: SocketAddr,
        timeout: Option<Duration>,
    ) -> Result<(ClientConnection, Duration), ClientError> {
        let started = Instant::now();
        let failed = |error| io_handshake_error(peer, error, timeout);
        socket
            .set_read_timeout(timeout)
            .and_then(|()| socket.set_write_timeout(timeout))
            .map_err(failed)?;
        let mut tls = self.start().map_err(|error| handshake_error(peer, error))?;
        while tls.is_handshaking() {
            tls.complete_io(socket).map_err(failed)?;
        }
        // The last flight (the client's Finished) may still be buffered.
        while tls.wants_write() {
            tls.write_tls(socket).map_err(failed)?;
        }
        socket
            .set_read_timeout(None)
            .and_then(|()| socket.set_write_timeout(None))
            .map_err(failed)?;
        let handshake_time = started.elapsed();
        log::info!(
            "tls handshake with {peer} in {:.3} ms: {:?}, {:?}",
            handshake_time.as_secs_f64() * 1e3,
            tls.protocol_version(),
            tls.negotiated_cipher_suite().map(|suite| suite.suite()),
        );
        Ok((tls, handshake_time))
    }
}

/// Reads the certificates of the PEM file `path`: at least one.
fn ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|error| ClientError::TlsConfig {
            reason: format!("cannot read certificates from {}: {error}", path.display()),
        })?;
    if certs.is_empty() {
        return Err(ClientError::TlsConfig {
            reason: format!("{} holds no PEM certificate", path.display()),
        });
    }
    Ok(certs)
}

/// Returns the operating system's roots.
fn system_roots() -> Result<RootCertStore, ClientError> {
    let mut store = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        log::warn!("reading the system's certificates: {error}");
    }
    let (added, ignored) = store.add_parsable_certificates(found.certs);
    log::debug!("trusting {added} system certificates ({ignored} unparsable)");
    if store.is_empty() {
        return Err(ClientError::TlsConfig {
            reason: "the system has no trusted certificates (install ca-certificates, or give --ca FILE)".into(),
        });
    }
    Ok(store)
}

/// A handshake that failed on I/O: rustls reports its own errors inside an
/// `io::Error` of kind `InvalidData`.
fn io_handshake_error(
    peer: SocketAddr,
    error: io::Error,
    timeout: Option<Duration>,
) -> ClientError {
    if error.kind() == io::ErrorKind::InvalidData {
        if let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return handshake_error(peer, tls.clone());
        }
    }
    match error.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ClientError::Tls {
            addr: peer,
            reason: "the server closed the connection during the handshake (is it a TLS server?)"
                .into(),
        },
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::ReplyTimeout {
            addr: peer,
            timeout: timeout.unwrap_or_default(),
        },
        _ => ClientError::Network {
            action: "a TLS handshake with",
            transport: crate::Transport::Tcp,
            addr: peer,
            source: error,
        },
    }
}

/// A handshake refused by rustls, as a [`ClientError::Tls`].
pub(crate) fn handshake_error(peer: SocketAddr, error: rustls::Error) -> ClientError {
    ClientError::Tls {
        addr: peer,
        reason: tls_reason(&error),
    }
}

/// What a client that speaks TLS to a plain port is told: such a port
/// answers the ClientHello with its uppercase, which is not TLS.
const NOT_TLS_HINT: &str =
    "is it a TLS server? a plain shoutd port answers with the uppercase of what it got";

/// Words for a TLS failure: the certificate's fault named plainly.
pub fn tls_reason(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(cert) => certificate_reason(cert),
        rustls::Error::AlertReceived(alert) => format!("the server sent the alert {alert:?}"),
        rustls::Error::InvalidMessage(_) => {
            format!("the server does not speak TLS ({error}); {NOT_TLS_HINT}")
        }
        rustls::Error::InappropriateHandshakeMessage {
            got_type: HandshakeType::ClientHello,
            ..
        } => format!("the server does not speak TLS: it sent the ClientHello back; {NOT_TLS_HINT}"),
        other => other.to_string(),
    }
}

fn certificate_reason(error: &CertificateError) -> String {
    let reason = match error {
        CertificateError::UnknownIssuer => "unknown issuer".to_owned(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".to_owned(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not valid yet".to_owned()
        }
        CertificateError::NotValidForName => "not valid for the name checked".to_owned(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let shown = if presented.is_empty() {
                "no names".to_owned()
            } else {
                presented
                    .iter()
                    .map(|name| presented_name(name))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "not valid for {} (it is for {shown})",
                server_name_text(expected)
            )
        }
        CertificateError::Revoked => "revoked".to_owned(),
        CertificateError::BadSignature => "bad signature".to_owned(),
        CertificateError::BadEncoding => "badly encoded".to_owned(),
        CertificateError::Other(other) if other.0.is::<PinMismatch>() => other.0.to_string(),
        // What `openssl req -x509` makes unless told `basicConstraints=CA:FALSE`.
        CertificateError::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            "it is a CA certificate, not a server's (basicConstraints CA:TRUE)".to_owned()
        }
        other => format!("{other:?}"),
    };
    format!("the server's certificate is not trusted: {reason}")
}

/// A name webpki found in a certificate, without the Debug dress it comes
/// in (`DnsName("localhost")`, `IpAddress(127.0.0.1)`).
fn presented_name(name: &str) -> &str {
    name.strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            name.strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        })
        .unwrap_or(name)
}

fn server_name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}
