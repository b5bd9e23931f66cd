//! The per-operation schedule: given how the last attempt went, retry after a delay or stop.

use std::fmt;
use std::time::Duration;

use crate::clock::{duration_ns, Clock};
use crate::rng::SplitMix;
use crate::Breaker;

use super::backoff::{draw, Backoff};
use super::{BreakerWait, RetryPolicy};

/// How an attempt ended, as the caller classifies it.
///
/// ```
/// assert_eq!(surgewall::AttemptOutcome::Retryable as u8, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AttemptOutcome {
    /// It succeeded: stop.
    Success = 0,
    /// It failed in a way worth retrying (a timeout, a 503, a rejection by a breaker).
    Retryable = 1,
    /// It failed in a way retrying cannot fix (a 400, a validation error): stop.
    NotRetryable = 2,
}

/// Why a schedule stopped.
///
/// ```
/// assert_eq!(surgewall::StopReason::MaxAttempts.as_str(), "max_attempts");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StopReason {
    /// The last attempt succeeded.
    Succeeded = 0,
    /// The last attempt failed with an error that is not retryable.
    NotRetryable = 1,
    /// `max_attempts` attempts were made.
    MaxAttempts = 2,
    /// The next attempt would not fit in `max_elapsed` (see [`RetryPolicy`] for the rule).
    MaxElapsed = 3,
    /// The retry budget refused the retry.
    BudgetExhausted = 4,
    /// The breaker rejects and the policy does not wait for it, or cannot (a forced open
    /// without deadline, or a wait beyond `max_elapsed`).
    BreakerOpen = 5,
    /// The server's `Retry-After` is longer than `max_retry_after`, or waiting it would
    /// overrun `max_elapsed`: it is never shortened, so the schedule stops.
    RetryAfterTooLong = 6,
}

impl StopReason {
    /// Every reason, in discriminant order (indexes [`RetryMetrics::stops`](super::RetryMetrics)).
    pub const ALL: [StopReason; 7] = [
        StopReason::Succeeded,
        StopReason::NotRetryable,
        StopReason::MaxAttempts,
        StopReason::MaxElapsed,
        StopReason::BudgetExhausted,
        StopReason::BreakerOpen,
        StopReason::RetryAfterTooLong,
    ];

    /// A lower-case name for logs and labels.
    ///
    /// ```
    /// assert_eq!(surgewall::StopReason::BudgetExhausted.as_str(), "budget_exhausted");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Succeeded => "succeeded",
            StopReason::NotRetryable => "not_retryable",
            StopReason::MaxAttempts => "max_attempts",
            StopReason::MaxElapsed => "max_elapsed",
            StopReason::BudgetExhausted => "budget_exhausted",
            StopReason::BreakerOpen => "breaker_open",
            StopReason::RetryAfterTooLong => "retry_after_too_long",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do next.
///
/// ```
/// use std::time::Duration;
/// use surgewall::{Decision, StopReason};
/// assert_eq!(Decision::Retry(Duration::from_millis(5)).delay(), Some(Duration::from_millis(5)));
/// assert_eq!(Decision::Stop(StopReason::Succeeded).delay(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Sleep this long, then make the next attempt.
    Retry(Duration),
    /// Make no more attempts.
    Stop(StopReason),
}

impl Decision {
    /// The delay, when this is a retry.
    pub fn delay(&self) -> Option<Duration> {
        match *self {
            Decision::Retry(d) => Some(d),
            Decision::Stop(_) => None,
        }
    }
}

/// What the caller knows beyond the outcome: a server's `Retry-After`, the breaker guarding
/// the dependency.
///
/// ```
/// use std::time::Duration;
/// use surgewall::{Breaker, BreakerConfig, Hint};
///
/// let breaker = Breaker::new("api", BreakerConfig::default());
/// let hint = Hint::none().retry_after(Duration::from_secs(2)).breaker(&breaker);
/// # let _ = hint;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Hint<'a> {
    retry_after: Option<Duration>,
    breaker: Option<&'a Breaker>,
}

impl<'a> Hint<'a> {
    /// No hint.
    pub fn none() -> Self {
        Self::default()
    }

    /// The server asked to wait this long (`Retry-After`): it replaces the computed delay,
    /// without jitter, and is never shortened (the schedule stops with
    /// [`StopReason::RetryAfterTooLong`] when it cannot wait it).
    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// The breaker guarding the dependency: the retry is never scheduled before it admits.
    pub fn breaker(mut self, breaker: &'a Breaker) -> Self {
        self.breaker = Some(breaker);
        self
    }
}

