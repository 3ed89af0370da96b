//! The metrics endpoint: `GET /metrics` in the Prometheus text format 0.0.4
//! and `GET /healthz`, answered by a listener of our own on one thread
//! (`metrics/listener.rs`).
//!
//! The answers only read the atomics of [`Telemetry`], so a slow or abusive
//! scraper can cost the listener thread at most, never the inspector or the
//! publisher; and the listener bounds what any client can cost it.

mod listener;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, UNIX_EPOCH};

pub use listener::ListenError;
use listener::{Limits, Listener, RequestLine, Response};

use crate::event::rfc3339_micros;
use crate::telemetry::{
    DOCKER_EVENT_ACTIONS, FailureStreak, HistogramCounts, INSPECT_ERROR_KINDS, SinkCounters, Stage,
    TICK_BUCKETS, Telemetry,
};

/// What `/healthz` needs besides the counters.
pub struct HealthInputs {
    /// The tick interval: a last successful tick older than three of these
    /// is stale.
    pub interval: Duration,
    /// When the process started, on the monotonic clock: the reference
    /// before the first successful tick.
    pub started: Instant,
    /// Events waiting for each sink, in the order of [`Telemetry::sinks`].
    pub queue_depths: Box<dyn Fn() -> Vec<usize> + Send>,
}

/// The running listener.
pub struct MetricsServer {
    listener: Listener,
}

/// Binds `addr` and starts the listener thread; the error names the address.
pub fn serve(
    addr: SocketAddr,
    telemetry: Arc<Telemetry>,
    inputs: HealthInputs,
) -> Result<MetricsServer, ListenError> {
    let handler = Box::new(move |request: RequestLine<'_>| {
        answer(request, &telemetry, &inputs, Instant::now())
    });
    let listener = listener::spawn(addr, Limits::default(), handler)?;
    log::info!(
        "serving /metrics and /healthz on http://{}",
        listener.local_addr()
    );
    Ok(MetricsServer { listener })
}

impl MetricsServer {
    /// Stops listening, closes every connection and joins the thread.
    pub fn stop(self) {
        self.listener.stop();
    }
}

const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

fn answer(
    request: RequestLine<'_>,
    telemetry: &Telemetry,
    inputs: &HealthInputs,
    now: Instant,
) -> Response {
    match (request.method, request.path) {
        ("GET", "/metrics") => Response {
            status: 200,
            content_type: EXPOSITION,
            body: render(telemetry, &(inputs.queue_depths)()),
        },
        ("GET", "/healthz") => match health(telemetry, inputs, now) {
            Ok(msg) => Response::text(200, format!("{msg}\n")),
            Err(reason) => Response::text(503, format!("{reason}\n")),
        },
        (_, "/metrics" | "/healthz") => Response::text(405, "only GET\n"),
        _ => Response::text(404, "not found: try /metrics or /healthz\n"),
    }
}

