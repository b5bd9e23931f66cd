//! Bulkhead configuration: a validated value built by [`BulkheadConfigBuilder`].

use std::time::Duration;

use crate::error::{check, ConfigError};

/// The largest `max_concurrent` a bulkhead accepts: the in-flight count has 24 bits of the
/// bulkhead's state word (the other 40 count completed calls, see [`super`]).
pub const MAX_CONCURRENT_LIMIT: u32 = (1 << 24) - 1;

/// A validated bulkhead configuration. Build one with [`BulkheadConfig::builder`].
///
/// ```
/// use std::time::Duration;
/// use surgewall::BulkheadConfig;
///
/// let config = BulkheadConfig::builder()
///     .max_concurrent(10)
///     .max_wait(Duration::from_millis(100))
///     .build()?;
/// assert_eq!(config.max_concurrent(), 10);
/// assert_eq!(config.max_wait(), Duration::from_millis(100));
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkheadConfig {
    pub(crate) max_concurrent: u32,
    pub(crate) max_wait: Duration,
}

impl Default for BulkheadConfig {
    /// 25 concurrent calls (resilience4j's default), no waiting.
    fn default() -> Self {
        BulkheadConfigBuilder::default()
            .build()
            .expect("the defaults are valid")
    }
}

impl BulkheadConfig {
    /// A builder starting from the defaults.
    ///
    /// ```
    /// let config = surgewall::BulkheadConfig::builder().max_concurrent(4).build()?;
    /// assert_eq!(config.max_wait(), std::time::Duration::ZERO);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn builder() -> BulkheadConfigBuilder {
        BulkheadConfigBuilder::default()
    }

    /// How many calls may be in flight at once.
    pub fn max_concurrent(&self) -> u32 {
        self.max_concurrent
    }

    /// How long [`Bulkhead::acquire`](crate::Bulkhead::acquire) waits for a slot (zero: never
    /// waits).
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }
}

/// Builds a [`BulkheadConfig`]; [`build`](Self::build) validates every field and names the one
/// it rejects.
///
/// ```
/// use surgewall::BulkheadConfig;
///
/// let err = BulkheadConfig::builder().max_wait_secs(f64::NAN).build().unwrap_err();
/// assert_eq!(err.field(), "max_wait");
/// ```
#[derive(Clone, Debug)]
pub struct BulkheadConfigBuilder {
    max_concurrent: u32,
    max_wait: Result<Duration, ConfigError>,
}

impl Default for BulkheadConfigBuilder {
    fn default() -> Self {
        Self {
            max_concurrent: 25,
            max_wait: Ok(Duration::ZERO),
        }
    }
}

impl BulkheadConfigBuilder {
    /// How many calls may be in flight at once (1..=[`MAX_CONCURRENT_LIMIT`]).
    pub fn max_concurrent(mut self, n: u32) -> Self {
        self.max_concurrent = n;
        self
    }

    /// How long a blocking caller waits for a slot (zero, the default: never waits).
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = Ok(d);
        self
    }

    /// [`max_wait`](Self::max_wait) in float seconds (bindings pass these); NaN, negative and
    /// infinite values are rejected by `build`.
    pub fn max_wait_secs(mut self, seconds: f64) -> Self {
        self.max_wait = check::seconds("max_wait", seconds);
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<BulkheadConfig, ConfigError> {
        Ok(BulkheadConfig {
            max_concurrent: check_max_concurrent(self.max_concurrent)?,
            max_wait: self.max_wait?,
        })
    }
}

/// `max_concurrent` within 1..=[`MAX_CONCURRENT_LIMIT`] (at build and at a resize).
pub(super) fn check_max_concurrent(n: u32) -> Result<u32, ConfigError> {
    check::at_least("max_concurrent", n.into(), 1)?;
    if n > MAX_CONCURRENT_LIMIT {
        return Err(ConfigError::new(
            "max_concurrent",
            format!("must be at most {MAX_CONCURRENT_LIMIT}, got {n}"),
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(b: BulkheadConfigBuilder) -> &'static str {
        b.build().unwrap_err().field()
    }

    #[test]
    fn rejects_bad_values_naming_the_field() {
        let b = BulkheadConfig::builder;
        assert_eq!(field(b().max_concurrent(0)), "max_concurrent");
        assert_eq!(
            field(b().max_concurrent(MAX_CONCURRENT_LIMIT + 1)),
            "max_concurrent"
        );
        assert_eq!(field(b().max_wait_secs(f64::NAN)), "max_wait");
        assert_eq!(field(b().max_wait_secs(-0.5)), "max_wait");
        assert_eq!(field(b().max_wait_secs(f64::INFINITY)), "max_wait");
        let err = b().max_concurrent(0).build().unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
    }

    #[test]
    fn accepts_the_edges() {
        let c = BulkheadConfig::builder()
            .max_concurrent(MAX_CONCURRENT_LIMIT)
            .max_wait_secs(0.25)
            .build()
            .unwrap();
        assert_eq!(c.max_concurrent(), MAX_CONCURRENT_LIMIT);
        assert_eq!(c.max_wait(), Duration::from_millis(250));
        assert_eq!(BulkheadConfig::default().max_concurrent(), 25);
        assert_eq!(BulkheadConfig::default().max_wait(), Duration::ZERO);
    }
}
