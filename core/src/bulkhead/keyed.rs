//! Keyed bulkheads (per user, per tenant): see [`KeyedBulkhead`].
//!
//! ## Compact state
//!
//! An idle key costs one slot of a compact registry (`registry/compact.rs`: the key beside a
//! 16-byte cell, 24 bytes with a `u64` key) plus its 4-byte index at the table's load factor:
//! no allocation, allocator header or `Arc` counts per key. The key's limit is its slot's
//! class (a key with an override has a reserved slot, every other key the default limit),
//! so a per-key override costs nothing per key; idleness is tracked by sweeps from a usage
//! counter in the state word, so calls never read a clock.
//!
//! Cell state word: `[completed: 16 | generation: 24 | in flight: 24]`; idle mark:
//! `[completed at the mark: 16 | mark time in µs: 48]`.
//!
//! ## Permit identity
//!
//! A permit carries its slot and the slot's generation, which moves on each time the slot is
//! given to a new key (never 0: a zeroed permit was never issued). A release is one CAS on the
//! state word that checks the generation and the in-flight count together, so a permit whose
//! key was evicted (it was released already: a key is evicted only with nothing in flight)
//! can never take a call off the key that now holds the slot. The generation is 24 bits: a
//! permit kept through 16,777,215 reuses of its slot would match again (a documented bound;
//! each reuse needs a sweep that evicts the slot's key). Within one key's life permits are
//! counted, not named: a permit released twice while other permits of its key are out is
//! indistinguishable from theirs (as for [`Bulkhead`](super::Bulkhead)).

use std::fmt;
use std::hash::Hash;

use crossbeam_utils::CachePadded;

use super::{NotAcquired, ACTIVE_MASK, MAX_CONCURRENT_LIMIT};
use crate::error::{check, ConfigError};
use crate::events::EventRing;
use crate::registry::arena::Zeroable;
use crate::registry::compact::{self, CompactRegistry};
use crate::registry::ledger::Options;
use crate::registry::{Entry, RegistryFull, RegistryStats};
use crate::stripe::Striped;
use crate::sync::{AtomicU64, Ordering};

const GEN_SHIFT: u32 = 24;
const GEN_MASK: u64 = (1 << 24) - 1;
const COMPLETED_SHIFT: u32 = 48;
const COMPLETED_ONE: u64 = 1 << COMPLETED_SHIFT;
const MARK_UNSET: u64 = u64::MAX;
const US_MASK: u64 = (1 << 48) - 1;

// Striped lanes.
const REJECTED_KEY: usize = 0;
const REJECTED_GLOBAL: usize = 1;
const UNEXPECTED: usize = 2;
const LANES: usize = 3;

/// One key's state (16 bytes). All zero, it is a vacant cell: generation 0, which no permit
/// of a key ever carries.
pub(crate) struct Cell {
    word: AtomicU64,
    mark: AtomicU64,
}

// SAFETY: two atomic integers.
unsafe impl Zeroable for Cell {
    fn zeroed() -> Self {
        Cell {
            word: AtomicU64::new(0),
            mark: AtomicU64::new(0),
        }
    }
}

/// The class of a keyed bulkhead's key is its limit (read from the slot's class by the
/// caller, not stored in the cell).
impl compact::Cell for Cell {
    fn renew(&self, _limit: u32) {
        // Relaxed: the slot reaches other threads through the table shard's lock. Nothing is
        // in flight (the key was evicted idle, or the cell is new), so a stale release racing
        // this store sees either the old word (nothing in flight: refused) or the new one
        // (another generation: refused). The generation skips 0, the vacant cell's.
        let gen = (self.word.load(Ordering::Relaxed) >> GEN_SHIFT) & GEN_MASK;
        let next = if gen == GEN_MASK { 1 } else { gen + 1 };
        self.word.store(next << GEN_SHIFT, Ordering::Relaxed);
        self.mark.store(MARK_UNSET, Ordering::Relaxed);
    }
}

