//! The events sink: each event a row of the events table plus a NOTIFY of
//! its envelope, in one transaction, on a kept connection. It tells an
//! outage (retry) from a refusal of the event's values (set aside).

use std::fmt;

use postgres::Client;
use postgres::types::{ToSql, Type};

use super::connect::Connector;
use super::error::{PgError, UNDEFINED_COLUMN};
use super::transaction::{BEGIN, in_transaction, rolled_back};
use crate::config::TableName;
use crate::event::HealthEvent;
use crate::publish::sink::{Down, EventSink, SinkError};

/// Events into `<events table>` plus `pg_notify(channel, envelope)`, in one
/// transaction; `ON CONFLICT (event_id) DO NOTHING` makes a retry harmless,
/// and an event already stored (a retry after a lost commit, a spool
/// replayed) is not notified again: the INSERT's `RETURNING` decides.
/// With host scoping the row's `host_id` is this host's id.
pub(crate) struct PgSink {
    connector: Connector,
    table: TableName,
    channel: Option<String>,
    host_id: Option<String>,
    insert: String,
    client: Option<Client>,
}

impl fmt::Debug for PgSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSink")
            .field("table", &self.table)
            .field("channel", &self.channel)
            .field("host_id", &self.host_id)
            .finish_non_exhaustive()
    }
}

impl PgSink {
    /// A sink writing to `table`, notifying on `channel` when set, filling
    /// `host_id` when given.
    pub(crate) fn new(
        connector: Connector,
        table: TableName,
        channel: Option<String>,
        host_id: Option<String>,
    ) -> Self {
        let (column, value, next) = if host_id.is_some() {
            (", host_id", ", $7", 8)
        } else {
            ("", "", 7)
        };
        // Every parameter is sent as text and cast, so no extra type
        // features are needed.
        let insert = format!(
            "INSERT INTO {} (event_id, game_id, container_id, event_type, occurred_at, details{column}) \
             VALUES ($1::text::uuid, $2, $3, $4, $5::text::timestamptz, $6::text::jsonb{value}) \
             ON CONFLICT (event_id) DO NOTHING",
            table.quoted()
        );
        // One statement, one round trip: the NOTIFY only for a row this
        // INSERT stored, so that a reconciler LISTENing sees each event once.
        let insert = match &channel {
            Some(_) => format!(
                "WITH stored AS ({insert} RETURNING 1) SELECT pg_notify(${next}, ${}) FROM stored",
                next + 1
            ),
            None => insert,
        };
        PgSink {
            connector,
            table,
            channel,
            host_id,
            insert,
            client: None,
        }
    }

    /// Inserts the event and notifies it, committed, or with `keep` false
    /// rolled back (nothing stored, nothing notified).
    fn write(&mut self, event: &HealthEvent, keep: bool) -> Result<(), PgError> {
        let client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connector.connect()?,
        };
        let client = self.client.insert(client);
        // The row's details are the envelope's, byte for byte.
        let envelope = event.envelope();
        let (envelope, details) = (envelope.as_str(), envelope.details());
        let event_type = event.event_type.as_str();
        let (table, insert, channel) = (&self.table, &self.insert, &self.channel);
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
            (&event.event_id, Type::TEXT),
            (&event.game_id, Type::TEXT),
            (&event.container_id, Type::TEXT),
            (&event_type, Type::TEXT),
            (&event.occurred_at, Type::TEXT),
            (&details, Type::TEXT),
        ];
        if let Some(host_id) = &self.host_id {
            params.push((host_id, Type::TEXT));
        }
        if let Some(channel) = channel {
            params.push((channel, Type::TEXT));
            params.push((&envelope, Type::TEXT));
        }
        let step = match channel {
            Some(channel) => format!("inserting into {table} and notifying {channel}"),
            None => format!("inserting into {table}"),
        };
        let body = |client: &mut Client| -> Result<(), PgError> {
            client.execute_typed(insert, &params).map_err(|e| {
                let mut err = PgError::on_table(step, e, table);
                if err.sqlstate.as_deref() == Some(UNDEFINED_COLUMN) {
                    err.detail
                        .push_str("; with --host-column the events table needs host_id: run `rtinspect migrate`");
                }
                err
            })?;
            Ok(())
        };
        if keep {
            in_transaction(client, BEGIN, body)
        } else {
            rolled_back(client, BEGIN, body)
        }
    }
}

impl EventSink for PgSink {
    fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
        let written = self.write(event, true);
        self.outcome(written)
    }

    /// A server error that is neither a refused value nor an outage (a
    /// trigger's `RAISE`, a privilege missing on one partition) may be one
    /// event's: told by whether the events behind it are stored.
    fn sets_poison_aside(&self) -> bool {
        true
    }

    fn trial(&mut self, event: &HealthEvent) -> Result<String, SinkError> {
        let written = self.write(event, false);
        self.outcome(written)?;
        Ok(format!(
            "a test row inserted into {}{}, and rolled back: nothing stored or sent",
            self.table,
            match &self.channel {
                Some(channel) => format!(", notified on {channel}"),
                None => String::new(),
            }
        ))
    }
}

impl PgSink {
    /// What a write's outcome means for the event.
    fn outcome(&mut self, written: Result<(), PgError>) -> Result<(), SinkError> {
        written.map_err(|e| {
            if e.connection_lost {
                self.client = None;
            }
            failure(e)
        })
    }
}

/// What a failed write says to the publisher: a refusal of the values, the
/// sink down (the connection lost, or a server that takes no writes or is
/// going away: never the event's fault), or any other failure.
fn failure(e: PgError) -> SinkError {
    if e.refuses_the_values() {
        SinkError::Refused(Box::new(e))
    } else if e.connection_lost {
        SinkError::Unavailable(Box::new(Down(Box::new(e))))
    } else {
        SinkError::Unavailable(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(sqlstate: Option<&str>, connection_lost: bool) -> PgError {
        PgError {
            step: "inserting".into(),
            detail: "what the server said".into(),
            connection_lost,
            sqlstate: sqlstate.map(String::from),
            source: None,
        }
    }

    #[test]
    fn a_lost_connection_says_the_sink_is_down_and_nothing_else_does() {
        let lost = failure(error(Some("57P01"), true));
        assert!(lost.is_outage());
        assert_eq!(
            lost.to_string(),
            "sink unavailable: inserting: what the server said"
        );
        assert!(!failure(error(Some("P0001"), false)).is_outage());
        assert!(matches!(
            failure(error(Some("22023"), false)),
            SinkError::Refused(_)
        ));
    }
}
