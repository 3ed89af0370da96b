//! Log lines on stderr: `key=value` text or one JSON object per line.
//!
//! Log calls carry the event's fields as structured key-values
//! (`game_id`, `container_id`, `event_type`, `err`), so both formats show them
//! as fields an operator can search. Under systemd (`JOURNAL_STREAM` set) each
//! line starts with its syslog priority (`<4>` for a warning) and drops the
//! timestamp journald already records, so `journalctl -p warning` works.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use log::Level;
use log::kv::{self, Key, Value, VisitSource};

use crate::config::LogFormat;
use crate::event::rfc3339_micros;

/// Installs the logger: level from `RUST_LOG` (default `info`), lines to stderr.
pub fn init(format: LogFormat) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "info".to_owned());
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let logger = env_logger::Builder::new()
        .parse_filters(&filter)
        .target(env_logger::Target::Stderr)
        .format(move |buf, record| {
            let mut fields = Vec::new();
            let _ = record.key_values().visit(&mut Collect(&mut fields));
            let line = Line {
                ts: (!journald).then(|| rfc3339_micros(SystemTime::now())),
                level: record.level(),
                target: record.target(),
                msg: record.args().to_string(),
                fields,
            };
            let mut text = match format {
                LogFormat::Text => line.text(),
                LogFormat::Json => line.json(),
            };
            if journald {
                text.insert_str(0, &format!("<{}>", priority(record.level())));
            }
            text.push('\n');
            buf.write_all(text.as_bytes())
        })
        .build();
    let max = logger.filter();
    if log::set_boxed_logger(Box::new(NoWireTrace(logger))).is_ok() {
        log::set_max_level(max);
    }
}

/// The logger, less ureq's trace level: there ureq writes whole request
/// lines and hex dumps, and a webhook URL carries its token in its path
/// (at debug and above ureq redacts the path itself, as long as its trace
/// level is off, which is what this makes sure of).
struct NoWireTrace(env_logger::Logger);

impl NoWireTrace {
    fn allows(metadata: &log::Metadata<'_>) -> bool {
        metadata.level() < Level::Trace || !metadata.target().starts_with("ureq")
    }
}

impl log::Log for NoWireTrace {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        Self::allows(metadata) && self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if Self::allows(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// The syslog priority journald reads from a `<N>` prefix.
pub(crate) fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

struct Collect<'a>(&'a mut Vec<(String, String)>);

impl<'kvs> VisitSource<'kvs> for Collect<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        self.0.push((key.to_string(), value.to_string()));
        Ok(())
    }
}

/// One log entry, ready to render.
#[derive(Debug, Clone)]
pub(crate) struct Line<'a> {
    /// RFC 3339 time, or `None` when journald adds its own.
    pub ts: Option<String>,
    /// Level.
    pub level: Level,
    /// Module path.
    pub target: &'a str,
    /// The message.
    pub msg: String,
    /// Structured fields in call order.
    pub fields: Vec<(String, String)>,
}

impl Line<'_> {
    /// `TS LEVEL target: msg key=value …`; values with spaces, quotes or `=`
    /// are quoted with Rust's escaping.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        if let Some(ts) = &self.ts {
            out.push_str(ts);
            out.push(' ');
        }
        out.push_str(&format!("{:<5} {}: {}", self.level, self.target, self.msg));
        for (k, v) in &self.fields {
            let plain = !v.is_empty()
                && !v
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '='));
            if plain {
                out.push_str(&format!(" {k}={v}"));
            } else {
                out.push_str(&format!(" {k}={v:?}"));
            }
        }
        out
    }

    /// `{"ts":…,"level":…,"target":…,"msg":…,"game_id":…}`.
    pub(crate) fn json(&self) -> String {
        let mut map = serde_json::Map::new();
        if let Some(ts) = &self.ts {
            map.insert("ts".into(), ts.clone().into());
        }
        map.insert(
            "level".into(),
            self.level.as_str().to_ascii_lowercase().into(),
        );
        map.insert("target".into(), self.target.into());
        map.insert("msg".into(), self.msg.clone().into());
        for (k, v) in &self.fields {
            // A field never overwrites the four members above.
            map.entry(k.clone()).or_insert_with(|| v.clone().into());
        }
        serde_json::Value::Object(map).to_string()
    }
}

