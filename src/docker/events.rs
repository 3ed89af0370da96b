//! The Docker events stream: a blocking read of `GET /events` on a thread of
//! its own, telling the inspector which container just died, ran out of
//! memory, changed health, started or restarted. It never inspects or
//! publishes: it hands a [`Nudge`] to a bounded channel and goes back to
//! reading, and the inspector decides with the rules of a tick.
//!
//! dockerd skips an event for a subscriber that has not taken it within about
//! 100 ms, so the reader never blocks on the inspector: when the channel is
//! full, nudges merge into one "resync" flag that the inspector honours with
//! a full tick. Every (re)subscription is followed by a resync too: dockerd
//! replays only its last 256 events (`since`), and none across its restart.
//!
//! A stream must prove itself before the reconnect backoff starts afresh:
//! by news (an event newer than any seen before it subscribed), by a silence
//! that dockerd answers when pinged, or by staying up for [`SILENCE`]. An
//! event replayed from `since` is still handed on, but proves nothing: a
//! stream that replays one event and ends must back off like a broken one.
//!
//! The stream is read with a small HTTP/1.1 reader of its own rather than
//! through ureq: ureq bounds a body as a whole, and a stream that has been
//! silent for [`SILENCE`] must be checked with `/_ping` and then read on, not
//! ended. Everything else about the connection (socket, connect timeout) is
//! shared with the client.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, TrySendError};
use serde::Deserialize;

use super::error::{error_message, is_version_refusal};
use super::{ApiVersion, ContainerInspector, DockerClient, DockerError};
use crate::backoff::Backoff;
use crate::unix_socket;

/// How long the stream may stay silent before dockerd is pinged.
pub const SILENCE: Duration = Duration::from_secs(30);

/// The container actions that may change a verdict, or the record set.
/// `health_status` matches `health_status: unhealthy` too (Docker's filter
/// treats it as a prefix). `create` only moves a game's record to its newest
/// container (label mode); it never asks for an inspect. `stop` and `kill`
/// never ask for one either: they say that a container's end, which its
/// `die` reports, was asked for through Docker's API (`docker stop`, `docker
/// kill`, `docker rm -f`, a deploy), so that replacing it is no crash.
pub const ACTIONS: [&str; 8] = [
    "die",
    "oom",
    "health_status",
    "start",
    "restart",
    "create",
    "stop",
    "kill",
];

/// The longest event line read; an event is a few hundred bytes, but its
/// attributes carry every label of the container.
const LINE_LIMIT: usize = 256 * 1024;

/// The response head's limit.
const HEAD_LIMIT: usize = 16 * 1024;

/// What the reader tells the inspector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nudge {
    /// Something happened to one container.
    Container(ContainerEvent),
    /// Events may have been missed (a (re)subscription, a full channel):
    /// inspect every record.
    Resync,
}

/// One container event, reduced to what the inspector needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The container's full id.
    pub id: String,
    /// Its name, when Docker says (without the leading `/`).
    pub name: Option<String>,
    /// `die`, `oom`, `health_status: unhealthy`, …
    pub action: String,
    /// When dockerd says it happened.
    pub at: SystemTime,
    /// Label mode: the value of the game label, when the container carries
    /// it. Docker copies every label of the container into a container
    /// event's `Actor.Attributes` (moby `daemon/events.go`, `copyAttributes`;
    /// seen on Docker 20.10 for `create`, `start` and `die`, and the same in
    /// Docker 29), and so does Podman 4.3's Docker API (beside its own
    /// `podId` and `containerExitCode`): an event without the label is of a
    /// container that is not a game's. `None` in PostgreSQL mode.
    pub game: Option<String>,
    /// A `die`'s `exitCode` attribute: how the container ended, which is
    /// all there is to say of one removed as it died (`--rm`).
    pub exit_code: Option<i64>,
    /// A `kill`'s `signal` attribute (Docker 20.10 says it as a number).
    pub signal: Option<String>,
}

