//! A stream with no newline at all, far larger than any buffer: the server
//! has no notion of lines, so it answers as the bytes come, in constant
//! memory, and the client's piped mode gets every byte back.

use shout_client::{Connector, shout_stream};
use shout_tests::{RepeatedText, TIMEOUT, TestServer, UppercaseCheck, heavy_test};
use std::time::Instant;

/// No `\n` anywhere; characters of every UTF-8 length, some that grow.
const UNIT: &str = "one endless sentence that never ends, straße ΐ ǰ ﬁ 日本語 🦀 ñ \r\0 ";

#[test]
fn a_gib_stream_without_a_newline_is_answered_byte_for_byte() {
    let _heavy = heavy_test();
    let size: u64 = 1 << 30;
    assert!(!UNIT.contains('\n'));
    let server = TestServer::start();
    let times = size.div_ceil(UNIT.len() as u64);
    let input = RepeatedText::new(UNIT, times);
    let input_len = input.remaining();
    let mut output = UppercaseCheck::new(UNIT, times);
    let connection = Connector::new(server.tcp_target(), vec![server.tcp_addr()], Some(TIMEOUT))
        .connect()
        .expect("connects");
    let started = Instant::now();
    let totals = shout_stream(connection, input, &mut output, Some(TIMEOUT))
        .expect("the whole stream is answered");
    eprintln!(
        "{} MiB without a newline answered in {:?}",
        input_len >> 20,
        started.elapsed()
    );
    output.verify();
    assert_eq!(totals.sent, input_len);
    assert_eq!(totals.received, output.expected_len());
    let stats = server.stop();
    assert_eq!(
        (stats.bytes_in, stats.bytes_out),
        (input_len, output.expected_len())
    );
}
