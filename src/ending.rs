//! How each container ended: every end classified as `stopped` (through the
//! engine's API), `oom`, `crashed`, `exited` or `unknown`, from the events
//! stream and the inspects, so that only failures page people.
//!
//! A pure core: a small state machine per container, fed the engine's
//! events ([`Endings::event`]) and the looks of inspects
//! ([`Endings::look`]), the time passed in; no I/O, no clock.
//!
//! What the engines send when a container ends (checked against Docker
//! 20.10.24 and Podman 4.3.1 through their events API, and read in moby's
//! source for Docker 29):
//!
//! | what happened | Docker 20.10 and 29 | Podman 4.3 |
//! |---|---|---|
//! | `stop` (game ignores TERM) | `kill`(15) `kill`(9) `die`(137) `stop` | `die`(137) `cleanup` `cleanup`: no `kill`, no `stop` |
//! | `rm -f` | `kill`(9) `die`(137) `destroy` | `die`(137) `cleanup` `remove` |
//! | `kill` | `kill`(9) `die`(137) | `kill` (no signal said) `die`(137) `cleanup` |
//! | `kill -s USR1`, survived | `kill`(10) and nothing more | `kill` (no signal) and nothing more |
//! | `restart` | `kill`(15) `kill`(9) `die`(137) `stop` `start` `restart` | `restart` `die`(137) `cleanup` `init` `start` |
//! | exits 3 by itself | `die`(3) | `die`(3) `cleanup` |
//! | host `kill -9` of its process | `die`(137) | `die`(137) `cleanup` |
//! | OOM kill | `oom` (one per process killed) `die`(137) | not checked |
//! | restart policy loop | `die`(N) `start`, again and again | `die`(N) `restart` `init` `start`, again and again |
//! | in the restart back-off: stop, rm -f, restart, kill | a lone `stop`; a lone `destroy`; `stop` `start` `restart`; nothing | not checked |
//!
//! Docker 29 names the same actions (`events.ActionKill`, `ActionStop`,
//! `ActionDie`, `ActionDestroy`, `ActionOOM`, `ActionRestart`); its `kill`
//! carries `signal` as a number and is not sent for a container in the
//! back-off (the restart manager is told to stop instead); `die` carries
//! `exitCode` and `execDuration`. Docker does not promise the order of
//! `stop` and `die` (moby#50220): an end is classified when both are in, a
//! `stop` or `destroy` after the `die` and before the next `start` turning it
//! into `stopped`. `die` carries no signal: an exit code of 128+N is signal
//! N. Podman sends `restart` for its restart policy's own restarts, after
//! each `die`, so only a `restart` before the `die` (a running container's)
//! is the API's there; Docker sends it only for the restart API, after the
//! `start`, and it marks nothing. On Podman 4.3 a `podman stop` cannot be
//! told from the events at all: only the rule without events helps.
//!
//! Without the events (`--events off`, or a gap the stream could not
//! replay), a look says what Docker's state allows: a container under
//! restart policy `always` or `unless-stopped` found `exited` (not
//! `restarting`) was stopped through the API, since the restart manager
//! would have started it again otherwise (`docker kill` in the back-off
//! sends no event at all and ends there); `OOMKilled` is an OOM kill;
//! anything else is `unknown`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long after an end the events told a look may overrule it: Podman
/// shows a container of its restart loop `exited` for a moment between the
/// `die` and its `restart`, which the rule without events would take for a
/// stop.
pub(crate) const LOOK_SETTLE: Duration = Duration::from_secs(2);

/// How long an end a look found before its `die` arrived waits for it
/// ([`Endings::settling`]): dockerd sends the `die` after it marks the
/// container exited, and a daemon busy with a compose recreate of many
/// services was seen to send it late.
pub(crate) const DIE_WAIT: Duration = Duration::from_secs(5);

/// How long a container found `created` (never started) is taken for one
/// about to start: a deploy creates its containers, then starts them
/// (compose creates every service's before it starts the first), and a tick
/// between the two is no outage. One still `created` after this long is
/// judged like any other that does not run.
pub(crate) const CREATED_SETTLE: Duration = Duration::from_secs(30);

/// The containers remembered at most beside the records' own (see
/// [`Endings::room_for`]); past it, the one left alone longest is forgotten
/// (its game's end is with the incident tracker by then).
pub(crate) const MAX_CONTAINERS: usize = 4096;

/// How a container's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Ended through the engine's API: `docker stop`, `kill`, `restart`,
    /// `rm -f`, a deploy, or the operator taking over in the back-off.
    Stopped,
    /// The kernel's OOM killer ended it.
    Oom,
    /// It died by itself with this non-zero exit code (128+N: signal N),
    /// including a process killed from the host.
    Crashed {
        /// The exit code the `die` (or the inspect) said.
        exit_code: i64,
    },
    /// It exited by itself with code 0 while it should run.
    Exited,
    /// Nothing tells how.
    Unknown,
}

