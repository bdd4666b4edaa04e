//! The error type of the load generator: why a run could not start or go
//! on. Wrong replies and broken connections during a run are not errors of
//! this kind: the report counts them.

use shout_client::{ClientError, ErrorCategory};
use std::io;

/// Says why a benchmark could not run. Each message says what failed and why,
/// in one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The options make no run; the text names the option and the limit.
    #[error("invalid benchmark: {0}")]
    InvalidOptions(String),
    /// The target could not be resolved or reached, or a socket to it could
    /// not be opened.
    #[error(transparent)]
    Target(#[from] ClientError),
    /// A thread's event loop could not be made or failed.
    #[error("the load generator's event loop failed: {0}")]
    EventLoop(#[source] io::Error),
    /// A load thread could not be started.
    #[error("cannot start a load generator thread: {0}")]
    Thread(#[source] io::Error),
}

impl BenchError {
    /// Returns the class of the failure, for exit codes: the target's
    /// failures keep the client's class, the others are local.
    pub fn category(&self) -> ErrorCategory {
        match self {
            BenchError::Target(error) => error.category(),
            BenchError::InvalidOptions(_) | BenchError::EventLoop(_) | BenchError::Thread(_) => {
                ErrorCategory::Local
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_of_the_target_keep_their_class() {
        let refused = ClientError::UdpRefused {
            addr: "127.0.0.1:9".parse().unwrap(),
        };
        let error = BenchError::from(refused);
        assert_eq!(error.category(), ErrorCategory::Refused);
        assert!(error.to_string().contains("127.0.0.1:9"), "{error}");
        let invalid = BenchError::InvalidOptions("at least 1 request".into());
        assert_eq!(invalid.category(), ErrorCategory::Local);
        assert_eq!(invalid.to_string(), "invalid benchmark: at least 1 request");
    }
}
