//! The WebSocket layer of a connection (RFC 6455), sans-io: the HTTP
//! request that opens it (the page at `/`, the upgrade at `/ws`, every
//! refusal), then frames in (unmasked in place, checked, their payload
//! handed on as it comes) and the service's output framed out.
//!
//! It sits over the transport layer (plain TCP, or TLS for `wss`) and
//! under the service, so any [`StreamService`](crate::StreamService) runs
//! over it unchanged: each data message's payload is the service's input,
//! and what the service writes while it takes a message is that message's
//! reply (docs/PROTOCOL.md, "WebSocket").
//!
//! What it keeps per connection is fixed and small (a partial frame
//! header, a control frame's payload, a partial UTF-8 character): payload
//! is never buffered, so a message costs no memory whatever its size. The
//! frame header codec and the accept key are tungstenite's; the request
//! head is httparse's. This module is not for reading sockets, calling
//! the service or keeping counters: the worker does that
//! (`worker/ws.rs`).

use std::io::Cursor;
use std::sync::Arc;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// The largest message taken by default: 1 MiB. A longer one closes the
/// connection with 1009.
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;

/// The longest HTTP request head taken (request line and headers): a
/// longer one is answered 431.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// The most headers a request may have: more is answered 431.
const MAX_HEADERS: usize = 48;

/// What a WebSocket listener serves besides the service: the page at `/`,
/// the origins allowed to open `/ws`, the largest message.
#[derive(Debug, Clone)]
pub struct WebSocketConfig {
    page: Option<Arc<[u8]>>,
    origins: Vec<String>,
    max_message: usize,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl WebSocketConfig {
    /// Returns a config with no page (`/` answers 404), only the
    /// listener's own origin allowed, and messages of up to
    /// [`DEFAULT_MAX_MESSAGE`] bytes.
    pub fn new() -> Self {
        Self {
            page: None,
            origins: Vec::new(),
            max_message: DEFAULT_MAX_MESSAGE,
        }
    }

    /// Serves `html` (UTF-8) at `GET /`.
    pub fn page(mut self, html: impl Into<Arc<[u8]>>) -> Self {
        self.page = Some(html.into());
        self
    }

    /// Allows pages from `origin` (`https://example.org`, as a browser
    /// sends it in `Origin`) to open `/ws`, besides the listener's own
    /// origin and clients that send no `Origin`. Repeatable.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Closes a connection whose message (all its fragments) passes
    /// `bytes` with 1009. Default [`DEFAULT_MAX_MESSAGE`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// Returns whether a page from `origin` may open the socket of a
    /// listener reached as `host`.
    fn allows(&self, origin: &str, host: &str, secure: bool) -> bool {
        let own = if secure { "https://" } else { "http://" };
        let is_own = origin
            .get(..own.len())
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case(own))
            && origin[own.len()..].eq_ignore_ascii_case(host);
        is_own || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// What the request head gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// More of the head is needed.
    More,
    /// The upgrade is done: `response` (101) goes out first; the first
    /// `taken` bytes of the input given last were the head's, the rest are
    /// frames.
    Upgraded { response: Vec<u8>, taken: usize },
    /// Answered without an upgrade: `response` goes out, then the stream
    /// ends. `status` is 200 for the page.
    Answered { response: Vec<u8>, status: u16 },
}

/// One thing the frames gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    /// A piece of a data message's payload, unmasked; `last` ends the
    /// message.
    Data { payload: &'a [u8], last: bool },
    /// A ping: this pong (a whole frame) goes out.
    Pong(Vec<u8>),
    /// The client's close frame, with its code if it had one. Nothing
    /// more is read.
    Close { code: Option<u16> },
}

/// Why the connection fails: the close code that goes out, and why, for
/// the log and the close frame's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: u16,
    pub(crate) why: &'static str,
}

const fn fail(code: u16, why: &'static str) -> Failure {
    Failure { code, why }
}

/// The kind of a data message: it decides the kind of its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// The layer's state: the request head, the frames, or closed (a close
/// frame went out: input is discarded, output dropped).
enum State {
    Upgrade(Vec<u8>),
    Open(Frames),
    Closed,
}

/// Where the frames in are, and the reply out.
#[derive(Default)]
struct Frames {
    /// A header split across reads, so far.
    head: [u8; 14],
    head_len: u8,
    /// Inside a frame's payload: how much of it is left.
    in_frame: bool,
    remaining: u64,
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    /// Where in the mask the next payload byte is.
    mask_at: u8,
    /// The data message in progress, and its size so far.
    message: Option<Kind>,
    message_len: u64,
    utf8: Utf8Check,
    /// A control frame's payload, gathered (at most 125 bytes).
    control: Vec<u8>,
    /// The reply to the message being taken, if any.
    reply: Option<Reply>,
}

