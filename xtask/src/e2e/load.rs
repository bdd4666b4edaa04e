//! Scenarios under volume: one very long stream, and many clients at once.

use super::gate::Gate;
use super::process::{Shoutd, Spawned, join_within};
use super::text::{Fnv, TextSource};
use super::{Env, Outcome};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The size of the long stream.
const STREAM_BYTES: usize = 100 * 1024 * 1024;

/// 100 MiB of Unicode lines piped through `shout tcp`; the output must be
/// the uppercase of the input, compared by length and hash as it streams.
pub(crate) fn stream_100mib(env: &Env) -> Result<Outcome, String> {
    let shoutd = Shoutd::start(env)?;
    let mut command = env.shout()?;
    command
        .arg("tcp")
        .arg(shoutd.tcp.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let started = Instant::now();
    let mut shout = Spawned::start("shout", &mut command)?;
    let mut stdin = shout.take_stdin().expect("stdin is piped");
    let mut stdout = shout.take_stdout().expect("stdout is piped");

    // The writer computes what should come back while it writes.
    let writer = std::thread::spawn(move || -> Result<(Fnv, Fnv), String> {
        let mut source = TextSource::new(100);
        let (mut sent, mut expected) = (Fnv::new(), Fnv::new());
        while (sent.len() as usize) < STREAM_BYTES {
            let chunk = source.text(64 * 1024);
            stdin
                .write_all(chunk.as_bytes())
                .map_err(|error| format!("writing to shout failed after {sent}: {error}"))?;
            sent.update(chunk.as_bytes());
            expected.update(chunk.to_uppercase().as_bytes());
        }
        // Dropping stdin closes it: shout sends its end of stream.
        Ok((sent, expected))
    });
    let reader = std::thread::spawn(move || -> Result<Fnv, String> {
        let mut got = Fnv::new();
        let mut buffer = vec![0; 256 * 1024];
        loop {
            match stdout.read(&mut buffer) {
                Ok(0) => return Ok(got),
                Ok(read) => got.update(&buffer[..read]),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    return Err(format!(
                        "reading shout's output failed after {got}: {error}"
                    ));
                }
            }
        }
    });

    let status = shout.wait_timeout(Duration::from_secs(150))?;
    let elapsed = started.elapsed();
    let got = join_within(reader, Duration::from_secs(5))
        .ok_or("shout exited but its output did not end")??;
    let (sent, expected) = join_within(writer, Duration::from_secs(5))
        .ok_or("shout exited without reading all its input")??;
    if !status.success() {
        return Err(format!(
            "shout tcp exited with {status} after reading {sent} and writing {got}; {}",
            shout.stderr_tail()
        ));
    }
    if got != expected {
        return Err(format!(
            "shout tcp: sent {sent}, expected back {expected}, got {got}"
        ));
    }
    let mib = sent.len() as f64 / (1024.0 * 1024.0);
    Ok(Outcome::Pass(Some(format!(
        "{mib:.0} MiB in {:.1} s, {:.0} MiB/s; {got}",
        elapsed.as_secs_f64(),
        mib / elapsed.as_secs_f64()
    ))))
}

/// How many clients [`concurrent_500`] runs at once.
const CLIENTS: usize = 500;

/// 500 clients connect, then all send their own text at once, half-close,
/// and read their answer to the end.
pub(crate) fn concurrent_500(env: &Env) -> Result<Outcome, String> {
    let shoutd = Shoutd::start(env)?;
    let start = Arc::new(Gate::default());
    let connected = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::with_capacity(CLIENTS);
    for id in 0..CLIENTS {
        let (gate, connected, addr) = (Arc::clone(&start), Arc::clone(&connected), shoutd.tcp);
        let client = std::thread::Builder::new()
            .name(format!("client-{id}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                let stream = connect(addr);
                connected.fetch_add(1, Ordering::SeqCst);
                // All connect first, then all talk at once.
                if !gate.wait(Duration::from_secs(40)) {
                    return Err(format!("client {id}: the start signal never came"));
                }
                let text = format!("client {id}\n{}", TextSource::new(id as u64).text(2048));
                exchange(stream?, text.as_bytes())
                    .and_then(|answer| check_answer(&text, &answer))
                    .map_err(|error| format!("client {id}: {error}"))
            });
        match client {
            Ok(client) => clients.push(client),
            Err(error) => {
                start.open();
                return Err(format!("cannot start client thread {id}: {error}"));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while connected.load(Ordering::SeqCst) < CLIENTS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    start.open();
    let failures: Vec<String> = clients
        .into_iter()
        .filter_map(|client| match client.join() {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error),
            Err(_) => Some("a client thread panicked".into()),
        })
        .collect();
    if failures.is_empty() {
        Ok(Outcome::Pass(Some(format!("{CLIENTS} answers checked"))))
    } else {
        Err(format!(
            "{} of {CLIENTS} clients failed, e.g. {}; {}",
            failures.len(),
            failures[..failures.len().min(3)].join("; "),
            shoutd.process.stderr_tail()
        ))
    }
}

/// Connects with timeouts on everything, so that no client waits forever.
pub(crate) fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|error| format!("connect to {addr}: {error}"))?;
    for result in [
        stream.set_read_timeout(Some(Duration::from_secs(30))),
        stream.set_write_timeout(Some(Duration::from_secs(30))),
    ] {
        result.map_err(|error| format!("set a socket timeout: {error}"))?;
    }
    Ok(stream)
}

/// Sends `request`, half-closes, reads the answer to the end.
pub(crate) fn exchange(mut stream: TcpStream, request: &[u8]) -> Result<Vec<u8>, String> {
    stream
        .write_all(request)
        .map_err(|error| format!("write: {error}"))?;
    stream
        .shutdown(Shutdown::Write)
        .map_err(|error| format!("shutdown: {error}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|error| format!("read after {} bytes: {error}", answer.len()))?;
    Ok(answer)
}

/// The answer must be the uppercase of the text, exactly.
pub(crate) fn check_answer(text: &str, answer: &[u8]) -> Result<(), String> {
    let expected = text.to_uppercase();
    if answer == expected.as_bytes() {
        return Ok(());
    }
    let at = answer
        .iter()
        .zip(expected.as_bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(answer.len().min(expected.len()));
    Err(format!(
        "answer of {} bytes differs from the {} expected at byte {at}",
        answer.len(),
        expected.len()
    ))
}
