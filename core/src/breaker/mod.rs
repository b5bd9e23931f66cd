//! The circuit breaker.
//!
//! One [`Breaker`] guards one dependency. Callers take a permit, make the call and record how
//! it went ([`Breaker::acquire`] and [`Permit`], or [`Breaker::call`]). The breaker trips OPEN
//! when its window's failure or slow-call rate reaches a threshold (once `minimum_calls` are in
//! the window) or on the K-th consecutive failure; it rejects calls with a `retry_after` until
//! its wait is over; then it admits exactly `half_open_calls` probes whose results decide
//! between OPEN and CLOSED.
//!
//! ## The hot path
//!
//! * Acquire in CLOSED is one `Acquire` load of the state word (see [`state`] for its bits).
//! * A success is that load again (the generation fence), a check of the window's next bucket
//!   boundary, and one `Relaxed` `fetch_add` on this thread's stripe of the success counter.
//! * Everything else — failures, slow calls, bucket rollovers, half-open probes, transitions —
//!   takes the slow path, which may sum the stripes and CAS the state word.
//!
//! ```
//! use std::time::Duration;
//! use surgewall::{Breaker, BreakerConfig, State};
//! use surgewall::clock::Clock;
//!
//! let (clock, time) = Clock::mock();
//! let breaker = Breaker::builder(
//!     "search",
//!     BreakerConfig::builder().consecutive_failures(3).open_for(Duration::from_secs(1)).build()?,
//! )
//! .clock(clock)
//! .build();
//!
//! for _ in 0..3 {
//!     let _ = breaker.call(|| Err::<(), _>("timeout"));
//! }
//! assert_eq!(breaker.state(), State::Open);
//! time.advance(Duration::from_secs(1));
//! assert_eq!(breaker.call(|| Ok::<_, ()>(42)), Ok(42)); // the probe
//! # Ok::<(), surgewall::ConfigError>(())
//! ```

mod admission;
mod config;
pub mod keyed;
mod metrics;
mod permit;
mod probes;
pub mod state;
mod window;

use std::fmt;
use std::time::Duration;

use crossbeam_utils::CachePadded;

pub use config::{
    BreakerConfig, BreakerConfigBuilder, OpenBackoff, Window, HALF_OPEN_RETRY_HINT_MAX, MAX_WAIT,
};
pub use metrics::BreakerMetrics;
pub use permit::{CallError, Outcome, Permit, RawPermit, Recorded, RejectReason, Rejected};
pub use state::{State, TransitionReason};
pub use window::Counts;

use crate::clock::{duration_ns, Clock};
use crate::error::ConfigError;
use crate::events::{Event, EventKind, EventRing};
use crate::histogram::DurationHistogram;
use crate::rng::{entropy_seed, SplitMix};
use crate::stripe::Striped;
use crate::sync::{AtomicU64, Ordering};
use probes::{ProbeSlots, Refused, Settle};
use state::Word;
use window::{Totals, WindowMarks};

// Lanes of the striped counter: the counters a call may touch without a failure.
const OK: usize = 0;
const REJECTED_OPEN: usize = 1;
const REJECTED_HALF_OPEN: usize = 2;
const IGNORED: usize = 3;
const LANES: usize = 4;

/// A deadline word: `[generation tag: 16 | microseconds: 48]`.
///
/// The tag is the low 16 bits of the generation the deadline belongs to. The transition that
/// sets a deadline publishes it right after its CAS (see [`publish`]); a reader that sees the
/// new generation but the old tag knows the deadline is not published yet and treats the wait
/// as just begun. The microseconds are the clock's modulo 2^48 (8.9 years), read as time left
/// within half that range (see [`deadline_left`]), so deadlines work at any clock reading;
/// waits are at most [`MAX_WAIT`] (checked by the configuration). All ones means "never".
const DEADLINE_NEVER: u64 = (1 << 48) - 1;

fn pack_deadline(generation: u64, at_ns: u64) -> u64 {
    let mut us = at_ns.div_ceil(1000) & DEADLINE_NEVER;
    if us == DEADLINE_NEVER {
        us = 0; // one microsecond later (modulo 2^48): all ones means "never"
    }
    (generation & 0xFFFF) << 48 | us
}

/// The deadline word of a wait of `d` from `now_ns` for `generation`: "never" when the wait
/// is beyond [`MAX_WAIT`] (a forced open that long holds until changed).
pub(crate) fn deadline_after(generation: u64, now_ns: u64, d: Duration) -> u64 {
    if d > MAX_WAIT {
        (generation & 0xFFFF) << 48 | DEADLINE_NEVER
    } else {
        pack_deadline(generation, now_ns.saturating_add(duration_ns(d)))
    }
}

/// Time left until the deadline `us` (microseconds modulo 2^48, not "never") at `now_ns`, for
/// a state whose waits are at most `longest`: exact to the nanosecond of a deadline rounded up
/// to its microsecond, and zero once it has passed. A deadline that reads as further ahead
/// than `longest` (plus its rounding) has passed: modulo 2^48 µs, a deadline passed by 8.9
/// years less x reads as x ahead; with this bound such a reading costs at most one more wait
/// of the state (only for a breaker nobody called for 8.9 years), never a stuck one.
pub(crate) fn deadline_left(us: u64, now_ns: u64, longest: Duration) -> Duration {
    let ahead = us.wrapping_sub(now_ns / 1000) & DEADLINE_NEVER;
    let left = Duration::from_nanos((ahead * 1000).saturating_sub(now_ns % 1000));
    if left > longest + Duration::from_micros(1) {
        return Duration::ZERO;
    }
    left
}

/// The longest wait a state in `w` can have: its deadline is never further ahead.
pub(crate) fn longest_wait(config: &BreakerConfig, w: Word) -> Duration {
    match w.state() {
        State::Open => config.backoff.max_open_for,
        State::HalfOpen => config.half_open_max_duration,
        _ => MAX_WAIT,
    }
}

