//! `rtinspect status`: one look now, published nowhere. It reads the records
//! as `run` does (labels or PostgreSQL, the same configuration), inspects
//! each container once, and, where there is a state directory, reads the
//! tracker's saved incidents and restart counts without the daemon's lock,
//! and the silences (`silences.json`, or the silences table);
//! it writes nothing and never disturbs a running daemon. The table (or
//! `--json`) goes to stdout; the exit status says 0 all healthy, 1 some game
//! in trouble, 2 could not look.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::build;
use crate::config::Config;
use crate::docker::{ContainerInspector, DockerError};
use crate::failure::Failure;
use crate::history::Entry;
use crate::inspector::RuntimeRecord;
use crate::postgres::{PgSilences, is_missing};
use crate::records::RecordError;
use crate::silence::Silences;
use crate::state::history::read_history;
use crate::state::peek;
use crate::status::{Board, Look, Seen, TrackerMemory, table};

/// The state directory the packaged unit gives the service
/// (`StateDirectory=rtinspect`): read when none is configured and it exists.
pub(crate) const PACKAGED_STATE_DIR: &str = "/var/lib/rtinspect";

/// Runs `rtinspect status`.
pub(crate) fn status(config: &Config, json: bool) -> Result<(), Failure> {
    check_state_dir(config)?;
    let host = build::host_name(config);
    let docker = build::docker_client(config);
    let pg = build::pg_parts(config)?;
    let mut source = build::build_source(config, &docker, pg.as_ref());
    let records = source.records().map_err(|e| cannot_look(config, e))?;
    if records.is_empty() {
        // Not trouble, but a label or table mistyped would read as all
        // healthy: said where a person sees it, the exit status unchanged.
        let whence = match &config.database {
            None => format!("no container carries the label {}", config.label),
            Some(_) => "the records table has no row for this host".to_owned(),
        };
        log::warn!("no games to look at: {whence}");
    }
    let memory = saved_memory(config);
    let looks = look_at(&docker, records).map_err(|e| {
        Failure::Unseen(
            format!(
                "cannot reach dockerd at {}: {e}",
                config.docker_socket.display()
            )
            .into(),
        )
    })?;
    let now = SystemTime::now();
    let silences = silences(config);
    // history.jsonl is read only for an incident saved without its reason.
    let said = std::cell::OnceCell::new();
    let board = Board::new(host, now, looks, memory.as_ref(), &|game| {
        silences.as_ref()?.covered_until(game, now)
    })
    .with_reasons(&|id| said.get_or_init(|| reasons(config)).get(id).cloned());
    let text = if json {
        board.json(usize::MAX)
    } else {
        let colour = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        table::render(&board, SystemTime::now(), colour)
    };
    super::print_out(&text)?;
    match board.exit_status() {
        0 => Ok(()),
        status => Err(Failure::Verdict(status)),
    }
}

/// The records could not be read: nothing was looked at.
fn cannot_look(config: &Config, e: RecordError) -> Failure {
    let message = match &e {
        RecordError::Docker(e) => format!(
            "cannot reach dockerd at {}: {e}",
            config.docker_socket.display()
        ),
        RecordError::Database(_) => format!("cannot read the records: {e}"),
    };
    Failure::Unseen(message.into())
}

/// Checks that the configured state directory, if any, exists (exit 64
/// naming it): `status` and `history` read it once they have looked.
pub(crate) fn check_state_dir(config: &Config) -> Result<(), Failure> {
    config
        .state_dir
        .as_deref()
        .map_or(Ok(()), build::existing_state_dir)
}

/// The state directory to read: the configured one, else the packaged one
/// when it exists.
pub(crate) fn state_dir(config: &Config) -> Option<PathBuf> {
    config.state_dir.clone().or_else(|| {
        let packaged = Path::new(PACKAGED_STATE_DIR);
        packaged.is_dir().then(|| packaged.to_owned())
    })
}

/// What the tracker saved, or `None` (said on stderr when a file is there
/// but cannot be read: the looks are shown without it).
fn saved_memory(config: &Config) -> Option<TrackerMemory> {
    let dir = state_dir(config)?;
    match peek::read_incidents(&dir) {
        Ok(saved) => saved,
        Err(e) => {
            log::warn!(err:% = e;
                "the saved incidents cannot be read; crash loops and open incidents are not shown");
            None
        }
    }
}

