//! The line loop that TCP's interactive mode and UDP share: prompt, read a
//! line, shout it, print the reply, until the input ends.

use crate::ClientError;
use shout_protocol::{LineError, LineReader};
use std::io::{BufRead, Write};

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
}
