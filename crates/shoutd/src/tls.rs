//! `--tls`: the server's certificate, loaded from `--cert`/`--key` (PEM), or
//! generated at start as a self-signed certificate for localhost,
//! 127.0.0.1 and ::1, written to a file a client can trust (`--ca`). A file
//! written to the default path is removed at exit ([`RemoveGenerated`]);
//! one written to `--cert-out` stays.
//!
//! Certificates from files can be reloaded while serving ([`Reload`], on
//! SIGHUP): the config's certificate resolver hands out whichever
//! certificate was loaded last, so a handshake started after a reload gets
//! the new one and a connection already open keeps what it agreed.
//!
//! This module only builds the `rustls::ServerConfig` (rustls's safe
//! defaults: TLS 1.3 and 1.2, no ALPN, no client certificates); serving it is
//! `shout_server`'s business.

use shout_server::rustls::crypto::CryptoProvider;
use shout_server::rustls::pki_types::PrivateKeyDer;
use shout_server::rustls::server::{ClientHello, ResolvesServerCert};
use shout_server::rustls::sign::CertifiedKey;
use shout_server::rustls::{self, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// The names a generated certificate is good for.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Returns a config serving the chain in `cert` with the key in `key`, and
/// the [`Reload`] that loads them again. Errors are one line naming the
/// file at fault.
pub(crate) fn load(cert: &Path, key: &Path) -> Result<(Arc<ServerConfig>, Reload), String> {
    let builder = builder();
    let provider = Arc::clone(builder.crypto_provider());
    let certified = load_certified(cert, key, &provider)?;
    let resolver = Arc::new(LatestCertificate(RwLock::new(Arc::new(certified))));
    let config = builder
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
    let reload = Reload::Files(FileCertificate {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        provider,
        resolver,
    });
    Ok((Arc::new(config), reload))
}

/// Reads `cert` and `key` and checks that they belong together; the error
/// is one line naming the file at fault.
fn load_certified(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    shout_server::certified_key_from_pem(cert, key, provider).map_err(|error| error.to_string())
}

/// Returns a config builder on ring, named: rustls's `ServerConfig::builder()`
/// would panic if a second crypto provider were ever linked in.
fn builder() -> rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier> {
    ServerConfig::builder_with_provider(shout_server::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls's default protocol versions")
}

/// What SIGHUP can reload.
pub(crate) enum Reload {
    /// `--cert`/`--key`: loaded again from their files.
    Files(FileCertificate),
    /// Nothing: no TLS, or a generated certificate (the reason says which).
    Nothing(&'static str),
}

impl Reload {
    /// Loads the certificate files again and logs what came of it: the new
    /// certificate's fingerprint, or why the files did not load (the old
    /// certificate is then kept). Never fails.
    pub(crate) fn reload(&self) {
        match self {
            Self::Files(files) => files.reload(),
            Self::Nothing(reason) => log::info!("SIGHUP: nothing to reload ({reason})"),
        }
    }
}

/// The certificate files and the resolver that serves what they held.
pub(crate) struct FileCertificate {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    resolver: Arc<LatestCertificate>,
}

impl FileCertificate {
    fn reload(&self) {
        let kept = || fingerprint(&self.resolver.current().cert[0]);
        match load_certified(&self.cert, &self.key, &self.provider) {
            Ok(certified) => {
                let serving = fingerprint(&certified.cert[0]);
                self.resolver.replace(certified);
                log::info!(
                    "SIGHUP: reloaded {} and {}: new handshakes get the certificate with \
                     SHA-256 {serving}",
                    self.cert.display(),
                    self.key.display()
                );
            }
            Err(error) => log::error!(
                "SIGHUP: reload failed: {error}; still serving the certificate with SHA-256 {}",
                kept()
            ),
        }
    }
}

/// A certificate resolver that gives every handshake the certificate loaded
/// last. A reload swaps the `Arc`; a handshake holds its own clone.
#[derive(Debug)]
pub(crate) struct LatestCertificate(RwLock<Arc<CertifiedKey>>);

impl LatestCertificate {
    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn replace(&self, certified: CertifiedKey) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
    }
}

impl ResolvesServerCert for LatestCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A generated certificate: the config serving it, where its PEM is, and
/// its SHA-256 fingerprint.
pub(crate) struct SelfSigned {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) path: PathBuf,
    pub(crate) fingerprint: String,
}

/// Generates a self-signed certificate and writes it (PEM, the
/// certificate only) to `out`, or to [`default_cert_path`].
pub(crate) fn self_signed(out: Option<&Path>) -> Result<SelfSigned, String> {
    let names: Vec<String> = SELF_SIGNED_NAMES
        .iter()
        .map(|name| name.to_string())
        .collect();
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|error| format!("cannot generate a certificate: {error}"))?;
    let path = out.map_or_else(default_cert_path, Path::to_path_buf);
    std::fs::write(&path, certified.cert.pem())
        .map_err(|error| format!("{}: cannot write the certificate: {error}", path.display()))?;
    if out.is_none() {
        *GENERATED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(path.clone());
    }
    let der = certified.cert.der().clone();
    let fingerprint = fingerprint(&der);
    let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .map_err(|error| format!("generated key: {error}"))?;
    let config = builder()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .map_err(|error| format!("generated certificate: {error}"))?;
    Ok(SelfSigned {
        config: Arc::new(config),
        path,
        fingerprint,
    })
}

/// The certificate file written to the default path, to remove at exit.
static GENERATED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Removes the certificate file written to the default path, if any; a
/// `--cert-out` file is the user's and stays. Safe to call more than once
/// and from any thread (the signal thread calls it before an immediate
/// exit).
pub(crate) fn remove_generated() {
    let taken = GENERATED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some(path) = taken
        && let Err(error) = std::fs::remove_file(&path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!(
            "shoutd: {}: cannot remove the certificate: {error}",
            path.display()
        );
    }
}

/// Removes the generated certificate file when dropped: held by `main`, so
/// the file goes on every return from it, and on a panic's unwinding.
pub(crate) struct RemoveGenerated;

impl Drop for RemoveGenerated {
    fn drop(&mut self) {
        remove_generated();
    }
}

/// Returns where a generated certificate goes without `--cert-out`:
/// `shoutd-PID.pem` in `$XDG_RUNTIME_DIR`, or else the temporary directory.
pub(crate) fn default_cert_path() -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!("shoutd-{}.pem", std::process::id()))
}

/// Returns the SHA-256 of a certificate's DER, as colon-separated hex pairs
/// (the form `openssl x509 -fingerprint -sha256` prints).
fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_32_hex_pairs() {
        let printed = fingerprint(b"");
        assert_eq!(printed.split(':').count(), 32);
        // SHA-256 of nothing.
        assert!(printed.starts_with("E3:B0:C4:42"), "{printed}");
    }
}
