//! `rtinspect silence add|list|end`, run by the script that causes a
//! downtime while the daemon runs: the silences of label mode's state
//! directory (`silences.json`, changed under its own lock, never the
//! daemon's) or of PostgreSQL mode's table, with the same configuration as
//! `run` (the defaults file, `--state-dir`, the database URL).
//!
//! `add` prints the new silence's id alone on stdout (`id=$(rtinspect
//! silence add …)`), and says on stderr what it silenced and which games
//! no record names (allowed: a game may be about to be deployed). Bad
//! input is exit 64 naming it; a store that cannot be read or written,
//! exit 1.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::build::{docker_client, existing_state_dir, host_filter, pg_connector};
use crate::config::{Config, SilenceCommand};
use crate::docker::ContainerLister;
use crate::failure::Failure;
use crate::postgres::PgSilences;
use crate::silence::{self, Ended, MAX_SILENCES, Silence};
use crate::state::silences::{self as file, SilencesError};

use super::stdout::print_out;

/// Where the silences are kept.
enum Store {
    /// Label mode: `silences.json` in this state directory.
    File(PathBuf),
    /// PostgreSQL mode: the silences table.
    Table(Box<PgSilences>),
}

/// Runs `rtinspect silence …`.
pub(crate) fn silence(config: &Config, command: &SilenceCommand) -> Result<(), Failure> {
    let store = store(config)?;
    // One reading of the clock: the window is checked, and the silence
    // starts, at the same time.
    let now = SystemTime::now();
    match command {
        SilenceCommand::Add {
            games,
            ends,
            comment,
        } => {
            let (starts_at, ends_at) = silence::window(ends, now).map_err(Failure::usage)?;
            let id = silence::new_id(now);
            let created_by = created_by();
            let row = |game_id: Option<String>| Silence {
                id: id.clone(),
                game_id,
                starts_at,
                ends_at,
                created_by: created_by.clone(),
                comment: comment.clone(),
            };
            let rows: Vec<Silence> = match games {
                None => vec![row(None)],
                Some(games) => games.iter().map(|g| row(Some(g.clone()))).collect(),
            };
            add(&store, &rows, now)?;
            // Only once it is written: "silenced anyway" must be true.
            if let Some(games) = games {
                warn_unknown(config, games);
            }
            let what = match games {
                None => "every game".to_owned(),
                Some(games) => games.join(", "),
            };
            say(&format!(
                "silence {id}: {} until {}",
                printable(&what),
                silence::rfc3339(ends_at)
            ));
            print_out(&format!("{id}\n"))
        }
        SilenceCommand::List => {
            let rows = list(&store)?;
            print_out(&table(&rows, now))
        }
        SilenceCommand::End { id } => {
            let ended = end(&store, id.as_deref(), now)?;
            match (id, ended) {
                (None, Ended::Now(n)) => print_out(&format!("ended {n} silences\n")),
                (Some(id), Ended::Now(_)) => print_out(&format!("ended silence {id}\n")),
                (Some(id), Ended::Already(at)) => print_out(&format!(
                    "silence {id} had already ended at {}\n",
                    silence::rfc3339(at)
                )),
                (id, _) => Err(Failure::usage(format!(
                    "no silence {} (see `rtinspect silence list`; one that ended more than \
                     a day ago is forgotten)",
                    id.as_deref().unwrap_or("")
                ))),
            }
        }
    }
}

/// The store of this mode: the table, or the state directory, which must
/// exist (a mistyped path must not make a directory no daemon reads).
fn store(config: &Config) -> Result<Store, Failure> {
    if let Some(db) = &config.database {
        let host = host_filter(config)?.map(|h| h.host_id);
        return Ok(Store::Table(Box::new(PgSilences::new(
            pg_connector(db)?,
            config.silences_table.clone(),
            host,
        ))));
    }
    let Some(dir) = &config.state_dir else {
        return Err(Failure::usage(
            "silence needs the daemon's state directory in label mode: set --state-dir \
             (or RTINSPECT_STATE_DIR) to the one rtinspect runs with; the packaged \
             service's is /var/lib/rtinspect",
        ));
    };
    existing_state_dir(dir)?;
    Ok(Store::File(dir.clone()))
}

