//! The bulkhead: a limit on concurrent calls.
//!
//! A [`Bulkhead`] admits at most `max_concurrent` calls at once. [`Bulkhead::try_acquire`]
//! never blocks; [`Bulkhead::acquire`] (or [`Bulkhead::acquire_timeout`]) lets a blocking caller
//! wait up to `max_wait` for a slot, in FIFO order with the other waiters. Permits are RAII
//! ([`BulkheadPermit`]); bindings use the raw pair [`Bulkhead::try_acquire_raw`] /
//! [`Bulkhead::release_raw`], where a release with nothing acquired is reported, never
//! underflows.
//!
//! ## The state word
//!
//! One `AtomicU64`: `[completed calls: 40 | in flight: 24]`. Acquiring is one CAS that adds 1
//! only while the in-flight count is below the limit (strict: the limit is never exceeded, not
//! even for an instant, unlike a fetch_add-then-undo). Releasing is one CAS that subtracts 1
//! from the in-flight count and adds 1 to the completed count, and refuses to go below zero.
//! `accepted = completed + in flight`, so the hot path counts admissions without a second RMW.
//! The completed field wraps after 2^40 (10^12) calls.
//!
//! ## Resizing
//!
//! The limit lives beside the word (`max`, an atomic) and [`Bulkhead::set_max_concurrent`]
//! changes it live. A `try_acquire` reads the limit after the word, so one that read the old
//! limit could still land its CAS after the resize; to rule that out a resize moves the word
//! on once it has stored the new limit (it adds one to the completed field, a phantom
//! completion that `resizes` takes back out of `accepted`). A CAS made with a word from before
//! the resize then fails, and the retry reads the word with Acquire, which brings the new limit
//! with it: no admission that lands after a resize is decided under the old limit. A shrink
//! leaves the permits out valid (`active` may exceed the new limit until they come back); new
//! admissions, hand-offs to waiters included, wait until `active < max`. A growth grants the
//! free slots to the waiters, oldest first. The loom model `tests/loom_bulkhead.rs` checks the
//! resize against racing tries and releases.
//!
//! ## Waiting (not loom-modelled)
//!
//! Waiters queue in a `std::sync::Mutex<VecDeque>` and park. A release first looks at the
//! `waiting` gauge: with waiters it hands its slot straight to the oldest one (the in-flight
//! count does not change), so a stream of `try_acquire` callers cannot starve them. The queue
//! lock is only ever taken by waiters and by releases that saw waiters, never by the
//! non-waiting path. The handshake between a waiter that enqueues and a release that frees a
//! slot is a Dekker pair of `SeqCst` operations (see [`Bulkhead::release_raw`]); the loom model
//! in `tests/loom_bulkhead.rs` covers the non-waiting path, a multi-thread stress test covers
//! this one.
//!
//! ```
//! use std::time::Duration;
//! use surgewall::{Bulkhead, BulkheadConfig};
//!
//! let db = Bulkhead::new("db", BulkheadConfig::builder().max_concurrent(2).build()?);
//! let a = db.try_acquire()?;
//! let b = db.try_acquire()?;
//! assert!(db.try_acquire().is_err());
//! drop(a);
//! let c = db.acquire_timeout(Duration::from_millis(10))?; // a slot is free: no wait
//! assert_eq!(db.metrics().active, 2);
//! # drop((b, c));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
pub mod keyed;
mod metrics;
mod permit;
mod wait;

use std::fmt;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::time::Duration;

use crossbeam_utils::CachePadded;

pub use config::{BulkheadConfig, BulkheadConfigBuilder, MAX_CONCURRENT_LIMIT};
pub use metrics::BulkheadMetrics;
pub use permit::{BulkheadFull, BulkheadPermit, NotAcquired};

use crate::clock::Clock;
use crate::histogram::DurationHistogram;
use crate::registry::IdleMark;
use crate::stripe::Striped;
use crate::sync::{AtomicU64, Ordering};
use wait::WaitQueue;

/// Bits of the state word that count calls in flight.
pub(crate) const ACTIVE_BITS: u32 = 24;
pub(crate) const ACTIVE_MASK: u64 = (1 << ACTIVE_BITS) - 1;
/// One completed call in the state word.
pub(crate) const COMPLETED_ONE: u64 = 1 << ACTIVE_BITS;

