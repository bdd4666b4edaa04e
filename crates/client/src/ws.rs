//! The WebSocket client (`ws://` and `wss://`, RFC 6455) on tungstenite's
//! blocking `WebSocket`: [`WsUrl`] (the URL as typed), [`ws_connect`] (TCP,
//! then TLS for `wss`, then the upgrade, each timed apart),
//! [`WsConnection::exchange`] (one message, its reply) and [`ws_stream`]
//! (input of any size as messages of at most [`WS_MESSAGE_SIZE`] bytes,
//! their replies written as they come, in constant memory).
//!
//! Each message gets one reply (docs/PROTOCOL.md, "WebSocket"), so
//! replies are counted against messages sent and at most
//! [`WS_WINDOW`] messages are in flight. This module is not a server and
//! does not speak HTTP beyond the upgrade.

use crate::{ClientError, Connector, StreamTotals, Target, Transport};
use rustls::{ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// The most input bytes one message carries in [`ws_stream`].
pub const WS_MESSAGE_SIZE: usize = 16 * 1024;

/// The most messages [`ws_stream`] has sent and not seen answered.
pub const WS_WINDOW: usize = 8;

/// The largest message taken from the server: a reply is at most three
/// times its request (an uppercase can be that much longer).
const MAX_REPLY: usize = 4 * 1024 * 1024;

/// A `ws://` or `wss://` URL: scheme, host, port (default 80 or 443) and
/// the resource (default `/`; shoutd's socket is at `/ws`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    secure: bool,
    host: String,
    port: u16,
    resource: String,
}

impl FromStr for WsUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (secure, rest) = if let Some(rest) = text.strip_prefix("ws://") {
            (false, rest)
        } else if let Some(rest) = text.strip_prefix("wss://") {
            (true, rest)
        } else {
            return Err(format!("`{text}` is not a ws:// or wss:// URL"));
        };
        let (authority, resource) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_owned()),
        };
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                let port = port
                    .parse()
                    .map_err(|_| format!("`{port}` in `{text}` is not a port"))?;
                (host, port)
            }
            _ => (authority, default_port),
        };
        if host.is_empty() || host.contains(['@', ' ']) {
            return Err(format!(
                "`{text}` names no host (or one with a user, not taken)"
            ));
        }
        Ok(Self {
            secure,
            host: host.to_owned(),
            port,
            resource,
        })
    }
}

impl std::fmt::Display for WsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.resource)
    }
}

impl WsUrl {
    /// Returns whether the URL is `wss://` (TLS).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Returns the host and port to connect to.
    pub fn target(&self) -> Result<Target, ClientError> {
        let text = format!("{}:{}", self.host, self.port);
        text.parse().map_err(|error| ClientError::TlsConfig {
            reason: format!("{text}: {error}"),
        })
    }
}

/// The byte stream under the WebSocket: TCP, or TLS over it.
enum WsStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for WsStream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.read(buffer),
            Self::Tls(stream) => stream.read(buffer),
        }
    }
}

impl Write for WsStream {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.write(bytes),
            Self::Tls(stream) => stream.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(stream) => stream.flush(),
            Self::Tls(stream) => stream.flush(),
        }
    }
}

/// An upgraded WebSocket connection, and how long each step to it took.
pub struct WsConnection {
    socket: WebSocket<WsStream>,
    peer: SocketAddr,
    connect_time: Duration,
    tls_time: Option<Duration>,
    upgrade_time: Duration,
}

/// Connects to `url` through `connector` (which resolved the URL's
/// target, with its TLS for `wss`) and upgrades; `timeout` bounds each
/// wait for the server from then on.
pub fn ws_connect(
    url: &WsUrl,
    connector: &Connector,
    timeout: Option<Duration>,
) -> Result<WsConnection, ClientError> {
    let connection = connector.connect()?;
    let peer = connection.peer();
    let connect_time = connection.connect_time();
    let tls_time = connection.tls_time();
    let (tcp, tls) = connection.into_parts();
    tcp.set_read_timeout(timeout)
        .and_then(|()| tcp.set_write_timeout(timeout))
        .map_err(|error| network(peer, "setting a timeout for", error))?;
    let stream = match tls {
        Some(tls) => WsStream::Tls(Box::new(StreamOwned::new(tls, tcp))),
        None => WsStream::Plain(tcp),
    };
    let config = WebSocketConfig::default().max_message_size(Some(MAX_REPLY));
    let started = Instant::now();
    let (socket, _response) =
        tungstenite::client::client_with_config(url.to_string(), stream, Some(config)).map_err(
            |error| match error {
                tungstenite::HandshakeError::Failure(error) => ws_error(peer, error),
                tungstenite::HandshakeError::Interrupted(_) => ClientError::WebSocket {
                    addr: peer,
                    reason: "the upgrade was interrupted".into(),
                },
            },
        )?;
    let upgrade_time = started.elapsed();
    log::info!(
        "upgraded to WebSocket at {url} in {:.3} ms",
        upgrade_time.as_secs_f64() * 1e3
    );
    Ok(WsConnection {
        socket,
        peer,
        connect_time,
        tls_time,
        upgrade_time,
    })
}