fn add(store: &Store, rows: &[Silence], now: SystemTime) -> Result<(), Failure> {
    match store {
        Store::Table(pg) => pg.add(rows, now).map_err(Failure::because),
        Store::File(dir) => file::change(dir, now, |list| {
            let in_force = list.iter().filter(|s| !s.has_ended(now)).count();
            if in_force + rows.len() > MAX_SILENCES {
                return Err(SilencesError::Full(
                    dir.join(file::SILENCES),
                    format!(
                        "{in_force} silences are in force or to come, and at most \
                         {MAX_SILENCES} are kept: end some"
                    ),
                ));
            }
            list.extend_from_slice(rows);
            Ok(((), true))
        })
        .map_err(|e| file_failure(dir, e)),
    }
}

fn list(store: &Store) -> Result<Vec<Silence>, Failure> {
    match store {
        Store::Table(pg) => pg.list().map_err(Failure::because),
        Store::File(dir) => file::read(dir).map(|(rows, _)| rows).map_err(|e| {
            Failure::runtime(format!("cannot read the silences of {}", dir.display()), e)
        }),
    }
}

fn end(store: &Store, id: Option<&str>, now: SystemTime) -> Result<Ended, Failure> {
    match store {
        Store::Table(pg) => pg.end(id, now).map_err(Failure::because),
        Store::File(dir) => file::change(dir, now, |list| {
            let mut ended = 0;
            let mut latest_end = None;
            for s in list.iter_mut() {
                if id.is_some_and(|id| s.id != id) {
                    continue;
                }
                if s.has_ended(now) {
                    latest_end = latest_end.max(Some(s.ends_at));
                    continue;
                }
                // One still to come ends where it would have started.
                s.ends_at = now.max(s.starts_at);
                ended += 1;
            }
            let found = match (ended, latest_end) {
                (0, Some(at)) if id.is_some() => Ended::Already(at),
                (0, None) if id.is_some() => Ended::Unknown,
                (n, _) => Ended::Now(n),
            };
            Ok((found, ended > 0))
        })
        .map_err(|e| file_failure(dir, e)),
    }
}

/// A failure of `silences.json`: each is the store's, not the input's.
fn file_failure(dir: &Path, e: SilencesError) -> Failure {
    Failure::runtime(
        format!("cannot change the silences of {}", dir.display()),
        e,
    )
}

/// Says which of `games` no record names now: allowed (a game may be about
/// to be deployed), but a typo would otherwise silence nothing unseen.
fn warn_unknown(config: &Config, games: &[String]) {
    let known: Result<Vec<String>, String> = match &config.database {
        None => docker_client(config)
            .list_labelled(&config.label)
            .map(|cs| cs.into_iter().map(|c| c.game_id).collect())
            .map_err(|e| e.to_string()),
        Some(db) => pg_connector(db)
            .map_err(|e| e.to_string())
            .and_then(|connector| {
                let host = host_filter(config).map_err(|e| e.to_string())?;
                crate::postgres::known_games(
                    &connector,
                    &config.records_table,
                    host.as_ref(),
                    games,
                )
                .map_err(|e| e.to_string())
            }),
    };
    match known {
        Ok(known) => {
            for game in games.iter().filter(|g| !known.contains(g)) {
                let game = printable(game);
                let none = match &config.database {
                    None => format!("no container carries the label {}={game}", config.label),
                    Some(_) => format!("{} has no row for it", config.records_table),
                };
                say(&format!(
                    "warning: unknown game {game:?} ({none}); silenced anyway"
                ));
            }
        }
        Err(e) => say(&format!(
            "warning: cannot tell whether the games exist ({e}); silenced anyway"
        )),
    }
}

/// Who makes a silence: the user behind `sudo` when there is one, at this
/// host (a fleet shares one table).
fn created_by() -> String {
    let user = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| format!("uid {}", rustix::process::getuid().as_raw()));
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let by = format!("{user}@{host}");
    printable(crate::text::cut_at_char_boundary(&by, 256))
}

