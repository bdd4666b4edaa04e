//! A network namespace of the link's own, held by a thread that lives in it.
//!
//! unshare(2) with `CLONE_NEWNET` moves only the calling thread, so each
//! namespace gets a thread that makes it, brings loopback up, opens the TUN
//! device there and then runs what it is given: the commands it spawns
//! inherit its namespace. The namespaces have no name and no mount, so the
//! kernel frees each one with its last user (the TUN device's fd, the
//! thread, the processes in it): whatever way the tool ends, nothing is
//! left to delete.

use crate::LinkError;
use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// The TUN device's name, the same in both namespaces.
pub(crate) const DEVICE: &str = "shout-link";
/// The devices' MTU: Ethernet's, so TCP segments are the usual size.
pub(crate) const MTU: u16 = 1500;

type Job = Box<dyn FnOnce() + Send>;

/// A network namespace, alive while this value and what runs in it live.
pub(crate) struct Namespace {
    role: &'static str,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Namespace {
    /// Makes a namespace for `role` (`server` or `client`): loopback up and
    /// a TUN device with address `local`, point to point to `peer`.
    /// Returns it and the device, opened inside it.
    pub(crate) fn new(
        role: &'static str,
        local: Ipv4Addr,
        peer: Ipv4Addr,
    ) -> Result<(Self, tun::Device), LinkError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name(format!("link-{role}"))
            .spawn(move || match enter(role, local, peer) {
                Ok(device) => {
                    let _ = ready_tx.send(Ok(device));
                    for job in jobs_rx {
                        job();
                    }
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                }
            })
            .map_err(LinkError::Thread)?;
        let namespace = Self {
            role,
            jobs: Some(jobs_tx),
            thread: Some(thread),
        };
        let device = ready_rx
            .recv()
            .map_err(|_| LinkError::Setup(format!("the {role} namespace's thread ended")))??;
        Ok((namespace, device))
    }

    /// Runs `job` on the namespace's thread, so that inside the namespace,
    /// and returns its result.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LinkError> {
        let (done_tx, done_rx) = mpsc::channel();
        let lost = || LinkError::Setup(format!("the {} namespace's thread ended", self.role));
        self.jobs
            .as_ref()
            .ok_or_else(lost)?
            .send(Box::new(move || {
                let _ = done_tx.send(job());
            }))
            .map_err(|_| lost())?;
        done_rx.recv().map_err(|_| lost())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Moves the calling thread into a new network namespace and sets it up.
fn enter(role: &str, local: Ipv4Addr, peer: Ipv4Addr) -> Result<tun::Device, LinkError> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|errno| match errno {
        Errno::EPERM => LinkError::NotPermitted(errno.desc().to_owned()),
        _ => LinkError::Setup(format!(
            "cannot make the {role} network namespace: {}",
            errno.desc()
        )),
    })?;
    // Loopback is down in a new namespace; a server that listens on
    // 127.0.0.1 there needs it up.
    let output = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|error| {
            LinkError::Setup(format!(
                "cannot run `ip link set lo up` (is iproute2 installed?): {error}"
            ))
        })?;
    if !output.status.success() {
        return Err(LinkError::Setup(format!(
            "`ip link set lo up` failed in the {role} namespace: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let mut config = tun::Configuration::default();
    config
        .tun_name(DEVICE)
        .address(local)
        .destination(peer)
        .netmask(Ipv4Addr::BROADCAST)
        .mtu(MTU)
        .up();
    tun::create(&config).map_err(|error| match error {
        tun::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            LinkError::NoTun(io.to_string())
        }
        tun::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            LinkError::NotPermitted(io.to_string())
        }
        other => LinkError::Setup(format!(
            "cannot make the TUN device in the {role} namespace: {other}"
        )),
    })
}