impl ContainerEvent {
    /// The action's label for `rtinspect_docker_events_total{action}`: one of
    /// [`ACTIONS`], `health_status` for every health change.
    pub fn action_label(&self) -> &'static str {
        ACTIONS
            .iter()
            .find(|a| {
                self.action
                    .strip_prefix(**a)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
            })
            .copied()
            .unwrap_or("other")
    }

    /// Whether this event ends the container through Docker's API: a
    /// `stop`, or a `kill` with `SIGKILL` or `SIGTERM` (what `docker stop`,
    /// `docker kill` and `docker rm -f` send; Docker 20.10 sends `kill`
    /// before the `die`, and `stop` after it or before: moby#50220) or
    /// with no signal said. A `kill` with another signal (`docker kill -s
    /// USR1`) is often survived, and ends nothing.
    pub fn ends_by_api(&self) -> bool {
        match self.action_label() {
            "stop" => true,
            "kill" => self.signal.as_deref().is_none_or(|s| {
                matches!(s.trim_start_matches("SIG"), "9" | "15" | "KILL" | "TERM")
            }),
            _ => false,
        }
    }
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "Type", default)]
    kind: String,
    // Read `Action`: the legacy `status` is back-filled only for API < 1.52.
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: Actor,
    #[serde(default)]
    time: i64,
    #[serde(rename = "timeNano", default)]
    time_nano: i64,
}

#[derive(Deserialize, Default)]
struct Actor {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: HashMap<String, String>,
}

/// Decodes one event line; `None` for anything that is not a container event
/// of interest (other types, other actions, garbage). `label` names the game
/// label whose value the event carries on (label mode).
pub fn decode_event(line: &[u8], label: Option<&str>) -> Option<ContainerEvent> {
    let m: Message = serde_json::from_slice(line).ok()?;
    if m.kind != "container" || m.actor.id.is_empty() {
        return None;
    }
    // Cleaned of NUL as the listing's label is: PostgreSQL takes no NUL in text.
    let clean = super::decode::clean_text;
    let game = label.and_then(|l| m.actor.attributes.get(l).cloned().map(clean));
    let event = ContainerEvent {
        game,
        at: if m.time_nano > 0 {
            UNIX_EPOCH + Duration::from_nanos(m.time_nano as u64)
        } else {
            UNIX_EPOCH + Duration::from_secs(m.time.max(0) as u64)
        },
        name: m
            .actor
            .attributes
            .get("name")
            .map(|n| clean(n.trim_start_matches('/').to_owned())),
        exit_code: m
            .actor
            .attributes
            .get("exitCode")
            .and_then(|c| c.parse().ok()),
        signal: m.actor.attributes.get("signal").cloned(),
        id: m.actor.id,
        action: m.action,
    };
    (event.action_label() != "other").then_some(event)
}

/// The event filter's values: [`ACTIONS`], and `died`, because Podman 4.3
/// matches the filter against its internal name for `die` (containers/podman
/// #16857, fixed in 4.4) and would otherwise send no death at all; dockerd
/// ignores a value it never sends.
const FILTER_ACTIONS: [&str; 9] = [
    "die",
    "died",
    "oom",
    "health_status",
    "start",
    "restart",
    "create",
    "stop",
    "kill",
];

/// The query of the events request: containers only, the actions of
/// [`ACTIONS`], from `since` on (seconds with nanoseconds, as Docker takes it).
/// `create` only with `creates` (label mode): elsewhere it would only take
/// room in the nudge channel.
pub fn events_query(since: Option<SystemTime>, creates: bool) -> String {
    let actions: Vec<&str> = FILTER_ACTIONS
        .iter()
        .copied()
        .filter(|a| creates || *a != "create")
        .collect();
    let filters = serde_json::json!({ "type": ["container"], "event": actions }).to_string();
    let mut query = format!("filters={}", super::client::percent_encode(&filters));
    if let Some(since) = since {
        let d = since.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        query = format!("since={}.{:09}&{query}", d.as_secs(), d.subsec_nanos());
    }
    query
}

/// What the reader counts, for the metrics.
pub trait StreamCounters: Send + Sync {
    /// One event of `action` (a label of [`ContainerEvent::action_label`]) arrived.
    fn event(&self, action: &'static str);
    /// A subscription was tried (the first, or a retry after a break).
    fn attempted(&self);
    /// A subscription got its 2xx response head after an earlier one broke
    /// or failed: the stream is subscribed again.
    fn reconnected(&self);
}

/// The process's counters are the reader's: each followed action under its
/// own label.
impl StreamCounters for crate::telemetry::Telemetry {
    fn event(&self, action: &'static str) {
        self.docker_event(action);
    }