/// The reply to one message: its kind, whether a frame of it went out,
/// whether the piece the service takes now is the message's last.
#[derive(Debug, Clone, Copy)]
struct Reply {
    kind: Kind,
    started: bool,
    last: bool,
}

/// A WebSocket connection's state over its transport.
pub(crate) struct WsLayer {
    config: Arc<WebSocketConfig>,
    /// Reached over TLS: the page's own origin is `https://`.
    secure: bool,
    state: State,
    /// Messages sent whole since [`take_messages_out`](Self::take_messages_out).
    messages_out: u32,
    /// The code of the close frame sent, once one is.
    close_sent: Option<u16>,
}

impl WsLayer {
    /// Returns a layer waiting for its request head.
    pub(crate) fn new(config: Arc<WebSocketConfig>, secure: bool) -> Self {
        Self {
            config,
            secure,
            state: State::Upgrade(Vec::new()),
            messages_out: 0,
            close_sent: None,
        }
    }

    /// Returns whether the request head is still awaited.
    pub(crate) fn upgrading(&self) -> bool {
        matches!(self.state, State::Upgrade(_))
    }

    /// Returns whether some of a request head came: a connection that
    /// never sends a byte (a browser's speculative preconnect) made no
    /// request to refuse.
    pub(crate) fn request_begun(&self) -> bool {
        matches!(&self.state, State::Upgrade(held) if !held.is_empty())
    }

    /// Returns whether a close frame went out.
    pub(crate) fn closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Returns the code of the close frame sent, if one was.
    pub(crate) fn close_sent(&self) -> Option<u16> {
        self.close_sent
    }

    /// Returns whether the connection is reached over TLS.
    pub(crate) fn secure(&self) -> bool {
        self.secure
    }

    /// Returns and resets the count of messages sent whole.
    pub(crate) fn take_messages_out(&mut self) -> u32 {
        std::mem::take(&mut self.messages_out)
    }

    /// Takes `input` into the request head, and answers it once whole.
    pub(crate) fn handshake(&mut self, input: &[u8]) -> Handshake {
        let State::Upgrade(held) = &mut self.state else {
            return Handshake::More;
        };
        let before = held.len();
        let take = input.len().min(MAX_REQUEST_HEAD + 1 - before);
        // The usual request comes in one read: parsed where it is.
        let parsed = if before == 0 {
            parse_request(&input[..take], &self.config, self.secure)
        } else {
            held.extend_from_slice(&input[..take]);
            parse_request(held, &self.config, self.secure)
        };
        let (response, status) = match parsed {
            Parsed::Partial if before + take > MAX_REQUEST_HEAD => {
                error(431, "request head too large")
            }
            Parsed::Partial => {
                if before == 0 {
                    held.extend_from_slice(&input[..take]);
                }
                return Handshake::More;
            }
            Parsed::Upgrade { response, head } => {
                self.state = State::Open(Frames::default());
                return Handshake::Upgraded {
                    response,
                    taken: head - before,
                };
            }
            Parsed::Answer { response, status } => (response, status),
        };
        self.state = State::Closed;
        Handshake::Answered { response, status }
    }

