//! The quinn server behind `reference-quinn-1`: the QUIC server a Rust
//! user would write instead of `shoutd --quic`, in the ordinary quinn
//! style on tokio's one-thread runtime. It is not tuned and not for
//! anything but the benchmark.
//!
//! `Endpoint::server` with quinn's default transport (100 bidirectional
//! streams per connection, as shoutd), the run's certificate, ALPN
//! `shout`, 0-RTT allowed as shoutd allows it; a task per connection
//! accepting its bidirectional streams, a task per stream answering with
//! tokio-1's loop (`read`, then `write_all` of the uppercase, 8 KiB
//! buffer), then `finish` after the client's FIN.

use crate::tokio_rustls_server::TlsArgs;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Endpoint, Incoming, RecvStream, SendStream};
use std::sync::Arc;

/// Serves QUIC on `--quic ADDR` with `--cert` and `--key` until killed;
/// `program` names the binary in its messages. The runtime is the
/// caller's.
pub async fn serve(program: &str) -> std::io::Result<()> {
    let fail = |message: String| -> ! {
        eprintln!("{program}: {message}");
        std::process::exit(2);
    };
    let args = TlsArgs::parse(std::env::args().skip(1)).unwrap_or_else(|message| fail(message));
    let mut tls = args.config().unwrap_or_else(|message| fail(message));
    tls.alpn_protocols = vec![b"shout".to_vec()];
    tls.max_early_data_size = u32::MAX;
    let crypto = QuicServerConfig::try_from(tls).unwrap_or_else(|error| fail(error.to_string()));
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let endpoint = Endpoint::server(config, args.addr)?;
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening quic {}", endpoint.local_addr()?);
        let _ = stdout.flush();
    }
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(serve_connection(incoming));
    }
    Ok(())
}

/// Answers every bidirectional stream of one connection.
async fn serve_connection(incoming: Incoming) {
    let Ok(connection) = incoming.await else {
        return;
    };
    while let Ok((send, recv)) = connection.accept_bi().await {
        tokio::spawn(serve_stream(send, recv));
    }
}

/// Answers one stream until the client's FIN, then finishes it.
async fn serve_stream(send: SendStream, recv: RecvStream) {
    let mut stream = tokio::io::join(recv, send);
    crate::tokio_server::uppercase_stream(&mut stream).await;
    let (_, mut send) = stream.into_inner();
    let _ = send.finish();
    // The FIN goes out once the peer has the rest: wait for it, as a
    // stream dropped unfinished would be reset.
    let _ = send.stopped().await;
}