    fn attempted(&self) {
        self.stream_attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn reconnected(&self) {
        self.stream_reconnects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The running reader thread.
#[derive(Debug)]
pub struct EventsReader {
    thread: JoinHandle<()>,
    stop: Arc<AtomicBool>,
    /// The current stream, so that `stop` can end a blocked read.
    stream: Arc<Mutex<Option<UnixStream>>>,
    /// Disconnects when the thread ends.
    ended: crossbeam_channel::Receiver<()>,
}

/// How long `stop` waits for the thread: it may be in a `/_ping` bounded by
/// the Docker timeout, which the exit does not wait for.
const STOP_WAIT: Duration = Duration::from_secs(1);

impl EventsReader {
    /// Stops reading; joins the thread unless it is blocked in a call.
    pub fn stop(self) {
        self.stop.store(true, Relaxed);
        if let Some(s) = &*self.stream.lock().unwrap_or_else(|p| p.into_inner()) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if self.ended.recv_timeout(STOP_WAIT).is_err()
            && self.thread.is_finished()
            && let Err(panic) = self.thread.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Where the reader reads from and whom it tells.
pub struct ReaderParts {
    /// dockerd's socket.
    pub socket: PathBuf,
    /// A client of the same dockerd, for `/_ping` and the API version.
    pub client: DockerClient,
    /// Bound on connecting and on the response head.
    pub timeout: Duration,
    /// The inspector's end.
    pub nudges: Sender<Nudge>,
    /// Set when a nudge could not be queued: the inspector resyncs.
    pub overflow: Arc<AtomicBool>,
    /// The metrics.
    pub counters: Arc<dyn StreamCounters>,
    /// How long the stream may be silent before dockerd is pinged ([`SILENCE`]).
    pub silence: Duration,
    /// Label mode: the game label, whose value each event carries on.
    pub label: Option<String>,
}

/// Starts the reader thread.
pub fn spawn(parts: ReaderParts) -> io::Result<EventsReader> {
    let stop = Arc::new(AtomicBool::new(false));
    let stream = Arc::new(Mutex::new(None));
    let (alive, ended) = crossbeam_channel::bounded::<()>(0);
    let (s, st) = (stop.clone(), stream.clone());
    let thread = std::thread::Builder::new()
        .name("docker-events".into())
        .spawn(move || {
            let _alive = alive;
            read_forever(&parts, &s, &st)
        })?;
    Ok(EventsReader {
        thread,
        stop,
        stream,
        ended,
    })
}

/// Why one subscription ended.
#[derive(Debug)]
enum Break {
    /// The stream ended or failed; reconnect.
    Stream(DockerError),
    /// Asked to stop.
    Stopped,
}

fn read_forever(parts: &ReaderParts, stop: &AtomicBool, slot: &Mutex<Option<UnixStream>>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    let mut last_event: Option<SystemTime> = None;
    let mut warned = false;
    let mut first = true;
    let mut subscribed = false;
    while !stop.load(Relaxed) {
        // Resume a second before the last event seen: a duplicate only
        // costs an inspect, a gap would cost an event.
        let since = last_event.map(|t| t - Duration::from_secs(1));
        parts.counters.attempted();
        let state = Subscription {
            last_event: &mut last_event,
            backoff: &mut backoff,
            warned: &mut warned,
            subscribed: &mut subscribed,
            after_break: !first,
        };
        match subscribe(parts, since, stop, slot, state) {
            Break::Stopped => break,
            Break::Stream(e) => {
                if !stop.load(Relaxed) && !warned {
                    warned = true;
                    log::warn!(err:% = e; "Docker events stream broken; reconnecting with backoff (the poll goes on)");
                }
            }
        }
        if first && !subscribed {
            // The inspector waits for the first subscription before its
            // first tick; a failed one must not keep it waiting.
            offer(parts, Nudge::Resync);
        }
        first = false;
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let delay = backoff.next_delay();
        let until = Instant::now() + delay;
        while !stop.load(Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50).min(delay));
        }
    }
}

/// What one subscription reads and updates of the reader's state.
struct Subscription<'a> {
    /// The time of the last event seen (or of the subscription).
    last_event: &'a mut Option<SystemTime>,
    backoff: &'a mut Backoff,
    /// Whether the break was warned about (once per outage).
    warned: &'a mut bool,
    /// Whether any subscription ever succeeded.
    subscribed: &'a mut bool,
    /// Whether an earlier attempt broke or failed: a success is a reconnect.
    after_break: bool,
}

/// Whether one subscription has shown that it works, so that the reconnect
/// backoff and the outage warning may start afresh. A stream that breaks at
/// once must not reconnect, and tick, in a loop; and dockerd replays from
/// `since` whatever its ring holds, so an event it replays (no newer than
/// the last one seen) proves nothing: a stream that replays one and ends at
/// once is as broken as one that sends nothing.
#[derive(Debug)]
struct Proof {
    /// The time of the last event seen before this subscription (or of the
    /// first subscription): only an event after it is news.
    seen: SystemTime,
    /// When the response head arrived.
    up_since: Instant,
    /// How long the stream must stay up to prove itself whatever it
    /// carries: the silence after which a quiet one is pinged.
    stay: Duration,
    proven: bool,
}

impl Proof {
    fn new(seen: SystemTime, up_since: Instant, stay: Duration) -> Self {
        Proof {
            seen,
            up_since,
            stay,
            proven: false,
        }
    }

    /// An event of time `at` arrived at `now`; `true` when this proves the
    /// stream for the first time.
    fn event(&mut self, at: SystemTime, now: Instant) -> bool {
        let news = at > self.seen;
        self.settle(news || self.stayed(now))
    }

    /// dockerd answered the ping of a silent stream.
    fn pinged(&mut self) -> bool {
        self.settle(true)
    }

    /// The reader woke for anything else (a skipped line, the end).
    fn woke(&mut self, now: Instant) -> bool {
        self.settle(self.stayed(now))
    }

    fn stayed(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.up_since) >= self.stay
    }

    fn settle(&mut self, proves: bool) -> bool {
        let first = proves && !self.proven;
        self.proven |= proves;
        first
    }
}

/// One subscription: connect, request, then read events until the stream
/// breaks or `stop` is set.
fn subscribe(
    parts: &ReaderParts,
    since: Option<SystemTime>,
    stop: &AtomicBool,
    slot: &Mutex<Option<UnixStream>>,
    state: Subscription<'_>,
) -> Break {
    let Subscription {
        last_event,
        backoff,
        warned,
        subscribed,
        after_break,
    } = state;
    let version = match parts.client.negotiate() {
        Ok(v) => v,
        Err(e) => return Break::Stream(e),
    };
    let stream = match open(parts, version, since) {
        Ok(s) => s,
        Err(e) => return Break::Stream(e),
    };
    if let Ok(clone) = stream.try_clone() {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(clone);
    }
    if stop.load(Relaxed) {
        return Break::Stopped;
    }
    let mut body = match read_head(stream, parts) {
        Ok(b) => b,
        Err(e) => return Break::Stream(e),
    };
    // Subscribed: whatever happened while not subscribed is caught by a full
    // tick, and a break from now on resumes at least from here.
    let seen = *last_event.get_or_insert_with(SystemTime::now);
    *subscribed = true;
    if after_break {
        parts.counters.reconnected();
    }
    offer(parts, Nudge::Resync);
    let mut proof = Proof::new(seen, Instant::now(), parts.silence);
    // The backoff and the warning start afresh only once the stream has
    // proved itself.
    let proved = |backoff: &mut Backoff, warned: &mut bool| {
        backoff.reset();
        if *warned {
            *warned = false;
            log::info!("Docker events stream subscribed again");
        }
    };
    let mut line = Vec::with_capacity(1024);
    loop {
        let got = read_line(&mut body, &mut line);
        let now = Instant::now();
        let event = match got {
            Ok(Got::Line) => decode_event(&line, parts.label.as_deref()),
            _ => None,
        };
        // A silence proves nothing by itself: the ping that follows decides.
        let silent = matches!(&got, Err(e) if unix_socket::is_timeout(e));
        let newly_proven = match &event {
            Some(e) => proof.event(e.at, now),
            None if !silent => proof.woke(now),
            None => false,
        };
        if newly_proven {
            proved(backoff, warned);
        }
        match got {
            Ok(Got::End) => {
                return Break::Stream(DockerError::Transport(
                    "the events stream ended (dockerd stopping or restarting)".into(),
                ));
            }
            Ok(Got::Line) => {
                if let Some(event) = event {
                    *last_event = Some(event.at);
                    parts.counters.event(event.action_label());
                    // Replayed or not, the inspector decides.
                    offer(parts, Nudge::Container(event));
                }
                line.clear();
            }
            Ok(Got::Skipped) => {
                log::warn!(
                    "skipped a Docker event line over {LINE_LIMIT} bytes; a tick will catch up"
                );
                offer(parts, Nudge::Resync);
            }
            Err(e) if stop.load(Relaxed) => {
                let _ = e;
                return Break::Stopped;
            }
            Err(e) if unix_socket::is_timeout(&e) => {
                // Silent for a while: a quiet host, or a dockerd that hangs.
                if let Err(e) = parts.client.ping() {
                    return Break::Stream(e);
                }
                if proof.pinged() {
                    proved(backoff, warned);
                }
            }
            Err(e) => return Break::Stream(DockerError::Transport(Box::new(e))),
        }
    }
}

/// Hands a nudge over without waiting; a full channel turns into a resync.
fn offer(parts: &ReaderParts, nudge: Nudge) {
    match parts.nudges.try_send(nudge) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => parts.overflow.store(true, Relaxed),
        Err(TrySendError::Disconnected(_)) => {}
    }
}

/// Connects and sends the request.
fn open(
    parts: &ReaderParts,
    version: ApiVersion,
    since: Option<SystemTime>,
) -> Result<UnixStream, DockerError> {
    let mut stream = unix_socket::connect_within(&parts.socket, Some(parts.timeout))
        .map_err(|e| parts.client.map_io_error(e))?;
    let request = format!(
        "GET /v{version}/events?{} HTTP/1.1\r\nHost: docker\r\nUser-Agent: rtinspect/{}\r\n\r\n",
        events_query(since, parts.label.is_some()),
        env!("CARGO_PKG_VERSION")
    );
    stream
        .set_write_timeout(Some(parts.timeout))
        .and_then(|()| stream.set_read_timeout(Some(parts.timeout)))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| parts.client.map_io_error(e))?;
    Ok(stream)
}

