//! Scenarios where shout's TLS meets TLS written by others: OpenSSL's
//! `s_client`, `ncat --ssl`, `socat OPENSSL` and Python's `ssl` module
//! against `shoutd --tls`; `shout tcp --tls` against an `ncat --ssl`
//! server; and a plaintext client on the TLS port.
//!
//! Certificates live in a temporary directory: shoutd's own self-signed
//! one (`--cert-out`), and others made with `openssl req`. Everything is on
//! 127.0.0.1. This module does not test TLS itself, only that the two
//! sides agree.

use super::process::{
    Shoutd, Spawned, TempDir, Transport, exchange_line, free_port, one_line_tail, quote,
    run_with_input,
};
use super::{Env, Outcome};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Time a client process gets to answer a line.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The handshake deadline given to shoutd where a scenario waits for it.
const HANDSHAKE_TIMEOUT_SECS: u64 = 3;

/// shoutd with a TLS listener and its self-signed certificate in `dir`.
struct TlsShoutd {
    shoutd: Shoutd,
    tls: SocketAddr,
    cert: PathBuf,
}

impl TlsShoutd {
    /// Starts shoutd on 127.0.0.1 with `--tls` and the default certificate
    /// written to `dir/shoutd.pem`.
    fn start(env: &Env, dir: &Path) -> Result<Self, String> {
        let cert = dir.join("shoutd.pem");
        let cert_arg = cert.to_string_lossy().into_owned();
        let timeout = HANDSHAKE_TIMEOUT_SECS.to_string();
        let shoutd = Shoutd::start_on(
            env,
            "127.0.0.1:0",
            "127.0.0.1:0",
            &[
                "--tls",
                "127.0.0.1:0",
                "--cert-out",
                &cert_arg,
                "--handshake-timeout",
                &timeout,
            ],
        )?;
        let tls = shoutd.tls.ok_or("shoutd printed no `listening tls` line")?;
        if !cert.is_file() {
            return Err(format!(
                "shoutd --cert-out {} wrote no file; {}",
                cert.display(),
                shoutd.process.stderr_tail()
            ));
        }
        Ok(Self { shoutd, tls, cert })
    }

    /// Fails, with shoutd's stderr, unless it still runs.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.shoutd.process.try_wait()? {
            None => Ok(()),
            Some(status) => Err(format!(
                "shoutd exited ({status}); {}",
                self.shoutd.process.stderr_tail()
            )),
        }
    }
}

/// Makes a self-signed leaf certificate for localhost and 127.0.0.1 with
/// `openssl req`, as `dir/NAME.pem` and `dir/NAME.key`. CA:FALSE because
/// rustls refuses a CA certificate as a server's own.
pub(crate) fn openssl_cert(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let mut command = Command::new("openssl");
    command
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    let finished = run_with_input("openssl req", &mut command, b"", CLIENT_TIMEOUT)?;
    if !finished.status.success() {
        return Err(format!(
            "openssl req failed ({}): {}",
            finished.status,
            one_line_tail(&finished.stderr, 300)
        ));
    }
    Ok((cert, key))
}

/// Sends `line` through `client` and checks the reply is its uppercase;
/// returns the client's standard error.
fn expect_uppercase(name: &str, client: &mut Command, line: &str) -> Result<String, String> {
    let (reply, stderr) = exchange_line(name, client, line, CLIENT_TIMEOUT)?;
    if reply != line.to_uppercase() {
        return Err(format!(
            "{name}: expected {}, got {}; stderr: {}",
            quote(line.to_uppercase().as_bytes()),
            quote(reply.as_bytes()),
            one_line_tail(&stderr, 300)
        ));
    }
    Ok(stderr)
}

/// `openssl s_client -brief` to `addr`, verifying against `ca`.
fn s_client(addr: SocketAddr, ca: &Path, version: Option<&str>) -> Command {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-verify_return_error", "-brief"])
        .arg("-CAfile")
        .arg(ca)
        .args(version);
    command
}

/// The TLS version `openssl s_client -brief` reports on its stderr.
fn s_client_version(stderr: &str) -> Option<&str> {
    stderr
        .lines()
        .find_map(|line| line.strip_prefix("Protocol version:"))
        .map(str::trim)
}

/// `openssl s_client` gets the uppercase of a line, over TLS 1.3 by
/// default and over TLS 1.2 when limited to it.
pub(crate) fn openssl(env: &Env) -> Result<Outcome, String> {
    let dir = TempDir::new("tls-openssl")?;
    let mut server = TlsShoutd::start(env, &dir.0)?;
    let mut versions = Vec::new();
    for (flag, expected) in [(None, "TLSv1.3"), (Some("-tls1_2"), "TLSv1.2")] {
        let line = format!("hello from openssl {expected} — straße\n");
        let stderr = expect_uppercase(
            "openssl s_client",
            &mut s_client(server.tls, &server.cert, flag),
            &line,
        )?;
        let version = s_client_version(&stderr);
        if version != Some(expected) {
            return Err(format!(
                "openssl s_client {}: expected {expected}, negotiated {version:?}; stderr: {}",
                flag.unwrap_or("(default)"),
                one_line_tail(&stderr, 300)
            ));
        }
        versions.push(expected);
    }
    server.check_alive()?;
    Ok(Outcome::Pass(Some(format!(
        "default {}, -tls1_2 {}",
        versions[0], versions[1]
    ))))
}