impl EndReason {
    /// The name in events: `stopped`, `oom`, `crashed`, `exited`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Stopped => "stopped",
            EndReason::Oom => "oom",
            EndReason::Crashed { .. } => "crashed",
            EndReason::Exited => "exited",
            EndReason::Unknown => "unknown",
        }
    }

    /// The reason named `name` (as [`EndReason::as_str`] names it), with
    /// the exit code said beside it; a crash without one is `unknown`.
    pub fn from_name(name: &str, exit_code: Option<i64>) -> Option<EndReason> {
        Some(match name {
            "stopped" => EndReason::Stopped,
            "oom" => EndReason::Oom,
            "crashed" => match exit_code {
                Some(exit_code) => EndReason::Crashed { exit_code },
                None => EndReason::Unknown,
            },
            "exited" => EndReason::Exited,
            "unknown" => EndReason::Unknown,
            _ => return None,
        })
    }

    /// A crash's exit code.
    pub fn exit_code(self) -> Option<i64> {
        match self {
            EndReason::Crashed { exit_code } => Some(exit_code),
            EndReason::Exited => Some(0),
            _ => None,
        }
    }

    /// The signal that ended a crashed container, when its exit code is
    /// 128+N: `KILL` for 137.
    pub fn signal(self) -> Option<&'static str> {
        match self {
            EndReason::Crashed { exit_code } => signal_name(exit_code.checked_sub(128)?),
            _ => None,
        }
    }
}

/// Whether `State.Status` says the container's run has ended and no
/// restart is under way: `exited` or `dead`.
pub(crate) fn is_down(status: &str) -> bool {
    matches!(status, "exited" | "dead")
}

/// Linux's signal names by number, without `SIG` (1 to 31; 32 and 33 are
/// the C library's own).
const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// The name of signal `n` (1 to 31), without `SIG`.
pub(crate) fn signal_name(n: i64) -> Option<&'static str> {
    let i = usize::try_from(n.checked_sub(1)?).ok()?;
    SIGNALS.get(i).copied()
}

/// A `kill` action's signal as a number: Docker says a number (`"15"`); a
/// name (`"SIGTERM"`, `"TERM"`) is read too.
fn signal_number(signal: &str) -> Option<i64> {
    if let Ok(n) = signal.parse() {
        return Some(n);
    }
    let name = signal.trim_start_matches("SIG");
    SIGNALS
        .iter()
        .position(|s| s.eq_ignore_ascii_case(name))
        .map(|i| i as i64 + 1)
}

/// What the engine said of a container, as the classifier takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened<'a> {
    /// `start`: a new run; whatever asked the last one to end is history.
    Start,
    /// `kill`, with its `signal` attribute (Podman 4.3 says none).
    Kill {
        /// The signal, as the engine said it.
        signal: Option<&'a str>,
    },
    /// `oom`: the OOM killer killed a process of the container.
    Oom,
    /// `die`, with its `exitCode` attribute.
    Die {
        /// The exit code.
        exit_code: Option<i64>,
    },
    /// `stop`: the stop API.
    Stop,
    /// `destroy` (Podman: `remove`): the container is removed.
    Destroy,
    /// `restart`: the restart API on Docker (after the `start`); on Podman
    /// also each restart of its restart policy (after the `die`).
    Restart {
        /// The event came from Podman (its events carry `podId`).
        podman: bool,
    },
}

/// What one inspect said of a container, for its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Look<'a> {
    /// `State.Status`.
    pub status: &'a str,
    /// `HostConfig.RestartPolicy.Name` (`no`, `always`, `unless-stopped`,
    /// `on-failure`), when read.
    pub restart_policy: Option<&'a str>,
    /// `State.OOMKilled`.
    pub oom_killed: bool,
    /// `State.ExitCode`, when it describes an exit.
    pub exit_code: Option<i64>,
    /// `State.Error` is set: Docker could not start it (a `created`
    /// container with an error will not start by itself).
    pub start_failed: bool,
}

/// What asked the current run to end through the API, before its `die`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// A `kill` with this signal (`None`: the engine did not say).
    Kill(Option<i64>),
    /// A `stop`, or Podman's `restart` of a running container.
    Stop,
}

/// An end, and whether the events told it (a look may overrule a look's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct End {
    reason: EndReason,
    at: Instant,
    by_events: bool,
}

/// One container's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Container {
    /// What asked the run under way to end; cleared at each start.
    asked: Option<Asked>,
    /// An `oom` in the run under way.
    oom: bool,
    /// A `die` (or a look that found it down) since its last start.
    down: bool,
    /// Its last end, kept across the next start: the reason of a restart.
    end: Option<End>,
    /// Since when looks have found it `created` (never started) or
    /// `removing`: between two states, neither of them an outage.
    passing_since: Option<Instant>,
    touched: Instant,
}

