//! The catalog: every shared policy of the process that asked to be seen, by kind and name.
//!
//! An operator's tools (the agent's metrics, admin API and sweeps) find policies here and
//! nowhere else. Joining is done once, when a policy is put behind an `Arc`: the catalog keeps
//! a [`Weak`] reference, so it never keeps a policy alive, and the hot path never touches it
//! (no lock, no counter: a call on a listed breaker is the same call as on an unlisted one).
//! A policy leaves when its last `Arc` is dropped; dead entries are pruned by the next join or
//! listing of their kind.
//!
//! **Names are unique per kind among live policies.** A second live breaker named `payments`
//! is listed as `payments~2` (the first free `~N`), so a path such as
//! `/api/resilience/circuit-breakers/payments` names one breaker; the listed name is what
//! [`Catalog::join_breaker`] returns and what every listing shows. When the first one is
//! dropped, the name is free again for the next policy that joins (the second keeps `~2`).
//!
//! ```
//! use std::sync::Arc;
//! use surgewall::catalog::Catalog;
//! use surgewall::{Breaker, BreakerConfig};
//!
//! let catalog = Catalog::new(); // tests use their own; services use `Catalog::global()`
//! let a = Arc::new(Breaker::new("payments", BreakerConfig::default()));
//! let b = Arc::new(Breaker::new("payments", BreakerConfig::default()));
//! assert_eq!(catalog.join_breaker(&a), "payments");
//! assert_eq!(catalog.join_breaker(&b), "payments~2");
//! assert!(Arc::ptr_eq(&catalog.breaker("payments~2").unwrap(), &b));
//! drop(a);
//! assert_eq!(catalog.breakers().len(), 1); // the dropped one has left
//! ```

use std::collections::BTreeMap;
use std::fmt::Display;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use crate::breaker::keyed::{KeySnapshot, KeyedBreaker, KeyedBreakerMetrics};
use crate::bulkhead::keyed::{KeyedBulkhead, KeyedBulkheadMetrics};
use crate::clock::Clock;
use crate::retry::{RetryBudget, RetryPolicy};
use crate::slo::SloTracker;
use crate::{Breaker, Bulkhead, State};

/// A page of a keyed breaker's keys (see [`KeyedBreakerView::page`]).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyPage {
    /// Keys that match the filter, over the whole registry.
    pub matching: usize,
    /// The page: keys as text, with their snapshots.
    pub keys: Vec<(String, KeySnapshot)>,
}

/// What the catalog needs of a keyed breaker, whatever its key type: keys are shown with
/// [`Display`] and found from text with [`FromStr`], so the keys an operator sees are the
/// keys the service uses (a `KeyedBreaker<&str>` cannot join; use `String`).
pub trait KeyedBreakerView: Send + Sync {
    /// The registry's process-unique id: the `source` of its events.
    fn id(&self) -> u64;
    /// The counters over all keys.
    fn metrics(&self) -> KeyedBreakerMetrics;
    /// Evicts idle keys as of the breaker's own clock; returns how many went.
    fn sweep_now(&self) -> usize;
    /// Keys held, those in `state` only when given: `limit` of them after skipping `offset`,
    /// in the registry's order (stable while no key comes or goes). One pass over the keys;
    /// nothing beyond the page is kept.
    fn page(&self, state: Option<State>, offset: usize, limit: usize) -> KeyPage {
        self.page_where(&|s| state.map_or(true, |want| s == want), offset, limit)
    }
    /// [`page`](Self::page) with any filter on the state (`|s| s != State::Closed`: the keys
    /// that need attention).
    fn page_where(&self, keep: &dyn Fn(State) -> bool, offset: usize, limit: usize) -> KeyPage;
    /// The snapshot of the key written `key`, if it parses and is held.
    fn key(&self, key: &str) -> Option<KeySnapshot>;
    /// Resets the key written `key` if it is held (never creates it); whether it was.
    fn reset_key(&self, key: &str) -> bool;
    /// The held key whose events carry `event_key` (see
    /// [`KeyedBreaker::event_key`]), as text. Found at once when event keys are the keys
    /// themselves (numeric keys built with `event_key(|k| *k)`), else by one pass over the keys
    /// when the registry holds at most `scan_limit` of them (`None` beyond: hashes do not invert).
    fn key_of_event(&self, event_key: u64, scan_limit: usize) -> Option<String>;
}