/// Publishes `value` (a deadline or probe word of the transition into `generation`) into
/// `slot`, unless the state word `word` has moved past `generation` or `keep` says the word in
/// `slot` is already right. Returns whether it wrote.
///
/// A transition wins its CAS on the state word first and publishes its words after, so two
/// transitions in a row may publish in either order. A plain store would let the earlier one
/// land last, over the later one's deadline: readers would then see a deadline of another
/// generation ("not published yet") for good, and an OPEN or timed FORCED_OPEN would never end
/// (issue 15, I7). Here every write is a CAS made only after seeing `generation` still current
/// in the state word, after loading the value it replaces: a later transition's publication
/// changed `slot` after its own CAS on the state word, so either this CAS fails and the
/// reload sees the newer generation (the failed CAS acquires that publication, which comes
/// after the state word's change), or it lands first and the later one writes over it.
/// Generations are compared whole, in the state word: a 16-bit tag's wrap never matters.
/// (An ABA, the replaced value written again in between, would need the same tag and the
/// same microsecond 65 536 transitions later, while this thread stalls in the loop.)
#[inline]
pub(crate) fn publish(
    word: &AtomicU64,
    slot: &AtomicU64,
    generation: u64,
    keep: impl Fn(u64) -> bool,
    value: u64,
) -> bool {
    // Acquire loads and failure ordering: see above. Release on success: a reader that
    // acquires the published value sees what the transition stored before it.
    let mut cur = slot.load(Ordering::Acquire);
    loop {
        if Word(word.load(Ordering::Acquire)).generation() != generation || keep(cur) {
            return false;
        }
        match slot.compare_exchange_weak(cur, value, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(v) => cur = v,
        }
    }
}

/// A probe word: `[generation tag: 16 | reported: 16 | failures: 16 | slow: 16]`, reset lazily
/// by the first report of an episode (a tag from another generation reads as all zeros).
fn unpack_probe(word: u64, generation: u64) -> (u64, u64, u64) {
    if word >> 48 != generation & 0xFFFF {
        return (0, 0, 0);
    }
    ((word >> 32) & 0xFFFF, (word >> 16) & 0xFFFF, word & 0xFFFF)
}

fn pack_probe(generation: u64, reported: u64, failures: u64, slow: u64) -> u64 {
    (generation & 0xFFFF) << 48 | reported << 32 | failures << 16 | slow
}

// ---- the rules, shared by the named breaker and the keyed one (`keyed.rs`) ----------------

/// The wait of the `n`-th consecutive opening (n = 0 for the first): `open_for` grown by the
/// backoff multiplier up to `max_open_for`, then jittered within the closed bounds.
pub(crate) fn open_wait(config: &BreakerConfig, rng: &SplitMix, n: u64) -> Duration {
    let b = config.backoff;
    let base = config.open_for.as_secs_f64();
    let max = b.max_open_for.as_secs_f64();
    let exp = i32::try_from(n).unwrap_or(i32::MAX);
    let mut wait = (base * b.multiplier.powi(exp)).min(max);
    if b.jitter > 0.0 {
        let u = rng.next_f64() * 2.0 - 1.0; // uniform in [-1, 1)
        wait = (wait * (1.0 + b.jitter * u)).clamp(0.0, max);
    }
    Duration::from_secs_f64(wait)
}

/// What a half-open episode decides after a report: reopen as soon as the probes' rate can no
/// longer stay under the threshold (it is reached even if every remaining probe succeeds),
/// close once all `half_open_calls` probes have reported, otherwise wait for more.
pub(crate) fn probe_verdict(
    config: &BreakerConfig,
    threshold: Option<f64>,
    reported: u64,
    failures: u64,
    slows: u64,
) -> Option<(State, TransitionReason)> {
    let n = f64::from(config.half_open_calls);
    let too_many_failures = match threshold {
        Some(t) => failures as f64 / n >= t,
        None => failures > 0 && config.slow_call_rate.is_none(),
    };
    let too_slow = config.slow_call_rate.is_some_and(|t| slows as f64 / n >= t);
    if too_many_failures || too_slow {
        Some((State::Open, TransitionReason::ProbesFailed))
    } else if reported >= u64::from(config.half_open_calls) {
        Some((State::Closed, TransitionReason::ProbesSucceeded))
    } else {
        None
    }
}

/// The rate rules on a window that holds at least `minimum_calls` calls: which one trips, if
/// any (the failure rate is checked first).
pub(crate) fn rate_verdict(
    config: &BreakerConfig,
    threshold: Option<f64>,
    c: &Counts,
) -> Option<TransitionReason> {
    if threshold.is_some_and(|t| c.failure_rate() >= t) {
        return Some(TransitionReason::FailureRate);
    }
    if config.slow_call_rate.is_some_and(|t| c.slow_rate() >= t) {
        return Some(TransitionReason::SlowCallRate);
    }
    None
}

/// Why a manual transition was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransitionError {
    /// The state the breaker was in.
    pub from: State,
    /// The state that was asked for.
    pub to: State,
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot move a breaker from {} to {} by hand (half-open is reached from open or forced_open)",
            self.from, self.to
        )
    }
}

impl std::error::Error for TransitionError {}

/// A circuit breaker. Share it with `Arc`; every method takes `&self` and is lock-free.
pub struct Breaker {
    /// The state word (see [`state`]). Padded: every call reads it, transitions write it.
    word: CachePadded<AtomicU64>,
    /// Successes, rejections and ignored permits, striped per thread.
    counters: Striped<LANES>,
    // The slow-path totals: touched by failures and slow calls only.
    failures: AtomicU64,
    slow_ok: AtomicU64,
    slow_failures: AtomicU64,
    streak: AtomicU64,
    late: AtomicU64,
    unexpected: AtomicU64,
    window: WindowMarks,
    deadline: AtomicU64,
    probe: AtomicU64,
    /// Which probe numbers of the half-open episode are out and which have reported.
    probe_slots: ProbeSlots,
    entered_ns: AtomicU64,
    consecutive_opens: AtomicU64,
    /// The failure-rate threshold as f64 bits (a dynamic threshold may move it).
    threshold: AtomicU64,
    /// The last ended episode's window: calls, failures, slow calls, and the calls it needed
    /// to be judged (see [`Breaker::episode_window`]).
    last_window: [AtomicU64; 4],
    transitions: [[AtomicU64; 6]; 6],
    rng: SplitMix,
    config: BreakerConfig,
    clock: Clock,
    events: EventRing,
    fallback: Option<crate::Fallback>,
    /// Timed calls' durations, when the breaker times calls.
    durations: Option<DurationHistogram>,
    name: String,
    id: u64,
}