impl Container {
    fn new(now: Instant) -> Container {
        Container {
            asked: None,
            oom: false,
            down: false,
            end: None,
            passing_since: None,
            touched: now,
        }
    }

    /// The reason of a `die` with `exit_code`, from what the run saw.
    fn classify(&self, exit_code: Option<i64>) -> EndReason {
        let asked = match self.asked {
            None => false,
            Some(Asked::Stop) => true,
            // What `docker stop`, `kill`, `rm -f` and compose send, or a
            // signal that ended the game whatever its handler did.
            Some(Asked::Kill(Some(2 | 3 | 9 | 15))) => true,
            // Another signal ended it only when the exit says so: a game
            // that survived a USR1 and crashed later crashed.
            Some(Asked::Kill(Some(n))) => exit_code == Some(128 + n),
            // Podman's `kill` says no signal: its default KILL (137), a
            // TERM's 143, or a game that ended cleanly on it.
            Some(Asked::Kill(None)) => exit_code.is_some_and(|c| c == 0 || c > 128),
        };
        if asked {
            EndReason::Stopped
        } else if self.oom {
            EndReason::Oom
        } else {
            match exit_code {
                Some(0) => EndReason::Exited,
                Some(code) => EndReason::Crashed { exit_code: code },
                None => EndReason::Unknown,
            }
        }
    }
}

/// Every container's end, as the events and the inspects told it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Endings {
    containers: HashMap<String, Container>,
    /// Whether an events stream feeds it: then a look that finds a
    /// container down before its `die` arrived waits for the `die`.
    events: bool,
    /// The containers remembered at most: [`MAX_CONTAINERS`] and the
    /// records' (see [`Endings::room_for`]).
    room: usize,
}

impl Endings {
    /// Knows of no container yet; `events` when an events stream feeds it.
    pub(crate) fn new(events: bool) -> Endings {
        Endings {
            containers: HashMap::new(),
            events,
            room: MAX_CONTAINERS,
        }
    }

    /// Keeps room for the containers of `records` records beside
    /// [`MAX_CONTAINERS`] others. Every record's container is looked at
    /// each tick: with more records than the bound, each look would forget
    /// the container left alone longest, the very one the tick looks at
    /// next, costing every end the events told and a scan of the whole
    /// memory per look. When the records shrink, the memory stays as large
    /// as it grew: a container is forgotten for each new one.
    pub(crate) fn room_for(&mut self, records: usize) {
        self.room = MAX_CONTAINERS.saturating_add(records);
    }

    /// Whether `container` is remembered.
    #[cfg(test)]
    pub(crate) fn remembers(&self, container: &str) -> bool {
        self.containers.contains_key(container)
    }

    /// Whether `container`'s end is still on its way at `now`: with the
    /// events stream on, a look found it down before its `die` arrived
    /// (dockerd marks a container exited before it sends the `die`, and a
    /// busy daemon sends it late); for [`DIE_WAIT`] the events may still
    /// say how it ended (a `kill` before it, an `oom`), and nothing should
    /// be judged of the end yet. A stream that lost the `die` costs that
    /// long and the next look.
    ///
    /// So is a container found `created` for less than [`CREATED_SETTLE`],
    /// events or not: it is about to start; and one found `removing` for as
    /// long: it is being removed through the API (`docker rm -f`, a compose
    /// down or recreate), its `destroy` on the way.
    pub(crate) fn settling(&self, container: &str, now: Instant) -> bool {
        let Some(c) = self.containers.get(container) else {
            return false;
        };
        let young = |since: Instant, settle| now.saturating_duration_since(since) < settle;
        let end_on_its_way =
            self.events && c.down && c.end.is_some_and(|e| !e.by_events && young(e.at, DIE_WAIT));
        end_on_its_way || c.passing_since.is_some_and(|t| young(t, CREATED_SETTLE))
    }