impl<K> KeyedBreakerView for KeyedBreaker<K>
where
    K: Eq + Hash + Clone + Send + Sync + Display + FromStr + 'static,
{
    fn id(&self) -> u64 {
        KeyedBreaker::id(self)
    }

    fn metrics(&self) -> KeyedBreakerMetrics {
        KeyedBreaker::metrics(self)
    }

    fn sweep_now(&self) -> usize {
        self.sweep(self.clock().now_ns())
    }

    fn page_where(&self, keep: &dyn Fn(State) -> bool, offset: usize, limit: usize) -> KeyPage {
        let mut page = KeyPage {
            matching: 0,
            keys: Vec::new(),
        };
        self.for_each(|k, s| {
            if !keep(s.state) {
                return;
            }
            if page.matching >= offset && page.keys.len() < limit {
                page.keys.push((k.to_string(), *s));
            }
            page.matching += 1;
        });
        page
    }

    fn key(&self, key: &str) -> Option<KeySnapshot> {
        self.get(&key.parse().ok()?)
    }

    fn reset_key(&self, key: &str) -> bool {
        match key.parse::<K>() {
            Ok(k) if self.get(&k).is_some() => self.reset(&k).is_ok(),
            _ => false,
        }
    }

    fn key_of_event(&self, event_key: u64, scan_limit: usize) -> Option<String> {
        if let Ok(k) = event_key.to_string().parse::<K>() {
            if self.event_key(&k) == event_key && self.get(&k).is_some() {
                return Some(k.to_string());
            }
        }
        if KeyedBreaker::metrics(self).registry.keys > scan_limit {
            return None;
        }
        let mut found = None;
        self.for_each(|k, _| {
            if found.is_none() && self.event_key(k) == event_key {
                found = Some(k.to_string());
            }
        });
        found
    }
}

/// A page of a keyed bulkhead's keys (see [`KeyedBulkheadView::page`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLoadPage {
    /// Keys that match the filter, over the whole registry.
    pub matching: usize,
    /// The page: keys as text, with their calls in flight and their limit.
    pub keys: Vec<(String, u64, u32)>,
}

/// What the catalog needs of a keyed bulkhead, whatever its key type (keys as text, as for
/// [`KeyedBreakerView`]).
pub trait KeyedBulkheadView: Send + Sync {
    /// The registry's process-unique id: the `source` of its eviction events.
    fn id(&self) -> u64;
    /// The counters over all keys.
    fn metrics(&self) -> KeyedBulkheadMetrics;
    /// Evicts idle keys (idle time is measured between sweeps, on the coarse clock).
    fn sweep_now(&self) -> usize;
    /// Keys held (only those with calls in flight when `busy_only`): `limit` of them after
    /// skipping `offset`, in the registry's order. One pass over the keys.
    fn page(&self, busy_only: bool, offset: usize, limit: usize) -> KeyLoadPage;
    /// The calls in flight and the limit of the key written `key`, if it parses and is held.
    fn key(&self, key: &str) -> Option<(u64, u32)>;
}

impl<K> KeyedBulkheadView for KeyedBulkhead<K>
where
    K: Eq + Hash + Clone + Send + Sync + Display + FromStr + 'static,
{
    fn id(&self) -> u64 {
        KeyedBulkhead::id(self)
    }

    fn metrics(&self) -> KeyedBulkheadMetrics {
        KeyedBulkhead::metrics(self)
    }

    fn sweep_now(&self) -> usize {
        self.sweep(Clock::coarse().now_ns())
    }

    fn page(&self, busy_only: bool, offset: usize, limit: usize) -> KeyLoadPage {
        let mut page = KeyLoadPage {
            matching: 0,
            keys: Vec::new(),
        };
        self.for_each(|k, active, max| {
            if busy_only && active == 0 {
                return;
            }
            if page.matching >= offset && page.keys.len() < limit {
                page.keys.push((k.to_string(), active, max));
            }
            page.matching += 1;
        });
        page
    }

    fn key(&self, key: &str) -> Option<(u64, u32)> {
        self.load(&key.parse().ok()?)
    }
}

