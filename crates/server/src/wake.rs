//! Getting a worker out of its poll from another thread: a stop, a
//! sender's command, room under the connection cap.

use mio::Waker;

/// One waker per worker: how another thread gets a worker out of its poll.
#[derive(Debug)]
pub(crate) struct Wakers(Vec<Waker>);

impl Wakers {
    pub(crate) fn new(wakers: Vec<Waker>) -> Self {
        Self(wakers)
    }

    /// Wakes every worker; `why` is for the log if one cannot be woken.
    pub(crate) fn wake_all(&self, why: &str) {
        for index in 0..self.0.len() {
            self.wake(index, why);
        }
    }

    /// Wakes worker `index`, if there is one.
    pub(crate) fn wake(&self, index: usize, why: &str) {
        if let Some(Err(error)) = self.0.get(index).map(Waker::wake) {
            // The worker still sees why on its next timer or event.
            log::warn!("could not wake worker {index} ({why}): {error}");
        }
    }
}
