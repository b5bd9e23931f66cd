//! Retry: a policy that yields a schedule, so any caller — Rust, or C that sleeps itself —
//! can drive it.
//!
//! * [`RetryPolicy`]: validated, shareable configuration (cheap to clone, an `Arc`).
//! * [`RetrySchedule`]: the state of one operation; after each attempt,
//!   [`next_with`](RetrySchedule::next_with) answers [`Decision::Retry`] (sleep this long) or
//!   [`Decision::Stop`] (and why).
//! * [`RetryBudget`]: retries <= ratio x requests + a floor per second, shared by name through a
//!   [`RetryBudgetRegistry`], so retries cannot amplify an outage.
//! * [`RetryPolicy::run`] / [`RetryPolicy::run_guarded`]: a Rust driver taking a sleep function
//!   (tests pass one that moves a mock clock) and an error classifier.
//!
//! ## The rules (invariant I10)
//!
//! * **Attempts**: `max_attempts` counts the first attempt; a schedule never allows more.
//! * **Delays**: see [`backoff`](self#backoff-and-jitter) below. `max_delay` caps computed
//!   delays only when set: there is no hidden default cap (a constant 60 s delay sleeps 60 s).
//! * **Retry-After**: a server's `Retry-After` hint replaces the computed delay, is not
//!   jittered and is **never shortened** (`max_delay` does not apply to it). The schedule waits
//!   it in full or stops with [`StopReason::RetryAfterTooLong`]: when it is longer than
//!   `max_retry_after` (if set), or when waiting it would overrun `max_elapsed` (the rule
//!   below).
//! * **Breaker**: given the breaker in the [`Hint`], a retry is never scheduled before the
//!   breaker admits again: if [`Breaker::wait_hint`] is longer than the delay, the policy
//!   either stops ([`BreakerWait::Stop`]) or waits exactly that long ([`BreakerWait::Wait`],
//!   the default; this wait is not capped by `max_delay`, only by `max_elapsed`, and a forced
//!   open without deadline stops). The hint is the time left of an OPEN wait, or while every
//!   half-open probe is out the short [`half_open_retry_hint`](crate::BreakerConfig::half_open_retry_hint)
//!   (a tenth of `open_for`, 1 ms to 1 s): the schedule polls on it rather than sleeping until
//!   stuck probes would be reclaimed.
//! * **Which reason**: a delay that does not fit `max_elapsed` stops with
//!   [`StopReason::BreakerOpen`] when it was the breaker's wait, with
//!   [`StopReason::RetryAfterTooLong`] when it was a `Retry-After`, else with
//!   [`StopReason::MaxElapsed`].
//! * **Elapsed**: with `max_elapsed`, a retry after `delay` is scheduled only if
//!   `spent + delay + attempt <= max_elapsed`, where `spent` is the larger of the clock time
//!   since the schedule was created and the delays handed out so far (so the bound holds even
//!   for a caller that sleeps less), and `attempt` is `attempt_timeout` if configured, else the
//!   longest attempt seen so far (an attempt is timed from its planned start — creation, or the
//!   decision plus its delay — to the `next` call that reports it). Hence the total delay never
//!   exceeds `max_elapsed`, and no attempt is started that is expected to overrun it.
//! * **Budget**: checked last, so a retry the other rules forbid takes nothing from it.
//!
//! ## Backoff and jitter
//!
//! Constant, linear, exponential (each capped at `max_delay` when set, then jittered: none,
//! full `[0, b]`, equal `[b/2, b]`), and bounded decorrelated jitter (`[base, 3 * previous]`,
//! capped likewise); their delays are longer than zero (a zero first delay is a
//! configuration error). Retrying with no wait at all is its own kind, [`Backoff::None`]. Randomness is a SplitMix64 stream per schedule, seeded from the policy's seed, so
//! a seeded policy used from one thread gives the same delays every run.
//!
//! ```
//! use std::time::Duration;
//! use surgewall::{AttemptOutcome, Backoff, Decision, Hint, Jitter, RetryPolicy};
//!
//! let policy = RetryPolicy::builder()
//!     .max_attempts(4)
//!     .backoff(Backoff::exponential(Duration::from_millis(100), 2.0))
//!     .jitter(Jitter::None)
//!     .max_delay(Duration::from_secs(1))
//!     .build()?;
//! let mut schedule = policy.schedule();
//! let mut delays = vec![];
//! // A C caller does the same through the ABI: call, classify, ask, sleep.
//! while let Decision::Retry(d) = schedule.next(AttemptOutcome::Retryable) {
//!     delays.push(d.as_millis());
//! }
//! assert_eq!(delays, [100, 200, 400]);
//!
//! // A server said "Retry-After: 3": waited in full, beyond max_delay.
//! let mut schedule = policy.schedule();
//! let d = schedule.next_with(AttemptOutcome::Retryable, Hint::none().retry_after(Duration::from_secs(3)));
//! assert_eq!(d, Decision::Retry(Duration::from_secs(3)));
//! # Ok::<(), surgewall::ConfigError>(())
//! ```

