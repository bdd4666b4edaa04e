//! The fuzz targets' oracles, as plain functions: the targets in
//! `fuzz_targets/` call them under libFuzzer, and the workspace's tests
//! (`tests/it/fuzz_corpus.rs`) replay the kept corpus through them on the
//! stable toolchain, so every input the fuzzer found interesting stays a
//! regression test in CI.
//!
//! Each function panics when the property does not hold.

use shout_client::{LineError, LineReader};
use shout_protocol::{MAX_EXPANSION, Uppercaser, uppercase, uppercased_len};
use std::io::BufReader;

/// The uppercase by the standard library alone, invalid bytes kept.
fn reference_uppercase(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in input.utf8_chunks() {
        out.extend_from_slice(chunk.valid().to_uppercase().as_bytes());
        out.extend_from_slice(chunk.invalid());
    }
    out
}

/// `shout_protocol::Uppercaser`, the streaming transform.
///
/// Input layout: the first byte `k` (mod 17) says how many cuts follow; the
/// next `k` bytes are the gaps between cuts; the rest is the stream. The
/// stream is fed cut at those places, and:
///
/// 1. the streamed output equals `shout_protocol::uppercase` of the whole;
/// 2. both equal an independent reference built from the standard library:
///    `utf8_chunks`, each valid part `str::to_uppercase`d, each invalid part
///    kept byte for byte (and for valid UTF-8, plainly `str::to_uppercase`);
/// 3. after every cut, the output so far plus what `finish` would flush is
///    the reference of the prefix: the transform answers every complete
///    character at once, holding at most three bytes;
/// 4. `uppercased_len` agrees, and the output is at most 3 × the input.
pub(crate) fn check_uppercaser(data: &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 17).min(rest.len());
    let (gaps, input) = rest.split_at(count);

    let mut upper = Uppercaser::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &gap in gaps {
        let end = (start + usize::from(gap)).min(input.len());
        upper.feed(&input[start..end], &mut out);
        // What the client has after this cut, plus the held bytes that an
        // end of stream here would flush, is the answer to the prefix.
        let mut probe = upper.clone();
        let mut flushed = Vec::new();
        probe.finish(&mut flushed);
        assert!(flushed.len() <= 3, "held {} bytes", flushed.len());
        assert_eq!(flushed.is_empty(), !upper.has_pending());
        let mut so_far = out.clone();
        so_far.extend_from_slice(&flushed);
        assert_eq!(
            so_far,
            reference_uppercase(&input[..end]),
            "prefix of {end} bytes"
        );
        start = end;
    }
    upper.feed(&input[start..], &mut out);
    upper.finish(&mut out);
    assert!(!upper.has_pending());

    let mut whole = Vec::new();
    uppercase(input, &mut whole);
    assert_eq!(out, whole, "the output depends on the cuts");
    assert_eq!(
        whole,
        reference_uppercase(input),
        "differs from the standard library"
    );
    if let Ok(text) = std::str::from_utf8(input) {
        assert_eq!(whole, text.to_uppercase().as_bytes());
    }
    assert_eq!(uppercased_len(input), whole.len());
    assert!(whole.len() <= MAX_EXPANSION * input.len());
}

/// The lines of `input` as the protocol defines them (PROTOCOL.md §5).
fn expected_lines(input: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    // A trailing `\n` ends the last line; it does not start an empty one.
    if lines.last().is_some_and(|last| last.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .collect()
}

/// `shout_client::LineReader`, the client's line reader.
///
/// Input layout: byte 0 chooses the line limit (0 to 63 bytes, so that
/// too-long lines are common), byte 1 the reader's buffer size (1 to 16
/// bytes, so that lines straddle refills); the rest is the input. The input
/// is split on `\n` independently, and:
///
/// - a line within the limit comes back exactly, without its `\n` and
///   without one `\r` before it (or before the end of input);
/// - a line over the limit is reported as `TooLong`, and reading goes on at
///   the next line;
/// - the end of input comes after the last line, never sooner, and stays;
/// - memory is bounded: the line buffer never grows past twice the limit
///   (the `Vec` doubling), whatever the input.
pub(crate) fn check_line_reader(data: &[u8]) {
    let [limit, buffer, input @ ..] = data else {
        return;
    };
    let max_line = usize::from(limit % 64);
    let buffer = usize::from(buffer % 16) + 1;
    let mut reader = LineReader::new(BufReader::with_capacity(buffer, input), max_line);
    let expected: Vec<Result<&[u8], ()>> = expected_lines(input)
        .into_iter()
        .map(|line| {
            if line.len() <= max_line {
                Ok(line)
            } else {
                Err(())
            }
        })
        .collect();
    let mut line = Vec::new();
    let mut got: Vec<Result<Vec<u8>, ()>> = Vec::new();
    // Every read consumes at least one byte or ends: bounded by the input.
    for _ in 0..=input.len() {
        match reader.read_line(&mut line) {
            Ok(true) => got.push(Ok(line.clone())),
            Ok(false) => break,
            Err(LineError::TooLong { max }) => {
                assert_eq!(max, max_line);
                assert!(line.is_empty(), "a skipped line left bytes behind");
                got.push(Err(()));
            }
            Err(LineError::Io(error)) => panic!("a byte slice does not fail: {error}"),
        }
        assert!(
            line.capacity() <= 2 * (max_line + 1).max(8),
            "line buffer grew to {} for a limit of {max_line}",
            line.capacity()
        );
    }
    assert!(
        !reader.read_line(&mut line).unwrap(),
        "end of input is sticky"
    );
    let got: Vec<Result<&[u8], ()>> = got
        .iter()
        .map(|line| line.as_ref().map(Vec::as_slice).map_err(|_| ()))
        .collect();
    // Every line comes back, or is reported too long, in order: the lines
    // joined back are the input's lines, nothing lost or invented.
    assert_eq!(got, expected);
}
