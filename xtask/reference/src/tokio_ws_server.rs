//! The WebSocket server behind `reference-tokio-ws-1`: what a Rust user
//! would write instead of shoutd `--ws`, in the most ordinary
//! tokio-tungstenite style. It is not tuned and not for anything but the
//! benchmark, with one exception the measurement asks for: the read
//! buffer is 4 KiB instead of tungstenite's 128 KiB (which would hold
//! 130 KiB per idle connection).
//!
//! An accept loop spawning a task per connection, `accept_async_with_config`,
//! then `while let Some(message) = ws.next().await` answering each text or
//! binary message with `ws.send(reply).await`; tungstenite answers pings
//! and the close handshake itself. The transform is shoutd's own
//! (`shout_protocol::uppercase`), so the comparison is between the
//! servers. `TCP_NODELAY` is set, as shoutd sets it.

use futures_util::{SinkExt, StreamExt};
use std::io::Write;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Each connection's read buffer.
const READ_BUFFER: usize = 4 * 1024;

/// Serves WebSocket on `--ws ADDR` (default `127.0.0.1:0`) until killed,
/// printing `listening ws ADDR` once bound; `program` names the binary in
/// its messages. The runtime is the caller's.
pub async fn serve(program: &str) -> std::io::Result<()> {
    let addr = ws_address(program);
    let listener = TcpListener::bind(addr).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening ws {}", listener.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(serve_connection(stream));
            }
            Err(error) => eprintln!("{program}: accept failed: {error}"),
        }
    }
}

/// Reads `--ws ADDR` from the command line; exits with a usage message
/// on anything else.
fn ws_address(program: &str) -> SocketAddr {
    let mut args = std::env::args().skip(1);
    let mut addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|value| value.parse())) {
            ("--ws", Some(Ok(value))) => addr = value,
            _ => {
                eprintln!("usage: {program} [--ws ADDR]");
                std::process::exit(2);
            }
        }
    }
    addr
}

/// Answers one connection's messages until it closes.
async fn serve_connection(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let mut upper = Vec::new();
    while let Some(Ok(message)) = ws.next().await {
        let reply = match message {
            Message::Text(text) => {
                upper.clear();
                shout_protocol::uppercase(text.as_bytes(), &mut upper);
                // The uppercase of valid UTF-8 is valid UTF-8.
                Message::text(String::from_utf8_lossy(&upper).into_owned())
            }
            Message::Binary(bytes) => {
                upper.clear();
                shout_protocol::uppercase(&bytes, &mut upper);
                Message::binary(upper.clone())
            }
            _ => continue,
        };
        if ws.send(reply).await.is_err() {
            return;
        }
    }
}
