//! `shout tcp`, `shout tcp --quic` and `shout ws` stream any size in
//! constant memory: 1 GiB piped through `shout tcp` to an in-test
//! uppercase server, 128 MiB through the QUIC and WebSocket clients to
//! shout-server's listeners, each client's peak resident size watched.

use crate::quic::QuicServer;
use crate::support::{DEADLINE, UppercaseServer, spawn_piped, wait_bounded};
use crate::tls::{LOCAL_NAMES, Pki};
use crate::ws::WsServer;
use shout_testkit::{heavy_test, join_within};
use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

/// What is piped through `shout tcp`: 1 GiB.
const TOTAL: u64 = 1 << 30;

/// What is piped through the QUIC and WebSocket clients: 128 MiB, four
/// times the bound, in a few seconds of the test profile.
const LAYERED_TOTAL: u64 = 128 << 20;

/// The line repeated, newline included.
const LINE: &[u8] = b"constant memory, 1 GiB of lines: abc xyz\n";

/// Lines repeated `times` times.
fn lines(line: &[u8], times: usize) -> Vec<u8> {
    line.repeat(times)
}

/// The bound on the client's peak resident size (VmHWM). A client that
/// kept what it read, or what it has yet to write, would need as much as
/// was piped (128 MiB at least, four times the bound); a streaming one needs a few MiB (buffers, the binary, the allocator).
const PEAK_BOUND_KIB: u64 = 32 * 1024;

/// The peak resident size of process `pid`, in KiB, while it runs.
fn peak_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn a_gibibyte_streams_through_in_constant_memory() {
    let _heavy = heavy_test();
    let server = UppercaseServer::start();
    let (elapsed, peak) = pipe_and_watch(&["tcp", &server.addr.to_string()], TOTAL);
    eprintln!("shout tcp: 1 GiB in {elapsed:?}, peak resident {peak} KiB");
}

#[test]
fn quic_streams_through_in_constant_memory() {
    let _heavy = heavy_test();
    let pki = Pki::new("quic-memory", LOCAL_NAMES, false);
    let server = QuicServer::start(&pki);
    let args = ["tcp", "--quic", "--ca", &pki.ca_arg(), &server.target()];
    let (elapsed, peak) = pipe_and_watch(&args, LAYERED_TOTAL);
    eprintln!("shout tcp --quic: 128 MiB in {elapsed:?}, peak resident {peak} KiB");
}

#[test]
fn websocket_streams_through_in_constant_memory() {
    let _heavy = heavy_test();
    let server = WsServer::plain();
    let url = format!("ws://127.0.0.1:{}/ws", server.port());
    let (elapsed, peak) = pipe_and_watch(&["ws", &url], LAYERED_TOTAL);
    eprintln!("shout ws: 128 MiB in {elapsed:?}, peak resident {peak} KiB");
}

/// Pipes `total` bytes of [`LINE`] through `shout ARGS`, checks the
/// answer is their uppercase byte for byte and the exit status 0, and
/// asserts the client's peak resident size stayed under
/// [`PEAK_BOUND_KIB`]. Returns the time taken and the peak, in KiB.
fn pipe_and_watch(args: &[&str], total: u64) -> (Duration, u64) {
    let mut child = spawn_piped(args);
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let writer = thread::spawn(move || {
        // Whole lines, so that the stream is the line repeated.
        let chunk = lines(LINE, 1600);
        let mut written = 0u64;
        while written < total {
            let len = usize::try_from((total - written).min(chunk.len() as u64)).unwrap();
            if stdin.write_all(&chunk[..len]).is_err() {
                break;
            }
            written += len as u64;
        }
        written
    });
    // Reads the answer, checking it is the ASCII uppercase of the input
    // (no byte of it is affected by Unicode case rules), and samples the
    // peak resident size on the way.
    // One read's worth and a line more, so that any line offset fits.
    let expected = lines(&LINE.to_ascii_uppercase(), 64 * 1024 / LINE.len() + 2);
    let line_len = LINE.len() as u64;
    let started = Instant::now();
    let mut read = 0u64;
    let mut peak = 0u64;
    let mut buf = vec![0; 64 * 1024];
    let mut last_sample = Instant::now();
    // Bounded: every read moves at least one byte of `total`, and time is
    // bounded by the nextest timeout and the check below.
    while started.elapsed() < Duration::from_secs(240) {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let offset = usize::try_from(read % line_len).unwrap();
        assert!(
            buf[..n] == expected[offset..offset + n],
            "shout {args:?}: the answer differs from the input's uppercase near byte {read}"
        );
        read += n as u64;
        if last_sample.elapsed() > Duration::from_millis(20) {
            peak = peak.max(peak_kib(pid).unwrap_or(0));
            last_sample = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    let written = join_within(writer, DEADLINE).expect("the writer ends");
    let code = wait_bounded(&mut child, args);
    assert_eq!(written, total);
    assert_eq!(read, total, "shout {args:?}: the whole answer came back");
    assert_eq!(code, Some(0));
    assert!(peak > 0, "the peak resident size was read");
    assert!(
        peak < PEAK_BOUND_KIB,
        "shout {args:?} peaked at {peak} KiB resident for {total} bytes piped, over {PEAK_BOUND_KIB} KiB"
    );
    (elapsed, peak)
}