impl WsConnection {
    /// Returns the server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Returns how long the TCP handshake took.
    pub fn connect_time(&self) -> Duration {
        self.connect_time
    }

    /// Returns how long the TLS handshake took, over `wss`.
    pub fn tls_time(&self) -> Option<Duration> {
        self.tls_time
    }

    /// Returns how long the upgrade (request to 101) took.
    pub fn upgrade_time(&self) -> Duration {
        self.upgrade_time
    }

    /// Sends `payload` as one message (text if it is UTF-8) and returns
    /// its reply.
    pub fn exchange(&mut self, payload: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.send(message_of(payload.to_vec()))?;
        self.reply()
    }

    /// Sends a close frame (1000) and waits, bounded by the timeout, for
    /// the server's.
    pub fn close(mut self) -> Result<(), ClientError> {
        let peer = self.peer;
        let normal = tungstenite::protocol::CloseFrame {
            code: tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "".into(),
        };
        match self.socket.close(Some(normal)) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => {}
            Err(error) => return Err(ws_error(peer, error)),
        }
        loop {
            match self.socket.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(());
                }
                Err(error) => return Err(ws_error(peer, error)),
            }
        }
    }

    fn send(&mut self, message: Message) -> Result<(), ClientError> {
        self.socket
            .send(message)
            .map_err(|error| ws_error(self.peer, error))
    }

    /// Reads the next data message, answering pings on the way.
    fn reply(&mut self) -> Result<Vec<u8>, ClientError> {
        loop {
            match self.socket.read() {
                Ok(Message::Text(text)) => return Ok(text.as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => return Ok(bytes.to_vec()),
                Ok(Message::Close(frame)) => {
                    let why = frame.map_or("no code".to_owned(), |frame| frame.to_string());
                    return Err(ClientError::WebSocket {
                        addr: self.peer,
                        reason: format!("the server closed ({why}) before its reply"),
                    });
                }
                Ok(_) => {}
                Err(error) => return Err(ws_error(self.peer, error)),
            }
        }
    }
}

/// Returns `payload` as a message: text if it is UTF-8, binary otherwise.
fn message_of(payload: Vec<u8>) -> Message {
    match String::from_utf8(payload) {
        Ok(text) => Message::text(text),
        Err(error) => Message::binary(error.into_bytes()),
    }
}

/// Sends `input` over `connection` as messages of at most
/// [`WS_MESSAGE_SIZE`] bytes (cut between characters, so text stays
/// text) and writes each reply to `output` as it comes, at most
/// [`WS_WINDOW`] messages ahead; then closes. A thread reads `input`, so
/// a reply is written as soon as it comes whether or not more input
/// does (a person typing, or a pipe). Memory is a few messages whatever
/// the input's size.
pub fn ws_stream<R, W>(
    mut connection: WsConnection,
    input: R,
    output: &mut W,
) -> Result<StreamTotals, ClientError>
where
    R: Read + Send + 'static,
    W: Write + ?Sized,
{
    let (chunks, incoming) = mpsc::sync_channel(WS_WINDOW);
    thread::Builder::new()
        .name("shout-ws-input".into())
        .spawn(move || read_messages(input, &chunks))
        .map_err(ClientError::Sender)?;
    let mut totals = StreamTotals {
        sent: 0,
        received: 0,
    };
    let mut in_flight = 0;
    let mut input_over = false;
    loop {
        let next = if in_flight < WS_WINDOW && !input_over {
            match incoming.try_recv() {
                Ok(next) => Some(next),
                Err(TryRecvError::Empty) if in_flight == 0 => next_blocking(&incoming),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Ok(None)),
            }
        } else {
            None
        };
        match next {
            Some(Ok(Some(chunk))) => {
                totals.sent += chunk.len() as u64;
                connection.send(message_of(chunk))?;
                in_flight += 1;
                continue;
            }
            Some(Ok(None)) => input_over = true,
            Some(Err(error)) => return Err(ClientError::Input(error)),
            None => {}
        }
        if in_flight == 0 {
            if input_over {
                break;
            }
            continue;
        }
        let reply = connection.reply()?;
        totals.received += reply.len() as u64;
        output
            .write_all(&reply)
            .and_then(|()| output.flush())
            .map_err(ClientError::Output)?;
        in_flight -= 1;
    }
    connection.close()?;
    Ok(totals)
}

/// Waits for the input thread's next chunk.
fn next_blocking(
    incoming: &Receiver<io::Result<Option<Vec<u8>>>>,
) -> Option<io::Result<Option<Vec<u8>>>> {
    Some(incoming.recv().unwrap_or(Ok(None)))
}