impl Cell {
    /// One CAS that adds a call below `limit`; the cell's generation (for the permit), or
    /// `Err(limit)` when full.
    #[inline]
    fn take(&self, limit: u32) -> Result<u32, u32> {
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if w & ACTIVE_MASK >= u64::from(limit) {
                return Err(limit);
            }
            // Acquire: pairs with the previous holder's release, as for `Bulkhead`.
            match self
                .word
                .compare_exchange_weak(w, w + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(((w >> GEN_SHIFT) & GEN_MASK) as u32),
                Err(now) => w = now,
            }
        }
    }

    /// Takes one call of generation `gen` off, adding `completed` (1, or 0 to undo a take);
    /// refuses another generation's permit and a count at zero, in the same CAS that takes it.
    #[inline]
    fn give(&self, gen: u32, completed: u64) -> Result<(), NotAcquired> {
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if w & ACTIVE_MASK == 0 || (w >> GEN_SHIFT) & GEN_MASK != u64::from(gen) {
                return Err(NotAcquired);
            }
            // Release: the holder's writes happen before the next taker's Acquire. The
            // completed field is the top 16 bits and wraps on its own.
            let next = (w - 1).wrapping_add(completed);
            match self
                .word
                .compare_exchange_weak(w, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => w = now,
            }
        }
    }

    fn active(&self) -> u64 {
        self.word.load(Ordering::Relaxed) & ACTIVE_MASK
    }
}

impl Entry for Cell {
    fn idle_since(&self, now_ns: u64) -> Option<u64> {
        let cell = self;
        // SeqCst is not needed: the registry holds the shard's write lock, so no caller is
        // between finding this slot and its CAS; a permit out shows as active > 0.
        let w = cell.word.load(Ordering::Acquire);
        if w & ACTIVE_MASK != 0 {
            return None;
        }
        let completed = w >> COMPLETED_SHIFT;
        let now_us = (now_ns / 1000) & US_MASK;
        // Relaxed: only sweeps (under the shard lock) touch the mark.
        let mark = cell.mark.load(Ordering::Relaxed);
        if mark != MARK_UNSET && mark >> 48 == completed {
            let since_us = mark & US_MASK;
            return Some(now_ns.saturating_sub((now_us.wrapping_sub(since_us) & US_MASK) * 1000));
        }
        cell.mark.store(completed << 48 | now_us, Ordering::Relaxed);
        Some(now_ns)
    }
}

/// Why a keyed call was refused.
///
/// ```
/// use surgewall::bulkhead::keyed::{KeyedBulkhead, KeyedRejected};
///
/// let tenants = KeyedBulkhead::<u64>::builder(1).global_max(1).build()?;
/// let _a = tenants.try_acquire(&1)?;
/// assert_eq!(tenants.try_acquire(&1).unwrap_err(), KeyedRejected::KeyFull { limit: 1 });
/// assert_eq!(tenants.try_acquire(&2).unwrap_err(), KeyedRejected::GlobalFull { limit: 1 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyedRejected {
    /// The key has `limit` calls in flight.
    KeyFull {
        /// The key's limit.
        limit: u32,
    },
    /// All keys together have `limit` calls in flight.
    GlobalFull {
        /// The global limit.
        limit: u32,
    },
    /// The key is new and the registry is at its key cap (overflow policy: reject).
    TooManyKeys(RegistryFull),
}

impl fmt::Display for KeyedRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedRejected::KeyFull { limit } => {
                write!(f, "bulkhead full for this key ({limit} concurrent calls)")
            }
            KeyedRejected::GlobalFull { limit } => {
                write!(
                    f,
                    "bulkhead full across all keys ({limit} concurrent calls)"
                )
            }
            KeyedRejected::TooManyKeys(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for KeyedRejected {}

/// A slot of one key, as a plain value for bindings: give it back with
/// [`KeyedBulkhead::release_raw`]. A zeroed one was never issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct KeyedRawPermit {
    /// The key's cell (opaque).
    pub slot: u32,
    /// The cell's generation when the permit was issued (opaque, never 0): a release of a
    /// permit whose key has since been evicted is refused.
    pub generation: u32,
}

