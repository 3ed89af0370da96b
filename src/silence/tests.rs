use super::*;

fn at(text: &str) -> SystemTime {
    parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"))
}

fn silence(game: Option<&str>, from: &str, to: &str) -> Silence {
    Silence {
        id: "0193f000-0000-7000-8000-000000000000".into(),
        game_id: game.map(str::to_owned),
        starts_at: at(from),
        ends_at: at(to),
        created_by: "ops".into(),
        comment: String::new(),
    }
}

#[test]
fn rfc3339_times_are_read_with_their_offsets() {
    let t = at("2026-11-26T21:00:00.1234567891Z");
    assert_eq!(
        t.duration_since(UNIX_EPOCH).unwrap().subsec_nanos(),
        123_456_789
    );
    assert_eq!(
        rfc3339(at("2026-11-26T22:00:00+01:00")),
        "2026-11-26T21:00:00Z"
    );
    assert_eq!(
        rfc3339(at("2026-11-26T21:00:00.5Z")),
        "2026-11-26T21:00:00.500000Z"
    );
}

#[test]
fn a_silence_lasts_a_positive_time_of_at_most_a_year() {
    let now = at("2026-11-26T21:00:00Z");
    let ends = |e: Ends| window(&e, now).map(|(s, e)| (rfc3339(s), rfc3339(e)));
    assert_eq!(
        ends(Ends::For("90m".into())),
        Ok(("2026-11-26T21:00:00Z".into(), "2026-11-26T22:30:00Z".into()))
    );
    assert_eq!(
        ends(Ends::For("365d".into())).map(|(_, e)| e),
        Ok("2027-11-26T21:00:00Z".into())
    );
    assert_eq!(
        ends(Ends::Until("2026-11-26T23:00:00+01:00".into())).map(|(_, e)| e),
        Ok("2026-11-26T22:00:00Z".into())
    );
    let refused: &[(Ends, &str)] = &[
        (
            Ends::For("-5m".into()),
            "invalid --for \"-5m\": expected a positive duration",
        ),
        (
            Ends::For("0s".into()),
            "invalid --for \"0s\": must be greater than zero",
        ),
        (
            Ends::For("366d".into()),
            "invalid --for \"366d\": must be at most a year",
        ),
        (Ends::For("1.5h".into()), "invalid --for \"1.5h\""),
        (Ends::For("h".into()), "invalid --for \"h\""),
        (Ends::For("5".into()), "invalid --for \"5\""),
        (Ends::For("99999999999999999999d".into()), "invalid --for"),
        (
            Ends::Until("2026-11-26T20:59:59Z".into()),
            "invalid --until \"2026-11-26T20:59:59Z\": is not in the future (it is now 2026-11-26T21:00:00Z)",
        ),
        (
            Ends::Until("2026-11-26T21:00:00Z".into()),
            "is not in the future",
        ),
        (
            Ends::Until("2027-11-27T21:00:00Z".into()),
            "is more than a year",
        ),
        (
            Ends::Until("tomorrow".into()),
            "invalid --until \"tomorrow\": expected an RFC 3339 time",
        ),
    ];
    for (input, want) in refused {
        let got = window(input, now).unwrap_err().message;
        assert!(got.contains(want), "{input:?}: {got}");
    }
    // A value of megabytes is named, not printed whole.
    let long = "9".repeat(100_000);
    let got = window(&Ends::For(long), now).unwrap_err().message;
    assert!(got.len() < 400 && got.contains("(100000 bytes)"), "{got}");
}

#[test]
fn games_and_comments_are_checked_by_name() {
    assert!(check_game("g-42").is_ok());
    assert!(check_game(&"g".repeat(256)).is_ok());
    for (game, want) in [
        ("", "invalid --game \"\": must not be empty"),
        ("a\nb", "control characters"),
        (&*"g".repeat(257), "longer than 256 bytes"),
    ] {
        let got = check_game(game).unwrap_err().message;
        assert!(got.contains(want), "{game:?}: {got}");
    }
    assert!(check_comment("deploy 1.2.3 by ci").is_ok());
    assert!(check_comment("").is_ok());
    assert!(check_comment("a\u{1b}[31m").is_err());
    assert!(check_comment(&"c".repeat(1025)).is_err());
    assert_eq!(
        parse_id("0193F000-0000-7000-8000-00000000000A").as_deref(),
        Some("0193f000-0000-7000-8000-00000000000a")
    );
    assert_eq!(parse_id("nope"), None);
}

#[test]
fn silences_cover_their_game_or_every_game_within_their_window() {
    let list = [
        silence(Some("g-1"), "2026-11-26T21:00:00Z", "2026-11-26T22:00:00Z"),
        silence(None, "2026-11-26T23:00:00Z", "2026-11-26T23:30:00Z"),
        silence(Some("g-2"), "2026-11-26T20:00:00Z", "2026-11-26T20:30:00Z"),
        // Ends before it starts: nothing.
        silence(Some("g-3"), "2026-11-26T21:00:00Z", "2026-11-26T20:00:00Z"),
    ];
    let now = at("2026-11-26T20:45:00Z");
    let s = Silences::new(&list, now);
    let covers = |game: &str, t: &str| s.covers(game, at(t));
    assert!(!covers("g-1", "2026-11-26T20:59:59Z"));
    assert!(covers("g-1", "2026-11-26T21:00:00Z"));
    assert!(
        !covers("g-1", "2026-11-26T22:00:00Z"),
        "the end is excluded"
    );
    assert!(!covers("g-2", "2026-11-26T20:10:00Z"), "ended when taken");
    assert!(!covers("g-3", "2026-11-26T20:50:00Z"));
    assert!(covers("g-9", "2026-11-26T23:10:00Z"), "every game");
    assert_eq!(s.earliest_end(), Some(at("2026-11-26T22:00:00Z")));
    assert_eq!(
        s.covered_until("g-1", at("2026-11-26T21:30:00Z")),
        Some(at("2026-11-26T22:00:00Z"))
    );
    assert_eq!(s.covered_until("g-1", at("2026-11-26T22:30:00Z")), None);
    assert!(list[0].covers("g-1", at("2026-11-26T21:00:00Z")));
    assert!(!list[0].covers("g-2", at("2026-11-26T21:00:00Z")));
    assert!(Silences::new(&list, at("2026-11-27T00:00:00Z")).is_empty());
}

#[test]
fn thousands_of_silences_are_indexed_by_game() {
    let list: Vec<Silence> = (0..5000)
        .map(|i| {
            silence(
                Some(&format!("g-{i}")),
                "2026-11-26T21:00:00Z",
                "2026-11-26T22:00:00Z",
            )
        })
        .collect();
    let s = Silences::new(&list, at("2026-11-26T21:00:00Z"));
    assert!(s.covers("g-4999", at("2026-11-26T21:30:00Z")));
    assert!(!s.covers("g-5000", at("2026-11-26T21:30:00Z")));
}
