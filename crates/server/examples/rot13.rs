//! A second service on the same event loop, to show it is not tied to
//! uppercasing: ROT13 over TCP and UDP.
//!
//! ```text
//! cargo run -p shout-server --example rot13 -- 127.0.0.1:7000
//! printf 'hello' | nc -N 127.0.0.1 7000     # uryyb
//! ```

use shout_server::{
    ConnectionContext, DatagramReply, DatagramService, ServerBuilder, StreamService,
};
use std::net::SocketAddr;

/// ROT13 is stateless and byte-wise, so a session is empty.
pub(crate) struct Rot13;

fn rot13(byte: u8) -> u8 {
    match byte {
        b'a'..=b'z' => (byte - b'a' + 13) % 26 + b'a',
        b'A'..=b'Z' => (byte - b'A' + 13) % 26 + b'A',
        other => other,
    }
}

impl StreamService for Rot13 {
    type Session = ();

    fn open(&self, _conn: &mut ConnectionContext<'_>) {}

    fn data(&self, _session: &mut (), input: &[u8], conn: &mut ConnectionContext<'_>) {
        conn.output().extend(input.iter().copied().map(rot13));
    }
}

impl DatagramService for Rot13 {
    fn datagram(&self, request: &[u8], _peer: SocketAddr, reply: &mut Vec<u8>) -> DatagramReply {
        reply.extend(request.iter().copied().map(rot13));
        DatagramReply::Send
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let server = ServerBuilder::new(Rot13, Rot13)
        .tcp(addr)
        .udp(addr)
        .build()?;
    let handle = server.handle();
    for addr in handle.tcp_addrs() {
        println!("listening tcp {addr}");
    }
    for addr in handle.udp_addrs() {
        println!("listening udp {addr}");
    }
    server.run()?;
    Ok(())
}
