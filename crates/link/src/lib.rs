//! An emulated network link with real delay, for `shout link`.
//!
//! Two network namespaces of the tool's own, each with one TUN device,
//! joined only by a link this crate emulates in user space: every IP packet
//! one side sends is read from its TUN device, delayed, paced at the rate,
//! maybe dropped, and written to the other side's device. The TCP
//! handshake, slow start, retransmissions and UDP loss then happen in the
//! real kernel stacks of the two namespaces. mahimahi's `mm-delay`,
//! `mm-link` and `mm-loss` work this way; the kernel's netem does the same
//! inside the kernel, where it is built in.
//!
//! Two layers:
//! - [`Emulator`]: one direction of the link, sans-io: fed packets with the
//!   time they arrived, asked which are due and when. Delay, rate, a
//!   drop-tail queue, random loss and jitter, without reordering. Tested
//!   with time passed in, with no device.
//! - [`run`] (Linux): the namespaces, the devices, the forwarding threads,
//!   the server and client commands, and the cleanup.
//!
//! Addresses come from 198.18.0.0/15, reserved for benchmarking: the server
//! side is [`SERVER_ADDR`], the client side [`CLIENT_ADDR`]. Each namespace
//! has a route to the other side only, so no address outside them is ever a
//! target.
//!
//! Not for: shaping real traffic (the link joins only the two namespaces it
//! made), nor anything needing more than about a gigabit per second, nor
//! portability (Linux only, and it needs root). The quantities people type
//! are read by [`parse_duration`], [`Rate`] and [`Loss`].
//!
//! # Portability
//!
//! The emulator and the units build everywhere; [`run`] is Linux only and
//! fails elsewhere with [`LinkError::Unsupported`].

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod emulator;
#[cfg(target_os = "linux")]
mod forward;
#[cfg(target_os = "linux")]
mod namespace;
#[cfg(target_os = "linux")]
mod session;
mod units;

pub use emulator::{Admission, Counters, DEFAULT_QUEUE, Emulator, LinkConfig, MAX_IN_FLIGHT};
#[cfg(target_os = "linux")]
pub use session::{ClientCommand, GRACE, Plan, READY_TIMEOUT, Report, run};
pub use units::{Loss, Rate, UnitError, format_duration, parse_duration};

use std::net::Ipv4Addr;

/// The server side's address.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The client side's address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The variable that gives both commands the server's address.
pub const SERVER_VAR: &str = "SHOUT_LINK_SERVER";
/// The variable that gives both commands the client's address.
pub const CLIENT_VAR: &str = "SHOUT_LINK_CLIENT";

/// Why the link could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The namespaces or devices need privileges the process lacks.
    #[error(
        "cannot make a network namespace ({0}): shout link needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    )]
    NotPermitted(String),
    /// The system has no TUN driver.
    #[error("cannot open /dev/net/tun ({0}): load the tun module (modprobe tun)")]
    NoTun(String),
    /// Setting the link up failed otherwise.
    #[error("{0}")]
    Setup(String),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// A command could not be started.
    #[error("cannot start the {role} command `{program}`: {source}")]
    Spawn {
        /// `server` or `client`.
        role: &'static str,
        /// The program that was run.
        program: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// The server command ended before anything listened.
    #[error("the server command ended ({0}) before anything listened")]
    ServerEnded(std::process::ExitStatus),
    /// This is not Linux.
    #[error("shout link runs on Linux only")]
    Unsupported,
}

impl LinkError {
    /// Returns the exit status for this error: 2 when the system does not
    /// allow the link (no privilege, no TUN), 127 when the client program
    /// does not exist (as a shell says), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            LinkError::NotPermitted(_) | LinkError::NoTun(_) | LinkError::Unsupported => 2,
            LinkError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
            _ => 1,
        }
    }
}
