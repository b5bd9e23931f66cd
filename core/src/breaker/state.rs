//! The breaker's states and the packed state word.
//!
//! The whole admission decision lives in one `AtomicU64`:
//!
//! ```text
//!  63                                   24 23                4  3  2   0
//! +---------------------------------------+-------------------+--+------+
//! |            generation (40)            | half-open admitted|EV|state |
//! |                                       |        (20)       |  | (3)  |
//! +---------------------------------------+-------------------+--+------+
//! ```
//!
//! * `state`: a [`State`].
//! * `EV` (evaluate-on-success): set while the window holds failures but fewer than
//!   `minimum_calls` calls, so the success that reaches the minimum takes the slow path and can
//!   trip the breaker. Clear in the common case, which keeps a success at one `fetch_add`.
//! * `half-open admitted`: probes handed out in the current HALF_OPEN episode (I1: the CAS that
//!   hands one out also checks the generation, so no episode over-admits).
//! * `generation`: bumped by every transition; a permit carries the generation it was issued
//!   under, and a result whose generation is not current is dropped as late (I3).

/// A circuit breaker state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    /// Calls pass; outcomes are recorded; the trip rules are checked.
    Closed = 0,
    /// Calls are rejected until the open wait is over.
    Open = 1,
    /// A fixed number of probe calls pass; their outcomes decide OPEN or CLOSED.
    HalfOpen = 2,
    /// Manually opened: calls are rejected until a manual transition (or the optional deadline).
    ForcedOpen = 3,
    /// Manually disabled: every call passes and nothing is recorded.
    Disabled = 4,
    /// Every call passes and outcomes are recorded, but the breaker never trips.
    MetricsOnly = 5,
}

impl State {
    /// Every state, in discriminant order (indexes the transition matrix).
    pub const ALL: [State; 6] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
        State::MetricsOnly,
    ];

    /// The state with this discriminant.
    pub fn from_u8(v: u8) -> Option<State> {
        State::ALL.get(v as usize).copied()
    }

    /// The lower-case name used in metrics labels and the admin API (`"half_open"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
            State::MetricsOnly => "metrics_only",
        }
    }

    /// Whether calls are admitted without limit in this state.
    pub fn admits_all(self) -> bool {
        matches!(self, State::Closed | State::Disabled | State::MetricsOnly)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TransitionReason {
    /// The failure rate reached its threshold.
    FailureRate = 0,
    /// The slow-call rate reached its threshold.
    SlowCallRate = 1,
    /// The consecutive-failure limit was reached.
    ConsecutiveFailures = 2,
    /// The open wait (or a forced-open deadline) ended and the first caller started probing.
    WaitOver = 3,
    /// The probes succeeded.
    ProbesSucceeded = 4,
    /// The probes failed.
    ProbesFailed = 5,
    /// A half-open episode outlived `half_open_max_duration` (unreported probes reclaimed).
    HalfOpenTimeout = 6,
    /// A manual transition (API, admin endpoint, health check or remote verdict).
    Manual = 7,
}

impl TransitionReason {
    const ALL: [TransitionReason; 8] = [
        TransitionReason::FailureRate,
        TransitionReason::SlowCallRate,
        TransitionReason::ConsecutiveFailures,
        TransitionReason::WaitOver,
        TransitionReason::ProbesSucceeded,
        TransitionReason::ProbesFailed,
        TransitionReason::HalfOpenTimeout,
        TransitionReason::Manual,
    ];

    /// The reason with this discriminant.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }

    /// A lower-case name for logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionReason::FailureRate => "failure_rate",
            TransitionReason::SlowCallRate => "slow_call_rate",
            TransitionReason::ConsecutiveFailures => "consecutive_failures",
            TransitionReason::WaitOver => "wait_over",
            TransitionReason::ProbesSucceeded => "probes_succeeded",
            TransitionReason::ProbesFailed => "probes_failed",
            TransitionReason::HalfOpenTimeout => "half_open_timeout",
            TransitionReason::Manual => "manual",
        }
    }
}

