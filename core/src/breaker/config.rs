//! Breaker configuration: a validated value built by [`BreakerConfigBuilder`].

use std::time::Duration;

use crate::error::{check, ConfigError};

use super::state::MAX_HALF_OPEN_CALLS;

/// The sliding window the trip rules look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last `duration`, in `buckets` equal buckets (whole buckets leave the window).
    Time {
        /// How far back the window reaches.
        duration: Duration,
        /// How many buckets it is cut into (1..=1024).
        buckets: u32,
    },
    /// The last `calls` recorded calls. Exact up to 64 calls; above that the window moves in
    /// steps of `calls / 64` calls.
    Count {
        /// How many calls.
        calls: u32,
    },
}

/// How the open wait grows with consecutive openings.
///
/// The n-th consecutive opening (n = 0 for the first) waits
/// `min(open_for * multiplier^n, max_open_for)`, then jitter moves it uniformly within
/// `[wait * (1 - jitter), wait * (1 + jitter)]`, and the result is capped at `max_open_for` again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpenBackoff {
    /// The growth factor (>= 1).
    pub multiplier: f64,
    /// The longest wait.
    pub max_open_for: Duration,
    /// The jitter fraction in [0, 1].
    pub jitter: f64,
}

/// A validated breaker configuration. Build one with [`BreakerConfig::builder`].
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_call_rate: Option<f64>,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) time_calls: bool,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) minimum_calls: u32,
    pub(crate) window: Window,
    pub(crate) open_for: Duration,
    pub(crate) backoff: OpenBackoff,
    pub(crate) half_open_calls: u32,
    pub(crate) half_open_max_duration: Duration,
    pub(crate) seed: Option<u64>,
}

impl Default for BreakerConfig {
    /// Failure rate 50 % over a 60 s window of 10 buckets once 20 calls are in it; open for
    /// 5 s; 3 probes, reclaimed after 60 s; no slow-call or consecutive-failure rule.
    fn default() -> Self {
        BreakerConfigBuilder::default()
            .build()
            .expect("the defaults are valid")
    }
}

impl BreakerConfig {
    /// A builder starting from the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::BreakerConfig;
    ///
    /// let config = BreakerConfig::builder()
    ///     .failure_rate(0.25)
    ///     .slow_calls(0.5, Duration::from_millis(300))
    ///     .consecutive_failures(10)
    ///     .time_window(Duration::from_secs(30), 10)
    ///     .minimum_calls(50)
    ///     .open_for(Duration::from_secs(2))
    ///     .open_backoff(2.0, Duration::from_secs(60), 0.1)
    ///     .half_open_calls(5)
    ///     .build()?;
    /// assert_eq!(config.half_open_calls(), 5);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder::default()
    }

    /// The failure-rate threshold, if that rule is on.
    pub fn failure_rate(&self) -> Option<f64> {
        self.failure_rate
    }
    /// The slow-call-rate threshold, if that rule is on.
    pub fn slow_call_rate(&self) -> Option<f64> {
        self.slow_call_rate
    }
    /// The duration from which a call counts as slow, if slow calls are detected.
    pub fn slow_call_duration(&self) -> Option<Duration> {
        self.slow_call_duration
    }
    /// Whether the breaker times calls itself (precise clock at acquire and record).
    pub fn times_calls(&self) -> bool {
        self.time_calls
    }
    /// The consecutive-failure limit, if that rule is on.
    pub fn consecutive_failures(&self) -> Option<u32> {
        self.consecutive_failures
    }
    /// Calls needed in the window before the rate rules apply.
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }
    /// The window.
    pub fn window(&self) -> Window {
        self.window
    }
    /// The first open wait.
    pub fn open_for(&self) -> Duration {
        self.open_for
    }
    /// How the open wait grows.
    pub fn open_backoff(&self) -> OpenBackoff {
        self.backoff
    }
    /// Probes per half-open episode.
    pub fn half_open_calls(&self) -> u32 {
        self.half_open_calls
    }
    /// How long a half-open episode may wait for its probes.
    pub fn half_open_max_duration(&self) -> Duration {
        self.half_open_max_duration
    }
    /// The `retry_after` of a "half-open full" rejection (every probe is out): a tenth of
    /// [`open_for`](Self::open_for), at least 1 ms and at most [`HALF_OPEN_RETRY_HINT_MAX`],
    /// and never longer than [`half_open_max_duration`](Self::half_open_max_duration) (a
    /// rejection also never waits past the moment stuck probes are reclaimed). A probe may
    /// report within milliseconds, so a caller polls on this short hint rather than sleeping
    /// until the reclaim.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::BreakerConfig;
    ///
    /// let c = BreakerConfig::builder().open_for(Duration::from_secs(5)).build()?;
    /// assert_eq!(c.half_open_retry_hint(), Duration::from_millis(500));
    /// let c = BreakerConfig::builder().open_for(Duration::from_secs(60)).build()?;
    /// assert_eq!(c.half_open_retry_hint(), Duration::from_secs(1));
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn half_open_retry_hint(&self) -> Duration {
        (self.open_for / 10)
            .clamp(Duration::from_millis(1), HALF_OPEN_RETRY_HINT_MAX)
            .min(self.half_open_max_duration)
    }
}

