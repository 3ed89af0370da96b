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
use std::time::{Duration, UNIX_EPOCH};

pub use listener::ListenError;
use listener::{Limits, Listener, RequestLine, Response};

use crate::event::INSPECT_UNHEALTHY;
use crate::telemetry::{INSPECT_ERROR_KINDS, Stage, TICK_BUCKETS, Telemetry};

/// What `/healthz` needs besides the counters.
pub struct HealthInputs {
    /// The tick interval: ticks older than three of these are stale.
    pub interval: Duration,
    /// Unix milliseconds at start, the reference before the first tick.
    pub started_unix_ms: u64,
    /// Events waiting for the sink.
    pub queue_depth: Box<dyn Fn() -> usize + Send>,
}

/// The running listener.
pub struct MetricsServer {
    listener: Listener,
}

/// Binds `addr` and starts the listener thread.
pub fn serve(
    addr: SocketAddr,
    telemetry: Arc<Telemetry>,
    inputs: HealthInputs,
) -> Result<MetricsServer, String> {
    let handler = Box::new(move |request: RequestLine<'_>| {
        answer(
            request,
            &telemetry,
            &inputs,
            crate::telemetry::unix_ms_now(),
        )
    });
    let listener = listener::spawn(addr, Limits::default(), handler).map_err(|e| e.to_string())?;
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
    now_ms: u64,
) -> Response {
    match (request.method, request.path) {
        ("GET", "/metrics") => Response {
            status: 200,
            content_type: EXPOSITION,
            body: render(telemetry, (inputs.queue_depth)()),
        },
        ("GET", "/healthz") => match health(telemetry, inputs, now_ms) {
            Ok(msg) => Response::text(200, format!("{msg}\n")),
            Err(reason) => Response::text(503, format!("{reason}\n")),
        },
        (_, "/metrics" | "/healthz") => Response::text(405, "only GET\n"),
        _ => Response::text(404, "not found: try /metrics or /healthz\n"),
    }
}

