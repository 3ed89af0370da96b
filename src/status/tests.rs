//! The board's unit tests: how each look stands, the order of the rows,
//! the summary, the exit status and the JSON.

use std::time::{Duration, UNIX_EPOCH};

use super::*;

const FULL: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn look(game: &str, state: &str, health: &str) -> Look {
    Look {
        game_id: game.into(),
        container_ref: format!("c-{game}"),
        seen: Seen::Container {
            container_id: FULL.into(),
            state: state.into(),
            health: health.into(),
        },
    }
}

fn seen(game: &str, seen: Seen) -> Look {
    Look {
        game_id: game.into(),
        container_ref: format!("c-{game}"),
        seen,
    }
}

/// (game, restarts, open incident's kind and opening).
pub(super) type Remembered<'a> = (&'a str, u32, Option<(Kind, u64)>);

/// The tracker's memory of `games`: (game, restarts in the last hour, open incident's kind
/// and opening, as seconds after `t(0)`), as `incidents.json` holds it.
pub(super) fn memory(games: &[Remembered<'_>]) -> TrackerMemory {
    let games: serde_json::Map<String, serde_json::Value> = games
        .iter()
        .map(|(game, restarts, incident)| {
            // Counted 50 s after `t(0)`, within the hour before each board.
            let at: Vec<u64> = vec![(1_800_000_000 + 50) * 1000; *restarts as usize];
            let mut g = serde_json::json!({"restarts_in_window": restarts, "restarted_at_ms": at});
            if let Some((kind, since)) = incident {
                g["incident"] = serde_json::json!({
                    "id": format!("id-{since}"),
                    "kind": kind.as_str(),
                    "started_at_us": (1_800_000_000 + since) * 1_000_000,
                    "oom": false,
                });
            }
            (game.to_string(), g)
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "games": games })).unwrap()
}

fn board(looks: Vec<Look>, memory: Option<&TrackerMemory>) -> Board {
    Board::new("host-7".into(), t(100), looks, memory, &|_| None)
}

#[test]
fn each_look_stands_as_the_worst_that_holds() {
    let memory = memory(&[
        ("loop", 5, Some((Kind::CrashLoop, 1))),
        ("came-back", 1, None),
        ("recovering", 0, Some((Kind::NotRunning, 2))),
        ("sick-loop", 3, Some((Kind::CrashLoop, 3))),
    ]);
    // (look, standing)
    let table = [
        (look("ok", "running", ""), Standing::Healthy),
        (look("ok-hc", "running", "healthy"), Standing::Healthy),
        (look("starting", "running", "starting"), Standing::Healthy),
        (look("sick", "running", "unhealthy"), Standing::Unhealthy),
        (look("down", "exited", ""), Standing::NotRunning),
        (look("paused", "paused", ""), Standing::NotRunning),
        (look("created", "created", ""), Standing::NotRunning),
        (look("backoff", "restarting", ""), Standing::Restarted),
        (look("loop", "running", "healthy"), Standing::CrashLoop),
        (look("came-back", "running", ""), Standing::Restarted),
        (look("recovering", "running", ""), Standing::NotRunning),
        (
            look("sick-loop", "running", "unhealthy"),
            Standing::CrashLoop,
        ),
        (seen("gone", Seen::Missing), Standing::NotRunning),
        (seen("boom", Seen::Failed("500".into())), Standing::Unknown),
        (seen("bad", Seen::Invalid("no".into())), Standing::Unknown),
    ];
    for (l, want) in table {
        let game = l.game_id.clone();
        let b = board(vec![l], Some(&memory));
        assert_eq!(b.rows[0].standing, want, "{game}");
    }
}

#[test]
fn rows_go_worst_first_then_oldest_incident_then_by_name() {
    let memory = memory(&[
        ("d-new", 0, Some((Kind::NotRunning, 50))),
        ("c-old", 0, Some((Kind::NotRunning, 10))),
        ("e-loop", 4, Some((Kind::CrashLoop, 60))),
    ]);
    let b = board(
        vec![
            look("a-ok", "running", ""),
            look("z-sick", "running", "unhealthy"),
            look("d-new", "exited", ""),
            look("b-down", "exited", ""),
            look("c-old", "exited", ""),
            seen("f-boom", Seen::Failed("x".into())),
            look("e-loop", "restarting", ""),
        ],
        Some(&memory),
    );
    let order: Vec<&str> = b.rows.iter().map(|r| r.game_id.as_str()).collect();
    assert_eq!(
        order,
        [
            "e-loop", "c-old", "d-new", "b-down", "z-sick", "f-boom", "a-ok"
        ]
    );
    assert_eq!(
        b.summary_line(),
        "7 games: 1 healthy, 1 not looked at, 1 unhealthy, 3 not running, 1 crash loop"
    );
    assert_eq!(b.exit_status(), 1);
}