/// Reads `input` into chunks of at most [`WS_MESSAGE_SIZE`] bytes, each
/// ending on a character boundary when the input is UTF-8, and sends
/// them on; `None` at the end, an error once.
fn read_messages<R: Read>(mut input: R, chunks: &mpsc::SyncSender<io::Result<Option<Vec<u8>>>>) {
    let mut held: Vec<u8> = Vec::new();
    let mut buffer = vec![0; WS_MESSAGE_SIZE];
    loop {
        let room = WS_MESSAGE_SIZE - held.len();
        let read = match input.read(&mut buffer[..room]) {
            Ok(0) => {
                let last = (!held.is_empty()).then(|| std::mem::take(&mut held));
                if let Some(last) = last {
                    let _ = chunks.send(Ok(Some(last)));
                }
                let _ = chunks.send(Ok(None));
                return;
            }
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                let _ = chunks.send(Err(error));
                return;
            }
        };
        let mut chunk = std::mem::take(&mut held);
        chunk.extend_from_slice(&buffer[..read]);
        // A character cut at the end waits for its rest, so that text
        // goes as text; invalid bytes go as they are (binary).
        if let Err(error) = std::str::from_utf8(&chunk) {
            if error.error_len().is_none() {
                held = chunk.split_off(error.valid_up_to());
            }
        }
        if chunk.is_empty() {
            continue;
        }
        if chunks.send(Ok(Some(chunk))).is_err() {
            return;
        }
    }
}

fn network(addr: SocketAddr, action: &'static str, source: io::Error) -> ClientError {
    ClientError::Network {
        action,
        transport: Transport::Tcp,
        addr,
        source,
    }
}

/// Words a tungstenite error as the client's.
fn ws_error(addr: SocketAddr, error: tungstenite::Error) -> ClientError {
    match error {
        tungstenite::Error::Io(source)
            if matches!(
                source.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            network(
                addr,
                "waiting for",
                io::Error::from(io::ErrorKind::TimedOut),
            )
        }
        tungstenite::Error::Io(source) => network(addr, "talking to", source),
        tungstenite::Error::Tls(error) => ClientError::WebSocket {
            addr,
            reason: format!("TLS: {error}"),
        },
        tungstenite::Error::Http(response) => {
            let status = response.status();
            // shoutd answers the page's path with 200 and others with 404.
            let hint = match status.as_u16() {
                200 | 404 => " (shoutd serves its WebSocket at /ws)",
                _ => "",
            };
            ClientError::WebSocket {
                addr,
                reason: format!("the server refused the upgrade: HTTP {status}{hint}"),
            }
        }
        tungstenite::Error::Protocol(tungstenite::error::ProtocolError::HttparseError(error)) => {
            ClientError::WebSocket {
                addr,
                reason: format!(
                    "the server did not answer with HTTP ({error}): is it a WebSocket server?"
                ),
            }
        }
        error => ClientError::WebSocket {
            addr,
            reason: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_their_scheme_host_port_and_resource() {
        let url: WsUrl = "ws://localhost:12080/ws".parse().unwrap();
        assert_eq!(url.to_string(), "ws://localhost:12080/ws");
        assert!(!url.is_secure());
        let url: WsUrl = "wss://example.org".parse().unwrap();
        assert_eq!(url.to_string(), "wss://example.org:443/");
        let url: WsUrl = "ws://[::1]:9/ws?x=1".parse().unwrap();
        assert_eq!(url.target().unwrap().to_string(), "[::1]:9");
        let url: WsUrl = "ws://[::1]?q".parse().unwrap();
        assert_eq!(url.to_string(), "ws://[::1]:80/?q");
        for bad in ["http://x/ws", "ws://", "ws://host:port/", "ws://u@h/"] {
            assert!(bad.parse::<WsUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn input_is_cut_between_characters_and_invalid_bytes_pass() {
        // 'é' is two bytes: a cut inside it waits for the rest.
        let text = "é".repeat(WS_MESSAGE_SIZE);
        let (sender, chunks) = mpsc::sync_channel(64);
        read_messages(text.as_bytes(), &sender);
        let mut joined = Vec::new();
        for chunk in chunks.try_iter() {
            let Some(chunk) = chunk.unwrap() else { break };
            assert!(chunk.len() <= WS_MESSAGE_SIZE);
            assert!(
                std::str::from_utf8(&chunk).is_ok(),
                "a chunk cut a character"
            );
            joined.extend(chunk);
        }
        assert_eq!(joined, text.as_bytes());

        let (sender, chunks) = mpsc::sync_channel(8);
        read_messages(&b"ok \xff\xfe"[..], &sender);
        assert_eq!(
            chunks.recv().unwrap().unwrap(),
            Some(b"ok \xff\xfe".to_vec())
        );
        assert_eq!(chunks.recv().unwrap().unwrap(), None);
    }
}