/// One kind's entries, by listed name (so listings come sorted by name), with an index by
/// address so that joining twice, leaving and pruning cost no scan.
struct Section<T: ?Sized> {
    entries: Mutex<Entries<T>>,
}

struct Entries<T: ?Sized> {
    by_name: BTreeMap<String, Weak<T>>,
    /// The address of each entry's allocation. A `Weak` keeps its allocation (not its value)
    /// alive, so an address cannot be reused by another policy while its entry is here.
    by_addr: BTreeMap<usize, String>,
    /// Dead entries are dropped when the map reaches this size (then twice the live count):
    /// a process that makes and drops many policies without listing them holds O(live) entries.
    prune_at: usize,
}

fn addr<T: ?Sized>(w: &Weak<T>) -> usize {
    w.as_ptr() as *const () as usize
}

impl<T: ?Sized> Entries<T> {
    fn prune(&mut self) {
        let addrs = &mut self.by_addr;
        self.by_name.retain(|_, w| {
            let live = w.strong_count() > 0;
            if !live {
                addrs.remove(&addr(w));
            }
            live
        });
        self.prune_at = (2 * self.by_name.len()).max(64);
    }

    fn taken(&self, name: &str) -> bool {
        self.by_name.get(name).is_some_and(|w| w.strong_count() > 0)
    }

    fn remove(&mut self, name: &str) {
        if let Some(w) = self.by_name.remove(name) {
            self.by_addr.remove(&addr(&w));
        }
    }
}

impl<T: ?Sized> Section<T> {
    const fn new() -> Self {
        Section {
            entries: Mutex::new(Entries {
                by_name: BTreeMap::new(),
                by_addr: BTreeMap::new(),
                prune_at: 64,
            }),
        }
    }

    /// The entries. Every change under the lock leaves both maps consistent before anything
    /// that can panic (allocation aside), so a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, Entries<T>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn join(&self, name: &str, item: Weak<T>) -> String {
        let mut e = self.lock();
        if let Some(listed) = e.by_addr.get(&addr(&item)) {
            return listed.clone(); // joining twice changes nothing
        }
        if e.by_name.len() >= e.prune_at {
            e.prune();
        }
        let listed = if e.taken(name) {
            (2u64..)
                .map(|i| format!("{name}~{i}"))
                .find(|n| !e.taken(n))
                .expect("fewer than u64::MAX entries")
        } else {
            name.to_owned()
        };
        e.remove(&listed); // a dead entry of that name
        e.by_addr.insert(addr(&item), listed.clone());
        e.by_name.insert(listed.clone(), item);
        listed
    }

    fn leave(&self, item: &Weak<T>) -> bool {
        let mut e = self.lock();
        match e.by_addr.get(&addr(item)).cloned() {
            Some(listed) => {
                e.remove(&listed);
                true
            }
            None => false,
        }
    }

    fn all(&self) -> Vec<(String, Arc<T>)> {
        let mut e = self.lock();
        e.prune();
        e.by_name
            .iter()
            .filter_map(|(n, w)| Some((n.clone(), w.upgrade()?)))
            .collect()
    }

    fn get(&self, name: &str) -> Option<Arc<T>> {
        self.lock().by_name.get(name)?.upgrade()
    }

    fn len(&self) -> usize {
        let mut e = self.lock();
        e.prune();
        e.by_name.len()
    }
}

/// Every lock of a [`Catalog`], held (see [`Catalog::lock_all`]).
pub struct CatalogLocks<'a> {
    _breakers: Held<'a, Breaker>,
    _bulkheads: Held<'a, Bulkhead>,
    _keyed_breakers: Held<'a, dyn KeyedBreakerView>,
    _keyed_bulkheads: Held<'a, dyn KeyedBulkheadView>,
    _retry_budgets: Held<'a, RetryBudget>,
    _retry_policies: Held<'a, RetryPolicy>,
    _slos: Held<'a, SloTracker>,
}