#[test]
fn the_exit_status_says_healthy_trouble_or_not_looked_at() {
    let healthy = board(
        vec![look("a", "running", ""), look("b", "running", "healthy")],
        None,
    );
    assert_eq!(healthy.exit_status(), 0);
    assert_eq!(healthy.summary_line(), "2 games: 2 healthy");
    let unknown = board(
        vec![
            look("a", "running", ""),
            seen("b", Seen::Failed("x".into())),
        ],
        None,
    );
    assert_eq!(unknown.exit_status(), 2);
    let trouble = board(
        vec![seen("b", Seen::Failed("x".into())), look("c", "exited", "")],
        None,
    );
    assert_eq!(
        trouble.exit_status(),
        1,
        "trouble is said before the unknown"
    );
    let none = board(Vec::new(), None);
    assert_eq!(
        (none.exit_status(), none.summary_line()),
        (0, "0 games".into())
    );
    let one = board(vec![look("a", "running", "")], None);
    assert_eq!(one.summary_line(), "1 game: 1 healthy");
}

#[test]
fn json_has_the_contract_shape_and_every_row() {
    let memory = memory(&[("loop", 4, Some((Kind::CrashLoop, 1)))]);
    let b = Board::new(
        "host-7".into(),
        t(100),
        vec![look("ok", "running", ""), look("loop", "running", "")],
        Some(&memory),
        &|g| (g == "loop").then(|| t(3600)),
    );
    let v: serde_json::Value = serde_json::from_str(&b.json(usize::MAX)).unwrap();
    let want = serde_json::json!({
        "host": "host-7",
        "summary": {"crash_loop": 1, "not_running": 0, "unhealthy": 0, "restarted": 0,
                    "unknown": 0, "healthy": 1},
        "games": [
            {"game_id": "loop", "container_id": FULL, "state": "running", "health": "",
             "restarts_last_hour": 4,
             "incident": {"incident_id": "id-1", "kind": "crash_loop",
                          "since": "2027-01-15T08:00:01.000000Z", "reason": null},
             "silenced_until": "2027-01-15T09:00:00.000000Z"},
            {"game_id": "ok", "container_id": FULL, "state": "running", "health": "",
             "restarts_last_hour": 0, "incident": null, "silenced_until": null},
        ]
    });
    assert_eq!(v, want);
    // Without a tracker the restarts are not known; a limit keeps the worst.
    let b = board(
        vec![look("ok", "running", ""), look("down", "dead", "")],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&b.json(1)).unwrap();
    assert_eq!(v["games"].as_array().unwrap().len(), 1);
    assert_eq!(v["games"][0]["game_id"], "down");
    assert_eq!(v["games"][0]["restarts_last_hour"], serde_json::Value::Null);
    assert_eq!(v["summary"]["healthy"], 1, "the summary counts every game");
}

#[test]
fn reasons_come_from_the_incidents_events_by_id() {
    let memory = memory(&[("loop", 4, Some((Kind::CrashLoop, 1)))]);
    let b = board(
        vec![look("loop", "running", ""), look("ok", "running", "")],
        Some(&memory),
    )
    .with_reasons(&|id| (id == "id-1").then(|| "crashed".to_owned()));
    assert_eq!(
        b.rows[0].incident.as_ref().unwrap().reason.as_deref(),
        Some("crashed")
    );
    let v: serde_json::Value = serde_json::from_str(&b.json(9)).unwrap();
    assert_eq!(v["games"][0]["incident"]["reason"], "crashed");
    assert_eq!(v["games"][1]["incident"], serde_json::Value::Null);
}

#[test]
fn ages_and_ids_as_people_read_them() {
    let table = [
        (0, "0s"),
        (45, "45s"),
        (60, "1m"),
        (723, "12m 3s"),
        (3600, "1h"),
        (7500, "2h 5m"),
        (86_400, "1d"),
        (86_400 * 3 + 4 * 3600 + 59, "3d 4h"),
    ];
    for (secs, want) in table {
        assert_eq!(age(Duration::from_secs(secs)), want, "{secs}");
    }
    assert_eq!(short_id(FULL), "0123456789ab");
    assert_eq!(short_id("my-game-1"), "my-game-1");
    assert_eq!(minute(t(0)), "2027-01-15 08:00Z");
}

#[test]
fn an_open_incidents_reason_is_the_trackers_and_the_events_only_fill_in() {
    let mut memory = memory(&[("down", 0, Some((Kind::NotRunning, 1)))]);
    let saved: serde_json::Value = serde_json::to_value(&memory).unwrap();
    let mut saved = saved;
    saved["games"]["down"]["incident"]["reason"] = "crashed".into();
    memory = serde_json::from_value(saved).unwrap();
    let events_say = |_: &str| Some("unknown".to_owned());
    let b = board(vec![look("down", "exited", "")], Some(&memory)).with_reasons(&events_say);
    let reason = b.rows[0].incident.as_ref().unwrap().reason.clone();
    assert_eq!(
        reason.as_deref(),
        Some("crashed"),
        "as the page shows it after a restart"
    );
    // A memory saved without it: the events' reason.
    let memory = super::tests::memory(&[("down", 0, Some((Kind::NotRunning, 1)))]);
    let b = board(vec![look("down", "exited", "")], Some(&memory)).with_reasons(&events_say);
    let reason = b.rows[0].incident.as_ref().unwrap().reason.clone();
    assert_eq!(reason.as_deref(), Some("unknown"));
}
