//! Permits, outcomes and rejections: the two-step protocol (acquire, then record).

use std::fmt;
use std::time::Duration;

use super::state::{GEN_MASK, MAX_HALF_OPEN_CALLS};
use super::Breaker;

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Outcome {
    /// The call succeeded.
    Success = 0,
    /// The call failed.
    Failure = 1,
    /// The call's result says nothing about the dependency's health: the permit is released and
    /// the call counts nowhere (a half-open probe slot is given back).
    Ignored = 2,
}

/// A permit as a plain value: what C, Go and Python hold between acquire and record.
///
/// It carries the generation it was issued under (results from an older generation are
/// dropped as late, invariant I3), a half-open probe's identity, and, when the breaker times
/// calls, the start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct RawPermit {
    /// The breaker generation the permit belongs to, in the low 40 bits. Above them, in bits
    /// 40..56, a half-open probe carries its number in the episode (its index + 1; 0 on every
    /// other permit), so a probe reported twice is told apart from another probe's report;
    /// bits 56..64 are always 0. A value the breaker never issued is refused
    /// ([`Recorded::Invalid`] or [`Recorded::Unexpected`]).
    pub generation: u64,
    /// When the call started (clock nanoseconds), or 0 when the breaker does not time calls.
    pub start_ns: u64,
}

/// Where a half-open probe's number sits in [`RawPermit::generation`].
const PROBE_SHIFT: u32 = 40;

impl RawPermit {
    /// The permit of probe `index` (0-based) of the half-open episode of `generation`.
    pub(crate) fn probe(generation: u64, index: u64, start_ns: u64) -> Self {
        RawPermit {
            generation: generation | (index + 1) << PROBE_SHIFT,
            start_ns,
        }
    }

    /// What the permit names: `Some((generation, None))` for an ordinary permit,
    /// `Some((generation, Some(index)))` for a half-open probe, `None` when the top bits hold
    /// what no permit carries.
    #[inline]
    pub(crate) fn identity(self) -> Option<(u64, Option<u64>)> {
        let generation = self.generation & GEN_MASK;
        match self.generation >> PROBE_SHIFT {
            0 => Some((generation, None)),
            n if n <= MAX_HALF_OPEN_CALLS => Some((generation, Some(n - 1))),
            _ => None,
        }
    }
}

/// What became of a recorded result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Counted (or, for `Ignored`, released).
    Counted,
    /// The breaker has moved to another generation since the permit was issued: dropped and
    /// counted in `late_results` (invariant I3).
    Late,
    /// The breaker is DISABLED: nothing is recorded.
    Disabled,
    /// No permit of this generation can be outstanding (recorded twice, or never acquired; in
    /// HALF_OPEN, each probe is known by its number, so a probe reported or released twice is
    /// this whatever the other probes do): dropped and counted in `unexpected_results`.
    Unexpected,
    /// Not a permit this breaker issued (a keyed raw permit naming a slot no key holds, or
    /// generation 0, which no key's permit carries; a probe number beyond `half_open_calls`,
    /// or one under a generation that was not HALF_OPEN): dropped, counted in
    /// `unexpected_results`, and nothing else changes.
    Invalid,
}

/// Why a call was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The breaker is OPEN.
    Open,
    /// The breaker is HALF_OPEN and all its probe slots are taken.
    HalfOpenFull,
    /// The breaker was forced open.
    ForcedOpen,
}

/// A rejected call, with how long until the breaker may admit again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Why.
    pub reason: RejectReason,
    /// Time until the breaker may admit a call: exact for OPEN and a timed FORCED_OPEN,
    /// [`Duration::MAX`] for an indefinite forced open; for "half-open full" a short hint to
    /// poll on ([`BreakerConfig::half_open_retry_hint`](super::BreakerConfig::half_open_retry_hint),
    /// never past the reclaim of stuck probes), since a probe may report any moment.
    pub retry_after: Duration,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.reason {
            RejectReason::Open => "circuit open",
            RejectReason::HalfOpenFull => "circuit half-open and all probe slots taken",
            RejectReason::ForcedOpen => "circuit forced open",
        };
        if self.retry_after == Duration::MAX {
            write!(f, "{what} until manually changed")
        } else {
            write!(f, "{what}; retry after {:?}", self.retry_after)
        }
    }
}

impl std::error::Error for Rejected {}

/// The error of [`Breaker::call`]: the breaker rejected the call, or the call failed.
#[derive(Debug, PartialEq, Eq)]
pub enum CallError<E> {
    /// Not run: the breaker rejected it.
    Rejected(Rejected),
    /// Run, and it returned this error (recorded as a failure).
    Failed(E),
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for CallError<E> {}

/// A permit that must be used: record it with [`success`](Self::success),
/// [`failure`](Self::failure) or [`ignore`](Self::ignore). Dropped unused it is released as
/// ignored — or as a failure when dropped by a panic — so every permit is released exactly once
/// (invariant I5).
///
/// ```
/// use surgewall::{Breaker, BreakerConfig};
///
/// let breaker = Breaker::new("db", BreakerConfig::default());
/// let permit = breaker.acquire()?;
/// // ... the call ...
/// permit.success();
/// assert_eq!(breaker.metrics().successes, 1);
/// # Ok::<(), surgewall::Rejected>(())
/// ```
#[must_use = "a permit records nothing until it is used; dropping it releases it as ignored"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    raw: RawPermit,
}

impl<'a> Permit<'a> {
    #[inline]
    pub(crate) fn new(breaker: &'a Breaker, raw: RawPermit) -> Self {
        Self { breaker, raw }
    }

    /// Takes the permit apart without running `Drop`: the caller records it.
    #[inline]
    fn into_parts(self) -> (&'a Breaker, RawPermit) {
        let parts = (self.breaker, self.raw);
        std::mem::forget(self);
        parts
    }

    /// The plain value inside.
    pub fn raw(&self) -> RawPermit {
        self.raw
    }

    /// Records a success.
    #[inline]
    pub fn success(self) -> Recorded {
        self.record(Outcome::Success)
    }

    /// Records a failure.
    pub fn failure(self) -> Recorded {
        self.record(Outcome::Failure)
    }

    /// Releases the permit without counting the call.
    pub fn ignore(self) -> Recorded {
        self.record(Outcome::Ignored)
    }

    /// Records `outcome`, timed by the breaker when it times calls.
    #[inline]
    pub fn record(self, outcome: Outcome) -> Recorded {
        let (breaker, raw) = self.into_parts();
        breaker.record_raw(raw, outcome)
    }

    /// Records `outcome` of a call that took `duration` (for slow-call detection).
    #[inline]
    pub fn record_with_duration(self, outcome: Outcome, duration: Duration) -> Recorded {
        let (breaker, raw) = self.into_parts();
        breaker.record_raw_with_duration(raw, outcome, duration)
    }
}

impl Drop for Permit<'_> {
    /// Unused: released as ignored, or as a failure while unwinding from a panic.
    fn drop(&mut self) {
        let outcome = if std::thread::panicking() {
            Outcome::Failure
        } else {
            Outcome::Ignored
        };
        self.breaker.record_raw(self.raw, outcome);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.breaker.name())
            .field("raw", &self.raw)
            .finish()
    }
}
