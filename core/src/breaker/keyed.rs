//! Keyed circuit breakers (per endpoint, per user): see [`KeyedBreaker`].
//!
//! ## Compact state
//!
//! A named [`Breaker`](super::Breaker) is about a kilobyte (striped counters, a transition
//! matrix, window marks, name, clock...). A keyed one is a 24-byte cell beside its key in a
//! slot of a compact registry (`registry/compact.rs`), found through a 4-byte index in a hash
//! table: with `u64` keys an idle key costs a 32-byte slot plus its index at hashbrown's load
//! factor, and nothing is allocated per key. Which configuration a key uses (the template or
//! its override) follows from its slot. Everything else is shared by the whole keyed breaker:
//! the configurations, the clock, the event ring, the jitter generator, and the aggregate
//! counters (transitions per `(from, to)`, rejections, ignored, late and unexpected results,
//! failures).
//!
//! The cell's three words; the last two change meaning with the state, since a CLOSED key has
//! no deadline or probes and an OPEN one no window:
//!
//! ```text
//! word      [generation 40 | half-open admitted 20 | EV 1 | state 3]   the named breaker's word
//! deadline  OPEN, HALF_OPEN, FORCED_OPEN: [generation tag 16 | µs 48]  as in the named breaker
//!           CLOSED: the idle mark of sweeps [generation tag 16 | long 1 | activity 15 |
//!             since 32: ms, or s once long]
//! window    CLOSED, METRICS_ONLY, DISABLED:
//!             [0 | epoch 7 | consecutive failures 8 | previous bucket 24 | current bucket 24]
//!             (a bucket: [slow 8 | failures 8 | calls 8])
//!           OPEN, HALF_OPEN, FORCED_OPEN (the probe word):
//!             [1 | generation tag 15 | opens 12 | taken 14 | reported 14 | failures 4 | slow 4]
//!             (`taken`, `reported`: the episode's probe numbers, see `breaker/probes.rs`)
//! ```
//!
//! The top bit of the window word says which layout it holds. A transition replaces the word
//! after its CAS with a Release CAS (never over a word a caller of the new generation already
//! started, and never once the cell has moved past its generation: see `publish` in
//! `breaker/mod.rs`, which also publishes deadlines), and every writer loads it with Acquire and checks the state word's generation
//! before its own CAS, so a stale writer never writes over the next state's word; a writer of
//! the new generation that finds the other layout starts from an empty word of its own.
//!
//! The state machine is the named breaker's (DESIGN.md §3): the same state word and
//! transition CAS (one winner per generation), the same deadline tags, the same rules
//! (`open_wait`, `probe_verdict` and `rate_verdict` in `breaker/mod.rs` are shared
//! functions), the same generation fence, and the same admission out of OPEN and HALF_OPEN
//! (`breaker/admission.rs`, generic over the named breaker and a key's cell). Recording,
//! transitions and manual control are written over the cell here: their counters and window
//! differ (a packed two-bucket word against striped totals).
//!
//! ## The approximate window
//!
//! The window is two buckets packed in one word, so it is coarser than the named breaker's:
//!
//! * a **time window** of `duration` is two buckets of `duration / 2`; the window is the
//!   current bucket plus the previous one, so it reaches back between `duration / 2` and
//!   `duration` (the `buckets` of the configuration are not used); buckets are told apart by
//!   a 7-bit epoch, and by the idle mark of sweeps, which empties a window two buckets old
//!   (see `Cell::expired`); a key never swept that is idle for a multiple of 64 windows sees
//!   its old counts again;
//! * a **count window** of `calls` is two buckets of `ceil(calls / 2)` calls; the window is the
//!   current bucket plus the previous full one: between `ceil(calls / 2)` and
//!   `2 * ceil(calls / 2)` calls;
//! * a bucket counts up to 255 calls; a time bucket that fills up halves both buckets
//!   (rounding failures and slow calls up), which keeps the rates and at least 128 calls, so
//!   `minimum_calls` may be at most 128 and a count window at most 510 calls;
//! * `consecutive_failures` may be at most 255 (an 8-bit streak) and `half_open_calls` at
//!   most 14: each probe has a number, and the probe word holds a bit per number for "out"
//!   and one for "reported" beside the counts, so that a probe reported twice is refused
//!   (one CAS settles a number and counts its report). More would need a wider cell (8 bytes
//!   per key more, a 40-byte slot with a `u64` key, no longer a divisor of a cache line).
//!
//! [`KeyedBreakerBuilder::build`] checks these limits, naming the field.
//!
//! ## Eviction
//!
//! Only a CLOSED key is ever evicted: OPEN, HALF_OPEN, FORCED_OPEN (and the manual DISABLED and
//! METRICS_ONLY) keys are busy. Idleness needs no clock on the hot path: each sweep folds the
//! window word into a 16-bit activity stamp and keeps it, with the sweep's time, in the
//! CLOSED-only deadline word; an unchanged stamp means no call was recorded in between. The
//! eviction commits with one CAS on the state word that bumps the generation, so it fails if
//! a call tripped the breaker meanwhile, and every permit issued before it is fenced: its
//! result is dropped as late (I3). A CLOSED key does not count its calls in flight (that
//! would cost every call a second RMW), so a key evicted with permits out drops those
//! results as late. Cells are reused by new keys; the generation carries on, so an old permit
//! can never match the new key's generation. One race is left, and bounded: a success whose
//! recorder checked the generation just before the eviction, then stalled through the
//! eviction and the cell's reuse, and finds the window word as empty as the new key's fresh
//! one (the evicted key had recorded nothing), counts once in the new key's window, as one
//! more call of the new key would.

use std::fmt;
use std::hash::Hash;
use std::time::Duration;

use super::{
    admission, deadline_after, deadline_left, longest_wait, open_wait, probe_verdict, rate_verdict,
    Counts, Outcome, RawPermit, Recorded, RejectReason, Rejected, State, TransitionError,
    TransitionReason, DEADLINE_NEVER,
};
use crate::breaker::probes::{self, Settle};
use crate::breaker::state::Word;
use crate::breaker::{BreakerConfig, Window};
use crate::clock::{duration_ns, Clock, ClockMode};
use crate::error::ConfigError;
use crate::events::{Event, EventKind, EventRing};
use crate::registry::arena::Zeroable;
use crate::registry::compact::{self, CompactRegistry};
use crate::registry::ledger::Options;
use crate::registry::{Entry, RegistryFull, RegistryStats};
use crate::rng::{entropy_seed, SplitMix};
use crate::stripe::Striped;
use crate::sync::{AtomicU64, Ordering};

// Striped lanes of the shared counters.
const REJECTED_OPEN: usize = 0;
const REJECTED_HALF_OPEN: usize = 1;
const IGNORED: usize = 2;
const LATE: usize = 3;
const UNEXPECTED: usize = 4;
const FAILURES: usize = 5;
const LANES: usize = 6;

/// The largest `half_open_calls` of a keyed breaker (a bit per probe number, twice, in the
/// cell's probe word).
pub const MAX_KEYED_HALF_OPEN_CALLS: u32 = 14;
/// The largest `minimum_calls` of a keyed breaker (a saturated bucket keeps 128 calls).
pub const MAX_KEYED_MINIMUM_CALLS: u32 = 128;
/// The largest count window of a keyed breaker (two buckets of 255 calls).
pub const MAX_KEYED_COUNT_WINDOW: u32 = 510;
/// The largest `consecutive_failures` of a keyed breaker (an 8-bit streak).
pub const MAX_KEYED_CONSECUTIVE_FAILURES: u32 = 255;

// ---- the window word ----------------------------------------------------------------------
//
// Bit 63 says which layout the word holds: 0 the window (CLOSED, METRICS_ONLY, DISABLED),
// 1 the probe word (OPEN, HALF_OPEN, FORCED_OPEN). A writer that finds the other layout for
// its generation (the transition has not replaced it yet) starts from an empty word of its
// own layout; the transition then leaves the word alone.

const FIELD_BITS: u32 = 8;
const FIELD_MAX: u64 = (1 << FIELD_BITS) - 1;
const STREAK_SHIFT: u32 = 48;
const EPOCH_SHIFT: u32 = 56;
const EPOCH_MASK: u64 = (1 << 7) - 1;
const PROBE_BIT: u64 = 1 << 63;
/// The two buckets of a window word.
const BUCKETS_MASK: u64 = (1 << STREAK_SHIFT) - 1;

/// One bucket of the packed window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bucket {
    calls: u64,
    failures: u64,
    slow: u64,
}

impl Bucket {
    fn unpack(bits: u64) -> Self {
        Bucket {
            calls: bits & FIELD_MAX,
            failures: (bits >> FIELD_BITS) & FIELD_MAX,
            slow: (bits >> (2 * FIELD_BITS)) & FIELD_MAX,
        }
    }

    fn pack(self) -> u64 {
        self.calls | self.failures << FIELD_BITS | self.slow << (2 * FIELD_BITS)
    }

    /// Halves the counts, rounding failures and slow calls up so that none disappears.
    fn halve(self) -> Self {
        Bucket {
            calls: self.calls.div_ceil(2),
            failures: self.failures.div_ceil(2),
            slow: self.slow.div_ceil(2),
        }
    }
}

/// The window word as a value: `[0 | epoch 7 | streak 8 | previous 24 | current 24]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct WindowWord {
    epoch: u64,
    streak: u64,
    prev: Bucket,
    cur: Bucket,
}

