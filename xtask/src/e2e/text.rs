//! Test text, and a hash to compare long streams without keeping them.
//!
//! The expected answer is always computed with `str::to_uppercase`, never
//! with shout's own code: the scenarios check the binaries against an
//! independent oracle.

/// Words the generated text is made of: ASCII, and the characters whose
/// upper case is longer or otherwise surprising (`ß` → `SS`, `ﬁ` → `FI`,
/// `ΐ` → three characters), wide scripts and emoji with no case at all.
const WORDS: &[&str] = &[
    "hello",
    "world",
    "shout",
    "straße",
    "ﬁne",
    "ﬄuff",
    "ǆungla",
    "ŉ",
    "ΐ",
    "ᾳ",
    "ǰ",
    "σίσυφος",
    "ёлка",
    "çà",
    "éte",
    "ÿ",
    "日本語",
    "한국어",
    "🎉",
    "🦀rust",
    "tab\tin",
    "x",
    "0123456789",
    "mixed-Case",
];

/// A deterministic source of text lines, one seed per client so that each
/// has its own text.
pub(crate) struct TextSource {
    state: u64,
    line: u64,
}

impl TextSource {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            // xorshift must not start at 0.
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            line: 0,
        }
    }

    /// Whole lines (each ending in `\n`), at least `min_len` bytes in all.
    pub(crate) fn text(&mut self, min_len: usize) -> String {
        let mut text = String::with_capacity(min_len + 128);
        while text.len() < min_len {
            self.line += 1;
            text.push_str(&format!("{:06} ", self.line));
            let words = 1 + self.next() % 12;
            for index in 0..words {
                if index > 0 {
                    text.push(' ');
                }
                text.push_str(WORDS[(self.next() % WORDS.len() as u64) as usize]);
            }
            text.push('\n');
        }
        text
    }

    /// xorshift64: plenty for picking words.
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }
}

/// FNV-1a, 64 bits, fed incrementally: a stream's hash without keeping the
/// stream. Not cryptographic; it only has to tell two outputs apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fnv {
    hash: u64,
    len: u64,
}

impl Fnv {
    pub(crate) fn new() -> Self {
        Self {
            hash: 0xcbf2_9ce4_8422_2325,
            len: 0,
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let mut hash = self.hash;
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.hash = hash;
        self.len += bytes.len() as u64;
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

impl std::fmt::Display for Fnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes, fnv {:016x}", self.len, self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_deterministic_per_seed_and_whole_lines() {
        let a = TextSource::new(7).text(1000);
        assert_eq!(a, TextSource::new(7).text(1000));
        assert_ne!(a, TextSource::new(8).text(1000));
        assert!(a.len() >= 1000 && a.ends_with('\n'));
        assert!(a.to_uppercase().len() > a.len(), "some characters grow");
    }

    #[test]
    fn fnv_matches_the_reference_values() {
        let mut hash = Fnv::new();
        assert_eq!(hash.hash, 0xcbf2_9ce4_8422_2325);
        hash.update(b"a");
        assert_eq!(hash.hash, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn fnv_does_not_depend_on_how_the_stream_is_cut() {
        let mut whole = Fnv::new();
        whole.update(b"hello world");
        let mut parts = Fnv::new();
        parts.update(b"hello");
        parts.update(b" world");
        assert_eq!(whole, parts);
    }
}
