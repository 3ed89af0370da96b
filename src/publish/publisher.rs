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

use super::outbox::Outbox;
use super::poison::{self, Behind, Verdict, Watch};
use super::rejects::Rejects;
use super::sink::{EventSink, SinkError};
use crate::backoff::Backoff;
use crate::event::HealthEvent;
use crate::telemetry::{SinkCounters, Telemetry};

/// The running publisher thread.
#[derive(Debug)]
pub(crate) struct Publisher {
    thread: JoinHandle<()>,
    /// Disconnected when the thread ends, however it ends.
    ended: Receiver<()>,
}

impl Publisher {
    /// Waits until the thread has ended or `deadline` passes; true when it ended.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        matches!(
            self.ended.recv_deadline(deadline),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        )
    }

    /// Joins the thread if it has ended, re-raising its panic; a thread still
    /// blocked in the sink is left behind (the process is about to exit).
    pub(crate) fn join_if_ended(self) {
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
pub(crate) fn spawn(
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
        // At least the event `take` waited for: a close, the only thing
        // that empties the send, makes `gather` say `None`.
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
                            event_type = event.event_type.as_str(), events = batch.len(), err:% = e;
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
mod tests;