impl WindowWord {
    /// The window in `w`; a probe-layout word reads as an empty window.
    fn unpack(w: u64) -> Self {
        if w & PROBE_BIT != 0 {
            return WindowWord::default();
        }
        WindowWord {
            epoch: (w >> EPOCH_SHIFT) & EPOCH_MASK,
            streak: (w >> STREAK_SHIFT) & FIELD_MAX,
            prev: Bucket::unpack(w >> (3 * FIELD_BITS)),
            cur: Bucket::unpack(w),
        }
    }

    fn pack(self) -> u64 {
        self.epoch << EPOCH_SHIFT
            | self.streak << STREAK_SHIFT
            | self.prev.pack() << (3 * FIELD_BITS)
            | self.cur.pack()
    }
}

/// How a configuration's window maps onto the two buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Buckets {
    /// Buckets of `width_ns`; the epoch is the bucket number modulo 128.
    Time { width_ns: u64 },
    /// Buckets of `half` calls.
    Count { half: u64 },
}

/// What recording one call did to the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Added {
    /// A bucket rolled: the rates may have moved without a failure, so the rules run again.
    rolled: bool,
    /// The consecutive-failure streak after the call.
    streak: u64,
}

impl Buckets {
    fn of(window: Window) -> Self {
        match window {
            Window::Time { duration, .. } => Buckets::Time {
                width_ns: (duration_ns(duration) / 2).max(1),
            },
            Window::Count { calls } => Buckets::Count {
                half: u64::from(calls).div_ceil(2),
            },
        }
    }

    /// The window word after one more call in epoch `now` (see [`Prepared::epoch`]; 0 for
    /// count windows). A success resets the streak, a failure adds to it, saturating at 255.
    #[inline(always)]
    fn add(self, w: u64, now: u64, failed: bool, slow: bool) -> (u64, Added) {
        let mut x = WindowWord::unpack(w);
        let mut rolled = false;
        match self {
            Buckets::Time { .. } => {
                if now != x.epoch {
                    x.prev = if (x.epoch + 1) & EPOCH_MASK == now {
                        x.cur
                    } else {
                        Bucket::default()
                    };
                    x.cur = Bucket::default();
                    x.epoch = now;
                    rolled = true;
                }
            }
            Buckets::Count { half } => {
                if x.cur.calls >= half {
                    x.prev = x.cur;
                    x.cur = Bucket::default();
                    rolled = true;
                }
            }
        }
        if x.cur.calls >= FIELD_MAX {
            x.cur = x.cur.halve();
            x.prev = x.prev.halve();
        }
        x.cur.calls += 1;
        x.cur.failures += u64::from(failed);
        x.cur.slow += u64::from(slow);
        x.streak = if failed {
            (x.streak + 1).min(FIELD_MAX)
        } else {
            0
        };
        (
            x.pack(),
            Added {
                rolled,
                streak: x.streak,
            },
        )
    }

    /// The window's counts in epoch `now`. Reads only.
    fn counts(self, w: u64, now: u64) -> Counts {
        let x = WindowWord::unpack(w);
        let (a, b) = match self {
            Buckets::Time { .. } => {
                if now == x.epoch {
                    (x.cur, x.prev)
                } else if (x.epoch + 1) & EPOCH_MASK == now {
                    (x.cur, Bucket::default())
                } else {
                    (Bucket::default(), Bucket::default())
                }
            }
            Buckets::Count { .. } => (x.cur, x.prev),
        };
        Counts {
            calls: a.calls + b.calls,
            failures: a.failures + b.failures,
            slow: a.slow + b.slow,
        }
    }
}

// ---- the probe word -----------------------------------------------------------------------

const TAG_SHIFT: u32 = 48;
const TAG_MASK: u64 = 0x7FFF;
const P12: u64 = (1 << 12) - 1;
const P14: u64 = (1 << 14) - 1;
const P4: u64 = (1 << 4) - 1;
const OPENS_SHIFT: u32 = 36;
const TAKEN_SHIFT: u32 = 22;
const REPORTED_SHIFT: u32 = 8;
const FAILURES_SHIFT: u32 = 4;

/// The 16-bit generation tag of deadline and idle-mark words.
fn tag(generation: u64) -> u64 {
    (generation & 0xFFFF) << TAG_SHIFT
}

fn tag_matches(word: u64, generation: u64) -> bool {
    word >> TAG_SHIFT == generation & 0xFFFF
}

/// A half-open episode's probes as the probe word holds them: which numbers are out or
/// reported (bit masks), and how many reports were failures and slow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Probes {
    taken: u64,
    reported: u64,
    failures: u64,
    slow: u64,
}

/// `[1 | tag 15 | opens 12 | taken 14 | reported 14 | failures 4 | slow 4]`.
fn pack_probe(generation: u64, opens: u64, p: Probes) -> u64 {
    PROBE_BIT
        | (generation & TAG_MASK) << TAG_SHIFT
        | opens.min(P12) << OPENS_SHIFT
        | p.taken << TAKEN_SHIFT
        | p.reported << REPORTED_SHIFT
        | p.failures << FAILURES_SHIFT
        | p.slow
}

/// The probes of `generation` in `p` (none for a word of another generation or layout: the
/// first probe of an episode resets it).
fn probes_of(p: u64, generation: u64) -> Probes {
    if p & PROBE_BIT == 0 || (p >> TAG_SHIFT) & TAG_MASK != generation & TAG_MASK {
        return Probes::default();
    }
    Probes {
        taken: (p >> TAKEN_SHIFT) & P14,
        reported: (p >> REPORTED_SHIFT) & P14,
        failures: (p >> FAILURES_SHIFT) & P4,
        slow: p & P4,
    }
}

/// The openings counted in `p` (0 in a window-layout word).
fn probe_opens(p: u64) -> u64 {
    if p & PROBE_BIT == 0 {
        0
    } else {
        (p >> OPENS_SHIFT) & P12
    }
}

/// Whether `p` is a probe word of `generation` or a later one (15-bit tags, compared within
/// half their range).
fn probe_is_current(p: u64, generation: u64) -> bool {
    let behind = generation.wrapping_sub((p >> TAG_SHIFT) & TAG_MASK) & TAG_MASK;
    p & PROBE_BIT != 0 && (behind == 0 || behind >= 0x4000)
}

// ---- the idle mark ------------------------------------------------------------------------

/// A 15-bit stamp of the window word: it changes with every recorded call (up to a 1 in 32768
/// collision between two sweeps).
fn activity(window: u64) -> u64 {
    (window ^ window >> 16 ^ window >> 32 ^ window >> 48) & STAMP_MASK
}

/// The idle mark (a CLOSED cell's deadline word): `[generation tag 16 | long 1 | activity 15 |
/// since 32]`, `since` in milliseconds, or in seconds once `long` is set: a sweep that finds
/// a key idle for [`LONG_IDLE_MS`] switches to seconds (136 years) before milliseconds wrap.
const STAMP_MASK: u64 = 0x7FFF;
const LONG_MARK: u64 = 1 << 47;
/// 2^30 ms, 12.4 days: sweeps at least every 37 days (2^32 - 2^30 ms) see every idle key
/// switch to seconds before its milliseconds wrap.
const LONG_IDLE_MS: u64 = 1 << 30;

/// The word of a cell no key holds (evicted): CLOSED with the evaluate-on-success flag and a
/// half-open count of 1, a pair no key's word ever has (the count is 0 outside HALF_OPEN). The
/// flag sends every result of its generation (only a forged permit can carry it: no permit is
/// issued after the eviction) off the success fast path, to the check in `record_slow`.
fn vacant(w: Word) -> Word {
    w.with_eval(true).with_admitted(1)
}

/// Whether `w` is the word of a cell no key holds (see [`vacant`]).
fn is_vacant(w: Word) -> bool {
    w.state() == State::Closed && w.admitted() != 0
}

/// One key's state (24 bytes; see the module docs). All zero, it is a CLOSED breaker of
/// generation 0 with an empty window: a vacant cell.
pub(crate) struct Cell {
    word: AtomicU64,
    deadline: AtomicU64,
    window: AtomicU64,
}

// SAFETY: three atomic integers.
unsafe impl Zeroable for Cell {
    fn zeroed() -> Self {
        Cell {
            word: AtomicU64::new(0),
            deadline: AtomicU64::new(0),
            window: AtomicU64::new(0),
        }
    }
}

impl compact::Cell for Cell {
    /// Readies a fresh or reused cell for a new key, one generation on: permits of the key it
    /// served before stay fenced as late, and a cell that never had a key (generation 0)
    /// matches no permit.
    fn renew(&self, _class: u32) {
        // Relaxed: the slot reaches other threads through the table shard's lock.
        let old = Word(self.word.load(Ordering::Relaxed));
        // A cell that never had a key starts at a generation of its own (1 plus 12 bits of
        // its address), not 1 like every other fresh cell: a raw permit moved to another
        // key's slot then finds another generation and is dropped as late, instead of being
        // counted on that key (issue 15; the C ABI refuses it outright, its tokens carry the
        // slot). Reused cells go on from their own generation.
        let spread = if old.generation() == 0 {
            (self as *const Cell as u64 >> 5).wrapping_mul(0x9E37_79B9) & 0xFFF
        } else {
            0
        };
        let w = Word::new(State::Closed, old.generation() + 1 + spread);
        self.word.store(w.0, Ordering::Relaxed);
        self.window.store(0, Ordering::Relaxed);
        // A past generation's tag: no deadline of a coming OPEN episode can be mistaken for
        // it, and the first sweep sets the idle mark.
        self.deadline
            .store(tag(w.generation().wrapping_sub(1)), Ordering::Relaxed);
    }
}

