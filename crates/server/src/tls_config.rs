//! Building a TLS listener's `rustls::ServerConfig` from PEM files, with
//! the crypto provider named rather than left to rustls's process-wide
//! default.
//!
//! rustls's `ServerConfig::builder()` takes the process's default provider.
//! When the build enables exactly one of rustls's providers (ring here) it
//! finds that one; when another dependency enables a second (aws-lc-rs is
//! rustls's own default feature), it cannot choose and panics at run time,
//! in whichever call builds the first config. The functions here always
//! name ring, so they work whatever else the program links.
//!
//! This module is not for serving TLS (the connection's layer is
//! `tls.rs`) nor for reloading certificates (shoutd does that with a
//! resolver over [`certified_key_from_pem`]).

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why PEM files did not give a usable certificate. Each error names the
/// file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// The certificate file could not be read, or holds broken PEM.
    #[error("{}: cannot read the certificate chain (PEM): {source}", path.display())]
    Chain {
        /// The certificate file.
        path: PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no CERTIFICATE block.
    #[error("{}: no certificate in it: expected PEM CERTIFICATE blocks", path.display())]
    NoCertificate {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key file could not be read, or holds no private key.
    #[error("{}: cannot read the private key (PEM): {source}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// The key is not the one the first certificate was issued for.
    #[error(
        "{}: does not match the certificate: {} holds another key's certificate",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The key is of a kind or size the provider cannot sign with.
    #[error("{}: unusable private key: {source}", path.display())]
    UnusableKey {
        /// The key file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// Returns the crypto provider the server is built and tested with: ring.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the certificate chain in `cert` (PEM CERTIFICATE blocks, the
/// server's own first) and the private key in `key` (PKCS#8, PKCS#1 or
/// SEC1), and checks that they belong together, for `provider`.
pub fn certified_key_from_pem(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, PemError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| PemError::Chain {
            path: cert.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(PemError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|source| PemError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    CertifiedKey::from_der(chain, private_key, provider).map_err(|error| match error {
        rustls::Error::InconsistentKeys(_) => PemError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        },
        source => PemError::UnusableKey {
            path: key.to_path_buf(),
            source,
        },
    })
}

/// Builds the config of a TLS listener serving the chain in `cert` with the
/// key in `key` (both PEM), on ring, with rustls's safe defaults: TLS 1.3
/// and 1.2, no client certificates, no ALPN. Set `alpn_protocols` on a
/// clone before wrapping it in an `Arc` to offer ALPN.
///
/// ```no_run
/// let config = shout_server::server_config_from_pem(
///     "chain.pem".as_ref(),
///     "key.pem".as_ref(),
/// )?;
/// let server = shout_server::ServerBuilder::tcp_only(shout_server::Uppercase)
///     .tls("[::]:12443".parse().unwrap(), config)
///     .build();
/// # Ok::<(), shout_server::PemError>(())
/// ```
pub fn server_config_from_pem(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, PemError> {
    let provider = crypto_provider();
    let certified = certified_key_from_pem(cert, key, &provider)?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls's default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(OneCertificate(Arc::new(certified))));
    Ok(Arc::new(config))
}

/// A resolver that serves one certificate to every client.
#[derive(Debug)]
struct OneCertificate(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}