type Held<'a, T> = MutexGuard<'a, Entries<T>>;

impl std::fmt::Debug for CatalogLocks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogLocks")
    }
}

/// The process's policies by kind (see the [module docs](self)).
pub struct Catalog {
    breakers: Section<Breaker>,
    bulkheads: Section<Bulkhead>,
    keyed_breakers: Section<dyn KeyedBreakerView>,
    keyed_bulkheads: Section<dyn KeyedBulkheadView>,
    retry_budgets: Section<RetryBudget>,
    retry_policies: Section<RetryPolicy>,
    slos: Section<SloTracker>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("breakers", &self.breakers.len())
            .field("bulkheads", &self.bulkheads.len())
            .field("keyed_breakers", &self.keyed_breakers.len())
            .field("keyed_bulkheads", &self.keyed_bulkheads.len())
            .field("retry_budgets", &self.retry_budgets.len())
            .field("retry_policies", &self.retry_policies.len())
            .field("slos", &self.slos.len())
            .finish()
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! section_api {
    ($section:ident, $ty:ty, $join:ident, $leave:ident, $list:ident, $get:ident, $what:literal) => {
        #[doc = concat!("Lists ", $what, " under `name` (or `name~N` when a live one has it); returns the listed name.")]
        pub fn $join(&self, name: &str, item: &Arc<$ty>) -> String {
            let weak: Weak<$ty> = Arc::downgrade(item);
            self.$section.join(name, weak)
        }

        #[doc = concat!("Takes ", $what, " off the list before it is dropped; whether it was listed.")]
        pub fn $leave(&self, item: &Arc<$ty>) -> bool {
            let weak: Weak<$ty> = Arc::downgrade(item);
            self.$section.leave(&weak)
        }

        #[doc = concat!("Every live one of ", $what, ", with its listed name, sorted by listed name.")]
        pub fn $list(&self) -> Vec<(String, Arc<$ty>)> {
            self.$section.all()
        }

        #[doc = concat!("The live one of ", $what, " listed as `name`.")]
        pub fn $get(&self, name: &str) -> Option<Arc<$ty>> {
            self.$section.get(name)
        }
    };
}

impl Catalog {
    /// An empty catalog (tests and embedders; services use [`Catalog::global`]).
    pub const fn new() -> Self {
        Catalog {
            breakers: Section::new(),
            bulkheads: Section::new(),
            keyed_breakers: Section::new(),
            keyed_bulkheads: Section::new(),
            retry_budgets: Section::new(),
            retry_policies: Section::new(),
            slos: Section::new(),
        }
    }

    /// The process-wide catalog: what the C ABI and the bindings join, and what the agent reads.
    pub fn global() -> &'static Catalog {
        static GLOBAL: OnceLock<Catalog> = OnceLock::new();
        GLOBAL.get_or_init(Catalog::new)
    }

    /// Lists a breaker under its own name (or `name~N`); returns the listed name.
    pub fn join_breaker(&self, breaker: &Arc<Breaker>) -> String {
        self.breakers.join(breaker.name(), Arc::downgrade(breaker))
    }

    /// Takes a breaker off the list before it is dropped; whether it was listed.
    pub fn leave_breaker(&self, breaker: &Arc<Breaker>) -> bool {
        self.breakers.leave(&Arc::downgrade(breaker))
    }

    /// Every live listed breaker with its listed name, sorted by listed name.
    pub fn breakers(&self) -> Vec<(String, Arc<Breaker>)> {
        self.breakers.all()
    }

    /// The live breaker listed as `name`.
    pub fn breaker(&self, name: &str) -> Option<Arc<Breaker>> {
        self.breakers.get(name)
    }

    /// Lists a bulkhead under its own name (or `name~N`); returns the listed name.
    pub fn join_bulkhead(&self, bulkhead: &Arc<Bulkhead>) -> String {
        self.bulkheads
            .join(bulkhead.name(), Arc::downgrade(bulkhead))
    }