impl Cell {
    #[inline]
    fn load(&self) -> Word {
        // Acquire pairs with the AcqRel CAS of transitions, as in the named breaker: a caller
        // that sees a generation sees what the transition published before it.
        Word(self.word.load(Ordering::Acquire))
    }

    #[inline]
    fn cas(&self, from: Word, to: Word) -> Result<(), Word> {
        // AcqRel: the winner publishes what it prepared before the CAS and sees what the
        // previous transition published.
        self.word
            .compare_exchange(from.0, to.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(Word)
    }

    /// Time left before the deadline of the state in `w` (`None`: not published yet), whose
    /// waits are at most `longest` (see `deadline_left`).
    fn remaining(&self, w: Word, now: u64, longest: Duration) -> Option<Duration> {
        // Acquire pairs with the Release store of the transition that set the deadline.
        let d = self.deadline.load(Ordering::Acquire);
        if !tag_matches(d, w.generation()) {
            return None;
        }
        let us = d & DEADLINE_NEVER;
        if us == DEADLINE_NEVER {
            return Some(Duration::MAX);
        }
        Some(deadline_left(us, now, longest))
    }

    /// Adds one call of `generation` at `now_ns` (in `epoch`, see [`Prepared::epoch`]) to the
    /// window; `None` once the generation is gone (the result is then late).
    #[inline(always)]
    fn count(
        &self,
        generation: u64,
        buckets: Buckets,
        now_ns: u64,
        epoch: u64,
        failed: bool,
        slow: bool,
    ) -> Option<Added> {
        // Acquire: a word a transition stored (with Release, after its CAS) comes with that
        // transition's generation, so the check below sees it and this stale call stops
        // instead of writing over the new state's word.
        let mut v = self.window.load(Ordering::Acquire);
        loop {
            if self.load().generation() != generation {
                return None;
            }
            let (next, added) = buckets.add(
                self.current(v, generation, buckets, now_ns),
                epoch,
                failed,
                slow,
            );
            // Relaxed on success: the window carries only itself; the CAS keeps every count.
            match self
                .window
                .compare_exchange_weak(v, next, Ordering::Relaxed, Ordering::Acquire)
            {
                Ok(_) => return Some(added),
                Err(cur) => v = cur,
            }
        }
    }

    /// The window word `v` of `generation` as it stands at `now_ns`: with its buckets emptied
    /// when the idle mark says they are two buckets old or more (see `expired`).
    #[inline(always)]
    fn current(&self, v: u64, generation: u64, buckets: Buckets, now_ns: u64) -> u64 {
        match buckets {
            Buckets::Time { width_ns } if self.expired(v, generation, width_ns, now_ns) => {
                let x = WindowWord::unpack(v);
                // An epoch half the cycle away: no bucket of it is read, the next call rolls.
                WindowWord {
                    epoch: (x.epoch + 64) & EPOCH_MASK,
                    streak: x.streak,
                    ..WindowWord::default()
                }
                .pack()
            }
            _ => v,
        }
    }

    /// Whether the time window in `v` (of `generation`) is at least two buckets old at `now_ns`,
    /// by the idle mark. The window's epoch is its bucket number modulo 128, so after exactly
    /// 64 windows of silence (or 64 and a half) it reads as current again, and its old counts
    /// came back (issue 15). A sweep's idle mark tells: a mark whose activity stamp is the
    /// window's (no call since the sweep that set it) says the window's last call came before
    /// `since`, so a mark two buckets old means an empty window. The stamp comparison makes
    /// the reading safe against a racing call (its new word has another stamp) and needs no
    /// write on the hot path. Keys of a registry never swept (no agent, no `sweep` calls) have
    /// no mark and still read an old window after a multiple of 64 windows of silence; so does
    /// a key whose stamp collides (1 in 32 768). Sweep times must be on the breaker's clock:
    /// a mark ahead of it says nothing, one from a clock behind it empties windows early.
    #[inline(always)]
    fn expired(&self, v: u64, generation: u64, width_ns: u64, now_ns: u64) -> bool {
        if v & BUCKETS_MASK == 0 {
            return false; // no calls in either bucket
        }
        // Relaxed: a mark is only believed when its stamp is this very word's.
        let d = self.deadline.load(Ordering::Relaxed);
        if !tag_matches(d, generation) || (d >> 32) & STAMP_MASK != activity(v) {
            return false; // no mark of this episode, or calls since the mark
        }
        let since = d & 0xFFFF_FFFF;
        let (now, unit) = if d & LONG_MARK == 0 {
            (now_ns / 1_000_000, 1_000_000)
        } else {
            (now_ns / 1_000_000_000, 1_000_000_000)
        };
        let idle = (now & 0xFFFF_FFFF).wrapping_sub(since) & 0xFFFF_FFFF;
        // A mark ahead of now (a sweep given a time beyond the clock) says nothing.
        idle < 1 << 31 && idle.saturating_mul(unit) >= width_ns.saturating_mul(2)
    }

    /// The window's counts at `now_ns` (reads only).
    fn window_counts(&self, generation: u64, prepared: &Prepared, now_ns: u64) -> Counts {
        let v = self.window.load(Ordering::Acquire);
        prepared.buckets.counts(
            self.current(v, generation, prepared.buckets, now_ns),
            prepared.epoch(now_ns),
        )
    }

    /// Replaces the window word after a transition into `generation`, unless a caller of the
    /// new generation has already started it (`keep` says which words are already right) or
    /// the cell has moved past `generation` (a later transition's word is never replaced by
    /// an earlier one's: see [`publish`](super::publish)).
    fn replace_window(&self, generation: u64, keep: impl Fn(u64) -> bool, new: u64) {
        super::publish(&self.word, &self.window, generation, keep, new);
    }

    /// Publishes the deadline of the transition into `generation`, unless the cell has moved
    /// past it (see [`publish`](super::publish)).
    /// Returns whether it wrote.
    fn publish_deadline(&self, generation: u64, deadline: u64) -> bool {
        super::publish(&self.word, &self.deadline, generation, |_| false, deadline)
    }
}

/// A configuration prepared for the cells that use it.
struct Prepared {
    config: BreakerConfig,
    buckets: Buckets,
    /// The bucket number of the last epoch computed, so that the hot path checks it with a
    /// multiplication instead of dividing the time by the width.
    bucket: AtomicU64,
}

impl Prepared {
    /// The epoch (bucket number modulo 128) of time windows at `now_ns`; 0 for count windows.
    #[inline]
    fn epoch(&self, now_ns: u64) -> u64 {
        let Buckets::Time { width_ns } = self.buckets else {
            return 0;
        };
        // Relaxed: a cache of a pure function of the time; a stale value fails the check.
        let n = self.bucket.load(Ordering::Relaxed);
        let start = n.wrapping_mul(width_ns);
        if now_ns >= start && now_ns - start < width_ns {
            return n & EPOCH_MASK;
        }
        let n = now_ns / width_ns;
        self.bucket.store(n, Ordering::Relaxed);
        n & EPOCH_MASK
    }
}

impl Entry for Cell {
    fn idle_since(&self, now_ns: u64) -> Option<u64> {
        let cell = self;
        let w = cell.load();
        if w.state() != State::Closed {
            return None; // OPEN, HALF_OPEN, FORCED_OPEN and the manual states are busy
        }
        let stamp = activity(cell.window.load(Ordering::Relaxed));
        // Acquire: if this is a deadline stored by a transition since `w`, the word read
        // below shows that transition and the mark is left alone.
        let d = cell.deadline.load(Ordering::Acquire);
        if cell.load() != w {
            return None;
        }
        if tag_matches(d, w.generation()) && (d >> 32) & STAMP_MASK == stamp {
            let since = d & 0xFFFF_FFFF;
            if d & LONG_MARK == 0 {
                let now_ms = now_ns / 1_000_000;
                let idle_ms = (now_ms & 0xFFFF_FFFF).wrapping_sub(since) & 0xFFFF_FFFF;
                if idle_ms >= LONG_IDLE_MS {
                    // Idle for 12 days: before 32 bits of milliseconds wrap (49.7 days, after
                    // which a key idle that long was never evicted, issue 15), count in
                    // seconds, rounded up so the key is never evicted early. A CAS: a
                    // transition's deadline is never overwritten.
                    let since_s = (now_ms - idle_ms).div_ceil(1000) & 0xFFFF_FFFF;
                    let long = d & !0xFFFF_FFFF | LONG_MARK | since_s;
                    let _ = cell.deadline.compare_exchange(
                        d,
                        long,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                return Some(now_ns.saturating_sub(idle_ms * 1_000_000));
            }
            let now_s = now_ns / 1_000_000_000;
            let idle_s = (now_s & 0xFFFF_FFFF).wrapping_sub(since) & 0xFFFF_FFFF;
            return Some(now_ns.saturating_sub(idle_s * 1_000_000_000));
        }
        // Used since the last sweep (or first look): idle from now on. A CAS, so a deadline
        // stored by a transition that raced this sweep is never overwritten.
        let mark = tag(w.generation()) | stamp << 32 | (now_ns / 1_000_000) & 0xFFFF_FFFF;
        let _ = cell
            .deadline
            .compare_exchange(d, mark, Ordering::Relaxed, Ordering::Relaxed);
        Some(now_ns)
    }

    fn try_evict(&self) -> bool {
        let w = self.load();
        // One CAS commits: it fails if a call tripped the breaker (or anything else moved the
        // word) since the sweep looked, and the new generation fences every permit out. The
        // vacant mark (see `vacant`) makes a forged permit of the new generation invalid.
        w.state() == State::Closed && self.cas(w, vacant(w.next(State::Closed))).is_ok()
    }
}

/// Why a keyed call was not admitted.
///
/// ```
/// use surgewall::breaker::keyed::{KeyedBreaker, KeyedRejected};
/// use surgewall::{BreakerConfig, RejectReason};
///
/// let endpoints = KeyedBreaker::<u64>::builder(BreakerConfig::default()).max_keys(1).build()?;
/// endpoints.force_open(&1, None)?;
/// match endpoints.try_acquire(&1).unwrap_err() {
///     KeyedRejected::Rejected(r) => assert_eq!(r.reason, RejectReason::ForcedOpen),
///     other => panic!("{other}"),
/// }
/// assert!(matches!(endpoints.try_acquire(&2), Err(KeyedRejected::TooManyKeys(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyedRejected {
    /// The key's breaker rejected the call (OPEN, HALF_OPEN full, FORCED_OPEN).
    Rejected(Rejected),
    /// The key is new and the registry is at its key cap (overflow policy: reject).
    TooManyKeys(RegistryFull),
}

impl fmt::Display for KeyedRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedRejected::Rejected(r) => r.fmt(f),
            KeyedRejected::TooManyKeys(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for KeyedRejected {}

impl From<RegistryFull> for KeyedRejected {
    fn from(e: RegistryFull) -> Self {
        KeyedRejected::TooManyKeys(e)
    }
}

/// A keyed permit as a plain value (for bindings): record it with exactly one
/// [`KeyedBreaker::record_raw`]. It stays safe to record after its key was evicted (the result
/// is dropped as late).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct KeyedRawPermit {
    /// The key's slot (opaque).
    pub slot: u32,
    /// The generation and start time, as in a named breaker's permit.
    pub inner: RawPermit,
}

/// A keyed permit: record it with [`success`](Self::success), [`failure`](Self::failure) or
/// [`ignore`](Self::ignore); dropped unused it is released as ignored (as a failure while
/// unwinding from a panic).
#[must_use = "a permit records nothing until it is used; dropping it releases it as ignored"]
pub struct KeyedPermit<'a, K: Eq + Hash + Clone + Send + Sync + 'static> {
    owner: &'a KeyedBreaker<K>,
    raw: KeyedRawPermit,
    // The key's cell and configuration, found at acquire: recording needs no lookup. Cells
    // never move or go away while the keyed breaker lives (evicted ones are reused, and the
    // generation fences this permit then).
    cell: &'a Cell,
    prepared: &'a Prepared,
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> KeyedPermit<'_, K> {
    /// The plain value inside.
    pub fn raw(&self) -> KeyedRawPermit {
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

    /// Records `outcome`.
    #[inline]
    pub fn record(self, outcome: Outcome) -> Recorded {
        let (owner, raw, cell, prepared) = (self.owner, self.raw, self.cell, self.prepared);
        std::mem::forget(self);
        owner.record_in(cell, prepared, raw.inner, outcome)
    }

    /// Records `outcome` of a call that took `duration` (slow-call detection).
    pub fn record_with_duration(self, outcome: Outcome, duration: Duration) -> Recorded {
        let (owner, raw) = (self.owner, self.raw);
        std::mem::forget(self);
        owner.record_raw_with_duration(raw, outcome, duration)
    }
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> Drop for KeyedPermit<'_, K> {
    fn drop(&mut self) {
        let outcome = if std::thread::panicking() {
            Outcome::Failure
        } else {
            Outcome::Ignored
        };
        self.owner
            .record_in(self.cell, self.prepared, self.raw.inner, outcome);
    }
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> fmt::Debug for KeyedPermit<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedPermit")
            .field("raw", &self.raw)
            .finish()
    }
}

/// One key's breaker, as seen by [`KeyedBreaker::get`] and [`KeyedBreaker::for_each`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySnapshot {
    /// The state.
    pub state: State,
    /// The generation (bumped by every transition).
    pub generation: u64,
    /// The episode's window: the sliding window in CLOSED and METRICS_ONLY, the probes that
    /// reported in HALF_OPEN, zero otherwise.
    pub window: Counts,
    /// `minimum_calls` of the key's configuration (see [`failure_rate`](Self::failure_rate)).
    pub minimum_calls: u64,
    /// Consecutive failures (CLOSED).
    pub consecutive_failures: u64,
    /// Consecutive openings (OPEN, HALF_OPEN, FORCED_OPEN).
    pub consecutive_opens: u64,
    /// The time left of an OPEN or timed FORCED_OPEN wait (`Duration::MAX` without deadline),
    /// `None` in every other state, HALF_OPEN included (as [`Breaker::retry_after`](
    /// super::Breaker::retry_after)).
    pub retry_after: Option<Duration>,
}

impl KeySnapshot {
    /// Whether the window holds enough calls for its rates: `minimum_calls` in CLOSED and
    /// METRICS_ONLY, one reported probe in HALF_OPEN, never in the states without a window.
    fn judged(&self) -> bool {
        match self.state {
            State::Closed | State::MetricsOnly => self.window.judged(self.minimum_calls),
            State::HalfOpen => self.window.judged(1),
            State::Open | State::ForcedOpen | State::Disabled => false,
        }
    }

