//! The publisher: a thread that takes events from the [`Outbox`] and hands
//! them to one sink, in order. Each sink has its own outbox and publisher,
//! so that a sink that is down or paced never holds up another.
//!
//! A sink that paces itself (a chat service's rate limit) is waited for
//! before each send, and then gets every event that waits by then, up to
//! what one send may carry, as one message: a burst becomes a digest, not a
//! backlog that takes minutes to trickle out.
//!
//! A sink that is down is retried with capped, jittered backoff, the same
//! event first, and not before the wait the sink asked for (a webhook's
//! `Retry-After`) is over; an event the sink refuses for good is set aside (to
//! `rejected.jsonl`, or the error log) and the queue moves on, so that one bad
//! event never holds up the others. The inspector never waits for the sink:
//! it offers each event to the queue and counts a drop when the queue is full.
//!
//! Whatever the sink is doing, the owner of the outbox can [`Outbox::close`]
//! it at any moment and get back every event not yet delivered, the one in
//! flight included: that is what makes shutdown bounded when a statement is
//! blocked or a peer is frozen. The waits between tries, a sink's asked-for
//! wait included, are the publisher's own, and a close ends them at once.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

pub use super::outbox::{Outbox, offer, offer_until};
use super::poison::{self, Behind, Verdict, Watch};
pub use super::rejects::Rejects;
pub use crate::backoff::Backoff;
use crate::event::HealthEvent;
use crate::publish::sink::{EventSink, SinkError};
use crate::telemetry::{SinkCounters, Telemetry};

/// The running publisher thread.
#[derive(Debug)]
pub struct Publisher {
    thread: JoinHandle<()>,
    /// Disconnected when the thread ends, however it ends.
    ended: Receiver<()>,
}

impl Publisher {
    /// Waits until the thread has ended or `deadline` passes; true when it ended.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        matches!(
            self.ended.recv_deadline(deadline),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        )
    }

    /// Joins the thread if it has ended, re-raising its panic; a thread still
    /// blocked in the sink is left behind (the process is about to exit).
    pub fn join_if_ended(self) {
        if self.thread.is_finished()
            && let Err(panic) = self.thread.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Starts the publisher thread of the sink `rejects` is for, over `outbox`.
/// It ends when the outbox is closed, or when every sender is gone and
/// everything was delivered.
pub fn spawn(
    mut sink: Box<dyn EventSink>,
    outbox: Arc<Outbox>,
    rejects: Rejects,
    backoff: Backoff,
    telemetry: Arc<Telemetry>,
) -> std::io::Result<Publisher> {
    let (alive, ended) = crossbeam_channel::bounded::<()>(0);
    let index = rejects.sink;
    telemetry.sink(index).publisher_alive.store(true, Relaxed);
    let t = telemetry.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("sink-{}", telemetry.sink(index).name))
        .spawn(move || {
            // Dropped however the thread ends, panics included: the flag
            // for /healthz, and the sender whose end wakes `wait_until`.
            struct Alive<'a>(&'a SinkCounters);
            impl Drop for Alive<'_> {
                fn drop(&mut self) {
                    self.0.publisher_alive.store(false, Relaxed);
                }
            }
            let _alive = (Alive(t.sink(index)), alive);
            deliver(&mut *sink, &outbox, &rejects, backoff, &t);
        });
    match spawned {
        Ok(thread) => Ok(Publisher { thread, ended }),
        Err(e) => {
            telemetry.sink(index).publisher_alive.store(false, Relaxed);
            Err(e)
        }
    }
}

/// Counts the detection latency of an event a Docker event prompted, and
/// says at debug level where the time went: from dockerd's time of the event
/// to the inspector taking it, to the inspect's answer, to the sink's accepting.
fn detected(event: &HealthEvent, prompt: &crate::event::Prompt, counters: &SinkCounters) {
    let accepted = std::time::SystemTime::now();
    let since = |t: std::time::SystemTime| t.duration_since(prompt.event_at).unwrap_or_default();
    counters.detection_latency.observe(since(accepted));
    if log::log_enabled!(log::Level::Debug) {
        let ms = |t| format!("{:.3}", since(t).as_secs_f64() * 1000.0);
        log::debug!(sink = counters.name, game_id = event.game_id.as_str(),
            container_id = event.container_id.as_str(), action = prompt.action,
            read_ms = ms(prompt.read_at).as_str(), answered_ms = ms(prompt.answered_at).as_str(),
            accepted_ms = ms(accepted).as_str(); "detected");
    }
}

/// Counts `events` as accepted by the sink now, with the detection latency
/// of those a Docker event prompted.
fn accepted(events: &[HealthEvent], counters: &SinkCounters) {
    counters.delivered(Instant::now());
    for event in events {
        counters.published(event.event_type);
        if let Some(prompt) = &event.prompt {
            detected(event, prompt, counters);
        }
    }
}

