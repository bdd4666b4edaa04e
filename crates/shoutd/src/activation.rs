//! systemd's side of shoutd: sockets passed by socket activation
//! (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`) and readiness notices
//! (`NOTIFY_SOCKET`: `READY=1`, `STOPPING=1`).
//!
//! The sockets are taken with `listenfd`, which checks each descriptor's
//! type and family before it wraps it, so shoutd needs no `unsafe` of its
//! own; `shout-socket` then checks that a stream socket is listening. The
//! notices go through `sd-notify`. Neither does anything when its
//! variables are unset, so shoutd started by hand behaves as before.
//!
//! `listenfd` removes `LISTEN_FDS` and `LISTEN_PID` once read. shoutd starts
//! no child process, and removing `LISTEN_FDNAMES` or `NOTIFY_SOCKET` is
//! `unsafe` in Rust 2024, so those two stay: the names mean nothing without
//! `LISTEN_FDS`, and the notify socket is needed until the stop begins.
//!
//! This module is not for binding sockets: `shout-server` does that.

use shout_server::{ServerBuilder, Uppercase};
use std::net::{TcpListener, UdpSocket};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: usize = 3;

/// The sockets shoutd was started with, each with the note its `listening`
/// line carries.
#[derive(Debug, Default)]
pub(crate) struct PassedSockets {
    tcp: Vec<(TcpListener, String)>,
    udp: Vec<(UdpSocket, String)>,
}

/// The notes of the passed sockets, in the order the server lists them
/// (after the sockets it bound itself).
#[derive(Debug, Default)]
pub(crate) struct Notes {
    tcp: Vec<String>,
    udp: Vec<String>,
}

impl PassedSockets {
    /// Takes every socket passed by socket activation; none when shoutd was
    /// not socket-activated (or `LISTEN_PID` names another process).
    ///
    /// # Errors
    /// When a passed descriptor is not a listening TCP socket nor a UDP
    /// socket: the message names the descriptor, and its name if given.
    pub(crate) fn take() -> Result<Self, String> {
        let mut fds = listenfd::ListenFd::from_env();
        let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
        let mut names = names.split(':');
        let mut passed = Self::default();
        for index in 0..fds.len() {
            let fd = FIRST_FD + index;
            let name = names.next().filter(|name| !name.is_empty());
            let note = match name {
                Some(name) => format!("(socket activation, fd {fd}, {name})"),
                None => format!("(socket activation, fd {fd})"),
            };
            let described = || match name {
                Some(name) => format!("passed socket fd {fd} ({name})"),
                None => format!("passed socket fd {fd}"),
            };
            if let Ok(Some(listener)) = fds.take_tcp_listener(index) {
                // A connected socket (systemd's `Accept=yes`) is a stream
                // socket too, but accepting on it would fail forever.
                match shout_socket::is_listening(&listener) {
                    Ok(true) => passed.tcp.push((listener, note)),
                    Ok(false) => {
                        return Err(format!(
                            "{} is a TCP socket that is not listening \
                             (shoutd needs Accept=no)",
                            described()
                        ));
                    }
                    Err(error) => return Err(format!("{}: {error}", described())),
                }
            } else if let Ok(Some(socket)) = fds.take_udp_socket(index) {
                passed.udp.push((socket, note));
            } else {
                return Err(format!(
                    "{} is neither a TCP listener nor a UDP socket",
                    described()
                ));
            }
        }
        Ok(passed)
    }

    /// Returns whether no socket was passed.
    pub(crate) fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty()
    }

    /// Hands every socket to `builder`, and returns the notes for their
    /// `listening` lines.
    pub(crate) fn add_to(
        self,
        mut builder: ServerBuilder<Uppercase, Uppercase>,
    ) -> (ServerBuilder<Uppercase, Uppercase>, Notes) {
        let mut notes = Notes::default();
        for (listener, note) in self.tcp {
            builder = builder.tcp_listener(listener);
            notes.tcp.push(note);
        }
        for (socket, note) in self.udp {
            builder = builder.udp_socket(socket);
            notes.udp.push(note);
        }
        (builder, notes)
    }
}

impl Notes {
    /// Returns the note for socket `index` of `total` listed for `proto`
    /// (`tcp` or `udp`), with a space before it; empty for a socket shoutd
    /// bound itself.
    pub(crate) fn suffix(&self, proto: &str, index: usize, total: usize) -> String {
        let notes = if proto == "tcp" { &self.tcp } else { &self.udp };
        (index + notes.len())
            .checked_sub(total)
            .and_then(|passed| notes.get(passed))
            .map(|note| format!(" {note}"))
            .unwrap_or_default()
    }
}

/// Tells the service manager that shoutd serves (`READY=1`), if it asked
/// (`NOTIFY_SOCKET`). A failure is logged, not fatal: serving matters more.
pub(crate) fn notify_ready() {
    notify(sd_notify::NotifyState::Ready, "READY=1");
}

/// Tells the service manager that the graceful stop begins (`STOPPING=1`).
pub(crate) fn notify_stopping() {
    notify(sd_notify::NotifyState::Stopping, "STOPPING=1");
}

fn notify(state: sd_notify::NotifyState<'_>, shown: &str) {
    if let Err(error) = sd_notify::notify(&[state]) {
        log::warn!("cannot send {shown} to the service manager: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_go_to_the_passed_sockets_listed_last() {
        let notes = Notes {
            tcp: vec!["(a)".into()],
            udp: Vec::new(),
        };
        assert_eq!(notes.suffix("tcp", 0, 2), "");
        assert_eq!(notes.suffix("tcp", 1, 2), " (a)");
        assert_eq!(notes.suffix("udp", 0, 1), "");
    }
}
