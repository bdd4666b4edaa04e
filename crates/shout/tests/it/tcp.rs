//! TCP: the interactive line logic, and piped streaming at size.

use crate::support::{
    DEADLINE, ONE_READ, PythonPeer, UppercaseServer, run, spawn_piped, start_one_read_tcp,
    wait_bounded,
};
use shout_client::{ClientError, Connector, LineSession, Target};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Stdio;
use std::thread;
use std::time::Duration;

fn session(addr: SocketAddr) -> LineSession {
    let target = Target::new(addr.ip().to_string(), addr.port());
    LineSession::new(
        Connector::new(target, vec![addr], Some(DEADLINE)),
        Some(DEADLINE),
    )
}

#[test]
fn interactive_lines_get_their_uppercase_one_at_a_time() {
    let server = UppercaseServer::start();
    let mut session = session(server.addr);
    let mut output = Vec::new();
    let mut prompt = Vec::new();
    let input = "hello\nstraße ΐ 🦀\r\n\nlast line without newline";
    let report = session
        .run(input.as_bytes(), &mut output, Some(&mut prompt))
        .unwrap();
    assert_eq!(report.answered, 4);
    assert_eq!(report.skipped, 0);
    // Lines come back with `\n` endings, the last one too.
    let expected = input.replace("\r\n", "\n").to_uppercase() + "\n";
    assert!(expected.starts_with("HELLO\nSTRASSE "));
    assert_eq!(String::from_utf8(output).unwrap(), expected);
    assert_eq!(prompt, b"> > > > > \n");
    assert_eq!(server.connections(), 1, "one connection for every line");
}

#[test]
fn one_line_reads_exactly_its_reply_length() {
    let server = UppercaseServer::start();
    let mut session = session(server.addr);
    // `ß` grows to `SS`: the client waits for the longer reply, not for the
    // request's length.
    let first = session.shout("ßß\n".as_bytes()).unwrap();
    assert_eq!(first.reply, b"SSSS\n");
    assert!(first.connect_time.is_some());
    let second = session.shout(b"x\n").unwrap();
    assert_eq!(second.reply, b"X\n");
    assert!(
        second.connect_time.is_none(),
        "the connection is kept between lines"
    );
}

#[test]
fn a_line_answered_in_part_says_how_much_came() {
    let addr = start_one_read_tcp();
    let target = Target::new(addr.ip().to_string(), addr.port());
    let mut session = LineSession::new(
        Connector::new(target, vec![addr], Some(DEADLINE)),
        Some(Duration::from_millis(300)),
    );
    let line = [vec![b'x'; 2000], b"\n".to_vec()].concat();
    let error = session.shout(&line).unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::ReplyStalled {
                received,
                expected: Some(2001),
                ..
            } if received == ONE_READ as u64
        ),
        "{error:?}"
    );
}

#[test]
fn interactive_mode_reconnects_to_the_lecture_server() {
    // The lecture's server answers one request per connection, then closes.
    let peer = PythonPeer::start("tcp_server.py");
    let connector = Connector::resolve(&peer.target().parse().unwrap(), Some(DEADLINE)).unwrap();
    let mut session = LineSession::new(connector, Some(DEADLINE));
    let mut output = Vec::new();
    session
        .run(&b"one\ntwo\nthree\n"[..], &mut output, None)
        .unwrap();
    assert_eq!(output, b"ONE\nTWO\nTHREE\n");
}

#[test]
fn piped_line_through_the_lecture_server() {
    let peer = PythonPeer::start("tcp_server.py");
    let outcome = run(&["tcp", &peer.target()], b"hello, lecture\n");
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert_eq!(outcome.stdout, b"HELLO, LECTURE\n");
}

