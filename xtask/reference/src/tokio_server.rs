//! The tokio server behind `reference-tokio` and `reference-tokio-1`: the
//! server a Rust user would write instead of shoutd, in the most ordinary
//! tokio style. It is not tuned and not for anything but the benchmark.
//!
//! An accept loop spawning a task per connection, `read` into a buffer then
//! `write_all` of its uppercase, and one task for UDP with `recv_from` then
//! `send_to`. The transform is shoutd's own (`shout_protocol`), so the
//! comparison is between the servers, not the uppercasing. One deliberate
//! choice: `TCP_NODELAY`, which shoutd sets too, so that Nagle's algorithm
//! does not decide the pipelined figures. And one ordinary default kept:
//! `TcpListener::bind` listens with a backlog of 128 (std's and mio's
//! choice), where shoutd asks for 1024.

use crate::{Addresses, announce};
use shout_protocol::{Uppercaser, uppercase_datagram};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// The read buffer of each connection: 8 KiB, the size of std's `BufReader`
/// and of `tokio::io::copy`.
const READ_BUFFER: usize = 8 * 1024;

/// Serves on the addresses of the command line until killed; `program`
/// names the binary in its messages. The runtime is the caller's: the
/// two binaries differ only in their `#[tokio::main]`.
pub async fn serve(program: &str) -> std::io::Result<()> {
    let addresses = Addresses::from_env(program);
    let listener = TcpListener::bind(addresses.tcp).await?;
    let socket = UdpSocket::bind(addresses.udp).await?;
    announce(listener.local_addr()?, socket.local_addr()?);
    tokio::spawn(serve_datagrams(socket));
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(serve_connection(stream));
            }
            // Out of descriptors, or a client gone before accept: go on.
            Err(error) => eprintln!("{program}: accept failed: {error}"),
        }
    }
}

/// Answers one connection until the client's end of stream, then closes it.
async fn serve_connection(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    uppercase_stream(&mut stream).await;
}

/// Answers `stream` until its end of input (or an error), then writes the
/// rest of the reply; the caller closes it. Shared with the TLS reference,
/// so that both answer with the same code.
pub(crate) async fn uppercase_stream<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    let mut buffer = vec![0; READ_BUFFER];
    let mut upper = Uppercaser::new();
    let mut reply = Vec::new();
    loop {
        let read = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        reply.clear();
        upper.feed(&buffer[..read], &mut reply);
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
    reply.clear();
    upper.finish(&mut reply);
    let _ = stream.write_all(&reply).await;
}

/// Answers every datagram with its uppercase, one at a time.
async fn serve_datagrams(socket: UdpSocket) {
    let mut buffer = vec![0; 65_536];
    let mut reply = Vec::new();
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        if uppercase_datagram(&buffer[..len], &mut reply).is_ok() {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}
