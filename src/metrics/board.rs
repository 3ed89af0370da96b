//! The gauges of the latest board, for a dashboard: games by standing,
//! open incidents by kind, each open incident's game (its opening time as
//! the value) for at most [`GAME_SERIES`] games, the restarts the looks
//! showed, and whether each sink is failing as `/healthz` judges it.
//!
//! Cardinality is bounded: the fixed labels have 6, 4 and a sink's count of
//! values; a per-game series exists only while its game has an open
//! incident, and at most [`GAME_SERIES`] of them (the worst, the oldest
//! first), the number left out said by `rtinspect_incident_series_dropped`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Instant, UNIX_EPOCH};

use super::exposition::{family, per_sink, single};
use crate::status::{Board, STANDINGS};
use crate::telemetry::{INCIDENT_KINDS, Telemetry};

/// The most per-game series one scrape carries.
pub(crate) const GAME_SERIES: usize = 100;

/// Appends the board's gauges (zeros before the first board) and the
/// restarts counter; `publishers_alive` in the order of the sinks.
pub(crate) fn render(out: &mut String, board: Option<&Board>, t: &Telemetry, now: Instant) {
    family(
        out,
        "rtinspect_games",
        "gauge",
        "Games at the last look, by standing (as rtinspect status shows them).",
    );
    let counts = board.map(Board::counts).unwrap_or_default();
    for (standing, n) in STANDINGS.iter().zip(counts) {
        let _ = writeln!(
            out,
            "rtinspect_games{{standing=\"{}\"}} {n}",
            standing.as_str()
        );
    }
    family(
        out,
        "rtinspect_open_incidents",
        "gauge",
        "Open incidents at the last look, by kind.",
    );
    let rows = board.map_or(&[][..], |b| &b.rows[..]);
    for kind in INCIDENT_KINDS {
        let n = rows
            .iter()
            .filter(|r| r.incident.as_ref().is_some_and(|i| i.kind == kind))
            .count();
        let _ = writeln!(
            out,
            "rtinspect_open_incidents{{kind=\"{}\"}} {n}",
            kind.as_str()
        );
    }
    family(
        out,
        "rtinspect_incident_open_since_seconds",
        "gauge",
        "Unix time an open incident opened, one series per game while it is open (at most 100, the worst first).",
    );
    let open = rows.iter().filter_map(|r| Some((r, r.incident.as_ref()?)));
    let mut shown = 0;
    for (r, i) in open.clone().take(GAME_SERIES) {
        out.push_str("rtinspect_incident_open_since_seconds{game_id=\"");
        label_value(out, &r.game_id);
        let since = i.since.duration_since(UNIX_EPOCH).unwrap_or_default();
        let _ = writeln!(
            out,
            "\",kind=\"{}\"}} {}",
            i.kind.as_str(),
            since.as_millis() as f64 / 1000.0
        );
        shown += 1;
    }
    single(
        out,
        "rtinspect_incident_series_dropped",
        "gauge",
        "Open incidents left out of rtinspect_incident_open_since_seconds (past 100).",
        open.count() - shown,
    );
    single(
        out,
        "rtinspect_container_restarts_total",
        "counter",
        "Restarts the looks showed: a container's RestartCount risen since the last look at it.",
        t.container_restarts.load(Relaxed),
    );
    per_sink(
        out,
        t,
        (
            "rtinspect_sink_failing",
            "gauge",
            "1 while the sink's publisher is not running, or it has failed or refused everything for 5 minutes (as /healthz says), else 0.",
        ),
        |_, sink| {
            u64::from(
                !sink.publisher_alive.load(Relaxed) || sink.deliveries().trouble(now).is_some(),
            )
        },
    );
}

/// A label value as the text format escapes it: `\`, `"` and a line feed.
fn label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::incident::Kind;
    use crate::status::{Look, Seen};

    fn memory(games: &[(&str, Kind)]) -> crate::incident::SavedIncidents {
        let games: serde_json::Map<String, serde_json::Value> = games
            .iter()
            .map(|(g, kind)| {
                let v = serde_json::json!({"incident": {"id": "i", "kind": kind.as_str(),
                    "started_at_us": 1_800_000_000_500_000u64, "oom": false}});
                (g.to_string(), v)
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "games": games })).unwrap()
    }

    fn board(n: usize) -> Board {
        let looks = (0..n)
            .map(|i| Look {
                game_id: format!("g-{i}\"\\\n"),
                container_ref: "c".into(),
                seen: Seen::Container {
                    container_id: "c".into(),
                    state: "exited".into(),
                    health: String::new(),
                },
            })
            .chain(std::iter::once(Look {
                game_id: "ok".into(),
                container_ref: "c".into(),
                seen: Seen::Container {
                    container_id: "c".into(),
                    state: "running".into(),
                    health: String::new(),
                },
            }))
            .collect();
        let names: Vec<String> = (0..n).map(|i| format!("g-{i}\"\\\n")).collect();
        let games: Vec<(&str, Kind)> = names
            .iter()
            .map(|g| (g.as_str(), Kind::NotRunning))
            .collect();
        Board::new(
            "h".into(),
            SystemTime::now(),
            looks,
            Some(&memory(&games)),
            &|_| None,
        )
    }

    #[test]
    fn gauges_count_the_board_and_per_game_series_are_bounded_and_escaped() {
        let t = Telemetry::for_sinks(&["stdout", "webhook"]);
        t.sink(0).publisher_alive.store(true, Relaxed);
        let mut out = String::new();
        render(&mut out, Some(&board(150)), &t, Instant::now());
        assert!(
            out.contains("rtinspect_games{standing=\"not_running\"} 150\n"),
            "{out}"
        );
        assert!(out.contains("rtinspect_games{standing=\"healthy\"} 1\n"));
        assert!(out.contains("rtinspect_open_incidents{kind=\"not_running\"} 150\n"));
        assert!(out.contains("rtinspect_open_incidents{kind=\"crash_loop\"} 0\n"));
        assert_eq!(
            out.matches("rtinspect_incident_open_since_seconds{")
                .count(),
            GAME_SERIES
        );
        assert!(out.contains("rtinspect_incident_series_dropped 50\n"));
        assert!(
            out.contains("{game_id=\"g-0\\\"\\\\\\n\",kind=\"not_running\"} 1800000000.5\n"),
            "{out}"
        );
        assert!(out.contains("rtinspect_sink_failing{sink=\"stdout\"} 0\n"));
        assert!(
            out.contains("rtinspect_sink_failing{sink=\"webhook\"} 1\n"),
            "not running"
        );
        // Before the first board: every fixed series at 0, no per-game one.
        let mut out = String::new();
        render(&mut out, None, &t, Instant::now() + Duration::from_secs(1));
        assert!(out.contains("rtinspect_games{standing=\"crash_loop\"} 0\n"));
        assert!(!out.contains("rtinspect_incident_open_since_seconds{"));
    }
}