/// The longest `retry_after` of a "half-open full" rejection (see
/// [`BreakerConfig::half_open_retry_hint`]).
pub const HALF_OPEN_RETRY_HINT_MAX: Duration = Duration::from_secs(1);

/// Builds a [`BreakerConfig`]; [`build`](Self::build) validates every field.
///
/// Float setters take `f64` and durations take [`Duration`] (the `_secs` variants take float
/// seconds for bindings); bad values are reported by `build`, naming the field.
#[derive(Clone, Debug)]
pub struct BreakerConfigBuilder {
    failure_rate: Option<f64>,
    slow_call_rate: Option<f64>,
    slow_call_duration: Option<Result<Duration, ConfigError>>,
    time_calls: bool,
    consecutive_failures: Option<u32>,
    minimum_calls: u32,
    window: Window,
    open_for: Result<Duration, ConfigError>,
    multiplier: f64,
    max_open_for: Option<Result<Duration, ConfigError>>,
    jitter: f64,
    half_open_calls: u32,
    half_open_max_duration: Result<Duration, ConfigError>,
    seed: Option<u64>,
}

impl Default for BreakerConfigBuilder {
    fn default() -> Self {
        Self {
            failure_rate: Some(0.5),
            slow_call_rate: None,
            slow_call_duration: None,
            time_calls: true,
            consecutive_failures: None,
            minimum_calls: 20,
            window: Window::Time {
                duration: Duration::from_secs(60),
                buckets: 10,
            },
            open_for: Ok(Duration::from_secs(5)),
            multiplier: 1.0,
            max_open_for: None,
            jitter: 0.0,
            half_open_calls: 3,
            half_open_max_duration: Ok(Duration::from_secs(60)),
            seed: None,
        }
    }
}

