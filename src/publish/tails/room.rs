//! Where incident events wait for their container's log tail, as a pure
//! state machine (the threads and the clock are `tails.rs`'s): which reads
//! to make, in what order, and which events may leave now.
//!
//! - An `incident_opened` or `incident_escalated` asks for a read of its
//!   container (or joins one asked for and not yet answered) and waits for
//!   it, at most `wait`; then it leaves without, saying so.
//! - Every event of a game leaves in the order it came: one behind an
//!   event still waiting waits too (a resolution behind its opening).
//! - A fact never waits. A fact prompted by a `die` or an `oom` of a game
//!   whose incident is open asks for a read too, whose tail is kept as the
//!   incident's last words: an `incident_reminder` carries them.
//! - A read nobody waits for any more, asked more than `wait` ago, is not
//!   made: it would no longer be the game's last words.
//! - Bounds: at most [`MAX_READS`] reads asked and not answered (past it an
//!   event leaves at once, saying so), at most [`MAX_WAITING`] events
//!   waiting (past it the oldest leaves first).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::event::HealthEvent;
use crate::incident::Change;
use crate::log_tail::LogTail;

/// Reads asked for and not answered, at most: a fleet's crash asks one a
/// game, and a read a waiting event no longer wants is dropped.
pub(crate) const MAX_READS: usize = 1024;

/// Events waiting at most: each waits `wait` at most, so only a flood
/// meets this.
pub(crate) const MAX_WAITING: usize = 4096;

/// How the room waits and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoomSettings {
    /// Lines asked of Docker (`--log-lines`, at least 1 here).
    pub(crate) lines: usize,
    /// How long an event waits for its tail (250 ms).
    pub(crate) wait: Duration,
    /// The bound of a read nobody waits for (`--docker-timeout`).
    pub(crate) read_bound: Duration,
}

impl RoomSettings {
    /// What an event says when its wait ended before its tail came.
    fn not_in_time(&self) -> LogTail {
        LogTail::unavailable(&format!("not read within {} ms", self.wait.as_millis()))
    }
}

/// A read to make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) container_id: String,
    /// The lines to ask for ([`RoomSettings::lines`]).
    pub(crate) lines: usize,
    /// Its bound: what is left of the first waiting event's wait, or the
    /// read bound when no event waits for it.
    pub(crate) within: Duration,
}

#[derive(Debug)]
struct Read {
    id: u64,
    container_id: String,
    game_id: String,
    /// The incident open when it was asked for, whose last words it is.
    incident_id: Option<String>,
    asked: Instant,
    started: bool,
    /// Events waiting for it, and the earliest of their deadlines.
    waiters: usize,
    deadline: Option<Instant>,
    answer: Option<LogTail>,
}

#[derive(Debug)]
struct Waiting {
    event: HealthEvent,
    /// The read it waits for; `None`: it only keeps its game's order.
    read: Option<u64>,
    deadline: Instant,
}

/// An open incident as the room knows it from the events that pass.
#[derive(Debug)]
struct Open {
    incident_id: String,
    last_words: Option<LogTail>,
}

/// The waiting room.
#[derive(Debug)]
pub(crate) struct Room {
    settings: RoomSettings,
    waiting: VecDeque<Waiting>,
    reads: Vec<Read>,
    next_read: u64,
    open: HashMap<String, Open>,
}

impl Room {
    pub(crate) fn new(settings: RoomSettings) -> Self {
        Room {
            settings,
            waiting: VecDeque::new(),
            reads: Vec::new(),
            next_read: 0,
            open: HashMap::new(),
        }
    }

    /// Takes an event made now; returns what leaves now, in order.
    pub(crate) fn take(&mut self, event: HealthEvent, now: Instant) -> Vec<HealthEvent> {
        let Some(change) = event.change() else {
            if died(&event) && self.open.contains_key(&event.game_id) {
                let _ = self.ask(&event.container_id, &event.game_id, now);
            }
            return vec![event];
        };
        let incident_id = event.incident.as_deref().map(|i| i.incident_id.clone());
        let mut event = event;
        let read = match change {
            Change::Opened | Change::Escalated => {
                if let Some(id) = incident_id {
                    let kept = self
                        .open
                        .remove(&event.game_id)
                        .filter(|o| o.incident_id == id);
                    let last_words = kept.and_then(|o| o.last_words);
                    self.open.insert(
                        event.game_id.clone(),
                        Open {
                            incident_id: id,
                            last_words,
                        },
                    );
                }
                match self.ask(&event.container_id, &event.game_id, now) {
                    Some(read) => Some(read),
                    None => {
                        event = event.with_log_tail(LogTail::unavailable(
                            "too many log reads asked for at once",
                        ));
                        None
                    }
                }
            }
            Change::Reminder => {
                // An incident restored at the start is known from its first
                // reminder on: its later deaths are read.
                if let Some(id) = &incident_id
                    && !self.open.contains_key(&event.game_id)
                {
                    self.open.insert(
                        event.game_id.clone(),
                        Open {
                            incident_id: id.clone(),
                            last_words: None,
                        },
                    );
                }
                let words = self
                    .open
                    .get(&event.game_id)
                    .filter(|o| Some(&o.incident_id) == incident_id.as_ref())
                    .and_then(|o| o.last_words.clone());
                if let Some(words) = words {
                    event = event.with_log_tail(words);
                }
                None
            }
            Change::Resolved => {
                self.open.remove(&event.game_id);
                None
            }
        };
        let game_waits = self
            .waiting
            .iter()
            .any(|w| w.event.game_id == event.game_id);
        if read.is_none() && !game_waits {
            return vec![event];
        }
        let deadline = now + self.settings.wait;
        if let Some(id) = read
            && let Some(r) = self.reads.iter_mut().find(|r| r.id == id)
        {
            r.waiters += 1;
            r.deadline = Some(r.deadline.map_or(deadline, |d| d.min(deadline)));
        }
        let mut out = Vec::new();
        while self.waiting.len() >= MAX_WAITING
            && let Some(oldest) = self.waiting.pop_front()
        {
            out.push(self.leave(oldest));
        }
        // Nothing before it changed: what may leave now is what left above.
        self.waiting.push_back(Waiting {
            event,
            read,
            deadline,
        });
        out
    }