    /// The window's failure rate, or `None` ("not enough data") while the window holds too
    /// few calls to be judged (the rule of [`BreakerMetrics::failure_rate`](
    /// super::BreakerMetrics::failure_rate)).
    ///
    /// ```
    /// use surgewall::breaker::keyed::KeyedBreaker;
    /// use surgewall::BreakerConfig;
    /// let config = BreakerConfig::builder().failure_rate(0.9).minimum_calls(2).build()?;
    /// let b = KeyedBreaker::<u64>::builder(config).build()?;
    /// b.try_acquire(&1)?.failure();
    /// assert_eq!(b.get(&1).unwrap().failure_rate(), None);
    /// b.try_acquire(&1)?.success();
    /// assert_eq!(b.get(&1).unwrap().failure_rate(), Some(0.5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failure_rate(&self) -> Option<f64> {
        self.judged().then(|| self.window.failure_rate())
    }

    /// The window's slow-call rate, absent by the rule of [`failure_rate`](Self::failure_rate).
    pub fn slow_call_rate(&self) -> Option<f64> {
        self.judged().then(|| self.window.slow_rate())
    }
}

/// Counters of a keyed breaker, over all its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedBreakerMetrics {
    /// Transitions counted per `(from, to)`, indexed by the states' discriminants.
    pub transitions: [[u64; 6]; 6],
    /// Calls rejected by OPEN or FORCED_OPEN keys.
    pub rejected_open: u64,
    /// Calls rejected by HALF_OPEN keys whose probes were all out.
    pub rejected_half_open: u64,
    /// Permits released as ignored.
    pub ignored: u64,
    /// Results dropped because their key moved on (or was evicted) since the permit.
    pub late_results: u64,
    /// Results no permit of their generation can explain (recorded twice, never acquired).
    pub unexpected_results: u64,
    /// Failures recorded.
    pub failures: u64,
    /// The registry's counters (keys, created, evicted, overflowed, refused new keys).
    pub registry: RegistryStats,
    /// The clock's mode.
    pub clock: ClockMode,
}

/// What is shared by every key.
struct Shared {
    clock: Clock,
    events: EventRing,
    counters: Striped<LANES>,
    transitions: [[AtomicU64; 6]; 6],
    rng: SplitMix,
    id: u64,
}

/// Circuit breakers by key (an endpoint, a user), each built from a template
/// [`BreakerConfig`] or a per-key override, in 24 bytes of state per key.
///
/// ```
/// use std::time::Duration;
/// use surgewall::breaker::keyed::KeyedBreaker;
/// use surgewall::clock::Clock;
/// use surgewall::{BreakerConfig, State};
///
/// let (clock, time) = Clock::mock();
/// let template = BreakerConfig::builder()
///     .consecutive_failures(2)
///     .open_for(Duration::from_secs(1))
///     .half_open_calls(1)
///     .build()?;
/// let endpoints = KeyedBreaker::<&str>::builder(template)
///     .max_keys(10_000)
///     .idle_ttl(Duration::from_secs(600))
///     .clock(clock)
///     .build()?;
///
/// for _ in 0..2 {
///     endpoints.try_acquire(&"/search")?.failure();
/// }
/// assert_eq!(endpoints.state(&"/search"), Some(State::Open));
/// assert!(endpoints.try_acquire(&"/cart").is_ok()); // other keys are unaffected
/// time.advance(Duration::from_secs(1));
/// endpoints.try_acquire(&"/search")?.success();     // the probe
/// assert_eq!(endpoints.state(&"/search"), Some(State::Closed));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeyedBreaker<K: Eq + Hash + Clone + Send + Sync + 'static> {
    registry: CompactRegistry<K, Cell>,
    /// The template first, then the per-key configurations (by class).
    configs: Box<[Prepared]>,
    shared: Shared,
}

