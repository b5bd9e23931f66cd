//! The dynamic threshold: a breaker's failure-rate threshold follows the error rate it sees.
//!
//! On each [`tick`](ThresholdAdjuster::tick) the adjuster reads the breaker's own sliding
//! window (`breaker.metrics().window`: what the breaker counts in CLOSED or METRICS_ONLY) and,
//! once it holds `min_calls` calls:
//!
//! * error rate **above** `target`: the threshold moves `step` toward `min_threshold` (more
//!   sensitive: the dependency is degrading, trip sooner);
//! * error rate **below** `target / 2`: it moves `step` toward `max_threshold` (calm: tolerate
//!   the odd burst);
//! * in between: it stays.
//!
//! The threshold never leaves `[min_threshold, max_threshold]` (a threshold configured outside
//! is clamped on the first tick). Each change is published as
//! [`EventKind::ThresholdChanged`] on the breaker's ring, with the breaker's id as source.
//!
//! Why the breaker's window rather than counters of its own: no second recording on the hot
//! path (the design keeps a success at one `fetch_add`), and the rate the threshold is compared
//! with is exactly the rate it adapts to. The cost: while the breaker is OPEN or HALF_OPEN its
//! window is empty and the threshold holds still — which is also what one wants.
//!
//! A tick is O(1) (a metrics read of the breaker: a few atomic loads and a stripe sum); call
//! it from a timer, never per call. Concurrent ticks do not interleave: a tick that finds
//! another in progress does nothing.
//!
//! ```
//! use std::sync::Arc;
//! use surgewall::{Breaker, BreakerConfig, ThresholdAdjuster, ThresholdConfig};
//!
//! let breaker = Arc::new(Breaker::new(
//!     "search",
//!     BreakerConfig::builder().failure_rate(0.5).minimum_calls(10).count_window(10).build()?,
//! ));
//! let adjuster = ThresholdAdjuster::new(breaker.clone(), ThresholdConfig::new(0.05, 0.2, 0.6, 0.1)?)?;
//! for i in 0..10 {
//!     let p = breaker.acquire()?;
//!     if i < 2 { p.failure(); } else { p.success(); } // 20 % errors, above the 5 % target
//! }
//! assert_eq!(adjuster.tick(), Some((0.5, 0.4)));
//! assert_eq!(breaker.failure_rate_threshold(), Some(0.4));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;

use crate::error::{check, ConfigError};
use crate::events::{Event, EventKind};
use crate::sync::{AtomicU64, Ordering};
use crate::Breaker;

/// A validated adjuster configuration.
///
/// ```
/// let c = surgewall::ThresholdConfig::new(0.05, 0.2, 0.6, 0.05)?.min_calls(50);
/// assert_eq!(c.next_threshold(0.6, 0.5), 0.6 - 0.05);
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThresholdConfig {
    target: f64,
    min: f64,
    max: f64,
    step: f64,
    min_calls: Option<u64>,
}

impl ThresholdConfig {
    /// The target error rate in (0, 1], the bounds in (0, 1] with `min <= max`, the target
    /// at most `max` (a target above the highest threshold would never be seen: the breaker
    /// trips first), and the step in (0, 1].
    ///
    /// ```
    /// let err = surgewall::ThresholdConfig::new(0.05, 0.7, 0.6, 0.1).unwrap_err();
    /// assert_eq!(err.field(), "min_threshold");
    /// let err = surgewall::ThresholdConfig::new(0.7, 0.2, 0.6, 0.1).unwrap_err();
    /// assert_eq!(err.field(), "target_error_rate");
    /// ```
    pub fn new(target: f64, min: f64, max: f64, step: f64) -> Result<Self, ConfigError> {
        let positive_rate = |field, v| {
            let v = check::rate(field, v)?;
            if v == 0.0 {
                return Err(ConfigError::new(field, "must be greater than 0"));
            }
            Ok(v)
        };
        let target = positive_rate("target_error_rate", target)?;
        let min = positive_rate("min_threshold", min)?;
        let max = positive_rate("max_threshold", max)?;
        if min > max {
            return Err(ConfigError::new(
                "min_threshold",
                format!("{min} is above max_threshold ({max})"),
            ));
        }
        if target > max {
            return Err(ConfigError::new(
                "target_error_rate",
                format!(
                    "{target} is above max_threshold ({max}): the breaker would trip before the \
                     error rate reached the target"
                ),
            ));
        }
        let step = positive_rate("step", step)?;
        Ok(Self {
            target,
            min,
            max,
            step,
            min_calls: None,
        })
    }

