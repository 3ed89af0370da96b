//! What a command says on stdout: written whole and flushed, and a closed
//! stdout a failure to report, not a panic (as `println!` would make it).

use crate::failure::Failure;

/// `text` on stdout; a closed stdout is a failure to report, not a panic
/// (as `println!` would make it).
pub(crate) fn print_out(text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::runtime("cannot write to stdout", e))
}
