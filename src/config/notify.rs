//! The notification URLs: `--notify URL` (given once for each;
//! `RTINSPECT_NOTIFY` holds them separated by spaces) and `--notify-file
//! FILE` (one a line, `#` comments). Each is a webhook sink of its own,
//! named by its `name=` or by its service and position (`discord-1`), with
//! what it takes (its route) from its query.
//!
//! The URLs of `--notify` are values, read here; the file is only named
//! ([`NotifyFile`]) and read by the webhook adapter when the sinks are
//! built, its lines then read here as the flag's are. Every message names
//! the option (and the file's line) and shows no more of a URL than
//! [`mask::masked`](super::mask::masked) does.

use super::error::ConfigError;
use super::mask::masked;
use super::notify_url::{self, NotifyUrl};
use super::raw::Given;
use super::sinks::{Sink, SinkConfig};
use super::webhook::WebhookSettings;

/// The most sinks one rtinspect runs: each has a thread, a queue of 4,096
/// events and a spool.
pub(crate) const MAX_SINKS: usize = 16;

/// The most a notify file may hold: far more than 16 URLs and their comments.
pub(crate) const NOTIFY_FILE_LIMIT: u64 = 64 * 1024;

/// `--notify-file`: where more notification URLs are, read when the sinks
/// are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotifyFile {
    file: Given,
}

impl NotifyFile {
    /// The file's path.
    pub(crate) fn path(&self) -> &str {
        &self.file.value
    }

    /// `invalid --notify-file "PATH": <why>`: what is wrong with the file,
    /// never with what it holds.
    pub(crate) fn invalid(&self, why: &str) -> ConfigError {
        self.file.invalid(why)
    }

    /// The sinks of the file's `text`: a URL a line, blank lines and `#`
    /// comments skipped, numbered after the `taken` sinks (whose names
    /// they may not take), at most [`MAX_SINKS`] in all.
    pub(crate) fn sinks(
        &self,
        text: &str,
        taken: &[SinkConfig],
    ) -> Result<Vec<SinkConfig>, ConfigError> {
        let mut all: Vec<SinkConfig> = taken.to_vec();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |why: &str| {
                self.file
                    .invalid(&format!("line {} ({}): {why}", number + 1, masked(line)))
            };
            add(&mut all, line, &at)?;
        }
        if all.len() == taken.len() {
            return Err(self.invalid("holds no URL (a URL a line, # for a comment)"));
        }
        Ok(all.split_off(taken.len()))
    }
}

/// Adds the sink of the notification URL `text` to `all` (a sink per chat
/// of a Telegram URL naming several), named by its position among the
/// notification URLs, unless it is one too many, unreadable or its name
/// is taken: what is wrong is said through `at`, which says where the URL
/// was.
fn add(
    all: &mut Vec<SinkConfig>,
    text: &str,
    at: &dyn Fn(&str) -> ConfigError,
) -> Result<(), ConfigError> {
    let urls = notify_url::parse_all(text).map_err(|why| at(&why))?;
    let chats = match urls.len() {
        1 => String::new(),
        n => format!(" (this URL names {n} chats)"),
    };
    for url in urls {
        if all.len() == MAX_SINKS {
            let given = match all.iter().filter(|s| !s.notify).count() {
                0 => String::new(),
                n => format!(", {n} of them --sink's"),
            };
            return Err(at(&format!(
                "one sink too many: at most {MAX_SINKS} in all{given}{chats}"
            )));
        }
        let position = all.iter().filter(|s| s.notify).count() + 1;
        let sink = named(url, position);
        unique(&sink, all).map_err(|why| at(&why))?;
        all.push(sink);
    }
    Ok(())
}

/// The sink of a notification URL at `position` (from 1).
fn named(url: NotifyUrl, position: usize) -> SinkConfig {
    SinkConfig {
        name: url
            .name
            .unwrap_or_else(|| format!("{}-{position}", url.service)),
        sink: Sink::Webhook(WebhookSettings::Given(url.webhook)),
        route: url.route,
        notify: true,
    }
}

/// Why `sink` cannot join `others`, if it cannot: its name is taken.
fn unique(sink: &SinkConfig, others: &[SinkConfig]) -> Result<(), String> {
    match others.iter().any(|o| o.name == sink.name) {
        true => Err(format!(
            "the name {} is taken by another sink; give this one a name= of its own",
            sink.name
        )),
        false => Ok(()),
    }
}

/// The sinks of `--notify` (or `RTINSPECT_NOTIFY`), after the sinks of
/// `--sink` (`taken`), at most [`MAX_SINKS`] in all.
pub(super) fn notify_sinks(
    given: Option<&Given>,
    taken: &[SinkConfig],
) -> Result<Vec<SinkConfig>, ConfigError> {
    let Some(given) = given else {
        return Ok(Vec::new());
    };
    let mut all: Vec<SinkConfig> = taken.to_vec();
    for (i, text) in given.value.split_ascii_whitespace().enumerate() {
        let at = |why: &str| {
            ConfigError::new(format!(
                "invalid {} URL {} ({}): {why}",
                given.source,
                i + 1,
                masked(text)
            ))
        };
        add(&mut all, text, &at)?;
    }
    if all.len() == taken.len() {
        return Err(given.invalid("no URL in it"));
    }
    Ok(all.split_off(taken.len()))
}

/// `--notify-file`: an absolute path, read when the sinks are built.
pub(super) fn notify_file(given: Option<&Given>) -> Result<Option<NotifyFile>, ConfigError> {
    let Some(file) = given else {
        return Ok(None);
    };
    if !file.value.starts_with('/') {
        return Err(file.invalid("expected an absolute path"));
    }
    Ok(Some(NotifyFile { file: file.clone() }))
}

#[cfg(test)]
mod tests;
