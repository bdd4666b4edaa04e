//! UDP through nginx's stream module to two shoutd: the configuration
//! docs/DEPLOYMENT.md shows, run in the foreground from a directory of its
//! own, so it needs no root paths and binds no port but its one UDP port.
//!
//! Not for TCP balancing or the PROXY protocol: nginx 1.22 sends no PROXY
//! header over UDP, so each backend sees nginx's address.

use super::activation::stop;
use super::process::{Shoutd, Spawned, Transport, free_port};
use super::{Env, Outcome};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's libnginx-mod-stream installs the module.
pub(crate) const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";
/// Client sockets, each a source address of its own.
const CLIENTS: usize = 8;
/// Datagrams each client sends, one at a time.
const DATAGRAMS_PER_CLIENT: usize = 50;

/// The nginx.conf docs/DEPLOYMENT.md shows, for `dir`, `listen` and the
/// two backends.
pub(crate) fn nginx_conf(dir: &Path, listen: SocketAddr, backends: [SocketAddr; 2]) -> String {
    format!(
        "\
load_module {STREAM_MODULE};
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 1024; }}
stream {{
    upstream shoutd_udp {{
        server {a};
        server {b};
    }}
    server {{
        listen {listen} udp;
        proxy_pass shoutd_udp;
        # One datagram in, one out: the session ends with the answer, so the
        # next datagram is balanced afresh.
        proxy_requests 1;
        proxy_responses 1;
        proxy_timeout 5s;
    }}
}}
",
        dir = dir.display(),
        a = backends[0],
        b = backends[1],
    )
}

/// A directory under the system's temporary one, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("shout-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every datagram through nginx is answered exactly, and both shoutd
/// answered some.
pub(crate) fn nginx(env: &Env) -> Result<Outcome, String> {
    let backends = [Shoutd::start(env)?, Shoutd::start(env)?];
    let dir = TempDir::new("nginx")?;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port(Transport::Udp)?));
    let conf = dir.0.join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(&dir.0, listen, [backends[0].udp, backends[1].udp]),
    )
    .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    let mut command = Command::new("nginx");
    command
        .arg("-p")
        .arg(&dir.0)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.0.join("error.log"))
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut nginx = Spawned::start("nginx", &mut command)?;
    let result = exchange_through(listen, &mut nginx, &dir.0);
    stop(&mut nginx, "nginx")?;
    let sent = result?;
    let mut answered = Vec::new();
    for (index, mut backend) in backends.into_iter().enumerate() {
        stop(&mut backend.process, "shoutd")?;
        let datagrams = datagrams_out(&backend.process.stderr())
            .ok_or_else(|| format!("backend {index} logged no summary"))?;
        answered.push(datagrams);
    }
    if answered.contains(&0) {
        return Err(format!(
            "a backend answered nothing: {answered:?} datagrams out"
        ));
    }
    Ok(Outcome::Pass(Some(format!(
        "{sent} datagrams answered, {} and {} by each backend",
        answered[0], answered[1]
    ))))
}

/// Sends every client's datagrams through nginx at `listen` and checks
/// each answer; returns how many were sent (the probes not counted).
fn exchange_through(listen: SocketAddr, nginx: &mut Spawned, dir: &Path) -> Result<usize, String> {
    let clients: Vec<UdpSocket> = (0..CLIENTS)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| format!("timeout: {e}"))?;
            Ok(socket)
        })
        .collect::<Result<_, String>>()?;
    // nginx binds its port a moment after it starts: probe, bounded.
    let probe = &clients[0];
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| format!("timeout: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buffer = [0; 256];
    loop {
        if let Some(status) = nginx.try_wait()? {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            return Err(format!("nginx exited {status}: {}", log.trim_end()));
        }
        let _ = probe.send_to(b"probe", listen);
        if probe
            .recv(&mut buffer)
            .is_ok_and(|len| &buffer[..len] == b"PROBE")
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("nginx answered no probe within 10 s".into());
        }
    }
    probe
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("timeout: {e}"))?;
    let mut sent = 0;
    for turn in 0..DATAGRAMS_PER_CLIENT {
        for (index, client) in clients.iter().enumerate() {
            let text = format!("client {index} datagram {turn}");
            client
                .send_to(text.as_bytes(), listen)
                .map_err(|e| format!("send: {e}"))?;
            sent += 1;
            let len = client
                .recv(&mut buffer)
                .map_err(|e| format!("no answer to `{text}` (after {sent} sent): {e}"))?;
            if buffer[..len] != *text.to_uppercase().as_bytes() {
                return Err(format!(
                    "`{text}` was answered `{}`",
                    String::from_utf8_lossy(&buffer[..len])
                ));
            }
        }
    }
    Ok(sent)
}

/// The `datagrams in, N out` figure of shoutd's `stopped:` summary.
fn datagrams_out(stderr: &str) -> Option<u64> {
    let summary = stderr
        .lines()
        .find_map(|line| line.split_once("stopped: "))?
        .1;
    let (_, after) = summary.split_once("datagrams in, ")?;
    after.split(' ').next()?.parse().ok()
}
