//! What an event loop knows of a non-blocking stream socket's readiness, and
//! the reads and writes that keep that knowledge true.
//!
//! mio's events are edge-triggered: an event says a socket *became*
//! readable or writable, and no new event comes for readiness already
//! reported. So a loop must remember readiness itself and forget it only
//! when the kernel says so: a `WouldBlock`, or a read or write shorter than
//! asked, which means the same one system call earlier. The server's
//! connections and the load generator's keep this contract through
//! [`StreamReadiness`], so that it is written once.
//!
//! A short read means the receive queue is empty, with two exceptions, after
//! which reads go on until `WouldBlock`:
//! - the peer hung up (`EPOLLRDHUP`): the end of stream raises no new event;
//! - urgent data is queued (`EPOLLPRI`): a read stops short at the urgent
//!   mark although more data waits behind it (with `SO_OOBINLINE` set, the
//!   urgent byte itself is read in line).
//!
//! Once either was signalled, the rule holds for the rest of the socket's
//! life: it costs one more read per wake-up, on that socket alone.

use mio::event::Event;
use std::io::{self, Read, Write};

/// The last known readiness of one stream socket.
///
/// One byte, for a server that keeps one per connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamReadiness(u8);

const READABLE: u8 = 1;
const WRITABLE: u8 = 2;
/// A short read does not prove the socket drained: read to `WouldBlock`.
const READ_TO_WOULD_BLOCK: u8 = 4;

impl StreamReadiness {
    /// Returns the readiness of a socket nothing is known of yet: neither
    /// readable nor writable until an event says so.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what `event` says. An error or a closed side counts as ready,
    /// so that the next call reports it.
    pub fn note(&mut self, event: &Event) {
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.0 |= READABLE;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            self.0 |= WRITABLE;
        }
        if event.is_read_closed() || event.is_priority() {
            self.0 |= READ_TO_WOULD_BLOCK;
        }
    }

    /// Returns whether a read may find data.
    pub fn is_readable(&self) -> bool {
        self.0 & READABLE != 0
    }

    /// Returns whether a write may be taken.
    pub fn is_writable(&self) -> bool {
        self.0 & WRITABLE != 0
    }

    /// Takes the socket as readable, as an event saying so would: for a
    /// caller that learns readiness otherwise (a test, another poller).
    pub fn mark_readable(&mut self) {
        self.0 |= READABLE;
    }

    /// Takes the socket as writable, as an event saying so would.
    pub fn mark_writable(&mut self) {
        self.0 |= WRITABLE;
    }

    /// Forgets readability, as when the stream is no longer read from.
    pub fn clear_readable(&mut self) {
        self.0 &= !READABLE;
    }

    /// Forgets writability, as when a connection is still being established.
    pub fn clear_writable(&mut self) {
        self.0 &= !WRITABLE;
    }

    /// Reads once into `buffer` if the socket may be readable.
    ///
    /// Returns `Ok(None)` when there is nothing to read now (readability is
    /// then forgotten until the next event), `Ok(Some(0))` at end of stream,
    /// and `Ok(Some(n))` after reading `n` bytes. A read shorter than
    /// `buffer` forgets readability too, unless the peer hung up or urgent
    /// data was signalled; `Interrupted` is retried.
    ///
    /// # Errors
    /// Any other error of the read.
    pub fn read(&mut self, stream: &mut impl Read, buffer: &mut [u8]) -> io::Result<Option<usize>> {
        while self.is_readable() {
            match stream.read(buffer) {
                Ok(read) => {
                    if read < buffer.len() && read > 0 && self.0 & READ_TO_WOULD_BLOCK == 0 {
                        self.clear_readable();
                    }
                    return Ok(Some(read));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.clear_readable(),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    /// Writes as much of `bytes` as the socket takes while it may be
    /// writable. Returns the number of bytes written; a short write or a
    /// `WouldBlock` forgets writability, and `Interrupted` is retried.
    ///
    /// # Errors
    /// `WriteZero` when the socket takes no byte, or any other error of the
    /// write.
    pub fn write(&mut self, stream: &mut impl Write, bytes: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        while self.is_writable() && written < bytes.len() {
            match stream.write(&bytes[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    // The send buffer is full: the kernel signals when it has
                    // room, so skip the write that would only say WouldBlock.
                    if written < bytes.len() {
                        self.clear_writable();
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.clear_writable(),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A stream that returns scripted results, one per call.
    struct Scripted {
        reads: VecDeque<io::Result<usize>>,
        writes: VecDeque<io::Result<usize>>,
    }

    impl Read for Scripted {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            self.reads.pop_front().expect("no read beyond the script")
        }
    }

    impl Write for Scripted {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.writes.pop_front().expect("no write beyond the script")
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn scripted(reads: Vec<io::Result<usize>>, writes: Vec<io::Result<usize>>) -> Scripted {
        Scripted {
            reads: reads.into(),
            writes: writes.into(),
        }
    }

    fn ready() -> StreamReadiness {
        let mut readiness = StreamReadiness::new();
        readiness.mark_readable();
        readiness.mark_writable();
        readiness
    }

    #[test]
    fn a_short_read_forgets_readability() {
        let mut readiness = ready();
        let mut stream = scripted(vec![Ok(10)], vec![]);
        let mut buffer = [0; 64];
        assert_eq!(readiness.read(&mut stream, &mut buffer).unwrap(), Some(10));
        assert!(!readiness.is_readable());
        assert_eq!(readiness.read(&mut stream, &mut buffer).unwrap(), None);
    }

    #[test]
    fn a_full_read_keeps_readability_until_would_block() {
        let mut readiness = ready();
        let would_block = io::Error::from(io::ErrorKind::WouldBlock);
        let mut stream = scripted(vec![Ok(64), Err(would_block)], vec![]);
        let mut buffer = [0; 64];
        assert_eq!(readiness.read(&mut stream, &mut buffer).unwrap(), Some(64));
        assert!(readiness.is_readable());
        assert_eq!(readiness.read(&mut stream, &mut buffer).unwrap(), None);
        assert!(!readiness.is_readable());
    }

    #[test]
    fn after_a_hang_up_or_urgent_data_short_reads_go_on_to_would_block() {
        let mut readiness = StreamReadiness(ready().0 | READ_TO_WOULD_BLOCK);
        let interrupted = io::Error::from(io::ErrorKind::Interrupted);
        let mut stream = scripted(vec![Ok(5), Err(interrupted), Ok(3), Ok(0)], vec![]);
        let mut buffer = [0; 64];
        assert_eq!(readiness.read(&mut stream, &mut buffer).unwrap(), Some(5));
        assert_eq!(readiness.read(&mut stream, &mut buffer).unwrap(), Some(3));
        assert_eq!(readiness.read(&mut stream, &mut buffer).unwrap(), Some(0));
    }

    #[test]
    fn a_short_write_forgets_writability_and_errors_are_returned() {
        let mut readiness = ready();
        let mut stream = scripted(vec![], vec![Ok(3)]);
        assert_eq!(readiness.write(&mut stream, b"hello").unwrap(), 3);
        assert!(!readiness.is_writable());
        assert_eq!(readiness.write(&mut stream, b"lo").unwrap(), 0);

        let mut readiness = ready();
        let mut stream = scripted(vec![], vec![Ok(0)]);
        let error = readiness.write(&mut stream, b"x").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WriteZero);
    }
}
