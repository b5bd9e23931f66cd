//! The observability snapshot of a bulkhead.

use std::time::Duration;

use crate::clock::ClockMode;

/// Everything observable about a [`Bulkhead`](crate::Bulkhead), read without stopping it.
///
/// `active` and `accepted` come from one atomic word, so they are consistent with each other;
/// the other fields are read one by one and may be a few calls apart.
///
/// ```
/// use surgewall::{Bulkhead, BulkheadConfig};
///
/// let bulkhead = Bulkhead::new("db", BulkheadConfig::builder().max_concurrent(2).build()?);
/// let a = bulkhead.try_acquire()?;
/// let m = bulkhead.metrics();
/// assert_eq!((m.active, m.max_concurrent, m.accepted), (1, 2, 1));
/// drop(a);
/// assert_eq!(bulkhead.metrics().active, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkheadMetrics {
    /// Calls in flight now (never more than `max_concurrent`, invariant I9, except after a
    /// shrink while the permits taken before it are still out).
    pub active: u64,
    /// Callers blocked waiting for a slot now.
    pub waiting: u64,
    /// The limit in force now.
    pub max_concurrent: u64,
    /// Calls admitted, ever (directly or after waiting).
    pub accepted: u64,
    /// Calls refused without waiting (the bulkhead was full and the caller would not wait).
    pub rejected: u64,
    /// Calls that waited their whole `max_wait` and were refused.
    pub timed_out: u64,
    /// Calls that had to wait (admitted or timed out).
    pub waited: u64,
    /// The time all waiting calls spent waiting.
    pub total_wait: Duration,
    /// The longest single wait.
    pub max_wait: Duration,
    /// Releases that found nothing acquired (a caller's bug; nothing was changed).
    pub unexpected_releases: u64,
    /// The clock the wait times were measured with.
    pub clock_mode: ClockMode,
    /// How long the callers that had to wait waited (admitted or timed out).
    pub wait_durations: crate::histogram::Durations,
}
