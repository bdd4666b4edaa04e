//! The forwarding loop of one direction: packets read from one TUN device
//! go through an [`Emulator`] and are written to the other when due.
//!
//! Two threads per direction share the emulator under a mutex. The reader
//! blocks on its device and stamps each packet the moment it is read, so the
//! delay counts from then. The writer sleeps on a condition variable until
//! the next packet is due (a futex wait, precise to tens of microseconds,
//! where poll(2) would round to the millisecond). A packet due at once,
//! with no delay, is written by the reader itself, which saves a wake-up.
//! Every write happens under the mutex, so packets leave in order.

use crate::emulator::{Admission, Counters, Emulator, LinkConfig};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often an idle thread looks whether it should stop.
const IDLE: Duration = Duration::from_millis(50);
/// Bigger than any packet a TUN device of MTU 1500 gives, with room to spare.
const BUFFER: usize = 65_536;

struct Shared {
    emulator: Mutex<Emulator>,
    due: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Emulator> {
        self.emulator.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One direction, running until [`Direction::stop`].
pub(crate) struct Direction {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Direction {
    /// Starts forwarding from `from` to `to` through a link of `config`.
    pub(crate) fn start(
        name: &str,
        from: Arc<tun::Device>,
        to: Arc<tun::Device>,
        config: LinkConfig,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            emulator: Mutex::new(Emulator::new(config)),
            due: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let mut direction = Self {
            shared: Arc::clone(&shared),
            threads: Vec::new(),
        };
        let reader = {
            let (shared, to) = (Arc::clone(&shared), Arc::clone(&to));
            std::thread::Builder::new()
                .name(format!("{name} in"))
                .spawn(move || read_loop(&shared, &from, &to))?
        };
        direction.threads.push(reader);
        let writer = std::thread::Builder::new()
            .name(format!("{name} out"))
            .spawn(move || write_loop(&shared, &to))?;
        direction.threads.push(writer);
        Ok(direction)
    }

    /// Stops both threads and returns what the direction counted.
    pub(crate) fn stop(mut self) -> Counters {
        self.halt();
        self.shared.lock().counters()
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.due.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Direction {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Reads packets from `from` until stopped; each goes into the emulator
/// with the time it was read.
fn read_loop(shared: &Shared, from: &tun::Device, to: &tun::Device) {
    let mut buffer = vec![0; BUFFER];
    while !shared.stop.load(Ordering::SeqCst) {
        let len = match from.recv_timeout(&mut buffer, IDLE) {
            Ok(len) => len,
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::TimedOut | ErrorKind::Interrupted | ErrorKind::WouldBlock
                ) =>
            {
                continue;
            }
            Err(error) => {
                log::error!("reading the TUN device failed: {error}");
                return;
            }
        };
        let now = Instant::now();
        let mut emulator = shared.lock();
        match emulator.arrive(now, buffer[..len].to_vec()) {
            Admission::Due(due) if due <= now => send_due(&mut emulator, to, now),
            Admission::Due(_) => shared.due.notify_one(),
            Admission::Lost | Admission::QueueFull => {}
        }
    }
}

/// Writes each packet to `to` when it is due, until stopped.
fn write_loop(shared: &Shared, to: &tun::Device) {
    let mut emulator = shared.lock();
    while !shared.stop.load(Ordering::SeqCst) {
        send_due(&mut emulator, to, Instant::now());
        let wait = emulator
            .next_departure()
            .map_or(IDLE, |due| due.saturating_duration_since(Instant::now()));
        emulator = shared
            .due
            .wait_timeout(emulator, wait.min(IDLE))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Writes every packet due at `now`.
fn send_due(emulator: &mut Emulator, to: &tun::Device, now: Instant) {
    while let Some(packet) = emulator.depart(now) {
        // A write to a TUN device hands the packet to the namespace's
        // stack; it fails only when the device is going away, and a link
        // may drop a packet then.
        if let Err(error) = to.send(&packet) {
            log::debug!("writing a packet to the TUN device failed: {error}");
        }
    }
}