/// The retry state of one operation. Create one per operation with
/// [`RetryPolicy::schedule`]; after each attempt, ask [`next`](Self::next) (or
/// [`next_with`](Self::next_with)) what to do. Single-owner, allocation-free.
///
/// ```
/// use std::time::Duration;
/// use surgewall::{AttemptOutcome, Backoff, Decision, Jitter, RetryPolicy, StopReason};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(3)
///     .backoff(Backoff::constant(Duration::from_millis(10)))
///     .jitter(Jitter::None)
///     .build()?;
/// let mut s = policy.schedule(); // attempt 1 starts now
/// assert_eq!(s.next(AttemptOutcome::Retryable), Decision::Retry(Duration::from_millis(10)));
/// assert_eq!(s.next(AttemptOutcome::Retryable), Decision::Retry(Duration::from_millis(10)));
/// assert_eq!(s.next(AttemptOutcome::Retryable), Decision::Stop(StopReason::MaxAttempts));
/// assert_eq!(s.attempts(), 3);
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
pub struct RetrySchedule {
    policy: RetryPolicy,
    rng: SplitMix,
    started_ns: u64,
    /// When the current attempt was planned to start (creation, or decision + delay).
    attempt_start_ns: u64,
    attempts: u32,
    total_delay_ns: u64,
    longest_attempt_ns: u64,
    /// The previous decorrelated-jitter delay (its `base` before the first retry).
    prev_ns: u64,
    stopped: Option<StopReason>,
    /// A preview ([`RetryPolicy::preview`]): attempts take no time, nothing is counted and the
    /// budget is not asked.
    dry: bool,
}

impl fmt::Debug for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetrySchedule")
            .field("attempts", &self.attempts)
            .field("total_delay", &self.total_delay())
            .field("stopped", &self.stopped)
            .finish()
    }
}

impl RetrySchedule {
    pub(super) fn new(policy: RetryPolicy, seed: u64) -> Self {
        let now = policy.inner.clock.now_ns();
        let prev_ns = match policy.inner.backoff {
            Backoff::DecorrelatedJitter { base } => duration_ns(base),
            _ => 0,
        };
        Self {
            policy,
            rng: SplitMix::new(seed),
            started_ns: now,
            attempt_start_ns: now,
            attempts: 1,
            total_delay_ns: 0,
            longest_attempt_ns: 0,
            prev_ns,
            stopped: None,
            dry: false,
        }
    }

    /// A schedule for [`RetryPolicy::preview`]: its clock is the sum of its delays.
    pub(super) fn dry(policy: RetryPolicy, seed: u64) -> Self {
        Self {
            started_ns: 0,
            attempt_start_ns: 0,
            dry: true,
            ..Self::new(policy, seed)
        }
    }

    /// The clock the schedule measures time on (its policy's): a driver waits a delay on it
    /// (a mock clock is advanced, no real time passes).
    ///
    /// ```
    /// use surgewall::{clock::Clock, RetryPolicy};
    /// let (clock, _) = Clock::mock();
    /// let p = RetryPolicy::builder().clock(clock).build()?;
    /// assert!(p.schedule().clock().mock_handle().is_some());
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn clock(&self) -> &Clock {
        &self.policy.inner.clock
    }

    /// Attempts started so far, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The sum of the delays this schedule handed out.
    pub fn total_delay(&self) -> Duration {
        Duration::from_nanos(self.total_delay_ns)
    }

    /// Why it stopped, once it has.
    pub fn stopped(&self) -> Option<StopReason> {
        self.stopped
    }

    /// [`next_with`](Self::next_with) without a hint.
    pub fn next(&mut self, outcome: AttemptOutcome) -> Decision {
        self.next_with(outcome, Hint::none())
    }

    /// What to do after an attempt that ended with `outcome`. Once it says stop, it keeps
    /// saying so. The checks, in order (see [`RetryPolicy`] for the rules):
    ///
    /// 1. success / not retryable: stop;
    /// 2. `max_attempts` reached: stop;
    /// 3. the delay: the `Retry-After` in full (stop if longer than `max_retry_after`), or the
    ///    backoff with jitter (capped at `max_delay` when set);
    /// 4. the breaker: if it would still reject when the delay ends, wait until it admits or
    ///    stop (per [`BreakerWait`]);
    /// 5. `max_elapsed`: stop if the delay plus the next attempt would overrun it;
    /// 6. the budget: stop if it refuses the retry.
    pub fn next_with(&mut self, outcome: AttemptOutcome, hint: Hint<'_>) -> Decision {
        if let Some(r) = self.stopped {
            return Decision::Stop(r);
        }
        let d = self.decide(outcome, hint);
        let inner = &self.policy.inner;
        if self.dry {
            if let Decision::Stop(r) = d {
                self.stopped = Some(r);
            }
            return d;
        }
        match d {
            // Relaxed: statistics.
            Decision::Retry(_) => inner.retries.fetch_add(1, crate::sync::Ordering::Relaxed),
            Decision::Stop(r) => {
                self.stopped = Some(r);
                inner.stops[r as usize].fetch_add(1, crate::sync::Ordering::Relaxed)
            }
        };
        d
    }

