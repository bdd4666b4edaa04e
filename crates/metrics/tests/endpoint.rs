//! The endpoint over real loopback sockets: what a scrape gets, and each
//! limit a client can run into.

use shout_metrics::{CONTENT_TYPE, Limits, Metric, MetricsEndpoint, MetricsError, encode};
use shout_testkit::{TIMEOUT, connect, read_to_end, wait_until};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A snapshot with one counter, the given value, and one gauge.
fn sample(value: u64) -> Vec<Metric> {
    vec![
        Metric::counter("test_requests_total", "Requests served.", value),
        Metric::gauge("test_open", "Open now.", 2),
    ]
}

fn start(limits: Limits) -> MetricsEndpoint {
    MetricsEndpoint::start(loopback(), limits, || sample(7)).expect("starts")
}

/// Sends `request` on a new connection and reads the whole answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    String::from_utf8(read_to_end(&mut stream)).expect("a text answer")
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

const GET: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: test\r\nAccept: */*\r\n\r\n";

#[test]
fn a_get_of_metrics_gets_the_encoded_snapshot_taken_at_that_moment() {
    let scrapes = Arc::new(AtomicU64::new(0));
    let endpoint = MetricsEndpoint::start(loopback(), Limits::default(), {
        let scrapes = Arc::clone(&scrapes);
        move || sample(scrapes.fetch_add(1, Ordering::SeqCst) + 1)
    })
    .unwrap();
    for scrape in 1..=2 {
        let answer = exchange(endpoint.local_addr(), GET);
        assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
        let expected = encode(&sample(scrape)).unwrap();
        assert!(expected.contains(&format!("test_requests_total {scrape}\n")));
        assert_eq!(body(&answer), expected);
        assert!(answer.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")));
        assert!(answer.contains(&format!("Content-Length: {}\r\n", expected.len())));
        assert!(answer.contains("Connection: close\r\n"));
    }
}

#[test]
fn a_head_gets_the_headers_without_the_body_and_a_query_is_ignored() {
    let endpoint = start(Limits::default());
    let answer = exchange(endpoint.local_addr(), b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    let length = encode(&sample(7)).unwrap().len();
    assert!(
        answer.contains(&format!("Content-Length: {length}\r\n")),
        "{answer}"
    );
    assert_eq!(body(&answer), "");
    let answer = exchange(endpoint.local_addr(), b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
}

#[test]
fn another_path_is_404_and_another_method_405() {
    let endpoint = start(Limits::default());
    for path in ["/", "/metrics/", "/metricsx", "/favicon.ico"] {
        let request = format!("GET {path} HTTP/1.1\r\n\r\n");
        let answer = exchange(endpoint.local_addr(), request.as_bytes());
        assert_eq!(status_line(&answer), "HTTP/1.1 404 Not Found", "{path}");
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let request = format!("{method} /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        let answer = exchange(endpoint.local_addr(), request.as_bytes());
        assert_eq!(
            status_line(&answer),
            "HTTP/1.1 405 Method Not Allowed",
            "{method}"
        );
        assert!(answer.contains("Allow: GET, HEAD\r\n"), "{answer}");
    }
}

#[test]
fn a_malformed_request_is_400() {
    let endpoint = start(Limits::default());
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        b"hello\r\n\r\n",
    ] {
        let answer = exchange(endpoint.local_addr(), garbage);
        assert_eq!(
            status_line(&answer),
            "HTTP/1.1 400 Bad Request",
            "{garbage:?}"
        );
    }
}

#[test]
fn a_head_over_the_size_limit_is_431_even_when_the_client_keeps_sending() {
    let limits = Limits {
        max_head_bytes: 4096,
        ..Limits::default()
    };
    let endpoint = start(limits);
    let mut stream = connect(endpoint.local_addr());
    // 16 KiB of one header, never ended: more than the limit, less than the
    // socket buffers, so the write completes whatever the server does.
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Long: ".to_vec();
    request.resize(16 * 1024, b'a');
    stream.write_all(&request).unwrap();
    let answer = String::from_utf8(read_to_end(&mut stream)).unwrap();
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 431 Request Header Fields Too Large",
        "{answer}"
    );
    // Too many headers is the same answer.
    let many: String = (0..100).map(|i| format!("h{i}: v\r\n")).collect();
    let request = format!("GET /metrics HTTP/1.1\r\n{many}\r\n");
    let answer = exchange(endpoint.local_addr(), request.as_bytes());
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

#[test]
fn a_client_without_a_full_request_in_time_is_cut_even_when_it_drips() {
    let request_timeout = Duration::from_millis(500);
    let limits = Limits {
        request_timeout,
        ..Limits::default()
    };
    let endpoint = start(limits);

    // Half a request, then silence.
    let started = Instant::now();
    let answer = exchange(endpoint.local_addr(), b"GET /metrics HTTP/1.1\r\n");
    assert_eq!(status_line(&answer), "HTTP/1.1 408 Request Timeout");
    assert!(started.elapsed() >= request_timeout);

    // A byte every 50 ms: each read is quick, but the deadline is the
    // whole head's, so it is cut all the same.
    let mut stream = connect(endpoint.local_addr());
    let mut writer = stream.try_clone().unwrap();
    let dripper = std::thread::spawn(move || {
        let mut sent = 0;
        for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: "
            .iter()
            .chain(&[b'a'; 400])
        {
            if writer.write_all(&[*byte]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        sent
    });
    let answer = String::from_utf8(read_to_end(&mut stream)).unwrap();
    assert_eq!(status_line(&answer), "HTTP/1.1 408 Request Timeout");
    drop(stream);
    let sent = shout_testkit::join_within(dripper, TIMEOUT).expect("the dripper stops");
    assert!(sent < 431, "the dripper sent its whole head ({sent} bytes)");
}

/// Opens a connection and waits until the endpoint has accepted it, which
/// the client cannot see; a byte of an unfinished head keeps it open.
fn hold_open(addr: SocketAddr) -> TcpStream {
    let mut stream = connect(addr);
    stream.write_all(b"G").unwrap();
    stream
}

/// Sends `request` on a new connection and reads the whole answer; `None`
/// when the connection fails (a refusal can race a request with a reset).
fn try_exchange(addr: SocketAddr, request: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    stream.write_all(request).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    String::from_utf8(answer).ok()
}

const REFUSED: &str = "HTTP/1.1 503 Service Unavailable";

#[test]
fn past_the_connection_limit_a_client_gets_503_at_once_and_a_freed_slot_serves_again() {
    let endpoint = start(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    let addr = endpoint.local_addr();
    let held = [hold_open(addr), hold_open(addr)];
    // The acceptor counts a connection when it accepts it, which a client
    // cannot see; until both held ones are counted a scrape is still
    // served, so scrape until refused.
    wait_until("a connection past the limit is refused", || {
        try_exchange(addr, GET).is_some_and(|answer| status_line(&answer) == REFUSED)
    });
    // At once: the answer comes before the client has sent anything.
    let mut silent = connect(addr);
    let answer = String::from_utf8(read_to_end(&mut silent)).unwrap();
    assert_eq!(status_line(&answer), REFUSED);
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    drop(held);
    wait_until("a scrape is served once the held connections close", || {
        try_exchange(addr, GET).is_some_and(|answer| status_line(&answer) == "HTTP/1.1 200 OK")
    });
}

#[test]
fn a_panicking_snapshot_gets_500_and_the_next_scrape_is_served() {
    let panicked = Arc::new(AtomicBool::new(false));
    let endpoint = MetricsEndpoint::start(loopback(), Limits::default(), {
        let panicked = Arc::clone(&panicked);
        move || {
            assert!(panicked.swap(true, Ordering::SeqCst), "first scrape panics");
            sample(1)
        }
    })
    .unwrap();
    let answer = exchange(endpoint.local_addr(), GET);
    assert_eq!(status_line(&answer), "HTTP/1.1 500 Internal Server Error");
    let answer = exchange(endpoint.local_addr(), GET);
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
}

#[test]
fn a_snapshot_that_cannot_be_encoded_gets_500() {
    let endpoint = MetricsEndpoint::start(loopback(), Limits::default(), || {
        vec![Metric::counter("not a name", "Bad.", 1)]
    })
    .unwrap();
    let answer = exchange(endpoint.local_addr(), GET);
    assert_eq!(status_line(&answer), "HTTP/1.1 500 Internal Server Error");
}

#[test]
fn a_taken_address_is_a_bind_error_naming_it() {
    let first = start(Limits::default());
    let error = MetricsEndpoint::start(first.local_addr(), Limits::default(), Vec::new)
        .expect_err("the address is taken");
    assert!(matches!(error, MetricsError::Bind { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&first.local_addr().to_string()),
        "{error}"
    );
}

#[test]
fn a_stopped_endpoint_accepts_no_more() {
    let endpoint = start(Limits::default());
    let addr = endpoint.local_addr();
    endpoint.stop();
    let refused = TcpStream::connect_timeout(&addr, TIMEOUT);
    assert!(refused.is_err(), "connected to a stopped endpoint");
    let mut nothing = Vec::new();
    if let Ok(mut stream) = refused {
        let _ = stream.read_to_end(&mut nothing);
    }
}

/// Connects to `addr` from the loopback address `source` (a source of its
/// own: 127.0.0.2 and up are loopback on Linux).
fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .unwrap_or_else(|e| panic!("bind {source:?}: {e}"));
    socket.connect_timeout(&addr.into(), TIMEOUT).unwrap();
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Scrapes from `source`; returns the status line and how long it took.
fn scrape_from(source: [u8; 4], addr: SocketAddr) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = connect_from(source, addr);
    stream.write_all(GET).unwrap();
    let answer = String::from_utf8(read_to_end(&mut stream)).unwrap();
    (status_line(&answer).to_owned(), started.elapsed())
}

/// Well under the 5 s head timeout: an answer this quick did not wait for
/// an idle socket to be cut.
const PROMPT: Duration = Duration::from_secs(2);

#[test]
fn idle_connections_from_one_source_do_not_deny_a_scrape_from_another() {
    let endpoint = start(Limits::default());
    let addr = endpoint.local_addr();
    // Silent: an idle socket sends nothing, and a refusal then closes with
    // a FIN, never a reset over unread input.
    let idle: Vec<TcpStream> = (0..6).map(|_| connect_from([127, 0, 0, 1], addr)).collect();
    // The source's share is 2: the others are refused at once. The accept
    // queue is in connect order, so the first two are the ones held.
    let mut refused = 0;
    for mut stream in idle.iter().skip(2).map(|s| s.try_clone().unwrap()) {
        let answer = String::from_utf8(read_to_end(&mut stream)).unwrap();
        assert_eq!(status_line(&answer), REFUSED, "{answer}");
        refused += 1;
    }
    assert_eq!(refused, 4);
    for _ in 0..3 {
        let (status, took) = scrape_from([127, 0, 0, 2], addr);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(took < PROMPT, "a scrape took {took:?}");
    }
    // The first two are still held, waiting for their heads.
    let mut first = idle[0].try_clone().unwrap();
    first.set_nonblocking(true).unwrap();
    let mut byte = [0; 1];
    let still_open =
        matches!(first.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    assert!(still_open, "a held connection was closed");
}

#[test]
fn a_full_table_of_idle_connections_makes_room_for_a_scrape() {
    let endpoint = start(Limits::default());
    let addr = endpoint.local_addr();
    // Four idle connections from four sources fill the table.
    // The accept queue is in connect order, so the first is the longest
    // wait.
    let mut idle: Vec<TcpStream> = (11..15)
        .map(|last| connect_from([127, 0, 0, last], addr))
        .collect();
    let (status, took) = scrape_from([127, 0, 0, 2], addr);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(took < PROMPT, "a scrape took {took:?}");
    // The longest wait made room: closed unanswered.
    let closed = read_to_end(&mut idle[0]);
    assert!(closed.is_empty(), "{}", String::from_utf8_lossy(&closed));
}

#[test]
fn answered_connections_kept_open_by_their_client_take_no_share_of_the_next_scrape() {
    let endpoint = start(Limits::default());
    let addr = endpoint.local_addr();
    // Each is answered, then kept open: the endpoint waits up to 1 s for
    // the client's end, dropping what it sends, before it lets go.
    let mut answered = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(addr);
        stream.write_all(GET).unwrap();
        let answer = String::from_utf8(read_to_end(&mut stream)).unwrap();
        assert_eq!(status_line(&answer), "HTTP/1.1 200 OK");
        answered.push(stream);
    }
    // Same source, table full of them: served at once all the same.
    let started = Instant::now();
    let answer = exchange(addr, GET);
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
}
