//! What scenarios need from the machine beyond the binaries they build: one
//! table, one line per outside program or file.
//!
//! A scenario names its needs; when one is missing the runner skips the
//! scenario and says which, or, under `SHOUT_REQUIRE_PEERS=1`, fails it and
//! says which. This module only answers "is it here?"; it never installs
//! anything (`.ci/run` does).

use super::{Env, find_in_path};
use std::path::Path;

/// The environment variable that turns every skip into a failure.
pub(crate) const REQUIRE_VAR: &str = "SHOUT_REQUIRE_PEERS";

/// One thing a scenario may need.
pub(crate) struct Need {
    /// The name scenarios use, and reports show.
    pub(crate) name: &'static str,
    /// How to get it, for the skip or failure message.
    pub(crate) how: &'static str,
    /// Whether it is here.
    present: fn(&Env) -> bool,
}

/// Every need, one line each: add a tool by adding a line (and naming it in
/// the scenarios that use it).
pub(crate) const NEEDS: &[Need] = &[
    Need {
        name: "python3",
        how: "install Python 3 (Debian: python3)",
        present: |_| find_in_path("python3").is_some(),
    },
    Need {
        name: "lecture peers",
        how: "the lecture's programs at ../shared/peers/seed-python beside the workspace",
        present: |env| {
            [
                "tcp_server.py",
                "udp_server.py",
                "tcp_client.py",
                "udp_client.py",
            ]
            .iter()
            .all(|script| env.lecture_peers.join(script).is_file())
        },
    },
    Need {
        name: "nc",
        how: "install netcat (Debian: netcat-openbsd)",
        present: |_| find_in_path("nc").is_some(),
    },
    Need {
        name: "ncat",
        how: "install ncat (Debian: ncat)",
        present: |_| find_in_path("ncat").is_some(),
    },
    Need {
        name: "openssl",
        how: "install the OpenSSL command-line tool (Debian: openssl)",
        present: |_| find_in_path("openssl").is_some(),
    },
    Need {
        name: "socat",
        how: "install socat (Debian: socat)",
        present: |_| find_in_path("socat").is_some(),
    },
    Need {
        name: "systemd-socket-activate",
        how: "install systemd (Debian: systemd)",
        present: |_| find_in_path("systemd-socket-activate").is_some(),
    },
    Need {
        name: "nginx",
        how: "install nginx and its stream module (Debian: nginx, libnginx-mod-stream)",
        present: |_| {
            find_in_path("nginx").is_some() && Path::new(super::nginx::STREAM_MODULE).is_file()
        },
    },
    Need {
        name: "haproxy",
        how: "install HAProxy (Debian: haproxy)",
        present: |_| find_in_path("haproxy").is_some(),
    },
    Need {
        name: "unshare",
        how: "install util-linux (Debian: util-linux)",
        present: |_| find_in_path("unshare").is_some(),
    },
    Need {
        name: "ip",
        how: "install iproute2 (Debian: iproute2)",
        present: |_| find_in_path("ip").is_some(),
    },
    Need {
        name: "setpriv",
        how: "install util-linux (Debian: util-linux)",
        present: |_| find_in_path("setpriv").is_some(),
    },
    Need {
        name: "root",
        how: "run as root, as CI does: shout link makes network namespaces",
        // SAFETY: geteuid(2) has no preconditions.
        present: |_| unsafe { libc::geteuid() } == 0,
    },
    Need {
        name: "tun",
        how: "the TUN driver, /dev/net/tun (modprobe tun)",
        present: |_| Path::new("/dev/net/tun").exists(),
    },
    Need {
        name: "aioquic",
        how: "a Python with aioquic from PyPI at ~/.cache/shout/aioquic-venv (python3 -m venv, then pip install aioquic; .ci/run does it), or named by SHOUT_AIOQUIC_PYTHON",
        present: |env| env.has_aioquic(),
    },
    Need {
        name: "websockets-15",
        how: "Python's websockets 14 or later beside aioquic in ~/.cache/shout/aioquic-venv (pip install websockets==15.0.1; .ci/run does it), or in the Python SHOUT_AIOQUIC_PYTHON names",
        present: |env| env.has_new_websockets(),
    },
    Need {
        name: "python3-websockets",
        how: "install Python's websockets for /usr/bin/python3 (Debian: python3-websockets)",
        present: |_| {
            std::process::Command::new(super::websocket::PYTHON)
                .args(["-c", "import websockets"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        },
    },
    Need {
        name: "chromium",
        how: "install Chromium (Debian: chromium)",
        present: |_| find_in_path("chromium").is_some(),
    },
    Need {
        name: "promtool",
        how: "install promtool (Debian: prometheus)",
        present: |_| find_in_path("promtool").is_some(),
    },
];

/// Whether `SHOUT_REQUIRE_PEERS` asks for every need to be present (any
/// value but empty and `0`).
pub(crate) fn required() -> bool {
    std::env::var_os(REQUIRE_VAR).is_some_and(|value| !value.is_empty() && value != "0")
}

/// The needs among `names` that are missing, each as "name (how to get it)".
pub(crate) fn missing(env: &Env, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|name| need(name))
        .filter(|need| !(need.present)(env))
        .map(|need| format!("{} ({})", need.name, need.how))
        .collect()
}

/// The need called `name`; every scenario's names are in [`NEEDS`] (a test
/// checks it).
fn need(name: &str) -> &'static Need {
    NEEDS
        .iter()
        .find(|need| need.name == name)
        .unwrap_or_else(|| panic!("`{name}` is not in the NEEDS table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (index, need) in NEEDS.iter().enumerate() {
            assert!(
                NEEDS[..index].iter().all(|other| other.name != need.name),
                "{} twice",
                need.name
            );
        }
    }

    #[test]
    fn a_missing_file_is_named_with_how_to_get_it() {
        let env = Env::new(
            "/nonexistent/shoutd".into(),
            "/nonexistent/shout".into(),
            "/nonexistent/peers".into(),
        );
        let missing = missing(&env, &["lecture peers"]);
        assert_eq!(missing.len(), 1);
        assert!(
            missing[0].starts_with("lecture peers (") && missing[0].contains("../shared/peers")
        );
    }
}
