//! The notify file (`--notify-file`), read when the sinks are built, once,
//! at start: notification URLs, one a line, in a file of the user
//! rtinspect runs as that only this user may read or write (they hold
//! tokens), as the webhook's URL file is. What is wrong with it (the file,
//! or a line) is bad configuration (exit status 64), said naming the option,
//! the path and the line, a URL shown as its scheme (and a server's host)
//! alone.

use crate::config::{ConfigError, NOTIFY_FILE_LIMIT, NotifyFile, SinkConfig};

use super::url_file::read_private;

/// The sinks of the notify file, after `taken` (the sinks of `--sink` and
/// `--notify`): its URLs read now, each checked as a given one is.
pub(crate) fn sinks(
    file: &NotifyFile,
    taken: &[SinkConfig],
) -> Result<Vec<SinkConfig>, ConfigError> {
    let text = read_private(file.path(), NOTIFY_FILE_LIMIT, &|why| file.invalid(why))?;
    file.sinks(&text, taken)
}