    /// Calls the window must hold before the adjuster acts (default: the breaker's
    /// `minimum_calls`).
    pub fn min_calls(mut self, n: u64) -> Self {
        self.min_calls = Some(n);
        self
    }

    /// The threshold that follows `current` for an observed `error_rate` (the rule in the
    /// module docs; always within the bounds).
    ///
    /// ```
    /// let c = surgewall::ThresholdConfig::new(0.1, 0.2, 0.8, 0.25)?;
    /// assert_eq!(c.next_threshold(0.5, 0.3), 0.25);  // above target: toward min
    /// assert_eq!(c.next_threshold(0.25, 0.3), 0.2);  // ... and not past it
    /// assert_eq!(c.next_threshold(0.5, 0.07), 0.5);  // between target/2 and target: stay
    /// assert_eq!(c.next_threshold(0.5, 0.01), 0.75); // calm: toward max
    /// assert_eq!(c.next_threshold(0.95, 0.07), 0.8); // out of bounds: clamped
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn next_threshold(&self, current: f64, error_rate: f64) -> f64 {
        let t = if error_rate > self.target {
            current - self.step
        } else if error_rate < self.target / 2.0 {
            current + self.step
        } else {
            current
        };
        t.clamp(self.min, self.max)
    }
}

/// What an adjuster has seen and done.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThresholdMetrics {
    /// The breaker's threshold now.
    pub threshold: f64,
    /// The lower bound.
    pub min_threshold: f64,
    /// The upper bound.
    pub max_threshold: f64,
    /// The target error rate.
    pub target_error_rate: f64,
    /// The error rate seen by the last tick that had enough calls; `None` before any such
    /// tick (not measured yet — distinct from a measured 0.0).
    pub last_error_rate: Option<f64>,
    /// Ticks, ever.
    pub ticks: u64,
    /// Threshold changes, ever.
    pub changes: u64,
}

/// Adapts one breaker's failure-rate threshold. Share it with `Arc`; tick it from a timer.
pub struct ThresholdAdjuster {
    breaker: Arc<Breaker>,
    config: ThresholdConfig,
    min_calls: u64,
    busy: AtomicU64,
    ticks: AtomicU64,
    changes: AtomicU64,
    /// The last measured error rate's bits, or [`NOT_MEASURED`].
    last_rate: AtomicU64,
}

/// `last_rate` before any measurement: a NaN payload no error rate (in [0, 1]) can have.
const NOT_MEASURED: u64 = u64::MAX;

impl fmt::Debug for ThresholdAdjuster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThresholdAdjuster")
            .field("breaker", &self.breaker.name())
            .field("config", &self.config)
            .finish()
    }
}

impl ThresholdAdjuster {
    /// An adjuster for `breaker`, which must have a failure-rate rule.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use surgewall::{Breaker, BreakerConfig, ThresholdAdjuster, ThresholdConfig};
    /// let b = Arc::new(Breaker::new("x", BreakerConfig::builder().no_failure_rate().consecutive_failures(3).build()?));
    /// let err = ThresholdAdjuster::new(b, ThresholdConfig::new(0.1, 0.2, 0.8, 0.1)?).unwrap_err();
    /// assert_eq!(err.field(), "failure_rate");
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn new(breaker: Arc<Breaker>, config: ThresholdConfig) -> Result<Self, ConfigError> {
        if breaker.failure_rate_threshold().is_none() {
            return Err(ConfigError::new(
                "failure_rate",
                "the breaker has no failure-rate rule to adjust",
            ));
        }
        let min_calls = config
            .min_calls
            .unwrap_or_else(|| u64::from(breaker.config().minimum_calls()));
        Ok(Self {
            breaker,
            config,
            min_calls: min_calls.max(1),
            busy: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            last_rate: AtomicU64::new(NOT_MEASURED),
        })
    }

