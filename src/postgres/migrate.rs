//! `migrate`: creates the records, events and silences tables and their
//! indexes when missing, in one transaction, looking each object up first;
//! it never alters a table it did not create, except to add the events' and
//! the silences' `host_id`.

use std::fmt;

use postgres::Client;
use postgres::types::Type;

use super::connect::Connector;
use super::error::PgError;
use super::transaction::{BEGIN_MIGRATION, in_transaction};
use crate::config::TableName;

/// What `migrate` did to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MigrationStep {
    /// "table", "index" or "column".
    pub kind: &'static str,
    /// Its qualified name (a column as `table.column`).
    pub name: String,
    /// Whether it was created now (false: it existed).
    pub created: bool,
}

impl fmt::Display for MigrationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.created { "created" } else { "exists:" };
        write!(f, "{what} {} {}", self.kind, self.name)
    }
}

/// The name of an index of `table`: `<table>_<suffix>`, the table's part cut
/// so that the whole fits PostgreSQL's 63-byte identifiers (as PostgreSQL
/// names indexes itself: cutting the suffix instead could make two indexes,
/// or an index and its table, one name); and that name in the table's schema.
/// A suffix longer than 62 bytes (a long host column's) keeps its end.
/// Names here are ASCII (validated identifiers): bytes are characters.
fn index_name(table: &TableName, suffix: &str) -> (String, String) {
    let suffix = &suffix[suffix.len().saturating_sub(62)..];
    let table_part = table.table();
    let head = &table_part[..table_part.len().min(62 - suffix.len())];
    let name = format!("{head}_{suffix}");
    let qualified = match table.to_string().rsplit_once('.') {
        Some((schema, _)) => format!("{schema}.{name}"),
        None => name.clone(),
    };
    (name, qualified)
}

/// One object `migrate` makes when missing.
struct Wanted {
    kind: &'static str,
    /// The host column it is built on, checked first.
    on_host_column: Option<String>,
    /// The qualified name, as shown (`schema.name`, or `table.column`).
    name: String,
    /// Whether it exists.
    lookup: Lookup,
    /// The statement that makes it.
    ddl: String,
}

/// How `migrate` tells whether an object exists.
enum Lookup {
    /// A relation (table or index) by its qualified name.
    Relation,
    /// A column of a table.
    Column { table: TableName, column: String },
}

/// Creates what is missing, in one transaction, and says what it did;
/// idempotent. Always: the records table, its status index, the events
/// table and its `recorded_at` index (for `prune-events`), the silences
/// table and its `ends_at` index (the daemon's read). With `host_column`:
/// that column on a records table it creates, the index
/// `(<column>, status) INCLUDE (game_id, current_container_id)` on any
/// (a missing or non-text column is an error naming it), and the events'
/// and the silences' `host_id` column.
pub(crate) fn migrate(
    connector: &Connector,
    tables: &Tables<'_>,
    host_column: Option<&str>,
) -> Result<Vec<MigrationStep>, PgError> {
    let mut client = connector.connect()?;
    in_transaction(&mut client, BEGIN_MIGRATION, |tx| {
        migrate_in(tx, tables, host_column)
    })
}

/// The tables `migrate` makes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tables<'a> {
    /// The runtime records.
    pub records: &'a TableName,
    /// The health events.
    pub events: &'a TableName,
    /// The silences.
    pub silences: &'a TableName,
}

/// The key of the transaction-level advisory lock every `migrate` takes
/// first (the bytes of `rtinspct`), whatever its tables: one migrate at a
/// time in a database.
const MIGRATE_LOCK: i64 = 0x7274_696e_7370_6374;

/// Takes the migrate lock, waiting as long as the statement bound allows
/// (a migrate holding it may be building an index on a big table: a
/// `lock_timeout` the role or database sets is lifted for this wait, else
/// concurrent migrates fail with 55P03 lock_not_available), then
/// sets the short wait (10 s) for every other lock: a table's lock held by a
/// long transaction must not queue the fleet's writes behind this one.
///
/// `CREATE TABLE IF NOT EXISTS` is not safe concurrently: two transactions
/// that both find the table missing both create it, and the second fails
/// on the catalog's unique index ("duplicate key value violates unique
/// constraint pg_type_typname_nsp_index", SQLSTATE 23505). Serialized, the
/// second finds everything the first committed and only says so. The lock
/// is the transaction's (`pg_advisory_xact_lock`): it ends with the commit
/// or the roll-back, so it works through PgBouncer in transaction mode and
/// is never left behind by a migrate that died.
fn serialized(tx: &mut Client) -> Result<(), PgError> {
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = 0; SELECT pg_advisory_xact_lock({MIGRATE_LOCK}); \
         SET LOCAL lock_timeout = '10s'"
    ))
    .map_err(|e| PgError::new("waiting for another migrate to end", e))
}

