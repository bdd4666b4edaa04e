//! The one error type of the crate.

use std::io;
use std::net::SocketAddr;

/// What can go wrong when starting the endpoint or encoding a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listening socket could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the system refused.
        #[source]
        source: io::Error,
    },
    /// The endpoint's thread could not be started, or its socket set up.
    #[error("cannot start the metrics endpoint: {0}")]
    Start(#[source] io::Error),
    /// A snapshot that cannot be encoded: an invalid name or label, or two
    /// metrics of one name with different kinds, help texts or label names.
    #[error("cannot encode the metrics: {0}")]
    Encode(String),
}
