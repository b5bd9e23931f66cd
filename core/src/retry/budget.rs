//! The retry budget: retries may not exceed a share of requests plus a small floor, so a
//! failing dependency does not see its traffic multiplied by every client's retries
//! (Envoy's `retry_budget`, tower's `TpsBudget`, failsafe-go's budget).
//!
//! ## The rule
//!
//! Time is cut into one-second buckets; the window is the last `window_secs` of them, the
//! current (partial) second included. A retry is granted only if, counting it,
//!
//! ```text
//! retries in window <= ratio * requests in window + min_per_second * window_secs
//! ```
//!
//! Requests are the *first* attempts of operations (a [`RetrySchedule`](super::RetrySchedule)
//! records one when it is created; other callers use [`RetryBudget::record_request`]); retries
//! are what [`RetryBudget::try_retry`] granted. Refused retries are counted, and a
//! [`EventKind::RetryBudgetExhausted`] is published at most once per second of refusals.
//!
//! ## The floor is a lump per window, not a rate
//!
//! `min_per_second * window_secs` retries are allowed in the window whatever the requests, and
//! nothing spreads them over the window: with no requests, that many retries can be granted
//! in a single burst, and then none until the seconds holding them slide out of the window
//! (like Finagle's reserve, `minRetriesPerSec x ttl`). Size the floor for the burst it
//! allows: 3 a second over 10 s is a burst of 30. (Pinned by
//! `retry::tests::the_budget_floor_is_a_lump_per_window_usable_in_one_burst`.)
//!
//! ## Lock-free counters
//!
//! Each bucket holds two words, `[second: 32 | count: 32]`, for requests and for retries. A
//! recorder CASes its bucket's word: same second, add one; older second, restart at one. A
//! grant reads the other buckets, then CASes the current bucket's retry word only while the
//! sum still fits the rule, so concurrent grants can never overshoot it together (each CAS
//! re-checks with the count it replaces). Seconds are clock seconds (monotonic), so the tag
//! wraps after 136 years.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use crate::clock::Clock;
use crate::error::{check, ConfigError};
use crate::events::{Event, EventKind, EventRing};
use crate::sync::{AtomicU64, Ordering};

/// A validated budget configuration: plain values, so bindings can pass them through.
///
/// ```
/// use surgewall::RetryBudgetConfig;
///
/// let c = RetryBudgetConfig::new(0.2, 3.0, 10)?;
/// assert_eq!((c.ratio(), c.min_per_second(), c.window_secs()), (0.2, 3.0, 10));
/// assert_eq!(RetryBudgetConfig::new(1.5, 3.0, 10).unwrap_err().field(), "ratio");
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudgetConfig {
    ratio: f64,
    min_per_second: f64,
    window_secs: u32,
}

impl Default for RetryBudgetConfig {
    /// 20 % of requests plus 3 retries per second, over 10 seconds.
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 3.0,
            window_secs: 10,
        }
    }
}

impl RetryBudgetConfig {
    /// `ratio` in [0, 1], `min_per_second` finite and >= 0, `window_secs` in 1..=60.
    ///
    /// ```
    /// let err = surgewall::RetryBudgetConfig::new(0.1, f64::NAN, 10).unwrap_err();
    /// assert_eq!(err.field(), "min_per_second");
    /// ```
    pub fn new(ratio: f64, min_per_second: f64, window_secs: u32) -> Result<Self, ConfigError> {
        let ratio = check::rate("ratio", ratio)?;
        let min_per_second = check::non_negative("min_per_second", min_per_second)?;
        if !(1..=60).contains(&window_secs) {
            return Err(ConfigError::new(
                "window_secs",
                format!("must be within 1..=60, got {window_secs}"),
            ));
        }
        Ok(Self {
            ratio,
            min_per_second,
            window_secs,
        })
    }

    /// The share of requests that may be retried.
    ///
    /// ```
    /// assert_eq!(surgewall::RetryBudgetConfig::default().ratio(), 0.2);
    /// ```
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The floor, per second of the window: `min_per_second * window_secs` retries are allowed
    /// whatever the requests — one lump per window, usable in a single burst (see the module
    /// docs), not a rate.
    ///
    /// ```
    /// assert_eq!(surgewall::RetryBudgetConfig::default().min_per_second(), 3.0);
    /// ```
    pub fn min_per_second(&self) -> f64 {
        self.min_per_second
    }

