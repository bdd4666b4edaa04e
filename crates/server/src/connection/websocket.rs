//! The connection's WebSocket transitions: the upgrade or the HTTP answer
//! that ends it, frames in, the service's output framed out, the close
//! frame once the connection ends. The layer itself (frames, the request
//! head) is [`crate::ws`]; this module only moves the connection's phase
//! and output around it, so that every transition stays in `connection`.

use super::{Connection, Phase, Stream};
use crate::service::CloseCause;
use crate::ws::{Failure, Handshake, Incoming, WsLayer};
use std::cell::RefCell;
use std::io;

thread_local! {
    /// Where this worker frames the service's output before it goes to
    /// the transport: one buffer per thread, kept for its capacity.
    static FRAMED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The most capacity [`FRAMED`] keeps between uses.
const FRAMED_KEPT: usize = 256 * 1024;

/// Runs `then` on the thread's framing buffer, emptied.
fn with_framed<R>(then: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    FRAMED.with_borrow_mut(|framed| {
        framed.clear();
        let result = then(framed);
        if framed.capacity() > FRAMED_KEPT {
            *framed = Vec::new();
        }
        result
    })
}

impl<Session, T: Stream> Connection<Session, T> {
    /// Puts `layer` over the connection's transport: the connection
    /// answers a request head before anything else, and its service opens
    /// only on an upgrade.
    pub(crate) fn with_websocket(mut self, layer: WsLayer) -> Self {
        self.websocket = Some(Box::new(layer));
        self
    }

    /// Takes `input` into the request head; see [`WsLayer::handshake`].
    pub(crate) fn upgrade(&mut self, input: &[u8]) -> Handshake {
        match &mut self.websocket {
            Some(ws) => ws.handshake(input),
            None => Handshake::More,
        }
    }

    /// Sends the response to a request that was not an upgrade; the
    /// stream ends once it is sent. Returns the bytes the socket took.
    pub(crate) fn answer(&mut self, response: &[u8], capacity: usize) -> io::Result<usize> {
        if matches!(self.phase, Phase::Handshake) {
            self.phase = Phase::Answered;
        }
        self.send_bytes(response, capacity)
    }

    /// Sends bytes of the WebSocket protocol itself (the 101 response, a
    /// pong) as they are.
    pub(crate) fn send_protocol(&mut self, bytes: &[u8], capacity: usize) -> io::Result<usize> {
        self.send_bytes(bytes, capacity)
    }

    /// Takes the next thing out of `input`; see [`WsLayer::next`].
    pub(crate) fn next_frame<'a>(
        &mut self,
        input: &mut &'a mut [u8],
    ) -> Result<Option<Incoming<'a>>, Failure> {
        match &mut self.websocket {
            Some(ws) => ws.next(input),
            None => Ok(None),
        }
    }

    /// Sends what the reply to the message just taken still owes; see
    /// [`WsLayer::end_reply`].
    pub(crate) fn end_reply(&mut self, capacity: usize) -> io::Result<usize> {
        let Some(ws) = &mut self.websocket else {
            return Ok(0);
        };
        let mut owed = Vec::new();
        ws.end_reply(&mut owed);
        if self.corked {
            self.output.push(&owed, capacity);
            return Ok(0);
        }
        self.send_bytes(&owed, capacity)
    }

    /// Sends a close frame with `code` and `reason` (once), and ends the
    /// connection for `cause` if the service is still serving: nothing
    /// more is read, what is pending is sent, then the stream ends.
    pub(crate) fn close_websocket(
        &mut self,
        code: u16,
        reason: &str,
        cause: Option<CloseCause>,
        capacity: usize,
    ) -> io::Result<usize> {
        if let Some(cause) = cause {
            self.close_cause.get_or_insert(cause);
        }
        self.finish();
        let Some(ws) = &mut self.websocket else {
            return Ok(0);
        };
        let mut frame = Vec::new();
        ws.close(code, reason, &mut frame);
        self.send_bytes(&frame, capacity)
    }

    /// Returns and resets the count of messages sent whole.
    pub(crate) fn take_messages_out(&mut self) -> u32 {
        self.websocket
            .as_mut()
            .map_or(0, |ws| ws.take_messages_out())
    }

    /// Returns the code of the close frame sent, if one was.
    pub(crate) fn close_sent(&self) -> Option<u16> {
        self.websocket.as_ref().and_then(|ws| ws.close_sent())
    }

    /// Holds the service's output in the connection's buffer instead of
    /// writing it at once, until [`uncork`](Self::uncork): the replies to
    /// the messages of one read go out in one write, as one read's answer
    /// does over TCP.
    pub(crate) fn cork(&mut self) {
        self.corked = true;
    }

    /// Ends [`cork`](Self::cork) and writes what it held. Returns the
    /// bytes the socket took.
    pub(crate) fn uncork(&mut self) -> io::Result<usize> {
        self.corked = false;
        self.flush()
    }

    /// Sends the service's output as WebSocket frames.
    pub(super) fn send_message(&mut self, bytes: &[u8], capacity: usize) -> io::Result<usize> {
        if self.corked {
            self.push_message(bytes, capacity);
            return Ok(0);
        }
        with_framed(|framed| {
            if let Some(ws) = &mut self.websocket {
                ws.frame(bytes, framed);
            }
            self.send_bytes(framed, capacity)
        })
    }

    /// Appends the service's output, framed, to the pending output.
    pub(super) fn push_message(&mut self, bytes: &[u8], capacity: usize) {
        with_framed(|framed| {
            if let Some(ws) = &mut self.websocket {
                ws.frame(bytes, framed);
            }
            self.output.push(framed, capacity);
        });
    }

    /// On an upgraded connection that ends with no close frame sent yet,
    /// sends one: 1001 when the server stops, 1000 otherwise. Returns
    /// whether it waits to be sent.
    pub(super) fn close_websocket_when_due(&mut self) -> io::Result<bool> {
        let due = matches!(self.phase, Phase::Open(..))
            && self
                .websocket
                .as_ref()
                .is_some_and(|ws| !ws.upgrading() && !ws.closed());
        if !due {
            return Ok(false);
        }
        let (code, reason) = match self.close_cause {
            Some(CloseCause::Stopped) => (1001, "server stopping"),
            _ => (1000, ""),
        };
        let mut frame = Vec::new();
        if let Some(ws) = &mut self.websocket {
            ws.close(code, reason, &mut frame);
        }
        self.output.push(&frame, usize::MAX);
        self.flush()?;
        Ok(self.has_unsent())
    }
}
