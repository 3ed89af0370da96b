use super::*;

use EndReason::*;
use Happened::{Destroy, Die, Kill, Restart, Start, Stop};

/// The `oom` action (`Oom` alone is the reason).
const OOM: Happened<'static> = Happened::Oom;

const C: &str = "c1";

/// One step of a table: an event, or a look, a number of seconds in.
#[derive(Clone, Copy)]
enum Step {
    E(f64, Happened<'static>),
    L(f64, Look<'static>),
}
use Step::*;

fn die(code: i64) -> Happened<'static> {
    Die {
        exit_code: Some(code),
    }
}

fn kill(signal: &'static str) -> Happened<'static> {
    Kill {
        signal: Some(signal),
    }
}

const PODMAN_KILL: Happened<'static> = Kill { signal: None };

fn look(status: &'static str, policy: &'static str) -> Look<'static> {
    Look {
        status,
        restart_policy: Some(policy),
        oom_killed: false,
        exit_code: None,
        start_failed: false,
    }
}

/// Runs `steps` through a fresh classifier: the end each step told (an
/// event's new end, a look's end as it stands), and the last end.
fn run(steps: &[Step]) -> (Vec<Option<EndReason>>, Option<EndReason>) {
    let t0 = Instant::now();
    let at = |s: f64| t0 + Duration::from_secs_f64(s);
    let mut endings = Endings::new(false);
    let told = steps
        .iter()
        .map(|step| match *step {
            E(s, h) => endings.event(C, h, at(s)),
            L(s, l) => endings.look(C, l, at(s)),
        })
        .collect();
    (told, endings.reason(C))
}

fn last(steps: &[Step]) -> Option<EndReason> {
    run(steps).1
}

fn crashed(exit_code: i64) -> EndReason {
    Crashed { exit_code }
}

#[test]
fn docker_20_10_sequences_classify_as_checked() {
    let table: &[(&str, &[Step], Option<EndReason>)] = &[
        (
            "docker stop, TERM ignored",
            &[
                E(0.0, Start),
                E(1.0, kill("15")),
                E(11.0, kill("9")),
                E(11.0, die(137)),
                E(11.0, Stop),
            ],
            Some(Stopped),
        ),
        (
            "docker stop, stop before die (moby#50220)",
            &[
                E(0.0, Start),
                E(1.0, kill("15")),
                E(1.1, Stop),
                E(1.1, die(143)),
            ],
            Some(Stopped),
        ),
        (
            "docker stop, game exits 0 on TERM",
            &[
                E(0.0, Start),
                E(1.0, kill("15")),
                E(1.1, die(0)),
                E(1.1, Stop),
            ],
            Some(Stopped),
        ),
        (
            "docker rm -f",
            &[
                E(0.0, Start),
                E(1.0, kill("9")),
                E(1.0, die(137)),
                E(1.0, Destroy),
            ],
            Some(Stopped),
        ),
        (
            "docker kill",
            &[E(0.0, Start), E(1.0, kill("9")), E(1.0, die(137))],
            Some(Stopped),
        ),
        (
            "docker kill -s USR1 survived",
            &[E(0.0, Start), E(1.0, kill("10"))],
            None,
        ),
        (
            "docker kill -s USR1 survived, then a crash",
            &[E(0.0, Start), E(1.0, kill("10")), E(9.0, die(3))],
            Some(crashed(3)),
        ),
        (
            "docker kill -s USR1 survived, then a host kill -9",
            &[E(0.0, Start), E(1.0, kill("10")), E(9.0, die(137))],
            Some(crashed(137)),
        ),
        (
            "docker kill -s USR1 that ended the game",
            &[E(0.0, Start), E(1.0, kill("10")), E(1.0, die(138))],
            Some(Stopped),
        ),
        (
            "docker kill -s HUP then TERM: the stronger ask stands",
            &[
                E(0.0, Start),
                E(1.0, kill("1")),
                E(2.0, kill("15")),
                E(2.0, die(0)),
            ],
            Some(Stopped),
        ),
        (
            "docker restart",
            &[
                E(0.0, Start),
                E(1.0, kill("15")),
                E(11.0, kill("9")),
                E(11.0, die(137)),
                E(11.0, Stop),
                E(11.1, Start),
                E(11.1, Restart { podman: false }),
            ],
            Some(Stopped),
        ),
        (
            "compose --force-recreate, the old container",
            &[
                E(0.0, Start),
                E(1.0, kill("15")),
                E(1.1, die(143)),
                E(1.1, Stop),
                E(1.3, Destroy),
            ],
            Some(Stopped),
        ),
        (
            "exits 3 by itself",
            &[E(0.0, Start), E(5.0, die(3))],
            Some(crashed(3)),
        ),
        (
            "exits 0 by itself",
            &[E(0.0, Start), E(5.0, die(0))],
            Some(Exited),
        ),
        (
            "host kill -9 of its process",
            &[E(0.0, Start), E(5.0, die(137))],
            Some(crashed(137)),
        ),
        (
            "OOM kill, several oom",
            &[E(0.0, Start), E(5.0, OOM), E(5.0, OOM), E(5.0, die(137))],
            Some(Oom),
        ),
        (
            "an OOM kill of a child, then a docker stop: the stop",
            &[
                E(0.0, Start),
                E(5.0, OOM),
                E(9.0, kill("15")),
                E(9.0, die(143)),
                E(9.0, Stop),
            ],
            Some(Stopped),
        ),
        (
            "a kill of an earlier run is forgotten at the start",
            &[
                E(0.0, Start),
                E(1.0, kill("15")),
                E(1.0, die(143)),
                E(1.0, Stop),
                E(2.0, Start),
                E(9.0, die(1)),
            ],
            Some(crashed(1)),
        ),
        (
            "an oom of an earlier run is forgotten at the start",
            &[
                E(0.0, Start),
                E(1.0, OOM),
                E(1.0, die(137)),
                E(2.0, Start),
                E(9.0, die(2)),
            ],
            Some(crashed(2)),
        ),
        (
            "restart policy loop",
            &[
                E(0.0, Start),
                E(1.0, die(1)),
                E(1.1, Start),
                E(2.1, die(1)),
                E(2.3, Start),
                E(3.3, die(1)),
            ],
            Some(crashed(1)),
        ),
        (
            "docker stop in the back-off: a lone stop",
            &[E(0.0, Start), E(1.0, die(1)), E(1.05, Stop)],
            Some(Stopped),
        ),
        (
            "docker rm -f in the back-off: a lone destroy",
            &[E(0.0, Start), E(1.0, die(1)), E(1.05, Destroy)],
            Some(Stopped),
        ),
        (
            "docker restart in the back-off: stop start restart",
            &[
                E(0.0, Start),
                E(1.0, die(1)),
                E(1.05, Stop),
                E(1.06, Start),
                E(1.06, Restart { podman: false }),
            ],
            Some(Stopped),
        ),
        (
            "docker kill in the back-off sends nothing: still the crash",
            &[E(0.0, Start), E(1.0, die(1))],
            Some(crashed(1)),
        ),
        (
            "a replayed die after a late stop changes nothing",
            &[
                E(0.0, Start),
                E(1.0, die(137)),
                E(1.0, Stop),
                E(1.0, die(137)),
            ],
            Some(Stopped),
        ),
    ];
    for (name, steps, want) in table {
        assert_eq!(last(steps), *want, "{name}");
    }
}

#[test]
fn podman_4_3_sequences_classify_as_checked() {
    let podman_restart = Restart { podman: true };
    let table: &[(&str, &[Step], Option<EndReason>)] = &[
        (
            "podman stop sends no kill and no stop: a kill from the host",
            &[E(0.0, Start), E(1.0, die(137))],
            Some(crashed(137)),
        ),
        (
            "podman rm -f: die, then remove",
            &[E(0.0, Start), E(1.0, die(137)), E(1.1, Destroy)],
            Some(Stopped),
        ),
        (
            "podman kill: a kill with no signal, then die",
            &[E(0.0, Start), E(1.0, PODMAN_KILL), E(1.0, die(137))],
            Some(Stopped),
        ),
        (
            "podman kill -s USR1 survived",
            &[E(0.0, Start), E(1.0, PODMAN_KILL)],
            None,
        ),
        (
            "podman kill -s USR1 survived, then a crash",
            &[E(0.0, Start), E(1.0, PODMAN_KILL), E(5.0, die(3))],
            Some(crashed(3)),
        ),
        (
            "podman restart: restart before the die",
            &[
                E(0.0, Start),
                E(1.0, podman_restart),
                E(1.0, die(137)),
                E(1.2, Start),
            ],
            Some(Stopped),
        ),
        (
            "restart policy loop: restart after each die marks nothing",
            &[
                E(0.0, Start),
                E(1.0, die(5)),
                E(1.0, podman_restart),
                E(1.1, Start),
                E(2.0, die(5)),
                E(2.0, podman_restart),
            ],
            Some(crashed(5)),
        ),
        (
            "exits 3 by itself",
            &[E(0.0, Start), E(1.0, die(3))],
            Some(crashed(3)),
        ),
        (
            "exits 0 by itself",
            &[E(0.0, Start), E(1.0, die(0))],
            Some(Exited),
        ),
    ];
    for (name, steps, want) in table {
        assert_eq!(last(steps), *want, "{name}");
    }
}

#[test]
fn the_end_is_told_when_made_and_when_the_operator_takes_over() {
    let (told, _) = run(&[
        E(0.0, Start),
        E(1.0, kill("15")),
        E(1.0, die(143)),
        E(1.0, Stop),
    ]);
    assert_eq!(told, [None, None, Some(Stopped), None]);
    let (told, _) = run(&[E(0.0, Start), E(1.0, die(1)), E(1.05, Stop), E(1.06, Start)]);
    assert_eq!(told, [None, Some(crashed(1)), Some(Stopped), None]);
    // Podman's remove after its die: the crash first, then the stop.
    let (told, _) = run(&[E(0.0, Start), E(1.0, die(137)), E(1.1, Destroy)]);
    assert_eq!(told, [None, Some(crashed(137)), Some(Stopped)]);
}

#[test]
fn without_events_the_restart_policy_says_what_it_can() {
    let exited = |policy| L(0.0, look("exited", policy));
    for (policy, want) in [
        ("always", Stopped),
        ("unless-stopped", Stopped),
        ("no", Unknown),
        ("on-failure", Unknown),
        ("", Unknown),
    ] {
        assert_eq!(last(&[exited(policy)]), Some(want), "{policy}");
    }
    // Restarting is a restart under way, and running never ended.
    assert_eq!(last(&[L(0.0, look("restarting", "always"))]), None);
    assert_eq!(last(&[L(0.0, look("running", "always"))]), None);
    // OOMKilled in the inspect.
    let oom = Look {
        oom_killed: true,
        ..look("exited", "no")
    };
    assert_eq!(last(&[L(0.0, oom)]), Some(Oom));
}

#[test]
fn docker_kill_in_the_back_off_is_found_by_the_look_once_settled() {
    let exited = look("exited", "always");
    // A look within LOOK_SETTLE of the die keeps the crash (Podman shows
    // its loop's container exited for a moment); a later one knows.
    let (told, end) = run(&[
        E(0.0, Start),
        E(1.0, die(1)),
        L(1.5, exited),
        L(3.5, exited),
    ]);
    assert_eq!(
        told,
        [None, Some(crashed(1)), Some(crashed(1)), Some(Stopped)]
    );
    assert_eq!(end, Some(Stopped));
    // A restart policy that restarts only failures says nothing.
    let no = look("exited", "on-failure");
    assert_eq!(
        last(&[E(0.0, Start), E(1.0, die(1)), L(9.0, no)]),
        Some(crashed(1))
    );
}

#[test]
fn a_look_adds_the_oom_the_events_did_not_tell() {
    let oom = Look {
        oom_killed: true,
        ..look("exited", "no")
    };
    assert_eq!(
        last(&[E(0.0, Start), E(1.0, die(137)), L(1.0, oom)]),
        Some(Oom)
    );
    // But never over an end asked through the API.
    assert_eq!(
        last(&[
            E(0.0, Start),
            E(1.0, kill("9")),
            E(1.0, die(137)),
            L(1.0, oom)
        ]),
        Some(Stopped)
    );
}

#[test]
fn a_start_the_stream_did_not_bring_is_seen_by_a_look() {
    let steps = [
        E(0.0, Start),
        E(1.0, kill("15")),
        E(1.0, die(143)),
        // Started again while the stream was away: the look sees it run.
        L(5.0, look("running", "no")),
        E(9.0, die(2)),
    ];
    assert_eq!(last(&steps), Some(crashed(2)));
}

#[test]
fn a_look_before_its_die_is_bettered_by_the_die() {
    let steps = [
        E(0.0, Start),
        E(1.0, kill("9")),
        L(1.0, look("exited", "no")),
        E(1.0, die(137)),
    ];
    let (told, end) = run(&steps);
    assert_eq!(told[2], Some(Unknown));
    assert_eq!(end, Some(Stopped));
}

#[test]
fn crashed_carries_its_signal() {
    assert_eq!(crashed(137).signal(), Some("KILL"));
    assert_eq!(crashed(143).signal(), Some("TERM"));
    assert_eq!(crashed(139).signal(), Some("SEGV"));
    assert_eq!(crashed(3).signal(), None);
    assert_eq!(crashed(128).signal(), None);
    assert_eq!(crashed(255).signal(), None);
    assert_eq!(crashed(-1).signal(), None);
    assert_eq!(Stopped.signal(), None);
    assert_eq!(crashed(3).exit_code(), Some(3));
    assert_eq!(Exited.exit_code(), Some(0));
    for (text, n) in [("9", 9), ("SIGTERM", 15), ("term", 15), ("USR1", 10)] {
        assert_eq!(signal_number(text), Some(n), "{text}");
    }
    assert_eq!(signal_number("SIGNOPE"), None);
    // A kill whose signal cannot be read is taken as Podman's: said none.
    assert_eq!(
        last(&[E(0.0, Start), E(1.0, kill("bogus")), E(1.0, die(137))]),
        Some(Stopped)
    );
}

#[test]
fn containers_are_bounded() {
    let t0 = Instant::now();
    let mut endings = Endings::new(false);
    for i in 0..MAX_CONTAINERS + 10 {
        let at = t0 + Duration::from_millis(i as u64);
        endings.event(&format!("c{i}"), die(1), at);
    }
    assert_eq!(endings.containers.len(), MAX_CONTAINERS);
    // The oldest went first.
    assert_eq!(endings.reason("c0"), None);
    assert_eq!(
        endings.reason(&format!("c{}", MAX_CONTAINERS + 9)),
        Some(crashed(1))
    );
}

#[test]
fn with_events_a_look_before_the_die_settles_until_the_die_or_a_while() {
    let t0 = Instant::now();
    let at = |s: f64| t0 + Duration::from_secs_f64(s);
    let mut endings = Endings::new(true);
    endings.event(C, Start, at(0.0));
    endings.event(C, kill("15"), at(1.0));
    assert_eq!(
        endings.look(C, look("exited", "no"), at(1.1)),
        Some(Unknown)
    );
    assert!(endings.settling(C, at(1.1)));
    assert!(endings.settling(C, at(5.9)), "another look changes nothing");
    endings.look(C, look("exited", "no"), at(2.0));
    assert!(endings.settling(C, at(5.9)));
    assert!(!endings.settling(C, at(6.1)));
    // The die comes: it tells, and nothing waits any longer.
    assert_eq!(endings.event(C, die(143), at(1.2)), Some(Stopped));
    assert!(!endings.settling(C, at(1.2)));
    // A die that never comes (a stream that lost it): the look's word,
    // once settled.
    let mut endings = Endings::new(true);
    endings.look(C, look("exited", "always"), at(0.0));
    assert!(endings.settling(C, at(4.9)));
    assert!(!endings.settling(C, at(5.0)));
    assert_eq!(endings.reason(C), Some(Stopped));
    // Without events there is nothing to wait for.
    let mut endings = Endings::new(false);
    endings.look(C, look("exited", "no"), at(0.0));
    assert!(!endings.settling(C, at(0.0)));
    // A container that runs is not settling.
    let mut endings = Endings::new(true);
    endings.look(C, look("running", "no"), at(0.0));
    assert!(!endings.settling(C, at(0.0)));
}

#[test]
fn a_container_being_removed_settles_for_a_while() {
    // `docker rm -f` of a game, its replacement started seconds later: a
    // look between the two finds the old one `removing`, which no one
    // should be paged for.
    let t0 = Instant::now();
    let at = |s: f64| t0 + Duration::from_secs_f64(s);
    for events in [false, true] {
        let mut endings = Endings::new(events);
        endings.look(C, look("running", "always"), at(0.0));
        assert!(!endings.settling(C, at(0.0)));
        endings.look(C, look("removing", "always"), at(1.0));
        assert!(endings.settling(C, at(30.9)), "events {events}");
        assert!(!endings.settling(C, at(31.0)), "still removing: judged");
    }
}

#[test]
fn a_container_created_and_not_yet_started_settles_for_a_while() {
    let t0 = Instant::now();
    let at = |s: f64| t0 + Duration::from_secs_f64(s);
    for events in [false, true] {
        let mut endings = Endings::new(events);
        endings.look(C, look("created", "no"), at(0.0));
        assert!(endings.settling(C, at(29.0)));
        endings.look(C, look("created", "no"), at(29.0));
        assert!(!endings.settling(C, at(30.0)), "still created: judged");
        // Started: a run like any other.
        endings.look(C, look("running", "no"), at(31.0));
        assert!(!endings.settling(C, at(31.0)));
        assert_eq!(endings.reason(C), None);
    }
    // One Docker could not start waits for nothing.
    let mut endings = Endings::new(true);
    let failed = Look {
        start_failed: true,
        ..look("created", "no")
    };
    endings.look(C, failed, at(0.0));
    assert!(!endings.settling(C, at(0.0)));
}
