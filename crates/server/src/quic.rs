//! QUIC's settings: the quinn-proto server configuration a QUIC listener
//! runs with, built from the TLS configuration and the server's limits,
//! and the codes the server closes streams and connections with.
//!
//! This module is not the QUIC loop: [`worker::quic`](crate::worker) drives
//! quinn-proto's endpoint and connections on the worker's `mio::Poll`.
//! Nor does it choose certificates: the caller's `rustls::ServerConfig`
//! does, as for TLS over TCP; only the ALPN (`shout`) and 0-RTT are set
//! here, on a copy.

use quinn_proto::crypto::rustls::QuicServerConfig;
use quinn_proto::{IdleTimeout, TransportConfig, VarInt};
use std::sync::Arc;
use std::time::Duration;

/// The application protocol a QUIC client must offer (ALPN): a client
/// that offers none of the server's is refused in the handshake
/// (`no_application_protocol`).
pub const QUIC_ALPN: &[u8] = b"shout";

/// Default limit on the bidirectional streams one QUIC client may have
/// open at once.
pub const DEFAULT_QUIC_STREAMS_PER_CONNECTION: u32 = 100;

/// The application error code of a stream the server stops or resets: its
/// service closed it before the client's end, or the server is stopping.
pub(crate) const STREAM_DONE: VarInt = VarInt::from_u32(0);

/// The application error code of the CONNECTION_CLOSE a stopping server
/// sends.
pub(crate) const SERVER_STOPPING: VarInt = VarInt::from_u32(0);

/// The application error code of the CONNECTION_CLOSE sent when the
/// handshake deadline passes.
pub(crate) const HANDSHAKE_TIMEOUT: VarInt = VarInt::from_u32(1);

/// What the QUIC listeners of a server share: the limits of each
/// connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuicLimits {
    /// Bidirectional streams open at once per connection.
    pub(crate) streams_per_connection: u32,
    /// Handshakes in progress on the worker past which a new client whose
    /// address is not validated is sent a Retry first; 0 retries every
    /// client.
    pub(crate) retry_above: usize,
    /// The connection's idle timeout, `None` for none.
    pub(crate) idle_timeout: Option<Duration>,
    /// The unsent output a stream may hold: its receive window is this,
    /// so a client that never reads holds at most this much per stream.
    pub(crate) max_pending_output: usize,
}

/// Returns the quinn-proto configuration of a QUIC listener: `tls` with
/// the ALPN `shout` and 0-RTT allowed, and transport limits from `limits`.
///
/// Fails when `tls` has no TLS 1.3 cipher suite QUIC can start with.
pub(crate) fn server_config(
    tls: &rustls::ServerConfig,
    limits: &QuicLimits,
) -> Result<Arc<quinn_proto::ServerConfig>, String> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![QUIC_ALPN.to_vec()];
    // QUIC allows 0 or u32::MAX only; with u32::MAX the client's first
    // flight may carry a request (0-RTT). Uppercasing is idempotent, so a
    // replayed request costs work, not correctness (docs/QUIC.md).
    tls.max_early_data_size = u32::MAX;
    let crypto = QuicServerConfig::try_from(tls).map_err(|error| error.to_string())?;
    let mut config = quinn_proto::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config(limits)));
    // The connection cap and per-source limits are the server's own, so
    // the endpoint keeps only a small queue of clients not yet decided.
    config.max_incoming(1024);
    config.migration(false);
    Ok(Arc::new(config))
}

/// Returns the transport limits of every QUIC connection: streams, flow
/// control windows sized to the output limit, the idle timeout.
fn transport_config(limits: &QuicLimits) -> TransportConfig {
    let mut transport = TransportConfig::default();
    transport.max_concurrent_bidi_streams(limits.streams_per_connection.into());
    // No unidirectional stream: a client that opens one breaks the limit
    // it was given and its connection closes with STREAMS_LIMIT_ERROR.
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    let window = u32::try_from(limits.max_pending_output.max(16 * 1024)).unwrap_or(u32::MAX);
    transport.stream_receive_window(VarInt::from_u32(window));
    transport.receive_window(VarInt::from_u32(window.saturating_mul(4)));
    transport.send_window(u64::from(window) * 4);
    // Datagrams (RFC 9221) are not served: none are taken in.
    transport.datagram_receive_buffer_size(None);
    let idle = limits
        .idle_timeout
        .and_then(|timeout| IdleTimeout::try_from(timeout).ok());
    transport.max_idle_timeout(idle);
    transport
}