    /// The breaker adjusted.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use surgewall::{Breaker, BreakerConfig, ThresholdAdjuster, ThresholdConfig};
    /// # let b = Arc::new(Breaker::new("x", BreakerConfig::default()));
    /// # let adjuster = ThresholdAdjuster::new(b.clone(), ThresholdConfig::new(0.1, 0.2, 0.8, 0.1)?)?;
    /// assert!(Arc::ptr_eq(adjuster.breaker(), &b));
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// Reads the breaker's window and moves its threshold one step if the rule says so;
    /// returns `(old, new)` when it changed.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use surgewall::{Breaker, BreakerConfig, ThresholdAdjuster, ThresholdConfig};
    /// # let b = Arc::new(Breaker::new("x", BreakerConfig::default()));
    /// # let adjuster = ThresholdAdjuster::new(b.clone(), ThresholdConfig::new(0.1, 0.2, 0.8, 0.1)?)?;
    /// assert_eq!(adjuster.tick(), None); // an empty window: 0.5 is within bounds
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn tick(&self) -> Option<(f64, f64)> {
        // Acquire/Release: a tick sees the threshold the previous tick set (the flag orders
        // them); the breaker's own atomics carry the rest.
        if self
            .busy
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let changed = self.step();
        self.busy.store(0, Ordering::Release);
        changed
    }

    fn step(&self) -> Option<(f64, f64)> {
        // Relaxed: statistics.
        self.ticks.fetch_add(1, Ordering::Relaxed);
        let current = self.breaker.failure_rate_threshold()?;
        let m = self.breaker.metrics();
        let next = if m.window.calls >= self.min_calls {
            let rate = m.window.failure_rate();
            self.last_rate.store(rate.to_bits(), Ordering::Relaxed);
            self.config.next_threshold(current, rate)
        } else {
            current.clamp(self.config.min, self.config.max)
        };
        if next == current {
            return None;
        }
        let old = self.breaker.set_failure_rate_threshold(next).ok()?;
        self.changes.fetch_add(1, Ordering::Relaxed);
        self.breaker.events().publish(Event {
            source: self.breaker.id(),
            at_ns: self.breaker.clock().now_ns(),
            kind: EventKind::ThresholdChanged { old, new: next },
        });
        Some((old, next))
    }