// Lanes of the striped counter: the rejection path may be hot under overload.
const REJECTED: usize = 0;
const LANES: usize = 1;

/// A limit on concurrent calls. Share it with `Arc` (or borrow it); every method takes `&self`.
pub struct Bulkhead {
    /// `[completed: 40 | in flight: 24]`. Padded: every call writes it.
    word: CachePadded<AtomicU64>,
    /// Callers in the wait queue. Read by every release (one load); written under the queue
    /// lock only.
    waiting: AtomicU64,
    rejected: Striped<LANES>,
    unexpected: AtomicU64,
    // The waiting path's statistics (std atomics: the waiting path is not loom-modelled).
    timed_out: StdAtomicU64,
    waited: StdAtomicU64,
    wait_total_ns: StdAtomicU64,
    wait_max_ns: StdAtomicU64,
    waits: DurationHistogram,
    queue: WaitQueue,
    idle: IdleMark,
    /// The limit in force (changed by [`Bulkhead::set_max_concurrent`] under the queue lock).
    max: AtomicU64,
    /// Resizes so far: each added a phantom completion to the word (see the module docs).
    resizes: AtomicU64,
    config: BulkheadConfig,
    clock: Clock,
    name: String,
    id: u64,
}

/// Builds a [`Bulkhead`] with a non-default clock.
///
/// ```
/// use surgewall::{Bulkhead, BulkheadConfig, clock::Clock};
///
/// let (clock, _time) = Clock::mock();
/// let bulkhead = Bulkhead::builder("db", BulkheadConfig::default()).clock(clock).build();
/// assert_eq!(bulkhead.name(), "db");
/// ```
#[derive(Debug)]
pub struct BulkheadBuilder {
    name: String,
    config: BulkheadConfig,
    clock: Clock,
}

impl BulkheadBuilder {
    /// The clock wait times and deadlines are measured with (default: [`Clock::coarse`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the bulkhead, empty.
    pub fn build(self) -> Bulkhead {
        Bulkhead {
            word: CachePadded::new(AtomicU64::new(0)),
            waiting: AtomicU64::new(0),
            rejected: Striped::new(),
            unexpected: AtomicU64::new(0),
            timed_out: StdAtomicU64::new(0),
            waited: StdAtomicU64::new(0),
            wait_total_ns: StdAtomicU64::new(0),
            waits: DurationHistogram::new(),
            wait_max_ns: StdAtomicU64::new(0),
            queue: WaitQueue::default(),
            idle: IdleMark::default(),
            max: AtomicU64::new(self.config.max_concurrent.into()),
            resizes: AtomicU64::new(0),
            config: self.config,
            clock: self.clock,
            name: self.name,
            id: crate::source_id::next(crate::source_id::BULKHEAD),
        }
    }
}

impl Bulkhead {
    /// A bulkhead on the coarse clock.
    ///
    /// ```
    /// use surgewall::{Bulkhead, BulkheadConfig};
    /// let b = Bulkhead::new("db", BulkheadConfig::default());
    /// assert_eq!(b.max_concurrent(), 25);
    /// ```
    pub fn new(name: impl Into<String>, config: BulkheadConfig) -> Self {
        Self::builder(name, config).build()
    }

    /// A builder, to choose the clock.
    ///
    /// ```
    /// use surgewall::{Bulkhead, BulkheadConfig, clock::Clock};
    /// let b = Bulkhead::builder("db", BulkheadConfig::default()).clock(Clock::precise()).build();
    /// assert_eq!(b.metrics().clock_mode, surgewall::clock::ClockMode::Precise);
    /// ```
    pub fn builder(name: impl Into<String>, config: BulkheadConfig) -> BulkheadBuilder {
        BulkheadBuilder {
            name: name.into(),
            config,
            clock: Clock::coarse(),
        }
    }

    /// The name given at construction.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A process-unique id (the `source` of events about this bulkhead).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The configuration, with the limit in force now (see
    /// [`set_max_concurrent`](Self::set_max_concurrent)).
    pub fn config(&self) -> BulkheadConfig {
        BulkheadConfig {
            max_concurrent: self.max_concurrent(),
            ..self.config
        }
    }