/// Builds a [`Breaker`] with a non-default clock or event ring.
///
/// ```
/// use surgewall::{Breaker, BreakerConfig, events::EventRing, clock::Clock};
///
/// let ring = EventRing::new(256);
/// let breaker = Breaker::builder("inventory", BreakerConfig::default())
///     .clock(Clock::precise())
///     .events(ring.clone())
///     .build();
/// assert_eq!(breaker.name(), "inventory");
/// ```
#[derive(Debug)]
pub struct BreakerBuilder {
    name: String,
    config: BreakerConfig,
    clock: Clock,
    events: Option<EventRing>,
    stripes: Option<usize>,
    fallback: Option<crate::Fallback>,
}

impl BreakerBuilder {
    /// The clock (default: [`Clock::coarse`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The ring transitions are published to (default: the process-wide
    /// [`default_events`]).
    pub fn events(mut self, events: EventRing) -> Self {
        self.events = Some(events);
        self
    }

    /// How many stripes the success counter has (default: one per core).
    pub fn stripes(mut self, n: usize) -> Self {
        self.stripes = Some(n);
        self
    }

    /// The payload callers serve when this breaker rejects (see [`crate::fallback`]).
    pub fn fallback(mut self, fallback: crate::Fallback) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Builds the breaker, CLOSED.
    pub fn build(self) -> Breaker {
        let now = self.clock.now_ns();
        let config = self.config;
        let seed = config.seed.unwrap_or_else(entropy_seed);
        Breaker {
            word: CachePadded::new(AtomicU64::new(Word::new(State::Closed, 0).0)),
            counters: match self.stripes {
                Some(n) => Striped::with_stripes(n),
                None => Striped::new(),
            },
            failures: AtomicU64::new(0),
            slow_ok: AtomicU64::new(0),
            slow_failures: AtomicU64::new(0),
            streak: AtomicU64::new(0),
            late: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            window: WindowMarks::new(config.window, now),
            deadline: AtomicU64::new(0),
            probe: AtomicU64::new(0),
            probe_slots: ProbeSlots::new(config.half_open_calls),
            entered_ns: AtomicU64::new(now),
            consecutive_opens: AtomicU64::new(0),
            threshold: AtomicU64::new(config.failure_rate.unwrap_or(1.0).to_bits()),
            last_window: std::array::from_fn(|_| AtomicU64::new(0)),
            transitions: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            rng: SplitMix::new(seed),
            clock: self.clock,
            events: self.events.unwrap_or_else(default_events),
            fallback: self.fallback,
            durations: config.time_calls.then(DurationHistogram::new),
            name: self.name,
            id: crate::source_id::next(crate::source_id::BREAKER),
            config,
        }
    }
}

/// The process-wide event ring breakers publish to unless given another (4096 events).
pub fn default_events() -> EventRing {
    #[cfg(not(surgewall_loom))]
    {
        static RING: std::sync::OnceLock<EventRing> = std::sync::OnceLock::new();
        RING.get_or_init(|| EventRing::new(4096)).clone()
    }
    #[cfg(surgewall_loom)]
    {
        EventRing::new(16)
    }
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("state", &self.state())
            .finish()
    }
}

impl Breaker {
    /// A CLOSED breaker with the coarse clock and the default event ring.
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Self {
        Self::builder(name, config).build()
    }

    /// A builder, for a custom clock or event ring.
    pub fn builder(name: impl Into<String>, config: BreakerConfig) -> BreakerBuilder {
        BreakerBuilder {
            name: name.into(),
            config,
            clock: Clock::coarse(),
            events: None,
            stripes: None,
            fallback: None,
        }
    }

    /// The name given at construction.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A process-unique id (the `source` of this breaker's events).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The ring this breaker publishes its events to.
    pub fn events(&self) -> &EventRing {
        &self.events
    }

    /// The fallback payload configured with [`BreakerBuilder::fallback`], if any.
    pub fn fallback(&self) -> Option<&crate::Fallback> {
        self.fallback.as_ref()
    }

    #[inline]
    fn load(&self) -> Word {
        // Acquire pairs with the AcqRel CAS of transitions: a caller that sees a generation
        // also sees what the transition published before it (the window reset, the streak).
        Word(self.word.load(Ordering::Acquire))
    }

    /// The address of the packed state word, for bindings that admit calls without crossing
    /// their FFI boundary (Go reads it with `sync/atomic`). Layout and rules: [`state`]. Valid
    /// as long as the breaker lives. Not a stable Rust API: bindings only.
    #[doc(hidden)]
    #[cfg(not(surgewall_loom))]
    pub fn state_word_ptr(&self) -> *const u64 {
        self.word.as_ptr().cast_const()
    }

    /// The current state. Reading has no side effects.
    pub fn state(&self) -> State {
        self.load().state()
    }