/// `ncat --ssl` with verification gets the uppercase of a line.
pub(crate) fn ncat(env: &Env) -> Result<Outcome, String> {
    let dir = TempDir::new("tls-ncat")?;
    let mut server = TlsShoutd::start(env, &dir.0)?;
    let mut client = Command::new("ncat");
    client
        .args(["--ssl", "--ssl-verify", "--ssl-servername", "localhost"])
        .arg("--ssl-trustfile")
        .arg(&server.cert)
        .args(["127.0.0.1", &server.tls.port().to_string()]);
    expect_uppercase("ncat --ssl", &mut client, "hello from ncat — ǆ\n")?;
    server.check_alive()?;
    Ok(Outcome::Pass(None))
}

/// `socat OPENSSL` with verification gets the uppercase of a line.
pub(crate) fn socat(env: &Env) -> Result<Outcome, String> {
    let dir = TempDir::new("tls-socat")?;
    let mut server = TlsShoutd::start(env, &dir.0)?;
    let mut client = Command::new("socat");
    client.arg("-").arg(format!(
        "OPENSSL:127.0.0.1:{},cafile={},verify=1",
        server.tls.port(),
        server.cert.display()
    ));
    expect_uppercase("socat OPENSSL", &mut client, "hello from socat — ΐ\n")?;
    server.check_alive()?;
    Ok(Outcome::Pass(None))
}

/// A Python client with the standard library's `ssl`: verifies against the
/// given CA file, sends one line, half-closes nothing (TLS cannot), reads
/// to the end of the first line and prints the version and the line.
const PYTHON_CLIENT: &str = r#"
import socket, ssl, sys
cafile, port, line = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
context = ssl.create_default_context(cafile=cafile)
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(line)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = tls.recv(4096)
            if not chunk:
                break
            reply += chunk
        sys.stdout.buffer.write(tls.version().encode() + b"\n" + reply)
"#;

/// Python's `ssl` module gets the uppercase of a line, over TLS 1.3.
pub(crate) fn python(env: &Env) -> Result<Outcome, String> {
    let dir = TempDir::new("tls-python")?;
    let mut server = TlsShoutd::start(env, &dir.0)?;
    let line = "hello from python ssl — ﬁne\n";
    let mut client = Command::new("python3");
    client
        .args(["-c", PYTHON_CLIENT])
        .arg(&server.cert)
        .args([server.tls.port().to_string().as_str(), line])
        .env("PYTHONIOENCODING", "utf-8");
    run_with_input("python3 ssl", &mut client, b"", CLIENT_TIMEOUT)?.expect(
        "python3 ssl",
        format!("TLSv1.3\n{}", line.to_uppercase()).as_bytes(),
    )?;
    server.check_alive()?;
    Ok(Outcome::Pass(None))
}

/// `shout tcp --tls --ca CA ADDR`.
fn shout_tls(env: &Env, ca: &Path, addr: SocketAddr) -> Result<Command, String> {
    let mut command = env.shout()?;
    command
        .args(["tcp", "--tls", "--ca"])
        .arg(ca)
        .arg(addr.to_string());
    Ok(command)
}

