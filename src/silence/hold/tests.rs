use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::incident::Kind;
use crate::silence::Silence;

const T0: u64 = 1_795_726_800;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

/// A hold with `game` silenced from 100 s to 200 s.
fn hold(game: Option<&str>) -> Hold {
    let mut h = Hold::default();
    let s = Silence {
        id: "0193f000-0000-7000-8000-000000000001".into(),
        game_id: game.map(str::to_owned),
        starts_at: t(100),
        ends_at: t(200),
        created_by: "ci".into(),
        comment: String::new(),
    };
    h.set_silences(Silences::new([&s], t(0)));
    h
}

fn change(change: Change, id: &str, kind: Kind, at: u64) -> IncidentEvent {
    IncidentEvent {
        change,
        game_id: "g".into(),
        container_id: "c".into(),
        incident_id: id.into(),
        kind,
        started_at: t(110),
        restarts_in_window: 0,
        oom: false,
        at: t(at),
        reason: None,
        resolution: None,
    }
}

/// What `look` lets through, as (change, kind, after_silence) for each
/// delivery and `held` for each change held.
fn look(
    h: &mut Hold,
    at: u64,
    clean: bool,
    changes: Vec<IncidentEvent>,
    open: Option<(&str, Kind)>,
) -> Vec<String> {
    let verdicts = h.look("g", t(at), clean, changes, |c| {
        open.map(|(id, kind)| change(c, id, kind, at))
    });
    verdicts
        .into_iter()
        .map(|v| match v {
            Verdict::Deliver {
                change,
                after_silence,
            } => format!(
                "{:?} {} {}{}",
                change.change,
                change.kind.as_str(),
                change.incident_id,
                if after_silence { " after silence" } else { "" }
            ),
            Verdict::Held { change, .. } => format!("held {:?}", change.change),
        })
        .collect()
}

/// `look` at 110 s, within the silence's span, with `g`'s incident `id` opened
/// there as `kind`.
fn opened_inside(h: &mut Hold, id: &str, kind: Kind, open: Option<(&str, Kind)>) -> Vec<String> {
    look(
        h,
        110,
        false,
        vec![change(Change::Opened, id, kind, 110)],
        open,
    )
}

#[test]
fn an_incident_opened_in_a_silence_is_announced_at_its_end_when_still_down() {
    let mut h = hold(Some("g"));
    let open = Some(("i1", Kind::NotRunning));
    assert_eq!(
        opened_inside(&mut h, "i1", Kind::NotRunning, open),
        ["held Opened"]
    );
    assert!(h.take_changed());
    // Still down, still silenced: nothing.
    assert_eq!(look(&mut h, 150, false, vec![], open), Vec::<String>::new());
    let escalated = change(Change::Escalated, "i1", Kind::CrashLoop, 160);
    assert_eq!(
        look(&mut h, 160, false, vec![escalated], open),
        ["held Escalated"]
    );
    // The first look after the end decides: still down, announced once,
    // with the kind it has now.
    let open = Some(("i1", Kind::CrashLoop));
    assert_eq!(
        look(&mut h, 205, false, vec![], open),
        ["Opened crash_loop i1 after silence"]
    );
    assert_eq!(look(&mut h, 220, false, vec![], open), Vec::<String>::new());
    assert_eq!(h.len(), 0);
}

#[test]
fn an_incident_that_came_back_inside_its_silence_resolves_unannounced() {
    let mut h = hold(Some("g"));
    let open = Some(("i1", Kind::NotRunning));
    assert_eq!(
        opened_inside(&mut h, "i1", Kind::NotRunning, open),
        ["held Opened"]
    );
    // Clean at the end: nothing said, still held.
    assert_eq!(look(&mut h, 205, true, vec![], open), Vec::<String>::new());
    assert_eq!(h.len(), 1);
    let resolved = change(Change::Resolved, "i1", Kind::NotRunning, 240);
    assert_eq!(
        look(&mut h, 240, true, vec![resolved], None),
        ["held Resolved"]
    );
    assert_eq!(h.len(), 0);
    // Resolved inside the silence: the same.
    let mut h = hold(Some("g"));
    opened_inside(
        &mut h,
        "i2",
        Kind::NotRunning,
        Some(("i2", Kind::NotRunning)),
    );
    let resolved = change(Change::Resolved, "i2", Kind::NotRunning, 150);
    assert_eq!(
        look(&mut h, 150, true, vec![resolved], None),
        ["held Resolved"]
    );
    assert_eq!(look(&mut h, 205, true, vec![], None), Vec::<String>::new());
}