/// Each incident's last reason, as its events in `history.jsonl` say it
/// (read without the lock); none without a state directory or history.
fn reasons(config: &Config) -> HashMap<String, String> {
    let mut reasons = HashMap::new();
    let Some(dir) = state_dir(config) else {
        return reasons;
    };
    for entry in read_history(&dir)
        .map(|h| h.lines)
        .unwrap_or_default()
        .iter()
        .filter_map(|l| Entry::from_line(l))
    {
        if let (Some(id), Some(reason)) = (entry.incident_id, entry.reason) {
            reasons.insert(id, reason);
        }
    }
    reasons
}

/// The silences in force: `silences.json` in the state directory (label
/// mode) or the silences table (PostgreSQL mode), read without a lock;
/// `None`, said on stderr, when they cannot be read (a table an older
/// `migrate` did not make is no silence, and said nothing of).
fn silences(config: &Config) -> Option<Silences> {
    let list = match &config.database {
        Some(db) => {
            let host = build::host_filter(config).ok()?.map(|h| h.host_id);
            let table = PgSilences::new(
                build::pg_connector(db).ok()?,
                config.silences_table.clone(),
                host,
            );
            match table.list() {
                Ok(list) => list,
                Err(e) if is_missing(&e) => return None,
                Err(e) => {
                    log::warn!(err:% = e; "the silences cannot be read; none is shown");
                    return None;
                }
            }
        }
        None => match crate::state::silences::read(&state_dir(config)?) {
            Ok((list, _)) => list,
            Err(e) => {
                log::warn!(err:% = e; "the silences cannot be read; none is shown");
                return None;
            }
        },
    };
    Some(Silences::new(&list, SystemTime::now()))
}

/// One look at each record, in order. A record that is not valid is not
/// asked about; a container that cannot be inspected is `unknown`, unless
/// dockerd itself stops answering (`/_ping` fails too): then the error.
fn look_at(
    docker: &dyn ContainerInspector,
    records: Vec<RuntimeRecord>,
) -> Result<Vec<Look>, DockerError> {
    let mut looks = Vec::with_capacity(records.len());
    for record in records {
        let seen = match crate::tick::validate(&record) {
            Err(why) => Seen::Invalid(format!("record skipped: {why}")),
            Ok(()) => match docker.inspect(&record.container_id) {
                Ok(o) => Seen::Container {
                    container_id: o.container_id,
                    state: o.status,
                    health: o.health,
                },
                Err(DockerError::NotFound) => Seen::Missing,
                Err(e) if e.means_unreachable() => {
                    docker.ping()?;
                    Seen::Failed(format!("inspect failed: {e}"))
                }
                Err(e) => Seen::Failed(format!("inspect failed: {e}")),
            },
        };
        looks.push(Look {
            game_id: record.game_id,
            container_ref: record.container_id,
            seen,
        });
    }
    Ok(looks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{Answer, FakeDocker};

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn each_record_is_looked_at_once_and_a_dead_dockerd_is_an_error() {
        let docker = FakeDocker::new()
            .answer("up", Answer::status(A, 0, "running"))
            .answer("boom", Answer::Status(500));
        let records = vec![
            RuntimeRecord::new("g-up", "up"),
            RuntimeRecord::new("g-gone", "gone"),
            RuntimeRecord::new("g-boom", "boom"),
            RuntimeRecord::new("g-bad", "../x"),
        ];
        let looks = look_at(&docker, records.clone()).unwrap();
        let seen: Vec<&Seen> = looks.iter().map(|l| &l.seen).collect();
        assert!(matches!(seen[0], Seen::Container { state, .. } if state == "running"));
        assert_eq!(seen[1], &Seen::Missing);
        assert!(matches!(seen[2], Seen::Failed(why) if why.starts_with("inspect failed")));
        assert!(matches!(seen[3], Seen::Invalid(_)));
        assert_eq!(docker.asked(), ["up", "gone", "boom"], "once each");

        let down = FakeDocker::new().default_answer(Answer::Unreachable);
        down.set_ping(Some(Answer::Unreachable));
        assert!(look_at(&down, records).is_err());
    }
}
