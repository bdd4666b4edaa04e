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

/// Block size of the ASCII fast path: four 16-byte words checked with one
/// branch. Short enough that a non-ASCII byte is found soon.
const ASCII_BLOCK: usize = 64;
/// The high bit of every byte of a 16-byte word: set only by non-ASCII bytes.
const HIGH_BITS: u128 = u128::from_ne_bytes([0x80; 16]);

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
        let mut at = 0;
        while let Some(&byte) = input.get(at) {
            if byte.is_ascii() {
                // Bulk conversion pays off only for a run: a lone ASCII byte
                // between accented letters is cheaper pushed as it is.
                if is_ascii_word(&input[at..]) {
                    at += uppercase_ascii_prefix(&input[at..], out);
                } else {
                    out.push(byte.to_ascii_uppercase());
                    at += 1;
                }
                continue;
            }
            match decode(&input[at..]) {
                Decoded::Char(c, len) => {
                    push_uppercase(c, &input[at..at + len], out);
                    at += len;
                }
                Decoded::Invalid(len) => {
                    out.extend_from_slice(&input[at..at + len]);
                    at += len;
                }
                Decoded::Incomplete => {
                    let rest = &input[at..];
                    self.held[..rest.len()].copy_from_slice(rest);
                    self.held_len = rest.len() as u8;
                    return;
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

    /// Completes the held prefix with the first bytes of `input`: into a
    /// character, an invalid run, or a longer held prefix when the input is
    /// too short to tell. Returns the input not consumed.
    fn complete_held<'a>(&mut self, input: &'a [u8], out: &mut Vec<u8>) -> &'a [u8] {
        let held_len = usize::from(self.held_len);
        let mut joined = [0; 2 * MAX_UTF8_LEN];
        let taken = input.len().min(MAX_UTF8_LEN);
        joined[..held_len].copy_from_slice(&self.held[..held_len]);
        joined[held_len..held_len + taken].copy_from_slice(&input[..taken]);
        let joined = &joined[..held_len + taken];
        // The held bytes are a valid prefix, so whatever `decode` decides
        // spans all of them: `len >= held_len` below.
        let len = match decode(joined) {
            Decoded::Char(c, len) => {
                push_uppercase(c, &joined[..len], out);
                len
            }
            Decoded::Invalid(len) => {
                out.extend_from_slice(&joined[..len]);
                len
            }
            Decoded::Incomplete => {
                self.held[..joined.len()].copy_from_slice(joined);
                self.held_len = joined.len() as u8;
                return &[];
            }
        };
        self.held_len = 0;
        &input[len.saturating_sub(held_len)..]
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

/// Uppercases the ASCII bytes at the start of `bytes` and returns how many
/// there were.
///
/// This is the path that must run at memory speed, so it does no
/// per-character decoding: one pass finds the ASCII run a 16-byte word at a
/// time, and one plain map over the run converts it, which the compiler
/// turns into vector instructions writing straight into the vector.
fn uppercase_ascii_prefix(bytes: &[u8], out: &mut Vec<u8>) -> usize {
    // Text that is all ASCII to its end (the usual request) is checked by
    // std's vectorised scan. Otherwise that scan stops at the first
    // non-ASCII byte, and the block scan below finds where.
    let run = if bytes.is_ascii() {
        bytes.len()
    } else {
        ascii_prefix_len(bytes)
    };
    out.extend(bytes[..run].iter().map(u8::to_ascii_uppercase));
    run
}

/// Whether `bytes` starts with 16 ASCII bytes.
fn is_ascii_word(bytes: &[u8]) -> bool {
    bytes
        .first_chunk::<16>()
        .is_some_and(|word| u128::from_ne_bytes(*word) & HIGH_BITS == 0)
}

/// How many bytes at the start of `bytes` are ASCII.
fn ascii_prefix_len(bytes: &[u8]) -> usize {
    let mut len = 0;
    for block in bytes.chunks_exact(ASCII_BLOCK) {
        // OR-ing the words first leaves one branch per block.
        let word = block
            .chunks_exact(16)
            .map(|word| word.try_into().map_or(u128::MAX, u128::from_ne_bytes))
            .fold(0, |all, word| all | word);
        if word & HIGH_BITS != 0 {
            break;
        }
        len += ASCII_BLOCK;
    }
    len + bytes[len..]
        .iter()
        .take_while(|byte| byte.is_ascii())
        .count()
}

/// Appends the upper case of `c`, whose UTF-8 encoding in the input is `raw`.
fn push_uppercase(c: char, raw: &[u8], out: &mut Vec<u8>) {
    match common_uppercase(c) {
        Some(Common::Unchanged) => return push_raw(raw, out),
        Some(Common::Shifted(upper)) => return push_char(upper, out),
        None => {}
    }
    let mut upper = c.to_uppercase();
    if upper.len() == 1 {
        match upper.next() {
            // Most non-ASCII characters (CJK, symbols, capitals) map to
            // themselves: copy their bytes instead of re-encoding.
            Some(same) if same == c => push_raw(raw, out),
            Some(other) => push_char(other, out),
            None => out.extend_from_slice(raw),
        }
    } else {
        upper.for_each(|upper| push_char(upper, out));
    }
}

/// Copies a character's own bytes: its upper case is itself.
fn push_raw(raw: &[u8], out: &mut Vec<u8>) {
    match raw {
        // As in `push_char`: constant lengths copy faster.
        [a, b] => out.extend_from_slice(&[*a, *b]),
        [a, b, c] => out.extend_from_slice(&[*a, *b, *c]),
        _ => out.extend_from_slice(raw),
    }
}

/// The upper case of a character of a common alphabet, when it is one
/// character found by arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Common {
    /// The character is its own upper case (a capital, CJK, Hangul...).
    Unchanged,
    /// The upper case is this one character.
    Shifted(char),
}

/// The upper case of characters of the scripts most text is in (Latin-1,
/// Greek, Cyrillic, CJK, Hangul) without the table search `char::to_uppercase`
/// does, which is most of the cost of non-ASCII text. `None` for everything
/// else, and for the exceptions inside these blocks (`ß` → `SS`, `ÿ` → `Ÿ`,
/// final sigma...): they take `char::to_uppercase`. A unit test checks every
/// `Some` against `char::to_uppercase` for all 1,114,112 code points.
fn common_uppercase(c: char) -> Option<Common> {
    let code = u32::from(c);
    let shifted = |by: u32| char::from_u32(code - by).map(Common::Shifted);
    match code {
        // Latin-1 capitals and ×.
        0xC0..=0xDE => Some(Common::Unchanged),
        // Latin-1 small letters, except ÷ (0xF7), which is not a letter.
        0xE0..=0xF6 | 0xF8..=0xFE => shifted(0x20),
        // Greek capitals.
        0x391..=0x3A9 => Some(Common::Unchanged),
        // Greek small letters, except final sigma (0x3C2 → Σ, 0x3A3).
        0x3B1..=0x3C1 | 0x3C3..=0x3CB => shifted(0x20),
        // Cyrillic capitals.
        0x400..=0x42F => Some(Common::Unchanged),
        // Cyrillic small letters а-я, then ѐ-џ.
        0x430..=0x44F => shifted(0x20),
        0x450..=0x45F => shifted(0x50),
        // Kana, CJK symbols and ideographs, Hangul: no case.
        0x3000..=0x9FFF | 0xAC00..=0xD7A3 => Some(Common::Unchanged),
        _ => None,
    }
}

fn push_char(c: char, out: &mut Vec<u8>) {
    let mut buf = [0; MAX_UTF8_LEN];
    let len = c.encode_utf8(&mut buf).len();
    // Constant lengths let each copy compile to a move, not a memcpy call.
    match len {
        1 => out.push(buf[0]),
        2 => out.extend_from_slice(&buf[..2]),
        3 => out.extend_from_slice(&buf[..3]),
        _ => out.extend_from_slice(&buf),
    }
}

/// One step of UTF-8 decoding at a non-ASCII byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoded {
    /// A well-formed character of this many bytes.
    Char(char, usize),
    /// An ill-formed run of this many bytes (a maximal subpart): pass it on.
    Invalid(usize),
    /// A valid prefix cut by the end of the input.
    Incomplete,
}