    /// Takes the next thing out of `input`, unmasking data in place, and
    /// leaves the rest in `input`. Returns `None` once `input` is used up
    /// (a partial header or control frame is kept), or the failure that
    /// closes the connection.
    pub(crate) fn next<'a>(
        &mut self,
        input: &mut &'a mut [u8],
    ) -> Result<Option<Incoming<'a>>, Failure> {
        let max = self.config.max_message as u64;
        let State::Open(frames) = &mut self.state else {
            *input = &mut [];
            return Ok(None);
        };
        loop {
            if !frames.in_frame {
                if !frames.read_header(input, max)? {
                    return Ok(None);
                }
                if let Some(event) = frames.empty_frame()? {
                    return Ok(Some(event));
                }
                continue;
            }
            if input.is_empty() {
                return Ok(None);
            }
            let n = usize::try_from(frames.remaining)
                .unwrap_or(usize::MAX)
                .min(input.len());
            let (piece, rest) = std::mem::take(input).split_at_mut(n);
            *input = rest;
            frames.unmask(piece);
            frames.remaining -= n as u64;
            let done = frames.remaining == 0;
            if done {
                frames.in_frame = false;
            }
            if frames.opcode >= 8 {
                frames.control.extend_from_slice(piece);
                if done {
                    return frames.control_frame();
                }
                continue;
            }
            return frames.data(piece, done).map(Some);
        }
    }

    /// Appends `payload`, the service's output, to `out` as a frame: a
    /// piece of the reply to the message being taken, or a message of its
    /// own outside one (text if it is valid UTF-8). Dropped after a close.
    pub(crate) fn frame(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let State::Open(frames) = &mut self.state else {
            return;
        };
        let (kind, fin) = match &mut frames.reply {
            Some(reply) => {
                let kind = (!reply.started).then_some(reply.kind);
                reply.started = !reply.last;
                (kind, reply.last)
            }
            None => {
                let text = std::str::from_utf8(payload).is_ok();
                (Some(if text { Kind::Text } else { Kind::Binary }), true)
            }
        };
        if fin {
            frames.reply = None;
            self.messages_out += 1;
        }
        let opcode = match kind {
            None => OpCode::Data(Data::Continue),
            Some(Kind::Text) => OpCode::Data(Data::Text),
            Some(Kind::Binary) => OpCode::Data(Data::Binary),
        };
        put_frame(opcode, fin, payload, out);
    }

    /// Ends the reply to the message just taken whole, appending to `out`
    /// what is still owed: the last (empty) fragment of a reply begun, or
    /// an empty message when the service wrote nothing, so that every
    /// message has exactly one reply. A reply sent whole owes nothing.
    pub(crate) fn end_reply(&mut self, out: &mut Vec<u8>) {
        let State::Open(frames) = &mut self.state else {
            return;
        };
        let Some(reply) = frames.reply.take() else {
            return;
        };
        let opcode = match (reply.started, reply.kind) {
            (true, _) => OpCode::Data(Data::Continue),
            (false, Kind::Text) => OpCode::Data(Data::Text),
            (false, Kind::Binary) => OpCode::Data(Data::Binary),
        };
        self.messages_out += 1;
        put_frame(opcode, true, &[], out);
    }

    /// Appends a close frame with `code` and `reason` to `out`, once:
    /// nothing more goes out or comes in after it.
    pub(crate) fn close(&mut self, code: u16, reason: &str, out: &mut Vec<u8>) {
        if self.closed() {
            return;
        }
        self.state = State::Closed;
        self.close_sent = Some(code);
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.to_be_bytes());
        // A control frame carries at most 125 bytes.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        put_frame(OpCode::Control(Control::Close), true, &payload, out);
    }
}

