//! Property tests of the streaming transform and of the line framer:
//! whatever the input and wherever it is cut, the result is what the whole
//! input gives.

use proptest::prelude::*;
use shout_protocol::{Frame, LineFramer, Uppercaser, uppercase};

/// Sorts `cuts` into positions within `input` (out-of-range ones folded
/// in) and returns the pieces between them.
fn pieces<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut positions: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
    positions.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for end in positions.into_iter().chain([input.len()]) {
        pieces.push(&input[start..end]);
        start = end;
    }
    pieces
}

/// Frames `input` cut at `cuts` with lines up to `max`: each line, `None`
/// for one too long; and what is held at the end.
fn framed(input: &[u8], cuts: &[usize], max: usize) -> (Vec<Option<Vec<u8>>>, Vec<u8>) {
    let mut framer = LineFramer::new(max);
    let mut frames = Vec::new();
    for mut piece in pieces(input, cuts) {
        while let Some(frame) = framer.next_frame(&mut piece) {
            frames.push(match frame {
                Frame::Line(line) => Some(line.to_vec()),
                Frame::TooLong => None,
            });
        }
    }
    (frames, framer.unfinished().to_vec())
}

/// What framing `input` with lines up to `max` must give, from the whole
/// input split at its newlines: each whole line, `None` for one too long
/// (the unfinished last one included, told before its newline comes), and
/// the unfinished last line held if it is not too long.
fn framed_by_split(input: &[u8], max: usize) -> (Vec<Option<Vec<u8>>>, Vec<u8>) {
    let mut frames = Vec::new();
    let mut held = Vec::new();
    let mut lines = input.split(|&byte| byte == b'\n').peekable();
    while let Some(line) = lines.next() {
        let whole = lines.peek().is_some();
        if line.len() > max {
            frames.push(None);
        } else if whole {
            frames.push(Some(line.to_vec()));
        } else {
            held = line.to_vec();
        }
    }
    (frames, held)
}

/// Bytes with many newlines and runs of one letter, so that lines around
/// the maximum are common.
fn lines_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![3 => Just(b'\n'), 6 => Just(b'a'), 1 => any::<u8>()];
    prop::collection::vec(byte, 0..96)
}

/// Feeds `input` cut at `cuts` (positions, any order, out-of-range ones
/// folded in) and returns the streamed output.
fn streamed(input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut upper = Uppercaser::new();
    let mut out = Vec::new();
    for piece in pieces(input, cuts) {
        upper.feed(piece, &mut out);
    }
    upper.finish(&mut out);
    out
}

/// Bytes that are mostly UTF-8 pieces with invalid bytes mixed in, which
/// finds more splitting bugs than uniform random bytes.
fn mixed_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..4),
        prop::sample::select(vec![
            b"\xC3".to_vec(),
            b"\xE2\x82".to_vec(),
            b"\xF0\x9F\xA6".to_vec(),
            b"\xED\xA0\x80".to_vec(),
            b"\xC0\xAF".to_vec(),
            b"\x80".to_vec(),
        ]),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn lines_in_any_chunks_are_the_whole_inputs_lines(input in lines_bytes(), cuts in prop::collection::vec(any::<usize>(), 0..8), max in 0usize..12) {
        prop_assert_eq!(framed(&input, &cuts, max), framed_by_split(&input, max));
    }

    #[test]
    fn a_framer_holds_at_most_its_maximum(input in lines_bytes(), cuts in prop::collection::vec(any::<usize>(), 0..8), max in 0usize..12) {
        let (frames, held) = framed(&input, &cuts, max);
        prop_assert!(held.len() <= max);
        for line in frames.into_iter().flatten() {
            prop_assert!(line.len() <= max && !line.contains(&b'\n'));
        }
    }

    #[test]
    fn valid_text_in_any_chunks_equals_to_uppercase(text in any::<String>(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        prop_assert_eq!(streamed(text.as_bytes(), &cuts), text.to_uppercase().into_bytes());
    }

    #[test]
    fn any_bytes_in_any_chunks_equal_the_whole(input in mixed_bytes(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let mut whole = Vec::new();
        uppercase(&input, &mut whole);
        prop_assert_eq!(streamed(&input, &cuts), whole);
    }

    #[test]
    fn invalid_bytes_survive_unchanged(input in mixed_bytes()) {
        let mut expected = Vec::new();
        for chunk in input.utf8_chunks() {
            expected.extend_from_slice(chunk.valid().to_uppercase().as_bytes());
            expected.extend_from_slice(chunk.invalid());
        }
        let mut out = Vec::new();
        uppercase(&input, &mut out);
        prop_assert_eq!(out, expected);
    }
}
