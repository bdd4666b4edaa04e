//! Piped mode: `shout_stream` sends and receives at once, so inputs far
//! larger than every buffer on the way go through in constant memory.

use shout_client::{Connector, shout_stream};
use shout_tests::{RepeatedText, TIMEOUT, TestServer, UppercaseCheck};

/// Mostly ASCII, like real text, with characters of every UTF-8 length and
/// some whose uppercase is longer than they are (`ß`, `ΐ`, `ǰ`, `ﬁ`).
const UNIT: &str = concat!(
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. ",
    "However little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding families, ",
    "that he is considered the rightful property of some one or other of their daughters.\n",
    "The quick brown fox jumps over the lazy dog: straße, ΐ, ǰ, ﬁ, ñ, 日本語, 🦀!\n",
);

#[test]
fn sixty_four_mib_piped_through_is_the_uppercase_byte_for_byte() {
    let server = TestServer::start();
    let times = (64u64 << 20).div_ceil(UNIT.len() as u64);
    let input = RepeatedText::new(UNIT, times);
    let input_len = input.remaining();
    assert!(input_len >= 64 << 20);
    let mut output = UppercaseCheck::new(UNIT, times);
    let connection = Connector::new(server.tcp_target(), vec![server.tcp_addr()], Some(TIMEOUT))
        .connect()
        .expect("connects");
    let totals = shout_stream(connection, input, &mut output, Some(TIMEOUT))
        .expect("the whole stream is answered");
    output.verify();
    assert_eq!(totals.sent, input_len);
    assert_eq!(totals.received, output.expected_len());
    assert!(
        output.expected_len() > input_len,
        "the unit grows when uppercased"
    );
    let stats = server.stop();
    assert_eq!(
        (stats.bytes_in, stats.bytes_out),
        (input_len, output.expected_len())
    );
}