/// ` (N more like it held back)` for a warning [`WarnLimiter`] let through
/// after holding N back, or nothing.
pub(crate) fn held_back(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more like it held back)")
    }
}

/// Rate-limits a repeated warning per cause: the first one is logged, then at
/// most one per period, saying how many were held back; so a week-long outage
/// costs a line a minute, not a line per tick or per record.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    period: Duration,
    causes: HashMap<String, (Instant, u64)>,
}

impl WarnLimiter {
    /// A limiter letting one warning per cause through each `period`.
    pub(crate) fn new(period: Duration) -> Self {
        WarnLimiter {
            period,
            causes: HashMap::new(),
        }
    }

    /// Whether to log a warning of `cause` now; `Some(n)` with the number of
    /// warnings held back since the last one logged.
    pub(crate) fn allow(&mut self, cause: &str, now: Instant) -> Option<u64> {
        match self.causes.get_mut(cause) {
            None => {
                self.causes.insert(cause.to_owned(), (now, 0));
                Some(0)
            }
            Some((last, held)) if now.duration_since(*last) >= self.period => {
                let n = *held;
                *last = now;
                *held = 0;
                Some(n)
            }
            Some((_, held)) => {
                *held += 1;
                None
            }
        }
    }

    /// The cause is over; true when it had been warned about.
    pub(crate) fn clear(&mut self, cause: &str) -> bool {
        !self.causes.is_empty() && self.causes.remove(cause).is_some()
    }

    /// Whether no cause is being warned about.
    pub(crate) fn is_empty(&self) -> bool {
        self.causes.is_empty()
    }

    /// Forgets every cause for which `keep` is false (games that left).
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.causes.retain(|cause, _| keep(cause));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> Line<'static> {
        Line {
            ts: Some("2026-11-26T21:00:00.000000Z".into()),
            level: Level::Warn,
            target: "rtinspect::daemon",
            msg: "inspect failed".into(),
            fields: vec![
                ("game_id".into(), "g-1".into()),
                ("container_id".into(), "abc".into()),
                ("err".into(), "HTTP 500: boom \"x\"".into()),
            ],
        }
    }

    #[test]
    fn text_line_has_key_value_fields() {
        assert_eq!(
            line().text(),
            r#"2026-11-26T21:00:00.000000Z WARN  rtinspect::daemon: inspect failed game_id=g-1 container_id=abc err="HTTP 500: boom \"x\"""#
        );
    }

    #[test]
    fn json_line_is_one_object_with_fields() {
        let v: serde_json::Value = serde_json::from_str(&line().json()).unwrap();
        assert_eq!(v["ts"], "2026-11-26T21:00:00.000000Z");
        assert_eq!(v["level"], "warn");
        assert_eq!(v["target"], "rtinspect::daemon");
        assert_eq!(v["msg"], "inspect failed");
        assert_eq!(v["game_id"], "g-1");
        assert_eq!(v["err"], "HTTP 500: boom \"x\"");
    }

    #[test]
    fn fields_cannot_forge_the_fixed_members() {
        let mut l = line();
        l.fields.push(("level".into(), "error".into()));
        let v: serde_json::Value = serde_json::from_str(&l.json()).unwrap();
        assert_eq!(v["level"], "warn");
    }

    #[test]
    fn limiter_lets_one_warning_per_period_through_and_counts_the_rest() {
        let mut l = WarnLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(l.allow("db", t0), Some(0));
        assert_eq!(l.allow("db", t0 + s(15)), None);
        assert_eq!(l.allow("db", t0 + s(30)), None);
        assert_eq!(l.allow("docker", t0 + s(30)), Some(0), "causes are apart");
        assert_eq!(l.allow("db", t0 + s(61)), Some(2));
        assert_eq!(l.allow("db", t0 + s(62)), None);
        assert!(l.clear("db"));
        assert!(!l.clear("db"));
        assert_eq!(
            l.allow("db", t0 + s(63)),
            Some(0),
            "a new outage warns at once"
        );
    }

    #[test]
    fn journald_priorities() {
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Warn), 4);
        assert_eq!(priority(Level::Info), 6);
        assert_eq!(priority(Level::Debug), 7);
    }
}
