//! What one sink takes, as plain values: facts, incidents or both
//! ([`Report`], `--report` or a notification URL's `report=`), the least
//! severe kind it is told of (`min=`), and which games (`games=`, globs).
//! Which sinks an event goes to is decided from these in one place, the
//! fanout (`publish::fanout`); a glob's match is a value's own question,
//! answered here.

use crate::incident::Kind;

/// What a sink gets (`--report`, or a notification URL's `report=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    /// `inspect_unhealthy` every tick for every record in trouble.
    Facts,
    /// `incident_*` events: one per change of an incident.
    Incidents,
    /// Both.
    Both,
}

impl Report {
    /// Whether facts go to the sink.
    pub(crate) fn facts(self) -> bool {
        self != Report::Incidents
    }

    /// Whether incidents go to the sink.
    pub(crate) fn incidents(self) -> bool {
        self != Report::Facts
    }

    /// The value that names it: `facts`, `incidents` or `both`.
    pub(crate) fn parse(value: &str) -> Option<Report> {
        match value {
            "facts" => Some(Report::Facts),
            "incidents" => Some(Report::Incidents),
            "both" => Some(Report::Both),
            _ => None,
        }
    }
}

/// What one sink takes: the fanout reads it for each event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// Facts, incidents or both.
    pub(crate) report: Report,
    /// The least severe kind the sink is told of (`min=`); `restarted`,
    /// the least of all, lets everything through.
    pub(crate) min: Kind,
    /// The games whose events it takes (`games=`); empty: every game.
    pub(crate) games: Vec<Glob>,
}

impl Route {
    /// Everything of `report`: every kind, every game (the sinks of `--sink`).
    pub(crate) fn all(report: Report) -> Route {
        Route {
            report,
            min: Kind::Restarted,
            games: Vec::new(),
        }
    }
}

/// The most globs one `games=` holds, and the longest glob: a bound on the
/// work of routing one event, whatever a URL says.
pub(crate) const MAX_GLOBS: usize = 32;
/// The longest glob, in bytes (a game id is at most 256).
pub(crate) const MAX_GLOB_BYTES: usize = 256;

/// A game id pattern: `*` any run of characters (none included), `?` any one
/// character, every other character itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob(String);

impl Glob {
    /// The glob of `pattern`, if it can be one: not empty, at most
    /// [`MAX_GLOB_BYTES`], no control character.
    pub(crate) fn parse(pattern: &str) -> Result<Glob, &'static str> {
        if pattern.is_empty() {
            return Err("an empty game pattern (a comma at an end, or two in a row)");
        }
        if pattern.len() > MAX_GLOB_BYTES {
            return Err("a game pattern over 256 bytes");
        }
        if pattern.chars().any(char::is_control) {
            return Err("a game pattern with a control character");
        }
        Ok(Glob(pattern.to_owned()))
    }

    /// Whether `game` matches, whole. The usual greedy walk: a `*` is first
    /// taken to match nothing, and on a mismatch the last `*` takes one more
    /// character; no recursion, at most pattern × game steps.
    pub(crate) fn matches(&self, game: &str) -> bool {
        let p: Vec<char> = self.0.chars().collect();
        let g: Vec<char> = game.chars().collect();
        let (mut pi, mut gi) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while gi < g.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, gi));
                    pi += 1;
                }
                Some(&c) if c == '?' || c == g[gi] => {
                    pi += 1;
                    gi += 1;
                }
                _ => match star {
                    Some((sp, sg)) => {
                        pi = sp + 1;
                        gi = sg + 1;
                        star = Some((sp, sg + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_game_ids() {
        // (pattern, game, matches)
        let table = [
            ("g-42", "g-42", true),
            ("g-42", "g-420", false),
            ("g-*", "g-42", true),
            ("g-*", "g-", true),
            ("g-*", "h-42", false),
            ("*", "", true),
            ("*", "anything at all", true),
            ("eu-?", "eu-1", true),
            ("eu-?", "eu-12", false),
            ("*-prod", "mc-1-prod", true),
            ("*-prod", "mc-1-prod-2", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXcYYb", false),
            ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("é?", "éü", true),
            ("mc-*", "MC-1", false),
        ];
        for (pattern, game, want) in table {
            let glob = Glob::parse(pattern).unwrap();
            assert_eq!(glob.matches(game), want, "{pattern:?} {game:?}");
        }
    }

    #[test]
    fn bad_globs_are_refused() {
        assert!(Glob::parse("").is_err());
        assert!(Glob::parse("a\nb").is_err());
        assert!(Glob::parse(&"g".repeat(257)).is_err());
        assert!(Glob::parse(&"g".repeat(256)).is_ok());
    }

    #[test]
    fn reports_take_what_they_name() {
        let table = [
            ("facts", Some((true, false))),
            ("incidents", Some((false, true))),
            ("both", Some((true, true))),
            ("all", None),
        ];
        for (value, want) in table {
            let got = Report::parse(value).map(|r| (r.facts(), r.incidents()));
            assert_eq!(got, want, "{value}");
        }
    }
}