/// Builds a [`KeyedBreaker`]; [`build`](Self::build) checks that every configuration fits the
/// compact layout.
pub struct KeyedBreakerBuilder<K> {
    template: BreakerConfig,
    overrides: Vec<(K, BreakerConfig)>,
    options: Options<K>,
    clock: Clock,
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> KeyedBreakerBuilder<K> {
    crate::registry::ledger::option_setters!();

    /// Use `config` instead of the template for `key`.
    pub fn override_key(mut self, key: K, config: BreakerConfig) -> Self {
        self.overrides.push((key, config));
        self
    }
    /// The clock (default: [`Clock::coarse`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
    /// The ring transitions and evictions are published to (default: the process-wide
    /// [`default_events`](super::default_events)).
    pub fn events(mut self, ring: EventRing) -> Self {
        self.options.events = Some(ring);
        self
    }

    /// Checks every configuration against the compact layout and builds.
    ///
    /// ```
    /// use surgewall::breaker::keyed::KeyedBreaker;
    /// use surgewall::BreakerConfig;
    ///
    /// let big = BreakerConfig::builder().minimum_calls(1000).build()?;
    /// let err = KeyedBreaker::<u64>::builder(BreakerConfig::default())
    ///     .override_key(7, big)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "minimum_calls");
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn build(self) -> Result<KeyedBreaker<K>, ConfigError> {
        let mut configs = Vec::with_capacity(1 + self.overrides.len());
        configs.push(prepare(self.template)?);
        let mut indexed = Vec::with_capacity(self.overrides.len());
        for (n, (key, config)) in self.overrides.into_iter().enumerate() {
            indexed.push((key, configs.len() as u32));
            configs.push(
                prepare(config).map_err(|e| e.within(format!("per-key override {}", n + 1)))?,
            );
        }
        let seed = configs[0].config.seed.unwrap_or_else(entropy_seed);
        let mut options = self.options;
        let events = options
            .events
            .get_or_insert_with(super::default_events)
            .clone();
        let registry = CompactRegistry::new(options, 0, indexed)?;
        Ok(KeyedBreaker {
            configs: configs.into_boxed_slice(),
            shared: Shared {
                clock: self.clock,
                events,
                counters: Striped::new(),
                transitions: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
                rng: SplitMix::new(seed),
                // One source for the transitions and the evictions: the registry's.
                id: registry.id(),
            },
            registry,
        })
    }
}

fn prepare(config: BreakerConfig) -> Result<Prepared, ConfigError> {
    if config.minimum_calls > MAX_KEYED_MINIMUM_CALLS {
        return Err(ConfigError::new(
            "minimum_calls",
            format!(
                "a keyed breaker counts at most {MAX_KEYED_MINIMUM_CALLS} calls for the rate rules, got {}",
                config.minimum_calls
            ),
        ));
    }
    if let Window::Count { calls } = config.window {
        if calls > MAX_KEYED_COUNT_WINDOW {
            return Err(ConfigError::new(
                "window.calls",
                format!("a keyed count window holds at most {MAX_KEYED_COUNT_WINDOW} calls, got {calls}"),
            ));
        }
    }
    if config
        .consecutive_failures
        .is_some_and(|k| k > MAX_KEYED_CONSECUTIVE_FAILURES)
    {
        return Err(ConfigError::new(
            "consecutive_failures",
            format!(
                "a keyed breaker counts at most {MAX_KEYED_CONSECUTIVE_FAILURES} consecutive failures, got {}",
                config.consecutive_failures.unwrap_or_default()
            ),
        ));
    }
    if config.half_open_calls > MAX_KEYED_HALF_OPEN_CALLS {
        return Err(ConfigError::new(
            "half_open_calls",
            format!(
                "a keyed breaker admits at most {MAX_KEYED_HALF_OPEN_CALLS} probes, got {}",
                config.half_open_calls
            ),
        ));
    }
    Ok(Prepared {
        buckets: Buckets::of(config.window),
        bucket: AtomicU64::new(u64::MAX),
        config,
    })
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> KeyedBreaker<K> {
    /// A builder from the template configuration.
    pub fn builder(template: BreakerConfig) -> KeyedBreakerBuilder<K> {
        KeyedBreakerBuilder {
            template,
            overrides: Vec::new(),
            options: Options::default(),
            clock: Clock::coarse(),
        }
    }

    /// Asks `key`'s breaker (created if the key is new) for a permit.
    #[inline]
    pub fn try_acquire(&self, key: &K) -> Result<KeyedPermit<'_, K>, KeyedRejected> {
        let (cell, prepared, raw) = self.acquire_at(key)?;
        Ok(KeyedPermit {
            owner: self,
            raw,
            cell,
            prepared,
        })
    }

    /// [`try_acquire`](Self::try_acquire) as a plain value: every `Ok` must be followed by
    /// exactly one [`record_raw`](Self::record_raw).
    ///
    /// ```
    /// use surgewall::breaker::keyed::KeyedBreaker;
    /// use surgewall::{BreakerConfig, Outcome, Recorded};
    ///
    /// let users = KeyedBreaker::<u64>::builder(BreakerConfig::default()).build()?;
    /// let p = users.try_acquire_raw(&42)?;
    /// assert_eq!(users.record_raw(p, Outcome::Success), Recorded::Counted);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire_raw(&self, key: &K) -> Result<KeyedRawPermit, KeyedRejected> {
        self.acquire_at(key).map(|(_, _, raw)| raw)
    }

    /// The key's cell, configuration and a permit.
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    fn acquire_at(&self, key: &K) -> Result<(&Cell, &Prepared, KeyedRawPermit), KeyedRejected> {
        // Under the shard's read lock: a sweep (write lock) cannot evict the key meanwhile,
        // so a transition (OPEN -> HALF_OPEN) never runs on a cell given to another key.
        let (cell, prepared, permit) = self
            .registry
            .with(key, |slot, cell| {
                let prepared = self.prepared(slot);
                let w = cell.load();
                let inner = if w.state().admits_all() {
                    Ok(self.permit(prepared, w))
                } else {
                    self.acquire_slow(cell, prepared, w)
                };
                (
                    cell,
                    prepared,
                    inner.map(|inner| KeyedRawPermit { slot, inner }),
                )
            })
            .map_err(KeyedRejected::TooManyKeys)?;
        let permit = permit.map_err(KeyedRejected::Rejected)?;
        Ok((cell, prepared, permit))
    }

    /// The configuration of the key in `slot`.
    #[inline]
    fn prepared(&self, slot: u32) -> &Prepared {
        &self.configs[self.registry.class_of(slot) as usize]
    }

    #[inline]
    fn permit(&self, prepared: &Prepared, w: Word) -> RawPermit {
        RawPermit {
            generation: w.generation(),
            start_ns: if prepared.config.time_calls {
                self.shared.clock.precise_now_ns()
            } else {
                0
            },
        }
    }

    #[cold]
    #[inline(never)]
    fn acquire_slow(
        &self,
        cell: &Cell,
        prepared: &Prepared,
        w: Word,
    ) -> Result<RawPermit, Rejected> {
        admission::acquire_slow(
            &Key {
                owner: self,
                cell,
                prepared,
            },
            w,
        )
    }

    fn reject(&self, reason: RejectReason, retry_after: Duration) -> Rejected {
        let lane = match reason {
            RejectReason::HalfOpenFull => REJECTED_HALF_OPEN,
            _ => REJECTED_OPEN,
        };
        self.shared.counters.add(lane, 1);
        Rejected {
            reason,
            retry_after,
        }
    }

    /// Records the result of a call made under `permit` (timed by the breaker when its
    /// configuration times calls). Safe after the key was evicted: the result is late.
    #[inline]
    pub fn record_raw(&self, permit: KeyedRawPermit, outcome: Outcome) -> Recorded {
        let Some(cell) = self.issued(permit) else {
            return self.invalid();
        };
        self.record_in(cell, self.prepared(permit.slot), permit.inner, outcome)
    }

    /// The cell of a raw permit that may have been issued: its slot is in the arena and its
    /// generation is not 0 (a cell that never had a key is at 0; keys start above). A vacant
    /// cell's generation is caught in `record_slow`, off the fast path.
    #[inline(always)]
    fn issued(&self, permit: KeyedRawPermit) -> Option<&Cell> {
        if permit.inner.generation == 0 {
            return None;
        }
        self.registry.cell(permit.slot)
    }

    #[cold]
    fn invalid(&self) -> Recorded {
        self.shared.counters.add(UNEXPECTED, 1);
        Recorded::Invalid
    }

    /// Records on a cell already found (timed when the configuration times calls).
    #[inline(always)]
    fn record_in(
        &self,
        cell: &Cell,
        prepared: &Prepared,
        permit: RawPermit,
        outcome: Outcome,
    ) -> Recorded {
        let slow = prepared.config.time_calls
            && permit.start_ns != 0
            && prepared.config.slow_call_duration.is_some_and(|limit| {
                self.shared
                    .clock
                    .precise_now_ns()
                    .saturating_sub(permit.start_ns)
                    >= duration_ns(limit)
            });
        self.record_inner(cell, prepared, permit, outcome, slow)
    }

