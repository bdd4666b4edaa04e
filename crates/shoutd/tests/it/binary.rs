//! The `shoutd` binary: start-up contract, exit statuses, signals, and the
//! project's lecture-style Python clients (`peers/`) as real peers.

use crate::support::{
    SOCKET_FLAGS, Shoutd, TIMEOUT, free_port, join_within, read_to_end, summary_figure, wait_until,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs one of the project's lecture-style clients (`peers/` at the
/// workspace root) with `input` on stdin and returns its stdout. Panics when
/// python3 does not start: the README requires Python 3, and a test that
/// returned early would pass without running.
fn run_python_client(script: &str, addr: SocketAddr, input: &[u8]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../peers")
        .join(script);
    assert!(path.is_file(), "{} is missing", path.display());
    let mut child = Command::new("python3")
        .arg(path)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("python3 is required for the tests (see README.md) and does not start: {error}")
        });
    child.stdin.take().unwrap().write_all(input).unwrap();
    wait_until("the python client to finish", || {
        child.try_wait().unwrap().is_some()
    });
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{script} failed");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn lecture_style_python_clients_are_served() {
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
    let out = run_python_client(
        "tcp_client.py",
        shoutd.tcp.unwrap(),
        "hello straße\n".as_bytes(),
    );
    assert_eq!(out, "Input lowercase sentence:From Server: HELLO STRASSE\n");
    let out = run_python_client("udp_client.py", shoutd.udp.unwrap(), "ﬁne day\n".as_bytes());
    assert_eq!(out, "Input lowercase sentence:FINE DAY\n");
}

#[test]
fn port_in_use_exits_2_with_a_clear_message() {
    let first = Shoutd::start(&["--tcp", "127.0.0.1:0"]);
    let taken = first.tcp.unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_shoutd"))
        .args(["--tcp", &taken])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        format!("shoutd: tcp {taken} is already in use — is another shoutd running?")
    );
}

/// Runs shoutd with `args` to its exit (bounded: it fails at start-up).
/// Returns its exit code and stderr.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shoutd"));
    let child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = std::thread::spawn(move || child.wait_with_output());
    let output = join_within(waiting, TIMEOUT)
        .unwrap_or_else(|| panic!("shoutd {args:?} did not exit"))
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_port_in_use_is_named_with_the_kind_of_its_listener() {
    // One port number taken on both TCP and UDP, as a running server
    // would hold it.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = tcp.local_addr().unwrap();
    let _udp = UdpSocket::bind(taken).unwrap();
    let port = taken.to_string();
    for (kind, args) in [
        ("ws", vec!["--ws", &port]),
        ("wss", vec!["--wss", &port]),
        ("tls", vec!["--tls", &port]),
        ("quic", vec!["--quic", &port]),
        ("metrics", vec!["--tcp", "127.0.0.1:0", "--metrics", &port]),
    ] {
        let (code, stderr) = run_to_exit(&args);
        assert_eq!(code, Some(2), "{kind}: {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert_eq!(
            last,
            format!("shoutd: {kind} {taken} is already in use — is another shoutd running?"),
            "{stderr}"
        );
    }
}

#[test]
fn a_host_name_for_an_address_is_refused_with_an_example() {
    for flag in SOCKET_FLAGS {
        let (code, stderr) = run_to_exit(&[flag, "localhost:0"]);
        assert_eq!(code, Some(2), "{stderr}");
        // "for '--tcp <ADDR>'", or "for '--ws [<ADDR>]'" where ADDR is optional.
        let (start, reason) = stderr
            .lines()
            .next()
            .and_then(|line| line.split_once(">]': ").or(line.split_once(">': ")))
            .unwrap_or_else(|| panic!("{flag}: {stderr}"));
        assert!(
            start.starts_with(&format!("error: invalid value 'localhost:0' for '{flag} ")),
            "{stderr}"
        );
        assert_eq!(
            reason,
            "shoutd takes an IP address and a port, not a host name (e.g. 127.0.0.1:0 or [::1]:0)"
        );
    }
}