#[test]
fn a_held_incident_that_goes_bad_again_after_its_silence_is_announced_then() {
    let mut h = hold(Some("g"));
    let open = Some(("i1", Kind::NotRunning));
    opened_inside(&mut h, "i1", Kind::NotRunning, open);
    assert_eq!(look(&mut h, 205, true, vec![], open), Vec::<String>::new());
    // Down again before it resolved: the tracker says nothing (the same
    // incident, no worse), the hold announces it.
    assert_eq!(
        look(&mut h, 215, false, vec![], open),
        ["Opened not_running i1 after silence"]
    );
    // A reminder of an incident never announced is not said; an
    // escalation after the silence announces it as opened.
    let mut h = hold(Some("g"));
    opened_inside(&mut h, "i1", Kind::Restarted, open);
    assert_eq!(look(&mut h, 205, true, vec![], open), Vec::<String>::new());
    let escalated = change(Change::Escalated, "i1", Kind::CrashLoop, 230);
    assert_eq!(
        look(
            &mut h,
            230,
            false,
            vec![escalated],
            Some(("i1", Kind::CrashLoop))
        ),
        ["Opened crash_loop i1 after silence"]
    );
    assert_eq!(h.len(), 0);
}

#[test]
fn an_announced_incident_keeps_its_resolution_and_its_reminders_wait() {
    let mut h = hold(Some("g"));
    let open = Some(("i0", Kind::Unhealthy));
    // Opened before the silence: delivered, no entry.
    let opened = change(Change::Opened, "i0", Kind::Unhealthy, 50);
    assert_eq!(
        look(&mut h, 50, false, vec![opened], open),
        ["Opened unhealthy i0"]
    );
    assert_eq!(h.len(), 0);
    let reminder = change(Change::Reminder, "i0", Kind::Unhealthy, 120);
    assert_eq!(
        look(&mut h, 120, false, vec![reminder], open),
        ["held Reminder"]
    );
    let escalated = change(Change::Escalated, "i0", Kind::NotRunning, 130);
    assert_eq!(
        look(&mut h, 130, false, vec![escalated], open),
        ["held Escalated"]
    );
    // Still bad after: the escalation that waited, once.
    let open = Some(("i0", Kind::NotRunning));
    assert_eq!(
        look(&mut h, 210, false, vec![], open),
        ["Escalated not_running i0 after silence"]
    );
    assert_eq!(look(&mut h, 220, false, vec![], open), Vec::<String>::new());

    // Its resolution is delivered even inside the silence.
    let mut h = hold(Some("g"));
    look(
        &mut h,
        120,
        false,
        vec![change(Change::Reminder, "i0", Kind::Unhealthy, 120)],
        open,
    );
    let resolved = change(Change::Resolved, "i0", Kind::Unhealthy, 150);
    assert_eq!(
        look(&mut h, 150, true, vec![resolved], None),
        ["Resolved unhealthy i0"]
    );
    assert_eq!(h.len(), 0);

    // A reminder that waited is dropped when the look after is clean.
    let mut h = hold(None);
    look(
        &mut h,
        120,
        false,
        vec![change(Change::Reminder, "i0", Kind::Unhealthy, 120)],
        open,
    );
    assert_eq!(look(&mut h, 210, true, vec![], open), Vec::<String>::new());
    assert_eq!(h.len(), 0);
}

#[test]
fn games_not_silenced_pass_through_and_removed_ones_follow_the_same_rule() {
    let mut h = hold(Some("other"));
    assert_eq!(
        opened_inside(&mut h, "i1", Kind::NotRunning, None),
        ["Opened not_running i1"]
    );
    assert!(!h.take_changed());
    // A game gone while held resolves unannounced; an announced one, said.
    let mut h = hold(Some("g"));
    opened_inside(&mut h, "i1", Kind::NotRunning, None);
    let mut gone = change(Change::Resolved, "i1", Kind::NotRunning, 150);
    gone.resolution = Some(crate::incident::Resolution::Removed);
    let v = h.removed(vec![gone.clone()]);
    assert!(
        matches!(&v[..], [Verdict::Held { until: None, .. }]),
        "{v:?}"
    );
    let v = h.removed(vec![gone]);
    assert!(
        matches!(
            &v[..],
            [Verdict::Deliver {
                after_silence: false,
                ..
            }]
        ),
        "{v:?}"
    );
}

#[test]
fn a_held_incident_outlives_a_restart_and_a_stale_entry_is_dropped() {
    let mut h = hold(Some("g"));
    let open = Some(("i1", Kind::NotRunning));
    opened_inside(&mut h, "i1", Kind::NotRunning, open);
    let saved = h.saved();
    let text = serde_json::to_string(&saved).unwrap();
    assert_eq!(text, r#"{"g":{"incident_id":"i1","announced":false}}"#);
    let mut again = Hold::with_saved(serde_json::from_str(&text).unwrap());
    assert_eq!(
        look(&mut again, 300, false, vec![], open),
        ["Opened not_running i1 after silence"]
    );
    // The tracker's incident is another (its file was lost): forgotten.
    let mut again = Hold::with_saved(saved);
    assert_eq!(
        look(
            &mut again,
            300,
            false,
            vec![],
            Some(("i9", Kind::NotRunning))
        ),
        Vec::<String>::new()
    );
    assert_eq!(again.len(), 0);
}
