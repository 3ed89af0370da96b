//! The publisher's unit tests: order, retries and backoff, set-aside
//! events, pacing and gathering, and a close at any moment.

use super::*;
use crate::event::stopped_event as event;
use crate::fakes::{FakeSink, SinkAnswer};
use crossbeam_channel::Sender;
use std::collections::VecDeque;
use std::sync::Mutex;

fn fast() -> Backoff {
    Backoff::new(Duration::from_millis(1), Duration::from_millis(4))
}

/// A publisher over `sink`, `backlog` first, with `backoff` and no
/// state directory: its queue's sender, its outbox, its thread and the
/// counters.
fn start(
    sink: impl EventSink + 'static,
    backlog: Vec<HealthEvent>,
    backoff: Backoff,
) -> (Sender<HealthEvent>, Arc<Outbox>, Publisher, Arc<Telemetry>) {
    let (tx, outbox) = Outbox::new(backlog);
    let telemetry = Arc::new(Telemetry::for_sinks(&["test"]));
    let rejects = Rejects::new(None, 0);
    let p = spawn(
        Box::new(sink),
        outbox.clone(),
        rejects,
        backoff,
        telemetry.clone(),
    )
    .unwrap();
    (tx, outbox, p, telemetry)
}

fn games(events: &[HealthEvent]) -> Vec<String> {
    events.iter().map(|e| e.game_id.clone()).collect()
}

/// Publishes `sent` through a sink answering `script` (then accepting),
/// with every sender dropped; returns (accepted, telemetry).
fn run(script: Vec<SinkAnswer>, sent: &[&str]) -> (Vec<String>, Arc<Telemetry>) {
    let sink = FakeSink::new(script);
    let accepted = sink.accepted();
    let (tx, outbox, p, telemetry) = start(sink, Vec::new(), fast());
    for g in sent {
        tx.send(event(g)).unwrap();
    }
    drop(tx);
    assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
    p.join_if_ended();
    assert!(outbox.is_empty());
    let got = games(&accepted.lock().unwrap());
    (got, telemetry)
}

#[test]
fn an_unavailable_sink_is_retried_in_order() {
    let (accepted, t) = run(vec![SinkAnswer::Down; 5], &["a", "b", "c"]);
    assert_eq!(accepted, vec!["a", "b", "c"]);
    assert_eq!(t.sink(0).events_published[0].load(Relaxed), 3);
    assert_eq!(t.sink(0).publish_failures.load(Relaxed), 5);
    assert_eq!(t.sink(0).events_rejected.load(Relaxed), 0);
}

#[test]
fn a_refused_event_is_set_aside_and_the_next_goes_on() {
    let (accepted, t) = run(
        vec![SinkAnswer::Down, SinkAnswer::Refuse, SinkAnswer::Accept],
        &["poison", "b", "c"],
    );
    assert_eq!(accepted, vec!["b", "c"]);
    assert_eq!(t.sink(0).events_rejected.load(Relaxed), 1);
    assert_eq!(t.sink(0).events_published[0].load(Relaxed), 2);
}

#[test]
fn the_backlog_goes_before_the_queue() {
    let sink = FakeSink::new(Vec::new());
    let accepted = sink.accepted();
    let (tx, outbox) = Outbox::new(vec![event("spooled-1"), event("spooled-2")]);
    // Queued before the publisher starts: the backlog still goes first.
    tx.send(event("new")).unwrap();
    drop(tx);
    let telemetry = Arc::new(Telemetry::for_sinks(&["test"]));
    let rejects = Rejects::new(None, 0);
    let p = spawn(Box::new(sink), outbox, rejects, fast(), telemetry).unwrap();
    assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
    assert_eq!(
        games(&accepted.lock().unwrap()),
        vec!["spooled-1", "spooled-2", "new"]
    );
}

#[test]
fn close_returns_the_event_in_flight_and_the_rest_while_the_sink_hangs() {
    let sink = FakeSink::new(vec![SinkAnswer::Hang]);
    let entered = sink.entered();
    let (tx, outbox, p, _) = start(sink, vec![event("backlog")], fast());
    tx.send(event("queued")).unwrap();
    // The sink is now blocked inside publish with the backlog event.
    entered.recv_timeout(Duration::from_secs(30)).unwrap();
    let left = outbox.close();
    assert_eq!(games(&left), vec!["backlog", "queued"]);
    assert!(
        !p.wait_until(Instant::now() + Duration::from_millis(50)),
        "the thread is still blocked in the sink"
    );
    tx.send(event("late")).unwrap();
    assert_eq!(
        games(&outbox.close()),
        vec!["late"],
        "a later close gets the rest"
    );
}

