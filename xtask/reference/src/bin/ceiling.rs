//! `reference-ceiling`: the cheapest server that answers the benchmark's
//! requests correctly, so that `cargo xtask bench` can tell how fast the load
//! generator itself can go. A figure of shoutd close to this one measures the
//! load generator, not shoutd.
//!
//! `--loops N` event loops (default: one per core), each its own thread,
//! `mio::Poll`, listener and UDP socket on the same ports through
//! `SO_REUSEPORT`, as `shoutd --workers N` does. The bench runs it with one
//! loop and with one per core and takes the faster as the ceiling: on a
//! machine with few cores a second loop takes CPU from the load generator,
//! on a larger one a single loop is the limit. Edge-triggered; each read is uppercased in
//! place as ASCII (the benchmark sends lowercase ASCII, so the answer is the
//! protocol's) and written straight back from the read buffer. No limits, no
//! idle list, no logging, no counters: none of what makes shoutd a product.
//! A partial write is kept and the connection is not read again until it
//! drains, so no byte is ever lost. Datagrams are received and answered in
//! batches (`recvmmsg`/`sendmmsg`), as shoutd does them; a UDP reply that
//! would block is dropped.
//! Its listen backlog is shoutd's (1024), so neither queues more.

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use shout_reference::{Addresses, announce};
use shout_socket::batch::{MAX_BATCH, RecvBatch, SendQueue};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};

const LISTENER: Token = Token(usize::MAX);
const DATAGRAMS: Token = Token(usize::MAX - 1);

/// Output a connection could not send yet.
struct Connection {
    stream: TcpStream,
    unsent: Vec<u8>,
}

fn main() -> io::Result<()> {
    let (loops, rest) = loops_from_args(std::env::args().skip(1)).unwrap_or_else(|message| {
        eprintln!("reference-ceiling: {message}");
        std::process::exit(2);
    });
    let addresses = Addresses::parse(rest).unwrap_or_else(|message| {
        eprintln!("reference-ceiling: {message}; or --loops N");
        std::process::exit(2);
    });
    let loops =
        loops.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // The first loop binds what was asked (port 0: a free port); the others
    // bind the ports it got.
    let (mut tcp, mut udp) = (addresses.tcp, addresses.udp);
    let mut sockets = Vec::with_capacity(loops);
    for _ in 0..loops {
        let listener = listen(tcp)?;
        let datagrams = bind_datagrams(udp)?;
        tcp = listener.local_addr()?;
        udp = datagrams.local_addr()?;
        sockets.push((listener, datagrams));
    }
    announce(tcp, udp);
    let threads: Vec<_> = sockets
        .into_iter()
        .map(|(listener, datagrams)| std::thread::spawn(move || serve_loop(listener, datagrams)))
        .collect();
    for thread in threads {
        thread.join().expect("an event loop panicked")?;
    }
    Ok(())
}

/// Takes `--loops N` out of the arguments; the rest are the addresses.
fn loops_from_args(
    args: impl IntoIterator<Item = String>,
) -> Result<(Option<usize>, Vec<String>), String> {
    let mut loops = None;
    let mut rest = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg != "--loops" {
            rest.push(arg);
            continue;
        }
        let value = args.next().ok_or("`--loops` needs a number")?;
        match value.parse::<usize>() {
            Ok(n) if n > 0 => loops = Some(n),
            _ => return Err(format!("`--loops {value}`: a number of loops, at least 1")),
        }
    }
    Ok((loops, rest))
}

fn serve_loop(mut listener: TcpListener, mut udp: UdpSocket) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    poll.registry()
        .register(&mut udp, DATAGRAMS, Interest::READABLE)?;
    let mut connections = Slab::new();
    let mut buffer = vec![0; 64 * 1024];
    let mut datagrams = Datagrams {
        received: RecvBatch::new(MAX_BATCH),
        replies: SendQueue::new(),
        answer: Vec::new(),
    };
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(error) = poll.poll(&mut events, None) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        for event in &events {
            match event.token() {
                LISTENER => accept(&poll, &listener, &mut connections),
                DATAGRAMS => answer_datagrams(&udp, &mut datagrams),
                Token(key) => {
                    let open = match connections.get_mut(key) {
                        Some(connection) => serve(connection, &mut buffer).unwrap_or(false),
                        None => continue,
                    };
                    if !open {
                        let mut connection = connections.remove(key);
                        let _ = poll.registry().deregister(&mut connection.stream);
                    }
                }
            }
        }
    }
}

