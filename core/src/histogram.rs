//! Duration histograms: the time timed calls took (breakers that time calls) and the time
//! callers waited for a bulkhead slot, in the fixed buckets Prometheus uses by default.
//!
//! Counts are striped (each thread adds to its own cache line), so a timed call pays one
//! uncontended `fetch_add` for its bucket and one for the sum, and a reader adds the stripes up
//! when it asks (a [`Durations`] snapshot, at scrape time).

use std::time::Duration;

use crate::clock::duration_ns;
use crate::stripe::Striped;

/// The upper bounds of the buckets, in seconds (Prometheus' default buckets); a last bucket,
/// `+Inf`, takes the rest.
pub const BUCKETS_SECONDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const BOUNDS_NS: [u64; 11] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Lanes: one count per bucket (the last is `+Inf`), then the sum in nanoseconds.
const LANES: usize = BOUNDS_NS.len() + 2;
const SUM: usize = LANES - 1;

/// A histogram of durations (see the [module docs](self)).
pub(crate) struct DurationHistogram {
    counts: Striped<LANES>,
}

/// What a duration histogram held when read (`BreakerMetrics::call_durations`,
/// `BulkheadMetrics::wait_durations`).
///
/// ```
/// use std::time::Duration;
/// use surgewall::histogram::{Durations, BUCKETS_SECONDS};
///
/// let d = Durations::default();
/// assert_eq!(d.counts.len(), BUCKETS_SECONDS.len() + 1); // the last bucket is +Inf
/// assert_eq!((d.count(), d.sum), (0, Duration::ZERO));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durations {
    /// Observations per bucket, not cumulative: `counts[i]` fell in
    /// `(BUCKETS_SECONDS[i - 1], BUCKETS_SECONDS[i]]`, the last in `(10 s, +Inf)`.
    pub counts: [u64; BUCKETS_SECONDS.len() + 1],
    /// The sum of all observations.
    pub sum: Duration,
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            counts: [0; BUCKETS_SECONDS.len() + 1],
            sum: Duration::ZERO,
        }
    }
}

impl Durations {
    /// Observations, all buckets together.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl DurationHistogram {
    pub(crate) fn new() -> Self {
        DurationHistogram {
            counts: Striped::new(),
        }
    }

    /// Counts one observation (a partition point over 11 bounds: a few compares).
    #[inline]
    pub(crate) fn observe(&self, d: Duration) {
        let ns = duration_ns(d);
        let bucket = BOUNDS_NS.partition_point(|&b| b < ns);
        self.counts.add(bucket, 1);
        self.counts.add(SUM, ns);
    }

    pub(crate) fn snapshot(&self) -> Durations {
        let mut d = Durations::default();
        for (i, c) in d.counts.iter_mut().enumerate() {
            *c = self.counts.sum(i);
        }
        d.sum = Duration::from_nanos(self.counts.sum(SUM));
        d
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests {
    use super::*;

    #[test]
    fn each_duration_lands_in_the_first_bucket_whose_bound_holds_it() {
        let h = DurationHistogram::new();
        for ms in [0, 5, 6, 100, 101, 10_000, 10_001, 3_600_000] {
            h.observe(Duration::from_millis(ms));
        }
        let d = h.snapshot();
        // bounds are inclusive (Prometheus' `le`): 5 ms is in the first bucket, 6 ms in the second
        assert_eq!(d.counts, [2, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 2]);
        assert_eq!(d.count(), 8);
        assert_eq!(
            d.sum,
            Duration::from_millis(5 + 6 + 100 + 101 + 10_000 + 10_001 + 3_600_000)
        );
        assert_eq!(BUCKETS_SECONDS.map(|s| (s * 1e9) as u64), BOUNDS_NS);
    }

    #[test]
    fn a_timing_breaker_keeps_its_call_durations_and_an_untimed_one_none() {
        use crate::{Breaker, BreakerConfig, Outcome};
        let timed = BreakerConfig::builder()
            .slow_calls(0.9, Duration::from_secs(1))
            .build()
            .unwrap();
        let b = Breaker::new("timed", timed);
        for (ms, outcome) in [
            (3, Outcome::Success),
            (40, Outcome::Failure),
            (7_000, Outcome::Success),
        ] {
            let p = b.try_acquire_raw().unwrap();
            b.record_raw_with_duration(p, outcome, Duration::from_millis(ms));
        }
        let d = b
            .metrics()
            .call_durations
            .expect("a timing breaker has a histogram");
        assert_eq!(
            (d.count(), d.counts[0], d.counts[3], d.counts[10]),
            (3, 1, 1, 1)
        );
        assert_eq!(d.sum, Duration::from_millis(7_043));
        let untimed = Breaker::new("untimed", BreakerConfig::default());
        assert_eq!(untimed.metrics().call_durations, None);
    }
}
