//! Permits and the two errors of the bulkhead protocol (full, and a release with nothing held).

use std::fmt;
use std::time::Duration;

use super::Bulkhead;

/// A slot in a [`Bulkhead`], given back when dropped (invariant I9: every permit returns, also
/// on panic: the drop runs during unwinding).
///
/// ```
/// use surgewall::{Bulkhead, BulkheadConfig};
///
/// let bulkhead = Bulkhead::new("db", BulkheadConfig::builder().max_concurrent(1).build()?);
/// {
///     let _permit = bulkhead.try_acquire()?;
///     assert!(bulkhead.try_acquire().is_err()); // full
/// }
/// assert_eq!(bulkhead.metrics().active, 0); // the permit went back on drop
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct BulkheadPermit<'a> {
    pub(super) bulkhead: &'a Bulkhead,
}

impl BulkheadPermit<'_> {
    /// Gives the slot back now (the same as dropping the permit).
    pub fn release(self) {}

    /// The bulkhead this permit belongs to.
    pub fn bulkhead(&self) -> &Bulkhead {
        self.bulkhead
    }
}

impl Drop for BulkheadPermit<'_> {
    fn drop(&mut self) {
        // A permit always holds a slot, so this release cannot find the count at zero unless a
        // raw caller released a slot it never had; that is counted there.
        let _ = self.bulkhead.release_raw();
    }
}

impl fmt::Debug for BulkheadPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit")
            .field("bulkhead", &self.bulkhead.name())
            .finish()
    }
}

/// A call was refused: every slot was taken (and, if the caller could wait, none came free in
/// time).
///
/// ```
/// use surgewall::{Bulkhead, BulkheadConfig};
///
/// let bulkhead = Bulkhead::new("db", BulkheadConfig::builder().max_concurrent(1).build()?);
/// let _held = bulkhead.try_acquire()?;
/// let full = bulkhead.try_acquire().unwrap_err();
/// assert_eq!(full.max_concurrent, 1);
/// assert!(!full.timed_out);
/// assert_eq!(full.to_string(), "bulkhead full (1 concurrent calls)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkheadFull {
    /// The limit that was reached.
    pub max_concurrent: u32,
    /// Whether the caller waited (up to its `max_wait`) before giving up.
    pub timed_out: bool,
    /// How long the caller waited (zero when it did not).
    pub waited: Duration,
    /// Whether the wait ended because the bulkhead was closed ([`Bulkhead::close`]) rather
    /// than by a slot or the deadline.
    pub closed: bool,
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bulkhead full ({} concurrent calls)",
            self.max_concurrent
        )?;
        if self.closed {
            write!(f, "; closed while waiting")?;
        } else if self.timed_out {
            write!(f, "; no slot came free within {:?}", self.waited)?;
        }
        Ok(())
    }
}

impl std::error::Error for BulkheadFull {}

/// A release found no slot taken: the caller released more than it acquired. Nothing changed
/// (the in-flight count never goes below zero) and the misuse is counted in
/// [`BulkheadMetrics::unexpected_releases`](crate::BulkheadMetrics::unexpected_releases).
///
/// ```
/// use surgewall::{Bulkhead, BulkheadConfig, NotAcquired};
///
/// let bulkhead = Bulkhead::new("db", BulkheadConfig::default());
/// assert_eq!(bulkhead.release_raw(), Err(NotAcquired));
/// assert_eq!(bulkhead.metrics().unexpected_releases, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAcquired;

impl fmt::Display for NotAcquired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("released a bulkhead slot that was not acquired")
    }
}

impl std::error::Error for NotAcquired {}
