//! TCP: correctness under concurrency, pipelining, streaming and half-close.

use crate::support::{
    PUSHBACK_QUIET, TIMEOUT, connect, expect_periodic, read_exactly, read_to_end, round_trip,
    send_until_pushed_back, start, wait_until,
};
use std::io::Write;
use std::net::Shutdown;

#[test]
fn answers_a_chunk_without_waiting_for_a_newline() {
    // The lecture's Python client sends no newline and calls recv once.
    let server = start(|b| b);
    let mut stream = connect(server.tcp());
    stream.write_all(b"hello").unwrap();
    assert_eq!(read_exactly(&mut stream, 5), b"HELLO");
}

#[test]
fn two_hundred_concurrent_clients_each_get_their_own_answers() {
    let server = start(|b| b);
    let addr = server.tcp();
    let clients: Vec<_> = (0..200)
        .map(|id| {
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                for line in 0..5 {
                    round_trip(
                        &mut stream,
                        &format!("client {id} line {line}: grüße ﬁn ǰ\n"),
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client saw a wrong or missing answer");
    }
    wait_until("all 200 connections to close", || {
        server.handle.stats().connections_open() == 0
    });
    let stats = server.stop();
    assert_eq!(stats.connections_accepted, 200);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = start(|b| b);
    let mut stream = connect(server.tcp());
    let requests: String = (0..1000).map(|i| format!("request {i}\n")).collect();
    stream.write_all(requests.as_bytes()).unwrap();
    let reply = read_exactly(&mut stream, requests.len());
    assert_eq!(reply, requests.to_uppercase().as_bytes());
}

#[test]
fn sixteen_mib_stream_with_unicode_cut_at_odd_places() {
    let server = start(|b| b);
    let mut stream = connect(server.tcp());
    let unit = "a ß é 日本 🦀 ΐ ǰ ﬁ\n";
    let text = unit.repeat((16 << 20) / unit.len());
    let expected = text.to_uppercase();
    let mut writer = stream.try_clone().unwrap();
    let input = text.clone();
    // Write in odd-sized pieces that cut characters, while reading.
    let sender = std::thread::spawn(move || {
        for piece in input.as_bytes().chunks(7919) {
            writer.write_all(piece).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let reply = read_to_end(&mut stream);
    sender.join().unwrap();
    assert_eq!(reply.len(), expected.len());
    assert!(
        reply == expected.as_bytes(),
        "16 MiB reply differs from the uppercase"
    );
}

#[test]
fn half_close_sends_the_rest_then_closes() {
    let server = start(|b| b);
    let mut stream = connect(server.tcp());
    // Ends with the first byte of `é`: only end of stream flushes it.
    stream.write_all(b"last words \xC3").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut stream), b"LAST WORDS \xC3");
}

#[test]
fn invalid_utf8_passes_through() {
    let server = start(|b| b);
    let mut stream = connect(server.tcp());
    stream
        .write_all(b"ok \xFF\xC0\xAF \xED\xA0\x80 done")
        .unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        read_to_end(&mut stream),
        b"OK \xFF\xC0\xAF \xED\xA0\x80 DONE"
    );
}

#[test]
fn a_client_that_never_reads_is_held_back_and_others_are_unaffected() {
    let max_pending = 64 * 1024;
    // The server's read buffer: one read's answer may come on top of the cap.
    let read_size = 64 * 1024;
    let server = start(|b| b.max_pending_output(max_pending));
    let mut hog = connect(server.tcp());
    let unit = [b'x'; 4096];
    let offered = 256 << 20;
    let sent = send_until_pushed_back(&mut hog, &unit, 0, offered);

    // The server stopped reading: what it took no longer grows, and what it
    // holds unsent (its answer is as long as what it read) is within its cap
    // plus one read's answer. The rest waits in the kernel's buffers.
    let taken = server.handle.stats().bytes_in;
    std::thread::sleep(PUSHBACK_QUIET);
    let stats = server.handle.stats();
    assert_eq!(
        stats.bytes_in, taken,
        "the server read on while pushed back"
    );
    let held = stats.bytes_in - stats.bytes_out;
    assert!(
        held <= (max_pending + read_size) as u64,
        "the server holds {held} unsent bytes, over its cap {max_pending} plus one read {read_size}"
    );

    let mut other = connect(server.tcp());
    round_trip(&mut other, "still served\n");

    // Once the hog reads, its whole answer comes, in order.
    hog.set_write_timeout(Some(TIMEOUT)).unwrap();
    hog.shutdown(std::net::Shutdown::Write).unwrap();
    expect_periodic(&mut hog, &[b'X'; 4096], sent);
}

#[test]
fn handle_shutdown_from_another_thread_answers_what_was_received() {
    let server = start(|b| b);
    let mut stream = connect(server.tcp());
    round_trip(&mut stream, "before\n");
    let text = "sent before the stop ".repeat(5000);
    stream.write_all(text.as_bytes()).unwrap();
    let expected_in = (7 + text.len()) as u64;
    wait_until("the server to receive everything", || {
        server.handle.stats().bytes_in == expected_in
    });
    let handle = server.handle.clone();
    std::thread::spawn(move || handle.shutdown())
        .join()
        .unwrap();
    // Everything received before the stop is answered, then the server
    // ends the stream.
    let reply = read_to_end(&mut stream);
    assert_eq!(reply, text.to_uppercase().as_bytes());
    let stats = server.stop();
    assert_eq!(stats.bytes_out, stats.bytes_in);
    // New connections are refused once it stopped.
    assert!(std::net::TcpStream::connect(stream.peer_addr().unwrap()).is_err());
}

#[test]
fn a_stop_answers_input_held_back_by_backpressure() {
    // The client sends far more than the server may buffer, reading nothing
    // yet: the server stops reading it (backpressure), so the connection
    // looks quiet. A stop must still answer every byte the client sent.
    let server = start(|b| b.max_pending_output(16 * 1024));
    let mut stream = connect(server.tcp());
    // More than the kernel buffers of both ends absorb on loopback (about
    // 20 MiB with autotuning), so that the server really stops reading.
    let text = "held back by backpressure ".repeat(2_000_000); // 52 MB
    let mut writer = stream.try_clone().unwrap();
    let input = text.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(input.as_bytes()).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    wait_until("backpressure to hold the client back", || {
        server.handle.stats().bytes_in > 0
    });
    server.handle.shutdown();
    // Longer than the drain's quiet period: the held-back connection would be
    // ended here if quiet meant "no traffic" alone.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let reply = read_to_end(&mut stream);
    sender.join().unwrap();
    assert_eq!(reply.len(), text.len(), "answers were cut by the stop");
    assert!(reply == text.to_uppercase().as_bytes());
}

#[test]
fn timeouts_meaning_never_neither_panic_nor_hang() {
    let server = start(|b| {
        b.idle_timeout(Some(std::time::Duration::MAX))
            .drain_timeout(std::time::Duration::MAX)
    });
    let mut stream = connect(server.tcp());
    round_trip(&mut stream, "far future\n");
    drop(stream);
    wait_until("the connection to close", || {
        server.handle.stats().connections_open() == 0
    });
    let stats = server.stop();
    assert_eq!(stats.connections_accepted, 1);
}

#[test]
fn a_zero_output_cap_is_refused_at_build() {
    let error = shout_server::ServerBuilder::new(shout_server::Uppercase, shout_server::Uppercase)
        .tcp("127.0.0.1:0".parse().unwrap())
        .max_pending_output(0)
        .build()
        .err()
        .expect("a server that could never read must not build");
    assert!(error.to_string().contains("max pending output"), "{error}");
}
