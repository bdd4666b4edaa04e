//! `reference-tokio-rustls-1`: the same tokio-rustls server on the
//! one-thread runtime, the peer of one-worker `shoutd --tls`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    shout_reference::tokio_rustls_server::serve("reference-tokio-rustls-1").await
}