    /// Asks for a permit; record the call through it.
    #[inline]
    pub fn acquire(&self) -> Result<Permit<'_>, Rejected> {
        self.try_acquire_raw().map(|raw| Permit::new(self, raw))
    }

    /// Asks for a permit as a plain value (for bindings). Every `Ok` must be followed by exactly
    /// one [`record_raw`](Self::record_raw) (an `Ignored` one if the call was never made).
    #[inline]
    pub fn try_acquire_raw(&self) -> Result<RawPermit, Rejected> {
        let w = self.load();
        // The common case stays a load and two tests; timing a call (a precise clock read)
        // and every non-CLOSED state go through the out-of-line slow path.
        if let Some(p) = self.admit_inline(w) {
            return Ok(p);
        }
        self.acquire_slow(w)
    }

    /// The common case of [`try_acquire_raw`](Self::try_acquire_raw) alone: `Some` permit
    /// when the breaker admits every call and does not time them (exactly what
    /// `try_acquire_raw` would return), `None` when the caller must call `try_acquire_raw`.
    /// No call and no panic, so a binding can keep the rest of its path, panic boundary
    /// included, out of line. Not a stable Rust API: bindings only.
    #[doc(hidden)]
    #[inline(always)]
    pub fn try_acquire_raw_inline(&self) -> Option<RawPermit> {
        self.admit_inline(self.load())
    }

    #[inline(always)]
    fn admit_inline(&self, w: Word) -> Option<RawPermit> {
        (w.admits_all() && !self.config.time_calls).then(|| RawPermit {
            generation: w.generation(),
            start_ns: 0,
        })
    }

    fn permit(&self, w: Word) -> RawPermit {
        RawPermit {
            generation: w.generation(),
            start_ns: if self.config.time_calls {
                self.clock.precise_now_ns()
            } else {
                0
            },
        }
    }

    #[cold]
    fn acquire_slow(&self, w: Word) -> Result<RawPermit, Rejected> {
        admission::acquire_slow(self, w)
    }

    fn reject(&self, reason: RejectReason, retry_after: Duration) -> Rejected {
        let lane = match reason {
            RejectReason::HalfOpenFull => REJECTED_HALF_OPEN,
            _ => REJECTED_OPEN,
        };
        self.counters.add(lane, 1);
        Rejected {
            reason,
            retry_after,
        }
    }

    /// Time left before the deadline of the state in `w`: `None` while the transition that
    /// set it has not published it yet, `Some(Duration::MAX)` for "never".
    fn remaining(&self, w: Word, now: u64) -> Option<Duration> {
        let d = self.deadline.load(Ordering::Acquire);
        if d >> 48 != w.generation() & 0xFFFF {
            return None;
        }
        let us = d & DEADLINE_NEVER;
        if us == DEADLINE_NEVER {
            return Some(Duration::MAX);
        }
        Some(deadline_left(us, now, longest_wait(&self.config, w)))
    }

    /// The time left of an OPEN or timed FORCED_OPEN wait (`Duration::MAX` for a forced
    /// open without deadline), `None` in every other state (HALF_OPEN included). No side
    /// effects. For how long a caller should wait before asking again, see
    /// [`wait_hint`](Self::wait_hint).
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::{Breaker, BreakerConfig};
    ///
    /// let b = Breaker::new("ledger", BreakerConfig::default());
    /// assert_eq!(b.retry_after(), None);
    /// b.force_open(Some(Duration::from_secs(30)));
    /// assert!(b.retry_after().is_some_and(|d| d <= Duration::from_secs(30)));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        let w = self.load();
        match w.state() {
            State::Open | State::ForcedOpen => Some(
                self.remaining(w, self.clock.now_ns())
                    .unwrap_or(self.config.open_for),
            ),
            _ => None,
        }
    }

    /// How long a caller should wait before asking for a permit again, or `None` when one
    /// would be admitted now: [`retry_after`](Self::retry_after) in OPEN and FORCED_OPEN; in
    /// HALF_OPEN with every probe out, the short hint a rejection carries
    /// ([`BreakerConfig::half_open_retry_hint`], never past the reclaim of stuck probes).
    /// Breaker-aware retry polls on it. No side effects.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::{Breaker, BreakerConfig, State};
    /// use surgewall::clock::Clock;
    ///
    /// let (clock, time) = Clock::mock();
    /// let config = BreakerConfig::builder()
    ///     .consecutive_failures(1)
    ///     .open_for(Duration::from_secs(2))
    ///     .half_open_calls(1)
    ///     .build()?;
    /// let b = Breaker::builder("ledger", config).clock(clock).build();
    /// b.acquire().unwrap().failure();
    /// time.advance(Duration::from_secs(2));
    /// let probe = b.acquire().unwrap(); // HALF_OPEN, the only probe is out
    /// assert_eq!(b.retry_after(), None);
    /// assert_eq!(b.wait_hint(), Some(Duration::from_millis(200)));
    /// probe.success();
    /// assert_eq!((b.state(), b.wait_hint()), (State::Closed, None));
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn wait_hint(&self) -> Option<Duration> {
        let w = self.load();
        match w.state() {
            State::HalfOpen if w.admitted() >= u64::from(self.config.half_open_calls) => {
                let left = self.remaining(w, self.clock.now_ns());
                Some(admission::half_open_hint(&self.config, left))
            }
            _ => self.retry_after(),
        }
    }

    /// Records the result of a call made under `permit`, timed by the breaker when it times
    /// calls (slow-call detection with `time_calls`).
    #[inline]
    pub fn record_raw(&self, permit: RawPermit, outcome: Outcome) -> Recorded {
        if self.config.time_calls && permit.start_ns != 0 {
            return self.record_timed(permit, outcome);
        }
        self.record_inner(permit, outcome, false)
    }

    /// The success fast path of [`record_raw`](Self::record_raw) alone: counts a success and
    /// returns true when `record_raw(permit, Outcome::Success)` would count it without
    /// leaving that path (a current, untimed permit; CLOSED or METRICS_ONLY with no pending
    /// evaluation; a clock read without a call; no window roll due). Otherwise it does nothing
    /// and returns false: then call `record_raw`. No call and no panic, so a binding can keep
    /// the rest of its path, panic boundary included, out of line. Not a stable Rust API:
    /// bindings only.
    #[doc(hidden)]
    #[inline(always)]
    pub fn try_record_success_inline(&self, permit: RawPermit) -> bool {
        if self.config.time_calls && permit.start_ns != 0 {
            return false;
        }
        let w = self.load();
        w.generation() == permit.generation && w.success_fast_path() && self.count_success_inline()
    }

    /// Counts a success if the clock reads without a call and no window roll is due.
    #[inline(always)]
    fn count_success_inline(&self) -> bool {
        match self.clock.now_ns_without_call() {
            Some(now) if now < self.window.next_boundary() => {
                self.count_success();
                true
            }
            _ => false,
        }
    }

    /// Timing reads the precise clock: kept out of line so the untimed path stays short.
    #[inline(never)]
    fn record_timed(&self, permit: RawPermit, outcome: Outcome) -> Recorded {
        let took = self.clock.precise_now_ns().saturating_sub(permit.start_ns);
        let slow = self
            .config
            .slow_call_duration
            .is_some_and(|limit| took >= duration_ns(limit));
        self.record_inner(permit, outcome, slow)
    }

    /// Records the result of a call that took `duration` (the caller timed it).
    #[inline]
    pub fn record_raw_with_duration(
        &self,
        permit: RawPermit,
        outcome: Outcome,
        duration: Duration,
    ) -> Recorded {
        if let Some(h) = &self.durations {
            h.observe(duration);
        }
        let slow = self
            .config
            .slow_call_duration
            .is_some_and(|limit| duration >= limit);
        self.record_inner(permit, outcome, slow)
    }

    // Always inlined: this is the success path of every guarded call, and LLVM's size
    // heuristics otherwise leave it out of line once the slow paths around it change size.
    #[inline(always)]
    fn record_inner(&self, permit: RawPermit, outcome: Outcome, slow: bool) -> Recorded {
        let w = self.load();
        if w.generation() != permit.generation {
            return self.record_other(w, permit, outcome, slow);
        }
        if outcome == Outcome::Success
            && !slow
            && w.success_fast_path()
            && self.clock.now_ns() < self.window.next_boundary()
        {
            self.count_success();
            return Recorded::Counted;
        }
        self.record_slow(w, outcome, slow)
    }

    #[inline(always)]
    fn count_success(&self) {
        // The streak first: an atomic add is a full barrier on x86, and a load after it waits
        // for it to complete (the two are Relaxed, on different words: no order between them
        // is observable either way).
        if self.config.consecutive_failures.is_some() && self.streak.load(Ordering::Relaxed) != 0 {
            self.streak.store(0, Ordering::Relaxed);
        }
        self.counters.add(OK, 1);
    }

    #[cold]
    fn record_slow(&self, w: Word, outcome: Outcome, slow: bool) -> Recorded {
        match (w.state(), outcome) {
            (State::Disabled, _) => Recorded::Disabled,
            (State::Open | State::ForcedOpen, _) => {
                // No permit is ever issued under an open generation.
                self.unexpected.fetch_add(1, Ordering::Relaxed);
                Recorded::Unexpected
            }
            (State::HalfOpen, _) => {
                // Every permit of a HALF_OPEN generation is a numbered probe (`record_other`).
                self.unexpected.fetch_add(1, Ordering::Relaxed);
                Recorded::Unexpected
            }
            (State::Closed | State::MetricsOnly, Outcome::Ignored) => {
                self.counters.add(IGNORED, 1);
                Recorded::Counted
            }
            (State::Closed | State::MetricsOnly, _) => {
                let now = self.clock.now_ns();
                // Roll before counting, so this call lands in the bucket it belongs to.
                self.window.roll(now, &self.totals());
                let failed = outcome == Outcome::Failure;
                self.count(failed, slow);
                if failed {
                    if let Some(k) = self.config.consecutive_failures {
                        let streak = self.streak.fetch_add(1, Ordering::AcqRel) + 1;
                        if streak >= u64::from(k) && w.state() == State::Closed {
                            self.transition(
                                w,
                                State::Open,
                                TransitionReason::ConsecutiveFailures,
                                now,
                            );
                            return Recorded::Counted;
                        }
                    }
                } else if self.config.consecutive_failures.is_some() {
                    self.streak.store(0, Ordering::Relaxed);
                }
                self.evaluate(now);
                Recorded::Counted
            }
        }
    }

    fn count(&self, failed: bool, slow: bool) {
        match (failed, slow) {
            (false, false) => self.counters.add(OK, 1),
            (false, true) => {
                self.slow_ok.fetch_add(1, Ordering::Relaxed);
            }
            (true, slow) => {
                if slow {
                    self.slow_failures.fetch_add(1, Ordering::Relaxed);
                }
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn totals(&self) -> Totals {
        Totals {
            ok: self.counters.sum(OK),
            failures: self.failures.load(Ordering::Relaxed),
            slow_ok: self.slow_ok.load(Ordering::Relaxed),
            slow_failures: self.slow_failures.load(Ordering::Relaxed),
        }
    }

    /// Checks the rate rules against the window; trips, or keeps the evaluate-on-success flag
    /// in step with "failures are in the window but fewer than minimum_calls calls".
    fn evaluate(&self, now: u64) {
        let mut w = self.load();
        if !matches!(w.state(), State::Closed | State::MetricsOnly) {
            return;
        }
        let c = self.window.counts(now, &self.totals());
        let min = u64::from(self.config.minimum_calls);
        if c.calls >= min && w.state() == State::Closed {
            if let Some(reason) = rate_verdict(&self.config, self.failure_rate_threshold(), &c) {
                self.transition(w, State::Open, reason, now);
                return;
            }
        }
        let pending = w.state() == State::Closed && c.calls < min && (c.failures > 0 || c.slow > 0);
        while w.eval_on_success() != pending {
            match self.cas(w, w.with_eval(pending)) {
                Ok(()) => break,
                Err(cur) if cur.generation() == w.generation() => w = cur,
                Err(_) => break,
            }
        }
    }

    /// A permit whose whole `generation` field differs from the word's: a numbered probe, an
    /// older generation's permit (late), or a value never issued.
    #[cold]
    fn record_other(&self, w: Word, permit: RawPermit, outcome: Outcome, slow: bool) -> Recorded {
        let (generation, index) = match permit.identity() {
            Some((_, None)) => {
                self.late.fetch_add(1, Ordering::Relaxed);
                return Recorded::Late;
            }
            Some((g, Some(i))) if i < u64::from(self.config.half_open_calls) => (g, i),
            _ => return self.invalid(),
        };
        if generation != w.generation() {
            self.late.fetch_add(1, Ordering::Relaxed);
            return Recorded::Late;
        }
        if w.state() != State::HalfOpen {
            // Probes are only ever numbered under a HALF_OPEN generation.
            return self.invalid();
        }
        let how = match outcome {
            Outcome::Ignored => Settle::Release,
            _ => Settle::Report,
        };
        match self.probe_slots.settle(&self.word, generation, index, how) {
            Err(Refused::Late) => {
                self.late.fetch_add(1, Ordering::Relaxed);
                Recorded::Late
            }
            Err(Refused::NotOut) => {
                self.unexpected.fetch_add(1, Ordering::Relaxed);
                Recorded::Unexpected
            }
            Ok(()) if how == Settle::Release => self.release_probe(w, generation),
            Ok(()) => self.record_probe(generation, outcome, slow),
        }
    }

    #[cold]
    fn invalid(&self) -> Recorded {
        self.unexpected.fetch_add(1, Ordering::Relaxed);
        Recorded::Invalid
    }

    /// Gives a released probe's place back (its number is already free).
    fn release_probe(&self, w: Word, generation: u64) -> Recorded {
        let mut w = w;
        loop {
            if w.generation() != generation || w.state() != State::HalfOpen {
                self.late.fetch_add(1, Ordering::Relaxed);
                return Recorded::Late;
            }
            if w.admitted() == 0 {
                self.unexpected.fetch_add(1, Ordering::Relaxed);
                return Recorded::Unexpected;
            }
            match self.cas(w, w.with_admitted(w.admitted() - 1)) {
                Ok(()) => {
                    self.counters.add(IGNORED, 1);
                    return Recorded::Counted;
                }
                Err(cur) => w = cur,
            }
        }
    }

    /// Counts a probe's report (its number is already marked reported).
    fn record_probe(&self, generation: u64, outcome: Outcome, slow: bool) -> Recorded {
        let failed = outcome == Outcome::Failure;
        let mut p = self.probe.load(Ordering::Acquire);
        let (reported, failures, slows) = loop {
            let w = self.load();
            if w.generation() != generation {
                self.late.fetch_add(1, Ordering::Relaxed);
                return Recorded::Late;
            }
            // Each number reports once (`probe_slots`), so reports never outnumber probes.
            let (r, f, s) = unpack_probe(p, generation);
            let next = (r + 1, f + u64::from(failed), s + u64::from(slow));
            match self.probe.compare_exchange_weak(
                p,
                pack_probe(generation, next.0, next.1, next.2),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break next,
                Err(cur) => p = cur,
            }
        };
        self.count(failed, slow);
        let verdict = probe_verdict(
            &self.config,
            self.failure_rate_threshold(),
            reported,
            failures,
            slows,
        );
        let now = self.clock.now_ns();
        let w = self.load();
        if w.generation() == generation {
            if let Some((to, reason)) = verdict {
                self.transition(w, to, reason, now);
            }
        }
        Recorded::Counted
    }

    #[inline]
    fn cas(&self, from: Word, to: Word) -> Result<(), Word> {
        // AcqRel: the winner publishes what it prepared before the CAS (window reset) and sees
        // everything published by the transition before it.
        self.word
            .compare_exchange(from.0, to.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(Word)
    }

    /// Moves from the state and generation of `from` to `to`. Exactly one caller wins a given
    /// (state, generation) (invariant I4); it alone counts the transition and publishes the
    /// event. Returns whether this call made the transition.
    fn transition(&self, from: Word, to: State, reason: TransitionReason, now: u64) -> bool {
        let mut cur = from;
        // Every episode that ends leaves its window, read before a reset below clears it and
        // kept only by the winner.
        let ended = self.episode_window(from, now, &self.totals());
        if matches!(to, State::Closed | State::MetricsOnly) {
            // A fresh episode: reset before the new generation is visible, so its first
            // results land in the new window.
            self.streak.store(0, Ordering::Relaxed);
            self.window.reset(now, &self.totals());
        }
        loop {
            // The flag and the probe count may change under us; the state and generation may not.
            if cur.state() != from.state() || cur.generation() != from.generation() {
                return false;
            }
            let next = cur.next(to);
            match self.cas(cur, next) {
                Ok(()) => {
                    self.keep_last_window(ended);
                    self.entered(cur, next, reason, now);
                    return true;
                }
                Err(w) => cur = w,
            }
        }
    }

    /// The window of the episode in `w` and the calls it needs before its rates are judged:
    /// the sliding window and `minimum_calls` in CLOSED and METRICS_ONLY, the probes that
    /// reported and one probe in HALF_OPEN; `None` in the states without a window.
    fn episode_window(&self, w: Word, now: u64, totals: &Totals) -> Option<(Counts, u64)> {
        match w.state() {
            State::Closed | State::MetricsOnly => Some((
                self.window.counts(now, totals),
                u64::from(self.config.minimum_calls),
            )),
            State::HalfOpen => {
                let p = self.probe.load(Ordering::Acquire);
                let (calls, failures, slow) = unpack_probe(p, w.generation());
                Some((
                    Counts {
                        calls,
                        failures,
                        slow,
                    },
                    1,
                ))
            }
            State::Open | State::ForcedOpen | State::Disabled => None,
        }
    }

    /// Keeps the window of an episode that just ended as the last window (advisory counts,
    /// Relaxed: they may lag by the calls in flight when it ended).
    fn keep_last_window(&self, ended: Option<(Counts, u64)>) {
        if let Some((c, need)) = ended {
            let values = [c.calls, c.failures, c.slow, need];
            for (slot, v) in self.last_window.iter().zip(values) {
                slot.store(v, Ordering::Relaxed);
            }
        }
    }

    /// Bookkeeping after a won transition from `from` to `to`.
    fn entered(&self, from: Word, to: Word, reason: TransitionReason, now: u64) {
        let generation = to.generation();
        match to.state() {
            State::Open => {
                let n = self.consecutive_opens.fetch_add(1, Ordering::Relaxed);
                let wait = self.open_wait(n);
                self.publish_deadline(generation, deadline_after(generation, now, wait));
            }
            State::HalfOpen => {
                let max = self.config.half_open_max_duration;
                self.publish_deadline(generation, deadline_after(generation, now, max));
            }
            State::Closed => self.consecutive_opens.store(0, Ordering::Relaxed),
            _ => {}
        }
        self.entered_ns.store(now, Ordering::Relaxed);
        self.transitions[from.state() as usize][to.state() as usize]
            .fetch_add(1, Ordering::Relaxed);
        self.events.publish(Event {
            source: self.id,
            at_ns: now,
            kind: EventKind::Transition {
                from: from.state(),
                to: to.state(),
                generation,
                reason,
            },
        });
    }

    /// Publishes the deadline of the transition into `generation` (see [`publish`]).
    fn publish_deadline(&self, generation: u64, deadline: u64) {
        publish(&self.word, &self.deadline, generation, |_| false, deadline);
    }

    /// The wait of the `n`-th consecutive opening (n = 0 for the first).
    fn open_wait(&self, n: u64) -> Duration {
        open_wait(&self.config, &self.rng, n)
    }

    /// The failure-rate threshold in force, if that rule is on.
    pub fn failure_rate_threshold(&self) -> Option<f64> {
        self.config
            .failure_rate
            .map(|_| f64::from_bits(self.threshold.load(Ordering::Relaxed)))
    }

    /// Moves the failure-rate threshold (dynamic thresholds do); returns the previous one.
    /// The new value applies from the next evaluation.
    pub fn set_failure_rate_threshold(&self, threshold: f64) -> Result<f64, ConfigError> {
        if self.config.failure_rate.is_none() {
            return Err(ConfigError::new(
                "failure_rate",
                "this breaker has no failure-rate rule to adjust",
            ));
        }
        let t = crate::error::check::rate("failure_rate", threshold)?;
        if t == 0.0 {
            return Err(ConfigError::new("failure_rate", "must be greater than 0"));
        }
        Ok(f64::from_bits(
            self.threshold.swap(t.to_bits(), Ordering::Relaxed),
        ))
    }

    // ---- manual transitions -------------------------------------------------------------

    fn manual(
        &self,
        to: State,
        prepare: impl Fn(Word) -> Result<(), TransitionError>,
    ) -> Result<(), TransitionError> {
        loop {
            let w = self.load();
            if w.state() == to {
                return Ok(()); // a manual transition to the current state is a no-op
            }
            prepare(w)?;
            if self.transition(w, to, TransitionReason::Manual, self.clock.now_ns()) {
                return Ok(());
            }
        }
    }

    /// Opens the breaker by hand: rejecting until another manual transition, or until
    /// `duration` has passed (then the next caller starts probing, as after an OPEN wait).
    /// On a FORCED_OPEN breaker it is not a transition (no generation bump, no counted
    /// transition, no event): without a duration nothing changes, with one only the deadline
    /// moves.
    ///
    /// ```
    /// use surgewall::{Breaker, BreakerConfig, RejectReason};
    ///
    /// let b = Breaker::new("ledger", BreakerConfig::default());
    /// b.force_open(None);
    /// assert_eq!(b.acquire().unwrap_err().reason, RejectReason::ForcedOpen);
    /// b.reset();
    /// assert!(b.acquire().is_ok());
    /// ```
    pub fn force_open(&self, duration: Option<Duration>) {
        let now = self.clock.now_ns();
        loop {
            let w = self.load();
            let deadline = |generation: u64| match duration {
                Some(d) => deadline_after(generation, now, d),
                None => (generation & 0xFFFF) << 48 | DEADLINE_NEVER,
            };
            if w.state() == State::ForcedOpen {
                // Already FORCED_OPEN: not a transition. Without a duration nothing changes;
                // with one only the deadline moves (same generation, so no permit or result
                // is fenced). Retried should the wait end meanwhile.
                match duration {
                    None => return,
                    Some(_) => {
                        let g = w.generation();
                        if publish(&self.word, &self.deadline, g, |_| false, deadline(g)) {
                            return;
                        }
                        continue;
                    }
                }
            }
            let ended = self.episode_window(w, now, &self.totals());
            let next = w.next(State::ForcedOpen);
            if self.cas(w, next).is_ok() {
                self.publish_deadline(next.generation(), deadline(next.generation()));
                self.keep_last_window(ended);
                self.entered(w, next, TransitionReason::Manual, now);
                return;
            }
        }
    }

    /// Opens the breaker by hand as a trip would (resilience4j's `transitionToOpenState`),
    /// unlike [`force_open`](Self::force_open): the open wait applies, grown by the backoff of
    /// consecutive opens (a manual open after a failed probe episode waits longer, as a trip
    /// would), then the next caller starts probing. The reason is
    /// [`TransitionReason::Manual`]; a no-op when already OPEN.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::{Breaker, BreakerConfig, RejectReason, State, clock::Clock};
    ///
    /// let (clock, time) = Clock::mock();
    /// let config = BreakerConfig::builder().open_for(Duration::from_secs(5)).build()?;
    /// let b = Breaker::builder("ledger", config).clock(clock).build();
    /// b.open();
    /// let r = b.acquire().unwrap_err();
    /// assert_eq!((r.reason, r.retry_after), (RejectReason::Open, Duration::from_secs(5)));
    /// time.advance(Duration::from_secs(5));
    /// let probe = b.acquire()?;
    /// assert_eq!(b.state(), State::HalfOpen);
    /// # drop(probe);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(&self) {
        let _ = self.manual(State::Open, |_| Ok(()));
    }

    /// Disables the breaker: every call passes, nothing is recorded. A no-op when DISABLED.
    pub fn disable(&self) {
        let _ = self.manual(State::Disabled, |_| Ok(()));
    }

    /// Every call passes and is recorded, but the breaker never trips. A no-op when
    /// METRICS_ONLY.
    pub fn metrics_only(&self) {
        let _ = self.manual(State::MetricsOnly, |_| Ok(()));
    }

    /// Closes the breaker (a fresh window); a no-op when already CLOSED.
    pub fn close(&self) {
        let _ = self.manual(State::Closed, |_| Ok(()));
    }

    /// Starts probing now, from OPEN or FORCED_OPEN (a health check saw the dependency
    /// recover). CLOSED -> HALF_OPEN is refused.
    pub fn half_open(&self) -> Result<(), TransitionError> {
        self.manual(State::HalfOpen, |w| match w.state() {
            State::Open | State::ForcedOpen => Ok(()),
            from => Err(TransitionError {
                from,
                to: State::HalfOpen,
            }),
        })
    }

    /// Starts a fresh CLOSED episode from any state, CLOSED included: the window is cleared
    /// (the episode it ends leaves its snapshot in `last_window`), the open-wait backoff starts
    /// over, and permits of the ended episode are fenced (their results are late). Unlike
    /// [`close`](Self::close), which is a no-op on a CLOSED breaker, a reset always ends the
    /// episode, so it counts (and publishes) a transition, CLOSED -> CLOSED included, as
    /// resilience4j's `reset` clears the metrics of a CLOSED breaker.
    pub fn reset(&self) {
        let now = self.clock.now_ns();
        loop {
            if self.transition(self.load(), State::Closed, TransitionReason::Manual, now) {
                return;
            }
        }
    }

    // ---- observability ------------------------------------------------------------------

    /// A snapshot of everything observable. Reads only.
    pub fn metrics(&self) -> BreakerMetrics {
        let w = self.load();
        let now = self.clock.now_ns();
        let totals = self.totals();
        let (window, judged) = match self.episode_window(w, now, &totals) {
            Some((c, need)) => (c, c.judged(need)),
            None => (Counts::default(), false),
        };
        let last = self
            .last_window
            .each_ref()
            .map(|a| a.load(Ordering::Relaxed));
        let last_window = Counts {
            calls: last[0],
            failures: last[1],
            slow: last[2],
        };
        let last_judged = last_window.judged(last[3]);
        BreakerMetrics {
            state: w.state(),
            generation: w.generation(),
            time_in_state: Duration::from_nanos(
                now.saturating_sub(self.entered_ns.load(Ordering::Relaxed)),
            ),
            window,
            minimum_calls: u64::from(self.config.minimum_calls),
            failure_rate: judged.then(|| window.failure_rate()),
            slow_call_rate: judged.then(|| window.slow_rate()),
            last_window,
            last_failure_rate: last_judged.then(|| last_window.failure_rate()),
            last_slow_call_rate: last_judged.then(|| last_window.slow_rate()),
            failure_rate_threshold: self.failure_rate_threshold(),
            successes: totals.ok + totals.slow_ok,
            failures: totals.failures,
            slow_calls: totals.slow_ok + totals.slow_failures,
            ignored: self.counters.sum(IGNORED),
            rejected_open: self.counters.sum(REJECTED_OPEN),
            rejected_half_open: self.counters.sum(REJECTED_HALF_OPEN),
            late_results: self.late.load(Ordering::Relaxed),
            unexpected_results: self.unexpected.load(Ordering::Relaxed),
            consecutive_failures: self.streak.load(Ordering::Relaxed),
            consecutive_opens: self.consecutive_opens.load(Ordering::Relaxed),
            half_open_admitted: if w.state() == State::HalfOpen {
                w.admitted()
            } else {
                0
            },
            half_open_reported: if w.state() == State::HalfOpen {
                window.calls
            } else {
                0
            },
            retry_after: self.retry_after(),
            transitions: self
                .transitions
                .each_ref()
                .map(|row| row.each_ref().map(|a| a.load(Ordering::Relaxed))),
            clock: self.clock.mode(),
            call_durations: self.durations.as_ref().map(DurationHistogram::snapshot),
        }
    }

    // ---- conveniences -------------------------------------------------------------------

    /// Runs `f` under the breaker: `Ok` is a success, `Err` a failure, a panic a failure (and
    /// the panic goes on).
    pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        let permit = self.acquire().map_err(CallError::Rejected)?;
        match f() {
            Ok(v) => {
                permit.success();
                Ok(v)
            }
            Err(e) => {
                permit.failure();
                Err(CallError::Failed(e))
            }
        }
    }

    /// Runs `f` under the breaker and lets `classify` decide the outcome of its result
    /// (an HTTP 404 may be a success, a 429 ignored, ...).
    pub fn call_classified<T>(
        &self,
        f: impl FnOnce() -> T,
        classify: impl FnOnce(&T) -> Outcome,
    ) -> Result<T, Rejected> {
        let permit = self.acquire()?;
        let v = f();
        permit.record(classify(&v));
        Ok(v)
    }
}

/// The named breaker's state, for the admission shared with keyed breakers.
impl admission::Admit for Breaker {
    fn load(&self) -> Word {
        Breaker::load(self)
    }

    fn cas(&self, from: Word, to: Word) -> Result<(), Word> {
        Breaker::cas(self, from, to)
    }

    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    fn remaining(&self, w: Word, now: u64) -> Option<Duration> {
        Breaker::remaining(self, w, now)
    }

    fn config(&self) -> &BreakerConfig {
        &self.config
    }

    fn permit(&self, w: Word) -> RawPermit {
        Breaker::permit(self, w)
    }

    fn probe_permit(&self, w: Word) -> RawPermit {
        let index = self.probe_slots.claim(&self.word, w.generation());
        RawPermit::probe(w.generation(), index, Breaker::permit(self, w).start_ns)
    }

    fn reject(&self, reason: RejectReason, retry_after: Duration) -> Rejected {
        Breaker::reject(self, reason, retry_after)
    }

    fn entered(&self, from: Word, to: Word, reason: TransitionReason, now: u64) {
        Breaker::entered(self, from, to, reason, now)
    }

    fn transition(&self, from: Word, to: State, reason: TransitionReason, now: u64) -> bool {
        Breaker::transition(self, from, to, reason, now)
    }
}
