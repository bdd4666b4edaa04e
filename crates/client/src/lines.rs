//! Lines from a keyboard or a pipe: a reader with a bound on a line's
//! length, so that a file with no newline cannot exhaust memory, and the loop
//! that TCP's interactive mode and UDP share (prompt, read a line, shout it,
//! print the reply, until the input ends).
//!
//! Lines are the client's business only: the protocol has none over TCP
//! (PROTOCOL.md §3), and a datagram is a datagram. The reader is generic
//! over [`BufRead`] and does no I/O of its own; the caller brings standard
//! input, a file or a byte slice.

use crate::ClientError;
use std::io::{self, BufRead, Write};

/// The longest line [`LineReader`] accepts by default: 64 KiB, more than one
/// datagram can carry, far more than a sentence.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The underlying reader failed.
    #[error("reading input failed: {0}")]
    Io(#[from] io::Error),
    /// The line was longer than the limit. Its bytes were skipped up to and
    /// including its newline, so the next read returns the next line.
    #[error("line longer than {max} bytes skipped")]
    TooLong {
        /// The limit in force.
        max: usize,
    },
}

/// Reads lines terminated by `\n` (a `\r` before it is dropped too), each at
/// most `max_line` bytes, from any [`BufRead`].
///
/// ```
/// use shout_client::LineReader;
///
/// let mut lines = LineReader::new(&b"hello\r\nworld"[..], 16);
/// let mut line = Vec::new();
/// assert!(lines.read_line(&mut line).unwrap());
/// assert_eq!(line, b"hello");
/// assert!(lines.read_line(&mut line).unwrap());
/// assert_eq!(line, b"world");
/// assert!(!lines.read_line(&mut line).unwrap());
/// ```
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    max_line: usize,
}

impl<R: BufRead> LineReader<R> {
    /// Wraps `inner`, refusing lines longer than `max_line` bytes.
    pub fn new(inner: R, max_line: usize) -> Self {
        Self { inner, max_line }
    }

    /// Returns the limit on a line's length, in bytes, without its terminator.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Returns the wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads the next line into `line` (cleared first), without its `\n` or
    /// `\r\n`.
    ///
    /// Returns `Ok(true)` when a line was read (possibly empty), `Ok(false)` at
    /// the end of input. A last line without a newline is still a line.
    /// Memory held is at most `max_line + 1` bytes whatever the input.
    pub fn read_line(&mut self, line: &mut Vec<u8>) -> Result<bool, LineError> {
        line.clear();
        // One byte of slack for a `\r` that turns out to precede the `\n`.
        let limit = self.max_line.saturating_add(1);
        let mut too_long = false;
        let mut read_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.into()),
            };
            if available.is_empty() {
                break;
            }
            read_any = true;
            let newline = available.iter().position(|&b| b == b'\n');
            let content = &available[..newline.unwrap_or(available.len())];
            if !too_long && line.len() + content.len() <= limit {
                line.extend_from_slice(content);
            } else {
                too_long = true;
                line.clear();
            }
            let consumed = newline.map_or(available.len(), |at| at + 1);
            self.inner.consume(consumed);
            if newline.is_some() {
                break;
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if too_long || line.len() > self.max_line {
            line.clear();
            return Err(LineError::TooLong { max: self.max_line });
        }
        Ok(read_any)
    }
}

/// What a run over input lines did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinesReport {
    /// Lines that were answered and printed.
    pub answered: u64,
    /// Lines that were refused without being sent (too long); each was
    /// reported as a warning when it was met.
    pub skipped: u64,
}

/// What became of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineOutcome {
    Answered,
    Skipped,
}

