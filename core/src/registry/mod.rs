//! Keyed registries: one policy instance per key (per endpoint, per service, per user).
//!
//! A [`Registry`] creates an instance lazily from a template configuration (or a per-key
//! override) the first time a key is seen — exactly one per key however many threads race for
//! it — caps the number of keys with an explicit [`Overflow`] policy, and evicts idle entries
//! when somebody (the caller, or the agent) calls [`Registry::sweep`]. An entry that is busy
//! (its [`Entry::idle_since`] says `None`: a bulkhead with permits out, an OPEN breaker) is
//! never evicted. Evictions are published to an [`EventRing`] as
//! [`EventKind::Evicted`](crate::events::EventKind::Evicted).
//!
//! ## The map
//!
//! A [`DashMap`] (sharded `RwLock<hashbrown::HashMap>`) with foldhash's fast hasher, seeded per
//! registry. A hit costs one hash and one shard read lock, so threads on different shards do
//! not meet; creation takes the shard's write lock, which is what makes "one instance per key"
//! hold. foldhash is several times faster than SipHash on integer keys and still randomly
//! seeded, so attacker-chosen keys cannot be aimed at one bucket chain offline; the key cap
//! bounds memory whatever they send.
//!
//! ```
//! use std::sync::Arc;
//! use surgewall::{Bulkhead, BulkheadConfig};
//! use surgewall::registry::{Overflow, Registry};
//!
//! let template = BulkheadConfig::builder().max_concurrent(10).build()?;
//! let registry = Registry::builder(template, |key: &String, config: &BulkheadConfig| {
//!     Arc::new(Bulkhead::new(key.as_str(), *config))
//! })
//! .override_key("search".to_string(), BulkheadConfig::builder().max_concurrent(50).build()?)
//! .max_keys(1000)
//! .overflow(Overflow::Reject)
//! .build();
//!
//! let db = registry.get(&"db".to_string())?;
//! assert_eq!(db.max_concurrent(), 10);
//! assert_eq!(registry.get(&"search".to_string())?.max_concurrent(), 50);
//! assert!(Arc::ptr_eq(&db, &registry.get(&"db".to_string())?)); // one instance per key
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod arena;
mod entry;

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64 as StdAtomicU64, AtomicUsize, Ordering as StdOrdering};
use std::time::Duration;

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

pub use entry::{Entry, IdleMark};

use crate::bulkhead::Bulkhead;
use crate::clock::duration_ns;
use crate::events::{Event, EventKind, EventRing};

/// The hasher of registry maps: foldhash's fast hasher, randomly seeded per registry.
pub type RegistryHasher = foldhash::fast::RandomState;

/// What a registry does with a new key once it holds `max_keys`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overflow<K> {
    /// Refuse: [`Registry::with`] and [`Registry::get`] return [`RegistryFull`].
    Reject,
    /// Route every key beyond the cap to one shared entry, created from the template under
    /// this key. It is never evicted and does not count toward the cap.
    Shared(K),
}

/// A new key was refused because the registry holds `max_keys` keys and its overflow policy is
/// [`Overflow::Reject`].
///
/// ```
/// use surgewall::registry::{Registry, RegistryFull};
///
/// let r = Registry::builder((), |_: &u64, _: &()| std::sync::Arc::new(surgewall::Bulkhead::new("", Default::default())))
///     .max_keys(1)
///     .build();
/// r.get(&1)?;
/// assert_eq!(r.get(&2).unwrap_err(), RegistryFull { max_keys: 1 });
/// # Ok::<(), RegistryFull>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryFull {
    /// The cap that was reached.
    pub max_keys: usize,
}

impl fmt::Display for RegistryFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "registry full: it already holds its maximum of {} keys",
            self.max_keys
        )
    }
}

impl std::error::Error for RegistryFull {}

/// Counters of a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryStats {
    /// Keys held now (the overflow entry excluded).
    pub keys: usize,
    /// The cap.
    pub max_keys: usize,
    /// Entries created, ever.
    pub created: u64,
    /// Entries evicted by sweeps, ever.
    pub evicted: u64,
    /// Lookups of a new key beyond the cap that went to the shared overflow entry.
    pub overflowed: u64,
    /// Lookups of a new key beyond the cap that were refused.
    pub rejected: u64,
}

type Make<K, V, C> = dyn Fn(&K, &C, &<V as Entry>::Store) -> V + Send + Sync;