mod backoff;
mod budget;
mod schedule;
#[cfg(all(test, not(surgewall_loom)))]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use backoff::{Backoff, Jitter};
pub use budget::{RetryBudget, RetryBudgetConfig, RetryBudgetMetrics, RetryBudgetRegistry};
pub use schedule::{AttemptOutcome, Decision, Hint, RetrySchedule, StopReason};

use crate::breaker::CallError;
use crate::clock::{duration_ns, Clock};
use crate::error::{check, ConfigError};
use crate::rng::{entropy_seed, SplitMix};
use crate::sync::{AtomicU64, Ordering};
use crate::{Breaker, Outcome};

/// What a breaker-aware schedule does when the breaker would still reject at the planned
/// retry time.
///
/// ```
/// assert_eq!(surgewall::BreakerWait::default(), surgewall::BreakerWait::Wait);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BreakerWait {
    /// Wait until the breaker admits (its [`wait_hint`](Breaker::wait_hint)), if that fits
    /// `max_elapsed`.
    #[default]
    Wait = 0,
    /// Stop with [`StopReason::BreakerOpen`].
    Stop = 1,
}

struct Inner {
    max_attempts: u32,
    backoff: Backoff,
    jitter: Jitter,
    max_delay: Option<Duration>,
    max_retry_after: Option<Duration>,
    max_elapsed: Option<Duration>,
    attempt_timeout: Option<Duration>,
    on_breaker_open: BreakerWait,
    budget: Option<Arc<RetryBudget>>,
    clock: Clock,
    rng: SplitMix,
    name: Option<String>,
    operations: AtomicU64,
    retries: AtomicU64,
    stops: [AtomicU64; StopReason::ALL.len()],
}

/// A validated retry policy. Cheap to clone and share (an `Arc`); each operation takes its own
/// [`RetrySchedule`]. See the [module docs](self) for the exact rules.
///
/// ```
/// use std::time::Duration;
/// use surgewall::{Backoff, Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(5)
///     .backoff(Backoff::decorrelated_jitter(Duration::from_millis(50)))
///     .max_delay(Duration::from_secs(2))
///     .max_elapsed(Duration::from_secs(10))
///     .seed(7)
///     .build()?;
/// assert_eq!(policy.max_attempts(), 5);
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    inner: Arc<Inner>,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &i.max_attempts)
            .field("backoff", &i.backoff)
            .field("jitter", &i.jitter)
            .field("max_delay", &i.max_delay)
            .field("max_retry_after", &i.max_retry_after)
            .field("max_elapsed", &i.max_elapsed)
            .field("attempt_timeout", &i.attempt_timeout)
            .field("on_breaker_open", &i.on_breaker_open)
            .field("budget", &i.budget)
            .finish()
    }
}

