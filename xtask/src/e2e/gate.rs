//! A gate threads wait at until it opens, with a timeout: the start signal
//! for clients that must act together, without the unbounded wait of a
//! `Barrier` when one of them never arrives.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    /// Opens the gate for every waiter, present and future.
    pub(crate) fn open(&self) {
        *self.open.lock().expect("not poisoned") = true;
        self.opened.notify_all();
    }

    /// Waits until the gate opens, at most `timeout`; whether it opened.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let open = self.open.lock().expect("not poisoned");
        let (open, _) = self
            .opened
            .wait_timeout_while(open, timeout, |open| !*open)
            .expect("not poisoned");
        *open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn waiters_pass_once_open_and_time_out_otherwise() {
        let gate = Arc::new(Gate::default());
        assert!(!gate.wait(Duration::from_millis(10)));
        let waiter = std::thread::spawn({
            let gate = Arc::clone(&gate);
            move || gate.wait(Duration::from_secs(10))
        });
        gate.open();
        assert!(waiter.join().unwrap());
        assert!(gate.wait(Duration::ZERO));
    }
}
