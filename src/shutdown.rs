//! Shutdown: one trigger, many waiters, no polling.
//!
//! The trigger holds the only sender of a channel that never carries a value;
//! dropping it disconnects every receiver at once, which wakes sleepers in
//! `recv_timeout` and makes `try_recv` report the shutdown between records.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

/// Requests shutdown; clones share the one request.
#[derive(Debug, Clone)]
pub(crate) struct ShutdownTrigger(Arc<Mutex<Option<Sender<()>>>>);

/// Tells whether shutdown was requested, and sleeps until it is.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown(Receiver<()>);

/// A fresh trigger and its waiter.
pub(crate) fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = crossbeam_channel::bounded(0);
    (
        ShutdownTrigger(Arc::new(Mutex::new(Some(tx)))),
        Shutdown(rx),
    )
}

impl ShutdownTrigger {
    /// Requests shutdown; later calls do nothing.
    pub(crate) fn trigger(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl Shutdown {
    /// Whether shutdown was requested.
    pub(crate) fn is_requested(&self) -> bool {
        matches!(self.0.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// The channel that disconnects on shutdown, for a `select!` beside others.
    pub(crate) fn receiver(&self) -> &Receiver<()> {
        &self.0
    }
}

/// The signal thread: the first SIGTERM or SIGINT requests shutdown; a second
/// one runs `at_once` (which spools what is undelivered) and ends the process
/// at once (exit 130), for an operator who will not wait for the drain.
#[derive(Debug)]
pub(crate) struct SignalWatcher {
    handle: Handle,
    thread: JoinHandle<()>,
}

/// Starts the signal thread.
pub(crate) fn watch_signals(
    trigger: ShutdownTrigger,
    at_once: Box<dyn Fn() + Send>,
) -> std::io::Result<SignalWatcher> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let handle = signals.handle();
    let thread = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = false;
            for signal in signals.forever() {
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                if seen {
                    log::warn!("second {name}: spooling what is undelivered and exiting at once");
                    at_once();
                    std::process::exit(130);
                }
                seen = true;
                log::info!(
                    "{name} received: finishing the current record, then delivering queued events"
                );
                trigger.trigger();
            }
        })?;
    Ok(SignalWatcher { handle, thread })
}

impl SignalWatcher {
    /// Stops watching and joins the thread.
    pub(crate) fn stop(self) {
        self.handle.close();
        if let Err(panic) = self.thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::RecvTimeoutError;
    use std::time::{Duration, Instant};

    #[test]
    fn trigger_wakes_a_sleeper_at_once() {
        let (trigger, shutdown) = channel();
        assert!(!shutdown.is_requested());
        let sleeper = shutdown.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            let woken = sleeper.receiver().recv_timeout(Duration::from_secs(60));
            (
                woken == Err(RecvTimeoutError::Disconnected),
                start.elapsed(),
            )
        });
        trigger.trigger();
        let (woken, waited) = t.join().unwrap();
        assert!(woken);
        assert!(waited < Duration::from_secs(30));
        assert!(shutdown.is_requested());
        trigger.trigger();
        assert!(shutdown.is_requested());
    }

    #[test]
    fn wait_without_trigger_times_out() {
        let (_trigger, shutdown) = channel();
        let waited = shutdown.receiver().recv_timeout(Duration::from_millis(1));
        assert_eq!(waited, Err(RecvTimeoutError::Timeout));
    }
}
