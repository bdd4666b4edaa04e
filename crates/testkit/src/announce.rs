//! shoutd's start-up contract, read back: one `listening PROTO ADDR` line per
//! socket on standard output, optionally followed by a note in parentheses
//! (`listening tcp 127.0.0.1:4000 (socket activation, fd 3)`).

use std::fmt;
use std::net::SocketAddr;

/// The sockets a server announced, in the order it announced them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listening {
    sockets: Vec<(String, SocketAddr, Option<String>)>,
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
    /// Parses one `listening PROTO ADDR` line, with or without a trailing
    /// `(note)`, and records its socket.
    ///
    /// # Errors
    /// When the line has another shape, or ADDR is not a socket address
    /// with a port other than 0.
    pub fn add_line(&mut self, line: &str) -> Result<(), ParseListeningError> {
        let error = |reason: String| ParseListeningError {
            line: line.trim().to_owned(),
            reason,
        };
        let mut words = line.trim().splitn(4, char::is_whitespace);
        if words.next() != Some("listening") {
            return Err(error("it does not start with `listening`".into()));
        }
        let (Some(proto), Some(addr)) = (words.next(), words.next()) else {
            return Err(error("it is not `listening PROTO ADDR`".into()));
        };
        let note = words.next();
        if let Some(note) = note
            && !(note.starts_with('(') && note.ends_with(')'))
        {
            return Err(error(
                "it is not `listening PROTO ADDR`, with at most a `(note)` after".into(),
            ));
        }
        let addr: SocketAddr = addr.parse().map_err(|e| error(format!("{e}")))?;
        if addr.port() == 0 {
            return Err(error("the port is 0, not the one bound".into()));
        }
        let note = note.map(|note| note[1..note.len() - 1].to_owned());
        self.sockets.push((proto.to_owned(), addr, note));
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
            .filter(|(announced, _, _)| announced == proto)
            .map(|(_, addr, _)| *addr)
            .collect()
    }

    /// Returns the note announced for `addr` over `proto`, without its
    /// parentheses: `None` when the line had none.
    pub fn note(&self, proto: &str, addr: SocketAddr) -> Option<&str> {
        self.sockets
            .iter()
            .find(|(announced, at, _)| announced == proto && *at == addr)
            .and_then(|(_, _, note)| note.as_deref())
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
        listening
            .add_line("listening tcp 127.0.0.1:4002 (socket activation, fd 3, web)\n")
            .unwrap();
        assert_eq!(listening.tcp(), Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(listening.udp(), Some("[::1]:4001".parse().unwrap()));
        assert_eq!(listening.addrs("tcp")[1], "127.0.0.1:4002".parse().unwrap());
        assert_eq!(
            listening.note("tcp", "127.0.0.1:4002".parse().unwrap()),
            Some("socket activation, fd 3, web")
        );
        assert_eq!(
            listening.note("tcp", "127.0.0.1:4000".parse().unwrap()),
            None
        );
        assert_eq!(listening.len(), 3);
    }

    #[test]
    fn refuses_lines_that_break_the_contract() {
        let mut listening = Listening::default();
        for line in [
            "serving tcp 127.0.0.1:1",
            "listening tcp",
            "listening tcp 127.0.0.1:1 extra",
            "listening tcp 127.0.0.1:1 (unclosed",
            "listening tcp  127.0.0.1:1",
            "listening tcp localhost:1",
            "listening tcp 127.0.0.1:0",
        ] {
            assert!(listening.add_line(line).is_err(), "{line}");
        }
        assert!(listening.is_empty());
    }
}
