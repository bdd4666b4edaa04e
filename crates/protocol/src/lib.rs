//! The shout application protocol, with no I/O at all (sans-io).
//!
//! shout's protocol is the textbook one: a client sends text, the server answers
//! with the same text in upper case. This crate holds everything both ends must
//! agree on, and nothing that touches a socket:
//!
//! - [`Uppercaser`]: the streaming transform a TCP server applies to a byte
//!   stream arriving in chunks of any size.
//! - [`uppercase_datagram`]: the one-datagram-in, one-datagram-out rule for UDP,
//!   with its size limit.
//! - Shared constants: the ports ([`DEFAULT_PORT`], [`DEFAULT_TLS_PORT`],
//!   [`DEFAULT_WS_PORT`], [`DEFAULT_WSS_PORT`]), [`MAX_DATAGRAM_PAYLOAD`].
//! - [`LineFramer`]: lines of at most a maximum length out of a byte
//!   stream cut anywhere, for the services built on `shout-server` that
//!   speak in lines. shout's own protocol has none over TCP, and a
//!   datagram is a datagram.
//!
//! It is *not* for opening sockets, event loops or retries: those belong to
//! `shout-socket`, `shout-server` and `shout-client`. Reading sentences
//! from a keyboard is the client's (`shout_client::LineReader`).
//! The specification in prose is `docs/PROTOCOL.md`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod datagram;
mod lines;
mod transform;

pub use datagram::{DatagramError, MAX_DATAGRAM_PAYLOAD, uppercase_datagram};
pub use lines::{Frame, LineFramer};
pub use transform::{Uppercaser, uppercase, uppercased_len};

/// The port both ends use when none is given: the lecture's 12000.
pub const DEFAULT_PORT: u16 = 12000;

/// The TLS port, 12443: TLS over TCP, and QUIC over UDP (as HTTP/3 shares
/// 443 with HTTPS).
pub const DEFAULT_TLS_PORT: u16 = 12443;

/// The WebSocket port (`ws://`).
pub const DEFAULT_WS_PORT: u16 = 12080;

/// The WebSocket port over TLS (`wss://`).
pub const DEFAULT_WSS_PORT: u16 = 12444;

/// The largest number of bytes the uppercase of one byte can grow to, per input
/// byte. Unicode's full mapping turns some 2-byte characters into 6 bytes
/// (`ΐ` U+0390 → `Ϊ́`, three characters), so a reply is at most three times
/// its request. This is the UDP amplification bound.
pub const MAX_EXPANSION: usize = 3;