/// `Ok` while the publisher runs and the last successful tick (records
/// listed, dockerd reached) is younger than three intervals — before the
/// first one, while the process is and no tick has failed; `Err` with one
/// line naming what fails, and since when, otherwise. A failure under a
/// fresh success is forgiven for three intervals; one before any success is
/// not, as there is nothing yet that rtinspect has seen. Ages are taken on
/// the monotonic clock only
/// (`now` against the `Instant`s of [`Telemetry::tick_succeeded`] and
/// [`HealthInputs::started`]), so a step of the wall clock changes nothing:
/// a watcher that cannot see must never say ok.
pub fn health(
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

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A metric family with one unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// One sample per sink of a per-sink counter or gauge.
fn per_sink(
    out: &mut String,
    t: &Telemetry,
    (name, kind, help): (&str, &str, &str),
    value: impl Fn(usize, &SinkCounters) -> u64,
) {
    family(out, name, kind, help);
    for (i, sink) in t.sinks.iter().enumerate() {
        let _ = writeln!(out, "{name}{{sink=\"{}\"}} {}", sink.name, value(i, sink));
    }
}

/// The exposition text of every metric; `queue_depths` in the order of
/// [`Telemetry::sinks`].
pub fn render(t: &Telemetry, queue_depths: &[usize]) -> String {
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "rtinspect_build_info",
        "gauge",
        "Version of the running rtinspect.",
    );
    let _ = writeln!(
        out,
        "rtinspect_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    family(
        &mut out,
        "rtinspect_health_events_total",
        "counter",
        "Health events each sink accepted.",
    );
    for sink in &t.sinks {
        for (event_type, count) in crate::event::EVENT_TYPES.iter().zip(&sink.events_published) {
            let _ = writeln!(
                out,
                "rtinspect_health_events_total{{sink=\"{}\",event_type=\"{event_type}\"}} {}",
                sink.name,
                count.load(Relaxed)
            );
        }
    }

    // One snapshot for both families: a tick that ends during the scrape
    // cannot make the tick count and the histogram's count disagree.
    let tick_durations = t.tick_duration.snapshot();
    single(
        &mut out,
        "rtinspect_ticks_total",
        "counter",
        "Ticks finished.",
        tick_durations.count,
    );

    histogram(
        &mut out,
        "rtinspect_tick_duration_seconds",
        "Duration of a tick: listing the records and inspecting each.",
        &tick_durations,
    );

    single(
        &mut out,
        "rtinspect_records",
        "gauge",
        "Records in the last tick that could list them.",
        t.records.load(Relaxed),
    );

    family(
        &mut out,
        "rtinspect_inspect_errors_total",
        "counter",
        "Records not inspected, by cause.",
    );
    for (kind, count) in INSPECT_ERROR_KINDS.iter().zip(&t.inspect_errors) {
        let _ = writeln!(
            out,
            "rtinspect_inspect_errors_total{{kind=\"{kind}\"}} {}",
            count.load(Relaxed)
        );
    }

    per_sink(
        &mut out,
        t,
        (
            "rtinspect_publish_failures_total",
            "counter",
            "Publish attempts each sink refused (each retry counts).",
        ),
        |_, s| s.publish_failures.load(Relaxed),
    );

    per_sink(
        &mut out,
        t,
        (
            "rtinspect_events_dropped_total",
            "counter",
            "Events dropped because the sink's publish queue was full.",
        ),
        |_, s| s.events_dropped.load(Relaxed),
    );

    per_sink(
        &mut out,
        t,
        (
            "rtinspect_publish_queue_depth",
            "gauge",
            "Events waiting for each sink.",
        ),
        |i, _| queue_depths.get(i).copied().unwrap_or(0) as u64,
    );

    single(
        &mut out,
        "rtinspect_last_tick_timestamp_seconds",
        "gauge",
        "Unix time at which the last tick finished (0 before the first).",
        t.last_tick_unix_ms.load(Relaxed) as f64 / 1000.0,
    );

    family(
        &mut out,
        "rtinspect_tick_failures_total",
        "counter",
        "Ticks that failed, by stage: records (the list could not be read) or docker (dockerd could not be reached).",
    );
    for stage in Stage::ALL {
        let _ = writeln!(
            out,
            "rtinspect_tick_failures_total{{stage=\"{}\"}} {}",
            stage.label(),
            t.tick_failures_of(stage)
        );
    }

    let last_success = t.tick_outcome().last_success.map_or(0.0, |(_, wall)| {
        wall.duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_millis() as f64 / 1000.0)
    });
    single(
        &mut out,
        "rtinspect_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful tick, which listed the records and reached dockerd (0 before the first).",
        last_success,
    );

    per_sink(
        &mut out,
        t,
        (
            "rtinspect_events_rejected_total",
            "counter",
            "Events each sink refused for good, set aside in rejected.jsonl.",
        ),
        |_, s| s.events_rejected.load(Relaxed),
    );

    family(
        &mut out,
        "rtinspect_docker_events_total",
        "counter",
        "Docker events read from the events stream, by action.",
    );
    for (action, count) in DOCKER_EVENT_ACTIONS.iter().zip(&t.docker_events) {
        let _ = writeln!(
            out,
            "rtinspect_docker_events_total{{action=\"{action}\"}} {}",
            count.load(Relaxed)
        );
    }

    single(
        &mut out,
        "rtinspect_event_stream_reconnects_total",
        "counter",
        "Times the Docker events stream was subscribed again (a 2xx answer) after a break or a failed attempt.",
        t.stream_reconnects.load(Relaxed),
    );

    single(
        &mut out,
        "rtinspect_event_stream_attempts_total",
        "counter",
        "Subscriptions to the Docker events stream tried, failed ones included.",
        t.stream_attempts.load(Relaxed),
    );

    let name = "rtinspect_detection_latency_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "From the time of a Docker event to each sink accepting the health event it led to.",
    );
    for sink in &t.sinks {
        histogram_samples(
            &mut out,
            name,
            sink.name,
            &sink.detection_latency.snapshot(),
        );
    }

    single(
        &mut out,
        "rtinspect_rejected_dropped_total",
        "counter",
        "Refused events dropped from rejected.jsonl.1 when rejected.jsonl rotated past its bound.",
        t.rejected_dropped.load(Relaxed),
    );
    out
}

