//! `reference-tokio-rustls`: the ordinary tokio-rustls server on the
//! multi-thread runtime, the peer of `shoutd --tls` in `cargo xtask bench`.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    shout_reference::tokio_rustls_server::serve("reference-tokio-rustls").await
}
