//! Property tests of the streaming transform: whatever the input and wherever
//! it is cut, the result is what the whole input gives.

use proptest::prelude::*;
use shout_protocol::{Uppercaser, uppercase};

/// Feeds `input` cut at `cuts` (positions, any order, out-of-range ones
/// folded in) and returns the streamed output.
fn streamed(input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut positions: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
    positions.sort_unstable();
    let mut upper = Uppercaser::new();
    let mut out = Vec::new();
    let mut start = 0;
    for end in positions.into_iter().chain([input.len()]) {
        upper.feed(&input[start..end], &mut out);
        start = end;
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
