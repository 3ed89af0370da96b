//! The one error of configuration: a bad command line or environment, which
//! the binary reports on one line and exits 64 for.

use std::fmt;

/// A bad command line or environment: exit status 64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What to print after `rtinspect: `, naming the option and (unless it may
    /// hold a secret) the bad value; never more than one line.
    pub message: String,
}

impl ConfigError {
    /// An error with this message, its line breaks made spaces.
    pub(crate) fn new(message: impl Into<String>) -> ConfigError {
        let message: String = message.into();
        ConfigError {
            message: message.replace(['\n', '\r'], " "),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
