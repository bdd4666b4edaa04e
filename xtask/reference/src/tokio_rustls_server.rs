//! The tokio-rustls server behind `reference-tokio-rustls` and
//! `reference-tokio-rustls-1`: the TLS server a Rust user would write
//! instead of `shoutd --tls`, in the ordinary tokio-rustls style. It is not
//! tuned and not for anything but the benchmark.
//!
//! An accept loop spawning a task per connection; in the task,
//! `TlsAcceptor::accept`, then `read` into a buffer and `write_all` of its
//! uppercase until the client's close_notify (or a TCP close), then the
//! rest of the reply and `shutdown`, which sends the server's close_notify.
//! rustls with ring and its safe defaults (TLS 1.3 and 1.2), as
//! `shoutd --tls` uses; `TCP_NODELAY` as in `tokio_server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The command line: `--tls ADDR --cert FILE --key FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsArgs {
    /// Where to listen (default `127.0.0.1:0`).
    pub addr: SocketAddr,
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// The private key, PEM.
    pub key: PathBuf,
}

impl TlsArgs {
    /// Parses the arguments after the program name; the error is a usage
    /// message.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        const USAGE: &str = "usage: [--tls ADDR] --cert FILE --key FILE";
        let mut addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (mut cert, mut key) = (None, None);
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .ok_or_else(|| format!("`{flag}` needs a value; {USAGE}"))?;
            match flag.as_str() {
                // `--quic` for the QUIC reference, which takes the same.
                "--tls" | "--quic" => {
                    addr = value
                        .parse()
                        .map_err(|error| format!("`--tls {value}`: {error}"))?;
                }
                "--cert" => cert = Some(PathBuf::from(value)),
                "--key" => key = Some(PathBuf::from(value)),
                other => return Err(format!("unknown argument `{other}`; {USAGE}")),
            }
        }
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Self { addr, cert, key }),
            _ => Err(format!("--cert and --key are needed; {USAGE}")),
        }
    }

    /// Loads the certificate and key into a server configuration.
    pub fn config(&self) -> Result<ServerConfig, String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(Iterator::collect)
            .map_err(|error| format!("{}: {error}", self.cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|error| format!("{}: {error}", self.key.display()))?;
        ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|error| format!("{}: {error}", self.cert.display()))
    }
}

/// Serves TLS on the address of the command line until killed; `program`
/// names the binary in its messages. The runtime is the caller's.
pub async fn serve(program: &str) -> std::io::Result<()> {
    let fail = |message: String| -> ! {
        eprintln!("{program}: {message}");
        std::process::exit(2);
    };
    let args = TlsArgs::parse(std::env::args().skip(1)).unwrap_or_else(|message| fail(message));
    let config = args.config().unwrap_or_else(|message| fail(message));
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(args.addr).await?;
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening tls {}", listener.local_addr()?);
        let _ = stdout.flush();
    }
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(serve_connection(acceptor.clone(), stream));
            }
            Err(error) => eprintln!("{program}: accept failed: {error}"),
        }
    }
}

/// Answers one TLS connection until the client's end of input, then closes
/// it with close_notify.
async fn serve_connection(acceptor: TlsAcceptor, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut stream) = acceptor.accept(stream).await else {
        return;
    };
    crate::tokio_server::uppercase_stream(&mut stream).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn needs_a_certificate_and_a_key() {
        assert!(TlsArgs::parse(args(&["--cert", "c.pem"])).is_err());
        let parsed =
            TlsArgs::parse(args(&["--tls", "127.0.0.1:9", "--cert", "c", "--key", "k"])).unwrap();
        assert_eq!(parsed.addr, "127.0.0.1:9".parse().unwrap());
        assert!(TlsArgs::parse(args(&["--tcp", "127.0.0.1:9"])).is_err());
    }
}
