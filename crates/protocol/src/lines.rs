//! Lines out of a byte stream, for the services that speak in lines
//! (shout's own protocol has none). Sans-io: fed the bytes as they arrive,
//! cut anywhere, it hands back whole lines; a line longer than its maximum
//! is reported once and skipped up to its newline, so a client cannot make
//! it hold more than the maximum.

/// What [`LineFramer::next_frame`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole line, without its `\n`. A `\r` before it is kept: the
    /// framer cuts at `\n` only.
    Line(&'a [u8]),
    /// A line longer than the maximum. It is reported once, as soon as it
    /// is known to be too long (its `\n` may not have come yet); its bytes
    /// up to and including its `\n` are skipped.
    TooLong,
}

/// Cuts a byte stream into lines of at most a maximum length, newline
/// excluded.
///
/// It holds the start of an unfinished line, never more than the maximum.
/// A line that arrives whole in one input is handed out from the input,
/// without a copy.
///
/// ```
/// use shout_protocol::{Frame, LineFramer};
///
/// let mut framer = LineFramer::new(8);
/// let mut input: &[u8] = b"GET a\nSET b";
/// assert_eq!(framer.next_frame(&mut input), Some(Frame::Line(b"GET a")));
/// assert_eq!(framer.next_frame(&mut input), None); // `SET b` is held
/// let mut input: &[u8] = b" 1\nfar too long\nQUIT\n";
/// assert_eq!(framer.next_frame(&mut input), Some(Frame::Line(b"SET b 1")));
/// assert_eq!(framer.next_frame(&mut input), Some(Frame::TooLong));
/// assert_eq!(framer.next_frame(&mut input), Some(Frame::Line(b"QUIT")));
/// assert_eq!(framer.next_frame(&mut input), None);
/// ```
#[derive(Debug, Clone)]
pub struct LineFramer {
    max_line: usize,
    /// The start of a line whose `\n` has not come: at most `max_line`
    /// bytes.
    held: Vec<u8>,
    /// `held` was handed out as a whole line: it is cleared first thing.
    handed_out: bool,
    /// Inside a line reported too long: skip up to its `\n`.
    skipping: bool,
}

impl LineFramer {
    /// Returns a framer of lines of up to `max_line` bytes, newline
    /// excluded.
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            held: Vec::new(),
            handed_out: false,
            skipping: false,
        }
    }

    /// Returns the longest line it hands out, newline excluded.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Returns the start of the unfinished line it holds: what the stream
    /// ended with, if it ends now.
    pub fn unfinished(&self) -> &[u8] {
        if self.handed_out { &[] } else { &self.held }
    }

    /// Takes bytes from the front of `input`, the next bytes of the stream,
    /// until a frame is complete, and returns it. Returns `None` once all
    /// of `input` is taken; the start of an unfinished line is held for
    /// the next call.
    ///
    /// Call it until `None` for each input. Stopping early leaves the rest
    /// in `input`, to feed later or to drop (a service that closes the
    /// connection on a line drops what follows it).
    pub fn next_frame<'s, 'a: 's>(&'s mut self, input: &mut &'a [u8]) -> Option<Frame<'s>> {
        if self.handed_out {
            self.held.clear();
            self.handed_out = false;
        }
        loop {
            let bytes: &'a [u8] = input;
            if bytes.is_empty() {
                return None;
            }
            let newline = bytes.iter().position(|&byte| byte == b'\n');
            if self.skipping {
                let Some(end) = newline else {
                    *input = &[];
                    return None;
                };
                *input = &bytes[end + 1..];
                self.skipping = false;
                continue;
            }
            let Some(end) = newline else {
                *input = &[];
                if self.held.len() + bytes.len() > self.max_line {
                    self.held.clear();
                    self.skipping = true;
                    return Some(Frame::TooLong);
                }
                self.held.extend_from_slice(bytes);
                return None;
            };
            let line = &bytes[..end];
            *input = &bytes[end + 1..];
            if self.held.len() + line.len() > self.max_line {
                self.held.clear();
                return Some(Frame::TooLong);
            }
            if self.held.is_empty() {
                return Some(Frame::Line(line));
            }
            self.held.extend_from_slice(line);
            self.handed_out = true;
            return Some(Frame::Line(&self.held));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds each of `inputs` in turn; returns every frame, owned.
    fn frames(framer: &mut LineFramer, inputs: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        let mut all = Vec::new();
        for &input in inputs {
            let mut input = input;
            while let Some(frame) = framer.next_frame(&mut input) {
                all.push(match frame {
                    Frame::Line(line) => Some(line.to_vec()),
                    Frame::TooLong => None,
                });
            }
        }
        all
    }

    fn line(text: &str) -> Option<Vec<u8>> {
        Some(text.as_bytes().to_vec())
    }

    #[test]
    fn a_line_of_the_maximum_passes_and_one_byte_more_is_too_long() {
        let mut framer = LineFramer::new(4);
        assert_eq!(
            frames(&mut framer, &[b"abcd\nabcde\nok\n"]),
            [line("abcd"), None, line("ok")]
        );
        // The same, cut inside the lines: the held part counts.
        let mut framer = LineFramer::new(4);
        assert_eq!(
            frames(&mut framer, &[b"ab", b"cd", b"\nabc", b"de", b"\nok\n"]),
            [line("abcd"), None, line("ok")]
        );
    }

    #[test]
    fn a_line_too_long_is_told_at_once_and_skipped_to_its_newline() {
        let mut framer = LineFramer::new(3);
        let mut input: &[u8] = b"toolong";
        assert_eq!(framer.next_frame(&mut input), Some(Frame::TooLong));
        assert!(input.is_empty());
        assert_eq!(framer.unfinished(), b"", "nothing of it is held");
        // Its rest is skipped, however long, and told no more.
        assert!(frames(&mut framer, &[b"still", b" more"]).is_empty());
        assert_eq!(frames(&mut framer, &[b"end\nnew\nab"]), [line("new")]);
        assert_eq!(framer.unfinished(), b"ab");
    }

    #[test]
    fn a_line_whole_in_its_input_is_handed_out_from_it() {
        let mut framer = LineFramer::new(16);
        let data = b"hello\r\nrest";
        let mut input: &[u8] = data;
        let Some(Frame::Line(got)) = framer.next_frame(&mut input) else {
            panic!("a line");
        };
        assert_eq!(got, b"hello\r", "only the \\n is cut");
        assert!(std::ptr::eq(got.as_ptr(), data.as_ptr()), "not copied");
        assert_eq!(framer.next_frame(&mut input), None);
        assert_eq!(framer.unfinished(), b"rest");
    }

    #[test]
    fn empty_lines_and_empty_inputs() {
        let mut framer = LineFramer::new(0);
        assert_eq!(
            frames(&mut framer, &[b"", b"\n\n", b"", b"x\n\n"]),
            [line(""), line(""), None, line("")]
        );
    }

    #[test]
    fn stopping_early_leaves_the_rest_in_the_input() {
        let mut framer = LineFramer::new(8);
        let mut input: &[u8] = b"QUIT\nSET a 1\n";
        assert_eq!(framer.next_frame(&mut input), Some(Frame::Line(b"QUIT")));
        assert_eq!(input, b"SET a 1\n");
    }
}
