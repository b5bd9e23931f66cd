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
    /// What the current window holds.
    pub window: Counts,
    /// What the window held when the last episode ended (the counts that tripped it).
    pub last_window: Counts,
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
    /// Time until the breaker admits again, when it rejects now.
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