/// A map from keys to policy instances; see the [module docs](self).
pub struct Registry<K, V: Entry, C = ()> {
    map: DashMap<K, V, RegistryHasher>,
    store: V::Store,
    make: Box<Make<K, V, C>>,
    template: C,
    overrides: HashMap<K, C, RegistryHasher>,
    max_keys: usize,
    overflow: Option<(K, V)>,
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

/// Builds a [`Registry`].
pub struct RegistryBuilder<K, V: Entry, C> {
    template: C,
    make: Box<Make<K, V, C>>,
    store: V::Store,
    overrides: HashMap<K, C, RegistryHasher>,
    max_keys: usize,
    overflow: Overflow<K>,
    idle_ttl: Duration,
    events: Option<EventRing>,
    event_key: Option<fn(&K) -> u64>,
    capacity: usize,
}

impl<K, V, C> RegistryBuilder<K, V, C>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Entry,
    C: Send + Sync,
{
    /// Use `config` instead of the template for `key`.
    pub fn override_key(mut self, key: K, config: C) -> Self {
        self.overrides.insert(key, config);
        self
    }

    /// The most keys the registry holds (default 10 000; at least 1).
    pub fn max_keys(mut self, n: usize) -> Self {
        self.max_keys = n.max(1);
        self
    }

    /// What happens to a new key beyond the cap (default: [`Overflow::Reject`]).
    pub fn overflow(mut self, policy: Overflow<K>) -> Self {
        self.overflow = policy;
        self
    }

    /// How long an entry must be idle before a sweep evicts it (default 10 minutes).
    pub fn idle_ttl(mut self, d: Duration) -> Self {
        self.idle_ttl = d;
        self
    }

    /// Publish evictions to this ring (default: none).
    pub fn events(mut self, ring: EventRing) -> Self {
        self.events = Some(ring);
        self
    }

    /// How a key becomes the `u64` of an eviction event (default: a hash of the key; pass
    /// `|k| *k` for `u64` keys).
    pub fn event_key(mut self, f: fn(&K) -> u64) -> Self {
        self.event_key = Some(f);
        self
    }

    /// The store for compact values (default: `V::Store::default()`).
    pub fn store(mut self, store: V::Store) -> Self {
        self.store = store;
        self
    }

    /// Room for this many keys up front (default: none; the map grows as keys arrive).
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// Builds the registry (and the shared overflow entry, if that is the policy).
    pub fn build(self) -> Registry<K, V, C> {
        let overflow = match self.overflow {
            Overflow::Reject => None,
            Overflow::Shared(key) => {
                let config = self.overrides.get(&key).unwrap_or(&self.template);
                let value = (self.make)(&key, config, &self.store);
                Some((key, value))
            }
        };
        let hasher = RegistryHasher::default();
        let event_key = self.event_key.unwrap_or(hash_key::<K>);
        Registry {
            map: DashMap::with_capacity_and_hasher(self.capacity, hasher),
            store: self.store,
            make: self.make,
            template: self.template,
            overrides: self.overrides,
            max_keys: self.max_keys,
            overflow,
            len: AtomicUsize::new(0),
            idle_ttl_ns: duration_ns(self.idle_ttl),
            events: self.events,
            event_key,
            created: StdAtomicU64::new(0),
            evicted: StdAtomicU64::new(0),
            overflowed: StdAtomicU64::new(0),
            rejected: StdAtomicU64::new(0),
            id: crate::source_id::next(crate::source_id::REGISTRY),
        }
    }
}

/// A stable hash of a key for events (fixed seed, so the agent can match evictions to keys it
/// hashed the same way with [`Registry::event_key_of`]).
fn hash_key<K: Hash>(key: &K) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5eed_5eed).hash_one(key)
}