impl BreakerConfigBuilder {
    /// Trip when the failure rate in the window is at least `threshold` (in (0, 1]).
    pub fn failure_rate(mut self, threshold: f64) -> Self {
        self.failure_rate = Some(threshold);
        self
    }
    /// Turn the failure-rate rule off (leave only the slow-call or consecutive rules).
    pub fn no_failure_rate(mut self) -> Self {
        self.failure_rate = None;
        self
    }
    /// Count a call as slow from `duration`, and trip when the slow rate reaches `threshold`.
    pub fn slow_calls(mut self, threshold: f64, duration: Duration) -> Self {
        self.slow_call_rate = Some(threshold);
        self.slow_call_duration = Some(check::non_zero("slow_call_duration", duration));
        self
    }
    /// [`slow_calls`](Self::slow_calls) with the duration in float seconds.
    pub fn slow_calls_secs(mut self, threshold: f64, seconds: f64) -> Self {
        self.slow_call_rate = Some(threshold);
        self.slow_call_duration = Some(
            check::seconds("slow_call_duration", seconds)
                .and_then(|d| check::non_zero("slow_call_duration", d)),
        );
        self
    }
    /// Whether the breaker times calls itself with the precise clock (default on when slow
    /// calls are configured). Turn it off when callers always pass the duration.
    pub fn time_calls(mut self, on: bool) -> Self {
        self.time_calls = on;
        self
    }
    /// Trip on the `n`-th consecutive failure.
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = Some(n);
        self
    }
    /// Calls needed in the window before the rate rules apply.
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.minimum_calls = n;
        self
    }
    /// A time window of `duration` in `buckets` buckets.
    pub fn time_window(mut self, duration: Duration, buckets: u32) -> Self {
        self.window = Window::Time { duration, buckets };
        self
    }
    /// A window of the last `calls` calls.
    pub fn count_window(mut self, calls: u32) -> Self {
        self.window = Window::Count { calls };
        self
    }
    /// The window, as a value.
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }
    /// How long the breaker stays open before probing.
    pub fn open_for(mut self, d: Duration) -> Self {
        self.open_for = check::non_zero("open_for", d);
        self
    }
    /// [`open_for`](Self::open_for) in float seconds.
    pub fn open_for_secs(mut self, seconds: f64) -> Self {
        self.open_for =
            check::seconds("open_for", seconds).and_then(|d| check::non_zero("open_for", d));
        self
    }
    /// Grow the open wait by `multiplier` per consecutive opening, up to `max`, with
    /// `jitter` (a fraction in [0, 1]).
    pub fn open_backoff(mut self, multiplier: f64, max: Duration, jitter: f64) -> Self {
        self.multiplier = multiplier;
        self.max_open_for = Some(check::non_zero("max_open_for", max));
        self.jitter = jitter;
        self
    }
    /// Probes admitted per half-open episode.
    pub fn half_open_calls(mut self, n: u32) -> Self {
        self.half_open_calls = n;
        self
    }
    /// How long a half-open episode waits for its probes before it reopens.
    pub fn half_open_max_duration(mut self, d: Duration) -> Self {
        self.half_open_max_duration = check::non_zero("half_open_max_duration", d);
        self
    }
    /// Seed the jitter of the open wait (deterministic tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<BreakerConfig, ConfigError> {
        // A threshold of 0 would trip on any window that reaches minimum_calls: (0, 1].
        let failure_rate = self
            .failure_rate
            .map(|r| check::threshold("failure_rate", r))
            .transpose()?;
        let slow_call_rate = self
            .slow_call_rate
            .map(|r| check::threshold("slow_call_rate", r))
            .transpose()?;
        let slow_call_duration = self.slow_call_duration.transpose()?;
        let consecutive_failures = self
            .consecutive_failures
            .map(|n| check::at_least("consecutive_failures", n.into(), 1).map(|_| n))
            .transpose()?;
        if failure_rate.is_none() && slow_call_rate.is_none() && consecutive_failures.is_none() {
            return Err(ConfigError::new(
                "failure_rate",
                "no trip rule is configured: set a failure rate, a slow-call rate or consecutive failures",
            ));
        }
        check::at_least("minimum_calls", self.minimum_calls.into(), 1)?;
        match self.window {
            Window::Time { duration, buckets } => {
                check::non_zero("window", duration)?;
                if !(1..=1024).contains(&buckets) {
                    return Err(ConfigError::new(
                        "window.buckets",
                        format!("must be within 1..=1024, got {buckets}"),
                    ));
                }
                if duration / buckets < Duration::from_micros(1) {
                    return Err(ConfigError::new(
                        "window.buckets",
                        format!("buckets of {duration:?} / {buckets} are shorter than 1 µs"),
                    ));
                }
            }
            Window::Count { calls } => {
                check::at_least("window.calls", calls.into(), 1)?;
                if self.minimum_calls > calls {
                    return Err(ConfigError::new(
                        "minimum_calls",
                        format!(
                            "{} is larger than the count window of {calls} calls, so the rate rules could never apply",
                            self.minimum_calls
                        ),
                    ));
                }
            }
        }
        let open_for = within_deadline_range("open_for", self.open_for?)?;
        let multiplier = check::non_negative("open_backoff.multiplier", self.multiplier)?;
        if multiplier < 1.0 {
            return Err(ConfigError::new(
                "open_backoff.multiplier",
                format!("must be at least 1 (the wait never shrinks), got {multiplier}"),
            ));
        }
        let max_open_for = match self.max_open_for {
            Some(m) => within_deadline_range("max_open_for", m?)?,
            None => open_for,
        };
        if max_open_for < open_for {
            return Err(ConfigError::new(
                "max_open_for",
                format!("{max_open_for:?} is shorter than open_for {open_for:?}"),
            ));
        }
        let jitter = check::rate("open_backoff.jitter", self.jitter)?;
        check::at_least("half_open_calls", self.half_open_calls.into(), 1)?;
        if u64::from(self.half_open_calls) > MAX_HALF_OPEN_CALLS {
            return Err(ConfigError::new(
                "half_open_calls",
                format!(
                    "must be at most {MAX_HALF_OPEN_CALLS}, got {}",
                    self.half_open_calls
                ),
            ));
        }
        let half_open_max_duration =
            within_deadline_range("half_open_max_duration", self.half_open_max_duration?)?;
        Ok(BreakerConfig {
            failure_rate,
            slow_call_rate,
            slow_call_duration,
            time_calls: self.time_calls && slow_call_duration.is_some(),
            consecutive_failures,
            minimum_calls: self.minimum_calls,
            window: self.window,
            open_for,
            backoff: OpenBackoff {
                multiplier,
                max_open_for,
                jitter,
            },
            half_open_calls: self.half_open_calls,
            half_open_max_duration,
            seed: self.seed,
        })
    }
}

