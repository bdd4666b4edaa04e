//! The little HTTP/1.1 the endpoint speaks: read one request head within a
//! deadline and a size, write one response, close.
//!
//! `httparse` parses; this module only feeds it bytes and decides what each
//! outcome means. "Not enough bytes yet" (`Status::Partial`) is normal; an
//! error is input that can never become a valid request.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Headers a request may have; more is answered as too large.
const MAX_HEADERS: usize = 32;

/// After an answer, input left unread is read and dropped, up to this much,
/// so that closing does not reset the connection (a reset can destroy the
/// answer before the client has read it).
const DRAIN_BYTES: usize = 64 * 1024;
/// The longest the drain may take.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The request line of a complete head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
}

/// How reading a request head ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadOutcome {
    /// A complete, well-formed head.
    Request(Request),
    /// The head is longer than allowed, or has too many headers.
    TooLarge,
    /// The bytes can never become a valid HTTP/1.x request head.
    Malformed,
    /// No complete head before the deadline.
    TimedOut,
    /// The client closed before sending a complete head.
    Closed,
}

/// Reads one request head from `stream`: at most `max_bytes`, all of it
/// before `deadline`.
///
/// # Errors
/// A read error other than a timeout.
pub(crate) fn read_head(
    stream: &mut TcpStream,
    deadline: Instant,
    max_bytes: usize,
) -> io::Result<HeadOutcome> {
    let mut buffer = vec![0; max_bytes];
    let mut len = 0;
    // Each turn reads at least one byte or ends, so the loop runs at most
    // `max_bytes` times, and never past the deadline.
    loop {
        if len == max_bytes {
            return Ok(HeadOutcome::TooLarge);
        }
        let Some(remaining) = time_left(deadline) else {
            return Ok(HeadOutcome::TimedOut);
        };
        stream.set_read_timeout(Some(remaining))?;
        match stream.read(&mut buffer[len..]) {
            Ok(0) => return Ok(HeadOutcome::Closed),
            Ok(read) => len += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(HeadOutcome::TimedOut);
            }
            Err(error) => return Err(error),
        }
        if let Some(outcome) = parse(&buffer[..len]) {
            return Ok(outcome);
        }
    }
}

/// Returns the time until `deadline`, or `None` once it has passed (a
/// socket timeout of zero would mean none at all).
fn time_left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

/// Parses what has arrived; `None` while the head is incomplete.
fn parse(bytes: &[u8]) -> Option<HeadOutcome> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => Some(HeadOutcome::Request(Request {
            method: request.method.unwrap_or_default().to_owned(),
            path: request.path.unwrap_or_default().to_owned(),
        })),
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(HeadOutcome::TooLarge),
        Err(_) => Some(HeadOutcome::Malformed),
    }
}

/// The statuses the endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    HeadTooLarge,
    InternalError,
    Unavailable,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Self::Ok => "200 OK",
            Self::BadRequest => "400 Bad Request",
            Self::NotFound => "404 Not Found",
            Self::MethodNotAllowed => "405 Method Not Allowed",
            Self::RequestTimeout => "408 Request Timeout",
            Self::HeadTooLarge => "431 Request Header Fields Too Large",
            Self::InternalError => "500 Internal Server Error",
            Self::Unavailable => "503 Service Unavailable",
        }
    }
}

/// One answer, whole.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: Status,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// Returns an error answer whose body is its status line.
    pub(crate) fn error(status: Status) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{}\n", status.line()).into_bytes(),
        }
    }

    /// Returns the bytes on the wire; without the body for a `HEAD`.
    pub(crate) fn to_bytes(&self, with_body: bool) -> Vec<u8> {
        let allow = if self.status == Status::MethodNotAllowed {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut bytes = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status.line(),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if with_body {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// Writes `bytes` within `timeout`, calls `before_fin`, then closes the
/// write side and drops what the client still sends (bounded in bytes and
/// time).
///
/// # Errors
/// A failed write (the client went away, or read too slowly).
pub(crate) fn answer_and_close(
    stream: &mut TcpStream,
    bytes: &[u8],
    timeout: Duration,
    before_fin: impl FnOnce(),
) -> io::Result<()> {
    stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    stream.write_all(bytes)?;
    before_fin();
    stream.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + DRAIN_TIME;
    let mut sink = [0; 4096];
    let mut drained = 0;
    while drained < DRAIN_BYTES {
        let Some(remaining) = time_left(deadline) else {
            break;
        };
        stream.set_read_timeout(Some(remaining))?;
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(read) => drained += read,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_head_asks_for_more_and_a_complete_one_gives_the_request_line() {
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(HeadOutcome::Request(Request {
                method: "GET".into(),
                path: "/metrics?x=1".into()
            }))
        );
    }

    #[test]
    fn garbage_is_malformed_and_too_many_headers_too_large() {
        assert_eq!(
            parse(b"\x00\x01\x02 nonsense\r\n\r\n"),
            Some(HeadOutcome::Malformed)
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        let head = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(head.as_bytes()), Some(HeadOutcome::TooLarge));
    }

    #[test]
    fn a_head_answer_has_the_length_but_no_body() {
        let response = Response::error(Status::NotFound);
        let text = String::from_utf8(response.to_bytes(false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains(&format!("Content-Length: {}\r\n", response.body.len())));
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        let allow = String::from_utf8(Response::error(Status::MethodNotAllowed).to_bytes(true));
        assert!(allow.unwrap().contains("Allow: GET, HEAD\r\n"));
    }
}