    /// The window, in one-second buckets.
    ///
    /// ```
    /// assert_eq!(surgewall::RetryBudgetConfig::default().window_secs(), 10);
    /// ```
    pub fn window_secs(&self) -> u32 {
        self.window_secs
    }

    /// The most retries the rule allows for `requests` in the window.
    ///
    /// ```
    /// let c = surgewall::RetryBudgetConfig::new(0.2, 1.0, 10)?;
    /// assert_eq!(c.allowed(100), 30.0); // 0.2 * 100 + 1 * 10
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn allowed(&self, requests: u64) -> f64 {
        self.ratio * requests as f64 + self.min_per_second * f64::from(self.window_secs)
    }
}

struct Bucket {
    requests: AtomicU64,
    retries: AtomicU64,
}

const COUNT_MASK: u64 = u32::MAX as u64;

fn count_in(word: u64, sec: u64) -> u64 {
    if word >> 32 == sec & COUNT_MASK {
        word & COUNT_MASK
    } else {
        0
    }
}

/// What a budget holds now.
///
/// ```
/// let budget = surgewall::RetryBudget::new(Default::default());
/// budget.record_request();
/// let m = budget.metrics();
/// assert_eq!((m.requests, m.retries), (1, 0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudgetMetrics {
    /// Requests in the window.
    pub requests: u64,
    /// Retries granted in the window.
    pub retries: u64,
    /// Retries the rule allows in the window now (`ratio * requests + floor`).
    pub allowed: f64,
    /// Retries still grantable now (`allowed - retries`, rounded down, never negative).
    pub remaining: u64,
    /// Retries granted, ever.
    pub granted_total: u64,
    /// Retries refused, ever.
    pub refused_total: u64,
    /// `RetryBudgetExhausted` events published, ever.
    pub exhausted_events: u64,
}

/// A retry budget, shared by every policy (and thread) that retries against one dependency.
/// Share it with `Arc`, or by name through a [`RetryBudgetRegistry`].
///
/// ```
/// use surgewall::{RetryBudget, RetryBudgetConfig, clock::Clock, events::EventRing};
///
/// let (clock, _time) = Clock::mock();
/// let budget = RetryBudget::with_clock(RetryBudgetConfig::new(0.5, 0.0, 10)?, clock, EventRing::new(16));
/// for _ in 0..4 {
///     budget.record_request();
/// }
/// assert!(budget.try_retry());
/// assert!(budget.try_retry());
/// assert!(!budget.try_retry()); // 3 > 0.5 * 4
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
pub struct RetryBudget {
    buckets: Box<[Bucket]>,
    config: RetryBudgetConfig,
    granted: AtomicU64,
    refused: AtomicU64,
    exhausted_events: AtomicU64,
    /// The second (plus one; 0 = never) of the last exhaustion event.
    last_event_sec: AtomicU64,
    clock: Clock,
    events: EventRing,
    id: u64,
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish()
    }
}

impl RetryBudget {
    /// A budget on the coarse clock, publishing to the default event ring.
    ///
    /// ```
    /// let b = surgewall::RetryBudget::new(surgewall::RetryBudgetConfig::default());
    /// assert!(b.try_retry()); // the floor allows a few retries without requests
    /// ```
    pub fn new(config: RetryBudgetConfig) -> Self {
        Self::with_clock(config, Clock::coarse(), crate::breaker::default_events())
    }