/// Reads `input` line by line (at most `max_line` bytes each, terminators
/// removed) and hands each to `shout` with its 1-based number. A line over
/// the limit is skipped with a warning. When `prompt` is given, `> ` is
/// written to it before each line, and a newline at the end of input.
pub(crate) fn run_lines<R, W>(
    input: R,
    max_line: usize,
    output: &mut W,
    mut prompt: Option<&mut dyn Write>,
    mut shout: impl FnMut(u64, &[u8], &mut W) -> Result<LineOutcome, ClientError>,
) -> Result<LinesReport, ClientError>
where
    R: BufRead,
    W: Write + ?Sized,
{
    let mut lines = LineReader::new(input, max_line);
    let mut line = Vec::new();
    let mut report = LinesReport::default();
    let mut number = 0u64;
    loop {
        if let Some(prompt) = prompt.as_deref_mut() {
            // A prompt that cannot be shown is no reason to stop answering.
            let _ = prompt.write_all(b"> ").and_then(|()| prompt.flush());
        }
        let outcome = match lines.read_line(&mut line) {
            Ok(false) => break,
            Ok(true) => {
                number += 1;
                shout(number, &line, output)?
            }
            Err(LineError::TooLong { max }) => {
                number += 1;
                log::warn!("line {number} not sent: it is longer than {max} bytes");
                LineOutcome::Skipped
            }
            Err(LineError::Io(error)) => return Err(ClientError::Input(error)),
        };
        match outcome {
            LineOutcome::Answered => {
                report.answered += 1;
                output.flush().map_err(ClientError::Output)?;
            }
            LineOutcome::Skipped => report.skipped += 1,
        }
    }
    if let Some(prompt) = prompt {
        let _ = prompt.write_all(b"\n").and_then(|()| prompt.flush());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_lines(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, usize>> {
        let mut reader = LineReader::new(input, max);
        let mut line = Vec::new();
        let mut lines = Vec::new();
        for _ in 0..=input.len() {
            match reader.read_line(&mut line) {
                Ok(true) => lines.push(Ok(line.clone())),
                Ok(false) => return lines,
                Err(LineError::TooLong { max }) => lines.push(Err(max)),
                Err(LineError::Io(error)) => panic!("slices do not fail: {error}"),
            }
        }
        panic!("more reads than input bytes: the reader does not advance");
    }

    #[test]
    fn splits_on_newlines_and_strips_crlf() {
        let lines = all_lines(b"a\nb\r\n\nlast", 10);
        let expected: Vec<Result<Vec<u8>, usize>> = vec![
            Ok(b"a".to_vec()),
            Ok(b"b".to_vec()),
            Ok(vec![]),
            Ok(b"last".to_vec()),
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn lone_cr_is_content() {
        assert_eq!(all_lines(b"a\rb\n", 10), vec![Ok(b"a\rb".to_vec())]);
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(all_lines(b"", 10).is_empty());
    }

    #[test]
    fn too_long_line_is_skipped_and_reading_goes_on() {
        let lines = all_lines(b"short\nthis one is too long\nok\n", 8);
        assert_eq!(
            lines,
            vec![Ok(b"short".to_vec()), Err(8), Ok(b"ok".to_vec())]
        );
    }

    #[test]
    fn exact_limit_with_crlf_fits() {
        assert_eq!(
            all_lines(b"12345678\r\n", 8),
            vec![Ok(b"12345678".to_vec())]
        );
        assert_eq!(all_lines(b"123456789\n", 8), vec![Err(8)]);
        assert_eq!(all_lines(b"123456789", 8), vec![Err(8)]);
    }

    #[test]
    fn memory_stays_bounded_on_a_long_line_read_in_small_pieces() {
        let input = vec![b'x'; 1 << 20];
        let buffered = io::BufReader::with_capacity(7, &input[..]);
        let mut reader = LineReader::new(buffered, 100);
        let mut line = Vec::new();
        assert!(matches!(
            reader.read_line(&mut line),
            Err(LineError::TooLong { max: 100 })
        ));
        assert!(
            line.capacity() <= 4096,
            "capacity grew to {}",
            line.capacity()
        );
        assert!(!reader.read_line(&mut line).unwrap());
    }

    #[test]
    fn prompts_numbers_and_skips() {
        let mut output = Vec::new();
        let mut prompt = Vec::new();
        let mut seen = Vec::new();
        let report = run_lines(
            &b"one\r\n\nmuch too long\nlast"[..],
            5,
            &mut output,
            Some(&mut prompt),
            |number, line, output| {
                seen.push((number, line.to_vec()));
                output.write_all(line).map_err(ClientError::Output)?;
                Ok(LineOutcome::Answered)
            },
        )
        .unwrap();
        assert_eq!(
            report,
            LinesReport {
                answered: 3,
                skipped: 1
            }
        );
        assert_eq!(
            seen,
            vec![
                (1, b"one".to_vec()),
                (2, b"".to_vec()),
                (4, b"last".to_vec())
            ]
        );
        assert_eq!(output, b"onelast");
        assert_eq!(prompt, b"> > > > > \n");
    }

    /// A reader that hands out at most `step` bytes per `fill_buf`, so lines
    /// straddle buffer boundaries.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.fill_buf()?.len().min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.consume(n);
            Ok(n)
        }
    }

    impl BufRead for Trickle<'_> {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            Ok(&self.data[..self.step.min(self.data.len())])
        }
        fn consume(&mut self, amount: usize) {
            self.data = &self.data[amount..];
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        #[test]
        fn line_reader_gives_back_every_line(
            lines in proptest::collection::vec("[^\n]{0,20}", 0..10),
            step in 1usize..8,
            max in 0usize..24,
        ) {
            let input = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
            let mut reader = LineReader::new(Trickle { data: input.as_bytes(), step }, max);
            let mut line = Vec::new();
            for expected in &lines {
                let expected = expected.strip_suffix('\r').unwrap_or(expected);
                match reader.read_line(&mut line) {
                    Ok(true) => {
                        proptest::prop_assert!(expected.len() <= max);
                        proptest::prop_assert_eq!(&line, expected.as_bytes());
                    }
                    Err(LineError::TooLong { .. }) => proptest::prop_assert!(expected.len() > max),
                    other => proptest::prop_assert!(false, "unexpected {:?}", other),
                }
            }
            proptest::prop_assert!(!reader.read_line(&mut line).unwrap());
        }
    }
}
