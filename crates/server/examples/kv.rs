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
//! Commands may arrive cut anywhere: a session holds the unfinished line.
//! The second argument is the number of workers (default 2).

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
    /// The unfinished command line.
    type Session = Vec<u8>;

    fn open(&self, _conn: &mut ConnectionContext<'_>) -> Vec<u8> {
        Vec::new()
    }

    fn data(&self, held: &mut Vec<u8>, input: &[u8], conn: &mut ConnectionContext<'_>) {
        held.extend_from_slice(input);
        let mut start = 0;
        while let Some(end) = held[start..].iter().position(|&byte| byte == b'\n') {
            let line = &held[start..start + end];
            start += end + 1;
            if !self.command(line, conn.output()) {
                conn.close();
                return;
            }
        }
        held.drain(..start);
        if held.len() > MAX_LINE {
            conn.write(b"ERR line too long\n");
            conn.close();
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
