//! shoutd's start-up contract, read back: one `listening PROTO ADDR` line per
//! socket on standard output.

use std::fmt;
use std::net::SocketAddr;

/// The sockets a server announced, in the order it announced them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listening {
    sockets: Vec<(String, SocketAddr)>,
}

/// A line that does not keep the start-up contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseListeningError {
    line: String,
    reason: String,
}

impl fmt::Display for ParseListeningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a listening line: {}",
            self.line, self.reason
        )
    }
}

impl std::error::Error for ParseListeningError {}

impl Listening {
    /// Parses one `listening PROTO ADDR` line and records its socket.
    ///
    /// # Errors
    /// When the line has another shape, or ADDR is not a socket address
    /// with a port other than 0.
    pub fn add_line(&mut self, line: &str) -> Result<(), ParseListeningError> {
        let error = |reason: String| ParseListeningError {
            line: line.trim().to_owned(),
            reason,
        };
        let mut words = line.split_whitespace();
        if words.next() != Some("listening") {
            return Err(error("it does not start with `listening`".into()));
        }
        let (Some(proto), Some(addr), None) = (words.next(), words.next(), words.next()) else {
            return Err(error("it is not `listening PROTO ADDR`".into()));
        };
        let addr: SocketAddr = addr.parse().map_err(|e| error(format!("{e}")))?;
        if addr.port() == 0 {
            return Err(error("the port is 0, not the one bound".into()));
        }
        self.sockets.push((proto.to_owned(), addr));
        Ok(())
    }

    /// Returns how many sockets were announced.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Returns whether no socket was announced.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Returns every address announced for `proto` (`tcp`, `udp`, …).
    pub fn addrs(&self, proto: &str) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter(|(announced, _)| announced == proto)
            .map(|(_, addr)| *addr)
            .collect()
    }

    /// Returns the first TCP address announced.
    pub fn tcp(&self) -> Option<SocketAddr> {
        self.addrs("tcp").first().copied()
    }

    /// Returns the first UDP address announced.
    pub fn udp(&self) -> Option<SocketAddr> {
        self.addrs("udp").first().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_protocol_and_address() {
        let mut listening = Listening::default();
        listening
            .add_line("listening tcp 127.0.0.1:4000\n")
            .unwrap();
        listening.add_line("listening udp [::1]:4001").unwrap();
        assert_eq!(listening.tcp(), Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(listening.udp(), Some("[::1]:4001".parse().unwrap()));
        assert_eq!(listening.len(), 2);
    }

    #[test]
    fn refuses_lines_that_break_the_contract() {
        let mut listening = Listening::default();
        for line in [
            "serving tcp 127.0.0.1:1",
            "listening tcp",
            "listening tcp 127.0.0.1:1 extra",
            "listening tcp localhost:1",
            "listening tcp 127.0.0.1:0",
        ] {
            assert!(listening.add_line(line).is_err(), "{line}");
        }
        assert!(listening.is_empty());
    }
}
