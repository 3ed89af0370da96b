//! The service's settings for the commands that look at what it sees:
//! `status` and `history`, typed in an operator's shell, read
//! `/etc/default/rtinspect` (the unit's `EnvironmentFile=`) beneath the
//! environment, so that they watch the same records, socket and state
//! directory as the running service without being told again.
//!
//! The file is read as systemd reads an `EnvironmentFile=`, as far as the
//! packaged one uses it: `NAME=value` lines, `#` and `;` comments, blank
//! lines, a value in single or double quotes (a double-quoted one may
//! escape `"` and `\` with `\`). A variable set in the environment (or a
//! flag) wins over the file. `RTINSPECT_DEFAULTS_FILE` names another file,
//! or, empty, none.

use std::ffi::OsString;
use std::io::Read;

use super::error::ConfigError;
use crate::state::peek::open_regular;

/// The packaged unit's settings.
pub(super) const DEFAULTS_FILE: &str = "/etc/default/rtinspect";

/// Names another defaults file, or (empty) none.
pub(super) const DEFAULTS_FILE_VAR: &str = "RTINSPECT_DEFAULTS_FILE";

/// The largest defaults file read: the packaged one is about 10 KB.
const LIMIT: u64 = 256 * 1024;

/// The settings of a defaults file: `NAME=value` pairs, a later line winning.
#[derive(Debug)]
pub(super) struct Settings(Vec<(String, String)>);

impl Settings {
    /// The value the file gives `name`.
    pub(super) fn get(&self, name: &str) -> Option<OsString> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| OsString::from(v))
    }
}

/// The variables of the defaults file; none when there is no file (a host
/// without the package), an error naming the file when it cannot be read.
pub(super) fn read(env: &dyn Fn(&str) -> Option<OsString>) -> Result<Settings, ConfigError> {
    let none = || Ok(Settings(Vec::new()));
    let path = match env(DEFAULTS_FILE_VAR) {
        Some(p) if p.is_empty() => return none(),
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(DEFAULTS_FILE),
    };
    let cannot = |why: String| {
        ConfigError::new(format!(
            "cannot read the service's settings in {}: {why} (status and history read \
             them; run as root, or set {DEFAULTS_FILE_VAR}= to read none)",
            path.display()
        ))
    };
    // Opened as the state files are peeked at: a FIFO in its place would
    // wait for a writer for ever, and only a regular file is read.
    let file = match open_regular(&path) {
        Ok(Some((f, _))) => f,
        Ok(None) => return none(),
        Err(e) => return Err(cannot(e.to_string())),
    };
    let mut bytes = Vec::new();
    file.take(LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(e.to_string()))?;
    if bytes.len() as u64 > LIMIT {
        return Err(cannot(format!("larger than {LIMIT} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| cannot("not valid UTF-8".into()))?;
    Ok(Settings(parse(&text)))
}

/// `NAME=value` pairs of an `EnvironmentFile=`, in order.
fn parse(text: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            continue;
        }
        pairs.push((name.to_owned(), unquote(value.trim())));
    }
    pairs
}

/// A value without its quotes: `'a b'` and `"a \"b\""` as systemd reads them.
fn unquote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        return value[1..value.len() - 1].to_owned();
    }
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        let mut out = String::new();
        let mut chars = value[1..value.len() - 1].chars();
        while let Some(c) = chars.next() {
            match (c, chars.clone().next()) {
                ('\\', Some(next @ ('"' | '\\'))) => {
                    out.push(next);
                    chars.next();
                }
                _ => out.push(c),
            }
        }
        return out;
    }
    value.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_systemd_reads_them() {
        let text = "\
# a comment
; another
  RTINSPECT_INTERVAL=5s
#RTINSPECT_LABEL=commented
RTINSPECT_DATABASE_URL='host=/run/postgresql user=rtinspect'
RTINSPECT_WEBHOOK_FORMAT=\"slack\"
RTINSPECT_NOTIFY_CHANNEL=
QUOTED=\"a \\\"b\\\" \\\\ c\"
1BAD=x
BAD NAME=x
no equals sign
RTINSPECT_INTERVAL=7s
";
        let got = Settings(parse(text));
        let want = [
            (
                "RTINSPECT_DATABASE_URL",
                Some("host=/run/postgresql user=rtinspect"),
            ),
            ("RTINSPECT_WEBHOOK_FORMAT", Some("slack")),
            ("RTINSPECT_NOTIFY_CHANNEL", Some("")),
            ("QUOTED", Some("a \"b\" \\ c")),
            ("RTINSPECT_INTERVAL", Some("7s")),
            ("RTINSPECT_LABEL", None),
            ("1BAD", None),
            ("BAD NAME", None),
        ];
        for (name, value) in want {
            assert_eq!(got.get(name), value.map(OsString::from), "{name}");
        }
    }

    #[test]
    fn no_file_is_no_settings_and_an_unreadable_one_is_named() {
        let none = |name: &str| (name == DEFAULTS_FILE_VAR).then(|| OsString::from(""));
        assert!(read(&none).unwrap().0.is_empty());
        let missing =
            |name: &str| (name == DEFAULTS_FILE_VAR).then(|| OsString::from("/nonexistent/x"));
        assert!(read(&missing).unwrap().0.is_empty());
        // A directory cannot be read as a file.
        let dir = |name: &str| (name == DEFAULTS_FILE_VAR).then(|| OsString::from("/"));
        let e = read(&dir).unwrap_err().message;
        assert!(
            e.starts_with("cannot read the service's settings in /: "),
            "{e}"
        );
    }
}