    /// A read of `container_id` for `game_id`: one asked for and not
    /// answered, or a new one; `None` past [`MAX_READS`].
    fn ask(&mut self, container_id: &str, game_id: &str, now: Instant) -> Option<u64> {
        if let Some(r) = self
            .reads
            .iter()
            .find(|r| r.container_id == container_id && r.answer.is_none())
        {
            return Some(r.id);
        }
        if self.reads.iter().filter(|r| r.answer.is_none()).count() >= MAX_READS {
            return None;
        }
        let id = self.next_read;
        self.next_read += 1;
        self.reads.push(Read {
            id,
            container_id: container_id.to_owned(),
            game_id: game_id.to_owned(),
            incident_id: self.open.get(game_id).map(|o| o.incident_id.clone()),
            asked: now,
            started: false,
            waiters: 0,
            deadline: None,
            answer: None,
        });
        Some(id)
    }

    /// The next read to make, in the order they were asked for; those
    /// nobody waits for any more, asked more than `wait` ago, are dropped.
    pub(crate) fn next_job(&mut self, now: Instant) -> Option<Job> {
        let wait = self.settings.wait;
        self.reads
            .retain(|r| r.started || r.waiters > 0 || now.duration_since(r.asked) <= wait);
        let read = self.reads.iter_mut().find(|r| !r.started)?;
        read.started = true;
        let within = match read.deadline {
            Some(deadline) => deadline.saturating_duration_since(now),
            None => self.settings.read_bound,
        };
        Some(Job {
            id: read.id,
            container_id: read.container_id.clone(),
            lines: self.settings.lines,
            within: within.min(self.settings.read_bound),
        })
    }

    /// A read answered (`None`: not within its bound): kept for the events
    /// waiting for it, and as its incident's last words.
    pub(crate) fn answered(&mut self, id: u64, tail: Option<LogTail>) {
        let Some(at) = self.reads.iter().position(|r| r.id == id) else {
            return;
        };
        let read = &mut self.reads[at];
        let tail = tail.unwrap_or_else(|| match read.deadline {
            // An event's wait bounded it.
            Some(_) => self.settings.not_in_time(),
            None => LogTail::unavailable(&format!(
                "no answer from Docker within {:?}",
                self.settings.read_bound
            )),
        });
        if let Some(open) = self.open.get_mut(&read.game_id)
            && Some(&open.incident_id) == read.incident_id.as_ref()
        {
            open.last_words = Some(tail.clone());
        }
        if read.waiters == 0 {
            self.reads.remove(at);
        } else {
            read.answer = Some(tail);
        }
    }

    /// The events that may leave now, in order: each whose tail came or
    /// whose wait is over, with nothing of its game still before it.
    pub(crate) fn release(&mut self, now: Instant) -> Vec<HealthEvent> {
        let mut out = Vec::new();
        let mut blocked: HashSet<String> = HashSet::new();
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        while let Some(w) = self.waiting.pop_front() {
            if blocked.contains(&w.event.game_id) {
                kept.push_back(w);
                continue;
            }
            let ready = match w.read {
                None => true,
                Some(id) => {
                    now >= w.deadline || self.reads.iter().any(|r| r.id == id && r.answer.is_some())
                }
            };
            if ready {
                out.push(self.leave(w));
            } else {
                blocked.insert(w.event.game_id.clone());
                kept.push_back(w);
            }
        }
        self.waiting = kept;
        out
    }

    /// Every event waiting, now, in order; those whose tail has not come
    /// say `why`.
    pub(crate) fn release_all(&mut self, why: &str) -> Vec<HealthEvent> {
        let waiting = std::mem::take(&mut self.waiting);
        waiting
            .into_iter()
            .map(|mut w| {
                if let Some(read) = self
                    .reads
                    .iter_mut()
                    .find(|r| Some(r.id) == w.read && r.answer.is_none())
                {
                    read.waiters = read.waiters.saturating_sub(1);
                    w.read = None;
                    w.event = w.event.with_log_tail(LogTail::unavailable(why));
                }
                self.leave(w)
            })
            .collect()
    }

    /// The earliest moment an event's wait ends.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.waiting
            .iter()
            .filter(|w| w.read.is_some())
            .map(|w| w.deadline)
            .min()
    }

    /// Whether any event waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// `w` leaving: with its read's tail when it came, else saying that it
    /// did not in time; the read forgotten once nobody waits for it.
    fn leave(&mut self, w: Waiting) -> HealthEvent {
        let Some(id) = w.read else {
            return w.event;
        };
        let Some(at) = self.reads.iter().position(|r| r.id == id) else {
            return w.event;
        };
        let read = &mut self.reads[at];
        read.waiters = read.waiters.saturating_sub(1);
        let tail = match &read.answer {
            Some(tail) => tail.clone(),
            None => self.settings.not_in_time(),
        };
        if read.waiters == 0 && read.answer.is_some() {
            self.reads.remove(at);
        }
        w.event.with_log_tail(tail)
    }
}

/// Whether a fact reports the inspect a `die` or an `oom` prompted.
fn died(event: &HealthEvent) -> bool {
    event
        .prompt
        .as_deref()
        .is_some_and(|p| matches!(p.action, "die" | "oom"))
}

#[cfg(test)]
mod tests;