/// A slot of one key, given back when dropped.
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct KeyedPermit<'a, K: Eq + Hash + Clone + Send + Sync + 'static> {
    owner: &'a KeyedBulkhead<K>,
    raw: KeyedRawPermit,
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> KeyedPermit<'_, K> {
    /// Gives the slot back now.
    pub fn release(self) {}
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> Drop for KeyedPermit<'_, K> {
    fn drop(&mut self) {
        let _ = self.owner.release_raw(self.raw);
    }
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> fmt::Debug for KeyedPermit<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedPermit")
            .field("slot", &self.raw.slot)
            .field("generation", &self.raw.generation)
            .finish()
    }
}

/// A snapshot of a keyed bulkhead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedBulkheadMetrics {
    /// Calls in flight over all keys, when a global limit is set (it is counted for it);
    /// otherwise `None` (use [`KeyedBulkhead::for_each`] to add them up).
    pub global_active: Option<u64>,
    /// The global limit, if any.
    pub global_max: Option<u32>,
    /// The default per-key limit.
    pub per_key_max: u32,
    /// Calls refused because their key was full.
    pub rejected_key: u64,
    /// Calls refused because the global limit was reached.
    pub rejected_global: u64,
    /// Releases that found nothing acquired.
    pub unexpected_releases: u64,
    /// The registry's counters (keys, created, evicted, overflowed, refused new keys).
    pub registry: RegistryStats,
}

/// Concurrency limits per key (a tenant, a user), with an optional limit across all keys so
/// that one key cannot take every slot.
///
/// ```
/// use std::time::Duration;
/// use surgewall::bulkhead::keyed::KeyedBulkhead;
///
/// let tenants = KeyedBulkhead::<u64>::builder(2)   // 2 concurrent calls per tenant
///     .global_max(3)                               // 3 across all tenants
///     .limit_for(42, 1)                            // tenant 42 gets 1
///     .max_keys(10_000)
///     .idle_ttl(Duration::from_secs(600))
///     .build()?;
///
/// let a = tenants.try_acquire(&7)?;
/// let b = tenants.try_acquire(&7)?;
/// assert!(tenants.try_acquire(&7).is_err());         // tenant 7 is at its limit
/// let c = tenants.try_acquire(&42)?;
/// assert!(tenants.try_acquire(&8).is_err());         // 3 in flight overall
/// drop((a, b, c));
/// assert_eq!(tenants.active(&7), Some(0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeyedBulkhead<K: Eq + Hash + Clone + Send + Sync + 'static> {
    registry: CompactRegistry<K, Cell>,
    global: CachePadded<AtomicU64>,
    global_max: Option<u32>,
    per_key: u32,
    counters: Striped<LANES>,
}

