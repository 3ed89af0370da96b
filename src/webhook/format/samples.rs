//! Events for the formats' tests: plain facts, incidents, and the worst of
//! what may come from outside.

use std::time::SystemTime;

use crate::event::HealthEvent;
pub(crate) use crate::incident::{Change, Kind as IncidentKind};

/// The host the formats' tests name.
pub(crate) const HOST: &str = "host-7";
use crate::inspector::{Finding, Observation, Reason, StateDetails};

pub(crate) fn event(
    game: &str,
    status: &str,
    health: &str,
    details: Option<StateDetails>,
) -> HealthEvent {
    HealthEvent::with_id(
        "0193a1b2-0000-7000-8000-000000000000".into(),
        Finding {
            game_id: game.into(),
            observation: Observation {
                container_id: "d3c207677dd0c4b84ec93933377312c265ce8c9581e1ec65a6a2005fe34407ee"
                    .into(),
                restart_count: 3,
                status: status.into(),
                health: health.into(),
                details: details.map(Box::new),
            },
            reasons: vec![Reason::NotRunning],
        },
        SystemTime::UNIX_EPOCH,
    )
}

/// An incident's event: `kind`, changed as `change`, on `game`.
pub(crate) fn incident(change: Change, kind: IncidentKind, game: &str) -> HealthEvent {
    HealthEvent::for_incident(
        change,
        crate::event::plain_facts("019ae1c5-aaaa-7000-8000-000000000000", kind, 4),
        game.into(),
        Observation {
            container_id: "d3c207677dd0c4b84ec93933377312c265ce8c9581e1ec65a6a2005fe34407ee".into(),
            restart_count: 7,
            status: "running".into(),
            health: String::new(),
            details: None,
        },
        SystemTime::UNIX_EPOCH,
    )
}

/// A fact whose probe said `output` and whose game is `game`. The
/// output is set after the envelope is made, which would leave out one
/// this long: the builders must cope with any.
pub(crate) fn probed(game: &str, output: &str) -> HealthEvent {
    let mut e = event(game, "running", "unhealthy", None);
    e.details = Some(Box::new(StateDetails {
        health_failing_streak: Some(3),
        health_output: Some(output.into()),
        ..StateDetails::default()
    }));
    e
}

/// Events with the worst of what may come from outside.
pub(crate) fn hostile() -> Vec<HealthEvent> {
    let long_game = "g".repeat(300);
    let mut all = vec![
        probed(&long_game, &"x".repeat(10 * 1024)),
        probed("@everyone <script>alert(1)</script>", "```\n@here & <b>"),
        probed("g-42\r\nX-Injected: 1", "line\r\nline"),
        probed("jeu-été-ゲーム", &"é".repeat(10 * 1024)),
    ];
    let mut e = event(&"@everyone".repeat(40), "exited", "", None);
    e.details = Some(Box::new(StateDetails {
        error: Some("e".repeat(5000)),
        health_output: Some("o".repeat(10 * 1024)),
        exit_code: Some(137),
        oom_killed: Some(true),
        ..StateDetails::default()
    }));
    all.push(e);
    all.push(incident(
        Change::Opened,
        IncidentKind::CrashLoop,
        &long_game,
    ));
    all
}
