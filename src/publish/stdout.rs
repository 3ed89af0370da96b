//! The stdout sink: each event's envelope as one line on a writer (the
//! process's standard output), flushed at once; a closed or full stdout is
//! the reader's outage.

use std::io::Write;

use super::sink::{EventSink, SinkError};
use crate::event::HealthEvent;

/// Writes each envelope as one line and flushes it.
#[derive(Debug)]
pub(crate) struct StdoutSink<W: Write + Send> {
    out: W,
}

impl StdoutSink<std::io::Stdout> {
    /// A sink on the process's standard output.
    pub(crate) fn stdout() -> Self {
        StdoutSink {
            out: std::io::stdout(),
        }
    }
}

#[cfg(test)]
impl<W: Write + Send> StdoutSink<W> {
    /// A sink on any writer.
    fn new(out: W) -> Self {
        StdoutSink { out }
    }

    /// The writer.
    fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> EventSink for StdoutSink<W> {
    fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
        let envelope = event.envelope();
        let mut line = Vec::with_capacity(envelope.as_str().len() + 1);
        line.extend_from_slice(envelope.as_str().as_bytes());
        line.push(b'\n');
        // A closed or full stdout is the reader's outage, not this event's fault.
        self.out
            .write_all(&line)
            .and_then(|()| self.out.flush())
            .map_err(|e| SinkError::Unavailable(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::stopped_event as event;

    #[test]
    fn stdout_sink_writes_one_line_per_event() {
        let mut sink = StdoutSink::new(Vec::new());
        let (a, b) = (event("a"), event("b"));
        sink.publish(&a).unwrap();
        sink.publish(&b).unwrap();
        let out = String::from_utf8(sink.into_inner()).unwrap();
        assert_eq!(
            out,
            format!("{}\n{}\n", a.envelope().as_str(), b.envelope().as_str())
        );
    }
}
