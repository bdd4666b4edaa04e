//! shoutd under a service manager, played by the test: sockets passed as
//! descriptors 3 and up with `LISTEN_FDS` (systemd socket activation), and
//! `READY=1`/`STOPPING=1` sent to the test's `NOTIFY_SOCKET`.
//!
//! The descriptors are mapped with `command-fds`; `sh` sets `LISTEN_PID` to
//! its own pid and then `exec`s shoutd, which keeps that pid, as systemd
//! does after its fork. `systemd-socket-activate` itself is exercised by
//! the e2e scenario `socket-activation`, which can skip where it is missing.

use crate::support::{ServerProcess, TIMEOUT, round_trip};
use command_fds::{CommandFdExt, FdMapping};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;

/// A command that runs this package's shoutd with `args` as systemd would:
/// `fds` as descriptors 3, 4, …, `LISTEN_FDS` their count and `LISTEN_PID`
/// shoutd's pid.
fn activated_shoutd(fds: Vec<OwnedFd>, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"LISTEN_PID=$$ exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_shoutd"))
        .args(args)
        .env("LISTEN_FDS", fds.len().to_string());
    let mappings = fds
        .into_iter()
        .zip(3..)
        .map(|(parent_fd, child_fd)| FdMapping {
            parent_fd,
            child_fd,
        })
        .collect();
    command
        .fd_mappings(mappings)
        .expect("descriptors 3 and up are free in the child");
    command
}

#[test]
fn serves_the_passed_sockets_tcp_and_udp_by_type_with_their_names() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (tcp_addr, udp_addr) = (listener.local_addr().unwrap(), udp.local_addr().unwrap());
    // UDP first: the type, not the order, decides how a socket is served.
    let mut command = activated_shoutd(vec![udp.into(), listener.into()], &[]);
    command.env("LISTEN_FDNAMES", "dns:web");
    let server = ServerProcess::start("shoutd", &mut command, 2).unwrap_or_else(|e| panic!("{e}"));
    let listening = server.listening();
    assert_eq!(listening.tcp(), Some(tcp_addr), "{listening:?}");
    assert_eq!(listening.udp(), Some(udp_addr), "{listening:?}");
    assert_eq!(
        listening.note("tcp", tcp_addr),
        Some("socket activation, fd 4, web")
    );
    assert_eq!(
        listening.note("udp", udp_addr),
        Some("socket activation, fd 3, dns")
    );

    round_trip(&mut TcpStream::connect(tcp_addr).unwrap(), "passed tcp");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.send_to(b"passed udp", udp_addr).unwrap();
    let mut answer = [0; 64];
    let (len, from) = client.recv_from(&mut answer).unwrap();
    assert_eq!((&answer[..len], from), (&b"PASSED UDP"[..], udp_addr));

    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait();
    assert_eq!(status, Some(0), "{stderr}");
}

#[test]
fn sockets_for_another_pid_are_left_alone() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let passed = listener.local_addr().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_shoutd"));
    command
        .args(["--tcp", "127.0.0.1:0"])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .fd_mappings(vec![FdMapping {
            parent_fd: listener.into(),
            child_fd: 3,
        }])
        .unwrap();
    let server = ServerProcess::start("shoutd", &mut command, 1).unwrap_or_else(|e| panic!("{e}"));
    server.signal(libc::SIGTERM);
    let listening = server.listening().addrs("tcp");
    let (status, stderr) = server.wait();
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(listening.len(), 1);
    assert_ne!(listening[0], passed, "served a socket meant for pid 1");
}

#[test]
fn a_passed_socket_of_another_kind_exits_2_naming_it() {
    let (unix, _peer) = UnixDatagram::pair().unwrap();
    let mut command = activated_shoutd(vec![unix.into()], &[]);
    command.env("LISTEN_FDNAMES", "odd");
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("passed socket fd 3 (odd) is neither a TCP listener nor a UDP socket"),
        "{stderr}"
    );
}

#[test]
fn a_connected_tcp_socket_is_refused_as_not_listening() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let connected = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let output = activated_shoutd(vec![connected.into()], &[])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not listening"), "{stderr}");
}

/// A Unix datagram socket at a fresh path, removed on drop.
struct NotifySocket {
    path: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn bind(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("shoutd-notify-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        Self { path, socket }
    }

    /// Returns the next notice, failing the test after [`TIMEOUT`].
    fn next(&self) -> String {
        let mut buffer = [0; 512];
        let len = self
            .socket
            .recv(&mut buffer)
            .unwrap_or_else(|e| panic!("no notice within {TIMEOUT:?}: {e}"));
        String::from_utf8_lossy(&buffer[..len]).into_owned()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn notify_socket_gets_ready_once_serving_then_stopping_on_sigterm() {
    let notify = NotifySocket::bind("ready");
    let mut command = Command::new(env!("CARGO_BIN_EXE_shoutd"));
    command
        .args(["--tcp", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &notify.path);
    let server = ServerProcess::start("shoutd", &mut command, 1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(notify.next().trim_end(), "READY=1");
    // Ready means serving: a client is answered now.
    round_trip(
        &mut TcpStream::connect(server.listening().tcp().unwrap()).unwrap(),
        "ready",
    );
    server.signal(libc::SIGTERM);
    assert_eq!(notify.next().trim_end(), "STOPPING=1");
    let (status, stderr) = server.wait();
    assert_eq!(status, Some(0), "{stderr}");
}