/// Waits until the sink's pace lets a send go; false when the outbox was
/// closed meanwhile.
fn paced(sink: &mut dyn EventSink, outbox: &Outbox) -> bool {
    loop {
        let wait = sink.ready_in(Instant::now());
        if wait.is_zero() {
            return true;
        }
        if outbox.sleep(wait) {
            return false;
        }
    }
}

fn deliver(
    sink: &mut dyn EventSink,
    outbox: &Outbox,
    rejects: &Rejects,
    mut backoff: Backoff,
    telemetry: &Telemetry,
) {
    let counters = telemetry.sink(rejects.sink);
    let mut failing_since: Option<Instant> = None;
    let mut last_warning: Option<Instant> = None;
    let mut watch = Watch::default();
    while outbox.take() {
        // What comes while the send gathers, and what waits by the time the
        // pace lets it go, goes with it.
        let (gather, limit) = (sink.gather(), sink.batch_limit().max(1));
        if (!gather.is_zero() && outbox.gather_for(gather, limit)) || !paced(sink, outbox) {
            return;
        }
        let Some(batch) = outbox.gather(limit) else {
            return;
        };
        let mut suspect = watch.suspect(&batch);
        loop {
            let mut sent = sink.publish_batch(&batch);
            if let Err(e) = &sent {
                match suspect.failed(sink, &batch, e) {
                    Verdict::Retry => {}
                    Verdict::SetAside => sent = poison::set_aside(sent, suspect.tries()),
                    Verdict::TryBehind => {
                        let scan = watch.try_behind(sink, outbox);
                        for (next, why) in &scan.refused {
                            counters.refused(1, why, Instant::now());
                            rejects.set_aside(std::slice::from_ref(next), why, telemetry);
                        }
                        match scan.behind {
                            Behind::Closed => return,
                            Behind::Stored(next) => {
                                // This failure is counted here; the last
                                // try's outcome below.
                                counters.publish_failures.fetch_add(1, Relaxed);
                                counters.failed(e, Instant::now());
                                accepted(std::slice::from_ref(&next), counters);
                                // The sink takes events: one more try decides.
                                sent = watch.last_try(sink, &batch, suspect.tries());
                            }
                            Behind::NotShown => {}
                        }
                    }
                }
            }
            match sent {
                Ok(()) => {
                    accepted(&batch, counters);
                    backoff.reset();
                    if let Some(since) = failing_since.take() {
                        log::info!(sink = counters.name;
                            "sink accepts events again after {:?}", since.elapsed());
                    }
                    break;
                }
                Err(SinkError::Refused(why)) => {
                    // The sink answered, so it is not down; these events are bad.
                    counters.refused(batch.len(), &why, Instant::now());
                    rejects.set_aside(&batch, &why, telemetry);
                    backoff.reset();
                    break;
                }
                Err(e @ (SinkError::Unavailable(_) | SinkError::UnavailableFor(..))) => {
                    counters.publish_failures.fetch_add(1, Relaxed);
                    let now = Instant::now();
                    counters.failed(&e, now);
                    failing_since.get_or_insert(now);
                    // The longer of the sink's wait and the backoff: never
                    // sooner than the sink asked, never faster than the
                    // backoff (a `Retry-After: 0` on every answer must not
                    // make a busy loop), and never longer than the sum that
                    // was waited when the webhook slept its wait itself.
                    let delay = backoff.next_delay();
                    let asked = e.retry_after().filter(|asked| *asked >= delay);
                    // One warning a minute while the sink stays down.
                    if last_warning.is_none_or(|t| now - t >= Duration::from_secs(60)) {
                        last_warning = Some(now);
                        let retrying = match asked {
                            Some(wait) => {
                                format!("retrying in {}s, as the sink asked", wait.as_secs_f32())
                            }
                            None => "retrying with backoff".to_owned(),
                        };
                        let event = &batch[0];
                        log::warn!(sink = counters.name, game_id = event.game_id.as_str(),
                            container_id = event.container_id.as_str(),
                            event_type = event.event_type, events = batch.len(), err:% = e;
                            "publish failed; {retrying} ({} waiting)", outbox.len());
                    }
                    // The outbox's sleep, which a close ends at once: a
                    // shutdown spools the events instead of waiting this out.
                    if outbox.sleep(asked.unwrap_or(delay)) || !paced(sink, outbox) {
                        return;
                    }
                }
            }
        }
        if !outbox.done() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
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
        let (p, tries, outbox) =
            asking(&[Duration::from_millis(300)], Backoff::new(ten_ms, ten_ms));
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
}
