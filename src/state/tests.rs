//! The state directory's unit tests: round trips, bounds, set-asides.

use super::rejected::*;
use super::spool::*;
use super::*;
use crate::event::HealthEvent;
use crate::event::stopped_event as event;

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rtinspect-state-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

#[test]
fn spool_round_trips_byte_for_byte_and_empties() {
    let dir = temp("spool");
    let s = StateDir::open(&dir.join("nested")).unwrap();
    assert!(s.load_spool("stdout").unwrap().events.is_empty());
    let events = vec![event("a"), event("b")];
    s.save_spool("stdout", &events).unwrap();
    assert_eq!(s.load_spool("stdout").unwrap().events, events);
    s.save_spool("stdout", &[]).unwrap();
    assert!(!s.path().join(spool_file("stdout")).exists());
    assert!(s.load_spool("stdout").unwrap().events.is_empty());
    let leftovers: Vec<_> = fs::read_dir(s.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn spool_lines_that_do_not_parse_are_set_aside_once_in_one_write() {
    let dir = temp("corrupt");
    let s = StateDir::open(&dir).unwrap();
    let good = event("ok");
    let mut bytes = format!("{}\n{{\"half\n\u{0}garbage\n", good.envelope().as_str()).into_bytes();
    bytes.extend_from_slice(b"\xff\xfe\n\n");
    bytes.extend(std::iter::repeat_n(b'x', SPOOL_LINE_LIMIT + 10));
    bytes.push(b'\n');
    fs::write(dir.join(spool_file("stdout")), bytes).unwrap();
    let loaded = s.load_spool("stdout").unwrap();
    assert_eq!(loaded.events, vec![good.clone()]);
    assert_eq!((loaded.bad, loaded.over_limit), (4, 0));
    let rejected = fs::read_to_string(dir.join(REJECTED)).unwrap();
    let reasons: Vec<String> = rejected
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["reason"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(reasons.len(), 4);
    assert!(reasons[0].starts_with("spool line 2: "), "{reasons:?}");
    assert!(
        reasons[3].starts_with("spool line 6: over 65536 bytes"),
        "{reasons:?}"
    );
    // The spool was rewritten: the next start sets nothing aside again.
    let again = s.load_spool("stdout").unwrap();
    assert_eq!((again.events, again.bad), (vec![good], 0));
    assert_eq!(fs::read_to_string(dir.join(REJECTED)).unwrap(), rejected);
    fs::remove_dir_all(&dir).unwrap();
}

/// Taken by the tests that measure the process's peak resident set:
/// the peak is the whole process's, and another such test's large
/// buffers must not fall inside one's window.
fn measuring_memory() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The process's peak resident set, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn a_200_mb_spool_line_is_set_aside_without_being_held_in_memory() {
    let _one = measuring_memory();
    let dir = temp("long-line");
    let s = StateDir::open(&dir).unwrap();
    let good = event("ok");
    // good, 200 MB without a newline (a sparse run of NULs), good. Under
    // the unit's MemoryMax=64M, holding that line is an OOM kill at every start.
    let path = dir.join(spool_file("stdout"));
    let mut f = File::create(&path).unwrap();
    writeln!(f, "{}", good.envelope().as_str()).unwrap();
    let at = f.stream_position().unwrap();
    f.set_len(at + 200_000_000).unwrap();
    f.seek(io::SeekFrom::End(0)).unwrap();
    writeln!(f, "\n{}", good.envelope().as_str()).unwrap();
    drop(f);
    let before = peak_rss();
    let loaded = s.load_spool("stdout").unwrap();
    let grew = peak_rss().saturating_sub(before);
    assert_eq!(loaded.events, vec![good.clone(), good]);
    assert_eq!(loaded.bad, 1);
    assert!(
        grew < 64 << 20,
        "the peak resident set grew by {} MiB",
        grew >> 20
    );
    let rejected = fs::read_to_string(dir.join(REJECTED)).unwrap();
    assert_eq!(rejected.lines().count(), 1, "{rejected}");
    assert!(rejected.len() < 2048, "only the start of the line is kept");
    assert!(rejected.contains("spool line 2: over 65536 bytes"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_spool_of_60_mb_of_bad_lines_is_set_aside_in_bounded_batches() {
    let _one = measuring_memory();
    let dir = temp("bad-lines");
    let s = StateDir::open(&dir).unwrap();
    let bad = format!("{{{}\n", "y".repeat(60_000));
    fs::write(dir.join(spool_file("stdout")), bad.repeat(1000)).unwrap();
    let before = peak_rss();
    let loaded = s.load_spool("stdout").unwrap();
    let grew = peak_rss().saturating_sub(before);
    assert_eq!((loaded.bad, loaded.events.len()), (1000, 0));
    assert!(
        grew < 32 << 20,
        "the peak resident set grew by {} MiB",
        grew >> 20
    );
    let (current, old) = (
        reasons_in(&dir.join(REJECTED)),
        reasons_in(&dir.join(REJECTED_OLD)),
    );
    assert_eq!(
        loaded.rejected_dropped as usize + old.len() + current.len(),
        1000,
        "every line is set aside or counted as dropped"
    );
    assert_eq!(
        current.last().unwrap(),
        "spool line 1000: key must be a string at line 1 column 2"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_spool_over_its_limit_keeps_the_newest_events() {
    let dir = temp("limit");
    let s = StateDir::open(&dir).unwrap();
    let events: Vec<HealthEvent> = (0..SPOOL_LIMIT + 3)
        .map(|i| event(&format!("g-{i}")))
        .collect();
    s.save_spool("stdout", &events).unwrap();
    let loaded = s.load_spool("stdout").unwrap();
    assert_eq!(loaded.over_limit, 3);
    assert_eq!(loaded.events.len(), SPOOL_LIMIT);
    assert_eq!(
        loaded.events[0].game_id, "g-3",
        "the oldest three set aside"
    );
    let rejected = fs::read_to_string(dir.join(REJECTED)).unwrap();
    assert_eq!(rejected.lines().count(), 3);
    assert!(rejected.contains("\"game_id\":\"g-0\""));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_old_spool_is_read_apart_and_other_sinks_spools_are_found() {
    let dir = temp("old-spool");
    let s = StateDir::open(&dir).unwrap();
    let old: Vec<HealthEvent> = ["o-1", "o-2"].iter().map(|g| event(g)).collect();
    let mut text: String = old
        .iter()
        .map(|e| format!("{}\n", e.envelope().as_str()))
        .collect();
    text.push_str("not json\n");
    fs::write(dir.join(OLD_SPOOL), text).unwrap();
    s.save_spool("postgres", &[event("p-1")]).unwrap();
    s.save_spool("webhook", &[event("w-1"), event("w-2")])
        .unwrap();
    // A sink's spool is its own.
    let games =
        |l: &LoadedSpool| -> Vec<String> { l.events.iter().map(|e| e.game_id.clone()).collect() };
    assert_eq!(games(&s.load_spool("postgres").unwrap()), ["p-1"]);
    assert!(s.load_spool("stdout").unwrap().events.is_empty());
    let loaded = s.load_old_spool().unwrap();
    assert_eq!(games(&loaded), ["o-1", "o-2"]);
    assert_eq!(loaded.bad, 1);
    let rejected = fs::read_to_string(dir.join(REJECTED)).unwrap();
    let line: serde_json::Value = serde_json::from_str(rejected.trim()).unwrap();
    assert_eq!(line["sink"], "spool.jsonl");
    assert_eq!(line["envelope"], "not json");
    assert!(
        dir.join(OLD_SPOOL).exists(),
        "until its events are saved elsewhere"
    );
    s.remove_old_spool().unwrap();
    s.remove_old_spool().unwrap();
    assert!(!dir.join(OLD_SPOOL).exists());
    fs::create_dir(dir.join("spool.kafka.jsonl")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        dir.join("spool.old.jsonl"),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let others = s.other_spools(&["postgres", "stdout"]).unwrap();
    let size = fs::metadata(dir.join("spool.webhook.jsonl")).unwrap().len();
    assert_eq!(others, [(dir.join("spool.webhook.jsonl"), size)]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rejected_events_are_appended_with_their_reason() {
    let dir = temp("rejected");
    let s = StateDir::open(&dir).unwrap();
    let e = event("bad");
    s.append_rejected_events("stdout", &[e], "payload string too long")
        .unwrap();
    s.append_rejected_lines(&[rejected_line(
        "stdout",
        "{not json",
        "line 2: expected value",
    )])
    .unwrap();
    let text = fs::read_to_string(dir.join(REJECTED)).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["reason"], "payload string too long");
    assert_eq!(lines[0]["envelope"]["game_id"], "bad");
    assert_eq!(lines[1]["envelope"], "{not json");
    fs::remove_dir_all(&dir).unwrap();
}

/// The reasons of the lines of a `rejected.jsonl`, in order.
fn reasons_in(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["reason"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn rejected_jsonl_rotates_at_10_mib_keeping_one_old_file() {
    let dir = temp("rotate");
    let s = StateDir::open(&dir).unwrap();
    // A receiver refusing everything, with events of 1 MiB to get there fast.
    let envelope = "x".repeat(1 << 20);
    let mut dropped = 0;
    for i in 0..25 {
        dropped += s
            .append_rejected_lines(&[rejected_line("stdout", &envelope, &format!("r{i}"))])
            .unwrap()
            .dropped;
    }
    let (current, old) = (dir.join(REJECTED), dir.join("rejected.jsonl.1"));
    for path in [&current, &old] {
        let len = fs::metadata(path).unwrap().len();
        assert!(len <= 10 << 20, "{}: {len} bytes", path.display());
    }
    assert!(!dir.join("rejected.jsonl.2").exists());
    let (current, old) = (reasons_in(&current), reasons_in(&old));
    assert_eq!(current.last().unwrap(), "r24", "the newest is kept");
    let kept: Vec<String> = old.iter().chain(&current).cloned().collect();
    let first = 25 - kept.len();
    let want: Vec<String> = (first..25).map(|i| format!("r{i}")).collect();
    assert_eq!(kept, want, "the oldest go first, none in between");
    assert_eq!(dropped as usize, first, "every dropped one is counted");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_owner_is_refused_naming_the_holder() {
    let dir = temp("lock");
    let first = StateDir::open(&dir).unwrap();
    let err = StateDir::open(&dir).unwrap_err();
    assert!(
        matches!(err, OpenError::Locked { holder: Some(pid), .. } if pid == std::process::id()),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("in use by another rtinspect (pid "),
        "{err}"
    );
    drop(first);
    StateDir::open(&dir).expect("the lock goes with its owner");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn baselines_round_trip_and_corrupt_ones_start_empty() {
    let dir = temp("baselines");
    let s = StateDir::open(&dir).unwrap();
    assert!(s.load_baselines().unwrap().is_empty());
    let mut b = HashMap::new();
    b.insert(
        "g-1".to_string(),
        Baseline {
            container_id: "f".repeat(64),
            restart_count: 7,
        },
    );
    s.save_baselines(&b).unwrap();
    assert_eq!(s.load_baselines().unwrap(), b);
    fs::write(dir.join(BASELINES), b"{\"version\":1,\"baselines\":{\"g\":").unwrap();
    assert!(s.load_baselines().unwrap().is_empty());
    assert!(!dir.join(BASELINES).exists(), "moved aside");
    fs::remove_dir_all(&dir).unwrap();
}

/// The names of the files in `dir` that start with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn incidents_round_trip_and_bad_files_are_set_aside() {
    use crate::incident::{Look, Policy, Stamp, Tracker};
    use std::time::{Duration, Instant, UNIX_EPOCH};

    let dir = temp("incidents");
    let s = StateDir::open(&dir).unwrap();
    assert!(s.load_incidents().unwrap().0.is_empty());
    let mut tracker = Tracker::new(Policy::default());
    let at = Stamp {
        wall: UNIX_EPOCH + Duration::from_secs(1_750_000_000),
        mono: Instant::now(),
    };
    let opened = tracker.look(&Look {
        game_id: "g-1",
        container_id: &"f".repeat(64),
        restart_count: 2,
        status: "exited",
        health: "",
        started_at: None,
        end: None,
        settling: false,
        at,
    });
    tracker.oom("g-2", at.mono);
    s.save_incidents_held(&tracker.saved(at), &Default::default())
        .unwrap();
    assert_eq!(s.load_incidents().unwrap().0, tracker.saved(at));
    let text = fs::read_to_string(dir.join(INCIDENTS)).unwrap();
    assert!(text.starts_with("{\"version\":1,"), "{text}");
    assert!(text.contains(&opened[0].incident_id), "{text}");
    assert!(files_starting(&dir, ".incidents.json").is_empty());

    // (contents, why it is set aside)
    let table: &[(&[u8], &str)] = &[
        (
            b"{\"version\":1,\"incidents\":{\"games\":{\"g\":",
            "truncated",
        ),
        (b"{\"version\":2,\"incidents\":[]}", "a later version"),
        (b"\xff\xfe", "not UTF-8"),
        (
            b"{\"version\":1,\"incidents\":{\"games\":{\"g\":{\"incident\":{\"id\":\"x\",\
              \"kind\":\"on_fire\",\"started_at_ms\":0,\"oom\":false}}}}}",
            "an unknown kind",
        ),
    ];
    for (bytes, why) in table {
        fs::write(dir.join(INCIDENTS), bytes).unwrap();
        assert!(s.load_incidents().unwrap().0.is_empty(), "{why}");
        assert!(!dir.join(INCIDENTS).exists(), "{why}: moved aside");
        let aside = files_starting(&dir, "incidents.json.corrupt-");
        assert_eq!(aside.len(), 1, "{why}: {aside:?}");
        for name in aside {
            fs::remove_file(dir.join(name)).unwrap();
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_directory_is_an_error_naming_it() {
    let err = StateDir::open(Path::new("/proc/rtinspect-state")).unwrap_err();
    assert!(
        err.to_string().starts_with("/proc/rtinspect-state"),
        "{err}"
    );
}
