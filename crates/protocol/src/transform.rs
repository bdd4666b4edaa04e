//! The streaming uppercase transform.
//!
//! Text is UTF-8 and the mapping is Unicode's default full upper-case mapping,
//! the one `str::to_uppercase` applies (`ß` → `SS`, `ﬁ` → `FI`). Bytes that are
//! not valid UTF-8 pass through unchanged. Input may arrive cut anywhere, even
//! inside a character; the output never depends on where the cuts fall.
//!
//! Invalid input is split the way `std::str::from_utf8` splits it (the
//! "maximal subpart" rule of Unicode §3.9): a lead byte followed by a valid but
//! unfinished prefix is one invalid run, and decoding resumes at the byte that
//! broke it. The transform holds at most three bytes of an unfinished character
//! between calls, so its own state is constant-size.

/// The largest UTF-8 sequence, in bytes.
const MAX_UTF8_LEN: usize = 4;

/// Block size of the ASCII fast path. Large enough that checking a block is a
/// few vector instructions, small enough that a non-ASCII byte is found soon.
const ASCII_BLOCK: usize = 32;

/// Uppercases a byte stream that arrives in chunks of any size.
///
/// Feed chunks with [`Uppercaser::feed`]; each call appends to `out` the upper
/// case of every complete character seen so far. A character cut at the end of
/// a chunk is held (at most three bytes) until the next chunk completes it.
/// [`Uppercaser::finish`] flushes a held, never-completed sequence unchanged.
///
/// The transform never loses, reorders or invents a byte of invalid input, and
/// never panics.
///
/// ```
/// use shout_protocol::Uppercaser;
///
/// let mut upper = Uppercaser::new();
/// let mut out = Vec::new();
/// // "straße" with the two bytes of `ß` split across chunks.
/// upper.feed(b"stra\xC3", &mut out);
/// upper.feed(b"\x9Fe", &mut out);
/// upper.finish(&mut out);
/// assert_eq!(out, "STRASSE".as_bytes());
/// ```
#[derive(Debug, Default, Clone)]
pub struct Uppercaser {
    /// The start of a character whose remaining bytes have not arrived yet.
    /// Always a valid, unfinished UTF-8 prefix (1 to 3 bytes) or empty.
    held: [u8; MAX_UTF8_LEN],
    held_len: u8,
}

impl Uppercaser {
    /// A transform at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether bytes of an unfinished character are held, waiting for the rest.
    pub fn has_pending(&self) -> bool {
        self.held_len > 0
    }

    /// Transforms the next chunk of the stream, appending the result to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if self.held_len > 0 {
            input = self.complete_held(input, out);
        }
        out.reserve(input.len());
        loop {
            match std::str::from_utf8(input) {
                Ok(text) => {
                    uppercase_str(text, out);
                    return;
                }
                Err(error) => {
                    let (valid, rest) = input.split_at(error.valid_up_to());
                    // `valid_up_to` vouches for this prefix, so the fallback never runs.
                    uppercase_str(std::str::from_utf8(valid).unwrap_or_default(), out);
                    match error.error_len() {
                        Some(invalid_len) => {
                            out.extend_from_slice(&rest[..invalid_len]);
                            input = &rest[invalid_len..];
                        }
                        None => {
                            // A valid prefix cut by the end of the chunk: keep it.
                            self.held[..rest.len()].copy_from_slice(rest);
                            self.held_len = rest.len() as u8;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: a held, unfinished sequence is invalid UTF-8 and is
    /// appended unchanged. The transform is then ready for a new stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.held[..usize::from(self.held_len)]);
        self.held_len = 0;
    }

    /// Feeds bytes into the held prefix until it becomes a character, turns out
    /// invalid, or the input ends. Returns the input not consumed.
    fn complete_held<'a>(&mut self, mut input: &'a [u8], out: &mut Vec<u8>) -> &'a [u8] {
        while let Some((&next, rest)) = input.split_first() {
            let held_len = usize::from(self.held_len);
            if !continues_sequence(&self.held[..held_len], next) {
                // The held bytes were an invalid run; `next` starts afresh.
                out.extend_from_slice(&self.held[..held_len]);
                self.held_len = 0;
                return input;
            }
            self.held[held_len] = next;
            self.held_len += 1;
            input = rest;
            let candidate = &self.held[..held_len + 1];
            if candidate.len() == sequence_len(candidate[0]) {
                if let Ok(text) = std::str::from_utf8(candidate) {
                    uppercase_str(text, out);
                } else {
                    // Unreachable by construction of `continues_sequence`, but a
                    // wrong answer here must still not lose bytes.
                    out.extend_from_slice(candidate);
                }
                self.held_len = 0;
                return input;
            }
        }
        input
    }
}

/// Uppercases a whole input at once; the same as one [`Uppercaser::feed`]
/// followed by [`Uppercaser::finish`].
pub fn uppercase(input: &[u8], out: &mut Vec<u8>) {
    let mut upper = Uppercaser::new();
    upper.feed(input, out);
    upper.finish(out);
}

/// The length in bytes of the uppercase of `input`, without building it.
///
/// Clients use this to refuse, before sending, a datagram whose reply could
/// not fit in one datagram.
pub fn uppercased_len(input: &[u8]) -> usize {
    let mut len = 0;
    for chunk in input.utf8_chunks() {
        len += chunk
            .valid()
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    1
                } else {
                    c.to_uppercase().map(char::len_utf8).sum()
                }
            })
            .sum::<usize>();
        len += chunk.invalid().len();
    }
    len
}