impl<K, V, C> Registry<K, V, C>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Entry,
    C: Send + Sync,
{
    /// A builder: `make` turns a key and its configuration (the template or the key's
    /// override) into a value. It runs under the map shard's write lock, once per key.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use surgewall::{Bulkhead, BulkheadConfig, registry::Registry};
    /// let r = Registry::builder(BulkheadConfig::default(), |k: &u64, c: &BulkheadConfig| {
    ///     Arc::new(Bulkhead::new(k.to_string(), *c))
    /// })
    /// .build();
    /// assert_eq!(r.get(&7)?.name(), "7");
    /// # Ok::<(), surgewall::registry::RegistryFull>(())
    /// ```
    pub fn builder<F>(template: C, make: F) -> RegistryBuilder<K, V, C>
    where
        F: Fn(&K, &C) -> V + Send + Sync + 'static,
    {
        Self::builder_with_store(template, move |k, c, _| make(k, c))
    }

    /// A builder whose `make` also sees the [`Entry::Store`] (for compact values that live in
    /// it).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use surgewall::{Bulkhead, BulkheadConfig, registry::Registry};
    /// let r = Registry::builder_with_store(BulkheadConfig::default(), |_: &u64, c: &BulkheadConfig, _: &()| {
    ///     Arc::new(Bulkhead::new("tenant", *c))
    /// })
    /// .build();
    /// assert!(r.get(&1).is_ok());
    /// ```
    pub fn builder_with_store<F>(template: C, make: F) -> RegistryBuilder<K, V, C>
    where
        F: Fn(&K, &C, &V::Store) -> V + Send + Sync + 'static,
    {
        RegistryBuilder {
            template,
            make: Box::new(make),
            store: V::Store::default(),
            overrides: HashMap::with_hasher(RegistryHasher::default()),
            max_keys: 10_000,
            overflow: Overflow::Reject,
            idle_ttl: Duration::from_secs(600),
            events: None,
            event_key: None,
            capacity: 0,
        }
    }

    /// Runs `f` on the key's value, creating it first if the key is new. While `f` runs the
    /// entry cannot be evicted (it holds the shard's read lock: keep `f` short, and never call
    /// back into this registry from it). Beyond the cap, `f` runs on the shared overflow entry
    /// or the call fails with [`RegistryFull`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use surgewall::{Bulkhead, BulkheadConfig, registry::Registry};
    /// let r = Registry::builder(BulkheadConfig::default(), |_: &u64, c: &BulkheadConfig| {
    ///     Arc::new(Bulkhead::new("tenant", *c))
    /// })
    /// .build();
    /// let admitted = r.with(&42, |b, _| b.try_acquire_raw().is_ok())?;
    /// assert!(admitted);
    /// # Ok::<(), surgewall::registry::RegistryFull>(())
    /// ```
    #[inline]
    pub fn with<R>(&self, key: &K, f: impl FnOnce(&V, &V::Store) -> R) -> Result<R, RegistryFull> {
        if let Some(found) = self.map.get(key) {
            return Ok(f(found.value(), &self.store));
        }
        self.with_new(key, f)
    }

    #[cold]
    fn with_new<R>(&self, key: &K, f: impl FnOnce(&V, &V::Store) -> R) -> Result<R, RegistryFull> {
        match self.map.entry(key.clone()) {
            // Another thread created it between our read and our write lock.
            MapEntry::Occupied(o) => Ok(f(o.get(), &self.store)),
            MapEntry::Vacant(v) => {
                // Relaxed: the count is a cap, not a publication; the shard lock orders the
                // insert itself.
                let reserved = self
                    .len
                    .fetch_update(StdOrdering::Relaxed, StdOrdering::Relaxed, |n| {
                        (n < self.max_keys).then_some(n + 1)
                    })
                    .is_ok();
                if !reserved {
                    drop(v);
                    return match &self.overflow {
                        Some((_, shared)) => {
                            self.overflowed.fetch_add(1, StdOrdering::Relaxed);
                            Ok(f(shared, &self.store))
                        }
                        None => {
                            self.rejected.fetch_add(1, StdOrdering::Relaxed);
                            Err(RegistryFull {
                                max_keys: self.max_keys,
                            })
                        }
                    };
                }
                let config = self.overrides.get(key).unwrap_or(&self.template);
                let value = (self.make)(key, config, &self.store);
                self.created.fetch_add(1, StdOrdering::Relaxed);
                let inserted = v.insert(value);
                Ok(f(&inserted, &self.store))
            }
        }
    }

    /// The key's value (created if new): a handle that stays valid after the entry is evicted.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use surgewall::{Bulkhead, BulkheadConfig, registry::Registry};
    /// let r = Registry::builder(BulkheadConfig::default(), |_: &&str, c: &BulkheadConfig| {
    ///     Arc::new(Bulkhead::new("svc", *c))
    /// })
    /// .build();
    /// let handle = r.get(&"payments")?;
    /// assert_eq!(r.len(), 1);
    /// # drop(handle);
    /// # Ok::<(), surgewall::registry::RegistryFull>(())
    /// ```
    pub fn get(&self, key: &K) -> Result<V, RegistryFull>
    where
        V: Clone,
    {
        self.with(key, |v, _| v.clone())
    }

    /// The key's value if it exists (never creates, never counts overflow).
    pub fn peek(&self, key: &K) -> Option<V>
    where
        V: Clone,
    {
        self.map.get(key).map(|v| v.value().clone())
    }

    /// Keys held now (the overflow entry excluded).
    pub fn len(&self) -> usize {
        self.len.load(StdOrdering::Relaxed)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shared overflow entry and its key, if the policy is [`Overflow::Shared`].
    pub fn overflow_entry(&self) -> Option<(&K, &V)> {
        self.overflow.as_ref().map(|(k, v)| (k, v))
    }

    /// The store compact values live in.
    pub fn store(&self) -> &V::Store {
        &self.store
    }

    /// The configured idle time after which a sweep evicts an unused entry.
    pub fn idle_ttl(&self) -> Duration {
        Duration::from_nanos(self.idle_ttl_ns)
    }

    /// The `u64` an eviction event carries for `key`.
    pub fn event_key_of(&self, key: &K) -> u64 {
        (self.event_key)(key)
    }

    /// A process-unique id (the `source` of this registry's events).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Evicts every entry that is not busy and has been idle for at least `idle_ttl` at
    /// `now_ns`, publishes one [`EventKind::Evicted`] per entry, and returns how many it
    /// evicted. `now_ns` is any monotonic nanosecond reading, from the same source on every
    /// sweep (for example [`Clock::now_ns`](crate::clock::Clock::now_ns)). Each map shard is
    /// write-locked while it is swept.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use surgewall::{Bulkhead, BulkheadConfig, registry::Registry};
    /// let r = Registry::builder(BulkheadConfig::default(), |_: &u64, c: &BulkheadConfig| {
    ///     Arc::new(Bulkhead::new("tenant", *c))
    /// })
    /// .idle_ttl(Duration::from_secs(60))
    /// .build();
    /// r.get(&1)?;
    /// assert_eq!(r.sweep(0), 0); // first look: idle from now on
    /// assert_eq!(r.sweep(60_000_000_000), 1);
    /// assert!(r.is_empty());
    /// # Ok::<(), surgewall::registry::RegistryFull>(())
    /// ```
    pub fn sweep(&self, now_ns: u64) -> usize {
        let mut evicted = 0;
        self.map.retain(|key, value| {
            let idle = match value.idle_since(&self.store, now_ns) {
                Some(since) => {
                    now_ns.saturating_sub(since) >= self.idle_ttl_ns && value.try_evict(&self.store)
                }
                None => false,
            };
            if idle {
                evicted += 1;
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
            !idle
        });
        self.len.fetch_sub(evicted, StdOrdering::Relaxed);
        self.evicted.fetch_add(evicted as u64, StdOrdering::Relaxed);
        evicted
    }

    /// Calls `f` for every entry (the overflow entry excluded), one map shard at a time under
    /// its read lock: for admin listings and metrics. Never call back into the registry from
    /// `f`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use surgewall::{Bulkhead, BulkheadConfig, registry::Registry};
    /// let r = Registry::builder(BulkheadConfig::default(), |_: &u64, c: &BulkheadConfig| {
    ///     Arc::new(Bulkhead::new("tenant", *c))
    /// })
    /// .build();
    /// for k in 0..3 { r.get(&k)?; }
    /// let mut keys = Vec::new();
    /// r.for_each(|k, _, _| keys.push(*k));
    /// keys.sort();
    /// assert_eq!(keys, [0, 1, 2]);
    /// # Ok::<(), surgewall::registry::RegistryFull>(())
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&K, &V, &V::Store)) {
        for item in self.map.iter() {
            f(item.key(), item.value(), &self.store);
        }
    }

    /// The registry's counters.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use surgewall::{Bulkhead, BulkheadConfig, registry::{Overflow, Registry}};
    /// let r = Registry::builder(BulkheadConfig::default(), |_: &u64, c: &BulkheadConfig| {
    ///     Arc::new(Bulkhead::new("tenant", *c))
    /// })
    /// .max_keys(1)
    /// .overflow(Overflow::Shared(u64::MAX))
    /// .build();
    /// r.get(&1)?;
    /// r.get(&2)?; // beyond the cap: the shared entry
    /// let s = r.stats();
    /// assert_eq!((s.keys, s.created, s.overflowed), (1, 1, 1));
    /// # Ok::<(), surgewall::registry::RegistryFull>(())
    /// ```
    pub fn stats(&self) -> RegistryStats {
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

impl<K, V: Entry, C> fmt::Debug for Registry<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("keys", &self.len.load(StdOrdering::Relaxed))
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

/// A shared bulkhead is busy while it has calls in flight or waiters; otherwise it is idle
/// since the first sweep that saw its completed-call count where it is now.
impl Entry for Bulkhead {
    type Store = ();

    fn idle_since(&self, _: &(), now_ns: u64) -> Option<u64> {
        if !self.is_idle() {
            return None;
        }
        Some(self.idle_mark().observe(self.completed(), now_ns))
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests;