/// A histogram family over [`TICK_BUCKETS`].
fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramCounts) {
    family(out, name, "histogram", help);
    histogram_samples(out, name, "", h);
}

/// A histogram's samples, labelled with `sink` unless it is empty.
fn histogram_samples(out: &mut String, name: &str, sink: &str, h: &HistogramCounts) {
    let (label, alone) = if sink.is_empty() {
        (String::new(), String::new())
    } else {
        (format!("sink=\"{sink}\","), format!("{{sink=\"{sink}\"}}"))
    };
    let cumulative = h.cumulative();
    for (le, count) in TICK_BUCKETS.iter().zip(&cumulative) {
        let _ = writeln!(out, "{name}_bucket{{{label}le=\"{le}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{label}le=\"+Inf\"}} {}",
        cumulative.last().copied().unwrap_or(0)
    );
    let _ = writeln!(out, "{name}_sum{alone} {}", h.sum_micros as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{alone} {}", h.count);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn inputs(interval_ms: u64, started: Instant) -> HealthInputs {
        HealthInputs {
            interval: Duration::from_millis(interval_ms),
            started,
            queue_depths: Box::new(|| vec![0]),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

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

    #[test]
    fn render_has_every_spec_metric_with_help_and_type() {
        let t = Telemetry::for_sinks(&["postgres", "webhook"]);
        t.sink(0).events_published[0].fetch_add(3, Relaxed);
        t.inspect_error("timeout");
        t.tick_duration.observe(Duration::from_millis(7));
        t.sink(1).events_rejected.fetch_add(2, Relaxed);
        t.sink(1)
            .detection_latency
            .observe(Duration::from_millis(30));
        let now = std::time::Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(1_800_000_000_250);
        t.tick_failed(Stage::Docker, "cannot reach dockerd", "refused", now, wall);
        t.tick_failed(Stage::Docker, "cannot reach dockerd", "refused", now, wall);
        let text = render(&t, &[5, 1]);
        assert!(text.contains("rtinspect_last_success_timestamp_seconds 0\n"));
        t.tick_succeeded(now, wall);
        let text = render(&t, &[5, 1]);
        for name in [
            "rtinspect_health_events_total",
            "rtinspect_ticks_total",
            "rtinspect_tick_duration_seconds",
            "rtinspect_records",
            "rtinspect_inspect_errors_total",
            "rtinspect_publish_failures_total",
            "rtinspect_events_dropped_total",
            "rtinspect_publish_queue_depth",
            "rtinspect_last_tick_timestamp_seconds",
            "rtinspect_build_info",
            "rtinspect_tick_failures_total",
            "rtinspect_last_success_timestamp_seconds",
            "rtinspect_events_rejected_total",
            "rtinspect_docker_events_total",
            "rtinspect_event_stream_reconnects_total",
            "rtinspect_event_stream_attempts_total",
            "rtinspect_detection_latency_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        for line in [
            "rtinspect_health_events_total{sink=\"postgres\",event_type=\"inspect_unhealthy\"} 3\n",
            "rtinspect_health_events_total{sink=\"webhook\",event_type=\"inspect_unhealthy\"} 0\n",
            "rtinspect_publish_queue_depth{sink=\"postgres\"} 5\n",
            "rtinspect_publish_queue_depth{sink=\"webhook\"} 1\n",
            "rtinspect_events_rejected_total{sink=\"postgres\"} 0\n",
            "rtinspect_events_rejected_total{sink=\"webhook\"} 2\n",
            "rtinspect_publish_failures_total{sink=\"webhook\"} 0\n",
            "rtinspect_events_dropped_total{sink=\"postgres\"} 0\n",
            "rtinspect_detection_latency_seconds_bucket{sink=\"webhook\",le=\"0.05\"} 1\n",
            "rtinspect_detection_latency_seconds_count{sink=\"webhook\"} 1\n",
            "rtinspect_detection_latency_seconds_count{sink=\"postgres\"} 0\n",
        ] {
            assert!(text.contains(line), "{line}{text}");
        }
        assert!(text.contains("rtinspect_inspect_errors_total{kind=\"timeout\"} 1\n"));
        assert!(text.contains("rtinspect_inspect_errors_total{kind=\"invalid_id\"} 0\n"));
        assert!(text.contains("rtinspect_tick_duration_seconds_bucket{le=\"0.01\"} 1\n"));
        assert!(text.contains("rtinspect_tick_duration_seconds_bucket{le=\"0.005\"} 0\n"));
        assert!(text.contains("rtinspect_tick_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("rtinspect_tick_duration_seconds_count 1\n"));
        assert!(text.contains("rtinspect_tick_failures_total{stage=\"records\"} 0\n"));
        assert!(text.contains("rtinspect_tick_failures_total{stage=\"docker\"} 2\n"));
        assert!(text.contains("rtinspect_last_success_timestamp_seconds 1800000000.25\n"));
        assert!(text.contains("rtinspect_docker_events_total{action=\"die\"} 0\n"));
        assert!(text.contains("rtinspect_docker_events_total{action=\"other\"} 0\n"));
        assert!(text.contains("rtinspect_event_stream_reconnects_total 0\n"));
        assert!(text.contains("rtinspect_event_stream_attempts_total 0\n"));
        assert!(text.contains("# TYPE rtinspect_tick_failures_total counter\n"));
        assert!(text.contains("# TYPE rtinspect_last_success_timestamp_seconds gauge\n"));
        assert!(text.contains("# TYPE rtinspect_events_rejected_total counter\n"));
    }

    #[test]
    fn a_scrape_during_ticks_shows_one_tick_count() {
        let t = Arc::new(Telemetry::default());
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = {
            let (t, done) = (t.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Relaxed) {
                    t.tick_duration.observe(Duration::from_micros(300));
                }
            })
        };
        let value = |text: &str, name: &str| -> u64 {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap();
            line[name.len()..].trim().parse().unwrap()
        };
        // Scrapes only once the ticker runs, so that they overlap.
        while t.tick_duration.snapshot().count == 0 {
            std::thread::yield_now();
        }
        for _ in 0..2_000 {
            let text = render(&t, &[]);
            let ticks = value(&text, "rtinspect_ticks_total ");
            assert_eq!(
                value(&text, "rtinspect_tick_duration_seconds_count "),
                ticks
            );
            assert_eq!(
                value(
                    &text,
                    "rtinspect_tick_duration_seconds_bucket{le=\"+Inf\"} "
                ),
                ticks
            );
        }
        done.store(true, Relaxed);
        ticker.join().unwrap();
    }

    #[test]
    fn routes() {
        let t0 = Instant::now();
        let t = Telemetry::for_sinks(&["stdout"]);
        t.sink(0).publisher_alive.store(true, Relaxed);
        let i = inputs(1000, t0);
        let status = |method, path, now| answer(RequestLine { method, path }, &t, &i, now).status;
        let table = [
            ("GET", "/metrics", t0, 200),
            ("GET", "/healthz", t0, 200),
            ("GET", "/healthz", t0 + ms(8000), 503),
            ("GET", "/", t0, 404),
            ("GET", "/metrics/", t0, 404),
            ("POST", "/metrics", t0, 405),
            ("HEAD", "/healthz", t0, 405),
            ("get", "/metrics", t0, 405),
            ("POST", "/nope", t0, 404),
        ];
        for (method, path, now, expected) in table {
            assert_eq!(status(method, path, now), expected, "{method} {path}");
        }
        let get_metrics = RequestLine {
            method: "GET",
            path: "/metrics",
        };
        assert_eq!(answer(get_metrics, &t, &i, t0).content_type, EXPOSITION);
    }
}
