//! The observability snapshot of a breaker.

use std::time::Duration;

use crate::clock::ClockMode;

use super::window::Counts;
use super::State;

/// Everything observable about a breaker, read without stopping it.
///
/// Totals are exact (invariant I2); window counts may lag by the calls in flight at a bucket
/// boundary. Reading has no side effects: an OPEN breaker whose wait is over still reads OPEN
/// until a caller arrives (with `retry_after` zero).
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerMetrics {
    /// The current state.
    pub state: State,
    /// The current generation (bumped by every transition).
    pub generation: u64,
    /// How long the breaker has been in this state.
    pub time_in_state: Duration,
    /// What the current episode's window holds: the sliding window in CLOSED and
    /// METRICS_ONLY, the probes that reported in HALF_OPEN, nothing in the other states.
    pub window: Counts,
    /// `minimum_calls` of the configuration: the calls the window of a CLOSED or METRICS_ONLY
    /// episode needs before its rates are judged (and present here).
    pub minimum_calls: u64,
    /// The window's failure rate, or `None` ("not enough data") while the window holds too few
    /// calls to be judged: fewer than `minimum_calls` in CLOSED and METRICS_ONLY, no reported
    /// probe yet in HALF_OPEN (the probes are judged as they report), always in the states
    /// without a window (OPEN, FORCED_OPEN, DISABLED). Never a 0.0 that means "no data".
    pub failure_rate: Option<f64>,
    /// The window's slow-call rate, absent by the same rule as `failure_rate`.
    pub slow_call_rate: Option<f64>,
    /// What the window held when the last episode with a window (CLOSED, METRICS_ONLY or
    /// HALF_OPEN) ended, whatever it ended in: the counts that tripped it, or the probes
    /// that decided.
    pub last_window: Counts,
    /// The last window's failure rate, absent by the rule of the episode it ended
    /// (`minimum_calls` for CLOSED and METRICS_ONLY, one probe for HALF_OPEN), and before
    /// any episode ended.
    pub last_failure_rate: Option<f64>,
    /// The last window's slow-call rate, absent by the same rule as `last_failure_rate`.
    pub last_slow_call_rate: Option<f64>,
    /// The failure-rate threshold in force (dynamic thresholds move it), if that rule is on.
    pub failure_rate_threshold: Option<f64>,
    /// Successes recorded, ever (slow ones included).
    pub successes: u64,
    /// Failures recorded, ever.
    pub failures: u64,
    /// Slow calls recorded, ever (successes and failures).
    pub slow_calls: u64,
    /// Permits released as ignored, ever.
    pub ignored: u64,
    /// Calls rejected because the breaker was OPEN or FORCED_OPEN.
    pub rejected_open: u64,
    /// Calls rejected because all half-open probe slots were taken.
    pub rejected_half_open: u64,
    /// Results dropped because their permit was from an older generation.
    pub late_results: u64,
    /// Results dropped because no permit of their generation could be outstanding.
    pub unexpected_results: u64,
    /// The current streak of consecutive failures.
    pub consecutive_failures: u64,
    /// Openings since the breaker last closed (drives the open-wait backoff).
    pub consecutive_opens: u64,
    /// Probes handed out in the current half-open episode.
    pub half_open_admitted: u64,
    /// Probes reported in the current half-open episode.
    pub half_open_reported: u64,
    /// The time left of an OPEN or timed FORCED_OPEN wait (`Duration::MAX` for a forced open
    /// without deadline); `None` in every other state, HALF_OPEN included (a rejected caller
    /// there gets a short hint in its rejection: see
    /// [`BreakerConfig::half_open_retry_hint`](super::BreakerConfig::half_open_retry_hint)).
    pub retry_after: Option<Duration>,
    /// `transitions[from][to]`: transitions counted per pair, indexed by `State as usize`.
    pub transitions: [[u64; 6]; 6],
    /// The clock the breaker reads.
    pub clock: ClockMode,
    /// How long timed calls took (breakers that time calls: a slow-call rule with
    /// `time_calls`), every reported call counted; `None` for breakers that do not time.
    pub call_durations: Option<crate::histogram::Durations>,
}

impl BreakerMetrics {
    /// Transitions from `from` to `to`.
    pub fn transitions_between(&self, from: State, to: State) -> u64 {
        self.transitions[from as usize][to as usize]
    }
}