fn migrate_in(
    tx: &mut Client,
    tables: &Tables<'_>,
    host_column: Option<&str>,
) -> Result<Vec<MigrationStep>, PgError> {
    let Tables {
        records,
        events,
        silences,
    } = *tables;
    serialized(tx)?;
    let host_column_ddl = host_column
        .map(|c| format!(", \"{c}\" text"))
        .unwrap_or_default();
    let mut wanted = vec![
        Wanted {
            kind: "table",
            on_host_column: None,
            name: records.to_string(),
            lookup: Lookup::Relation,
            ddl: format!(
                "CREATE TABLE IF NOT EXISTS {} (\
                 game_id text PRIMARY KEY, \
                 status text NOT NULL, \
                 current_container_id text NOT NULL DEFAULT '', \
                 updated_at timestamptz NOT NULL DEFAULT now(){host_column_ddl})",
                records.quoted()
            ),
        },
        index(records, "status_idx", "(status)"),
    ];
    if let Some(column) = host_column {
        wanted.push(Wanted {
            on_host_column: Some(column.to_owned()),
            ..index(
                records,
                &format!("{column}_status_idx"),
                &format!("(\"{column}\", status) INCLUDE (game_id, current_container_id)"),
            )
        });
    }
    let host_id_ddl = if host_column.is_some() {
        ", host_id text"
    } else {
        ""
    };
    wanted.push(Wanted {
        kind: "table",
        on_host_column: None,
        name: events.to_string(),
        lookup: Lookup::Relation,
        ddl: format!(
            "CREATE TABLE IF NOT EXISTS {} (\
             event_id uuid PRIMARY KEY, \
             game_id text NOT NULL, \
             container_id text NOT NULL, \
             event_type text NOT NULL, \
             occurred_at timestamptz NOT NULL, \
             details jsonb NOT NULL, \
             recorded_at timestamptz NOT NULL DEFAULT now(){host_id_ddl})",
            events.quoted()
        ),
    });
    if host_column.is_some() {
        wanted.push(host_id_column(events));
    }
    wanted.push(index(events, "recorded_at_idx", "(recorded_at)"));
    // A row per game a silence names (`game_id` NULL: every game), so a
    // deploy tool can INSERT one with psql; `silence end` sets `ends_at`
    // to now, or to `starts_at` for one still to come.
    wanted.push(Wanted {
        kind: "table",
        on_host_column: None,
        name: silences.to_string(),
        lookup: Lookup::Relation,
        ddl: format!(
            "CREATE TABLE IF NOT EXISTS {} (\
             silence_id uuid NOT NULL, \
             game_id text, \
             starts_at timestamptz NOT NULL DEFAULT now(), \
             ends_at timestamptz NOT NULL, \
             created_by text NOT NULL DEFAULT current_user, \
             comment text NOT NULL DEFAULT ''{host_id_ddl}, \
             CHECK (ends_at >= starts_at))",
            silences.quoted()
        ),
    });
    if host_column.is_some() {
        wanted.push(host_id_column(silences));
    }
    wanted.push(index(silences, "ends_at_idx", "(ends_at)"));

    let mut steps: Vec<MigrationStep> = Vec::new();
    for want in wanted {
        let existed = match &want.lookup {
            Lookup::Relation => relation_exists(tx, &want)?,
            Lookup::Column { table, column } => {
                // A table created just now has every column already.
                let name = table.to_string();
                if steps
                    .iter()
                    .any(|s| s.created && s.kind == "table" && s.name == name)
                {
                    continue;
                }
                column_type(tx, table, column)?.is_some()
            }
        };
        if !existed {
            if let Some(column) = &want.on_host_column {
                check_host_column(tx, records, column)?;
            }
            tx.batch_execute(&want.ddl)
                .map_err(|e| PgError::new(format!("creating {} {}", want.kind, want.name), e))?;
        }
        steps.push(MigrationStep {
            kind: want.kind,
            name: want.name,
            created: !existed,
        });
    }
    Ok(steps)
}

/// The nullable `host_id` column, on a table that existed before scoping
/// was turned on. Looked up first: ALTER TABLE takes its exclusive lock
/// even when the column is there.
fn host_id_column(table: &TableName) -> Wanted {
    Wanted {
        kind: "column",
        on_host_column: None,
        name: format!("{table}.host_id"),
        lookup: Lookup::Column {
            table: table.clone(),
            column: "host_id".into(),
        },
        ddl: format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS host_id text",
            table.quoted()
        ),
    }
}