/// Appends a server frame (unmasked) to `out`.
fn put_frame(opcode: OpCode, is_final: bool, payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader {
        is_final,
        opcode,
        ..FrameHeader::default()
    };
    out.reserve(header.len(payload.len() as u64) + payload.len());
    // Writing to a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

impl Frames {
    /// Reads a frame header from `input` (with what an earlier read left).
    /// Returns whether one is whole; checks it against the rules.
    fn read_header(&mut self, input: &mut &mut [u8], max: u64) -> Result<bool, Failure> {
        let held = usize::from(self.head_len);
        let take = input.len().min(self.head.len() - held);
        self.head[held..held + take].copy_from_slice(&input[..take]);
        let mut cursor = Cursor::new(&self.head[..held + take]);
        let parsed = FrameHeader::parse(&mut cursor).map_err(|_| fail(1002, "reserved opcode"))?;
        let Some((header, length)) = parsed else {
            self.head_len = (held + take) as u8;
            *input = &mut std::mem::take(input)[take..];
            return Ok(false);
        };
        let used = cursor.position() as usize - held;
        *input = &mut std::mem::take(input)[used..];
        self.head_len = 0;
        self.check(&header, length, max)?;
        self.in_frame = true;
        self.remaining = length;
        self.opcode = u8::from(header.opcode);
        self.fin = header.is_final;
        self.mask = header.mask.unwrap_or_default();
        self.mask_at = 0;
        Ok(true)
    }

    /// Checks a frame's header against RFC 6455 and the size limit, and
    /// starts or continues its message.
    fn check(&mut self, header: &FrameHeader, length: u64, max: u64) -> Result<(), Failure> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(fail(1002, "RSV bits without an extension"));
        }
        if header.mask.is_none() {
            return Err(fail(1002, "unmasked client frame"));
        }
        match header.opcode {
            OpCode::Control(_) if !header.is_final || length > 125 => {
                Err(fail(1002, "fragmented or long control frame"))
            }
            OpCode::Control(_) => {
                self.control.clear();
                Ok(())
            }
            OpCode::Data(Data::Continue) if self.message.is_none() => {
                Err(fail(1002, "continuation with no message"))
            }
            OpCode::Data(Data::Text | Data::Binary) if self.message.is_some() => {
                Err(fail(1002, "new message inside a fragmented one"))
            }
            OpCode::Data(data) => {
                if let Data::Text | Data::Binary = data {
                    let text = data == Data::Text;
                    self.message = Some(if text { Kind::Text } else { Kind::Binary });
                    self.message_len = 0;
                    self.utf8 = Utf8Check::default();
                }
                self.message_len = self.message_len.saturating_add(length);
                if self.message_len > max {
                    return Err(fail(1009, "message too big"));
                }
                Ok(())
            }
        }
    }

    /// Handles a frame whose payload is empty, which no payload read will
    /// finish: a control frame, or the end of a message.
    fn empty_frame<'a>(&mut self) -> Result<Option<Incoming<'a>>, Failure> {
        if self.remaining > 0 {
            return Ok(None);
        }
        self.in_frame = false;
        if self.opcode >= 8 {
            return self.control_frame();
        }
        if self.fin {
            return self.data(&mut [], true).map(Some);
        }
        Ok(None)
    }

    /// Unmasks a piece of the current frame's payload in place.
    fn unmask(&mut self, piece: &mut [u8]) {
        let at = usize::from(self.mask_at);
        for (i, byte) in piece.iter_mut().enumerate() {
            *byte ^= self.mask[(at + i) & 3];
        }
        self.mask_at = ((at + piece.len()) & 3) as u8;
    }

    /// Checks a piece of a data message and hands it on; `frame_done`
    /// ends its frame.
    fn data<'a>(&mut self, piece: &'a mut [u8], frame_done: bool) -> Result<Incoming<'a>, Failure> {
        let last = frame_done && self.fin;
        let kind = self.message.unwrap_or(Kind::Binary);
        if kind == Kind::Text && !self.utf8.feed(piece, last) {
            return Err(fail(1007, "text that is not UTF-8"));
        }
        let started = self.reply.is_some_and(|reply| reply.started);
        self.reply = Some(Reply {
            kind,
            started,
            last,
        });
        if last {
            self.message = None;
        }
        Ok(Incoming::Data {
            payload: piece,
            last,
        })
    }

    /// Answers a whole control frame: a ping's pong, the client's close
    /// (checked); a pong is taken and dropped.
    fn control_frame<'a>(&mut self) -> Result<Option<Incoming<'a>>, Failure> {
        match OpCode::from(self.opcode) {
            OpCode::Control(Control::Ping) => {
                let mut pong = Vec::with_capacity(2 + self.control.len());
                put_frame(
                    OpCode::Control(Control::Pong),
                    true,
                    &self.control,
                    &mut pong,
                );
                Ok(Some(Incoming::Pong(pong)))
            }
            OpCode::Control(Control::Close) => {
                let code = match self.control.as_slice() {
                    [] => None,
                    [_] => return Err(fail(1002, "close frame of one byte")),
                    [high, low, reason @ ..] => {
                        let code = u16::from_be_bytes([*high, *low]);
                        if !CloseCode::from(code).is_allowed() {
                            return Err(fail(1002, "close code not allowed"));
                        }
                        if std::str::from_utf8(reason).is_err() {
                            return Err(fail(1007, "close reason not UTF-8"));
                        }
                        Some(code)
                    }
                };
                Ok(Some(Incoming::Close { code }))
            }
            _ => Ok(None),
        }
    }
}

/// UTF-8 checked a piece at a time: a character split between pieces (or
/// fragments) is held until it is whole.
#[derive(Default)]
struct Utf8Check {
    held: [u8; 4],
    held_len: u8,
}

impl Utf8Check {
    /// Takes the next piece of a text message; `last` ends it. Returns
    /// whether the text is still valid UTF-8.
    fn feed(&mut self, mut piece: &[u8], last: bool) -> bool {
        while self.held_len > 0 && !piece.is_empty() {
            self.held[usize::from(self.held_len)] = piece[0];
            self.held_len += 1;
            piece = &piece[1..];
            match std::str::from_utf8(&self.held[..usize::from(self.held_len)]) {
                Ok(_) => self.held_len = 0,
                Err(error) if error.error_len().is_some() => return false,
                Err(_) => {}
            }
        }
        match std::str::from_utf8(piece) {
            Ok(_) => {}
            Err(error) if error.error_len().is_some() => return false,
            Err(error) => {
                let rest = &piece[error.valid_up_to()..];
                self.held[..rest.len()].copy_from_slice(rest);
                self.held_len = rest.len() as u8;
            }
        }
        !(last && self.held_len > 0)
    }
}

