//! Servers that `cargo xtask bench` measures shoutd against, kept out of the
//! product: this crate is never shipped nor published.
//!
//! - `reference-tokio` (`src/bin/tokio.rs`) and `reference-tokio-1`
//!   (`src/bin/tokio_1.rs`): the server a Rust user would write instead of
//!   shoutd, with tokio in the most ordinary way ([`tokio_server`]), on the
//!   multi-thread and on the one-thread runtime.
//! - `reference-quinn-1` (`src/bin/quinn_1.rs`): the QUIC server a Rust
//!   user would write instead of `shoutd --quic`, quinn on tokio's
//!   one-thread runtime ([`quinn_server`]).
//! - `reference-tokio-ws-1` (`src/bin/tokio_ws_1.rs`): the ordinary
//!   tokio-tungstenite WebSocket server ([`tokio_ws_server`]) on the
//!   one-thread runtime, read buffer tuned to 4 KiB; it takes `--ws ADDR`
//!   and prints `listening ws ADDR`.
//! - `reference-ceiling` (`src/bin/ceiling.rs`): the cheapest server that
//!   answers the benchmark's requests correctly, to measure the load
//!   generator's own ceiling.
//!
//! All take the arguments and print the start-up lines of shoutd
//! (`--tcp ADDR --udp ADDR`, then `listening tcp ADDR` and `listening udp
//! ADDR` on standard output), so the bench harness starts every server the
//! same way. This library holds that shared command line and the tokio
//! server the two tokio binaries run.

#![deny(missing_docs)]

pub mod quinn_server;
pub mod tokio_rustls_server;
pub mod tokio_server;
pub mod tokio_ws_server;

use std::net::SocketAddr;

/// Where to listen, from `--tcp ADDR --udp ADDR` (each defaults to
/// `127.0.0.1:0`, a free loopback port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The TCP listener's address.
    pub tcp: SocketAddr,
    /// The UDP socket's address.
    pub udp: SocketAddr,
}

impl Addresses {
    /// Parses the arguments after the program name; the error is a usage
    /// message.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut addresses = Self {
            tcp: loopback,
            udp: loopback,
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--tcp" => &mut addresses.tcp,
                "--udp" => &mut addresses.udp,
                other => {
                    return Err(format!(
                        "unknown argument `{other}`; usage: [--tcp ADDR] [--udp ADDR]"
                    ));
                }
            };
            let value = args
                .next()
                .ok_or_else(|| format!("`{flag}` needs an address"))?;
            *slot = value
                .parse()
                .map_err(|error| format!("`{flag} {value}`: {error}"))?;
        }
        Ok(addresses)
    }

    /// Parses the process's own arguments, exiting with status 2 and the
    /// message on standard error when they are wrong.
    pub fn from_env(program: &str) -> Self {
        Self::parse(std::env::args().skip(1)).unwrap_or_else(|message| {
            eprintln!("{program}: {message}");
            std::process::exit(2);
        })
    }
}

/// Prints the start-up contract shoutd keeps: one line per bound socket,
/// flushed at once, so that a harness reading them knows the real ports.
pub fn announce(tcp: SocketAddr, udp: SocketAddr) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening tcp {tcp}");
    let _ = writeln!(stdout, "listening udp {udp}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn defaults_to_free_loopback_ports() {
        let addresses = Addresses::parse(args(&[])).unwrap();
        assert_eq!(addresses.tcp, "127.0.0.1:0".parse().unwrap());
        assert_eq!(addresses.udp, "127.0.0.1:0".parse().unwrap());
    }

    #[test]
    fn takes_shoutd_style_addresses() {
        let addresses =
            Addresses::parse(args(&["--udp", "[::1]:7", "--tcp", "127.0.0.1:9"])).unwrap();
        assert_eq!(addresses.tcp, "127.0.0.1:9".parse().unwrap());
        assert_eq!(addresses.udp, "[::1]:7".parse().unwrap());
        assert!(Addresses::parse(args(&["--tcp"])).is_err());
        assert!(Addresses::parse(args(&["--tcp", "nowhere"])).is_err());
        assert!(Addresses::parse(args(&["--workers", "2"])).is_err());
    }
}
