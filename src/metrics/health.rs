//! `/healthz`'s verdict: whether rtinspect can see (its ticks, on the
//! monotonic clock) and whether its events get anywhere (each sink's
//! publisher, and what the sink made of its events lately).

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::event::rfc3339_micros;
use crate::telemetry::{FailureStreak, Telemetry};

/// What `/healthz` needs besides the counters.
pub(crate) struct HealthInputs {
    /// The tick interval: a last successful tick older than three of these
    /// is stale.
    pub interval: Duration,
    /// When the process started, on the monotonic clock: the reference
    /// before the first successful tick.
    pub started: Instant,
    /// Events waiting for each sink, in the order of [`Telemetry::sinks`].
    pub queue_depths: Box<dyn Fn() -> Vec<usize> + Send>,
}

/// `Ok` while every sink's publisher runs, its sink takes events (see
/// [`crate::telemetry::Deliveries::trouble`]: not one that refused every
/// event over the last 5 minutes, at least 3, nor one that failed to deliver
/// for 5 minutes), and the last successful tick (records
/// listed, dockerd reached) is younger than three intervals — before the
/// first one, while the process is and no tick has failed; `Err` with one
/// line naming what fails, and since when, otherwise. A failure under a
/// fresh success is forgiven for three intervals; one before any success is
/// not, as there is nothing yet that rtinspect has seen. Ages are taken on
/// the monotonic clock only
/// (`now` against the `Instant`s of [`Telemetry::tick_succeeded`] and
/// [`HealthInputs::started`]), so a step of the wall clock changes nothing:
/// a watcher that cannot see must never say ok.
pub(crate) fn health(
    telemetry: &Telemetry,
    inputs: &HealthInputs,
    now: Instant,
) -> Result<String, String> {
    if let Some(sink) = telemetry
        .sinks
        .iter()
        .find(|s| !s.publisher_alive.load(Relaxed))
    {
        return Err(format!(
            "unhealthy: the publisher thread of the {} sink is not running",
            sink.name
        ));
    }
    let seen = ticks(telemetry, inputs, now)?;
    let trouble = telemetry
        .sinks
        .iter()
        .find_map(|s| Some((s.name.as_str(), s.deliveries().trouble(now)?)));
    match trouble {
        Some((sink, trouble)) => Err(format!("unhealthy: the {sink} sink {}", one_line(&trouble))),
        None => Ok(seen),
    }
}

/// What the ticks say: `Ok` while the last successful one is younger than
/// three intervals (see [`health`]).
fn ticks(telemetry: &Telemetry, inputs: &HealthInputs, now: Instant) -> Result<String, String> {
    let limit = inputs.interval.saturating_mul(3);
    let outcome = telemetry.tick_outcome();
    let last_success = outcome.last_success.map(|(at, _)| at);
    let age = now.saturating_duration_since(last_success.unwrap_or(inputs.started));
    if let (None, Some(failing)) = (last_success, &outcome.failing) {
        return Err(failure_line(failing));
    }
    if age <= limit {
        return Ok(match last_success {
            Some(_) => format!("ok: last successful tick {:.1}s ago", age.as_secs_f64()),
            None => "ok: starting, no successful tick yet".into(),
        });
    }
    Err(match (outcome.failing, last_success) {
        (Some(failing), _) => failure_line(&failing),
        (None, Some(_)) => format!(
            "no successful tick for {:.1}s (over three intervals, {:.1}s){}",
            age.as_secs_f64(),
            limit.as_secs_f64(),
            stuck(telemetry, now)
        ),
        (None, None) => format!(
            "no successful tick since the start {:.1}s ago (over three intervals, {:.1}s){}",
            age.as_secs_f64(),
            limit.as_secs_f64(),
            stuck(telemetry, now)
        ),
    })
}

/// `cannot reach dockerd at /var/run/docker.sock since <RFC 3339>:
/// connection refused`: what fails, since when, and the last error.
fn failure_line(failing: &FailureStreak) -> String {
    format!(
        "{} since {}: {}",
        one_line(&failing.what),
        rfc3339_micros(failing.since_wall),
        one_line(&failing.detail)
    )
}

/// `: stuck reading the records for 20.1s` when a tick has been in one
/// outside call for over a second, or nothing.
fn stuck(telemetry: &Telemetry, now: Instant) -> String {
    match telemetry.busy() {
        Some((what, since)) if now.saturating_duration_since(since) > Duration::from_secs(1) => {
            format!(
                ": stuck {what} for {:.1}s",
                now.saturating_duration_since(since).as_secs_f64()
            )
        }
        _ => String::new(),
    }
}

