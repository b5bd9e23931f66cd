//! Process-unique ids for everything that publishes events.
//!
//! An [`Event`](crate::events::Event)'s `source` names its publisher. Every policy takes its id
//! from one counter here, with its kind in the top byte, so a subscriber can tell a breaker
//! from a retry budget from an SLO tracker by the id alone.

use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};

/// The kind byte of a breaker's id.
pub(crate) const BREAKER: u8 = 0x00;
/// The kind byte of a retry budget's id.
pub(crate) const RETRY_BUDGET: u8 = 0x01;
/// The kind byte of an SLO tracker's id.
pub(crate) const SLO: u8 = 0x02;
/// The kind byte of a bulkhead's id.
pub(crate) const BULKHEAD: u8 = 0x03;
/// The kind byte of a keyed registry's id (keyed bulkheads and breakers publish evictions
/// under it).
pub(crate) const REGISTRY: u8 = 0x04;

/// The next id for a publisher of `kind`: `kind << 56 | n`.
pub(crate) fn next(kind: u8) -> u64 {
    static NEXT: StdAtomicU64 = StdAtomicU64::new(1);
    // Relaxed: ids only have to be unique.
    u64::from(kind) << 56 | (NEXT.fetch_add(1, StdOrdering::Relaxed) & ((1 << 56) - 1))
}