/// What the request head is.
enum Parsed {
    Partial,
    Upgrade { response: Vec<u8>, head: usize },
    Answer { response: Vec<u8>, status: u16 },
}

/// Reads a request head and decides its answer.
fn parse_request(bytes: &[u8], config: &WebSocketConfig, secure: bool) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head = match request.parse(bytes) {
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Ok(httparse::Status::Complete(head)) => head,
        Err(httparse::Error::TooManyHeaders) => return answer(error(431, "too many headers")),
        Err(_) => return answer(error(400, "not an HTTP/1.1 request")),
    };
    let (Some(method), Some(path)) = (request.method, request.path) else {
        return answer(error(400, "not an HTTP/1.1 request"));
    };
    let route = path.split_once('?').map_or(path, |(route, _)| route);
    match route {
        "/" => answer(page(method, config)),
        "/ws" if method != "GET" => answer(not_allowed("GET")),
        "/ws" => match upgrade(&request, config, secure) {
            Ok(response) => Parsed::Upgrade { response, head },
            Err(refusal) => answer(refusal),
        },
        _ => answer(error(
            404,
            "not found: the page is at / and the socket at /ws",
        )),
    }
}

fn answer((response, status): (Vec<u8>, u16)) -> Parsed {
    Parsed::Answer { response, status }
}

/// Answers `GET /` (or `HEAD /`) with the page.
fn page(method: &str, config: &WebSocketConfig) -> (Vec<u8>, u16) {
    let Some(page) = &config.page else {
        return error(404, "no page here; the socket is at /ws");
    };
    if method != "GET" && method != "HEAD" {
        return not_allowed("GET, HEAD");
    }
    let mut response = format!(
        "HTTP/1.1 200 OK\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Cache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'unsafe-inline'; connect-src 'self'\r\n\
         Connection: close\r\n\r\n",
        page.len()
    )
    .into_bytes();
    if method == "GET" {
        response.extend_from_slice(page);
    }
    (response, 200)
}

/// Checks an upgrade request (RFC 6455 §4.2.1) and the Origin; returns
/// the 101 response, or the refusal.
fn upgrade(
    request: &httparse::Request<'_, '_>,
    config: &WebSocketConfig,
    secure: bool,
) -> Result<Vec<u8>, (Vec<u8>, u16)> {
    let header = |name: &str| {
        let mut values = request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name));
        values
            .next()
            .map(|h| std::str::from_utf8(h.value).unwrap_or(""))
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|value| {
            value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    if request.version != Some(1) {
        return Err(error(400, "a WebSocket upgrade needs HTTP/1.1"));
    }
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err(upgrade_required(
            "this is a WebSocket endpoint: upgrade to websocket",
        ));
    }
    if header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(upgrade_required("only WebSocket version 13 is spoken"));
    }
    let Some(host) = header("host") else {
        return Err(error(400, "no Host header"));
    };
    let Some(key) = header("sec-websocket-key")
        .map(str::trim)
        .filter(|key| is_key(key))
    else {
        return Err(error(
            400,
            "Sec-WebSocket-Key missing or not 16 bytes in base64",
        ));
    };
    if let Some(origin) = header("origin") {
        if !config.allows(origin.trim(), host.trim(), secure) {
            return Err(error(403, "origin not allowed (see shoutd --ws-origin)"));
        }
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes())
}

/// Returns whether `key` is 16 bytes in base64: 22 characters of the
/// alphabet, then `==`.
fn is_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes.ends_with(b"==")
        && bytes[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// Returns a refusal with `status` and a one-line body saying `why`.
fn error(status: u16, why: &str) -> (Vec<u8>, u16) {
    respond(status, "", why)
}

fn not_allowed(allow: &str) -> (Vec<u8>, u16) {
    respond(405, &format!("Allow: {allow}\r\n"), "method not allowed")
}

fn upgrade_required(why: &str) -> (Vec<u8>, u16) {
    respond(
        426,
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
        why,
    )
}

fn respond(status: u16, headers: &str, why: &str) -> (Vec<u8>, u16) {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        _ => "Request Header Fields Too Large",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         {headers}Connection: close\r\n\r\n{why}\n",
        why.len() + 1
    );
    (response.into_bytes(), status)
}

#[cfg(test)]
mod tests;