fn socket_for(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn bind_datagrams(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket_for(addr, Type::DGRAM, Protocol::UDP)?;
    Ok(UdpSocket::from_std(socket.into()))
}

/// A listener with shoutd's backlog (1024) rather than std's and mio's 128,
/// so that a burst of connections is queued, not dropped: the ceiling must
/// not be what limits the idle-connections test.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket_for(addr, Type::STREAM, Protocol::TCP)?;
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into()))
}

fn accept(poll: &Poll, listener: &TcpListener, connections: &mut Slab<Connection>) {
    loop {
        match listener.accept() {
            Ok((mut stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                let entry = connections.vacant_entry();
                let interest = Interest::READABLE | Interest::WRITABLE;
                if poll
                    .registry()
                    .register(&mut stream, Token(entry.key()), interest)
                    .is_ok()
                {
                    entry.insert(Connection {
                        stream,
                        unsent: Vec::new(),
                    });
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
            // A client gone before accept, or out of descriptors: try later.
            Err(_) => return,
        }
    }
}

/// Sends what is pending, then reads and answers until the socket is empty
/// or will not take more. Returns whether the connection stays open.
fn serve(connection: &mut Connection, buffer: &mut [u8]) -> io::Result<bool> {
    if !flush(&mut connection.stream, &mut connection.unsent)? {
        return Ok(true);
    }
    loop {
        let read = match connection.stream.read(buffer) {
            Ok(0) => {
                connection.stream.shutdown(Shutdown::Write)?;
                return Ok(false);
            }
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let answer = &mut buffer[..read];
        answer.make_ascii_uppercase();
        let mut written = 0;
        while written < answer.len() {
            match connection.stream.write(&answer[written..]) {
                Ok(0) => return Ok(false),
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // Read no more until this is sent (on the next writable event).
                    connection.unsent.extend_from_slice(&answer[written..]);
                    return Ok(true);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
}

/// Writes `unsent` out; returns whether all of it went.
fn flush(stream: &mut TcpStream, unsent: &mut Vec<u8>) -> io::Result<bool> {
    let mut written = 0;
    let result = loop {
        if written == unsent.len() {
            break Ok(true);
        }
        match stream.write(&unsent[written..]) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break Ok(false),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => break Err(error),
        }
    };
    unsent.drain(..written);
    result
}

/// Datagram buffers, reused: what is waiting is received with one
/// `recvmmsg` and answered with one `sendmmsg`, as shoutd does.
struct Datagrams {
    received: RecvBatch,
    replies: SendQueue,
    answer: Vec<u8>,
}

fn answer_datagrams(socket: &UdpSocket, datagrams: &mut Datagrams) {
    loop {
        match datagrams.received.recv_from(socket) {
            Ok(_) => {
                for (request, peer) in datagrams.received.iter() {
                    datagrams.answer.clear();
                    datagrams
                        .answer
                        .extend(request.iter().map(u8::to_ascii_uppercase));
                    datagrams.replies.push(peer, &datagrams.answer);
                }
                datagrams.replies.send_to(socket, |_, _| {});
                // What the socket would not take is dropped.
                datagrams.replies.clear();
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn loops_are_taken_out_and_the_addresses_left() {
        let (loops, rest) =
            loops_from_args(args(&["--tcp", "127.0.0.1:0", "--loops", "1"])).unwrap();
        assert_eq!(loops, Some(1));
        assert_eq!(rest, args(&["--tcp", "127.0.0.1:0"]));
        assert_eq!(loops_from_args(args(&[])).unwrap(), (None, vec![]));
        assert!(loops_from_args(args(&["--loops"])).is_err());
        assert!(loops_from_args(args(&["--loops", "0"])).is_err());
        assert!(loops_from_args(args(&["--loops", "two"])).is_err());
    }
}