/// `Ok` while the last tick finished less than three intervals ago and the
/// publisher runs; `Err` with a one-line reason otherwise.
pub fn health(telemetry: &Telemetry, inputs: &HealthInputs, now_ms: u64) -> Result<String, String> {
    if !telemetry.publisher_alive.load(Relaxed) {
        return Err("unhealthy: the publisher thread is not running".into());
    }
    let limit_ms = inputs.interval.as_millis() as u64 * 3;
    let last = telemetry.last_tick_unix_ms.load(Relaxed);
    let (reference, what) = if last == 0 {
        (inputs.started_unix_ms, "start, with no tick since")
    } else {
        (last, "the last finished tick")
    };
    let age_ms = now_ms.saturating_sub(reference);
    if age_ms > limit_ms {
        return Err(format!(
            "unhealthy: {what} was {:.1}s ago, over three intervals ({:.1}s)",
            age_ms as f64 / 1000.0,
            limit_ms as f64 / 1000.0
        ));
    }
    Ok(if last == 0 {
        "ok: starting".into()
    } else {
        format!("ok: last tick {:.1}s ago", age_ms as f64 / 1000.0)
    })
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

/// The exposition text of every metric.
pub fn render(t: &Telemetry, queue_depth: usize) -> String {
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
        "Health events the sink accepted.",
    );
    let _ = writeln!(
        out,
        "rtinspect_health_events_total{{event_type=\"{INSPECT_UNHEALTHY}\"}} {}",
        t.events_published.load(Relaxed)
    );

    single(
        &mut out,
        "rtinspect_ticks_total",
        "counter",
        "Ticks finished.",
        t.ticks.load(Relaxed),
    );

    family(
        &mut out,
        "rtinspect_tick_duration_seconds",
        "histogram",
        "Duration of a tick: listing the records and inspecting each.",
    );
    let cumulative = t.tick_duration.cumulative();
    for (le, count) in TICK_BUCKETS.iter().zip(&cumulative) {
        let _ = writeln!(
            out,
            "rtinspect_tick_duration_seconds_bucket{{le=\"{le}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "rtinspect_tick_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        cumulative.last().copied().unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "rtinspect_tick_duration_seconds_sum {}",
        t.tick_duration.sum_micros.load(Relaxed) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "rtinspect_tick_duration_seconds_count {}",
        t.tick_duration.count.load(Relaxed)
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

    single(
        &mut out,
        "rtinspect_publish_failures_total",
        "counter",
        "Publish attempts the sink refused (each retry counts).",
        t.publish_failures.load(Relaxed),
    );

    single(
        &mut out,
        "rtinspect_events_dropped_total",
        "counter",
        "Events dropped because the publish queue was full.",
        t.events_dropped.load(Relaxed),
    );

    single(
        &mut out,
        "rtinspect_publish_queue_depth",
        "gauge",
        "Events waiting for the sink.",
        queue_depth,
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

    single(
        &mut out,
        "rtinspect_events_rejected_total",
        "counter",
        "Events the sink refused for good and set aside in rejected.jsonl.",
        t.events_rejected.load(Relaxed),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn inputs(interval_ms: u64) -> HealthInputs {
        HealthInputs {
            interval: Duration::from_millis(interval_ms),
            started_unix_ms: 1_000_000,
            queue_depth: Box::new(|| 0),
        }
    }

    #[test]
    fn health_table() {
        let t = Telemetry::default();
        let i = inputs(1000);
        assert!(health(&t, &i, 1_000_500).unwrap_err().contains("publisher"));
        t.publisher_alive.store(true, Relaxed);
        assert_eq!(health(&t, &i, 1_002_000).unwrap(), "ok: starting");
        assert!(
            health(&t, &i, 1_003_001)
                .unwrap_err()
                .contains("start, with no tick")
        );
        t.last_tick_unix_ms.store(1_010_000, Relaxed);
        assert!(health(&t, &i, 1_012_900).is_ok());
        let err = health(&t, &i, 1_013_100).unwrap_err();
        assert_eq!(
            err,
            "unhealthy: the last finished tick was 3.1s ago, over three intervals (3.0s)"
        );
    }

    #[test]
    fn render_has_every_spec_metric_with_help_and_type() {
        let t = Telemetry::default();
        t.events_published.fetch_add(3, Relaxed);
        t.inspect_error("timeout");
        t.tick_duration.observe(Duration::from_millis(7));
        t.events_rejected.fetch_add(2, Relaxed);
        let now = std::time::Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(1_800_000_000_250);
        t.tick_failed(Stage::Docker, "cannot reach dockerd", "refused", now, wall);
        t.tick_failed(Stage::Docker, "cannot reach dockerd", "refused", now, wall);
        let text = render(&t, 5);
        assert!(text.contains("rtinspect_last_success_timestamp_seconds 0\n"));
        t.tick_succeeded(now, wall);
        let text = render(&t, 5);
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
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        assert!(
            text.contains("rtinspect_health_events_total{event_type=\"inspect_unhealthy\"} 3\n")
        );
        assert!(text.contains("rtinspect_inspect_errors_total{kind=\"timeout\"} 1\n"));
        assert!(text.contains("rtinspect_inspect_errors_total{kind=\"invalid_id\"} 0\n"));
        assert!(text.contains("rtinspect_tick_duration_seconds_bucket{le=\"0.01\"} 1\n"));
        assert!(text.contains("rtinspect_tick_duration_seconds_bucket{le=\"0.005\"} 0\n"));
        assert!(text.contains("rtinspect_tick_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("rtinspect_tick_duration_seconds_count 1\n"));
        assert!(text.contains("rtinspect_publish_queue_depth 5\n"));
        assert!(text.contains("rtinspect_tick_failures_total{stage=\"records\"} 0\n"));
        assert!(text.contains("rtinspect_tick_failures_total{stage=\"docker\"} 2\n"));
        assert!(text.contains("rtinspect_last_success_timestamp_seconds 1800000000.25\n"));
        assert!(text.contains("rtinspect_events_rejected_total 2\n"));
        assert!(text.contains("# TYPE rtinspect_tick_failures_total counter\n"));
        assert!(text.contains("# TYPE rtinspect_last_success_timestamp_seconds gauge\n"));
        assert!(text.contains("# TYPE rtinspect_events_rejected_total counter\n"));
    }

    #[test]
    fn routes() {
        let t = Telemetry::default();
        t.publisher_alive.store(true, Relaxed);
        let i = inputs(1000);
        let status =
            |method, path, now_ms| answer(RequestLine { method, path }, &t, &i, now_ms).status;
        let table = [
            ("GET", "/metrics", 1_000_000, 200),
            ("GET", "/healthz", 1_000_000, 200),
            ("GET", "/healthz", 9_000_000, 503),
            ("GET", "/", 1_000_000, 404),
            ("GET", "/metrics/", 1_000_000, 404),
            ("POST", "/metrics", 1_000_000, 405),
            ("HEAD", "/healthz", 1_000_000, 405),
            ("get", "/metrics", 1_000_000, 405),
            ("POST", "/nope", 1_000_000, 404),
        ];
        for (method, path, now_ms, expected) in table {
            assert_eq!(status(method, path, now_ms), expected, "{method} {path}");
        }
        let metrics = answer(
            RequestLine {
                method: "GET",
                path: "/metrics",
            },
            &t,
            &i,
            1_000_000,
        );
        assert_eq!(metrics.content_type, EXPOSITION);
    }
}