const STATE_BITS: u32 = 3;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
const EVAL_BIT: u64 = 1 << 3;
const ADMITTED_SHIFT: u32 = 4;
const ADMITTED_BITS: u32 = 20;
const ADMITTED_MASK: u64 = ((1 << ADMITTED_BITS) - 1) << ADMITTED_SHIFT;
const GEN_SHIFT: u32 = 24;

/// The largest `half_open_calls`: the word counts up to 2^20 - 1 admitted probes, the probe
/// word (see `Breaker`) counts reports in 16 bits.
pub(crate) const MAX_HALF_OPEN_CALLS: u64 = 0xFFFF;
/// Generations wrap at 2^40 (a transition a microsecond for twelve days).
pub(crate) const GEN_MASK: u64 = (1 << (64 - GEN_SHIFT)) - 1;

/// A decoded view of the state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    pub(crate) fn new(state: State, generation: u64) -> Self {
        Word(state as u64 | (generation & GEN_MASK) << GEN_SHIFT)
    }

    #[inline]
    pub(crate) fn state(self) -> State {
        // The word only ever holds valid discriminants (it is private and built by `new`).
        match self.0 & STATE_MASK {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            4 => State::Disabled,
            _ => State::MetricsOnly,
        }
    }

    #[inline]
    pub(crate) fn generation(self) -> u64 {
        self.0 >> GEN_SHIFT
    }

    #[inline]
    pub(crate) fn eval_on_success(self) -> bool {
        self.0 & EVAL_BIT != 0
    }

    pub(crate) fn with_eval(self, on: bool) -> Self {
        Word(if on {
            self.0 | EVAL_BIT
        } else {
            self.0 & !EVAL_BIT
        })
    }

    #[inline]
    pub(crate) fn admitted(self) -> u64 {
        (self.0 & ADMITTED_MASK) >> ADMITTED_SHIFT
    }

    pub(crate) fn with_admitted(self, n: u64) -> Self {
        Word(self.0 & !ADMITTED_MASK | (n << ADMITTED_SHIFT) & ADMITTED_MASK)
    }

    /// The word a transition from `self` to `to` installs: next generation, no flag, no probes.
    pub(crate) fn next(self, to: State) -> Self {
        Word::new(to, self.generation().wrapping_add(1))
    }

    /// Whether the state admits every call (CLOSED, DISABLED, METRICS_ONLY): a bit test on a
    /// constant mask rather than a match, since every acquire asks.
    #[inline(always)]
    pub(crate) fn admits_all(self) -> bool {
        const ADMITTING: u64 = 1 << State::Closed as u64
            | 1 << State::Disabled as u64
            | 1 << State::MetricsOnly as u64;
        ADMITTING >> (self.0 & STATE_MASK) & 1 != 0
    }

    /// True when a success in this word can be recorded by the fast path: an admitting state
    /// that records (CLOSED or METRICS_ONLY) with no pending evaluation.
    #[inline]
    pub(crate) fn success_fast_path(self) -> bool {
        // CLOSED = 0 and METRICS_ONLY = 5, both with the EV bit clear.
        let low = self.0 & (STATE_MASK | EVAL_BIT);
        low == State::Closed as u64 || low == State::MetricsOnly as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap() {
        let w = Word::new(State::HalfOpen, GEN_MASK)
            .with_admitted((1 << ADMITTED_BITS) - 1)
            .with_eval(true);
        assert_eq!(w.state(), State::HalfOpen);
        assert_eq!(w.generation(), GEN_MASK);
        assert_eq!(w.admitted(), (1 << ADMITTED_BITS) - 1);
        assert!(w.eval_on_success());
        let n = w.next(State::Closed);
        assert_eq!(n.generation(), 0, "generation wraps");
        assert_eq!((n.admitted(), n.eval_on_success()), (0, false));
    }

    #[test]
    fn admits_all_agrees_with_the_state() {
        for s in State::ALL {
            assert_eq!(Word::new(s, 3).admits_all(), s.admits_all(), "{s}");
        }
    }

    #[test]
    fn fast_path_only_for_recording_states_without_flag() {
        for s in State::ALL {
            let w = Word::new(s, 9);
            let expect = matches!(s, State::Closed | State::MetricsOnly);
            assert_eq!(w.success_fast_path(), expect, "{s}");
            assert!(!w.with_eval(true).success_fast_path());
        }
    }
}
