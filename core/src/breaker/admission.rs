//! Admission when a breaker does not simply admit: the OPEN wait and its end (one caller
//! moves to HALF_OPEN with the first probe), the HALF_OPEN probes and their time limit (I6).
//! Written once for the named [`Breaker`](super::Breaker) and for every key of a
//! [`KeyedBreaker`](super::keyed::KeyedBreaker), over what each keeps ([`Admit`]).

use std::time::Duration;

use super::state::Word;
use super::{BreakerConfig, RawPermit, RejectReason, Rejected, State, TransitionReason};

/// One breaker's state, as admission sees it.
pub(crate) trait Admit {
    /// The state word (Acquire).
    fn load(&self) -> Word;
    /// The transition CAS: one winner per `(state, generation)`.
    fn cas(&self, from: Word, to: Word) -> Result<(), Word>;
    /// The breaker's clock.
    fn now_ns(&self) -> u64;
    /// Time left before the deadline of the state in `w`: `None` while the transition that set
    /// it has not published it yet, `Some(Duration::MAX)` for "never".
    fn remaining(&self, w: Word, now: u64) -> Option<Duration>;
    /// The configuration.
    fn config(&self) -> &BreakerConfig;
    /// A permit of the generation in `w` (timed if the configuration times calls).
    fn permit(&self, w: Word) -> RawPermit;
    /// The permit of a probe this caller was just admitted as (its CAS installed `w`): it
    /// claims a number among the episode's free ones, which the permit carries, so each probe
    /// is reported once (a second report or release of that number is unexpected).
    fn probe_permit(&self, w: Word) -> RawPermit;
    /// Counts a rejection.
    fn reject(&self, reason: RejectReason, retry_after: Duration) -> Rejected;
    /// Bookkeeping after this caller's CAS won the transition from `from` to `to`.
    fn entered(&self, from: Word, to: Word, reason: TransitionReason, now: u64);
    /// Moves from the state and generation of `from` to `to` unless somebody already has.
    fn transition(&self, from: Word, to: State, reason: TransitionReason, now: u64) -> bool;
}

/// Admits or rejects a call given the state word `w` the caller just loaded.
#[cold]
pub(crate) fn acquire_slow(b: &impl Admit, mut w: Word) -> Result<RawPermit, Rejected> {
    loop {
        match w.state() {
            State::Closed | State::Disabled | State::MetricsOnly => return Ok(b.permit(w)),
            State::Open | State::ForcedOpen => {
                let now = b.now_ns();
                let reason = if w.state() == State::Open {
                    RejectReason::Open
                } else {
                    RejectReason::ForcedOpen
                };
                match b.remaining(w, now) {
                    Some(left) if left.is_zero() => {
                        // The wait is over: exactly one caller moves to HALF_OPEN and takes the
                        // first probe with the same CAS.
                        let next = w.next(State::HalfOpen).with_admitted(1);
                        match b.cas(w, next) {
                            Ok(()) => {
                                b.entered(w, next, TransitionReason::WaitOver, now);
                                return Ok(b.probe_permit(next));
                            }
                            Err(cur) => w = cur,
                        }
                    }
                    Some(left) => return Err(b.reject(reason, left)),
                    None => {
                        // The deadline belongs to another generation: either ours is not
                        // published yet (the wait has just begun) or our word is stale.
                        let cur = b.load();
                        if cur != w {
                            w = cur;
                            continue;
                        }
                        return Err(b.reject(reason, b.config().open_for));
                    }
                }
            }
            State::HalfOpen => {
                let now = b.now_ns();
                match b.remaining(w, now) {
                    Some(left) if left.is_zero() => {
                        // Probes never reported within half_open_max_duration: reopen (I6).
                        b.transition(w, State::Open, TransitionReason::HalfOpenTimeout, now);
                        w = b.load();
                    }
                    left => {
                        if w.admitted() < u64::from(b.config().half_open_calls) {
                            let next = w.with_admitted(w.admitted() + 1);
                            match b.cas(w, next) {
                                Ok(()) => return Ok(b.probe_permit(next)),
                                Err(cur) => w = cur,
                            }
                        } else {
                            let cur = b.load();
                            if cur != w {
                                w = cur;
                                continue;
                            }
                            // A short hint to poll on (a probe may report any moment),
                            // never past the reclaim of stuck probes.
                            let hint = half_open_hint(b.config(), left);
                            return Err(b.reject(RejectReason::HalfOpenFull, hint));
                        }
                    }
                }
            }
        }
    }
}

/// The `retry_after` of a "half-open full" rejection, given the time `left` before the
/// episode's stuck probes are reclaimed (`None` while its deadline is not published yet): the
/// configuration's [`half_open_retry_hint`](BreakerConfig::half_open_retry_hint), cut to `left`.
pub(crate) fn half_open_hint(config: &BreakerConfig, left: Option<Duration>) -> Duration {
    let hint = config.half_open_retry_hint();
    left.map_or(hint, |l| hint.min(l))
}