    /// Records the result of a call that took `duration` (the caller timed it).
    pub fn record_raw_with_duration(
        &self,
        permit: KeyedRawPermit,
        outcome: Outcome,
        duration: Duration,
    ) -> Recorded {
        let Some(cell) = self.issued(permit) else {
            return self.invalid();
        };
        let prepared = self.prepared(permit.slot);
        let slow = prepared
            .config
            .slow_call_duration
            .is_some_and(|limit| duration >= limit);
        self.record_inner(cell, prepared, permit.inner, outcome, slow)
    }

    #[inline(always)]
    fn record_inner(
        &self,
        cell: &Cell,
        prepared: &Prepared,
        permit: RawPermit,
        outcome: Outcome,
        slow: bool,
    ) -> Recorded {
        let w = cell.load();
        if w.generation() != permit.generation {
            return self.record_other(cell, prepared, w, permit, outcome, slow);
        }
        if outcome == Outcome::Success && !slow && w.success_fast_path() {
            let now = match prepared.buckets {
                Buckets::Time { .. } => self.shared.clock.now_ns(),
                Buckets::Count { .. } => 0,
            };
            let epoch = prepared.epoch(now);
            // One CAS counts the success and clears the streak.
            let Some(added) =
                cell.count(w.generation(), prepared.buckets, now, epoch, false, false)
            else {
                return self.late();
            };
            if added.rolled {
                self.evaluate(cell, prepared, now);
            }
            return Recorded::Counted;
        }
        self.record_slow(cell, prepared, w, outcome, slow)
    }

    /// A permit whose whole `generation` field differs from the cell's: a numbered probe, an
    /// older generation's permit (late), or a value never issued.
    #[cold]
    #[inline(never)]
    fn record_other(
        &self,
        cell: &Cell,
        prepared: &Prepared,
        w: Word,
        permit: RawPermit,
        outcome: Outcome,
        slow: bool,
    ) -> Recorded {
        let (generation, index) = match permit.identity() {
            Some((_, None)) => return self.late(),
            // Generation 0 is no key's (see `issued`).
            Some((g, Some(i))) if g != 0 && i < u64::from(prepared.config.half_open_calls) => {
                (g, i)
            }
            _ => return self.invalid(),
        };
        if generation != w.generation() {
            return self.late();
        }
        if w.state() != State::HalfOpen {
            // Probes are only ever numbered under a HALF_OPEN generation.
            return self.invalid();
        }
        self.settle_probe(cell, prepared, generation, index, outcome, slow)
    }

    #[cold]
    #[inline(never)]
    fn record_slow(
        &self,
        cell: &Cell,
        prepared: &Prepared,
        w: Word,
        outcome: Outcome,
        slow: bool,
    ) -> Recorded {
        let config = &prepared.config;
        match (w.state(), outcome) {
            (State::Disabled, _) => Recorded::Disabled,
            // No permit is issued under an open generation, and every permit of a HALF_OPEN
            // one is a numbered probe (`record_other`).
            (State::Open | State::ForcedOpen | State::HalfOpen, _) => {
                self.shared.counters.add(UNEXPECTED, 1);
                Recorded::Unexpected
            }
            _ if is_vacant(w) => self.invalid(),
            (State::Closed | State::MetricsOnly, Outcome::Ignored) => {
                self.shared.counters.add(IGNORED, 1);
                Recorded::Counted
            }
            (State::Closed | State::MetricsOnly, _) => {
                let now = self.shared.clock.now_ns();
                let failed = outcome == Outcome::Failure;
                let epoch = prepared.epoch(now);
                let Some(added) =
                    cell.count(w.generation(), prepared.buckets, now, epoch, failed, slow)
                else {
                    return self.late();
                };
                if failed {
                    self.shared.counters.add(FAILURES, 1);
                    if w.state() == State::Closed
                        && config
                            .consecutive_failures
                            .is_some_and(|k| added.streak >= u64::from(k))
                    {
                        self.transition(
                            cell,
                            prepared,
                            w,
                            State::Open,
                            TransitionReason::ConsecutiveFailures,
                            now,
                        );
                        return Recorded::Counted;
                    }
                }
                self.evaluate(cell, prepared, now);
                Recorded::Counted
            }
        }
    }

    fn late(&self) -> Recorded {
        self.shared.counters.add(LATE, 1);
        Recorded::Late
    }

    /// The rate rules on the window; keeps the evaluate-on-success flag in step.
    fn evaluate(&self, cell: &Cell, prepared: &Prepared, now: u64) {
        let config = &prepared.config;
        let mut w = cell.load();
        if !matches!(w.state(), State::Closed | State::MetricsOnly) {
            return;
        }
        let c = cell.window_counts(w.generation(), prepared, now);
        let min = u64::from(config.minimum_calls);
        if c.calls >= min && w.state() == State::Closed {
            if let Some(reason) = rate_verdict(config, config.failure_rate, &c) {
                self.transition(cell, prepared, w, State::Open, reason, now);
                return;
            }
        }
        let pending = w.state() == State::Closed && c.calls < min && (c.failures > 0 || c.slow > 0);
        while w.eval_on_success() != pending {
            match cell.cas(w, w.with_eval(pending)) {
                Ok(()) => break,
                Err(cur) if cur.generation() == w.generation() => w = cur,
                Err(_) => break,
            }
        }
    }

    /// Takes the lowest free probe number of the HALF_OPEN episode of `generation` for a probe
    /// just admitted under it (see `breaker/probes.rs`); 0 when the episode is already over
    /// (the permit is late whatever its number).
    fn claim_probe(cell: &Cell, config: &BreakerConfig, generation: u64) -> u64 {
        // Acquire/AcqRel: a release's clearing of its number happened before it gave its
        // count back in the state word, which this caller's admission CAS read; the opens
        // carried from the OPEN episode are seen (published before the deadline this episode's
        // first caller acquired).
        let mut p = cell.window.load(Ordering::Acquire);
        loop {
            if cell.load().generation() != generation {
                return 0;
            }
            // A word of another generation reads as no probes yet (reset lazily); the opens
            // field carries over from the OPEN episode before.
            let mut probes = probes_of(p, generation);
            let Some(bit) = probes::lowest_free(probes.taken, config.half_open_calls) else {
                // Unreachable: `taken` never holds more numbers than the state word admitted.
                debug_assert!(false, "an admitted probe found no free number");
                return 0;
            };
            probes.taken |= bit;
            match cell.window.compare_exchange_weak(
                p,
                pack_probe(generation, probe_opens(p), probes),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return u64::from(bit.trailing_zeros()),
                Err(cur) => p = cur,
            }
        }
    }

    /// Settles probe `index` of the episode of `generation`: a report counts in the same CAS
    /// that marks the number reported; a release frees the number, then gives the probe's
    /// place back in the state word. A number not out (reported or released already, never
    /// taken) is unexpected.
    fn settle_probe(
        &self,
        cell: &Cell,
        prepared: &Prepared,
        generation: u64,
        index: u64,
        outcome: Outcome,
        slow: bool,
    ) -> Recorded {
        let how = match outcome {
            Outcome::Ignored => Settle::Release,
            _ => Settle::Report,
        };
        let failed = outcome == Outcome::Failure;
        let bit = 1 << index;
        let mut p = cell.window.load(Ordering::Acquire);
        let probes = loop {
            if cell.load().generation() != generation {
                return self.late();
            }
            let mut probes = probes_of(p, generation);
            let Some((taken, reported)) = probes::settled(probes.taken, probes.reported, bit, how)
            else {
                self.shared.counters.add(UNEXPECTED, 1);
                return Recorded::Unexpected;
            };
            (probes.taken, probes.reported) = (taken, reported);
            if how == Settle::Report {
                probes.failures += u64::from(failed);
                probes.slow += u64::from(slow);
            }
            match cell.window.compare_exchange_weak(
                p,
                pack_probe(generation, probe_opens(p), probes),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break probes,
                Err(cur) => p = cur,
            }
        };
        if how == Settle::Release {
            return self.release_probe(cell, generation);
        }
        if failed {
            self.shared.counters.add(FAILURES, 1);
        }
        let config = &prepared.config;
        let reported = u64::from(probes.reported.count_ones());
        let verdict = probe_verdict(
            config,
            config.failure_rate,
            reported,
            probes.failures,
            probes.slow,
        );
        let now = self.shared.clock.now_ns();
        let w = cell.load();
        if w.generation() == generation {
            if let Some((to, reason)) = verdict {
                self.transition(cell, prepared, w, to, reason, now);
            }
        }
        Recorded::Counted
    }

    /// Gives a released probe's place back (its number is already free).
    fn release_probe(&self, cell: &Cell, generation: u64) -> Recorded {
        let mut w = cell.load();
        loop {
            if w.generation() != generation || w.state() != State::HalfOpen {
                return self.late();
            }
            if w.admitted() == 0 {
                self.shared.counters.add(UNEXPECTED, 1);
                return Recorded::Unexpected;
            }
            match cell.cas(w, w.with_admitted(w.admitted() - 1)) {
                Ok(()) => {
                    self.shared.counters.add(IGNORED, 1);
                    return Recorded::Counted;
                }
                Err(cur) => w = cur,
            }
        }
    }

