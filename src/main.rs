//! The `rtinspect` binary: parse the configuration, start logging, run, and map
//! the outcome to an exit status.

use std::process::ExitCode;

use rtinspect::config::{Command, Config, USAGE};
use rtinspect::daemon::{self, Failure};

/// Bad usage or configuration (sysexits' EX_USAGE).
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    run()
}

fn run() -> ExitCode {
    let config = match Config::parse(std::env::args().skip(1), &|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rtinspect: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match config.command {
        Command::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("rtinspect {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    rtinspect::logging::init(config.log_format);
    match daemon::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            log::error!("{message}");
            eprintln!("rtinspect: {message}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Runtime(message)) => {
            log::error!("{message}");
            ExitCode::FAILURE
        }
    }
}