/// The body of a response to read events from.
type Body = Box<dyn BufRead + Send>;

/// Reads the response head; a 2xx gives the body (de-chunked when chunked),
/// read with the silence limit from then on.
fn read_head(stream: UnixStream, parts: &ReaderParts) -> Result<Body, DockerError> {
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = (&mut reader)
            .take((HEAD_LIMIT - head.len()) as u64)
            .read_until(b'\n', &mut head)
            .map_err(|e| parts.client.map_io_error(e))?;
        if n == 0 {
            return Err(DockerError::Transport(
                "the events stream closed before its response head".into(),
            ));
        }
        if head[before..] == *b"\r\n" || head[before..] == *b"\n" {
            break;
        }
        if head.len() >= HEAD_LIMIT {
            return Err(DockerError::TooLarge(HEAD_LIMIT as u64));
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| DockerError::Malformed("bad status line on the events stream".into()))?;
    let header = |name: &str| {
        text.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if !(200..300).contains(&status) {
        // An error body is `{"message": …}` of Content-Length bytes; the
        // connection may stay open after it, so read no further.
        let length = header("content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            .min(64 * 1024);
        let mut body = Vec::new();
        let _ = (&mut reader).take(length).read_to_end(&mut body);
        let message = error_message(&body);
        if status == 400 && is_version_refusal(&message) {
            parts.client.forget_version();
        }
        return Err(DockerError::Status { status, message });
    }
    let _ = reader.get_ref().set_read_timeout(Some(parts.silence));
    Ok(if chunked {
        Box::new(BufReader::new(Chunked::new(reader)))
    } else {
        Box::new(reader)
    })
}

/// What one read of the stream gave.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    /// A whole line is in the buffer, without its newline.
    Line,
    /// A line over [`LINE_LIMIT`] was read past and dropped.
    Skipped,
    /// The stream ended.
    End,
}

/// Reads on into `line` (which may hold the start of a line a timeout cut)
/// until it holds a whole line. A line over [`LINE_LIMIT`] (a container whose
/// labels are huge) is read past to its newline and dropped, so that the
/// stream goes on rather than break and replay the same line for ever.
fn read_line(body: &mut Body, line: &mut Vec<u8>) -> io::Result<Got> {
    let room = (LINE_LIMIT + 1).saturating_sub(line.len()) as u64;
    body.as_mut().take(room).read_until(b'\n', line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Got::Line);
    }
    if line.len() <= LINE_LIMIT {
        // Neither a newline nor the limit: the end of the stream.
        return Ok(Got::End);
    }
    line.clear();
    loop {
        let buf = body.fill_buf()?;
        if buf.is_empty() {
            return Ok(Got::End);
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                body.consume(i + 1);
                return Ok(Got::Skipped);
            }
            None => {
                let n = buf.len();
                body.consume(n);
            }
        }
    }
}