    /// Takes a bulkhead off the list before it is dropped; whether it was listed.
    pub fn leave_bulkhead(&self, bulkhead: &Arc<Bulkhead>) -> bool {
        self.bulkheads.leave(&Arc::downgrade(bulkhead))
    }

    /// Every live listed bulkhead with its listed name, sorted by listed name.
    pub fn bulkheads(&self) -> Vec<(String, Arc<Bulkhead>)> {
        self.bulkheads.all()
    }

    /// The live bulkhead listed as `name`.
    pub fn bulkhead(&self, name: &str) -> Option<Arc<Bulkhead>> {
        self.bulkheads.get(name)
    }

    section_api!(
        keyed_breakers,
        dyn KeyedBreakerView,
        join_keyed_breaker,
        leave_keyed_breaker,
        keyed_breakers,
        keyed_breaker,
        "a keyed breaker"
    );
    section_api!(
        keyed_bulkheads,
        dyn KeyedBulkheadView,
        join_keyed_bulkhead,
        leave_keyed_bulkhead,
        keyed_bulkheads,
        keyed_bulkhead,
        "a keyed bulkhead"
    );
    section_api!(
        retry_budgets,
        RetryBudget,
        join_retry_budget,
        leave_retry_budget,
        retry_budgets,
        retry_budget,
        "a retry budget"
    );
    section_api!(
        retry_policies,
        RetryPolicy,
        join_retry_policy,
        leave_retry_policy,
        retry_policies,
        retry_policy,
        "a retry policy"
    );
    section_api!(
        slos,
        SloTracker,
        join_slo,
        leave_slo,
        slos,
        slo,
        "an SLO tracker"
    );