#[test]
fn close_wakes_a_publisher_waiting_out_a_backoff() {
    let sink = FakeSink::new(vec![SinkAnswer::Down]);
    let (tx, outbox, p, _) = start(
        sink,
        Vec::new(),
        Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600)),
    );
    tx.send(event("a")).unwrap();
    crate::fakes::wait_for(|| outbox.len() == 1 && tx.is_empty());
    let left = outbox.close();
    assert_eq!(games(&left), vec!["a"]);
    assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
    p.join_if_ended();
}

/// A sink that asks for each wait of `asks` in turn (as a 429's
/// `Retry-After` does), then accepts; it notes when each try came.
struct AskingSink {
    asks: VecDeque<Duration>,
    tries: Arc<Mutex<Vec<Instant>>>,
}

impl EventSink for AskingSink {
    fn publish(&mut self, _: &HealthEvent) -> Result<(), SinkError> {
        self.tries.lock().unwrap().push(Instant::now());
        match self.asks.pop_front() {
            Some(wait) => Err(SinkError::UnavailableFor(wait, "answered 429".into())),
            None => Ok(()),
        }
    }
}

/// Starts a publisher over a sink asking for `asks`, with `backoff`, and
/// hands it one event (its sender then gone); returns the tries' times.
fn asking(
    asks: &[Duration],
    backoff: Backoff,
) -> (Publisher, Arc<Mutex<Vec<Instant>>>, Arc<Outbox>) {
    let tries = Arc::new(Mutex::new(Vec::new()));
    let sink = AskingSink {
        asks: asks.iter().copied().collect(),
        tries: tries.clone(),
    };
    let (tx, outbox, p, _) = start(sink, Vec::new(), backoff);
    tx.send(event("a")).unwrap();
    (p, tries, outbox)
}

fn gaps(tries: &Mutex<Vec<Instant>>) -> Vec<Duration> {
    let tries = tries.lock().unwrap();
    tries.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn the_wait_a_sink_asks_for_is_waited_out_when_longer_than_the_backoff() {
    let ten_ms = Duration::from_millis(10);
    let (p, tries, outbox) = asking(&[Duration::from_millis(300)], Backoff::new(ten_ms, ten_ms));
    assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
    assert!(outbox.is_empty());
    let gaps = gaps(&tries);
    assert_eq!(gaps.len(), 1, "one retry, then accepted");
    assert!(
        gaps[0] >= Duration::from_millis(300) && gaps[0] < Duration::from_secs(2),
        "{gaps:?}"
    );
    eprintln!("retried {:?} after a 300 ms wait was asked", gaps[0]);
}

#[test]
fn a_wait_shorter_than_the_backoff_does_not_shorten_it() {
    // A receiver answering `Retry-After: 0` every time is no busy loop.
    let backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(200));
    let (p, tries, _outbox) = asking(&[Duration::ZERO; 2], backoff);
    assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
    let gaps = gaps(&tries);
    assert_eq!(gaps.len(), 2);
    // The backoff's jitter takes up to half of it.
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(100)),
        "{gaps:?}"
    );
}

#[test]
fn close_ends_a_wait_the_sink_asked_for_at_once() {
    let (p, tries, outbox) = asking(&[Duration::from_secs(60)], fast());
    crate::fakes::wait_for(|| tries.lock().unwrap().len() == 1);
    let closing = Instant::now();
    let left = outbox.close();
    assert_eq!(games(&left), vec!["a"], "the event goes back for the spool");
    assert!(
        p.wait_until(closing + Duration::from_millis(200)),
        "still waiting out the 60 s"
    );
    let took = closing.elapsed();
    p.join_if_ended();
    assert_eq!(tries.lock().unwrap().len(), 1, "no try after the close");
    eprintln!("publisher ended {took:?} after a close during a 60 s wait");
}

/// A sink that lets one send go every `pace`, and carries up to
/// `limit` events in one; it notes each send's events.
struct PacedSink {
    pace: Duration,
    gather: Duration,
    limit: usize,
    next: Option<Instant>,
    sends: Arc<Mutex<Vec<Vec<String>>>>,
}

