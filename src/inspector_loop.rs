//! The inspector thread: turned by the tick timer, Docker's events and
//! shutdown, it carries out what the schedule decides and feeds systemd's
//! watchdog at every turn. It decides nothing itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use crossbeam_channel::Receiver;

use crate::docker::events::Nudge;
use crate::failure::Failure;
use crate::notify::Notifier;
use crate::publish::tails::Tails;
use crate::schedule::{Action, Input, Schedule};
use crate::shutdown::Shutdown;
use crate::worker::{Carried, Worker};

/// How the inspector loop turns.
pub(crate) struct Turns {
    /// One tick, then return (`rtinspect once`).
    pub(crate) once: bool,
    pub(crate) shutdown: Shutdown,
    pub(crate) notifier: Arc<Notifier>,
    /// Docker's events, when the events stream is on.
    pub(crate) nudges: Option<Nudges>,
}

/// The inspector's end of the events stream.
pub(crate) struct Nudges {
    /// The reader's nudges.
    pub receiver: Receiver<Nudge>,
    /// Set by the reader when a nudge did not fit: resync.
    pub overflow: Arc<AtomicBool>,
}

/// Nudges taken from the channel in one turn at most, so that a flood of
/// events never keeps the loop from its next action.
const NUDGES_PER_TURN: usize = 64;

/// The running inspector thread.
pub(crate) struct InspectorThread {
    pub(crate) handle: JoinHandle<Result<(), Failure>>,
    /// Disconnects when the thread ends, however it ends.
    pub(crate) ended: Receiver<()>,
}

/// Starts the inspector thread.
pub(crate) fn spawn_inspector(
    mut worker: Worker,
    mut schedule: Schedule,
    tails: Arc<Tails>,
    turns: Turns,
) -> std::io::Result<InspectorThread> {
    let (alive, ended) = crossbeam_channel::bounded::<()>(0);
    let handle = std::thread::Builder::new()
        .name("inspector".into())
        .spawn(move || {
            let _alive = alive;
            inspect_loop(&mut worker, &mut schedule, &tails, &turns)
        })?;
    Ok(InspectorThread { handle, ended })
}

/// The inspector loop: carries out what the schedule decides, tells it what
/// happened (answers, Docker events, shutdown), waits when it says wait, and
/// feeds the watchdog at every turn. It decides nothing itself.
fn inspect_loop(
    worker: &mut Worker,
    schedule: &mut Schedule,
    tails: &Tails,
    turns: &Turns,
) -> Result<(), Failure> {
    let never = crossbeam_channel::never();
    let mut nudges = turns.nudges.as_ref().map_or(&never, |n| &n.receiver);
    let mut listed = true;
    loop {
        let input = match schedule.next(Instant::now()) {
            Action::Stop => break,
            Action::Wait(until) => {
                let now = Instant::now();
                let mut wait = until.saturating_duration_since(now);
                if let Some(w) = turns.notifier.watchdog_every() {
                    wait = wait.min(w);
                }
                crossbeam_channel::select! {
                    recv(turns.shutdown.receiver()) -> _ => Some(Input::Shutdown),
                    recv(nudges) -> nudge => match nudge {
                        Ok(nudge) => Some(from_nudge(nudge)),
                        // The reader is gone; the poll goes on.
                        Err(_) => {
                            nudges = &never;
                            None
                        }
                    },
                    default(wait) => None,
                }
            }
            action => match worker.carry_out(action, schedule, &mut |e| tails.emit(e)) {
                Carried::Answer(input) => Some(input),
                Carried::Answers(mut inputs) => {
                    // The answer waited for is last.
                    let last = inputs.pop();
                    for input in inputs {
                        schedule.on(input, Instant::now());
                    }
                    last
                }
                Carried::TickEnded { status, listed: l } => {
                    listed = l;
                    turns.notifier.status(&status);
                    None
                }
                Carried::Nothing => None,
            },
        };
        if let Some(input) = input {
            schedule.on(input, Instant::now());
        }
        for nudge in nudges.try_iter().take(NUDGES_PER_TURN) {
            schedule.on(from_nudge(nudge), Instant::now());
        }
        if let Some(n) = &turns.nudges
            && n.overflow.swap(false, Relaxed)
        {
            schedule.on(Input::Overflowed, Instant::now());
        }
        if turns.shutdown.is_requested() {
            schedule.on(Input::Shutdown, Instant::now());
        }
        turns.notifier.watchdog();
    }
    if turns.shutdown.is_requested() {
        log::info!("inspector stopped");
    }
    // `once` fails when its tick could not list the records; `run` stopped
    // by a signal during an outage has done its job.
    match worker.take_list_error() {
        Some(e) if turns.once && !listed => Err(Failure::because(e)),
        _ => Ok(()),
    }
}

/// What the reader said, as the schedule's input, stamped with when the
/// inspector took it.
fn from_nudge(nudge: Nudge) -> Input {
    match nudge {
        Nudge::Container(e) => Input::Docker(e, SystemTime::now()),
        Nudge::Resync => {
            log::debug!("events stream subscribed: inspecting every record");
            Input::Subscribed
        }
    }
}

/// Joins a thread, re-raising its panic rather than swallowing it.
pub(crate) fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
