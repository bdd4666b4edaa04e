//! `reference-quinn-1`: the ordinary quinn server on tokio's one-thread
//! runtime, the peer of `shoutd --quic` (one worker serves QUIC).

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    shout_reference::quinn_server::serve("reference-quinn-1").await
}
