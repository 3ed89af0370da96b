//! This host's id (`--host-id`), which names the host in every chat
//! message and, when given, in the envelope; and host scoping, for fleets
//! whose hosts share one records table: the column that names a record's
//! host, whose value for this host is that id.
//!
//! The id defaults to the machine's hostname, which is asked of the kernel
//! (`uname`) only when a command needs it, so that parsing stays free of
//! outside calls. `uname` rather than `/proc/sys/kernel/hostname`: the
//! shipped unit's `ProcSubset=pid` hides `/proc/sys`.

use super::error::ConfigError;
use super::names::is_identifier;
use super::options::Opt;
use super::raw::Inputs;

/// Bound on a host id: a hostname is at most 253 bytes; 255 leaves room for
/// an operator's own scheme without letting a value grow unbounded.
pub(crate) const MAX_HOST_ID: usize = 255;

/// Where this host's id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostId {
    /// `--host-id` or `RTINSPECT_HOST_ID`, validated.
    Given(String),
    /// The machine's hostname, read by [`HostId::resolve`].
    Hostname,
}

impl HostId {
    /// The id: the given one, or the machine's hostname, which must pass the
    /// same checks (an empty hostname is an error naming `--host-id`).
    pub(crate) fn resolve(&self) -> Result<String, ConfigError> {
        match self {
            HostId::Given(id) => Ok(id.clone()),
            HostId::Hostname => {
                let uname = rustix::system::uname();
                let name = uname.nodename().to_string_lossy().into_owned();
                check_host_id(&name).map_err(|why| {
                    ConfigError::new(format!(
                        "the hostname {name:?} cannot be the host id: {why}; set --host-id \
                         or RTINSPECT_HOST_ID"
                    ))
                })?;
                Ok(name)
            }
        }
    }
}

/// Host scoping as configured: each host reads the records whose `column`
/// holds its id, and writes its id into the events' `host_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostScope {
    /// The records table's column naming the host (a plain identifier).
    pub(crate) column: String,
    /// This host's id.
    pub(crate) id: HostId,
}

/// Why `id` cannot be a host id, if it cannot: it is a bind parameter, so
/// any text is safe in SQL, but an empty one matches nothing useful, and a
/// control character (NUL above all, which `text` refuses) is a mistake.
pub(super) fn check_host_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("it is empty");
    }
    if id.len() > MAX_HOST_ID {
        return Err("it is longer than 255 bytes");
    }
    if id.chars().any(char::is_control) {
        return Err("it holds a control character");
    }
    Ok(())
}

/// `--host-id` as given, else the hostname.
pub(super) fn host_id(inputs: &Inputs) -> Result<HostId, ConfigError> {
    let Some(given) = inputs.given(Opt::HostId) else {
        return Ok(HostId::Hostname);
    };
    check_host_id(&given.value)
        .map(|()| HostId::Given(given.value.clone()))
        .map_err(|why| {
            given.invalid(&format!(
                "{why}; expected this host's name (its value in --host-column with \
                 scoping), at most 255 bytes"
            ))
        })
}

/// `--host-column`, with this host's id.
pub(super) fn host_scope(inputs: &Inputs) -> Result<Option<HostScope>, ConfigError> {
    let id = host_id(inputs)?;
    let Some(column) = inputs.given(Opt::HostColumn) else {
        return Ok(None);
    };
    if !is_identifier(&column.value) {
        return Err(column.invalid(
            "expected a column name of letters, digits, _ and $ (at most 63), \
             not starting with a digit or $",
        ));
    }
    Ok(Some(HostScope {
        column: column.value.clone(),
        id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{Case, config, err};

    #[test]
    fn host_ids_table() {
        let table = [
            ("web-1", true),
            ("é-ü", true),
            (&"h".repeat(255) as &str, true),
            (&"h".repeat(256), false),
            ("", false),
            ("a\0b", false),
            ("a\nb", false),
        ];
        for (id, ok) in table {
            assert_eq!(check_host_id(id).is_ok(), ok, "{id:?}");
        }
    }

    #[test]
    fn the_hostname_resolves_to_the_kernels() {
        let id = HostId::Hostname.resolve().unwrap();
        let uname = rustix::system::uname();
        assert_eq!(id, uname.nodename().to_string_lossy());
        assert_eq!(HostId::Given("h".into()).resolve().unwrap(), "h");
    }

    #[test]
    fn host_scoping_takes_a_column_and_defaults_the_id_to_the_hostname() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        assert_eq!(config(&[], &[db]).host_scope, None);
        let c = config(&["--host-column", "host_name"], &[db]);
        assert_eq!(
            c.host_scope,
            Some(HostScope {
                column: "host_name".into(),
                id: HostId::Hostname
            })
        );
        let c = config(
            &["--host-id", "game-7.eu"],
            &[db, ("RTINSPECT_HOST_COLUMN", "host")],
        );
        assert_eq!(
            c.host_scope.map(|s| s.id),
            Some(HostId::Given("game-7.eu".into()))
        );
    }

    #[test]
    fn bad_host_scoping_is_refused_by_name() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        let long = "h".repeat(256);
        let table: &[Case] = &[
            (
                &["--host-column", "host; drop table x"],
                &[db],
                "invalid --host-column \"host; drop table x\": expected a column name",
            ),
            (
                &["--host-column", "a.b"],
                &[db],
                "invalid --host-column \"a.b\"",
            ),
            (
                &["--host-column", "host", "--host-id", &long],
                &[db],
                "invalid --host-id",
            ),
            (
                &["--host-column", "host"],
                &[db, ("RTINSPECT_HOST_ID", "a\u{1}b")],
                "invalid RTINSPECT_HOST_ID \"a\\u{1}b\": it holds a control character",
            ),
            (
                &["--host-column", "host"],
                &[],
                "--host-column \"host\" has no effect: label mode uses no database",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(got.contains(want), "{args:?}: got {got:?}, want {want:?}");
        }
        // An empty variable counts as unset: no scoping, no error.
        let c = config(&[], &[db, ("RTINSPECT_HOST_ID", "")]);
        assert_eq!(c.host_scope, None);
        assert_eq!(c.host, HostId::Hostname);
    }

    #[test]
    fn the_host_id_names_the_host_in_either_mode_with_or_without_scoping() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        for env in [&[][..], &[db][..]] {
            let c = config(&["--host-id", "eu-7"], env);
            assert_eq!(c.host, HostId::Given("eu-7".into()), "{env:?}");
            assert_eq!(c.host_scope, None);
            assert!(c.host_named());
            assert!(!config(&[], env).host_named());
        }
        let c = config(&["--host-column", "host"], &[db]);
        assert_eq!(c.host, HostId::Hostname);
        assert!(c.host_named(), "scoping names the host in the envelope");
        assert!(
            err(&["--host-id", "a\u{7}b"], &[])
                .starts_with("invalid --host-id \"a\\u{7}b\": it holds a control character")
        );
    }
}