/// Builds a [`RetryPolicy`]; bad values are reported by [`build`](Self::build), naming the
/// field. Durations come as [`Duration`] or, in the `_secs` variants, float seconds.
///
/// ```
/// use surgewall::RetryPolicy;
/// let err = RetryPolicy::builder().max_attempts(0).build().unwrap_err();
/// assert_eq!(err.field(), "max_attempts");
/// let err = RetryPolicy::builder().max_delay_secs(-1.0).build().unwrap_err();
/// assert_eq!(err.field(), "max_delay");
/// ```
#[derive(Clone, Debug)]
pub struct RetryPolicyBuilder {
    max_attempts: u32,
    backoff: Backoff,
    jitter: Jitter,
    max_delay: Option<Result<Duration, ConfigError>>,
    max_retry_after: Option<Result<Duration, ConfigError>>,
    max_elapsed: Option<Result<Duration, ConfigError>>,
    attempt_timeout: Option<Result<Duration, ConfigError>>,
    on_breaker_open: BreakerWait,
    budget: Option<Arc<RetryBudget>>,
    clock: Clock,
    seed: Option<u64>,
    name: Option<String>,
}

impl Default for RetryPolicyBuilder {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::DEFAULT,
            jitter: Jitter::Full,
            max_delay: None,
            max_retry_after: None,
            max_elapsed: None,
            attempt_timeout: None,
            on_breaker_open: BreakerWait::Wait,
            budget: None,
            clock: Clock::coarse(),
            seed: None,
            name: None,
        }
    }
}

impl RetryPolicyBuilder {
    /// Attempts in all, the first included (>= 1; 1 means never retry). Default 3.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }
    /// How delays grow. Default [`Backoff::DEFAULT`]: exponential from 100 ms, x2. Every
    /// kind's delays are longer than zero; [`Backoff::None`] retries without waiting.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
    /// How delays are randomised. Default [`Jitter::Full`].
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }
    /// The longest computed (backoff) delay (> 0). Default: none — a delay is capped only
    /// where the caller set a cap. It never shortens a `Retry-After` (see
    /// [`max_retry_after`](Self::max_retry_after)) nor a breaker wait.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = Some(check::non_zero("max_delay", d));
        self
    }
    /// [`max_delay`](Self::max_delay) in float seconds.
    pub fn max_delay_secs(mut self, s: f64) -> Self {
        self.max_delay =
            Some(check::seconds("max_delay", s).and_then(|d| check::non_zero("max_delay", d)));
        self
    }
    /// The longest `Retry-After` the schedule waits (> 0): a longer one stops it with
    /// [`StopReason::RetryAfterTooLong`] rather than being shortened. Default: none (only
    /// `max_elapsed` limits it).
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = Some(check::non_zero("max_retry_after", d));
        self
    }
    /// [`max_retry_after`](Self::max_retry_after) in float seconds.
    pub fn max_retry_after_secs(mut self, s: f64) -> Self {
        self.max_retry_after = Some(
            check::seconds("max_retry_after", s)
                .and_then(|d| check::non_zero("max_retry_after", d)),
        );
        self
    }
    /// The time the whole operation may take, attempts and delays (> 0). Default: unbounded.
    pub fn max_elapsed(mut self, d: Duration) -> Self {
        self.max_elapsed = Some(check::non_zero("max_elapsed", d));
        self
    }
    /// [`max_elapsed`](Self::max_elapsed) in float seconds.
    pub fn max_elapsed_secs(mut self, s: f64) -> Self {
        self.max_elapsed =
            Some(check::seconds("max_elapsed", s).and_then(|d| check::non_zero("max_elapsed", d)));
        self
    }
    /// How long one attempt may take (the caller enforces it); used by the `max_elapsed` rule
    /// instead of the longest attempt seen.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = Some(check::non_zero("attempt_timeout", d));
        self
    }
    /// [`attempt_timeout`](Self::attempt_timeout) in float seconds.
    pub fn attempt_timeout_secs(mut self, s: f64) -> Self {
        self.attempt_timeout = Some(
            check::seconds("attempt_timeout", s)
                .and_then(|d| check::non_zero("attempt_timeout", d)),
        );
        self
    }
    /// What to do when the breaker in the hint would still reject. Default [`BreakerWait::Wait`].
    pub fn on_breaker_open(mut self, w: BreakerWait) -> Self {
        self.on_breaker_open = w;
        self
    }
    /// The retry budget (shared; see [`RetryBudgetRegistry`]). Default: none.
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }
    /// The clock elapsed time is measured on. Default [`Clock::coarse`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
    /// Seeds the jitter (deterministic tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// A name, for operators: the C ABI lists a named policy in the catalog the agent serves.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Validates and builds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::{Backoff, RetryPolicy};
    /// let err = RetryPolicy::builder()
    ///     .backoff(Backoff::exponential(Duration::from_millis(10), 0.5))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "backoff.multiplier");
    /// ```
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        check::at_least("max_attempts", self.max_attempts.into(), 1)?;
        match self.backoff {
            Backoff::None => {}
            Backoff::Constant { delay } => {
                first_delay("backoff.delay", delay)?;
            }
            Backoff::Linear { initial, .. } => {
                first_delay("backoff.initial", initial)?;
            }
            Backoff::Exponential {
                initial,
                multiplier,
            } => {
                first_delay("backoff.initial", initial)?;
                let m = check::non_negative("backoff.multiplier", multiplier)?;
                if m < 1.0 {
                    return Err(ConfigError::new(
                        "backoff.multiplier",
                        format!("must be at least 1 (delays must not shrink), got {m}"),
                    ));
                }
            }
            Backoff::DecorrelatedJitter { base } => {
                first_delay("backoff.base", base)?;
            }
        }
        let max_delay = self.max_delay.transpose()?;
        let max_retry_after = self.max_retry_after.transpose()?;
        let max_elapsed = self.max_elapsed.transpose()?;
        let attempt_timeout = self.attempt_timeout.transpose()?;
        if let (Some(e), Some(a)) = (max_elapsed, attempt_timeout) {
            if a > e {
                return Err(ConfigError::new(
                    "attempt_timeout",
                    format!("{a:?} is longer than max_elapsed ({e:?}): no retry could ever fit"),
                ));
            }
        }
        Ok(RetryPolicy {
            inner: Arc::new(Inner {
                max_attempts: self.max_attempts,
                backoff: self.backoff,
                jitter: self.jitter,
                max_delay,
                max_retry_after,
                max_elapsed,
                attempt_timeout,
                on_breaker_open: self.on_breaker_open,
                budget: self.budget,
                clock: self.clock,
                rng: SplitMix::new(self.seed.unwrap_or_else(entropy_seed)),
                name: self.name,
                operations: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                stops: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
        })
    }
}

