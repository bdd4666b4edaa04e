//! `reference-tokio`: the ordinary tokio server on the multi-thread runtime
//! (`#[tokio::main]`, one worker per core), as most tokio servers run.
//! `cargo xtask bench` measures shoutd against it in the same run.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    shout_reference::tokio_server::serve("reference-tokio").await
}