/// The longest wait a breaker can keep: 2^47 - 1 µs, about 4.46 years. Deadlines are kept in
/// 48 bits of microseconds modulo 2^48 (so they work at any clock reading) and read as "time
/// left" within half that range; a longer `open_for`, `max_open_for` or
/// `half_open_max_duration` would read as already over, so configurations refuse it. A forced
/// open for longer holds until changed.
pub const MAX_WAIT: Duration = Duration::from_micros((1 << 47) - 1);

fn within_deadline_range(field: &'static str, d: Duration) -> Result<Duration, ConfigError> {
    if d > MAX_WAIT {
        return Err(ConfigError::new(
            field,
            format!("{d:?} is longer than the longest wait a breaker keeps, {MAX_WAIT:?} (about 4.46 years)"),
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(b: BreakerConfigBuilder) -> &'static str {
        b.build().unwrap_err().field()
    }

    #[test]
    fn bad_values_name_their_field() {
        let b = BreakerConfig::builder;
        assert_eq!(field(b().failure_rate(f64::NAN)), "failure_rate");
        assert_eq!(field(b().failure_rate(-0.1)), "failure_rate");
        assert_eq!(field(b().failure_rate(1.5)), "failure_rate");
        assert_eq!(field(b().failure_rate(0.0)), "failure_rate");
        // The message states the interval the rule takes, (0, 1], and does not repeat the field.
        for bad in [0.0, 1.5] {
            let e = b().failure_rate(bad).build().unwrap_err();
            assert_eq!(e.reason(), format!("must be within (0, 1], got {bad}"));
        }
        assert_eq!(
            field(b().slow_calls(0.0, Duration::from_secs(1))),
            "slow_call_rate"
        );
        assert_eq!(
            field(b().slow_calls(f64::INFINITY, Duration::from_secs(1))),
            "slow_call_rate"
        );
        assert_eq!(
            field(b().slow_calls(0.5, Duration::ZERO)),
            "slow_call_duration"
        );
        assert_eq!(field(b().slow_calls_secs(0.5, -1.0)), "slow_call_duration");
        assert_eq!(
            field(b().slow_calls_secs(0.5, f64::NAN)),
            "slow_call_duration"
        );
        assert_eq!(field(b().consecutive_failures(0)), "consecutive_failures");
        assert_eq!(field(b().minimum_calls(0)), "minimum_calls");
        assert_eq!(field(b().count_window(0)), "window.calls");
        assert_eq!(
            field(b().count_window(10).minimum_calls(11)),
            "minimum_calls"
        );
        assert_eq!(field(b().time_window(Duration::ZERO, 10)), "window");
        assert_eq!(
            field(b().time_window(Duration::from_secs(1), 0)),
            "window.buckets"
        );
        assert_eq!(
            field(b().time_window(Duration::from_secs(1), 5000)),
            "window.buckets"
        );
        assert_eq!(field(b().open_for(Duration::ZERO)), "open_for");
        assert_eq!(field(b().open_for_secs(f64::NAN)), "open_for");
        assert_eq!(field(b().open_for_secs(-2.0)), "open_for");
        assert_eq!(
            field(b().open_backoff(0.5, Duration::from_secs(60), 0.0)),
            "open_backoff.multiplier"
        );
        assert_eq!(
            field(b().open_backoff(f64::NAN, Duration::from_secs(60), 0.0)),
            "open_backoff.multiplier"
        );
        assert_eq!(
            field(b().open_backoff(2.0, Duration::from_secs(60), 2.0)),
            "open_backoff.jitter"
        );
        assert_eq!(
            field(b().open_backoff(2.0, Duration::from_secs(1), 0.0)),
            "max_open_for"
        );
        assert_eq!(field(b().half_open_calls(0)), "half_open_calls");
        assert_eq!(field(b().half_open_calls(u32::MAX)), "half_open_calls");
        assert_eq!(
            field(b().half_open_max_duration(Duration::ZERO)),
            "half_open_max_duration"
        );
        assert_eq!(field(b().no_failure_rate()), "failure_rate");
        // Waits beyond the deadline word's range (issue 15): refused, not "never".
        let long = MAX_WAIT + Duration::from_micros(1);
        assert_eq!(field(b().open_for(long)), "open_for");
        assert_eq!(field(b().open_for(Duration::MAX)), "open_for");
        assert_eq!(field(b().open_backoff(2.0, long, 0.0)), "max_open_for");
        assert_eq!(
            field(b().half_open_max_duration(long)),
            "half_open_max_duration"
        );
        let longest = b()
            .open_for(MAX_WAIT)
            .open_backoff(1.0, MAX_WAIT, 0.0)
            .half_open_max_duration(MAX_WAIT)
            .build()
            .unwrap();
        assert_eq!(longest.open_for(), MAX_WAIT);
    }

    #[test]
    fn messages_say_what_was_wrong() {
        let e = BreakerConfig::builder()
            .count_window(10)
            .minimum_calls(11)
            .build();
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("minimum_calls") && msg.contains("11") && msg.contains("10"),
            "{msg}"
        );
        let msg = BreakerConfig::builder()
            .failure_rate(-1.0)
            .build()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("(0, 1]") && msg.contains("-1"), "{msg}");
    }

    #[test]
    fn defaults_are_documented_ones() {
        let c = BreakerConfig::default();
        assert_eq!(c.failure_rate(), Some(0.5));
        assert_eq!(c.minimum_calls(), 20);
        assert_eq!(c.open_for(), Duration::from_secs(5));
        assert_eq!(c.half_open_calls(), 3);
        assert!(
            !c.times_calls(),
            "timing is only on when slow calls are configured"
        );
    }
}