/// Appends the uppercase of valid text, with a fast path for ASCII runs.
fn uppercase_str(text: &str, out: &mut Vec<u8>) {
    let mut rest = text;
    loop {
        let ascii = ascii_prefix_len(rest.as_bytes());
        // A plain map over a slice: the compiler vectorises this loop.
        out.extend(rest.as_bytes()[..ascii].iter().map(u8::to_ascii_uppercase));
        rest = &rest[ascii..];
        let non_ascii = rest.find(|c: char| c.is_ascii()).unwrap_or(rest.len());
        if non_ascii == 0 {
            return;
        }
        let mut buf = [0; MAX_UTF8_LEN];
        for c in rest[..non_ascii].chars().flat_map(char::to_uppercase) {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        rest = &rest[non_ascii..];
    }
}

/// How many bytes at the start of `bytes` are ASCII, checked a block at a time.
fn ascii_prefix_len(bytes: &[u8]) -> usize {
    let mut len = 0;
    for block in bytes.chunks_exact(ASCII_BLOCK) {
        if !block.is_ascii() {
            break;
        }
        len += ASCII_BLOCK;
    }
    len + bytes[len..].iter().take_while(|b| b.is_ascii()).count()
}

/// The length of the UTF-8 sequence a lead byte announces (1 for anything
/// that cannot lead one: such a byte is never held).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// Whether `next` may follow the valid, unfinished prefix `held`.
///
/// The second byte of some sequences has a narrower range than 0x80..=0xBF:
/// this excludes overlong forms (E0, F0), surrogates (ED) and code points
/// beyond U+10FFFF (F4), exactly as `from_utf8` does.
fn continues_sequence(held: &[u8], next: u8) -> bool {
    let second_byte_range = match held[0] {
        0xE0 => 0xA0..=0xBF,
        0xED => 0x80..=0x9F,
        0xF0 => 0x90..=0xBF,
        0xF4 => 0x80..=0x8F,
        _ => 0x80..=0xBF,
    };
    if held.len() == 1 {
        second_byte_range.contains(&next)
    } else {
        (0x80..=0xBF).contains(&next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(chunks: &[&[u8]]) -> Vec<u8> {
        let mut upper = Uppercaser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            upper.feed(chunk, &mut out);
        }
        upper.finish(&mut out);
        out
    }

    fn whole(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        uppercase(input, &mut out);
        out
    }

    #[test]
    fn ascii_and_the_lecture_sentence() {
        assert_eq!(whole(b"hello, world 123\n"), b"HELLO, WORLD 123\n");
        assert_eq!(whole(&[b'a'; 100]), vec![b'A'; 100]);
    }

    #[test]
    fn unicode_full_mapping() {
        for (input, expected) in [
            ("straße", "STRASSE"),
            ("ﬁne", "FINE"),
            ("ǰ", "J\u{30C}"),
            ("ΐ", "\u{399}\u{308}\u{301}"),
            ("émile zola", "ÉMILE ZOLA"),
            ("日本語", "日本語"),
            ("🦀 rust", "🦀 RUST"),
        ] {
            assert_eq!(whole(input.as_bytes()), expected.as_bytes(), "{input}");
        }
    }

    #[test]
    fn every_width_split_at_every_position() {
        for text in ["aé", "ß!", "ﬁx", "€", "𝔞z", "🦀", "ΐΐ", "ǰ"] {
            let bytes = text.as_bytes();
            let expected = text.to_uppercase();
            for cut in 0..=bytes.len() {
                let (a, b) = bytes.split_at(cut);
                assert_eq!(stream(&[a, b]), expected.as_bytes(), "{text} cut at {cut}");
            }
            // One byte per chunk, the worst case.
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(stream(&singles), expected.as_bytes(), "{text} byte by byte");
        }
    }

    #[test]
    fn three_times_expansion_is_the_maximum() {
        let mut worst = 0.0f64;
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let grown: usize = c.to_uppercase().map(char::len_utf8).sum();
            worst = worst.max(grown as f64 / c.len_utf8() as f64);
        }
        assert_eq!(worst, MAX_EXPANSION_F64);
        let input = "ΐ".repeat(1000);
        assert_eq!(whole(input.as_bytes()).len(), input.len() * 3);
    }
    const MAX_EXPANSION_F64: f64 = crate::MAX_EXPANSION as f64;

    #[test]
    fn nul_crlf_and_empty() {
        assert_eq!(whole(b""), b"");
        assert_eq!(stream(&[b"", b"", b""]), b"");
        assert_eq!(whole(b"a\0b"), b"A\0B");
        assert_eq!(whole(b"one\r\ntwo\rthree\n"), b"ONE\r\nTWO\rTHREE\n");
    }

    #[test]
    fn invalid_bytes_pass_through() {
        let cases: &[&[u8]] = &[
            b"\xFF",
            b"a\x80b",                // lone continuation byte
            b"\xC0\xAFx",             // overlong '/'
            b"\xE0\x80\x80",          // overlong NUL
            b"\xED\xA0\x80z",         // surrogate U+D800
            b"\xF4\x90\x80\x80",      // beyond U+10FFFF
            b"\xE2\x82",              // truncated at end
            b"\xF0\x9F\xA6",          // truncated 4-byte
            b"\xE2\x82x\xE2\x82\xAC", // broken then whole euro
        ];
        for &case in cases {
            let mut expected = Vec::new();
            for chunk in case.utf8_chunks() {
                expected.extend_from_slice(chunk.valid().to_uppercase().as_bytes());
                expected.extend_from_slice(chunk.invalid());
            }
            assert_eq!(whole(case), expected, "{case:?}");
            for cut in 0..=case.len() {
                let (a, b) = case.split_at(cut);
                assert_eq!(stream(&[a, b]), expected, "{case:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn finish_flushes_and_resets() {
        let mut upper = Uppercaser::new();
        let mut out = Vec::new();
        upper.feed(b"ok\xE2\x82", &mut out);
        assert!(upper.has_pending());
        assert_eq!(out, b"OK");
        upper.finish(&mut out);
        assert_eq!(out, b"OK\xE2\x82");
        assert!(!upper.has_pending());
        upper.feed(b"\xAC", &mut out);
        upper.finish(&mut out);
        assert_eq!(
            out, b"OK\xE2\x82\xAC",
            "a new stream does not remember the old one"
        );
    }

    #[test]
    fn uppercased_len_matches_the_transform() {
        for input in [&b"abc"[..], "straße ΐ 🦀".as_bytes(), b"\xFF\xE2\x82x"] {
            assert_eq!(uppercased_len(input), whole(input).len());
        }
    }
}