    fn decide(&mut self, outcome: AttemptOutcome, hint: Hint<'_>) -> Decision {
        let p = &*self.policy.inner;
        match outcome {
            AttemptOutcome::Success => return Decision::Stop(StopReason::Succeeded),
            AttemptOutcome::NotRetryable => return Decision::Stop(StopReason::NotRetryable),
            AttemptOutcome::Retryable => {}
        }
        // A preview's attempts end as they start.
        let now = if self.dry {
            self.attempt_start_ns
        } else {
            p.clock.now_ns()
        };
        self.longest_attempt_ns = self
            .longest_attempt_ns
            .max(now.saturating_sub(self.attempt_start_ns));
        if self.attempts >= p.max_attempts {
            return Decision::Stop(StopReason::MaxAttempts);
        }
        let max_ns = p.max_delay.map_or(u64::MAX, duration_ns);
        // The backoff draw happens even under a Retry-After, so a seed gives the same
        // sequence whatever the hints.
        let backoff_ns = backoff_ns(p, &self.rng, self.prev_ns, self.attempts, max_ns);
        // A Retry-After is never shortened: waited in full, or the schedule stops.
        let mut delay_ns = match hint.retry_after {
            Some(ra) if p.max_retry_after.is_some_and(|cap| ra > cap) => {
                return Decision::Stop(StopReason::RetryAfterTooLong)
            }
            Some(ra) => duration_ns(ra),
            None => backoff_ns,
        };
        let mut waits_for_breaker = false;
        if let Some(b) = hint.breaker {
            // The breaker's wait (OPEN), or the short hint to poll on while its probes are
            // all out (HALF_OPEN): never the stuck-probe reclaim.
            if let Some(wait) = b.wait_hint() {
                let wait_ns = duration_ns(wait);
                if wait_ns > delay_ns {
                    match p.on_breaker_open {
                        BreakerWait::Stop => return Decision::Stop(StopReason::BreakerOpen),
                        BreakerWait::Wait if wait == Duration::MAX => {
                            return Decision::Stop(StopReason::BreakerOpen)
                        }
                        // Not capped by max_delay: an earlier retry would hit the open breaker.
                        BreakerWait::Wait => {
                            delay_ns = wait_ns;
                            waits_for_breaker = true;
                        }
                    }
                }
            }
        }
        if let Some(max_elapsed) = p.max_elapsed {
            let spent = now.saturating_sub(self.started_ns).max(self.total_delay_ns);
            let attempt = p
                .attempt_timeout
                .map_or(self.longest_attempt_ns, duration_ns);
            let needed = spent.saturating_add(delay_ns).saturating_add(attempt);
            if needed > duration_ns(max_elapsed) {
                return Decision::Stop(if waits_for_breaker {
                    StopReason::BreakerOpen
                } else if hint.retry_after.is_some() {
                    StopReason::RetryAfterTooLong
                } else {
                    StopReason::MaxElapsed
                });
            }
        }
        if let Some(budget) = p.budget.as_ref().filter(|_| !self.dry) {
            if !budget.try_retry() {
                return Decision::Stop(StopReason::BudgetExhausted);
            }
        }
        self.attempts += 1;
        // Decorrelated jitter grows from the delay actually used (a Retry-After included).
        self.prev_ns = delay_ns.max(1);
        self.total_delay_ns = self.total_delay_ns.saturating_add(delay_ns);
        self.attempt_start_ns = now.saturating_add(delay_ns);
        Decision::Retry(Duration::from_nanos(delay_ns))
    }
}

/// The jittered backoff before retry number `n`; `prev_ns` is decorrelated jitter's state.
fn backoff_ns(p: &super::Inner, rng: &SplitMix, prev_ns: u64, n: u32, max_ns: u64) -> u64 {
    let u = rng.next_f64();
    match p.backoff {
        Backoff::DecorrelatedJitter { base } => {
            let lo = duration_ns(base).min(max_ns);
            let hi = prev_ns.saturating_mul(3).min(max_ns).max(lo);
            draw(lo, hi, u)
        }
        b => {
            let base = b.base_ns(n, max_ns);
            let (lo, hi) = p.jitter.bounds(base);
            draw(lo, hi, u)
        }
    }
}
