//! The `rtinspect` binary: parse the configuration, start logging, run, and map
//! the outcome to an exit status.

use std::io::Write;
use std::process::ExitCode;

use rtinspect::config::{Config, Invocation, usage};
use rtinspect::daemon;
use rtinspect::failure::{EXIT_USAGE, Failure};

fn main() -> ExitCode {
    run()
}

fn run() -> ExitCode {
    // The `_os` readers: `std::env::args()` panics on an argument that is not
    // UTF-8, and `var()` hides such a value; the parser refuses it by name.
    let parsed = Config::parse(std::env::args_os().skip(1), &|name| std::env::var_os(name));
    let config = match parsed {
        Ok(Invocation::Command(config)) => *config,
        Ok(Invocation::Help) => return print(&usage()),
        Ok(Invocation::Version) => {
            return print(&format!("rtinspect {}\n", env!("CARGO_PKG_VERSION")));
        }
        Err(e) => return usage_error(&e.to_string()),
    };
    // The log filter is read by the logger, not the parser: refuse it here
    // the same way, rather than let a bad one silently mean `info`.
    if std::env::var_os("RUST_LOG").is_some_and(|v| v.to_str().is_none()) {
        return usage_error("invalid RUST_LOG: not valid UTF-8");
    }
    rtinspect::logging::init(config.log_format);
    if config.answers() && std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    for ignored in &config.ignored {
        log::debug!("{ignored}");
    }
    // A failure's text holds its causes, each once: printed whole, on one line.
    match daemon::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure @ Failure::Usage(_)) => usage_error(&failure.to_string()),
        // Said already, on stdout: the status is the answer.
        Err(Failure::Verdict(status)) => ExitCode::from(status),
        Err(failure) => {
            log::error!("{failure}");
            ExitCode::from(failure.exit_status())
        }
    }
}

/// `text` on stdout; a closed or full stdout is a failure, not a panic.
fn print(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "rtinspect: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Bad usage or configuration: one line on stderr, once, and exit 64.
fn usage_error(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "rtinspect: {message}");
    ExitCode::from(EXIT_USAGE)
}