/// The silences in force or to come, one a line under a header, their
/// columns separated by tabs; a silence of several games shows them
/// together, `*` for every game. What a row holds is made printable: a row
/// a tool inserted may hold anything.
fn table(rows: &[Silence], now: SystemTime) -> String {
    // By when each starts (its first row's start), then by id.
    let mut starts: HashMap<&str, SystemTime> = HashMap::new();
    let mut by_id: BTreeMap<(SystemTime, &str), Vec<&Silence>> = BTreeMap::new();
    for s in rows.iter().filter(|s| !s.has_ended(now)) {
        let starts_at = *starts.entry(&s.id).or_insert(s.starts_at);
        by_id.entry((starts_at, &s.id)).or_default().push(s);
    }
    let mut out = String::from("ID\tGAMES\tSTARTS\tENDS\tBY\tCOMMENT\n");
    for ((_, id), games) in by_id {
        let first = games[0];
        let names: Vec<String> = games
            .iter()
            .map(|s| s.game_id.as_deref().map_or("*".to_owned(), printable))
            .collect();
        let ends = games
            .iter()
            .map(|s| s.ends_at)
            .max()
            .unwrap_or(first.ends_at);
        out.push_str(&format!(
            "{id}\t{}\t{}\t{}\t{}\t{}\n",
            names.join(","),
            silence::rfc3339(first.starts_at),
            silence::rfc3339(ends),
            printable(&first.created_by),
            printable(&first.comment),
        ));
    }
    out
}

/// `text` with its control characters (a tab, a newline, an escape
/// sequence), its line separators and the characters that hide in text (a
/// direction override, a zero-width space) escaped, so that a row is one
/// line of its columns and reads as it is.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let hides = crate::text::is_invisible(c) || matches!(c, '\u{2028}' | '\u{2029}');
            let escaped: Vec<char> = if c.is_control() || hides {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// One line on stderr, as `rtinspect: …`.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "rtinspect: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse_rfc3339;

    fn row(id: &str, game: Option<&str>, comment: &str) -> Silence {
        Silence {
            id: id.into(),
            game_id: game.map(str::to_owned),
            starts_at: parse_rfc3339("2026-11-26T21:00:00Z").unwrap(),
            ends_at: parse_rfc3339("2026-11-26T22:00:00Z").unwrap(),
            created_by: "ci@host".into(),
            comment: comment.into(),
        }
    }

    #[test]
    fn the_list_shows_a_silence_a_line_its_games_together() {
        let rows = [
            row("b", Some("g-1"), "deploy"),
            row("a", None, "reboot\tnow\n\u{1b}[31m"),
            row("b", Some("g\t2"), "deploy"),
        ];
        let now = parse_rfc3339("2026-11-26T21:30:00Z").unwrap();
        assert_eq!(
            table(&rows, now),
            "ID\tGAMES\tSTARTS\tENDS\tBY\tCOMMENT\n\
             a\t*\t2026-11-26T21:00:00Z\t2026-11-26T22:00:00Z\tci@host\treboot\\tnow\\n\\u{1b}[31m\n\
             b\tg-1,g\\t2\t2026-11-26T21:00:00Z\t2026-11-26T22:00:00Z\tci@host\tdeploy\n"
        );
        let later = parse_rfc3339("2026-11-26T22:00:00Z").unwrap();
        assert_eq!(
            table(&rows, later),
            "ID\tGAMES\tSTARTS\tENDS\tBY\tCOMMENT\n"
        );
    }

    #[test]
    fn a_row_that_hides_or_turns_text_is_shown_escaped() {
        let rows = [row(
            "a",
            Some("g\u{200b}-1"),
            "ok \u{202e}txet desrever\u{2028}next",
        )];
        let now = parse_rfc3339("2026-11-26T21:30:00Z").unwrap();
        let text = table(&rows, now);
        assert!(
            text.ends_with(
                "a\tg\\u{200b}-1\t2026-11-26T21:00:00Z\t2026-11-26T22:00:00Z\tci@host\t\
                 ok \\u{202e}txet desrever\\u{2028}next\n"
            ),
            "{text:?}"
        );
    }
}