/// HTTP/1.1 chunked transfer coding, decoded as a plain byte stream.
struct Chunked<R> {
    inner: R,
    /// Bytes left in the current chunk; `None` before a chunk-size line.
    left: Option<u64>,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Self {
        Chunked {
            inner,
            left: None,
            done: false,
        }
    }

    fn bad(what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad chunked body: {what}"),
        )
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match self.left {
                None => {
                    let mut size_line = Vec::new();
                    let n = (&mut self.inner)
                        .take(1024)
                        .read_until(b'\n', &mut size_line)?;
                    if n == 0 {
                        return Ok(0);
                    }
                    if size_line.last() != Some(&b'\n') {
                        return Err(Self::bad("a size line over 1 KiB"));
                    }
                    let text = String::from_utf8_lossy(&size_line);
                    let hex = text.trim().split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(hex, 16).map_err(|_| Self::bad("a size"))?;
                    if size == 0 {
                        self.done = true;
                        return Ok(0);
                    }
                    self.left = Some(size);
                }
                Some(0) => {
                    let mut crlf = Vec::new();
                    (&mut self.inner).take(2).read_until(b'\n', &mut crlf)?;
                    if crlf != b"\r\n" && crlf != b"\n" {
                        return Err(Self::bad("no CRLF after a chunk"));
                    }
                    self.left = None;
                }
                Some(left) => {
                    let want = buf.len().min(left as usize);
                    let n = self.inner.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(Self::bad("the stream ended inside a chunk"));
                    }
                    self.left = Some(left - n as u64);
                    return Ok(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn each_followed_action_has_its_own_label_in_the_metrics_and_the_rest_are_other() {
        let labels = crate::telemetry::DOCKER_EVENT_ACTIONS;
        assert_eq!(&labels[..ACTIONS.len()], &ACTIONS[..]);
        assert_eq!(labels[ACTIONS.len()..], ["other"]);
    }

    /// (action, its label, the container's name) expected of a line.
    type Expected<'a> = Option<(&'a str, &'a str, Option<&'a str>)>;

    #[test]
    fn event_lines_table() {
        let at = |ns: u64| UNIX_EPOCH + Duration::from_nanos(ns);
        let table: &[(&str, Expected)] = &[
            // Docker 20.10: Action and the legacy status.
            (
                r#"{"status":"die","id":"ID","Type":"container","Action":"die","Actor":{"ID":"ID","Attributes":{"exitCode":"1","name":"game-1"}},"time":1795726800,"timeNano":1795726800123456789}"#,
                Some(("die", "die", Some("game-1"))),
            ),
            // Docker 29: no status field.
            (
                r#"{"Type":"container","Action":"health_status: unhealthy","Actor":{"ID":"ID","Attributes":{"name":"/g"}},"time":1795726800,"timeNano":1795726800123456789}"#,
                Some(("health_status: unhealthy", "health_status", Some("g"))),
            ),
            // Podman: a bare health_status.
            (
                r#"{"Type":"container","Action":"health_status","Actor":{"ID":"ID"},"time":1795726800,"timeNano":1795726800123456789}"#,
                Some(("health_status", "health_status", None)),
            ),
            (
                r#"{"Type":"container","Action":"oom","Actor":{"ID":"ID"},"timeNano":1795726800123456789}"#,
                Some(("oom", "oom", None)),
            ),
            (
                r#"{"Type":"network","Action":"connect","Actor":{"ID":"ID"},"timeNano":1}"#,
                None,
            ),
            (
                r#"{"Type":"container","Action":"exec_start: sh","Actor":{"ID":"ID"},"timeNano":1}"#,
                None,
            ),
            (
                r#"{"Type":"container","Action":"die","Actor":{"ID":""}}"#,
                None,
            ),
            ("not json", None),
            ("", None),
        ];
        for (line, want) in table {
            let line = line.replace("\"ID\":\"ID\"", &format!("\"ID\":\"{ID}\""));
            let got = decode_event(line.as_bytes(), None);
            match want {
                None => assert_eq!(got, None, "{line}"),
                Some((action, label, name)) => {
                    let e = got.unwrap_or_else(|| panic!("{line}"));
                    assert_eq!(e.id, ID);
                    assert_eq!(e.action, *action);
                    assert_eq!(e.action_label(), *label);
                    assert_eq!(e.name.as_deref(), *name);
                    assert_eq!(e.at, at(1_795_726_800_123_456_789));
                }
            }
        }
    }

    #[test]
    fn seconds_are_used_without_nanoseconds() {
        let e = decode_event(
            format!(r#"{{"Type":"container","Action":"start","Actor":{{"ID":"{ID}"}},"time":5}}"#)
                .as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(e.at, UNIX_EPOCH + Duration::from_secs(5));
    }

    #[test]
    fn the_game_label_is_read_from_the_attributes_in_label_mode() {
        // As Docker 20.10 sent it for `docker run --label rtinspect.game-id=gx`.
        let line = format!(
            r#"{{"Type":"container","Action":"start","Actor":{{"ID":"{ID}","Attributes":{{"image":"probe/bb:1","name":"probe1","rtinspect.game-id":"gx"}}}},"timeNano":5}}"#
        );
        let label = Some("rtinspect.game-id");
        let e = decode_event(line.as_bytes(), label).unwrap();
        assert_eq!(e.game.as_deref(), Some("gx"));
        assert_eq!(decode_event(line.as_bytes(), None).unwrap().game, None);
        let other = line.replace("rtinspect.game-id", "other.label");
        assert_eq!(decode_event(other.as_bytes(), label).unwrap().game, None);
        let created = line.replace("\"start\"", "\"create\"");
        assert_eq!(
            decode_event(created.as_bytes(), label)
                .unwrap()
                .action_label(),
            "create"
        );
    }

    #[test]
    fn an_events_game_label_and_name_are_cleaned_of_nul_as_the_listings_are() {
        let line = format!(
            r#"{{"Type":"container","Action":"start","Actor":{{"ID":"{ID}","Attributes":{{"name":"/pro\u0000be","rtinspect.game-id":"g\u0000x"}}}},"timeNano":5}}"#
        );
        let e = decode_event(line.as_bytes(), Some("rtinspect.game-id")).unwrap();
        assert_eq!(e.game.as_deref(), Some("g\u{FFFD}x"));
        assert_eq!(e.name.as_deref(), Some("pro\u{FFFD}be"));
    }

    #[test]
    fn the_query_filters_containers_and_actions_and_resumes() {
        let without = events_query(None, false);
        assert!(!without.contains("create"), "{without}");
        let q = events_query(None, true);
        let decoded = q
            .replace("%22", "\"")
            .replace("%3A", ":")
            .replace("%2C", ",")
            .replace("%5B", "[")
            .replace("%5D", "]");
        assert!(decoded.contains(r#""type":["container"]"#), "{decoded}");
        assert!(
            decoded.contains(
                r#""event":["die","died","oom","health_status","start","restart","create","stop","kill"]"#
            ),
            "{decoded}"
        );
        let since = UNIX_EPOCH + Duration::new(1_795_726_800, 5);
        assert!(events_query(Some(since), true).starts_with("since=1795726800.000000005&filters="));
    }

    #[test]
    fn a_replayed_event_does_not_prove_a_stream() {
        let seen = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let up = Instant::now();
        let stay = Duration::from_secs(30);
        let s = Duration::from_secs;
        // What the stream carries, and when (seconds after the head).
        enum Carried {
            Event(SystemTime),
            Ping,
            Other,
        }
        type Carries<'a> = &'a [(Carried, u64)];
        // (what, the stream, whether it proves itself)
        let table: &[(&str, Carries, bool)] = &[
            // dockerd replays from `since` = the last event seen − 1 s.
            (
                "the last event seen, replayed",
                &[(Carried::Event(seen), 0)],
                false,
            ),
            (
                "an older one in the replay window",
                &[(Carried::Event(seen - s(1)), 0)],
                false,
            ),
            ("news", &[(Carried::Event(seen + s(1)), 0)], true),
            (
                "replays, then news",
                &[(Carried::Event(seen), 0), (Carried::Event(seen + s(1)), 1)],
                true,
            ),
            ("a silence answered by a ping", &[(Carried::Ping, 30)], true),
            ("the end at once", &[(Carried::Other, 0)], false),
            ("the end after 29 s", &[(Carried::Other, 29)], false),
            ("the end after 30 s", &[(Carried::Other, 30)], true),
            (
                "a replay after 30 s up",
                &[(Carried::Event(seen), 30)],
                true,
            ),
        ];
        for (what, got, proves) in table {
            let mut proof = Proof::new(seen, up, stay);
            let mut proven_times = 0;
            for (g, at) in *got {
                let now = up + s(*at);
                let newly = match g {
                    Carried::Event(t) => proof.event(*t, now),
                    Carried::Ping => proof.pinged(),
                    Carried::Other => proof.woke(now),
                };
                proven_times += usize::from(newly);
            }
            assert_eq!(proven_times, usize::from(*proves), "{what}");
        }
        // Proven once: more news does not reset the backoff again.
        let mut proof = Proof::new(seen, up, stay);
        assert!(proof.event(seen + s(1), up));
        assert!(!proof.event(seen + s(2), up));
        assert!(!proof.pinged());
    }

    fn dechunk(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Chunked::new(BufReader::new(bytes)).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn chunked_bodies_table() {
        let table: &[(&[u8], Option<&[u8]>)] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", Some(b"hello")),
            (b"3\r\nab\n\r\n2\r\ncd\r\n0\r\n\r\n", Some(b"ab\ncd")),
            (b"a;ext=1\r\n0123456789\r\n0\r\n\r\n", Some(b"0123456789")),
            (b"5\r\nhello\r\n", Some(b"hello")),
            (b"zz\r\nhello\r\n", None),
            (b"5\r\nhel", None),
            (b"5\r\nhelloXX0\r\n\r\n", None),
        ];
        for (input, want) in table {
            let got = dechunk(input);
            match want {
                Some(w) => assert_eq!(got.unwrap(), *w, "{:?}", String::from_utf8_lossy(input)),
                None => assert!(got.is_err(), "{:?}", String::from_utf8_lossy(input)),
            }
        }
    }

    #[test]
    fn an_event_split_across_chunks_is_one_line() {
        let body = b"4\r\n{\"a\"\r\n3\r\n:1}\r\n1\r\n\n\r\n0\r\n\r\n";
        let mut reader: Body = Box::new(BufReader::new(Chunked::new(BufReader::new(&body[..]))));
        let mut line = Vec::new();
        assert_eq!(read_line(&mut reader, &mut line).unwrap(), Got::Line);
        assert_eq!(line, b"{\"a\":1}");
        line.clear();
        assert_eq!(read_line(&mut reader, &mut line).unwrap(), Got::End);
    }

    #[test]
    fn an_overlong_line_is_read_past_and_the_next_one_read() {
        let mut bytes = vec![b'x'; LINE_LIMIT * 3];
        bytes.extend_from_slice(b"\nnext\n");
        let mut reader: Body = Box::new(BufReader::new(std::io::Cursor::new(bytes)));
        let mut line = Vec::new();
        assert_eq!(read_line(&mut reader, &mut line).unwrap(), Got::Skipped);
        assert!(line.is_empty());
        assert_eq!(read_line(&mut reader, &mut line).unwrap(), Got::Line);
        assert_eq!(line, b"next");
    }

    #[test]
    fn a_line_cut_by_a_timeout_is_read_on_not_lost() {
        let mut line = b"{\"Type\":".to_vec();
        let mut reader: Body = Box::new(BufReader::new(&b"\"container\"}\n"[..]));
        assert_eq!(read_line(&mut reader, &mut line).unwrap(), Got::Line);
        assert_eq!(line, b"{\"Type\":\"container\"}");
    }
}
