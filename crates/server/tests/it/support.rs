//! The library server on a thread, on port 0; the rest of the support is
//! `shout_testkit`, re-exported here.

use shout_server::{DatagramService, Handle, ServerBuilder, Stats, StreamService, Uppercase};
use std::net::SocketAddr;
use std::thread::JoinHandle;

pub(crate) use shout_testkit::*;

/// A library server running on a thread; shut down and joined on drop.
pub(crate) struct Running {
    pub(crate) handle: Handle,
    thread: Option<JoinHandle<Result<Stats, shout_server::ServerError>>>,
}

impl Running {
    pub(crate) fn tcp(&self) -> SocketAddr {
        self.handle.tcp_addrs()[0]
    }

    pub(crate) fn udp(&self) -> SocketAddr {
        self.handle.udp_addrs()[0]
    }

    /// Stops the server and returns its final counters.
    pub(crate) fn stop(mut self) -> Stats {
        self.handle.shutdown();
        let thread = self.thread.take().expect("stopped once");
        join_within(thread, TIMEOUT)
            .expect("the server thread ends within TIMEOUT of a shutdown, without panicking")
            .expect("server failed")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.shutdown();
            let _ = join_within(thread, TIMEOUT);
        }
    }
}

/// An uppercase server on 127.0.0.1, TCP and UDP on port 0, configured by
/// `configure`.
pub(crate) fn start(
    configure: impl FnOnce(ServerBuilder<Uppercase, Uppercase>) -> ServerBuilder<Uppercase, Uppercase>,
) -> Running {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let builder = ServerBuilder::new(Uppercase, Uppercase)
        .tcp(loopback)
        .udp(loopback);
    run(configure(builder))
}

/// Builds the server `builder` describes and runs it on a thread.
pub(crate) fn run<S: StreamService, D: DatagramService>(builder: ServerBuilder<S, D>) -> Running {
    try_run(builder).expect("server builds")
}

/// Builds the server `builder` describes and runs it on a thread, or
/// returns why it could not be built (a port taken, for instance).
pub(crate) fn try_run<S: StreamService, D: DatagramService>(
    builder: ServerBuilder<S, D>,
) -> Result<Running, shout_server::ServerError> {
    let server = builder.build()?;
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run());
    Ok(Running {
        handle,
        thread: Some(thread),
    })
}

/// Trickles `bytes` to `addr` a byte every 50 ms, stops `server` while the
/// client still trickles, and checks that the stop cut the connection
/// unanswered: `stop` waits at most `TIMEOUT`, far less than the drain
/// timeout the caller gave. Returns the stop's counters.
pub(crate) fn stop_while_trickling(server: Running, addr: SocketAddr, bytes: Vec<u8>) -> Stats {
    let stream = connect(addr);
    let trickler = trickle_in_background(
        stream.try_clone().unwrap(),
        bytes,
        std::time::Duration::from_millis(50),
    );
    wait_until("the connection to be accepted", || {
        server.handle.stats().connections_accepted == 1
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let stats = server.stop();
    assert_eq!(stats.closed_by_stop, 1, "{stats}");
    assert_closed_unanswered(stream);
    assert!(
        join_within(trickler, TIMEOUT).is_some(),
        "the trickler ends"
    );
    stats
}
