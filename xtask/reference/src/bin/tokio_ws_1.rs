//! `reference-tokio-ws-1`: the ordinary tokio-tungstenite WebSocket
//! server on the one-thread runtime (`flavor = "current_thread"`), the
//! fair peer of one-worker shoutd `--ws`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    shout_reference::tokio_ws_server::serve("reference-tokio-ws-1").await
}