#[test]
fn tls_and_quic_serve_one_port_number_on_tcp_and_udp() {
    // `--tls` and `--quic` without an address both take [::]:12443; a
    // test cannot hold that port, so it checks the same sharing on a
    // port number free on both transports.
    let port = format!("127.0.0.1:{}", free_port());
    let shoutd = Shoutd::start(&["--tls", &port, "--quic", &port]);
    assert_eq!(shoutd.listening().addrs("tls")[0].to_string(), port);
    assert_eq!(shoutd.listening().addrs("quic")[0].to_string(), port);
    shoutd.signal(libc::SIGTERM);
    let (code, stderr) = shoutd.wait();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn bad_arguments_exit_2_without_a_panic() {
    let output = Command::new(env!("CARGO_BIN_EXE_shoutd"))
        .args(["--tcp", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid value 'not-an-address'"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_drains_every_answer_then_exits_0() {
    let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0", "--drain-timeout", "5"]);
    let addr = shoutd.tcp.unwrap();
    let text = "every byte counts: grüße ".repeat(20_000);
    let mut clients: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            stream.write_all(text.as_bytes()).unwrap();
            stream
        })
        .collect();
    // Each client has its first answer, so the server is mid-stream on all.
    for stream in &mut clients {
        let mut first = [0; 5];
        stream.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"EVERY");
    }
    shoutd.signal(libc::SIGTERM);
    let expected = text.to_uppercase();
    for stream in &mut clients {
        let rest = read_to_end(stream);
        assert_eq!(
            rest.len(),
            expected.len() - 5,
            "an answer was lost in the drain"
        );
        assert!(rest == expected.as_bytes()[5..]);
    }
    let (code, stderr) = shoutd.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(summary_figure(&stderr, "connections"), 20, "{stderr}");
}

#[test]
fn out_of_descriptors_sheds_new_clients_keeps_old_ones_and_recovers() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shoutd"));
    command.args(["--tcp", "127.0.0.1:0", "-q"]);
    // SAFETY: setrlimit is async-signal-safe and touches no shared state;
    // it runs in the child between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 32,
                rlim_max: 32,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let shoutd = Shoutd::start_with(&mut command);
    let addr = shoutd.tcp.unwrap();
    let connect = || {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream
    };
    let ask = |stream: &mut TcpStream| -> Option<Vec<u8>> {
        stream.write_all(b"hi").ok()?;
        let mut buf = [0; 2];
        stream.read_exact(&mut buf).ok().map(|()| buf.to_vec())
    };
    // Far more clients than descriptors: some are served, the rest are
    // refused (closed at once), none hangs.
    let mut served = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let mut stream = connect();
        match ask(&mut stream) {
            Some(reply) => {
                assert_eq!(reply, b"HI");
                served.push(stream);
            }
            None => refused += 1,
        }
    }
    assert!(refused > 0, "the limit was never reached");
    assert!(!served.is_empty());
    // The old clients are still served...
    for stream in &mut served {
        assert_eq!(ask(stream).as_deref(), Some(&b"HI"[..]));
    }
    // ...and when descriptors free up, new clients are served again.
    served.truncate(served.len() / 2);
    std::thread::sleep(Duration::from_millis(200));
    let mut fresh = connect();
    assert_eq!(ask(&mut fresh).as_deref(), Some(&b"HI"[..]));
}

#[test]
fn sigterm_right_after_the_listening_line_is_a_graceful_stop() {
    // A supervisor may stop shoutd the moment it said it is listening: the
    // signal handlers must be in place by then, or SIGTERM kills it.
    for attempt in 0..20 {
        let shoutd = Shoutd::start(&["--tcp", "127.0.0.1:0"]);
        shoutd.signal(libc::SIGTERM);
        let (code, stderr) = shoutd.wait();
        assert_eq!(code, Some(0), "attempt {attempt}: {stderr}");
    }
}