/// Starts `ncat --ssl -l` on 127.0.0.1 running `tr a-z A-Z` (line
/// buffered) for one
/// connection, and waits, bounded, until it accepts TCP. The port is found
/// free first, so another program may take it: then ncat exits and we try
/// another, a few times.
fn start_ncat_server(cert: &Path, key: &Path) -> Result<(Spawned, SocketAddr), String> {
    const ATTEMPTS: usize = 5;
    let mut last_error = String::new();
    for _ in 0..ATTEMPTS {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port(Transport::Tcp)?));
        let mut command = Command::new("ncat");
        command
            .args(["--ssl", "--ssl-cert"])
            .arg(cert)
            .arg("--ssl-key")
            .arg(key)
            .args(["-l", "127.0.0.1", &addr.port().to_string()])
            .args(["--sh-exec", "stdbuf -oL tr a-z A-Z"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut server = Spawned::start("ncat --ssl -l", &mut command)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        // ncat prints nothing when ready; a probe connection would use up
        // its one connection, so wait for the port to show as listening.
        while Instant::now() < deadline {
            if server.try_wait()?.is_some() {
                break;
            }
            if is_listening(addr)? {
                return Ok((server, addr));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        last_error = format!("not listening on {addr}; {}", server.stderr_tail());
    }
    Err(format!(
        "ncat --ssl -l did not start in {ATTEMPTS} attempts: {last_error}"
    ))
}

/// Whether a TCP socket listens on `addr`, from /proc/net/tcp (state 0A),
/// without connecting to it.
fn is_listening(addr: SocketAddr) -> Result<bool, String> {
    let table = std::fs::read_to_string("/proc/net/tcp")
        .map_err(|error| format!("cannot read /proc/net/tcp: {error}"))?;
    let local = format!("0100007F:{:04X}", addr.port());
    Ok(table.lines().skip(1).any(|row| {
        let fields: Vec<&str> = row.split_whitespace().collect();
        fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A")
    }))
}

/// `shout tcp --tls` gets the uppercase from an `ncat --ssl -l` server
/// running `tr`, and refuses shoutd's certificate when it is not the CA
/// given: exit 7, "unknown issuer".
pub(crate) fn shout_vs_tls_servers(env: &Env) -> Result<Outcome, String> {
    let dir = TempDir::new("shout-vs-tls-servers")?;
    let (cert, key) = openssl_cert(&dir.0, "ncat")?;
    let (ncat, addr) = start_ncat_server(&cert, &key)?;
    // ncat ends the connection on the client's close_notify without
    // waiting for its command's output, so shout's input stays open until
    // the answer is in; `stdbuf -oL` makes tr answer each line at once.
    // tr knows ASCII only.
    let line = "hello from shout over tls\n";
    expect_uppercase("shout tcp --tls", &mut shout_tls(env, &cert, addr)?, line)
        .map_err(|error| format!("{error}; {}", ncat.stderr_tail()))?;

    // shoutd's own certificate is not signed by the one given as --ca.
    let mut server = TlsShoutd::start(env, &dir.0)?;
    let finished = run_with_input(
        "shout tcp --tls",
        &mut shout_tls(env, &cert, server.tls)?,
        b"never sent\n",
        CLIENT_TIMEOUT,
    )?;
    let refused = finished.status.code() == Some(7)
        && finished.stderr.contains("unknown issuer")
        && finished.stdout.is_empty();
    if !refused {
        return Err(format!(
            "shout tcp --tls with another CA: expected exit 7, no output and \"unknown \
             issuer\" on stderr, got {} with stdout {} and stderr: {}",
            finished.status,
            quote(&finished.stdout),
            one_line_tail(&finished.stderr, 300)
        ));
    }
    server.check_alive()?;
    Ok(Outcome::Pass(Some(one_line_tail(&finished.stderr, 120))))
}

/// A plaintext client on the TLS port gets an alert or a close within the
/// handshake deadline, and shoutd serves a TLS client after it.
pub(crate) fn plaintext_on_tls(env: &Env) -> Result<Outcome, String> {
    let dir = TempDir::new("tls-plaintext")?;
    let mut server = TlsShoutd::start(env, &dir.0)?;
    let limit = Duration::from_secs(HANDSHAKE_TIMEOUT_SECS + 2);
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.tls)
        .map_err(|error| format!("cannot connect to {}: {error}", server.tls))?;
    stream
        .set_read_timeout(Some(limit))
        .and_then(|()| stream.set_write_timeout(Some(limit)))
        .and_then(|()| stream.write_all(b"hello\n"))
        .map_err(|error| format!("cannot send plaintext to {}: {error}", server.tls))?;
    let mut received = Vec::new();
    let mut buffer = [0; 512];
    // Bounded: every read waits at most `limit`, and the total is checked.
    let ended = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break "EOF".to_owned(),
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error)
                if error.kind() == std::io::ErrorKind::WouldBlock
                    || error.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(format!(
                    "a plaintext client was neither answered nor closed within {} s (got {})",
                    limit.as_secs(),
                    quote(&received)
                ));
            }
            Err(error) => break format!("{error}"),
        }
        if started.elapsed() > limit || received.len() > 64 * 1024 {
            return Err(format!(
                "a plaintext client kept getting data: {}",
                quote(&received)
            ));
        }
    };
    let elapsed = started.elapsed();
    // A TLS alert record: content type 21, then a version.
    let alert = received.first() == Some(&21);
    if !received.is_empty() && !alert {
        return Err(format!(
            "a plaintext client got {} before {ended}, not a TLS alert",
            quote(&received)
        ));
    }
    server.check_alive()?;
    let line = "after the plaintext client — ǆ\n";
    run_with_input(
        "shout tcp --tls",
        &mut shout_tls(env, &server.cert, server.tls)?,
        line.as_bytes(),
        CLIENT_TIMEOUT,
    )?
    .expect(
        "shout tcp --tls after plaintext",
        line.to_uppercase().as_bytes(),
    )?;
    Ok(Outcome::Pass(Some(format!(
        "plaintext got {} then {ended} in {:.2} s",
        if alert {
            format!("an alert ({} bytes)", received.len())
        } else {
            "nothing".to_owned()
        },
        elapsed.as_secs_f64()
    ))))
}
