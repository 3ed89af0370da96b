//! `/metrics`: every counter of [`Telemetry`] in the Prometheus text
//! format 0.0.4, each family with its `HELP` and `TYPE`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::UNIX_EPOCH;

use crate::telemetry::{
    DOCKER_EVENT_ACTIONS, HistogramCounts, INCIDENT_CHANGES, INCIDENT_KINDS, INSPECT_ERROR_KINDS,
    SinkCounters, Stage, TICK_BUCKETS, Telemetry,
};

/// A metric family's `HELP` and `TYPE` lines.
pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A metric family with one unlabelled sample.
pub(super) fn single(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// One sample per sink of a per-sink counter or gauge.
pub(super) fn per_sink(
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
pub(crate) fn render(t: &Telemetry, queue_depths: &[usize]) -> String {
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

    family(
        &mut out,
        "rtinspect_incidents_total",
        "counter",
        "Changes of incidents, by kind and change, counted whatever the sinks (and whether any takes incidents).",
    );
    for kind in INCIDENT_KINDS {
        for (change, label) in INCIDENT_CHANGES {
            let _ = writeln!(
                out,
                "rtinspect_incidents_total{{kind=\"{}\",change=\"{label}\"}} {}",
                kind.as_str(),
                t.incidents_of(kind, change)
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

    family(
        &mut out,
        "rtinspect_events_dropped_total",
        "counter",
        "Events dropped because the sink's publish queue (and its overflow file) was full, by type.",
    );
    for sink in &t.sinks {
        for (event_type, count) in crate::event::EVENT_TYPES.iter().zip(&sink.events_dropped) {
            let _ = writeln!(
                out,
                "rtinspect_events_dropped_total{{sink=\"{}\",event_type=\"{event_type}\"}} {}",
                sink.name,
                count.load(Relaxed)
            );
        }
    }

    per_sink(
        &mut out,
        t,
        (
            "rtinspect_events_overflowed_total",
            "counter",
            "Events that found the sink's queue full and went to its overflow file in the state directory.",
        ),
        |_, s| s.events_overflowed.load(Relaxed),
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
            &sink.name,
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
    single(
        &mut out,
        "rtinspect_state_save_failures_total",
        "counter",
        "Failed writes of baselines.json or incidents.json; each is tried again at the next tick.",
        t.state_save_failures.load(Relaxed),
    );
    single(
        &mut out,
        "rtinspect_incidents_silenced_total",
        "counter",
        "Changes of incidents a silence held back from every sink (each once, when made).",
        t.incidents_silenced.load(Relaxed),
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
    use std::sync::Arc;
    use std::time::Duration;

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
        t.incident(
            crate::incident::Kind::CrashLoop,
            crate::incident::Change::Escalated,
        );
        let text = render(&t, &[5, 1]);
        assert!(text.contains("rtinspect_last_success_timestamp_seconds 0\n"));
        assert!(
            text.contains(
                "rtinspect_incidents_total{kind=\"crash_loop\",change=\"escalated\"} 1\n"
            )
        );
        assert!(
            text.contains("rtinspect_incidents_total{kind=\"restarted\",change=\"opened\"} 0\n")
        );
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
            "rtinspect_events_overflowed_total",
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
            "rtinspect_incidents_total",
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
            "rtinspect_events_dropped_total{sink=\"postgres\",event_type=\"incident_opened\"} 0\n",
            "rtinspect_events_overflowed_total{sink=\"postgres\"} 0\n",
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
}
