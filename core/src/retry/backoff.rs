//! Backoff and jitter: how long to wait before the n-th retry.
//!
//! All arithmetic is in nanoseconds; every delay is capped at the policy's `max_delay` when one
//! is set (there is no default cap).
//! The bounds each kind keeps (invariant I10, pinned by `retry::tests::delays_stay_within_*`):
//!
//! | kind | un-jittered delay `b(n)` before retry n (n = 1 first) |
//! |---|---|
//! | none | `0`: retry at once (an explicit choice, never a zero delay of another kind) |
//! | constant | `delay` |
//! | linear | `initial + step * (n - 1)` |
//! | exponential | `initial * multiplier^(n - 1)` |
//!
//! Every other kind's delays are positive: its first delay (`delay`, `initial`, `base`) must be
//! longer than zero (as resilience4j validates its intervals), so a zero that slipped in (a
//! unit mistake, a missing setting) is an error rather than a hot retry loop.
//!
//! Each is capped at `max_delay` (when set), then jittered:
//!
//! | jitter | delay |
//! |---|---|
//! | none | `b` |
//! | full | uniform in `[0, b]` |
//! | equal | `b/2 + uniform in [0, b - b/2]`, so within `[b/2, b]` (`b/2` rounded down) |
//!
//! Decorrelated jitter (the bounded AWS variant) ignores the jitter setting: its first delay is
//! drawn from `[base, 3 * base]`, each next one from `[base, max(base, 3 * previous)]` where
//! `previous` is the delay actually used (a `Retry-After` or breaker wait included), capped at
//! `max_delay` when set (when `base > max_delay` every delay is `max_delay`).

use std::time::Duration;

use crate::clock::duration_ns;

/// How delays grow from one retry to the next. Plain values, so bindings can build them.
///
/// ```
/// use std::time::Duration;
/// use surgewall::Backoff;
///
/// let b = Backoff::exponential(Duration::from_millis(100), 2.0);
/// assert_eq!(b, Backoff::Exponential { initial: Duration::from_millis(100), multiplier: 2.0 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backoff {
    /// No wait at all: each retry starts as soon as the schedule allows it. The one way to
    /// retry without waiting (every other kind's delays are longer than zero).
    None,
    /// The same delay every time.
    Constant {
        /// The delay (> 0).
        delay: Duration,
    },
    /// `initial`, then `step` longer each retry.
    Linear {
        /// The first delay (> 0).
        initial: Duration,
        /// Added per retry.
        step: Duration,
    },
    /// `initial`, then `multiplier` times longer each retry.
    Exponential {
        /// The first delay (> 0).
        initial: Duration,
        /// The growth factor (>= 1, finite).
        multiplier: f64,
    },
    /// AWS "decorrelated jitter", bounded: uniform in `[base, 3 * previous delay]`, capped.
    DecorrelatedJitter {
        /// The shortest delay (> 0).
        base: Duration,
    },
}

impl Backoff {
    /// The default backoff of a [`RetryPolicy`](crate::RetryPolicy): exponential from 100 ms,
    /// doubling. Bindings read it through the C ABI (`surgewall_retry_defaults_get`).
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(surgewall::Backoff::DEFAULT, surgewall::Backoff::exponential(Duration::from_millis(100), 2.0));
    /// ```
    pub const DEFAULT: Backoff = Backoff::Exponential {
        initial: Duration::from_millis(100),
        multiplier: 2.0,
    };

    /// [`Backoff::None`]: retry without waiting.
    ///
    /// ```
    /// assert_eq!(surgewall::Backoff::none(), surgewall::Backoff::None);
    /// ```
    pub fn none() -> Self {
        Backoff::None
    }

    /// [`Backoff::Constant`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = surgewall::Backoff::constant(Duration::from_secs(1));
    /// assert!(matches!(b, surgewall::Backoff::Constant { .. }));
    /// ```
    pub fn constant(delay: Duration) -> Self {
        Backoff::Constant { delay }
    }

    /// [`Backoff::Linear`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = surgewall::Backoff::linear(Duration::from_millis(100), Duration::from_millis(50));
    /// assert!(matches!(b, surgewall::Backoff::Linear { .. }));
    /// ```
    pub fn linear(initial: Duration, step: Duration) -> Self {
        Backoff::Linear { initial, step }
    }

    /// [`Backoff::Exponential`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = surgewall::Backoff::exponential(Duration::from_millis(100), 2.0);
    /// assert!(matches!(b, surgewall::Backoff::Exponential { .. }));
    /// ```
    pub fn exponential(initial: Duration, multiplier: f64) -> Self {
        Backoff::Exponential {
            initial,
            multiplier,
        }
    }