    /// A snapshot.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use surgewall::{Breaker, BreakerConfig, ThresholdAdjuster, ThresholdConfig};
    /// # let b = Arc::new(Breaker::new("x", BreakerConfig::default()));
    /// # let adjuster = ThresholdAdjuster::new(b.clone(), ThresholdConfig::new(0.1, 0.2, 0.8, 0.1)?)?;
    /// adjuster.tick();
    /// let m = adjuster.metrics();
    /// assert_eq!((m.ticks, m.threshold), (1, 0.5));
    /// assert_eq!(m.last_error_rate, None); // an empty window: not measured yet
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn metrics(&self) -> ThresholdMetrics {
        ThresholdMetrics {
            threshold: self.breaker.failure_rate_threshold().unwrap_or(f64::NAN),
            min_threshold: self.config.min,
            max_threshold: self.config.max,
            target_error_rate: self.config.target,
            last_error_rate: match self.last_rate.load(Ordering::Relaxed) {
                NOT_MEASURED => None,
                bits => Some(f64::from_bits(bits)),
            },
            ticks: self.ticks.load(Ordering::Relaxed),
            changes: self.changes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests {
    use super::*;
    use crate::events::EventRing;
    use crate::{BreakerConfig, Outcome};
    use proptest::prelude::*;

    fn breaker(threshold: f64) -> Arc<Breaker> {
        let b = Breaker::builder(
            "dep",
            BreakerConfig::builder()
                .failure_rate(threshold)
                .minimum_calls(10)
                .count_window(20)
                .build()
                .unwrap(),
        )
        .events(EventRing::new(256))
        .build();
        b.metrics_only(); // records, never trips: the window always reads
        Arc::new(b)
    }

    fn feed(b: &Breaker, calls: u32, failures: u32) {
        for i in 0..calls {
            let p = b.acquire().unwrap();
            p.record(if i < failures {
                Outcome::Failure
            } else {
                Outcome::Success
            });
        }
    }

    #[test]
    fn moves_toward_min_when_errors_exceed_the_target_and_publishes() {
        let b = breaker(0.5);
        let mut sub = b.events().subscribe();
        let a =
            ThresholdAdjuster::new(b.clone(), ThresholdConfig::new(0.1, 0.2, 0.6, 0.2).unwrap())
                .unwrap();
        feed(&b, 20, 4);
        assert_eq!(a.tick(), Some((0.5, 0.3)));
        assert_eq!(a.tick(), Some((0.3, 0.2)));
        assert_eq!(a.tick(), None, "pinned at min");
        let e = sub.poll().unwrap();
        assert_eq!(
            (e.source, e.kind),
            (b.id(), EventKind::ThresholdChanged { old: 0.5, new: 0.3 })
        );
        let m = a.metrics();
        assert_eq!(
            (m.threshold, m.last_error_rate, m.ticks, m.changes),
            (0.2, Some(0.2), 3, 2)
        );
    }

    #[test]
    fn holds_still_without_enough_calls_but_clamps_into_bounds() {
        let b = breaker(0.9);
        let a =
            ThresholdAdjuster::new(b.clone(), ThresholdConfig::new(0.1, 0.2, 0.6, 0.1).unwrap())
                .unwrap();
        feed(&b, 5, 5);
        assert_eq!(
            a.tick(),
            Some((0.9, 0.6)),
            "clamped, not stepped: 5 calls < minimum 10"
        );
        assert_eq!(a.tick(), None);
        assert_eq!(
            a.metrics().last_error_rate,
            None,
            "5 calls: not measured yet"
        );
        feed(&b, 15, 0);
        a.tick();
        assert_eq!(a.metrics().last_error_rate, Some(0.25), "measured: 5 of 20");
    }

    #[test]
    fn a_measured_zero_is_not_not_measured() {
        let b = breaker(0.5);
        let a =
            ThresholdAdjuster::new(b.clone(), ThresholdConfig::new(0.1, 0.2, 0.6, 0.1).unwrap())
                .unwrap();
        assert_eq!(a.metrics().last_error_rate, None);
        feed(&b, 20, 0);
        a.tick();
        assert_eq!(a.metrics().last_error_rate, Some(0.0));
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let f = |t, lo, hi, s| ThresholdConfig::new(t, lo, hi, s).unwrap_err().field();
        assert_eq!(f(f64::NAN, 0.2, 0.6, 0.1), "target_error_rate");
        assert_eq!(f(0.0, 0.2, 0.6, 0.1), "target_error_rate");
        assert_eq!(f(0.1, -0.2, 0.6, 0.1), "min_threshold");
        assert_eq!(f(0.1, 0.2, 1.5, 0.1), "max_threshold");
        assert_eq!(f(0.1, 0.7, 0.6, 0.1), "min_threshold");
        assert_eq!(f(0.1, 0.2, 0.6, 0.0), "step");
        assert_eq!(
            f(0.7, 0.2, 0.6, 0.1),
            "target_error_rate",
            "target above max"
        );
        assert!(
            ThresholdConfig::new(0.6, 0.2, 0.6, 0.1).is_ok(),
            "target == max"
        );
    }

    proptest! {
        /// The threshold never leaves [min, max] and moves only in the documented direction.
        #[test]
        fn stays_in_bounds_and_moves_the_right_way(
            target in 0.01f64..0.5,
            lo in 0.05f64..0.5,
            span in 0.0f64..0.5,
            step in 0.01f64..0.3,
            start in 0.01f64..1.0,
            batches in proptest::collection::vec((1u32..20, 0.0f64..=1.0), 1..30),
        ) {
            let hi = (lo + span).min(1.0).max(target); // a target above max is refused
            let b = breaker(start);
            let c = ThresholdConfig::new(target, lo, hi, step).unwrap().min_calls(1);
            let a = ThresholdAdjuster::new(b.clone(), c).unwrap();
            for (calls, frac) in batches {
                feed(&b, calls, (f64::from(calls) * frac) as u32);
                let before = b.failure_rate_threshold().unwrap();
                let rate = b.metrics().window.failure_rate();
                a.tick();
                let after = b.failure_rate_threshold().unwrap();
                prop_assert!(lo <= after && after <= hi, "{} outside [{}, {}]", after, lo, hi);
                if before >= lo && before <= hi {
                    if rate > target { prop_assert!(after <= before); }
                    else if rate < target / 2.0 { prop_assert!(after >= before); }
                    else { prop_assert_eq!(after, before); }
                }
            }
        }
    }
}