    /// A budget on `clock`, publishing to `events`.
    ///
    /// ```
    /// use surgewall::{RetryBudget, clock::Clock, events::EventRing};
    /// let (clock, _) = Clock::mock();
    /// let b = RetryBudget::with_clock(Default::default(), clock, EventRing::new(8));
    /// assert_eq!(b.metrics().granted_total, 0);
    /// ```
    pub fn with_clock(config: RetryBudgetConfig, clock: Clock, events: EventRing) -> Self {
        let buckets = (0..config.window_secs)
            .map(|_| Bucket {
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Self {
            buckets,
            config,
            granted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            exhausted_events: AtomicU64::new(0),
            last_event_sec: AtomicU64::new(0),
            clock,
            events,
            id: crate::source_id::next(crate::source_id::RETRY_BUDGET),
        }
    }

    /// The configuration.
    ///
    /// ```
    /// let b = surgewall::RetryBudget::new(Default::default());
    /// assert_eq!(b.config().window_secs(), 10);
    /// ```
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    /// The `source` of this budget's events.
    ///
    /// ```
    /// let b = surgewall::RetryBudget::new(Default::default());
    /// assert_ne!(b.id(), surgewall::RetryBudget::new(Default::default()).id());
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The ring exhaustion events go to.
    ///
    /// ```
    /// let b = surgewall::RetryBudget::new(Default::default());
    /// let _sub = b.events().subscribe();
    /// ```
    pub fn events(&self) -> &EventRing {
        &self.events
    }

    fn sec(&self) -> u64 {
        self.clock.now_ns() / 1_000_000_000
    }

    fn bucket(&self, sec: u64) -> &Bucket {
        &self.buckets[(sec % self.buckets.len() as u64) as usize]
    }

    /// Adds one to the `sec` bucket's word, restarting it if it holds an older second.
    fn bump(word: &AtomicU64, sec: u64) {
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            let next = (sec & COUNT_MASK) << 32 | (count_in(cur, sec) + 1).min(COUNT_MASK);
            // Relaxed: the word is self-contained (tag and count move together); nothing else
            // is published through it.
            match word.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Sums (requests, retries) over the window ending at `sec`, leaving out the current
    /// bucket's retries when `skip_current_retries`.
    fn sums(&self, sec: u64, skip_current_retries: bool) -> (u64, u64) {
        let n = self.buckets.len() as u64;
        let (mut req, mut ret) = (0, 0);
        for s in sec.saturating_sub(n - 1)..=sec {
            let b = self.bucket(s);
            // Relaxed: advisory reads; the grant's CAS below is what enforces the rule.
            req += count_in(b.requests.load(Ordering::Relaxed), s);
            if !(skip_current_retries && s == sec) {
                ret += count_in(b.retries.load(Ordering::Relaxed), s);
            }
        }
        (req, ret)
    }

    /// Counts one request (an operation's first attempt).
    ///
    /// ```
    /// let b = surgewall::RetryBudget::new(Default::default());
    /// b.record_request();
    /// assert_eq!(b.metrics().requests, 1);
    /// ```
    pub fn record_request(&self) {
        let sec = self.sec();
        Self::bump(&self.bucket(sec).requests, sec);
    }

    /// Takes one retry from the budget: `true` if granted (and counted), `false` if the retry
    /// would break the rule (counted as refused, and announced by an event at most once a
    /// second).
    ///
    /// ```
    /// use surgewall::{RetryBudget, RetryBudgetConfig};
    /// let b = RetryBudget::new(RetryBudgetConfig::new(0.0, 0.0, 1)?);
    /// assert!(!b.try_retry()); // no share, no floor: nothing is ever retried
    /// assert_eq!(b.metrics().refused_total, 1);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn try_retry(&self) -> bool {
        let sec = self.sec();
        let (requests, others) = self.sums(sec, true);
        let allowed = self.config.allowed(requests);
        let word = &self.bucket(sec).retries;
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            let mine = count_in(cur, sec) + 1;
            if (others + mine) as f64 > allowed || mine > COUNT_MASK {
                self.refused(sec);
                return false;
            }
            let next = (sec & COUNT_MASK) << 32 | mine;
            // Relaxed: the CAS itself serialises grants on this word; each re-checks the rule
            // against the count it replaces, so concurrent grants cannot overshoot together.
            match word.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    self.granted.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(now) => cur = now,
            }
        }
    }

    fn refused(&self, sec: u64) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        // One event per second of refusals: a storm must not flood the ring.
        if self.last_event_sec.swap(sec + 1, Ordering::Relaxed) != sec + 1 {
            self.exhausted_events.fetch_add(1, Ordering::Relaxed);
            self.events.publish(Event {
                source: self.id,
                at_ns: self.clock.now_ns(),
                kind: EventKind::RetryBudgetExhausted,
            });
        }
    }

    /// A snapshot. Reads only.
    ///
    /// ```
    /// use surgewall::{RetryBudget, RetryBudgetConfig};
    /// let b = RetryBudget::new(RetryBudgetConfig::new(0.5, 0.0, 10)?);
    /// b.record_request();
    /// b.record_request();
    /// assert!(b.try_retry());
    /// let m = b.metrics();
    /// assert_eq!((m.requests, m.retries, m.allowed, m.remaining), (2, 1, 1.0, 0));
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn metrics(&self) -> RetryBudgetMetrics {
        let sec = self.sec();
        let (requests, retries) = self.sums(sec, false);
        let allowed = self.config.allowed(requests);
        RetryBudgetMetrics {
            requests,
            retries,
            allowed,
            remaining: (allowed - retries as f64).max(0.0) as u64,
            granted_total: self.granted.load(Ordering::Relaxed),
            refused_total: self.refused.load(Ordering::Relaxed),
            exhausted_events: self.exhausted_events.load(Ordering::Relaxed),
        }
    }
}