#[test]
fn lecture_server_that_answers_part_of_the_input_is_an_error() {
    // One recv(1024) per connection: the rest of a larger input is never
    // answered, and the client must not report success.
    let peer = PythonPeer::start("tcp_server.py");
    let outcome = run(&["tcp", &peer.target()], &vec![b'a'; 200_000]);
    assert_eq!(outcome.code, Some(6), "{}", outcome.stderr);
    assert!(
        outcome.stderr.starts_with("shout: tcp 127.0.0.1:")
            && outcome.stderr.contains("closed the connection"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn ipv6_literal_in_brackets() {
    let Some(server) = UppercaseServer::start_on("[::1]:0".parse().unwrap()) else {
        eprintln!("note: no IPv6 loopback here; skipping");
        return;
    };
    let target = format!("[::1]:{}", server.addr.port());
    let outcome = run(&["tcp", &target], b"over ipv6\n");
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert_eq!(outcome.stdout, b"OVER IPV6\n");
}

#[test]
fn every_address_is_tried_in_order() {
    let server = UppercaseServer::start();
    // A port nobody listens on, first in the list.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let connector = Connector::new(
        Target::new("two-addresses.test", 1),
        vec![refused, server.addr],
        Some(DEADLINE),
    );
    assert_eq!(connector.connect().unwrap().peer(), server.addr);
}

/// Text of about `size` bytes, mostly ASCII with characters of every UTF-8
/// width, some that grow when uppercased.
fn unicode_text(size: usize) -> Vec<u8> {
    let pattern = "The quick brown fox, straße, ﬁne ΐ ǰ — émile 日本語 🦀 done.\n";
    let mut text = Vec::with_capacity(size + pattern.len());
    let mut counter = 0u32;
    while text.len() < size {
        text.extend_from_slice(pattern.as_bytes());
        // Vary the line lengths so characters land on every chunk offset.
        counter = counter.wrapping_add(1);
        text.extend(std::iter::repeat_n(b'x', (counter % 7) as usize));
    }
    text
}

#[test]
fn piped_64_mib_of_unicode_comes_back_exactly_uppercased() {
    const SIZE: usize = 64 << 20;
    let server = UppercaseServer::start();
    let input = unicode_text(SIZE);
    // The oracle is the standard library's, not the transform under test.
    let expected = shout_testkit::reference_uppercase(&input);
    assert!(expected.len() > input.len(), "some characters grow");

    let mut child = spawn_piped(&["tcp", &server.addr.to_string()]);
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        // An odd chunk size: chunk edges fall inside multi-byte characters.
        for chunk in input.chunks(65_521) {
            stdin.write_all(chunk).unwrap();
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // Compared as it arrives: no second copy of the output in memory.
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = vec![0; 1 << 16];
    let mut at = 0;
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(
            at + n <= expected.len(),
            "{} bytes more than expected",
            at + n - expected.len()
        );
        if buf[..n] != expected[at..at + n] {
            let offset = buf[..n]
                .iter()
                .zip(&expected[at..])
                .position(|(a, b)| a != b)
                .unwrap();
            panic!("output differs from the uppercase at byte {}", at + offset);
        }
        at += n;
    }
    writer.join().unwrap();
    let code = wait_bounded(&mut child, &["tcp"]);
    let errors = errors.join().unwrap();
    assert_eq!(code, Some(0), "{errors}");
    assert_eq!(at, expected.len(), "output ended early");
    assert_eq!(errors, "");
}

#[test]
fn piped_input_that_pauses_is_not_a_timeout() {
    let server = UppercaseServer::start();
    let mut child = spawn_piped(&["tcp", &server.addr.to_string(), "--timeout", "0.3"]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first\n").unwrap();
    // Longer than the timeout: the server is silent because the input is.
    thread::sleep(Duration::from_millis(800));
    stdin.write_all(b"second\n").unwrap();
    drop(stdin);
    let code = wait_bounded(&mut child, &["tcp"]);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(stdout, "FIRST\nSECOND\n");
}

#[test]
fn interactive_mode_under_a_pseudo_terminal() {
    // util-linux `script` runs the command on a pseudo-terminal, so standard
    // input is a terminal: the prompt and line-at-a-time mode switch on.
    let server = UppercaseServer::start();
    let command = format!("'{}' tcp {}", env!("CARGO_BIN_EXE_shout"), server.addr);
    let mut child = match std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            eprintln!("note: `script` does not run ({error}); skipping the pseudo-terminal test");
            return;
        }
    };
    // Two lines, then Ctrl-D at the start of a line: end of input.
    child
        .stdin
        .take()
        .unwrap()
        .write_all("hello\nstraße\n\u{4}".as_bytes())
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let code = wait_bounded(&mut child, &["tcp (under script)"]);
    let screen = reader.join().unwrap();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("; type lines, end with Ctrl-D"), "{screen}");
    // The terminal shows `\r\n` line ends.
    assert!(
        screen.contains("> HELLO\r\n> STRASSE\r\n> \r\n"),
        "{screen:?}"
    );
    assert_eq!(server.connections(), 1);
}
