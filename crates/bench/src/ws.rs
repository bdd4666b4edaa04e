//! WebSocket for the TCP load (`--ws`): the upgrade request and its 101,
//! each request sent as one masked text message, and the server's frames
//! taken apart so that their payload is checked as a TCP reply's bytes
//! are. Each request gets one reply message (docs/PROTOCOL.md,
//! "WebSocket"), so the payloads in order are the replies in order.
//!
//! The frame header codec is tungstenite's; this module keeps a partial
//! header and the payload left in a frame, never a payload. It is not a
//! WebSocket client for anything else: the requests are the payload's,
//! and pings, extensions and subprotocols are not spoken.

use std::io::Cursor;
use std::net::SocketAddr;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// The resource upgraded: shoutd's socket.
pub(crate) const RESOURCE: &str = "/ws";

/// The longest response head taken to the upgrade.
const MAX_HEAD: usize = 8 * 1024;

/// What one read of the server's frames gave.
pub(crate) enum Piece<'a> {
    /// Reply bytes.
    Payload(&'a [u8]),
    /// The server's close frame: the stream ends.
    Closed,
}

/// A connection's WebSocket state: the upgrade's response head until it
/// is whole, then where in the server's frames the stream is.
pub(crate) struct WsState {
    head: Vec<u8>,
    header: [u8; 14],
    header_len: usize,
    /// Payload left in the current frame, and whether it is a control
    /// frame's (skipped).
    remaining: u64,
    control: bool,
    /// The state of the masks' generator (xorshift).
    mask: u32,
}

/// Returns the upgrade request for `addr`, with the key of connection
/// `seed` (16 bytes in base64; any will do for the server).
pub(crate) fn upgrade_request(addr: SocketAddr, seed: u64) -> Vec<u8> {
    let key = format!("{:016x}", seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // 16 ASCII bytes in base64 are 24 characters ending in "==".
    let key = base64_16(key.as_bytes());
    format!(
        "GET {RESOURCE} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Encodes 16 bytes in base64 (with its `==`).
fn base64_16(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(24);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}

impl WsState {
    /// Returns the state of a connection whose upgrade was sent; `seed`
    /// starts its masks.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            head: Vec::new(),
            header: [0; 14],
            header_len: 0,
            remaining: 0,
            control: false,
            mask: (seed as u32) | 1,
        }
    }

    /// Takes response bytes until the head is whole. Returns how many of
    /// `data` it took once the server switched protocols; an error for
    /// any other answer.
    pub(crate) fn take_head(
        &mut self,
        addr: SocketAddr,
        data: &[u8],
    ) -> Result<Option<usize>, String> {
        let before = self.head.len();
        self.head.extend_from_slice(data);
        let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.head.len() > MAX_HEAD {
                return Err(format!("ws {addr}: no whole response to the upgrade"));
            }
            return Ok(None);
        };
        let status = self.head.split(|&b| b == b'\r').next().unwrap_or_default();
        if !status.starts_with(b"HTTP/1.1 101") {
            return Err(format!(
                "ws {addr} refused the upgrade: {}",
                String::from_utf8_lossy(status)
            ));
        }
        self.head = Vec::new();
        Ok(Some(end + 4 - before))
    }

    /// Appends `payload` to `out` as one masked text message.
    pub(crate) fn frame(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        // xorshift32: a mask per frame, as RFC 6455 asks of clients.
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 17;
        self.mask ^= self.mask << 5;
        let mask = self.mask.to_be_bytes();
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            mask: Some(mask),
            ..FrameHeader::default()
        };
        // Writing to a Vec cannot fail.
        let _ = header.format(payload.len() as u64, out);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    }

    /// Takes the next piece out of `data`, the server's frames as read:
    /// payload bytes of data frames, or its close. `None` once `data` is
    /// used up.
    pub(crate) fn next<'a>(
        &mut self,
        addr: SocketAddr,
        data: &mut &'a [u8],
    ) -> Result<Option<Piece<'a>>, String> {
        loop {
            if self.remaining > 0 {
                if data.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let (piece, rest) = data.split_at(n);
                *data = rest;
                self.remaining -= n as u64;
                if !self.control {
                    return Ok(Some(Piece::Payload(piece)));
                }
                continue;
            }
            if data.is_empty() {
                return Ok(None);
            }
            let take = data.len().min(self.header.len() - self.header_len);
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            let mut cursor = Cursor::new(&self.header[..self.header_len + take]);
            let parsed = FrameHeader::parse(&mut cursor)
                .map_err(|error| format!("ws {addr}: a bad frame: {error}"))?;
            let Some((header, length)) = parsed else {
                self.header_len += take;
                *data = &data[take..];
                continue;
            };
            let used = cursor.position() as usize - self.header_len;
            *data = &data[used..];
            self.header_len = 0;
            match header.opcode {
                OpCode::Control(Control::Close) => return Ok(Some(Piece::Closed)),
                OpCode::Control(_) => self.control = true,
                OpCode::Data(_) => self.control = false,
            }
            self.remaining = length;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_sixteen_bytes_in_base64() {
        let request =
            String::from_utf8(upgrade_request("127.0.0.1:9".parse().unwrap(), 7)).unwrap();
        let key = request
            .lines()
            .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        assert_eq!(key.len(), 24);
        assert!(key.ends_with("=="));
        assert_eq!(base64_16(b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn frames_cut_anywhere_give_their_payloads_in_order() {
        let addr = "127.0.0.1:9".parse().unwrap();
        // Text "HELLO" in two fragments, a pong between, then 300 bytes.
        let mut wire = vec![
            0x01, 3, b'H', b'E', b'L', 0x8A, 2, b'p', b'p', 0x80, 2, b'L', b'O',
        ];
        wire.extend([0x81, 126, 1, 44]);
        wire.extend([b'X'; 300]);
        wire.extend([0x88, 2, 3, 232]);
        for step in [1, 2, 3, 7, wire.len()] {
            let mut state = WsState::new(1);
            let (mut payload, mut closed) = (Vec::new(), false);
            for chunk in wire.chunks(step) {
                let mut data = chunk;
                while let Some(piece) = state.next(addr, &mut data).unwrap() {
                    match piece {
                        Piece::Payload(bytes) => payload.extend_from_slice(bytes),
                        Piece::Closed => closed = true,
                    }
                }
            }
            let mut expected = b"HELLO".to_vec();
            expected.extend([b'X'; 300]);
            assert_eq!(payload, expected, "cut every {step} bytes");
            assert!(closed);
        }
    }

    #[test]
    fn a_refused_upgrade_is_an_error_naming_the_status() {
        let addr = "127.0.0.1:9".parse().unwrap();
        let mut state = WsState::new(1);
        assert_eq!(
            state.take_head(addr, b"HTTP/1.1 101 Switching").unwrap(),
            None
        );
        assert_eq!(
            state.take_head(addr, b" Protocols\r\n\r\n").unwrap(),
            Some(14)
        );
        let mut refused = WsState::new(1);
        let error = refused
            .take_head(addr, b"HTTP/1.1 404 Not Found\r\n\r\n")
            .unwrap_err();
        assert!(error.contains("404"), "{error}");
    }
}