/// Budgets by name, so every policy retrying against one dependency shares one budget.
///
/// Lookups take a lock; do them when building policies, not per call (the budget itself is
/// lock-free). The first `get_or_create` of a name decides its configuration; later ones get
/// the same budget whatever config they pass.
///
/// ```
/// use std::sync::Arc;
/// use surgewall::{RetryBudgetConfig, RetryBudgetRegistry};
///
/// let registry = RetryBudgetRegistry::new();
/// let a = registry.get_or_create("payments", RetryBudgetConfig::default());
/// let b = registry.get_or_create("payments", RetryBudgetConfig::new(0.5, 1.0, 5)?);
/// assert!(Arc::ptr_eq(&a, &b));
/// assert_eq!(b.config().ratio(), 0.2);
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
pub struct RetryBudgetRegistry {
    budgets: Mutex<HashMap<String, Arc<RetryBudget>>>,
    clock: Clock,
    events: Option<EventRing>,
}

impl fmt::Debug for RetryBudgetRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudgetRegistry")
            .field("names", &self.names())
            .finish()
    }
}

impl Default for RetryBudgetRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryBudgetRegistry {
    /// An empty registry whose budgets use the coarse clock and the default event ring.
    ///
    /// ```
    /// assert!(surgewall::RetryBudgetRegistry::new().names().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_clock(Clock::coarse(), None)
    }

    /// An empty registry whose budgets use `clock` and `events` (the default ring if `None`).
    ///
    /// ```
    /// let (clock, _) = surgewall::clock::Clock::mock();
    /// let r = surgewall::RetryBudgetRegistry::with_clock(clock, None);
    /// assert!(r.get("x").is_none());
    /// ```
    pub fn with_clock(clock: Clock, events: Option<EventRing>) -> Self {
        Self {
            budgets: Mutex::new(HashMap::new()),
            clock,
            events,
        }
    }

    /// The process-wide registry.
    ///
    /// ```
    /// let b = surgewall::RetryBudgetRegistry::global().get_or_create("doc-global", Default::default());
    /// assert!(std::sync::Arc::ptr_eq(&b, &surgewall::RetryBudgetRegistry::global().get("doc-global").unwrap()));
    /// ```
    pub fn global() -> &'static RetryBudgetRegistry {
        static GLOBAL: OnceLock<RetryBudgetRegistry> = OnceLock::new();
        GLOBAL.get_or_init(RetryBudgetRegistry::new)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<RetryBudget>>> {
        // A panic while holding the lock cannot leave the map half-updated (one insert).
        self.budgets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The budget called `name`, created with `config` if there is none yet.
    ///
    /// ```
    /// let r = surgewall::RetryBudgetRegistry::new();
    /// let b = r.get_or_create("search", Default::default());
    /// assert_eq!(r.names(), vec!["search".to_string()]);
    /// # drop(b);
    /// ```
    pub fn get_or_create(&self, name: &str, config: RetryBudgetConfig) -> Arc<RetryBudget> {
        let mut map = self.map();
        if let Some(b) = map.get(name) {
            return b.clone();
        }
        let events = self
            .events
            .clone()
            .unwrap_or_else(crate::breaker::default_events);
        let b = Arc::new(RetryBudget::with_clock(config, self.clock.clone(), events));
        map.insert(name.to_owned(), b.clone());
        b
    }

    /// The budget called `name`, if any.
    ///
    /// ```
    /// assert!(surgewall::RetryBudgetRegistry::new().get("nope").is_none());
    /// ```
    pub fn get(&self, name: &str) -> Option<Arc<RetryBudget>> {
        self.map().get(name).cloned()
    }

    /// Forgets `name` (policies holding the budget keep it); returns it if it was there.
    ///
    /// ```
    /// let r = surgewall::RetryBudgetRegistry::new();
    /// r.get_or_create("a", Default::default());
    /// assert!(r.remove("a").is_some());
    /// assert!(r.get("a").is_none());
    /// ```
    pub fn remove(&self, name: &str) -> Option<Arc<RetryBudget>> {
        self.map().remove(name)
    }

    /// The registered names, sorted.
    ///
    /// ```
    /// assert!(surgewall::RetryBudgetRegistry::new().names().is_empty());
    /// ```
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map().keys().cloned().collect();
        v.sort();
        v
    }
}
