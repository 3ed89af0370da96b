//! Test fakes for the three seams — the container inspector, the record
//! source, the event sink — so that the tick core, the inspector loop and the
//! publisher are tested without sockets or sleeps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::docker::{ContainerInspector, DockerError};
use crate::event::HealthEvent;
use crate::inspector::{Observation, RuntimeRecord};
use crate::publish::sink::{EventSink, SinkError};
use crate::records::{RecordError, RecordSource};
use crate::tick::InspectAnswer;

/// What the fake Docker answers for one container.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// A successful inspect.
    Inspect(Observation),
    /// 404.
    NotFound,
    /// Another HTTP status.
    Status(u16),
    /// No answer within the timeout.
    Timeout,
    /// The socket cannot be connected to.
    Unreachable,
}

impl Answer {
    /// A running container with `health` (`""`: no healthcheck).
    pub(crate) fn running(id: &str, restarts: u64, health: &str) -> Answer {
        Answer::Inspect(Observation {
            container_id: id.into(),
            restart_count: restarts,
            status: "running".into(),
            health: health.into(),
            details: None,
        })
    }

    /// A container in `status`, without healthcheck.
    pub(crate) fn status(id: &str, restarts: u64, status: &str) -> Answer {
        Answer::Inspect(Observation {
            container_id: id.into(),
            restart_count: restarts,
            status: status.into(),
            health: String::new(),
            details: None,
        })
    }

    fn result(&self) -> Result<Observation, DockerError> {
        match self {
            Answer::Inspect(o) => Ok(o.clone()),
            Answer::NotFound => Err(DockerError::NotFound),
            Answer::Status(s) => Err(DockerError::Status {
                status: *s,
                message: "fake failure".into(),
            }),
            Answer::Timeout => Err(DockerError::Timeout(Duration::from_secs(1))),
            Answer::Unreachable => Err(DockerError::Unreachable {
                socket: "/fake/docker.sock".into(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            }),
        }
    }
}

/// A Docker that answers from a table and remembers what it was asked.
#[derive(Debug, Default, Clone)]
pub(crate) struct FakeDocker {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    default: Option<Answer>,
    asked: Arc<Mutex<Vec<String>>>,
    ping: Arc<Mutex<Option<Answer>>>,
}

impl FakeDocker {
    /// A Docker with no containers (every inspect is a 404).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Answers `answer` for `container`.
    pub(crate) fn answer(self, container: &str, answer: Answer) -> Self {
        self.set(container, answer);
        self
    }

    /// Answers `answer` for every container not in the table.
    pub(crate) fn default_answer(mut self, answer: Answer) -> Self {
        self.default = Some(answer);
        self
    }

    /// Changes the answer for `container`.
    pub(crate) fn set(&self, container: &str, answer: Answer) {
        self.answers
            .lock()
            .unwrap()
            .insert(container.to_owned(), answer);
    }

    /// Makes `/_ping` fail with `answer` (`None`: it succeeds).
    pub(crate) fn set_ping(&self, answer: Option<Answer>) {
        *self.ping.lock().unwrap() = answer;
    }

    /// The containers inspected, in order.
    pub(crate) fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    /// Inspects `container`, the answer as the worker hands it to the cores.
    pub(crate) fn answer_to(&self, container: &str) -> InspectAnswer {
        crate::worker::core_answer(self.inspect(container))
    }

    /// Pings, the answer as the worker hands it to the cores.
    pub(crate) fn pinged(&self) -> Result<(), String> {
        self.ping().map_err(|e| e.to_string())
    }
}

impl ContainerInspector for FakeDocker {
    fn inspect(&self, container: &str) -> Result<Observation, DockerError> {
        self.asked.lock().unwrap().push(container.to_owned());
        let answers = self.answers.lock().unwrap();
        answers
            .get(container)
            .or(self.default.as_ref())
            .unwrap_or(&Answer::NotFound)
            .result()
    }

    fn ping(&self) -> Result<(), DockerError> {
        match &*self.ping.lock().unwrap() {
            None => Ok(()),
            Some(a) => a.result().map(|_| ()),
        }
    }
}

/// A record source answering a list, or a failure, that a test can change.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeRecords(Arc<Mutex<Option<Vec<RuntimeRecord>>>>);

impl FakeRecords {
    /// A source listing `records`.
    pub(crate) fn new(records: Vec<RuntimeRecord>) -> Self {
        FakeRecords(Arc::new(Mutex::new(Some(records))))
    }

    /// Lists `records` from now on (`None`: listing fails).
    pub(crate) fn set(&self, records: Option<Vec<RuntimeRecord>>) {
        *self.0.lock().unwrap() = records;
    }
}

impl RecordSource for FakeRecords {
    fn records(&mut self) -> Result<Vec<RuntimeRecord>, RecordError> {
        self.0
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| RecordError::Database("the fake source is down".into()))
    }
}

/// How the fake sink answers one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SinkAnswer {
    /// Accept the event.
    Accept,
    /// The sink is down.
    Down,
    /// Refuse this event for good.
    Refuse,
    /// Block forever, as a statement behind a lock or a frozen peer would.
    Hang,
}

/// A sink answering from a script (then accepting everything), keeping what
/// it accepted.
#[derive(Debug)]
pub(crate) struct FakeSink {
    script: std::collections::VecDeque<SinkAnswer>,
    accepted: Arc<Mutex<Vec<HealthEvent>>>,
    entered: (Sender<()>, Receiver<()>),
}

impl FakeSink {
    /// A sink answering `script` in order, then accepting.
    pub(crate) fn new(script: Vec<SinkAnswer>) -> Self {
        FakeSink {
            script: script.into(),
            accepted: Arc::default(),
            entered: crossbeam_channel::unbounded(),
        }
    }

    /// The events accepted so far.
    pub(crate) fn accepted(&self) -> Arc<Mutex<Vec<HealthEvent>>> {
        self.accepted.clone()
    }

    /// Receives one message each time a publish starts to hang.
    pub(crate) fn entered(&self) -> Receiver<()> {
        self.entered.1.clone()
    }
}

impl EventSink for FakeSink {
    fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
        match self.script.pop_front().unwrap_or(SinkAnswer::Accept) {
            SinkAnswer::Accept => {
                self.accepted.lock().unwrap().push(event.clone());
                Ok(())
            }
            SinkAnswer::Down => Err(SinkError::unavailable("the fake sink is down")),
            SinkAnswer::Refuse => Err(SinkError::refused("refused by the fake sink")),
            SinkAnswer::Hang => {
                let _ = self.entered.0.send(());
                let (_keep, never) = crossbeam_channel::bounded::<()>(0);
                let _ = never.recv();
                Err(SinkError::unavailable("unreachable"))
            }
        }
    }
}

/// Waits (at most 30 s) until `f` holds, for states another thread reaches.
pub(crate) fn wait_for(mut f: impl FnMut() -> bool) {
    let limit = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < limit, "condition not reached in 30 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}