/// `text` with every run of whitespace (the newlines of a multi-line
/// database error included) made one space: the answer is one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{inputs, ms};
    use crate::telemetry::Stage;
    use std::time::UNIX_EPOCH;

    /// A wall time, in Unix milliseconds.
    fn wall(unix_ms: u64) -> std::time::SystemTime {
        UNIX_EPOCH + ms(unix_ms)
    }

    #[test]
    fn health_names_the_call_a_hung_tick_is_stuck_in() {
        let t0 = Instant::now();
        let i = inputs(1000, t0);
        let t = Telemetry::for_sinks(&["stdout"]);
        t.sink(0).publisher_alive.store(true, Relaxed);
        t.tick_succeeded(t0, wall(1_800_000_000_000));
        t.busy_with(Some("reading the records"), t0 + ms(1000));
        assert_eq!(
            health(&t, &i, t0 + ms(21_100)).unwrap_err(),
            "no successful tick for 21.1s (over three intervals, 3.0s): \
             stuck reading the records for 20.1s"
        );
        t.busy_with(None, t0 + ms(21_200));
        assert_eq!(
            health(&t, &i, t0 + ms(21_300)).unwrap_err(),
            "no successful tick for 21.3s (over three intervals, 3.0s)"
        );
    }

    #[test]
    fn health_follows_the_last_successful_tick_on_the_monotonic_clock() {
        let t0 = Instant::now();
        let i = inputs(1000, t0);
        let t = Telemetry::for_sinks(&["postgres", "webhook"]);
        let check = |now: Instant| health(&t, &i, now);
        t.sink(0).publisher_alive.store(true, Relaxed);
        assert_eq!(
            check(t0 + ms(500)).unwrap_err(),
            "unhealthy: the publisher thread of the webhook sink is not running"
        );
        t.sink(1).publisher_alive.store(true, Relaxed);
        assert_eq!(
            check(t0 + ms(3000)).unwrap(),
            "ok: starting, no successful tick yet"
        );
        assert_eq!(
            check(t0 + ms(3100)).unwrap_err(),
            "no successful tick since the start 3.1s ago (over three intervals, 3.0s)"
        );

        t.tick_succeeded(t0 + ms(10_000), wall(1_800_000_010_000));
        assert_eq!(
            check(t0 + ms(10_400)).unwrap(),
            "ok: last successful tick 0.4s ago"
        );
        assert!(check(t0 + ms(12_900)).is_ok());
        assert_eq!(
            check(t0 + ms(13_100)).unwrap_err(),
            "no successful tick for 3.1s (over three intervals, 3.0s)"
        );

        // Failures while the last success is fresh: still ok.
        t.tick_failed(
            Stage::Docker,
            "cannot reach dockerd at /var/run/docker.sock",
            "connection refused",
            t0 + ms(11_000),
            wall(1_800_000_011_000),
        );
        t.tick_failed(
            Stage::Docker,
            "cannot reach dockerd at /var/run/docker.sock",
            "connection\nrefused",
            t0 + ms(12_000),
            wall(1_800_000_012_000),
        );
        assert!(check(t0 + ms(12_900)).is_ok());
        assert_eq!(
            check(t0 + ms(13_100)).unwrap_err(),
            "cannot reach dockerd at /var/run/docker.sock since 2027-01-15T08:00:11.000000Z: \
             connection refused"
        );

        t.tick_succeeded(t0 + ms(14_000), wall(1_800_000_014_000));
        assert!(check(t0 + ms(14_100)).is_ok());
        t.tick_failed(
            Stage::Records,
            "cannot read records",
            "db error: ERROR: relation \"runtime_records\" does not exist",
            t0 + ms(15_000),
            wall(1_800_000_015_000),
        );
        assert_eq!(
            check(t0 + ms(17_500)).unwrap_err(),
            "cannot read records since 2027-01-15T08:00:15.000000Z: \
             db error: ERROR: relation \"runtime_records\" does not exist"
        );
    }

    #[test]
    fn a_failed_first_tick_is_503_with_its_cause() {
        let t0 = Instant::now();
        // An interval of 20 s: "starting" would last a minute.
        let i = inputs(20_000, t0);
        let t = Telemetry::for_sinks(&["stdout"]);
        t.sink(0).publisher_alive.store(true, Relaxed);
        assert_eq!(
            health(&t, &i, t0 + ms(100)).unwrap(),
            "ok: starting, no successful tick yet"
        );
        t.tick_failed(
            Stage::Docker,
            "cannot reach dockerd at /var/run/docker.sock",
            "connection refused",
            t0 + ms(200),
            wall(1_800_000_000_200),
        );
        assert_eq!(
            health(&t, &i, t0 + ms(300)).unwrap_err(),
            "cannot reach dockerd at /var/run/docker.sock since 2027-01-15T08:00:00.200000Z: \
             connection refused"
        );
        t.tick_failed(
            Stage::Records,
            "cannot read records",
            "db error:\nconnection refused",
            t0 + ms(20_200),
            wall(1_800_000_020_200),
        );
        assert_eq!(
            health(&t, &i, t0 + ms(20_300)).unwrap_err(),
            "cannot read records since 2027-01-15T08:00:00.200000Z: \
             db error: connection refused"
        );
        // The first success ends it.
        t.tick_succeeded(t0 + ms(40_200), wall(1_800_000_040_200));
        assert_eq!(
            health(&t, &i, t0 + ms(40_300)).unwrap(),
            "ok: last successful tick 0.1s ago"
        );
    }

    #[test]
    fn a_wall_clock_step_changes_no_health_verdict() {
        let t0 = Instant::now();
        let i = inputs(1000, t0);
        for step in [wall(0), wall(1_000), wall(4_000_000_000_000)] {
            let t = Telemetry::for_sinks(&["stdout"]);
            t.sink(0).publisher_alive.store(true, Relaxed);
            // The wall clock jumped far back or ahead; the Instants move on.
            t.tick_succeeded(t0 + ms(1000), step);
            assert_eq!(
                health(&t, &i, t0 + ms(1500)).unwrap(),
                "ok: last successful tick 0.5s ago",
                "{step:?}"
            );
            assert!(health(&t, &i, t0 + ms(4100)).is_err(), "{step:?}");
            let failed_at = t0 + ms(2000);
            t.tick_failed(
                Stage::Docker,
                "cannot reach dockerd",
                "refused",
                failed_at,
                step,
            );
            assert!(health(&t, &i, t0 + ms(3900)).is_ok(), "{step:?}");
            assert!(health(&t, &i, t0 + ms(4100)).is_err(), "{step:?}");
        }
    }

    /// A healthy process whose ticks succeed, with the sinks `names`.
    fn seeing(names: &[&'static str], t0: Instant) -> (Telemetry, HealthInputs) {
        let t = Telemetry::for_sinks(names);
        for sink in &t.sinks {
            sink.publisher_alive.store(true, Relaxed);
        }
        (t, inputs(60_000, t0))
    }

    #[test]
    fn healthz_names_a_sink_that_refused_every_event_over_5_minutes() {
        let t0 = Instant::now();
        let (t, i) = seeing(&["stdout", "webhook"], t0);
        let tick = |at: Instant| t.tick_succeeded(at, wall(1_800_000_000_000));
        let why = "http://127.0.0.1:9/… answered 404 Not Found: Unknown Webhook";
        tick(t0);
        // Two refusals: not yet three.
        t.sink(1).refused(1, &why, t0);
        t.sink(1).refused(1, &why, t0 + ms(1000));
        assert!(health(&t, &i, t0 + ms(2000)).is_ok());
        // A third, none accepted: unhealthy, whichever sink it is.
        t.sink(1).refused(1, &why, t0 + ms(2000));
        assert_eq!(
            health(&t, &i, t0 + ms(3000)).unwrap_err(),
            "unhealthy: the webhook sink has refused every event it was given over the last \
             5 minutes (at least 3, none accepted): http://127.0.0.1:9/… answered 404 Not \
             Found: Unknown Webhook"
        );
        // One accepted within the 5 minutes: not every event was refused.
        t.sink(1).delivered(t0 + ms(4000));
        assert!(health(&t, &i, t0 + ms(5000)).is_ok());
        // Refused again, the acceptance older than 5 minutes: unhealthy.
        let later = t0 + ms(4000) + Duration::from_secs(301);
        tick(later);
        t.sink(1).refused(3, &why, later);
        assert!(health(&t, &i, later).is_err());
        // Refusals older than 5 minutes no longer count.
        let much_later = later + Duration::from_secs(301);
        tick(much_later);
        assert!(health(&t, &i, much_later).is_ok());
        // A digest of three refused at once counts three.
        t.sink(0).refused(3, &"bad", much_later);
        assert!(
            health(&t, &i, much_later)
                .unwrap_err()
                .starts_with("unhealthy: the stdout sink has refused every event"),
        );
    }

    #[test]
    fn healthz_names_a_sink_that_failed_to_deliver_for_5_minutes() {
        let t0 = Instant::now();
        let (t, i) = seeing(&["postgres"], t0);
        let why = "cannot reach PostgreSQL: connection refused";
        t.tick_succeeded(t0, wall(1_800_000_000_000));
        t.sink(0).failed(&why, t0);
        let at = |secs| t0 + Duration::from_secs(secs);
        for s in [60, 120, 299] {
            t.sink(0).failed(&why, at(s));
        }
        t.tick_succeeded(at(300), wall(1_800_000_300_000));
        assert!(health(&t, &i, at(300)).is_ok(), "5 minutes, not over");
        t.sink(0).failed(&why, at(301));
        assert_eq!(
            health(&t, &i, at(301)).unwrap_err(),
            "unhealthy: the postgres sink has failed to deliver for 301s (over 5 minutes): \
             cannot reach PostgreSQL: connection refused"
        );
        // One delivery ends it.
        t.sink(0).delivered(at(302));
        assert!(health(&t, &i, at(302)).is_ok());
        t.sink(0).failed(&why, at(303));
        assert!(health(&t, &i, at(303)).is_ok(), "a new streak");
    }
}