    /// An event of `container` at `now`. Returns the container's end when
    /// this event made or changed it (a `die`, or a `stop` or `destroy`
    /// after it: the operator took over).
    pub(crate) fn event(
        &mut self,
        container: &str,
        happened: Happened<'_>,
        now: Instant,
    ) -> Option<EndReason> {
        let c = self.entry(container, now);
        c.touched = now;
        match happened {
            Happened::Start => {
                c.passing_since = None;
                c.asked = None;
                c.oom = false;
                c.down = false;
                None
            }
            // In the back-off Docker 29 sends no `kill`, Docker 20.10's
            // `docker kill` nothing at all: a kill of a container down asks
            // nothing of a run.
            Happened::Kill { signal } if !c.down => {
                let n = signal.and_then(signal_number);
                // The strongest ask stands: a TERM after a USR1 ends it.
                if !matches!(
                    c.asked,
                    Some(Asked::Stop | Asked::Kill(Some(2 | 3 | 9 | 15)))
                ) {
                    c.asked = Some(Asked::Kill(n));
                }
                None
            }
            Happened::Kill { .. } => None,
            Happened::Oom => {
                c.oom |= !c.down;
                None
            }
            // A second `die` with no `start` between is one already told
            // (a replay from `since`): it changes nothing, least of all a
            // `stop` that came after the first.
            Happened::Die { .. } if c.down && c.end.is_some_and(|e| e.by_events) => None,
            Happened::Die { exit_code } => {
                let reason = c.classify(exit_code);
                let before = c.end.filter(|_| c.down).map(|e| e.reason);
                c.down = true;
                c.end = Some(End {
                    reason,
                    at: now,
                    by_events: true,
                });
                (before != Some(reason)).then_some(reason)
            }
            Happened::Stop | Happened::Destroy | Happened::Restart { podman: true } if !c.down => {
                // Its `die` follows (Podman's `restart` comes before it);
                // a `stop` of a container never started asks for nothing
                // that a `start` would not clear.
                c.asked = Some(Asked::Stop);
                None
            }
            Happened::Stop | Happened::Destroy => {
                // After the `die` (moby#50220), or in the back-off: the
                // operator took over this end.
                let end = c.end.get_or_insert(End {
                    reason: EndReason::Unknown,
                    at: now,
                    by_events: true,
                });
                end.by_events = true;
                (end.reason != EndReason::Stopped).then(|| {
                    end.reason = EndReason::Stopped;
                    EndReason::Stopped
                })
            }
            Happened::Restart { .. } => None,
        }
    }

    /// What an inspect of `container` at `now` said. Returns the reason of
    /// the container's last end as it stands after the look (`None`: it
    /// never ended, as far as anything told).
    pub(crate) fn look(
        &mut self,
        container: &str,
        look: Look<'_>,
        now: Instant,
    ) -> Option<EndReason> {
        let c = self.entry(container, now);
        c.touched = now;
        c.passing_since = match look.status {
            "created" if !look.start_failed => c.passing_since.or(Some(now)),
            "removing" => c.passing_since.or(Some(now)),
            _ => None,
        };
        let down = is_down(look.status);
        if !down {
            if look.status == "running" && c.down {
                // A start the stream did not bring (events off, a gap).
                c.asked = None;
                c.oom = false;
                c.down = false;
            }
            return c.end.map(|e| e.reason);
        }
        // Docker's restart manager restarts `always` and `unless-stopped`
        // whatever the exit, unless stopped through the API (moby
        // `restartmanager.ShouldRestart`): found exited, it was stopped.
        let policy_stop = matches!(look.restart_policy, Some("always" | "unless-stopped"));
        let from_look = if policy_stop {
            EndReason::Stopped
        } else if look.oom_killed {
            EndReason::Oom
        } else {
            EndReason::Unknown
        };
        match &mut c.end {
            Some(end) if c.down && end.by_events => {
                // The events told this end; a look overrules them only with
                // what they cannot say, once a restart had time to begin.
                let settled = now.saturating_duration_since(end.at) >= LOOK_SETTLE;
                if policy_stop && settled {
                    end.reason = EndReason::Stopped;
                } else if look.oom_killed && matches!(end.reason, EndReason::Crashed { .. }) {
                    end.reason = EndReason::Oom;
                }
            }
            Some(end) if c.down => {
                // A look's own end: a later look knows as much (and its
                // time stays the first look's, which `settling` counts from).
                if end.reason != EndReason::Stopped {
                    end.reason = from_look;
                }
            }
            _ => {
                c.down = true;
                c.end = Some(End {
                    reason: from_look,
                    at: now,
                    by_events: false,
                });
            }
        }
        c.end.map(|e| e.reason)
    }

    /// The reason of `container`'s last end, as far as anything told.
    #[cfg(test)]
    pub(crate) fn reason(&self, container: &str) -> Option<EndReason> {
        self.containers.get(container)?.end.map(|e| e.reason)
    }

    /// The container's machine, made when new; past the room the one left
    /// alone longest is forgotten first.
    fn entry(&mut self, container: &str, now: Instant) -> &mut Container {
        if !self.containers.contains_key(container) {
            if self.containers.len() >= self.room
                && let Some(oldest) = self
                    .containers
                    .iter()
                    .min_by_key(|(_, c)| c.touched)
                    .map(|(id, _)| id.clone())
            {
                self.containers.remove(&oldest);
            }
            self.containers
                .insert(container.to_owned(), Container::new(now));
        }
        self.containers
            .get_mut(container)
            .expect("inserted just above")
    }
}

#[cfg(test)]
mod tests;
