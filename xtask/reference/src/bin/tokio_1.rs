//! `reference-tokio-1`: the same ordinary tokio server on the one-thread
//! runtime (`flavor = "current_thread"`): the fair peer of one-worker
//! shoutd, with no second thread competing for the load generator's core.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    shout_reference::tokio_server::serve("reference-tokio-1").await
}