/// A backoff's first delay: longer than zero for every kind, so that a zero (a unit mistake, a
/// missing setting) is not silently a hot retry loop; no wait at all is [`Backoff::None`].
fn first_delay(field: &'static str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::new(
            field,
            "must be longer than zero (to retry without waiting, use the none backoff)",
        ));
    }
    Ok(d)
}

/// What a policy has done, for scrapes.
///
/// ```
/// use surgewall::{AttemptOutcome, RetryPolicy, StopReason};
/// let p = RetryPolicy::builder().max_attempts(1).build()?;
/// p.schedule().next(AttemptOutcome::Retryable);
/// let m = p.metrics();
/// assert_eq!((m.operations, m.retries, m.stopped(StopReason::MaxAttempts)), (1, 0, 1));
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryMetrics {
    /// Schedules created (operations started).
    pub operations: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Schedules stopped, by [`StopReason`] discriminant.
    pub stops: [u64; StopReason::ALL.len()],
    /// The budget's snapshot, if the policy has one.
    pub budget: Option<RetryBudgetMetrics>,
}

impl RetryMetrics {
    /// Schedules that stopped for `reason`.
    pub fn stopped(&self, reason: StopReason) -> u64 {
        self.stops[reason as usize]
    }
}

/// How the driver should treat an error: what a classifier returns (a `bool` converts:
/// `true` = retryable).
///
/// ```
/// use std::time::Duration;
/// use surgewall::retry::ErrorClass;
/// assert_eq!(ErrorClass::from(true), ErrorClass::Retryable);
/// let _throttled = ErrorClass::RetryAfter(Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Do not retry.
    Fatal,
    /// Retry after the policy's delay.
    Retryable,
    /// Retry after this long (a server's `Retry-After`): waited in full, or the driver stops
    /// with [`StopReason::RetryAfterTooLong`].
    RetryAfter(Duration),
}