    /// Moves from the state and generation of `from` to `to`; exactly one caller wins (I4).
    fn transition(
        &self,
        cell: &Cell,
        prepared: &Prepared,
        from: Word,
        to: State,
        reason: TransitionReason,
        now: u64,
    ) -> bool {
        let mut cur = from;
        if matches!(to, State::Closed | State::MetricsOnly)
            && matches!(
                from.state(),
                State::Closed | State::MetricsOnly | State::Disabled
            )
        {
            // Window layout to window layout: a fresh episode, reset before the new generation
            // is visible (Relaxed: the CAS below publishes it with Release). From a probe
            // layout the winner replaces the word after its CAS (see `entered`).
            cell.window.store(0, Ordering::Relaxed);
        }
        loop {
            if cur.state() != from.state() || cur.generation() != from.generation() {
                return false;
            }
            let next = cur.next(to);
            match cell.cas(cur, next) {
                Ok(()) => {
                    self.entered(cell, prepared, cur, next, reason, now);
                    return true;
                }
                Err(w) => cur = w,
            }
        }
    }

    /// The openings counted so far in the episode `from` belongs to (0 after CLOSED).
    fn opens(cell: &Cell, from: Word) -> u64 {
        match from.state() {
            // Relaxed: the value was published with (or before) the word we acquired.
            State::Open | State::HalfOpen | State::ForcedOpen => {
                probe_opens(cell.window.load(Ordering::Relaxed))
            }
            _ => 0,
        }
    }

    /// Bookkeeping after a won transition.
    fn entered(
        &self,
        cell: &Cell,
        prepared: &Prepared,
        from: Word,
        to: Word,
        reason: TransitionReason,
        now: u64,
    ) {
        let generation = to.generation();
        let config = &prepared.config;
        match to.state() {
            State::Open => {
                let n = Self::opens(cell, from);
                let wait = open_wait(config, &self.shared.rng, n);
                // The probe word first, then the deadline with Release: whoever acquires the
                // deadline (the caller that starts probing) sees the openings count.
                cell.replace_window(
                    generation,
                    |v| probe_is_current(v, generation),
                    pack_probe(generation, n + 1, Probes::default()),
                );
                cell.publish_deadline(generation, deadline_after(generation, now, wait));
            }
            State::HalfOpen => {
                // The probe word is reset lazily by the first probe (it keeps the opens).
                let max = config.half_open_max_duration;
                cell.publish_deadline(generation, deadline_after(generation, now, max));
            }
            State::Closed | State::MetricsOnly | State::Disabled => {
                // From a probe layout: an empty window, unless a caller of this generation
                // already started one.
                cell.replace_window(generation, |v| v & PROBE_BIT == 0, 0);
            }
            State::ForcedOpen => {}
        }
        self.shared.transitions[from.state() as usize][to.state() as usize]
            .fetch_add(1, Ordering::Relaxed);
        // The key, read under the arena's lock while the cell is still in the generation we
        // entered: almost always; should the key be evicted in between, the event goes out
        // without it (a plain `Transition`).
        let (from, to) = (from.state(), to.state());
        let kind = match self
            .registry
            .key_at(cell, |c| c.load().generation() == generation)
        {
            Some(key) => EventKind::KeyedTransition {
                key,
                from,
                to,
                generation,
                reason,
            },
            None => EventKind::Transition {
                from,
                to,
                generation,
                reason,
            },
        };
        self.shared.events.publish(Event {
            source: self.shared.id,
            at_ns: now,
            kind,
        });
    }

    // ---- manual transitions -------------------------------------------------------------

    fn on_key<R>(&self, key: &K, f: impl FnOnce(&Cell, &Prepared) -> R) -> Result<R, RegistryFull> {
        self.registry
            .with(key, |slot, cell| f(cell, self.prepared(slot)))
    }

    fn manual(
        &self,
        key: &K,
        to: State,
        allowed: impl Fn(State) -> bool,
    ) -> Result<Result<(), TransitionError>, RegistryFull> {
        self.on_key(key, |cell, prepared| loop {
            let w = cell.load();
            if w.state() == to {
                return Ok(()); // a manual transition to the current state is a no-op
            }
            if !allowed(w.state()) {
                return Err(TransitionError {
                    from: w.state(),
                    to,
                });
            }
            let now = self.shared.clock.now_ns();
            if self.transition(cell, prepared, w, to, TransitionReason::Manual, now) {
                return Ok(());
            }
        })
    }

    /// Opens `key` by hand (created if new): rejecting until another manual transition, or
    /// until `duration` has passed. A FORCED_OPEN key is never evicted.
    pub fn force_open(&self, key: &K, duration: Option<Duration>) -> Result<(), RegistryFull> {
        self.on_key(key, |cell, prepared| {
            let now = self.shared.clock.now_ns();
            let deadline = |g: u64| match duration {
                Some(d) => deadline_after(g, now, d),
                None => tag(g) | DEADLINE_NEVER,
            };
            loop {
                let w = cell.load();
                if w.state() == State::ForcedOpen {
                    // Not a transition (see `Breaker::force_open`): without a duration nothing
                    // changes, with one only the deadline moves, in the same generation.
                    if duration.is_none()
                        || cell.publish_deadline(w.generation(), deadline(w.generation()))
                    {
                        return;
                    }
                    continue;
                }
                let next = w.next(State::ForcedOpen);
                let opens = Self::opens(cell, w);
                if cell.cas(w, next).is_ok() {
                    let g = next.generation();
                    cell.replace_window(
                        g,
                        |v| probe_is_current(v, g),
                        pack_probe(g, opens, Probes::default()),
                    );
                    // After the probe word, as a transition to OPEN (see `entered`).
                    cell.publish_deadline(g, deadline(g));
                    self.entered(cell, prepared, w, next, TransitionReason::Manual, now);
                    return;
                }
            }
        })
    }