/// Builds a [`KeyedBulkhead`]; [`build`](Self::build) validates the limits.
pub struct KeyedBulkheadBuilder<K> {
    per_key: u32,
    global_max: Option<u32>,
    overrides: Vec<(K, u32)>,
    options: Options<K>,
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> KeyedBulkheadBuilder<K> {
    crate::registry::ledger::option_setters!();

    /// A limit across all keys together.
    pub fn global_max(mut self, n: u32) -> Self {
        self.global_max = Some(n);
        self
    }
    /// A different per-key limit for `key`.
    pub fn limit_for(mut self, key: K, n: u32) -> Self {
        self.overrides.push((key, n));
        self
    }
    /// Publish evictions to this ring.
    pub fn events(mut self, ring: EventRing) -> Self {
        self.options.events = Some(ring);
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<KeyedBulkhead<K>, ConfigError> {
        let limit = |field: &'static str, n: u32| -> Result<u32, ConfigError> {
            check::at_least(field, n.into(), 1)?;
            if n > MAX_CONCURRENT_LIMIT {
                return Err(ConfigError::new(
                    field,
                    format!("must be at most {MAX_CONCURRENT_LIMIT}, got {n}"),
                ));
            }
            Ok(n)
        };
        let per_key = limit("max_concurrent", self.per_key)?;
        let global_max = self
            .global_max
            .map(|n| limit("global_max_concurrent", n))
            .transpose()?;
        let overrides = self
            .overrides
            .into_iter()
            .map(|(key, n)| Ok((key, limit("max_concurrent", n)?)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(KeyedBulkhead {
            registry: CompactRegistry::new(self.options, per_key, overrides)?,
            global: CachePadded::new(AtomicU64::new(0)),
            global_max,
            per_key,
            counters: Striped::new(),
        })
    }
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> KeyedBulkhead<K> {
    /// A builder with `per_key_max` concurrent calls per key.
    ///
    /// ```
    /// use surgewall::bulkhead::keyed::KeyedBulkhead;
    /// let err = KeyedBulkhead::<u64>::builder(0).build().unwrap_err();
    /// assert_eq!(err.field(), "max_concurrent");
    /// ```
    pub fn builder(per_key_max: u32) -> KeyedBulkheadBuilder<K> {
        KeyedBulkheadBuilder {
            per_key: per_key_max,
            global_max: None,
            overrides: Vec::new(),
            options: Options::default(),
        }
    }

    /// Takes a slot of `key` (creating the key if new) without waiting.
    ///
    /// ```
    /// use surgewall::bulkhead::keyed::KeyedBulkhead;
    /// let users = KeyedBulkhead::<String>::builder(1).build()?;
    /// let p = users.try_acquire(&"alice".to_string())?;
    /// assert!(users.try_acquire(&"alice".to_string()).is_err());
    /// assert!(users.try_acquire(&"bob".to_string()).is_ok());
    /// # drop(p);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self, key: &K) -> Result<KeyedPermit<'_, K>, KeyedRejected> {
        self.try_acquire_raw(key)
            .map(|raw| KeyedPermit { owner: self, raw })
    }

    /// [`try_acquire`](Self::try_acquire) for bindings: on `Ok`, give the permit back with
    /// exactly one [`release_raw`](Self::release_raw).
    ///
    /// ```
    /// use surgewall::bulkhead::keyed::KeyedBulkhead;
    /// let users = KeyedBulkhead::<u64>::builder(1).build()?;
    /// let p = users.try_acquire_raw(&9)?;
    /// users.release_raw(p)?;
    /// assert!(users.release_raw(p).is_err()); // twice: reported, nothing changes
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire_raw(&self, key: &K) -> Result<KeyedRawPermit, KeyedRejected> {
        // The CAS runs under the map shard's read lock, so a sweep (write lock) cannot evict
        // the cell between the lookup and the take; after it, the taken slot keeps it busy.
        let taken = self
            .registry
            .with(key, |slot, cell| {
                cell.take(self.registry.class_of(slot))
                    .map(|generation| KeyedRawPermit { slot, generation })
            })
            .map_err(KeyedRejected::TooManyKeys)?;
        let permit = match taken {
            Ok(permit) => permit,
            Err(limit) => {
                self.counters.add(REJECTED_KEY, 1);
                return Err(KeyedRejected::KeyFull { limit });
            }
        };
        if let Some(max) = self.global_max {
            if !self.take_global(max) {
                let cell = self.cell(permit.slot).expect("taken above");
                let _ = cell.give(permit.generation, 0);
                self.counters.add(REJECTED_GLOBAL, 1);
                return Err(KeyedRejected::GlobalFull { limit: max });
            }
        }
        Ok(permit)
    }

    /// Gives a slot back. A permit whose key has nothing in flight, whose key was evicted
    /// since (its slot renewed for another key: the permit was released already), or that
    /// was never issued is reported (and counted) and changes nothing: never a count below
    /// zero, never a call taken off another key.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::bulkhead::keyed::KeyedBulkhead;
    /// let users = KeyedBulkhead::<u64>::builder(1).idle_ttl(Duration::ZERO).build()?;
    /// let stale = users.try_acquire_raw(&1)?;
    /// users.release_raw(stale)?;
    /// users.sweep(0);                              // key 1 evicted, its slot freed
    /// let _held = users.try_acquire(&2)?;          // key 2 gets that slot
    /// assert!(users.release_raw(stale).is_err());  // refused: key 2 keeps its call
    /// assert!(users.try_acquire(&2).is_err());     // still at its limit of 1
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn release_raw(&self, permit: KeyedRawPermit) -> Result<(), NotAcquired> {
        let Some(cell) = self.cell(permit.slot) else {
            self.counters.add(UNEXPECTED, 1);
            return Err(NotAcquired);
        };
        if cell.give(permit.generation, COMPLETED_ONE).is_err() {
            self.counters.add(UNEXPECTED, 1);
            return Err(NotAcquired);
        }
        if self.global_max.is_some() {
            // Release pairs with the Acquire of the next `take_global`; saturating: a stray
            // release elsewhere can never drive the global gauge below zero.
            let _ = self
                .global
                .fetch_update(Ordering::Release, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        Ok(())
    }

    /// Calls in flight for `key`, if the key is held (never creates it).
    pub fn active(&self, key: &K) -> Option<u64> {
        self.registry.peek(key).map(|(_, cell)| cell.active())
    }

    /// `key`'s calls in flight and its limit, if the key is held.
    ///
    /// ```
    /// use surgewall::bulkhead::keyed::KeyedBulkhead;
    /// let users = KeyedBulkhead::<u64>::builder(3).limit_for(7, 1).build()?;
    /// let _p = users.try_acquire(&7)?;
    /// assert_eq!(users.load(&7), Some((1, 1)));
    /// assert_eq!(users.load(&8), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(&self, key: &K) -> Option<(u64, u32)> {
        self.registry
            .peek(key)
            .map(|(slot, cell)| (cell.active(), self.registry.class_of(slot)))
    }

    /// Evicts keys idle for `idle_ttl` at `now_ns` (never one with calls in flight); see
    /// [`Registry::sweep`](crate::registry::Registry::sweep).
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::bulkhead::keyed::KeyedBulkhead;
    /// let users = KeyedBulkhead::<u64>::builder(1).idle_ttl(Duration::from_secs(1)).build()?;
    /// users.try_acquire(&1)?.release();
    /// assert_eq!(users.sweep(0), 0);
    /// assert_eq!(users.sweep(1_000_000_000), 1);
    /// assert_eq!(users.active(&1), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sweep(&self, now_ns: u64) -> usize {
        self.registry.sweep(now_ns)
    }

    /// Calls `f(key, in flight, limit)` for every key held (not the overflow entry).
    pub fn for_each(&self, mut f: impl FnMut(&K, u64, u32)) {
        self.registry
            .for_each(|k, slot, cell| f(k, cell.active(), self.registry.class_of(slot)));
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A process-unique id: the `source` of this keyed bulkhead's eviction events.
    ///
    /// ```
    /// use surgewall::bulkhead::keyed::KeyedBulkhead;
    /// let a = KeyedBulkhead::<u64>::builder(1).build()?;
    /// let b = KeyedBulkhead::<u64>::builder(1).build()?;
    /// assert_ne!(a.id(), b.id());
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.registry.id()
    }

    /// A snapshot of the counters.
    ///
    /// ```
    /// use surgewall::bulkhead::keyed::KeyedBulkhead;
    /// let users = KeyedBulkhead::<u64>::builder(1).global_max(5).build()?;
    /// let _p = users.try_acquire(&1)?;
    /// let _ = users.try_acquire(&1);
    /// let m = users.metrics();
    /// assert_eq!((m.global_active, m.rejected_key, m.registry.keys), (Some(1), 1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(&self) -> KeyedBulkheadMetrics {
        KeyedBulkheadMetrics {
            global_active: self.global_max.map(|_| self.global.load(Ordering::Relaxed)),
            global_max: self.global_max,
            per_key_max: self.per_key,
            rejected_key: self.counters.sum(REJECTED_KEY),
            rejected_global: self.counters.sum(REJECTED_GLOBAL),
            unexpected_releases: self.counters.sum(UNEXPECTED),
            registry: self.registry.stats(),
        }
    }

    #[inline]
    fn cell(&self, slot: u32) -> Option<&Cell> {
        self.registry.cell(slot)
    }

    /// One CAS on the shared in-flight count, strict like the per-key one.
    #[inline]
    fn take_global(&self, max: u32) -> bool {
        // Acquire: pairs with the Release of `release_raw`.
        self.global
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n < u64::from(max)).then_some(n + 1)
            })
            .is_ok()
    }
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> fmt::Debug for KeyedBulkhead<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkhead")
            .field("keys", &self.len())
            .field("per_key_max", &self.per_key)
            .field("global_max", &self.global_max)
            .finish()
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests;
