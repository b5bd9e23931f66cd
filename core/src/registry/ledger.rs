//! What every registry keeps beside its map: the key cap and what happened to keys beyond it,
//! the idle time and eviction events, and the counters of [`RegistryStats`].

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64 as StdAtomicU64, AtomicUsize, Ordering as StdOrdering};
use std::time::Duration;

use super::{Overflow, RegistryFull, RegistryStats};
use crate::clock::duration_ns;
use crate::events::{Event, EventKind, EventRing};

/// The settings every registry builder shares.
pub(crate) struct Options<K> {
    pub(crate) max_keys: usize,
    pub(crate) overflow: Overflow<K>,
    pub(crate) idle_ttl: Duration,
    pub(crate) events: Option<EventRing>,
    pub(crate) event_key: Option<fn(&K) -> u64>,
    pub(crate) capacity: usize,
}

impl<K> Default for Options<K> {
    fn default() -> Self {
        Options {
            max_keys: 10_000,
            overflow: Overflow::Reject,
            idle_ttl: Duration::from_secs(600),
            events: None,
            event_key: None,
            capacity: 0,
        }
    }
}

/// The builder setters of the settings in [`Options`], for a builder with an
/// `options: Options<K>` field (every registry builder and keyed builder).
macro_rules! option_setters {
    () => {
        /// The most keys held (default 10 000; at least 1). A new key beyond it goes by the
        /// overflow policy.
        pub fn max_keys(mut self, n: usize) -> Self {
            self.options.max_keys = n;
            self
        }

        /// What happens to a new key beyond the cap (default:
        /// [`Overflow::Reject`](crate::registry::Overflow::Reject)).
        pub fn overflow(mut self, policy: crate::registry::Overflow<K>) -> Self {
            self.options.overflow = policy;
            self
        }

        /// How long a key must be idle before a sweep evicts it (default 10 minutes); a busy
        /// key is never evicted.
        pub fn idle_ttl(mut self, d: std::time::Duration) -> Self {
            self.options.idle_ttl = d;
            self
        }

        /// How a key becomes the `u64` of an eviction event (default: a stable hash of the
        /// key; pass `|k| *k` for `u64` keys).
        pub fn event_key(mut self, f: fn(&K) -> u64) -> Self {
            self.options.event_key = Some(f);
            self
        }

        /// Room for this many keys up front (default: none; the table grows as keys arrive).
        pub fn capacity(mut self, n: usize) -> Self {
            self.options.capacity = n;
            self
        }
    };
}
pub(crate) use option_setters;

/// A stable hash of a key for events (fixed seed, so the agent can match evictions to keys it
/// hashed the same way).
pub(crate) fn stable_hash<K: Hash>(key: &K) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5eed_5eed).hash_one(key)
}

/// The bookkeeping of one registry.
pub(crate) struct Ledger<K> {
    max_keys: usize,
    len: AtomicUsize,
    idle_ttl_ns: u64,
    events: Option<EventRing>,
    event_key: fn(&K) -> u64,
    created: StdAtomicU64,
    evicted: StdAtomicU64,
    overflowed: StdAtomicU64,
    rejected: StdAtomicU64,
    id: u64,
}

impl<K: Hash> Ledger<K> {
    pub(crate) fn new(options: &Options<K>) -> Self {
        Ledger {
            max_keys: options.max_keys.max(1),
            len: AtomicUsize::new(0),
            idle_ttl_ns: duration_ns(options.idle_ttl),
            events: options.events.clone(),
            event_key: options.event_key.unwrap_or(stable_hash::<K>),
            created: StdAtomicU64::new(0),
            evicted: StdAtomicU64::new(0),
            overflowed: StdAtomicU64::new(0),
            rejected: StdAtomicU64::new(0),
            id: crate::source_id::next(crate::source_id::REGISTRY),
        }
    }
}

impl<K> Ledger<K> {
    /// Takes room for one new key: `false` when the registry is at its cap.
    pub(crate) fn reserve(&self) -> bool {
        // Relaxed: the count is a cap, not a publication; the map's lock orders the insert.
        let reserved = self
            .len
            .fetch_update(StdOrdering::Relaxed, StdOrdering::Relaxed, |n| {
                (n < self.max_keys).then_some(n + 1)
            })
            .is_ok();
        if reserved {
            self.created.fetch_add(1, StdOrdering::Relaxed);
        }
        reserved
    }

    /// A new key found the registry full: counted as sent to the shared overflow entry, or
    /// refused with [`RegistryFull`].
    pub(crate) fn refuse(&self, shared: bool) -> Result<(), RegistryFull> {
        if shared {
            self.overflowed.fetch_add(1, StdOrdering::Relaxed);
            return Ok(());
        }
        self.rejected.fetch_add(1, StdOrdering::Relaxed);
        Err(RegistryFull {
            max_keys: self.max_keys,
        })
    }

    /// Whether an entry idle since `since` is due for eviction at `now_ns`.
    pub(crate) fn expired(&self, since: u64, now_ns: u64) -> bool {
        now_ns.saturating_sub(since) >= self.idle_ttl_ns
    }

    /// Publishes the eviction of `key` by the sweep at `now_ns`.
    pub(crate) fn evicted(&self, key: &K, now_ns: u64) {
        if let Some(ring) = &self.events {
            ring.publish(Event {
                source: self.id,
                at_ns: now_ns,
                kind: EventKind::Evicted {
                    key: (self.event_key)(key),
                },
            });
        }
    }

    /// Counts the `n` evictions of one sweep.
    pub(crate) fn swept(&self, n: usize) {
        self.len.fetch_sub(n, StdOrdering::Relaxed);
        self.evicted.fetch_add(n as u64, StdOrdering::Relaxed);
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(StdOrdering::Relaxed)
    }

    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys
    }

    pub(crate) fn idle_ttl(&self) -> Duration {
        Duration::from_nanos(self.idle_ttl_ns)
    }

    pub(crate) fn event_key_of(&self, key: &K) -> u64 {
        (self.event_key)(key)
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn stats(&self) -> RegistryStats {
        RegistryStats {
            keys: self.len(),
            max_keys: self.max_keys,
            created: self.created.load(StdOrdering::Relaxed),
            evicted: self.evicted.load(StdOrdering::Relaxed),
            overflowed: self.overflowed.load(StdOrdering::Relaxed),
            rejected: self.rejected.load(StdOrdering::Relaxed),
        }
    }
}