/// Decodes the sequence at the start of `bytes` by the rules of
/// `std::str::from_utf8`, so that a split or a whole input decode alike.
fn decode(bytes: &[u8]) -> Decoded {
    let lead = bytes[0];
    let len = sequence_len(lead);
    if len == 1 {
        // A continuation byte or a byte that never leads (C0, C1, F5..FF).
        return Decoded::Invalid(1);
    }
    let mut code_point = u32::from(lead) & (0x7F >> len);
    // Straight-line for the common case: the whole sequence is here and
    // well formed. Anything else takes the careful walk below.
    if let Some(sequence) = bytes.get(..len) {
        if continues_sequence(lead, 1, sequence[1])
            && sequence[2..].iter().all(|&byte| byte & 0xC0 == 0x80)
        {
            for &byte in &sequence[1..] {
                code_point = (code_point << 6) | u32::from(byte & 0x3F);
            }
            return char::from_u32(code_point)
                .map_or(Decoded::Invalid(len), |c| Decoded::Char(c, len));
        }
    }
    for index in 1..len {
        let Some(&next) = bytes.get(index) else {
            return Decoded::Incomplete;
        };
        if !continues_sequence(lead, index, next) {
            return Decoded::Invalid(index);
        }
    }
    // Every byte present continued the sequence, so one was missing.
    Decoded::Incomplete
}

/// The length of the UTF-8 sequence a lead byte announces; 1 for a byte that
/// cannot lead one.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// Whether `next` may stand at `index` (1 to 3) of a sequence led by `lead`.
///
/// The second byte of some sequences has a narrower range than 0x80..=0xBF:
/// this excludes overlong forms (E0, F0), surrogates (ED) and code points
/// beyond U+10FFFF (F4), exactly as `from_utf8` does.
fn continues_sequence(lead: u8, index: usize, next: u8) -> bool {
    let range = match (lead, index) {
        (0xE0, 1) => 0xA0..=0xBF,
        (0xED, 1) => 0x80..=0x9F,
        (0xF0, 1) => 0x90..=0xBF,
        (0xF4, 1) => 0x80..=0x8F,
        _ => 0x80..=0xBF,
    };
    range.contains(&next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_alphabets_uppercase_as_unicode_says_for_every_code_point() {
        let mut covered = 0;
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let Some(common) = common_uppercase(c) else {
                continue;
            };
            covered += 1;
            let expected: Vec<char> = c.to_uppercase().collect();
            let got = match common {
                Common::Unchanged => vec![c],
                Common::Shifted(upper) => vec![upper],
            };
            assert_eq!(got, expected, "U+{:04X}", u32::from(c));
        }
        // The fast path is not empty: it covers the blocks it names.
        assert!(covered > 30_000, "{covered}");
    }

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
