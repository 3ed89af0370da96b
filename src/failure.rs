//! Why the process ends unsuccessfully, and the exit status that says it:
//! 64 when the operator must change the configuration, 1 when the work
//! failed and retrying may cure it; `status` says what it found by its own
//! (0 all healthy, 1 some game in trouble, 2 it could not look).

use std::fmt;

use crate::Cause;

/// Bad usage or configuration (sysexits' EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

/// Why the process ends unsuccessfully. The variant says whose fault it is,
/// and so the exit status; each keeps the error that caused it.
///
/// Like every error of this crate, its text ends with its cause's text, so
/// it is said whole, on one line, by printing it once: whoever also walks
/// [`source`](std::error::Error::source) would say each cause twice.
#[derive(Debug)]
pub enum Failure {
    /// Exit 64: the configuration cannot work (a CA file that cannot be
    /// read, a hostname that cannot be a host id): the operator must change
    /// it. The cause names the option.
    Usage(Cause),
    /// Exit 1: the work failed (a database, a disk, a thread the system
    /// would not start): retrying may cure it.
    Runtime {
        /// What could not be done, when the cause does not say it itself.
        context: Option<String>,
        /// Why: an error from outside, or a plain message when rtinspect
        /// itself gave up (events left undelivered at the deadline).
        source: Cause,
    },
    /// Exit 2: a command that looks (`status`) could not: dockerd or the
    /// records cannot be reached. The cause names what, and where.
    Unseen(Cause),
    /// The exit status of a command that printed what it found, and whose
    /// status says it to a script (`status`: 1 when a game is in trouble,
    /// 2 when one could not be looked at); nothing more is said.
    Verdict(u8),
}

impl Failure {
    /// A runtime failure: `context` could not be done because of `source`.
    pub(crate) fn runtime(context: impl Into<String>, source: impl Into<Cause>) -> Failure {
        Failure::Runtime {
            context: Some(context.into()),
            source: source.into(),
        }
    }

    /// A runtime failure whose cause says itself what could not be done.
    pub(crate) fn because(source: impl Into<Cause>) -> Failure {
        Failure::Runtime {
            context: None,
            source: source.into(),
        }
    }

    /// A usage failure: the configuration cannot work because of `source`.
    pub(crate) fn usage(source: impl Into<Cause>) -> Failure {
        Failure::Usage(source.into())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(source)
            | Failure::Unseen(source)
            | Failure::Runtime {
                context: None,
                source,
            } => source.fmt(f),
            Failure::Runtime {
                context: Some(context),
                source,
            } => write!(f, "{context}: {source}"),
            Failure::Verdict(status) => write!(f, "exit status {status}"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Runtime {
                context: Some(_),
                source,
            } => Some(source.as_ref()),
            // Its text is the cause's own: the chain goes on below it.
            Failure::Usage(source)
            | Failure::Unseen(source)
            | Failure::Runtime {
                context: None,
                source,
            } => source.source(),
            Failure::Verdict(_) => None,
        }
    }
}

impl Failure {
    /// The process's exit status for this failure.
    pub fn exit_status(&self) -> u8 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Runtime { .. } => 1,
            Failure::Unseen(_) => 2,
            Failure::Verdict(status) => *status,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;
    use std::path::PathBuf;

    use super::*;
    use crate::state::StateError;

    #[test]
    fn a_runtime_failure_says_what_failed_then_why_and_keeps_the_cause() {
        let f = Failure::runtime(
            "cannot start the publisher thread",
            io::Error::other("Resource temporarily unavailable"),
        );
        assert_eq!(
            f.to_string(),
            "cannot start the publisher thread: Resource temporarily unavailable"
        );
        let cause = f.source().expect("the cause is kept");
        assert!(cause.downcast_ref::<io::Error>().is_some());
    }

    #[test]
    fn a_failure_whose_cause_says_it_all_is_that_cause_and_its_chain_names_each_error_once() {
        let state = || StateError {
            path: PathBuf::from("/var/lib/rtinspect/spool.jsonl"),
            source: io::Error::other("No space left on device"),
        };
        for f in [Failure::because(state()), Failure::usage(state())] {
            assert_eq!(
                f.to_string(),
                "/var/lib/rtinspect/spool.jsonl: No space left on device"
            );
            // Below it, the cause's own cause: not the cause a second time.
            let below = f.source().expect("the chain is kept");
            assert_eq!(below.to_string(), "No space left on device");
            assert!(below.source().is_none());
        }
    }

    #[test]
    fn a_failure_rtinspect_itself_gives_is_its_message() {
        let f = Failure::because("2 events could not be delivered");
        assert_eq!(f.to_string(), "2 events could not be delivered");
        assert!(f.source().is_none());
        assert!(matches!(f, Failure::Runtime { context: None, .. }));
    }
}
