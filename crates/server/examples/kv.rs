//! A line key-value store shared by every connection and every worker.
//!
//! ```text
//! cargo run -p shout-server --example kv -- 127.0.0.1:7000 2
//! printf 'SET a 1\nGET a\nQUIT\n' | nc 127.0.0.1 7000     # OK, 1, BYE
//! ```
//!
//! Commands, one a line: `SET key value` answers `OK`; `GET key` answers
//! the value or `NOT_FOUND`; `QUIT` answers `BYE` and the server closes
//! the connection; anything else answers a line starting with `ERR`.
//! Commands may arrive cut anywhere: a session is a
//! [`LineFramer`](shout_protocol::LineFramer), which holds the unfinished
//! line. The second argument is the number of workers (default 2).

use shout_protocol::{Frame, LineFramer};
use shout_server::{ConnectionContext, ServerBuilder, StreamService};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

/// The longest command line; a longer one is an error and ends the
/// connection, so a client cannot make a session hold unbounded bytes.
const MAX_LINE: usize = 64 * 1024;

#[derive(Default)]
pub(crate) struct Store {
    /// One map for all workers: a lock held only for one lookup or insert.
    entries: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
}

impl Store {
    /// Answers one command line (without its newline) into `out`; returns
    /// whether the connection goes on.
    fn command(&self, line: &[u8], out: &mut Vec<u8>) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (verb, rest) = match line.iter().position(|&byte| byte == b' ') {
            Some(space) => (&line[..space], &line[space + 1..]),
            None => (line, &b""[..]),
        };
        // A panicking holder (none here) would leave the map whole: go on.
        let entries = || self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match verb {
            b"SET" => match rest.iter().position(|&byte| byte == b' ') {
                Some(space) if space > 0 => {
                    let (key, value) = (&rest[..space], &rest[space + 1..]);
                    entries().insert(key.to_vec(), value.to_vec());
                    out.extend_from_slice(b"OK\n");
                }
                _ => out.extend_from_slice(b"ERR usage: SET key value\n"),
            },
            b"GET" if !rest.is_empty() && !rest.contains(&b' ') => match entries().get(rest) {
                Some(value) => {
                    out.extend_from_slice(value);
                    out.push(b'\n');
                }
                None => out.extend_from_slice(b"NOT_FOUND\n"),
            },
            b"GET" => out.extend_from_slice(b"ERR usage: GET key\n"),
            b"QUIT" if rest.is_empty() => {
                out.extend_from_slice(b"BYE\n");
                return false;
            }
            _ => out.extend_from_slice(b"ERR unknown command\n"),
        }
        true
    }
}

impl StreamService for Store {
    /// The command lines, and the unfinished one.
    type Session = LineFramer;

    fn open(&self, _conn: &mut ConnectionContext<'_>) -> LineFramer {
        LineFramer::new(MAX_LINE)
    }

    fn data(&self, lines: &mut LineFramer, mut input: &[u8], conn: &mut ConnectionContext<'_>) {
        while let Some(frame) = lines.next_frame(&mut input) {
            let Frame::Line(line) = frame else {
                conn.write(b"ERR line too long\n");
                conn.close();
                return;
            };
            if !self.command(line, conn.output()) {
                // What follows `QUIT` is not answered: the rest of the
                // input is dropped, and output written after a close would
                // still be sent.
                conn.close();
                return;
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let workers: usize = args.next().map_or(Ok(2), |n| n.parse())?;
    let server = ServerBuilder::tcp_only(Store::default())
        .tcp(addr)
        .workers(workers)
        .build()?;
    for addr in server.handle().tcp_addrs() {
        println!("listening tcp {addr}");
    }
    server.run()?;
    Ok(())
}
