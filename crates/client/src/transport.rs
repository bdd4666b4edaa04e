//! The two transports shout speaks, as named in messages, options and
//! command lines. It is not a socket abstraction: each transport keeps its
//! own code path (`session`, `stream`, `udp`).

use std::fmt;

/// The transport a message or a probe went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A TCP connection: a byte stream.
    Tcp,
    /// UDP datagrams.
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_in_lower_case_as_on_the_command_line() {
        assert_eq!(Transport::Tcp.to_string(), "tcp");
        assert_eq!(Transport::Udp.to_string(), "udp");
    }
}
