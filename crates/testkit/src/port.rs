//! Port numbers for programs that must be told one, rather than binding
//! port 0 and saying which they got.

use std::net::{TcpListener, UdpSocket};

/// Returns a port number that was free a moment ago on 127.0.0.1 for both
/// TCP and UDP, for a server that takes a number (a lecture peer) or a
/// test of one number on both transports.
///
/// # Panics
/// When 16 tries find none free on both.
pub fn free_port() -> u16 {
    for _ in 0..16 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP in 16 tries");
}