    /// Takes every lock of the catalog and holds them until the value is dropped: for a
    /// `fork()` handler, which takes them before the fork and drops them after it in the parent
    /// and in the child, so the child never inherits a lock another thread held at the fork
    /// (libsurgewall's `pthread_atfork` handlers do this). Nothing else should need it.
    ///
    /// ```
    /// let catalog = surgewall::catalog::Catalog::new();
    /// let held = catalog.lock_all();
    /// drop(held);
    /// assert!(catalog.breakers().is_empty()); // free again
    /// ```
    pub fn lock_all(&self) -> CatalogLocks<'_> {
        CatalogLocks {
            _breakers: self.breakers.lock(),
            _bulkheads: self.bulkheads.lock(),
            _keyed_breakers: self.keyed_breakers.lock(),
            _keyed_bulkheads: self.keyed_bulkheads.lock(),
            _retry_budgets: self.retry_budgets.lock(),
            _retry_policies: self.retry_policies.lock(),
            _slos: self.slos.lock(),
        }
    }

    /// Sweeps every listed keyed registry once (idle eviction); returns the keys evicted.
    pub fn sweep_keyed(&self) -> usize {
        let breakers: usize = self
            .keyed_breakers()
            .iter()
            .map(|(_, k)| k.sweep_now())
            .sum();
        let bulkheads: usize = self
            .keyed_bulkheads()
            .iter()
            .map(|(_, k)| k.sweep_now())
            .sum();
        breakers + bulkheads
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{BreakerConfig, BulkheadConfig};

    fn breaker(name: &str) -> Arc<Breaker> {
        Arc::new(Breaker::new(name, BreakerConfig::default()))
    }

    #[test]
    fn a_taken_name_is_disambiguated_and_freed_when_its_holder_is_dropped() {
        let catalog = Catalog::new();
        let a = breaker("payments");
        let b = breaker("payments");
        let c = breaker("payments~2"); // a user's name that looks like ours
        assert_eq!(catalog.join_breaker(&a), "payments");
        assert_eq!(catalog.join_breaker(&c), "payments~2");
        assert_eq!(catalog.join_breaker(&b), "payments~3");
        assert_eq!(
            catalog.join_breaker(&b),
            "payments~3",
            "joining twice is one entry"
        );
        drop(a);
        let d = breaker("payments");
        assert_eq!(catalog.join_breaker(&d), "payments");
        let names: Vec<String> = catalog.breakers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["payments", "payments~2", "payments~3"]);
        assert!(Arc::ptr_eq(&catalog.breaker("payments").unwrap(), &d));
    }

    #[test]
    fn the_catalog_never_keeps_a_policy_alive_and_leave_takes_it_off() {
        let catalog = Catalog::new();
        let b = breaker("inventory");
        catalog.join_breaker(&b);
        let weak = Arc::downgrade(&b);
        drop(b);
        assert!(
            weak.upgrade().is_none(),
            "the catalog holds only a weak reference"
        );
        assert!(catalog.breaker("inventory").is_none());

        let bulkhead = Arc::new(Bulkhead::new("db", BulkheadConfig::default()));
        assert_eq!(catalog.join_bulkhead(&bulkhead), "db");
        assert!(catalog.leave_bulkhead(&bulkhead));
        assert!(!catalog.leave_bulkhead(&bulkhead), "already off");
        assert!(catalog.bulkhead("db").is_none());
        assert_eq!(Arc::strong_count(&bulkhead), 1);
    }

    #[test]
    fn dropped_policies_do_not_pile_up_when_nobody_lists_them() {
        let catalog = Catalog::new();
        let keep = breaker("kept");
        catalog.join_breaker(&keep);
        for i in 0..10_000 {
            catalog.join_breaker(&breaker(&format!("gone-{i}")));
        }
        let held = catalog.breakers.lock().by_name.len();
        assert!(held <= 128, "{held} entries held for one live breaker");
        assert_eq!(catalog.breakers().len(), 1);
    }

    #[test]
    fn kinds_have_separate_names_and_keyed_registries_are_swept_on_their_own_clocks() {
        let catalog = Catalog::new();
        let (clock, time) = Clock::mock();
        let keyed = Arc::new(
            KeyedBreaker::<u64>::builder(BreakerConfig::default())
                .idle_ttl(Duration::from_secs(1))
                .clock(clock)
                .build()
                .unwrap(),
        );
        let dynamic: Arc<dyn KeyedBreakerView> = keyed.clone();
        assert_eq!(catalog.join_keyed_breaker("users", &dynamic), "users");
        let b = breaker("users");
        assert_eq!(
            catalog.join_breaker(&b),
            "users",
            "another kind, another namespace"
        );

        keyed.try_acquire(&7).unwrap().success();
        assert_eq!(
            catalog.sweep_keyed(),
            0,
            "the first sweep only marks it idle"
        );
        time.advance(Duration::from_secs(1));
        assert_eq!(catalog.sweep_keyed(), 1);
        assert_eq!(keyed.len(), 0);
        let listed = catalog.keyed_breaker("users").unwrap();
        assert_eq!(listed.metrics().registry.evicted, 1);
    }

    #[test]
    fn keyed_breakers_are_paged_filtered_and_reached_by_their_keys_as_text() {
        let keyed = Arc::new(
            KeyedBreaker::<u64>::builder(BreakerConfig::default())
                .build()
                .unwrap(),
        );
        for k in 0..10u64 {
            keyed.try_acquire(&k).unwrap().success();
        }
        for k in [3u64, 5, 7] {
            keyed.force_open(&k, None).unwrap();
        }
        let view: Arc<dyn KeyedBreakerView> = keyed.clone();
        let all = view.page(None, 0, 100);
        assert_eq!((all.matching, all.keys.len()), (10, 10));
        let open = view.page(Some(State::ForcedOpen), 0, 100);
        let mut keys: Vec<String> = open.keys.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        assert_eq!(keys, ["3", "5", "7"]);
        let second = view.page(Some(State::ForcedOpen), 1, 1);
        assert_eq!((second.matching, second.keys.len()), (3, 1));
        assert_eq!(
            second.keys[0], open.keys[1],
            "offset 1 is the second of the same order"
        );
        assert_eq!(view.key("5").unwrap().state, State::ForcedOpen);
        assert!(view.key("five").is_none() && view.key("42").is_none());
        assert!(view.reset_key("5"));
        assert_eq!(keyed.state(&5), Some(State::Closed));
        assert!(
            !view.reset_key("42"),
            "resetting a key not held does not create it"
        );
        assert_eq!(keyed.len(), 10);
    }
}