impl EventSink for PacedSink {
    fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
        self.publish_batch(std::slice::from_ref(event))
    }

    fn ready_in(&mut self, now: Instant) -> Duration {
        self.next
            .map_or(Duration::ZERO, |next| next.saturating_duration_since(now))
    }

    fn batch_limit(&self) -> usize {
        self.limit
    }

    fn gather(&self) -> Duration {
        self.gather
    }

    fn publish_batch(&mut self, events: &[HealthEvent]) -> Result<(), SinkError> {
        assert!(!events.is_empty() && events.len() <= self.limit);
        assert!(
            self.ready_in(Instant::now()).is_zero(),
            "sent before its pace"
        );
        self.next = Some(Instant::now() + self.pace);
        self.sends.lock().unwrap().push(games(events));
        Ok(())
    }
}

#[test]
fn a_paced_sink_gets_what_waits_by_its_next_send_in_one_batch() {
    let sends = Arc::new(Mutex::new(Vec::new()));
    let sink = PacedSink {
        pace: Duration::from_millis(300),
        gather: Duration::ZERO,
        limit: 40,
        next: None,
        sends: sends.clone(),
    };
    let (tx, _, p, telemetry) = start(sink, vec![event("spooled")], fast());
    crate::fakes::wait_for(|| sends.lock().unwrap().len() == 1);
    // A burst while the sink waits out its pace: 100 events.
    for i in 0..100 {
        tx.send(event(&format!("g-{i}"))).unwrap();
    }
    drop(tx);
    assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
    let sends = sends.lock().unwrap();
    let sizes: Vec<usize> = sends.iter().map(Vec::len).collect();
    assert_eq!(sizes, [1, 40, 40, 20], "{sends:?}");
    let all: Vec<String> = sends.concat();
    let sent: Vec<String> = std::iter::once("spooled".to_owned())
        .chain((0..100).map(|i| format!("g-{i}")))
        .collect();
    assert_eq!(all, sent, "every event once, in order");
    assert_eq!(telemetry.sink(0).events_published[0].load(Relaxed), 101);
}

#[test]
fn a_burst_the_pace_would_let_through_one_by_one_is_gathered_into_one_send() {
    let sends = Arc::new(Mutex::new(Vec::new()));
    let sink = PacedSink {
        pace: Duration::ZERO,
        gather: Duration::from_millis(500),
        limit: 500,
        next: None,
        sends: sends.clone(),
    };
    let (tx, _, p, _) = start(sink, Vec::new(), fast());
    for i in 0..40 {
        tx.send(event(&format!("g-{i}"))).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(tx);
    assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
    let sizes: Vec<usize> = sends.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(sizes, [40], "one send for the burst");
}

#[test]
fn gathering_ends_once_nothing_more_can_come() {
    let sends = Arc::new(Mutex::new(Vec::new()));
    let sink = PacedSink {
        pace: Duration::ZERO,
        gather: Duration::from_secs(3600),
        limit: 500,
        next: None,
        sends: sends.clone(),
    };
    let (tx, _, p, _) = start(sink, vec![event("spooled")], fast());
    tx.send(event("a")).unwrap();
    let dropped = Instant::now();
    drop(tx);
    assert!(
        p.wait_until(dropped + Duration::from_secs(5)),
        "still gathering"
    );
    assert_eq!(*sends.lock().unwrap(), [vec!["spooled", "a"]]);
    // A full batch waits for nothing either.
    let sends = Arc::new(Mutex::new(Vec::new()));
    let sink = PacedSink {
        pace: Duration::ZERO,
        gather: Duration::from_secs(3600),
        limit: 3,
        next: None,
        sends: sends.clone(),
    };
    let backlog = (0..3).map(|i| event(&format!("g-{i}"))).collect();
    let (_tx, _, _p, _) = start(sink, backlog, fast());
    crate::fakes::wait_for(|| sends.lock().unwrap().len() == 1);
}

#[test]
fn close_during_a_pace_wait_hands_the_events_back_at_once() {
    let sends = Arc::new(Mutex::new(Vec::new()));
    let sink = PacedSink {
        pace: Duration::from_secs(3600),
        gather: Duration::ZERO,
        limit: 10,
        next: None,
        sends: sends.clone(),
    };
    let (tx, outbox, p, _) = start(sink, Vec::new(), fast());
    tx.send(event("first")).unwrap();
    crate::fakes::wait_for(|| sends.lock().unwrap().len() == 1);
    tx.send(event("a")).unwrap();
    tx.send(event("b")).unwrap();
    // "a" is in flight, waiting for the pace; "b" in the queue.
    crate::fakes::wait_for(|| tx.len() == 1);
    let closing = Instant::now();
    assert_eq!(games(&outbox.close()), vec!["a", "b"]);
    assert!(
        p.wait_until(closing + Duration::from_secs(1)),
        "still pacing"
    );
    p.join_if_ended();
}
