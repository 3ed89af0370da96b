//! The commands that run once and end: `migrate`, `prune-events`,
//! `notify-test`, and in files of their own `silence`, `status` and
//! `history`. Each says what it
//! did on stdout, one line a step.

mod history;
mod silence;
mod status;
mod stdout;

pub(crate) use history::history;
pub(crate) use silence::silence;
pub(crate) use status::status;
pub(crate) use stdout::print_out;

use std::time::{Duration, Instant, SystemTime};

use crate::build::{
    BuiltSink, build_sink, envelope_host, host_name, pg_connector, pg_parts, with_notify_file,
};
use crate::config::{Config, Database};
use crate::event::HealthEvent;
use crate::failure::Failure;

/// `rtinspect migrate`: creates what is missing and says what it did on stdout.
pub(crate) fn migrate(config: &Config, db: &Database) -> Result<(), Failure> {
    let tables = crate::postgres::Tables {
        records: &config.records_table,
        events: &config.events_table,
        silences: &config.silences_table,
    };
    let steps = crate::postgres::migrate(
        &pg_connector(db)?,
        &tables,
        config.host_scope.as_ref().map(|s| s.column.as_str()),
    )
    .map_err(Failure::because)?;
    let text: String = steps.iter().map(|s| format!("{s}\n")).collect();
    print_out(&text)
}

/// `rtinspect notify-test`: one test message through every sink, in turn,
/// each result on stdout (what the sink answered, and how long it took);
/// a failure when any sink failed.
pub(crate) fn notify_test(config: &Config) -> Result<(), Failure> {
    // Every URL is read before anything is sent: a bad one is named, masked.
    let config = &*with_notify_file(config)?;
    let pg = pg_parts(config)?;
    let host = host_name(config);
    let envelope_host = envelope_host(config)?;
    let mut failed = Vec::new();
    for chosen in &config.sinks {
        let BuiltSink { mut sink, name } = build_sink(config, chosen, pg.as_ref())?;
        let mut event = HealthEvent::notify_test(&host, SystemTime::now());
        if let Some(id) = &envelope_host {
            event = event.seen_on(id);
        }
        let started = Instant::now();
        let tried = sink.trial(&event);
        let took = started.elapsed().as_millis();
        let line = match tried {
            Ok(answer) if answer.is_empty() => format!("{name}: ok in {took} ms\n"),
            Ok(answer) => format!("{name}: ok in {took} ms: {answer}\n"),
            Err(e) => {
                failed.push(chosen.name.as_str());
                format!("{name}: FAILED in {took} ms: {e}\n")
            }
        };
        print_out(&line)?;
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Failure::because(format!(
        "the test message did not go through: {} of {} sinks failed ({})",
        failed.len(),
        config.sinks.len(),
        failed.join(", ")
    )))
}

/// `rtinspect prune-events`: deletes old events in batches, says how many on stdout.
pub(crate) fn prune_events(
    config: &Config,
    db: &Database,
    older_than: Duration,
) -> Result<(), Failure> {
    let table = &config.events_table;
    let pruned = crate::postgres::prune_events(
        &pg_connector(db)?,
        table,
        older_than,
        crate::postgres::PRUNE_BATCH,
        &mut |n| log::debug!("deleted a batch of {n} events from {table}"),
    )
    .map_err(Failure::because)?;
    // A closed stdout is a failure to report, not a panic (println! would).
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "deleted {} events recorded before {} from {table}",
        pruned.deleted,
        crate::event::rfc3339_micros(pruned.before)
    )
    .and_then(|()| out.flush())
    .map_err(|e| {
        Failure::runtime(
            format!(
                "deleted {} events, but cannot write to stdout",
                pruned.deleted
            ),
            e,
        )
    })
}