impl From<bool> for ErrorClass {
    fn from(retryable: bool) -> Self {
        if retryable {
            ErrorClass::Retryable
        } else {
            ErrorClass::Fatal
        }
    }
}

/// The error of [`RetryPolicy::run`]: the last attempt's error, why the driver stopped and
/// how many attempts it made.
///
/// ```
/// use surgewall::{RetryPolicy, StopReason};
/// let p = RetryPolicy::builder().max_attempts(2).build()?;
/// let err = p.run(|_| {}, |_: &&str| true, |_| Err::<(), _>("boom")).unwrap_err();
/// assert_eq!((err.reason, err.attempts), (StopReason::MaxAttempts, 2));
/// assert_eq!(err.to_string(), "boom (gave up after 2 attempts: max_attempts)");
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct RetryError<E> {
    /// Why the driver stopped.
    pub reason: StopReason,
    /// Attempts made (a breaker rejection counts as one).
    pub attempts: u32,
    /// The last attempt's error, or the breaker's rejection.
    pub last: CallError<E>,
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (gave up after {} attempts: {})",
            self.last, self.attempts, self.reason
        )
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for RetryError<E> {}

impl RetryPolicy {
    /// A builder with the defaults: 3 attempts, exponential from 100 ms x2, full jitter, no
    /// `max_delay`, no `max_retry_after`, no elapsed limit, no budget, waits for breakers.
    ///
    /// ```
    /// let p = surgewall::RetryPolicy::builder().build()?;
    /// assert_eq!(p.max_attempts(), 3);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::default()
    }

    /// The name it was given, if any.
    ///
    /// ```
    /// let p = surgewall::RetryPolicy::builder().name("payments-retry").build()?;
    /// assert_eq!(p.name(), Some("payments-retry"));
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// Attempts in all, the first included.
    ///
    /// ```
    /// assert_eq!(surgewall::RetryPolicy::builder().max_attempts(9).build()?.max_attempts(), 9);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// How delays grow.
    ///
    /// ```
    /// let p = surgewall::RetryPolicy::builder().build()?;
    /// assert_eq!(p.backoff(), surgewall::Backoff::DEFAULT);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn backoff(&self) -> Backoff {
        self.inner.backoff
    }

    /// How delays are randomised.
    ///
    /// ```
    /// let p = surgewall::RetryPolicy::builder().build()?;
    /// assert_eq!(p.jitter(), surgewall::Jitter::Full);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn jitter(&self) -> Jitter {
        self.inner.jitter
    }

    /// The cap on computed delays, if one was set.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::RetryPolicy;
    /// assert_eq!(RetryPolicy::builder().max_delay_secs(2.0).build()?.max_delay(), Some(Duration::from_secs(2)));
    /// assert_eq!(RetryPolicy::builder().build()?.max_delay(), None); // no hidden cap
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn max_delay(&self) -> Option<Duration> {
        self.inner.max_delay
    }

    /// The longest `Retry-After` waited, if a limit was set.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = surgewall::RetryPolicy::builder().max_retry_after(Duration::from_secs(60)).build()?;
    /// assert_eq!(p.max_retry_after(), Some(Duration::from_secs(60)));
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn max_retry_after(&self) -> Option<Duration> {
        self.inner.max_retry_after
    }

    /// The elapsed-time limit, if any.
    ///
    /// ```
    /// assert_eq!(surgewall::RetryPolicy::builder().build()?.max_elapsed(), None);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn max_elapsed(&self) -> Option<Duration> {
        self.inner.max_elapsed
    }

    /// The budget, if any.
    ///
    /// ```
    /// assert!(surgewall::RetryPolicy::builder().build()?.budget().is_none());
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn budget(&self) -> Option<&Arc<RetryBudget>> {
        self.inner.budget.as_ref()
    }

    /// The range the delay before retry `n` (1 = the first retry) is drawn from, closed at
    /// both ends, before any `Retry-After` or breaker wait. For decorrelated jitter, the range
    /// over all retries: `[min(base, max_delay), max_delay]` (no `max_delay`: `u64::MAX` ns).
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::{Backoff, Jitter, RetryPolicy};
    /// let p = RetryPolicy::builder()
    ///     .backoff(Backoff::linear(Duration::from_millis(100), Duration::from_millis(100)))
    ///     .jitter(Jitter::Equal)
    ///     .build()?;
    /// assert_eq!(p.delay_bounds(3), (Duration::from_millis(150), Duration::from_millis(300)));
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn delay_bounds(&self, n: u32) -> (Duration, Duration) {
        let i = &*self.inner;
        let max_ns = i.max_delay.map_or(u64::MAX, duration_ns);
        let (lo, hi) = match i.backoff {
            Backoff::DecorrelatedJitter { .. } => (i.backoff.base_ns(n, max_ns), max_ns),
            b => i.jitter.bounds(b.base_ns(n, max_ns)),
        };
        (Duration::from_nanos(lo), Duration::from_nanos(hi))
    }

    /// The delays the next operation would wait between its attempts if every attempt failed
    /// (retryably) at once, with no `Retry-After` and no breaker: the backoff and jitter of the
    /// next schedule's own draws (the very delays under a seed, unless another schedule starts
    /// first), cut by `max_attempts` and `max_elapsed` as for such an operation (the attempts
    /// made took no time; the one to come counts as its `attempt_timeout` when set). Counts
    /// nothing (no operation, no retry) and asks no budget. Lazy: `max_attempts` may be large, so take what you need.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::{Backoff, Jitter, RetryPolicy};
    /// let p = RetryPolicy::builder()
    ///     .max_attempts(4)
    ///     .backoff(Backoff::exponential(Duration::from_millis(100), 2.0))
    ///     .jitter(Jitter::None)
    ///     .build()?;
    /// let ms: Vec<u128> = p.preview().map(|d| d.as_millis()).collect();
    /// assert_eq!(ms, [100, 200, 400]);
    /// assert_eq!(p.metrics().operations, 0);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn preview(&self) -> impl Iterator<Item = Duration> {
        let mut s = RetrySchedule::dry(self.clone(), self.inner.rng.peek_u64());
        std::iter::from_fn(move || match s.next(AttemptOutcome::Retryable) {
            Decision::Retry(d) => Some(d),
            Decision::Stop(_) => None,
        })
    }

    /// A schedule for one operation, whose first attempt starts now. Counts one request in
    /// the budget. Allocation-free.
    ///
    /// ```
    /// let p = surgewall::RetryPolicy::builder().build()?;
    /// assert_eq!(p.schedule().attempts(), 1);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn schedule(&self) -> RetrySchedule {
        // Relaxed: statistics.
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = &self.inner.budget {
            b.record_request();
        }
        RetrySchedule::new(self.clone(), self.inner.rng.next_u64())
    }

    /// A snapshot of what this policy has done.
    ///
    /// ```
    /// let p = surgewall::RetryPolicy::builder().build()?;
    /// assert_eq!(p.metrics().operations, 0);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn metrics(&self) -> RetryMetrics {
        let i = &*self.inner;
        RetryMetrics {
            operations: i.operations.load(Ordering::Relaxed),
            retries: i.retries.load(Ordering::Relaxed),
            stops: i.stops.each_ref().map(|a| a.load(Ordering::Relaxed)),
            budget: i.budget.as_ref().map(|b| b.metrics()),
        }
    }

    /// Runs `op` (given the attempt number, from 1) until it succeeds or the schedule stops.
    /// Between attempts it calls `sleep` with the delay — pass `std::thread::sleep`, or in
    /// tests a function that moves a mock clock. `classify` says whether an error is worth
    /// retrying (return a `bool` or an [`ErrorClass`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::{Backoff, Jitter, RetryPolicy, clock::Clock};
    ///
    /// let (clock, time) = Clock::mock();
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(5)
    ///     .backoff(Backoff::constant(Duration::from_millis(20)))
    ///     .jitter(Jitter::None)
    ///     .clock(clock)
    ///     .build()?;
    /// let got = policy.run(
    ///     |d| time.advance(d),
    ///     |e: &String| e.starts_with("transient"),
    ///     |attempt| if attempt < 3 { Err("transient".to_string()) } else { Ok(attempt) },
    /// );
    /// assert_eq!(got, Ok(3));
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn run<T, E, C: Into<ErrorClass>>(
        &self,
        mut sleep: impl FnMut(Duration),
        mut classify: impl FnMut(&E) -> C,
        mut op: impl FnMut(u32) -> Result<T, E>,
    ) -> Result<T, RetryError<E>> {
        let mut s = self.schedule();
        loop {
            let attempt = s.attempts();
            let e = match op(attempt) {
                Ok(v) => {
                    s.next(AttemptOutcome::Success);
                    return Ok(v);
                }
                Err(e) => e,
            };
            let (outcome, hint) = outcome_of(classify(&e).into());
            match s.next_with(outcome, hint) {
                Decision::Retry(d) => sleep(d),
                Decision::Stop(reason) => {
                    return Err(RetryError {
                        reason,
                        attempts: attempt,
                        last: CallError::Failed(e),
                    })
                }
            }
        }
    }

    /// [`run`](Self::run) under a breaker: each attempt takes a permit (a rejection counts as
    /// a retryable attempt, and the schedule waits for the breaker or stops), `Ok` is recorded
    /// as a success and `Err` as a failure. No attempt is made while the breaker rejects.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::{Breaker, BreakerConfig, RetryPolicy, StopReason, BreakerWait, clock::Clock};
    ///
    /// let (clock, time) = Clock::mock();
    /// let breaker = Breaker::builder("db", BreakerConfig::builder().consecutive_failures(2).build()?)
    ///     .clock(clock.clone())
    ///     .build();
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(10)
    ///     .on_breaker_open(BreakerWait::Stop)
    ///     .clock(clock)
    ///     .build()?;
    /// let mut calls = 0;
    /// let err = policy
    ///     .run_guarded(&breaker, |d| time.advance(d), |_: &()| true, |_| { calls += 1; Err::<(), ()>(()) })
    ///     .unwrap_err();
    /// assert_eq!((calls, err.reason), (2, StopReason::BreakerOpen)); // tripped after 2
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn run_guarded<T, E, C: Into<ErrorClass>>(
        &self,
        breaker: &Breaker,
        mut sleep: impl FnMut(Duration),
        mut classify: impl FnMut(&E) -> C,
        mut op: impl FnMut(u32) -> Result<T, E>,
    ) -> Result<T, RetryError<E>> {
        let mut s = self.schedule();
        loop {
            let attempt = s.attempts();
            let (last, outcome, hint) = match breaker.acquire() {
                Err(rejected) => (
                    CallError::Rejected(rejected),
                    AttemptOutcome::Retryable,
                    Hint::none(),
                ),
                Ok(permit) => match op(attempt) {
                    Ok(v) => {
                        permit.record(Outcome::Success);
                        s.next(AttemptOutcome::Success);
                        return Ok(v);
                    }
                    Err(e) => {
                        permit.record(Outcome::Failure);
                        let (outcome, hint) = outcome_of(classify(&e).into());
                        (CallError::Failed(e), outcome, hint)
                    }
                },
            };
            match s.next_with(outcome, hint.breaker(breaker)) {
                Decision::Retry(d) => sleep(d),
                Decision::Stop(reason) => {
                    return Err(RetryError {
                        reason,
                        attempts: attempt,
                        last,
                    })
                }
            }
        }
    }
}

fn outcome_of(class: ErrorClass) -> (AttemptOutcome, Hint<'static>) {
    match class {
        ErrorClass::Fatal => (AttemptOutcome::NotRetryable, Hint::none()),
        ErrorClass::Retryable => (AttemptOutcome::Retryable, Hint::none()),
        ErrorClass::RetryAfter(d) => (AttemptOutcome::Retryable, Hint::none().retry_after(d)),
    }
}