/// `CREATE INDEX IF NOT EXISTS <table>_<suffix> ON <table> <columns>`.
fn index(table: &TableName, suffix: &str, columns: &str) -> Wanted {
    let (name, qualified) = index_name(table, suffix);
    Wanted {
        kind: "index",
        on_host_column: None,
        name: qualified,
        lookup: Lookup::Relation,
        ddl: format!(
            "CREATE INDEX IF NOT EXISTS \"{name}\" ON {} {columns}",
            table.quoted()
        ),
    }
}

/// Whether the relation exists; an index that exists but is invalid (a
/// `CREATE INDEX CONCURRENTLY` that failed) is an error: queries skip it.
fn relation_exists(tx: &mut Client, want: &Wanted) -> Result<bool, PgError> {
    let quoted_name = quote_qualified(&want.name);
    let row = tx
        .query_typed_one(
            "SELECT c.oid IS NOT NULL, coalesce(i.indisvalid, true) \
             FROM (SELECT to_regclass($1) AS oid) c \
             LEFT JOIN pg_index i ON i.indexrelid = c.oid",
            &[(&quoted_name, Type::TEXT)],
        )
        .map_err(|e| PgError::new(format!("looking up {}", want.name), e))?;
    let (exists, valid): (bool, bool) = (row.get(0), row.get(1));
    if exists && !valid {
        return Err(PgError::schema(
            format!("checking {} {}", want.kind, want.name),
            "the index exists but is invalid (a failed CREATE INDEX CONCURRENTLY?): \
             drop it and run migrate again"
                .into(),
        ));
    }
    Ok(exists)
}

/// The type of `table.column` as PostgreSQL writes it, `None` when the
/// column does not exist.
fn column_type(
    tx: &mut Client,
    table: &TableName,
    column: &str,
) -> Result<Option<String>, PgError> {
    let quoted_table = quote_qualified(&table.to_string());
    let row = tx
        .query_typed_opt(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attname = $2 AND attnum > 0 \
             AND NOT attisdropped",
            &[(&quoted_table, Type::TEXT), (&column, Type::TEXT)],
        )
        .map_err(|e| PgError::new(format!("looking up column {column} of {table}"), e))?;
    Ok(row.map(|r| r.get(0)))
}

/// The host column must exist on the records table, as text: rtinspect
/// never alters a table it did not create.
fn check_host_column(tx: &mut Client, records: &TableName, column: &str) -> Result<(), PgError> {
    let step = format!("checking --host-column {column}");
    match column_type(tx, records, column)?.as_deref() {
        Some("text") | Some("character varying") => Ok(()),
        Some(t) if t.starts_with("character varying(") => Ok(()),
        Some(other) => Err(PgError::schema(
            step,
            format!("column {column} of {records} has type {other}, expected text"),
        )),
        None => Err(PgError::schema(
            step,
            format!(
                "column {column} does not exist in {records}: add it \
                 (ALTER TABLE {records} ADD COLUMN {column} text) or fix --host-column"
            ),
        )),
    }
}

/// `a.b` → `"a"."b"`, for `to_regclass`, which would fold unquoted names.
fn quote_qualified(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_are_quoted_per_part() {
        assert_eq!(quote_qualified("ops.Runtime"), "\"ops\".\"Runtime\"");
        assert_eq!(quote_qualified("t"), "\"t\"");
    }

    #[test]
    fn index_names_follow_the_table_and_its_schema() {
        let t = TableName::parse("ops.runtime_records").unwrap();
        assert_eq!(
            index_name(&t, "status_idx"),
            (
                "runtime_records_status_idx".to_string(),
                "ops.runtime_records_status_idx".to_string()
            )
        );
        // A long name keeps its suffix: two indexes, or an index and its
        // table, never share a name.
        let long = TableName::parse(&"t".repeat(63)).unwrap();
        let (status, _) = index_name(&long, "status_idx");
        let (host, _) = index_name(&long, "host_status_idx");
        assert_eq!(status.len(), 63);
        assert!(status.ends_with("_status_idx") && host.ends_with("_host_status_idx"));
        assert_ne!(status, long.table());
        // A 63-byte host column still gives a name PostgreSQL keeps whole.
        let column = "c".repeat(63);
        let (name, _) = index_name(&long, &format!("{column}_status_idx"));
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("c_status_idx"), "{name}");
    }

    #[test]
    fn migration_steps_read_well() {
        let s = MigrationStep {
            kind: "table",
            name: "runtime_records".into(),
            created: true,
        };
        assert_eq!(s.to_string(), "created table runtime_records");
    }
}
