//! Connection ids: what names a connection outside its worker (a
//! [`ConnectionSender`](crate::ConnectionSender)'s address, the logs).

use std::fmt;

/// Names one TCP connection for the server's whole life: ids are never
/// reused, so a stale id names no connection rather than another one.
///
/// The top 16 bits are the worker that owns the connection, the rest a
/// counter of that worker's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub(crate) u64);

const WORKER_SHIFT: u32 = 48;
/// The most workers a server may have: their index fits an id's top bits.
pub(crate) const MAX_WORKERS: usize = 1 << (64 - WORKER_SHIFT);

impl ConnectionId {
    pub(crate) fn new(worker: usize, serial: u64) -> Self {
        Self(((worker as u64) << WORKER_SHIFT) | (serial & ((1 << WORKER_SHIFT) - 1)))
    }

    /// Returns the id as a number, unique among the server's connections.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Returns the index of the worker that owns the connection.
    pub(crate) fn worker(self) -> usize {
        (self.0 >> WORKER_SHIFT) as usize
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            self.worker(),
            self.0 & ((1 << WORKER_SHIFT) - 1)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_its_worker_and_ids_differ_by_serial() {
        let id = ConnectionId::new(3, 41);
        assert_eq!(id.worker(), 3);
        assert_eq!(id.to_string(), "3.41");
        assert_ne!(ConnectionId::new(3, 42), id);
        assert_ne!(ConnectionId::new(2, 41), id);
        assert_eq!(
            ConnectionId::new(MAX_WORKERS - 1, 0).worker(),
            MAX_WORKERS - 1
        );
    }
}