    /// Opens `key` by hand (created if new) as a trip would, unlike
    /// [`force_open`](Self::force_open): the open wait applies, grown by the key's backoff of
    /// consecutive opens, then the next caller starts probing. A no-op when it is OPEN.
    ///
    /// ```
    /// use surgewall::breaker::keyed::{KeyedBreaker, KeyedRejected};
    /// use surgewall::{BreakerConfig, RejectReason};
    /// let b = KeyedBreaker::<u64>::builder(BreakerConfig::default()).build()?;
    /// b.open(&7)?;
    /// let Err(KeyedRejected::Rejected(r)) = b.try_acquire(&7) else { panic!("admitted") };
    /// assert_eq!(r.reason, RejectReason::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(&self, key: &K) -> Result<(), RegistryFull> {
        self.manual(key, State::Open, |_| true).map(|_| ())
    }

    /// Closes `key` (a fresh window); a no-op when it is CLOSED.
    pub fn close(&self, key: &K) -> Result<(), RegistryFull> {
        self.manual(key, State::Closed, |_| true).map(|_| ())
    }

    /// Disables `key`: every call passes, nothing is recorded, the key is not evicted.
    pub fn disable(&self, key: &K) -> Result<(), RegistryFull> {
        self.manual(key, State::Disabled, |_| true).map(|_| ())
    }

    /// `key` records but never trips (and is not evicted).
    pub fn metrics_only(&self, key: &K) -> Result<(), RegistryFull> {
        self.manual(key, State::MetricsOnly, |_| true).map(|_| ())
    }

    /// Starts probing `key` now, from OPEN or FORCED_OPEN; CLOSED -> HALF_OPEN is refused.
    ///
    /// ```
    /// use surgewall::breaker::keyed::KeyedBreaker;
    /// use surgewall::{BreakerConfig, State};
    /// let b = KeyedBreaker::<u64>::builder(BreakerConfig::default()).build()?;
    /// assert!(b.half_open(&1)?.is_err());
    /// b.force_open(&1, None)?;
    /// b.half_open(&1)?.unwrap();
    /// assert_eq!(b.state(&1), Some(State::HalfOpen));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn half_open(&self, key: &K) -> Result<Result<(), TransitionError>, RegistryFull> {
        self.manual(key, State::HalfOpen, |s| {
            matches!(s, State::Open | State::ForcedOpen)
        })
    }

    /// Starts a fresh CLOSED episode for `key` from any state.
    pub fn reset(&self, key: &K) -> Result<(), RegistryFull> {
        self.on_key(key, |cell, prepared| {
            let now = self.shared.clock.now_ns();
            while !self.transition(
                cell,
                prepared,
                cell.load(),
                State::Closed,
                TransitionReason::Manual,
                now,
            ) {}
        })
    }

    // ---- observability ------------------------------------------------------------------

    fn snapshot(&self, cell: &Cell, prepared: &Prepared) -> KeySnapshot {
        let w = cell.load();
        let now = self.shared.clock.now_ns();
        let config = &prepared.config;
        let recording = matches!(w.state(), State::Closed | State::MetricsOnly);
        let window = match w.state() {
            State::Closed | State::MetricsOnly => cell.window_counts(w.generation(), prepared, now),
            // The probes that reported in this episode (Relaxed: the probe word is
            // self-contained, see `Cell::count`).
            State::HalfOpen => {
                let p = probes_of(cell.window.load(Ordering::Relaxed), w.generation());
                Counts {
                    calls: u64::from(p.reported.count_ones()),
                    failures: p.failures,
                    slow: p.slow,
                }
            }
            State::Open | State::ForcedOpen | State::Disabled => Counts::default(),
        };
        let retry_after = match w.state() {
            State::Open | State::ForcedOpen => Some(
                cell.remaining(w, now, longest_wait(config, w))
                    .unwrap_or(config.open_for),
            ),
            _ => None,
        };
        KeySnapshot {
            state: w.state(),
            generation: w.generation(),
            window,
            minimum_calls: u64::from(config.minimum_calls),
            consecutive_failures: if recording {
                WindowWord::unpack(cell.window.load(Ordering::Relaxed)).streak
            } else {
                0
            },
            consecutive_opens: Self::opens(cell, w),
            retry_after,
        }
    }

    /// `key`'s breaker, if the key is held (never creates it). Reads only.
    ///
    /// ```
    /// use surgewall::breaker::keyed::KeyedBreaker;
    /// use surgewall::{BreakerConfig, State};
    /// let b = KeyedBreaker::<u64>::builder(BreakerConfig::default()).build()?;
    /// assert!(b.get(&1).is_none());
    /// b.try_acquire(&1)?.failure();
    /// let s = b.get(&1).unwrap();
    /// assert_eq!((s.state, s.window.failures), (State::Closed, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, key: &K) -> Option<KeySnapshot> {
        let (slot, cell) = self.registry.peek(key)?;
        Some(self.snapshot(cell, self.prepared(slot)))
    }

    /// `key`'s state, if the key is held.
    pub fn state(&self, key: &K) -> Option<State> {
        self.get(key).map(|s| s.state)
    }

    /// How long until `key` admits again (`None` when it admits now or is not held).
    pub fn retry_after(&self, key: &K) -> Option<Duration> {
        self.get(key).and_then(|s| s.retry_after)
    }

    /// Calls `f` for every key held (not the overflow entry), one map shard at a time: for
    /// admin listings and metrics. Never call back into this keyed breaker from `f`.
    ///
    /// ```
    /// use surgewall::breaker::keyed::KeyedBreaker;
    /// use surgewall::{BreakerConfig, State};
    /// let b = KeyedBreaker::<u64>::builder(BreakerConfig::default()).build()?;
    /// b.try_acquire(&1)?.success();
    /// b.force_open(&2, None)?;
    /// let mut open = Vec::new();
    /// b.for_each(|k, s| if s.state != State::Closed { open.push(*k) });
    /// assert_eq!(open, [2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&K, &KeySnapshot)) {
        self.registry
            .for_each(|k, slot, cell| f(k, &self.snapshot(cell, self.prepared(slot))));
    }

    /// Evicts the CLOSED keys idle for `idle_ttl` at `now_ns` (never an OPEN, HALF_OPEN or
    /// manually set one) and publishes one [`EventKind::Evicted`] each; see
    /// [`Registry::sweep`](crate::registry::Registry::sweep). Give it the breaker's clock
    /// (`clock().now_ns()`, as the agent does): the idle marks it leaves also tell a key
    /// idle for two buckets that its time window is empty (without them a key idle for a
    /// multiple of 64 windows would read its old counts), and a time behind the clock would
    /// empty windows early.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::breaker::keyed::KeyedBreaker;
    /// use surgewall::BreakerConfig;
    /// let b = KeyedBreaker::<u64>::builder(BreakerConfig::default())
    ///     .idle_ttl(Duration::from_secs(1))
    ///     .build()?;
    /// b.try_acquire(&1)?.success();
    /// b.force_open(&2, None)?;
    /// assert_eq!(b.sweep(0), 0);             // first look: idle from now on
    /// assert_eq!(b.sweep(1_000_000_000), 1); // 1 goes; 2 is forced open and stays
    /// assert_eq!((b.len(), b.get(&1)), (1, None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sweep(&self, now_ns: u64) -> usize {
        self.registry.sweep(now_ns)
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// The ring transitions and evictions are published to.
    pub fn events(&self) -> &EventRing {
        &self.shared.events
    }

    /// The `source` of this keyed breaker's events: [`EventKind::KeyedTransition`] (with the
    /// key, as [`event_key`](KeyedBreakerBuilder::event_key) makes it) and
    /// [`EventKind::Evicted`].
    ///
    /// ```
    /// use surgewall::breaker::keyed::KeyedBreaker;
    /// use surgewall::events::{EventKind, EventRing};
    /// use surgewall::{BreakerConfig, State};
    ///
    /// let ring = EventRing::new(16);
    /// let users = KeyedBreaker::<u64>::builder(BreakerConfig::default())
    ///     .events(ring.clone())
    ///     .event_key(|k| *k)
    ///     .build()?;
    /// let mut sub = ring.subscribe();
    /// users.force_open(&42, None)?;
    /// let e = sub.poll().unwrap();
    /// assert_eq!(e.source, users.id());
    /// assert!(matches!(e.kind, EventKind::KeyedTransition { key: 42, to: State::ForcedOpen, .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The `u64` this keyed breaker's events name `key` by (the `key` of
    /// [`EventKind::KeyedTransition`] and [`EventKind::Evicted`]).
    ///
    /// ```
    /// use surgewall::breaker::keyed::KeyedBreaker;
    /// use surgewall::BreakerConfig;
    /// let by_id = KeyedBreaker::<u64>::builder(BreakerConfig::default())
    ///     .event_key(|k| *k)
    ///     .build()?;
    /// assert_eq!(by_id.event_key(&42), 42);
    /// let by_path = KeyedBreaker::<&str>::builder(BreakerConfig::default()).build()?;
    /// assert_ne!(by_path.event_key(&"/a"), by_path.event_key(&"/b"));
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn event_key(&self, key: &K) -> u64 {
        self.registry.event_key_of(key)
    }

    /// The aggregate counters.
    ///
    /// ```
    /// use surgewall::breaker::keyed::KeyedBreaker;
    /// use surgewall::{BreakerConfig, State};
    /// let b = KeyedBreaker::<u64>::builder(BreakerConfig::default()).build()?;
    /// b.force_open(&1, None)?;
    /// let _ = b.try_acquire(&1);
    /// let m = b.metrics();
    /// assert_eq!(m.transitions[State::Closed as usize][State::ForcedOpen as usize], 1);
    /// assert_eq!((m.rejected_open, m.registry.keys), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(&self) -> KeyedBreakerMetrics {
        let c = &self.shared.counters;
        KeyedBreakerMetrics {
            transitions: self
                .shared
                .transitions
                .each_ref()
                .map(|row| row.each_ref().map(|a| a.load(Ordering::Relaxed))),
            rejected_open: c.sum(REJECTED_OPEN),
            rejected_half_open: c.sum(REJECTED_HALF_OPEN),
            ignored: c.sum(IGNORED),
            late_results: c.sum(LATE),
            unexpected_results: c.sum(UNEXPECTED),
            failures: c.sum(FAILURES),
            registry: self.registry.stats(),
            clock: self.shared.clock.mode(),
        }
    }

    /// Runs `f` under `key`'s breaker: `Ok` is a success, `Err` a failure, a panic a failure.
    pub fn call<T, E>(
        &self,
        key: &K,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, KeyedCallError<E>> {
        let permit = self.try_acquire(key).map_err(KeyedCallError::Rejected)?;
        match f() {
            Ok(v) => {
                permit.success();
                Ok(v)
            }
            Err(e) => {
                permit.failure();
                Err(KeyedCallError::Failed(e))
            }
        }
    }
}

/// One key's breaker (its cell and configuration), for the admission shared with the named
/// breaker.
struct Key<'a, K: Eq + Hash + Clone + Send + Sync + 'static> {
    owner: &'a KeyedBreaker<K>,
    cell: &'a Cell,
    prepared: &'a Prepared,
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> admission::Admit for Key<'_, K> {
    fn load(&self) -> Word {
        self.cell.load()
    }

    fn cas(&self, from: Word, to: Word) -> Result<(), Word> {
        self.cell.cas(from, to)
    }

    fn now_ns(&self) -> u64 {
        self.owner.shared.clock.now_ns()
    }

    fn remaining(&self, w: Word, now: u64) -> Option<Duration> {
        self.cell
            .remaining(w, now, longest_wait(&self.prepared.config, w))
    }

    fn config(&self) -> &BreakerConfig {
        &self.prepared.config
    }

    fn permit(&self, w: Word) -> RawPermit {
        self.owner.permit(self.prepared, w)
    }

    fn probe_permit(&self, w: Word) -> RawPermit {
        let g = w.generation();
        let index = KeyedBreaker::<K>::claim_probe(self.cell, &self.prepared.config, g);
        RawPermit::probe(g, index, self.permit(w).start_ns)
    }

    fn reject(&self, reason: RejectReason, retry_after: Duration) -> Rejected {
        self.owner.reject(reason, retry_after)
    }

    fn entered(&self, from: Word, to: Word, reason: TransitionReason, now: u64) {
        self.owner
            .entered(self.cell, self.prepared, from, to, reason, now)
    }

    fn transition(&self, from: Word, to: State, reason: TransitionReason, now: u64) -> bool {
        self.owner
            .transition(self.cell, self.prepared, from, to, reason, now)
    }
}

/// The error of [`KeyedBreaker::call`].
#[derive(Debug, PartialEq, Eq)]
pub enum KeyedCallError<E> {
    /// Not run: rejected by the key's breaker or by the key cap.
    Rejected(KeyedRejected),
    /// Run, and it returned this error (recorded as a failure).
    Failed(E),
}

impl<E: fmt::Display> fmt::Display for KeyedCallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedCallError::Rejected(r) => r.fmt(f),
            KeyedCallError::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for KeyedCallError<E> {}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> fmt::Debug for KeyedBreaker<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBreaker")
            .field("keys", &self.len())
            .field("id", &self.shared.id)
            .finish()
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests;
