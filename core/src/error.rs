//! Configuration errors: every one names the field and says what was wrong with it.

use std::fmt;

/// A configuration value was rejected.
///
/// ```
/// use surgewall::BreakerConfig;
///
/// let err = BreakerConfig::builder().failure_rate(f64::NAN).build().unwrap_err();
/// assert_eq!(err.field(), "failure_rate");
/// assert!(err.to_string().contains("NaN"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The configuration field that was rejected (as spelled in the builders).
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why it was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The same error, its reason prefixed with where the value was (`"per-key override 2"`).
    ///
    /// ```
    /// use surgewall::ConfigError;
    /// let e = ConfigError::new("minimum_calls", "too many").within("per-key override 2");
    /// assert_eq!((e.field(), e.reason()), ("minimum_calls", "per-key override 2: too many"));
    /// ```
    pub fn within(self, place: impl std::fmt::Display) -> Self {
        ConfigError {
            field: self.field,
            reason: format!("{place}: {}", self.reason),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Checks shared by every builder.
pub(crate) mod check {
    use super::ConfigError;
    use std::time::Duration;

    /// A rate in [0, 1].
    pub(crate) fn rate(field: &'static str, v: f64) -> Result<f64, ConfigError> {
        if v.is_nan() {
            return Err(ConfigError::new(
                field,
                "must be a number in [0, 1], got NaN",
            ));
        }
        if !(0.0..=1.0).contains(&v) {
            return Err(ConfigError::new(
                field,
                format!("must be within [0, 1], got {v}"),
            ));
        }
        Ok(v)
    }

    /// A threshold in (0, 1]: a rate that trips at 0 would trip on any window.
    pub(crate) fn threshold(field: &'static str, v: f64) -> Result<f64, ConfigError> {
        if v.is_nan() {
            return Err(ConfigError::new(
                field,
                "must be a number in (0, 1], got NaN",
            ));
        }
        if v <= 0.0 || v > 1.0 {
            return Err(ConfigError::new(
                field,
                format!("must be within (0, 1], got {v}"),
            ));
        }
        Ok(v)
    }

    /// A finite, non-negative factor (multipliers, ratios that may exceed 1).
    pub(crate) fn non_negative(field: &'static str, v: f64) -> Result<f64, ConfigError> {
        if v.is_nan() {
            return Err(ConfigError::new(field, "must be a number, got NaN"));
        }
        if !v.is_finite() || v < 0.0 {
            return Err(ConfigError::new(
                field,
                format!("must be finite and >= 0, got {v}"),
            ));
        }
        Ok(v)
    }

    /// A count of at least `min`.
    pub(crate) fn at_least(field: &'static str, v: u64, min: u64) -> Result<u64, ConfigError> {
        if v < min {
            return Err(ConfigError::new(
                field,
                format!("must be at least {min}, got {v}"),
            ));
        }
        Ok(v)
    }

    /// A duration that is not zero.
    pub(crate) fn non_zero(field: &'static str, d: Duration) -> Result<Duration, ConfigError> {
        if d.is_zero() {
            return Err(ConfigError::new(field, "must be longer than zero"));
        }
        Ok(d)
    }

    /// A duration from seconds given as a float (bindings pass these): finite and >= 0.
    pub(crate) fn seconds(field: &'static str, s: f64) -> Result<Duration, ConfigError> {
        if s.is_nan() {
            return Err(ConfigError::new(
                field,
                "must be a number of seconds, got NaN",
            ));
        }
        Duration::try_from_secs_f64(s).map_err(|_| {
            ConfigError::new(
                field,
                format!("must be a finite, non-negative number of seconds, got {s}"),
            )
        })
    }
}