    /// [`Backoff::DecorrelatedJitter`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = surgewall::Backoff::decorrelated_jitter(Duration::from_millis(100));
    /// assert!(matches!(b, surgewall::Backoff::DecorrelatedJitter { .. }));
    /// ```
    pub fn decorrelated_jitter(base: Duration) -> Self {
        Backoff::DecorrelatedJitter { base }
    }

    /// The un-jittered delay before retry `n` (1 = the first retry), capped at `max_ns`.
    /// For decorrelated jitter: its lower bound, `min(base, max)`.
    pub(crate) fn base_ns(&self, n: u32, max_ns: u64) -> u64 {
        let k = f64::from(n.saturating_sub(1));
        let raw = match *self {
            Backoff::None => 0.0,
            Backoff::Constant { delay } => duration_ns(delay) as f64,
            Backoff::Linear { initial, step } => {
                duration_ns(initial) as f64 + duration_ns(step) as f64 * k
            }
            Backoff::Exponential {
                initial,
                multiplier,
            } => {
                let exp = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
                duration_ns(initial) as f64 * multiplier.powi(exp)
            }
            Backoff::DecorrelatedJitter { base } => duration_ns(base) as f64,
        };
        // `as` saturates (and maps NaN to 0), so huge growth cannot wrap.
        (raw.min(max_ns as f64) as u64).min(max_ns)
    }
}

/// How a computed delay is randomised (not used by [`Backoff::DecorrelatedJitter`]).
///
/// ```
/// assert_eq!(surgewall::Jitter::Full.as_str(), "full");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Jitter {
    /// The delay as computed.
    None = 0,
    /// Uniform in `[0, delay]`.
    Full = 1,
    /// Uniform in `[delay / 2, delay]`.
    Equal = 2,
}

impl Jitter {
    /// A lower-case name (`"none"`, `"full"`, `"equal"`).
    ///
    /// ```
    /// assert_eq!(surgewall::Jitter::Equal.as_str(), "equal");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Jitter::None => "none",
            Jitter::Full => "full",
            Jitter::Equal => "equal",
        }
    }

    /// The range this jitter draws from for an un-jittered delay `b` (closed bounds).
    pub(crate) fn bounds(self, b: u64) -> (u64, u64) {
        match self {
            Jitter::None => (b, b),
            Jitter::Full => (0, b),
            Jitter::Equal => (b / 2, b),
        }
    }
}

/// A uniform draw in the closed range `[lo, hi]` from `u` in [0, 1).
pub(crate) fn draw(lo: u64, hi: u64, u: f64) -> u64 {
    if hi <= lo {
        return lo;
    }
    let span = (hi - lo) as f64;
    // u < 1, so u * (span + 1) < span + 1 and the floor is at most span; min() guards rounding.
    lo + ((u * (span + 1.0)) as u64).min(hi - lo)
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn kinds_grow_as_documented_and_cap() {
        let max = 1_000 * MS;
        let c = Backoff::constant(Duration::from_millis(7));
        assert_eq!((c.base_ns(1, max), c.base_ns(9, max)), (7 * MS, 7 * MS));
        let l = Backoff::linear(Duration::from_millis(100), Duration::from_millis(50));
        assert_eq!(
            [l.base_ns(1, max), l.base_ns(2, max), l.base_ns(3, max)],
            [100 * MS, 150 * MS, 200 * MS]
        );
        assert_eq!(l.base_ns(100, max), max);
        let e = Backoff::exponential(Duration::from_millis(100), 2.0);
        assert_eq!(
            [e.base_ns(1, max), e.base_ns(2, max), e.base_ns(4, max)],
            [100 * MS, 200 * MS, 800 * MS]
        );
        assert_eq!(e.base_ns(5, max), max);
        assert_eq!(e.base_ns(u32::MAX, max), max);
    }

    #[test]
    fn none_never_waits() {
        let n = Backoff::none();
        assert_eq!((n.base_ns(1, u64::MAX), n.base_ns(9, 5)), (0, 0));
        assert_eq!(Jitter::Full.bounds(n.base_ns(3, u64::MAX)), (0, 0));
    }

    #[test]
    fn draws_cover_closed_ranges() {
        assert_eq!(draw(5, 5, 0.99), 5);
        assert_eq!(draw(0, 10, 0.0), 0);
        assert_eq!(draw(0, 10, 0.999_999), 10);
        assert!(draw(3, u64::MAX, 0.999_999_999_999) > 3);
        assert_eq!(draw(3, 1 << 40, 0.999_999_999_999_9), 1 << 40);
        assert_eq!(Jitter::Equal.bounds(7), (3, 7));
    }
}
