//! A Prometheus histogram whose counts are taken together: one mutex per
//! observation and per scrape, so that a scrape never shows a count that
//! disagrees with its buckets.

use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the tick-duration buckets, in seconds: 1 ms to 60 s.
pub(crate) const TICK_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A Prometheus histogram over [`TICK_BUCKETS`]. Its counts sit behind one
/// mutex, taken once per observation and once per scrape, so a scrape never
/// shows a count that disagrees with its buckets.
#[derive(Debug, Default)]
pub struct Histogram(Mutex<HistogramCounts>);

/// The counts of a [`Histogram`] at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HistogramCounts {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [u64; TICK_BUCKETS.len() + 1],
    /// Sum of all observations, in microseconds.
    pub sum_micros: u64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// Records one observation.
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = TICK_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(TICK_BUCKETS.len());
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        counts.buckets[i] += 1;
        counts.sum_micros += d.as_micros() as u64;
        counts.count += 1;
    }

    /// The counts now, all taken together.
    pub fn snapshot(&self) -> HistogramCounts {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl HistogramCounts {
    /// Cumulative counts per bucket, `+Inf` last, as Prometheus wants them.
    pub(crate) fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        self.buckets
            .iter()
            .map(|b| {
                total += b;
                total
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_inf_last() {
        let h = Histogram::default();
        for ms in [0, 1, 2, 40, 70_000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        let c = s.cumulative();
        assert_eq!(c.len(), 16);
        assert_eq!(c[0], 2, "0 ms and 1 ms are <= 1 ms");
        assert_eq!(c[1], 3, "2 ms is <= 2.5 ms");
        assert_eq!(c[5], 4, "40 ms is <= 50 ms");
        assert_eq!(c[14], 4, "70 s is over 60 s");
        assert_eq!(c[15], 5);
        assert_eq!(s.count, 5);
        assert_eq!(s.sum_micros, 70_043_000);
    }
}