    /// The limit on concurrent calls in force now.
    pub fn max_concurrent(&self) -> u32 {
        // Relaxed: a reading; every decision reads the limit after the word (see `take`).
        // The limit is at most MAX_CONCURRENT_LIMIT (24 bits), so it fits.
        self.max.load(Ordering::Relaxed) as u32
    }

    /// Changes the limit live (1..=[`MAX_CONCURRENT_LIMIT`]) and returns the previous one.
    ///
    /// Growing admits the callers waiting in [`acquire`](Self::acquire), oldest first, into
    /// the new slots. Shrinking leaves the permits already out valid: `active` may stay above
    /// the new limit until they come back, and new admissions (waiters included) wait until
    /// `active` is below it. An admission that lands after this returns is decided under the
    /// new limit (see the module docs). A resize moves the word on, so a registry's idle sweep
    /// counts it as activity; `accepted` may read one too high while a resize runs.
    ///
    /// ```
    /// use surgewall::{Bulkhead, BulkheadConfig};
    /// let b = Bulkhead::new("db", BulkheadConfig::builder().max_concurrent(2).build()?);
    /// let (p1, p2) = (b.try_acquire()?, b.try_acquire()?);
    /// assert_eq!(b.set_max_concurrent(1)?, 2);
    /// drop(p1); // still one in flight: at the new limit
    /// assert!(b.try_acquire().is_err());
    /// drop(p2);
    /// assert!(b.try_acquire().is_ok());
    /// assert_eq!(b.set_max_concurrent(0).unwrap_err().field(), "max_concurrent");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_max_concurrent(&self, n: u32) -> Result<u32, crate::ConfigError> {
        let n = config::check_max_concurrent(n)?;
        let old = self.swap_limit(n.into());
        // SeqCst: after the word's SeqCst RMW in `swap_limit`, a waiter's SeqCst try either
        // saw the moved word (and so the new limit) or is seen here.
        if self.waiting.load(Ordering::SeqCst) != 0 {
            self.grant_free_slots();
        }
        Ok(old as u32)
    }

    /// Takes a slot if one is free, without waiting: one CAS on success, one load on a full
    /// bulkhead, never a lock.
    ///
    /// ```
    /// use surgewall::{Bulkhead, BulkheadConfig};
    /// let b = Bulkhead::new("db", BulkheadConfig::builder().max_concurrent(1).build()?);
    /// let p = b.try_acquire()?;
    /// assert!(b.try_acquire().is_err());
    /// p.release();
    /// assert!(b.try_acquire().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit<'_>, BulkheadFull> {
        self.try_acquire_raw()
            .map(|()| BulkheadPermit { bulkhead: self })
    }

    /// [`try_acquire`](Self::try_acquire) for bindings: on `Ok` the caller owns a slot and must
    /// give it back with exactly one [`release_raw`](Self::release_raw).
    ///
    /// ```
    /// use surgewall::{Bulkhead, BulkheadConfig};
    /// let b = Bulkhead::new("db", BulkheadConfig::builder().max_concurrent(1).build()?);
    /// b.try_acquire_raw()?;
    /// assert!(b.try_acquire_raw().is_err());
    /// b.release_raw()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire_raw(&self) -> Result<(), BulkheadFull> {
        // Acquire: a permit usually guards a resource; pair with the previous holder's release.
        if self.take(Ordering::Acquire) {
            Ok(())
        } else {
            Err(self.reject())
        }
    }

    /// Takes a slot, waiting up to the configured `max_wait` for one.
    ///
    /// ```
    /// use surgewall::{Bulkhead, BulkheadConfig};
    /// let b = Bulkhead::new("db", BulkheadConfig::builder().max_concurrent(1).max_wait_secs(0.01).build()?);
    /// let p = b.acquire()?;
    /// drop(p);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire(&self) -> Result<BulkheadPermit<'_>, BulkheadFull> {
        self.acquire_timeout(self.config.max_wait)
    }

    /// Takes a slot, waiting up to `max_wait` for one; waiters are served in FIFO order, before
    /// any caller that does not wait. `Duration::ZERO` behaves as
    /// [`try_acquire`](Self::try_acquire). Blocks the calling thread (it parks).
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::{Bulkhead, BulkheadConfig};
    ///
    /// let b = Bulkhead::new("db", BulkheadConfig::builder().max_concurrent(1).build()?);
    /// let held = b.try_acquire()?;
    /// std::thread::scope(|s| {
    ///     let waiter = s.spawn(|| b.acquire_timeout(Duration::from_secs(10)).map(drop));
    ///     while b.metrics().waiting == 0 {
    ///         std::thread::yield_now();
    ///     }
    ///     drop(held); // hands the slot to the waiter
    ///     assert!(waiter.join().unwrap().is_ok());
    /// });
    /// assert_eq!(b.metrics().waited, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire_timeout(&self, max_wait: Duration) -> Result<BulkheadPermit<'_>, BulkheadFull> {
        self.acquire_timeout_raw(max_wait)
            .map(|()| BulkheadPermit { bulkhead: self })
    }

    /// [`acquire_timeout`](Self::acquire_timeout) for bindings (see
    /// [`try_acquire_raw`](Self::try_acquire_raw)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::{Bulkhead, BulkheadConfig};
    /// let b = Bulkhead::new("db", BulkheadConfig::default());
    /// b.acquire_timeout_raw(Duration::from_millis(1))?;
    /// b.release_raw()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire_timeout_raw(&self, max_wait: Duration) -> Result<(), BulkheadFull> {
        if self.take(Ordering::Acquire) {
            return Ok(());
        }
        if max_wait.is_zero() {
            return Err(self.reject());
        }
        self.wait_for_slot(max_wait)
    }

    /// Gives a slot back. With callers waiting, the slot goes straight to the oldest one.
    ///
    /// Returns [`NotAcquired`] (and counts it) when no slot is taken: the count never goes
    /// below zero. A release for a slot somebody else holds cannot be told apart from a
    /// legitimate one, so only releases beyond the total acquired are detected.
    ///
    /// ```
    /// use surgewall::{Bulkhead, BulkheadConfig, NotAcquired};
    /// let b = Bulkhead::new("db", BulkheadConfig::default());
    /// b.try_acquire_raw()?;
    /// assert_eq!(b.release_raw(), Ok(()));
    /// assert_eq!(b.release_raw(), Err(NotAcquired));
    /// assert_eq!(b.metrics().active, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn release_raw(&self) -> Result<(), NotAcquired> {
        // SeqCst (with the one after the CAS): one side of the Dekker handshake with a waiter
        // that increments `waiting` and then tries the word (see `wait_for_slot`). Waiters are
        // rare; when the gauge reads zero the release is this load plus one CAS.
        if self.waiting.load(Ordering::SeqCst) != 0 && self.hand_off_own_slot() {
            return Ok(());
        }
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if w & ACTIVE_MASK == 0 {
                // Relaxed: a misuse counter, read by scrapes only.
                self.unexpected.fetch_add(1, Ordering::Relaxed);
                return Err(NotAcquired);
            }
            // SeqCst: the store half of the Dekker pair (our decrement must be ordered before
            // the `waiting` load below); it is also a Release for the holder's writes.
            match self.word.compare_exchange_weak(
                w,
                w - 1 + COMPLETED_ONE,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        // A waiter may have queued after our first look but failed its own try before our
        // decrement landed: then it is parked while a slot is free. SeqCst guarantees that we
        // see its increment or it saw our decrement.
        if self.waiting.load(Ordering::SeqCst) != 0 {
            self.grant_free_slots();
        }
        Ok(())
    }

    /// Runs `f` holding a slot (waiting up to `max_wait` for one); the slot is released when
    /// `f` returns or panics.
    ///
    /// ```
    /// use surgewall::{Bulkhead, BulkheadConfig};
    /// let b = Bulkhead::new("db", BulkheadConfig::default());
    /// assert_eq!(b.call(|| 6 * 7), Ok(42));
    /// assert_eq!(b.metrics().active, 0);
    /// ```
    pub fn call<T>(&self, f: impl FnOnce() -> T) -> Result<T, BulkheadFull> {
        let _permit = self.acquire()?;
        Ok(f())
    }

    /// A snapshot of the gauges and counters.
    ///
    /// ```
    /// use surgewall::{Bulkhead, BulkheadConfig};
    /// let b = Bulkhead::new("db", BulkheadConfig::builder().max_concurrent(1).build()?);
    /// let _p = b.try_acquire()?;
    /// let _ = b.try_acquire();
    /// let m = b.metrics();
    /// assert_eq!((m.active, m.accepted, m.rejected), (1, 1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(&self) -> BulkheadMetrics {
        // Acquire, before the word: every resize counted here has its phantom completion in
        // the word read next.
        let resizes = self.resizes.load(Ordering::Acquire);
        let w = self.word.load(Ordering::Acquire);
        let active = w & ACTIVE_MASK;
        // The completed field counts modulo 2^40, phantom completions included.
        let completed = (w >> ACTIVE_BITS).wrapping_sub(resizes) & ((1 << (64 - ACTIVE_BITS)) - 1);
        BulkheadMetrics {
            active,
            waiting: self.waiting.load(Ordering::Relaxed),
            max_concurrent: self.max.load(Ordering::Relaxed),
            accepted: completed + active,
            rejected: self.rejected.sum(REJECTED),
            timed_out: self.timed_out.load(StdOrdering::Relaxed),
            waited: self.waited.load(StdOrdering::Relaxed),
            total_wait: Duration::from_nanos(self.wait_total_ns.load(StdOrdering::Relaxed)),
            max_wait: Duration::from_nanos(self.wait_max_ns.load(StdOrdering::Relaxed)),
            unexpected_releases: self.unexpected.load(Ordering::Relaxed),
            clock_mode: self.clock.mode(),
            wait_durations: self.waits.snapshot(),
        }
    }

    /// Calls in flight now.
    #[inline]
    pub fn active(&self) -> u64 {
        self.word.load(Ordering::Relaxed) & ACTIVE_MASK
    }

    /// Whether the bulkhead is at rest: nothing in flight and nobody waiting (what a keyed
    /// registry checks before evicting it).
    pub fn is_idle(&self) -> bool {
        self.active() == 0 && self.waiting.load(Ordering::SeqCst) == 0
    }

    /// Calls completed so far (modulo 2^40): a registry compares two readings to tell whether
    /// the bulkhead was used in between, without a clock read on the hot path.
    pub(crate) fn completed(&self) -> u64 {
        self.word.load(Ordering::Relaxed) >> ACTIVE_BITS
    }

    /// Where a registry keeps track of this bulkhead's idleness.
    pub(crate) fn idle_mark(&self) -> &IdleMark {
        &self.idle
    }

    /// One CAS that adds a call while the count is below the limit.
    #[inline]
    fn take(&self, success: Ordering) -> bool {
        // Acquire on every read of the word: a word moved on by a resize brings the new limit
        // with it (the limit is read after the word, in each round). A waiter's try is SeqCst:
        // its half of the Dekker pairs with releases and resizes.
        let read = if success == Ordering::SeqCst {
            Ordering::SeqCst
        } else {
            Ordering::Acquire
        };
        let mut w = self.word.load(read);
        loop {
            if w & ACTIVE_MASK >= self.max.load(Ordering::Relaxed) {
                return false;
            }
            match self.word.compare_exchange_weak(w, w + 1, success, read) {
                Ok(_) => return true,
                Err(now) => w = now,
            }
        }
    }

    #[cold]
    fn reject(&self) -> BulkheadFull {
        self.rejected.add(REJECTED, 1);
        BulkheadFull {
            max_concurrent: self.max_concurrent(),
            timed_out: false,
            waited: Duration::ZERO,
            closed: false,
        }
    }

    fn record_wait(&self, waited_ns: u64) {
        self.waited.fetch_add(1, StdOrdering::Relaxed);
        self.wait_total_ns
            .fetch_add(waited_ns, StdOrdering::Relaxed);
        self.wait_max_ns.fetch_max(waited_ns, StdOrdering::Relaxed);
        self.waits.observe(Duration::from_nanos(waited_ns));
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.name)
            .field("active", &self.active())
            .field("max_concurrent", &self.max_concurrent())
            .finish()
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests;
