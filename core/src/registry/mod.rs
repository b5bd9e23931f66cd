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
//! ## The maps
//!
//! Keyed breakers and keyed bulkheads, whose per-key state is a few atomics, use a compact
//! registry of their own (`compact.rs`): the key and its state side by side in an arena slot
//! with a stable address, found through a flat table of 4-byte slot indices, so a call costs
//! one table cache line and the slot's, and an idle key 35-42 bytes with a `u64` key. This
//! module's [`Registry`] holds any value (usually an `Arc`, such as `Arc<Bulkhead>` for
//! per-service bulkheads that wait) in a
//! [`DashMap`] (sharded `RwLock<hashbrown::HashMap>`) with foldhash's fast hasher, seeded per
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
pub(crate) mod compact;
mod entry;
pub(crate) mod ledger;
mod table;

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::time::Duration;

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

pub use entry::{Entry, IdleMark};
use ledger::{Ledger, Options};

use crate::bulkhead::Bulkhead;
use crate::events::EventRing;

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

type Make<K, V, C> = dyn Fn(&K, &C) -> V + Send + Sync;

/// A map from keys to policy instances; see the [module docs](self).
pub struct Registry<K, V, C = ()> {
    map: DashMap<K, V, RegistryHasher>,
    make: Box<Make<K, V, C>>,
    template: C,
    overrides: HashMap<K, C, RegistryHasher>,
    overflow: Option<(K, V)>,
    ledger: Ledger<K>,
}

/// Builds a [`Registry`].
pub struct RegistryBuilder<K, V, C> {
    template: C,
    make: Box<Make<K, V, C>>,
    overrides: HashMap<K, C, RegistryHasher>,
    options: Options<K>,
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

    ledger::option_setters!();

    /// Publish evictions to this ring (default: none).
    pub fn events(mut self, ring: EventRing) -> Self {
        self.options.events = Some(ring);
        self
    }

    /// Builds the registry (and the shared overflow entry, if that is the policy).
    pub fn build(self) -> Registry<K, V, C> {
        let overflow = match &self.options.overflow {
            Overflow::Reject => None,
            Overflow::Shared(key) => {
                let config = self.overrides.get(key).unwrap_or(&self.template);
                Some((key.clone(), (self.make)(key, config)))
            }
        };
        Registry {
            map: DashMap::with_capacity_and_hasher(
                self.options.capacity,
                RegistryHasher::default(),
            ),
            make: self.make,
            template: self.template,
            overrides: self.overrides,
            overflow,
            ledger: Ledger::new(&self.options),
        }
    }
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
        RegistryBuilder {
            template,
            make: Box::new(make),
            overrides: HashMap::with_hasher(RegistryHasher::default()),
            options: Options::default(),
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
    /// let admitted = r.with(&42, |b| b.try_acquire_raw().is_ok())?;
    /// assert!(admitted);
    /// # Ok::<(), surgewall::registry::RegistryFull>(())
    /// ```
    #[inline]
    pub fn with<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Result<R, RegistryFull> {
        if let Some(found) = self.map.get(key) {
            return Ok(f(found.value()));
        }
        self.with_new(key, f)
    }

    #[cold]
    fn with_new<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Result<R, RegistryFull> {
        match self.map.entry(key.clone()) {
            // Another thread created it between our read and our write lock.
            MapEntry::Occupied(o) => Ok(f(o.get())),
            MapEntry::Vacant(v) => {
                if !self.ledger.reserve() {
                    drop(v);
                    self.ledger.refuse(self.overflow.is_some())?;
                    let (_, shared) = self.overflow.as_ref().expect("refuse fails without one");
                    return Ok(f(shared));
                }
                let config = self.overrides.get(key).unwrap_or(&self.template);
                let inserted = v.insert((self.make)(key, config));
                Ok(f(&inserted))
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
        self.with(key, V::clone)
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
        self.ledger.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shared overflow entry and its key, if the policy is [`Overflow::Shared`].
    pub fn overflow_entry(&self) -> Option<(&K, &V)> {
        self.overflow.as_ref().map(|(k, v)| (k, v))
    }

    /// The configured idle time after which a sweep evicts an unused entry.
    pub fn idle_ttl(&self) -> Duration {
        self.ledger.idle_ttl()
    }

    /// The `u64` an eviction event carries for `key`.
    pub fn event_key_of(&self, key: &K) -> u64 {
        self.ledger.event_key_of(key)
    }

    /// A process-unique id (the `source` of this registry's events).
    pub fn id(&self) -> u64 {
        self.ledger.id()
    }

    /// Evicts every entry that is not busy and has been idle for at least `idle_ttl` at
    /// `now_ns`, publishes one [`EventKind::Evicted`](crate::events::EventKind::Evicted) per entry, and returns how many it
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
            let due = value
                .idle_since(now_ns)
                .is_some_and(|since| self.ledger.expired(since, now_ns))
                && value.try_evict();
            if due {
                evicted += 1;
                self.ledger.evicted(key, now_ns);
            }
            !due
        });
        self.ledger.swept(evicted);
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
    /// r.for_each(|k, _| keys.push(*k));
    /// keys.sort();
    /// assert_eq!(keys, [0, 1, 2]);
    /// # Ok::<(), surgewall::registry::RegistryFull>(())
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for item in self.map.iter() {
            f(item.key(), item.value());
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
        self.ledger.stats()
    }
}

impl<K, V, C> fmt::Debug for Registry<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("keys", &self.ledger.len())
            .field("max_keys", &self.ledger.max_keys())
            .finish_non_exhaustive()
    }
}

/// A shared bulkhead is busy while it has calls in flight or waiters; otherwise it is idle
/// since the first sweep that saw its completed-call count where it is now.
impl Entry for Bulkhead {
    fn idle_since(&self, now_ns: u64) -> Option<u64> {
        if !self.is_idle() {
            return None;
        }
        Some(self.idle_mark().observe(self.completed(), now_ns))
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests;
