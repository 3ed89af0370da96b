//! Between the inspector and the fanout: incident events that wait for
//! their container's log tail. The inspector hands every event here and
//! never waits: a fact goes on at once, an `incident_opened` or
//! `incident_escalated` waits for its tail at most [`TAIL_WAIT`] (the room,
//! `room.rs`, decides what waits and what leaves, in order per game).
//!
//! The reads are made by [`READERS`] threads of their own, over a Docker
//! client of their own (not the inspector's kept-alive connection), each
//! read bounded by what is left of its event's wait and by
//! `--docker-timeout`; a fleet's crash of 400 games is 400 reads queued,
//! not 400 threads, and the events whose read has not come in time leave
//! without it. One more thread, the timer, sends each event whose wait is
//! over. At the exit ([`Tails::finish`]) what waits leaves, with or
//! without its tail, before the spools are written: nothing is lost there.

mod room;

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::event::HealthEvent;
use crate::log_tail::ReadTail;
use crate::publish::fanout::Emitter;
use room::Room;
pub(crate) use room::RoomSettings;

/// The longest an incident's event waits for its tail: an alert is not
/// held up for the lines that explain it.
pub(crate) const TAIL_WAIT: Duration = Duration::from_millis(250);

/// Threads that read tails: two reads at once, whatever the fleet.
pub(crate) const READERS: usize = 2;

/// What an event still waiting at the exit says of its tail.
const STOPPING: &str = "rtinspect is stopping";

/// Where the inspector's events go: straight to the fanout, or through the
/// waiting room when log tails are read.
pub(crate) struct Tails {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    state: Mutex<State>,
    /// Told of every change: a read asked for, answered, events gone.
    changed: Condvar,
    source: Option<Box<dyn ReadTail>>,
}

struct State {
    /// `None`: no tails are read; events pass straight.
    room: Option<Room>,
    /// Taken at the exit once the inspector has ended, so that the
    /// publishers see their last sender gone.
    emitter: Option<Emitter>,
    /// From the exit on, events pass straight.
    closed: bool,
    /// The threads end.
    stopped: bool,
}

impl State {
    fn emit_all(&self, events: Vec<HealthEvent>) {
        for event in events {
            match &self.emitter {
                Some(emitter) => emitter.emit(event),
                // Only an inspector left behind at the exit could emit now,
                // and then the emitter is kept: said, never silently lost.
                None => log::error!(game_id = event.game_id.as_str(),
                    event_type = event.event_type.as_str(), envelope = event.envelope().as_str();
                    "event made after the exit's drain; not delivered"),
            }
        }
    }
}

impl Tails {
    /// Events go straight to `emitter`: no tails are read.
    pub(crate) fn straight(emitter: Emitter) -> Arc<Tails> {
        Arc::new(Tails {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    room: None,
                    emitter: Some(emitter),
                    closed: false,
                    stopped: false,
                }),
                changed: Condvar::new(),
                source: None,
            }),
            threads: Mutex::new(Vec::new()),
        })
    }

    /// Incident events wait for tails read through `source`; starts the
    /// timer and the readers.
    pub(crate) fn start(
        emitter: Emitter,
        source: Box<dyn ReadTail>,
        settings: RoomSettings,
    ) -> std::io::Result<Arc<Tails>> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                room: Some(Room::new(settings)),
                emitter: Some(emitter),
                closed: false,
                stopped: false,
            }),
            changed: Condvar::new(),
            source: Some(source),
        });
        let tails = Tails {
            shared: shared.clone(),
            threads: Mutex::new(Vec::new()),
        };
        let mut threads = Vec::with_capacity(READERS + 1);
        let s = shared.clone();
        let started = std::thread::Builder::new()
            .name("tail-timer".into())
            .spawn(move || s.time())
            .map(|t| threads.push(t));
        let started = started.and_then(|()| {
            (1..=READERS).try_for_each(|n| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("tail-reader-{n}"))
                    .spawn(move || s.read())
                    .map(|t| threads.push(t))
            })
        });
        *tails.threads.lock().unwrap_or_else(|p| p.into_inner()) = threads;
        if let Err(e) = started {
            tails.stop();
            return Err(e);
        }
        Ok(Arc::new(tails))
    }

    /// Takes an event from the inspector, without waiting on any read.
    pub(crate) fn emit(&self, event: HealthEvent) {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        let out = match &mut state.room {
            Some(room) if !state.closed => {
                let out = room.take(event, Instant::now());
                self.shared.changed.notify_all();
                out
            }
            _ => vec![event],
        };
        state.emit_all(out);
    }

    /// At the exit: from now on events pass straight; those waiting leave
    /// when their tail comes or their wait ends (at most [`TAIL_WAIT`]),
    /// and any still there then leave without. Once the inspector has
    /// ended (`inspector_done`) the emitter is let go, so that the
    /// publishers see their last sender gone.
    pub(crate) fn finish(&self, inspector_done: bool) {
        let deadline = Instant::now() + TAIL_WAIT + Duration::from_millis(50);
        let mut state = self.shared.lock();
        state.closed = true;
        while state.room.as_ref().is_some_and(|r| !r.is_empty()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let out = state
            .room
            .as_mut()
            .map_or_else(Vec::new, |r| r.release_all(STOPPING));
        state.emit_all(out);
        if inspector_done {
            state.emitter = None;
        }
        drop(state);
        self.stop();
    }

    /// At a second signal: every waiting event leaves now, tail or not, for
    /// the spools written next.
    pub(crate) fn release_now(&self) {
        let mut state = self.shared.lock();
        state.closed = true;
        let out = state
            .room
            .as_mut()
            .map_or_else(Vec::new, |r| r.release_all(STOPPING));
        state.emit_all(out);
    }

    /// Ends the threads: the timer at once, a reader once its read is
    /// over (bounded by `--docker-timeout`; the exit does not wait for it).
    fn stop(&self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for (n, thread) in threads.into_iter().enumerate() {
            // The timer (the first) never blocks; it is joined.
            if (n == 0 || thread.is_finished())
                && let Err(panic) = thread.join()
            {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The timer: sends each event whose wait is over.
    fn time(&self) {
        let mut state = self.lock();
        while !state.stopped {
            let now = Instant::now();
            let Some(room) = state.room.as_mut() else {
                return;
            };
            let out = room.release(now);
            let next = room.next_deadline();
            if !out.is_empty() {
                state.emit_all(out);
                self.changed.notify_all();
            }
            state = match next {
                Some(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    self.changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.changed.wait(state).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    /// A reader: makes the reads the room asks for, one at a time, outside
    /// the lock.
    fn read(&self) {
        let Some(source) = self.source.as_deref() else {
            return;
        };
        let mut state = self.lock();
        while !state.stopped {
            let job = state.room.as_mut().and_then(|r| r.next_job(Instant::now()));
            let Some(job) = job else {
                state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            drop(state);
            let tail = source.read_tail(&job.container_id, job.lines, job.within);
            state = self.lock();
            if let Some(room) = state.room.as_mut() {
                room.answered(job.id, tail);
                let out = room.release(Instant::now());
                state.emit_all(out);
            }
            self.changed.notify_all();
        }
    }
}
