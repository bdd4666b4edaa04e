//! Scenarios where shout's QUIC meets QUIC written by others: aioquic's
//! client (`peers/quic_client.py`) against `shoutd --quic`, and
//! `shout tcp --quic` against an aioquic server (`peers/quic_server.py`);
//! and aioquic made to break shoutd's stream limit
//! (`peers/quic_over_stream_limit.py`), which no compliant client does.
//!
//! Everything is on 127.0.0.1; certificates live in a temporary
//! directory. This module does not test QUIC itself, only that the two
//! sides agree: the handshake (ALPN `shout`, the certificate checked),
//! streams and their FINs.

use super::process::{
    Shoutd, TempDir, Transport, one_line_tail, quote, run_with_input, start_on_free_port,
};
use super::{Env, Outcome};
use std::net::SocketAddr;
use std::time::Duration;

/// Time a client process gets to finish.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts `shoutd --quic 127.0.0.1:0` with `extra`, its generated
/// certificate written to `dir`. Returns it, its QUIC address and the
/// certificate's path.
fn start_shoutd(
    env: &Env,
    dir: &TempDir,
    extra: &[&str],
) -> Result<(Shoutd, SocketAddr, String), String> {
    let cert = dir.0.as_path().join("shoutd.pem");
    let cert_arg = cert.to_string_lossy().into_owned();
    let mut options = vec!["--quic", "127.0.0.1:0", "--cert-out", &cert_arg];
    options.extend_from_slice(extra);
    let shoutd = Shoutd::start_on(env, "127.0.0.1:0", "127.0.0.1:0", &options)?;
    let quic = shoutd
        .quic
        .ok_or("shoutd printed no `listening quic` line")?;
    Ok((shoutd, quic, cert_arg))
}

/// aioquic's client sends three lines on three streams at once to
/// `shoutd --quic` and checks each answer.
pub(crate) fn aioquic_client_vs_shoutd(env: &Env) -> Result<Outcome, String> {
    let dir = TempDir::new("quic-client")?;
    let (_shoutd, quic, cert_arg) = start_shoutd(env, &dir, &[])?;
    let mut client = env.aioquic("quic_client.py")?;
    client.args([
        "127.0.0.1",
        &quic.port().to_string(),
        &cert_arg,
        "localhost",
    ]);
    let input = "hello from aioquic\nstraße ﬁ\nthird stream\n";
    let finished = run_with_input(
        "quic_client.py",
        &mut client,
        input.as_bytes(),
        CLIENT_TIMEOUT,
    )?;
    finished.expect(
        "aioquic's client against shoutd --quic",
        "HELLO FROM AIOQUIC\nSTRASSE FI\nTHIRD STREAM\n".as_bytes(),
    )?;
    Ok(Outcome::Pass(None))
}

/// Streams a client may have open at once in the stream-limit scenario.
const STREAM_LIMIT: usize = 4;

/// aioquic, told to ignore the stream limit shoutd announced, opens five
/// times as many streams at once: shoutd must close that connection with
/// STREAM_LIMIT_ERROR (0x4) and go on serving a well-behaved client.
pub(crate) fn aioquic_over_the_stream_limit(env: &Env) -> Result<Outcome, String> {
    let dir = TempDir::new("quic-stream-limit")?;
    let limit = STREAM_LIMIT.to_string();
    let (_shoutd, quic, cert_arg) = start_shoutd(env, &dir, &["--quic-streams", &limit])?;
    let port = quic.port().to_string();
    let mut breaker = env.aioquic("quic_over_stream_limit.py")?;
    let streams = (STREAM_LIMIT * 5).to_string();
    breaker.args(["127.0.0.1", &port, &cert_arg, &streams]);
    let broke = run_with_input(
        "quic_over_stream_limit.py",
        &mut breaker,
        b"",
        CLIENT_TIMEOUT,
    )?;
    let expected = format!("limit {STREAM_LIMIT}\nclosed error_code=0x4 ");
    let said = String::from_utf8_lossy(&broke.stdout);
    if !broke.status.success() || !said.starts_with(&expected) {
        return Err(format!(
            "a client over the stream limit: expected {expected:?}..., got {} (exit {}); stderr: {}",
            quote(&broke.stdout),
            broke.status,
            one_line_tail(&broke.stderr, 400)
        ));
    }
    let mut client = env.aioquic("quic_client.py")?;
    client.args(["127.0.0.1", &port, &cert_arg, "localhost"]);
    let finished = run_with_input(
        "quic_client.py",
        &mut client,
        b"after\nthe breaker\n",
        CLIENT_TIMEOUT,
    )?;
    finished.expect(
        "a well-behaved client after the stream-limit breaker",
        b"AFTER\nTHE BREAKER\n",
    )?;
    Ok(Outcome::Pass(Some(format!(
        "{}: {}",
        said.lines().next().unwrap_or_default(),
        said.lines().nth(1).unwrap_or_default()
    ))))
}

/// `shout tcp --quic` pipes 1 MiB through an aioquic uppercase server and
/// checks the answer byte for byte; a name the certificate does not have
/// is refused as a TLS failure.
pub(crate) fn shout_vs_aioquic_server(env: &Env) -> Result<Outcome, String> {
    let dir = TempDir::new("quic-server")?;
    let (cert, key) = super::tls::openssl_cert(dir.0.as_path(), "aioquic")?;
    let (_server, port) =
        start_on_free_port("quic_server.py", Transport::Udp, "listening quic", |port| {
            let mut command = env.aioquic("quic_server.py")?;
            command
                .arg(port.to_string())
                .arg("127.0.0.1")
                .arg(&cert)
                .arg(&key);
            Ok(command)
        })?;
    let target = format!("127.0.0.1:{port}");
    // ASCII only: the aioquic server uppercases bytes, not characters.
    let line = "the quick brown fox jumps over the lazy dog 0123456789\n";
    let input = line.repeat(1024 * 1024 / line.len() + 1);
    let mut shout = env.shout()?;
    shout
        .args(["tcp", "--quic", "--ca"])
        .arg(&cert)
        .arg(&target);
    let finished = run_with_input(
        "shout tcp --quic",
        &mut shout,
        input.as_bytes(),
        CLIENT_TIMEOUT,
    )?;
    finished.expect(
        "shout tcp --quic against aioquic",
        input.to_ascii_uppercase().as_bytes(),
    )?;
    let mut wrong_name = env.shout()?;
    wrong_name
        .args(["tcp", "--quic", "--servername", "not-this-host", "--ca"])
        .arg(&cert)
        .arg(&target);
    let refused = run_with_input("shout tcp --quic", &mut wrong_name, b"x\n", CLIENT_TIMEOUT)?;
    if refused.status.code() != Some(7) {
        return Err(format!(
            "a certificate without the name asked for: expected exit status 7, got {}; stderr: {}",
            refused.status, refused.stderr
        ));
    }
    Ok(Outcome::Pass(None))
}
