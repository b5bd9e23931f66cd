//! `surgewall_breaker`: circuit breakers over the C ABI.
//!
//! All functions taking a `const surgewall_breaker *` are thread-safe and lock-free; the hot
//! path is `surgewall_breaker_acquire` then `surgewall_breaker_record`, with the permit as a
//! plain value in between (no allocation, no lock held across the caller's call).

use std::time::Duration;

use engine::clock::Clock;
use engine::{Breaker, Outcome, RawPermit, Recorded, RejectReason, State};

use crate::builder::consume;
use crate::config::surgewall_breaker_config;
use crate::error::{report, report_config, surgewall_error};
use crate::handle::{opaque_handle, Handle};
use crate::status::{boundary, copy_out, fast_or, non_null, write, Status};

/// The generation bits of a permit's token: the breaker generation is 40 bits wide (the state
/// word is `[generation 40 | half-open admitted 20 | EV 1 | state 3]`).
const GENERATION_MASK: u64 = (1 << 40) - 1;

/// A half-open probe's number in a token: the engine's permit carries it in bits 40..56 of its
/// generation (0 for every other permit); a token carries `number << 8 | check(number)` in its
/// top 24 bits, XORed with the salt like the rest, so a token with one bit flipped anywhere in
/// them never reads as another probe's (`check` is a CRC-8, which catches every single-bit
/// error) and garbage passes only with a chance of `half_open_calls` in 2^24.
const PROBE_SHIFT: u32 = 40;

/// The CRC-8 (polynomial `x^8 + x^2 + x + 1`) of a 16-bit probe number.
fn probe_check(number: u64) -> u64 {
    let mut r = number << 8;
    for bit in (8..24).rev() {
        if r & 1 << bit != 0 {
            r ^= 0x107 << (bit - 8);
        }
    }
    r
}

/// The token bits (before the salt) of the engine's permit generation `g`.
#[inline]
pub(crate) fn seal(g: u64) -> u64 {
    let number = g >> PROBE_SHIFT;
    if number == 0 {
        return g;
    }
    g & GENERATION_MASK | (number << 8 | probe_check(number)) << PROBE_SHIFT
}

/// The engine's permit generation from unsalted token bits `t` with a probe number in its top
/// 24, if they hold one that passes the check and is at most `max_probes`.
#[cold]
fn unseal_probe(t: u64, max_probes: u32) -> Option<u64> {
    let top = t >> PROBE_SHIFT;
    let number = top >> 8;
    (number != 0 && number <= u64::from(max_probes) && probe_check(number) == top & 0xFF)
        .then_some(t & GENERATION_MASK | number << PROBE_SHIFT)
}

/// How many salts there are: `2^24 - 1`, every non-zero value of the token's top 24 bits.
const SALTS: u64 = (1 << 24) - 1;

/// The salt of a breaker's permits: `token = generation ^ salt`. Only its top 24 bits are set
/// (the generation keeps the low 40) and it is never zero, so a zeroed permit is always refused.
///
/// It is `1 + (id + key) mod (2^24 - 1)` in those bits, with `key` drawn once per process: two
/// breakers share a salt only when their ids are a multiple of `2^24 - 1` apart (ids come from
/// one process-wide counter, so only breakers created about 16.7 million policies apart), and
/// a forged token passes the check with a chance of 1 in `2^24 - 1` (its top bits happen to
/// equal the salt). The salt catches zeroed, garbage and foreign permits; it is not a secret
/// (`surgewall_breaker_get_fast_path` hands it out). Computed when a handle is made and kept
/// in its slot (`salt_bits`), so the hot path reads it with the handle.
fn salt(b: &Breaker) -> u64 {
    salt_for(b.id())
}

/// The salt of the permits of the policy with id `id` (a breaker, a keyed breaker).
pub(crate) fn salt_for(id: u64) -> u64 {
    salt_of(id, process_key())
}

/// `salt` for a breaker id and a process key in `1..=SALTS`.
#[inline(always)]
fn salt_of(id: u64, key: u64) -> u64 {
    // id mod SALTS + key < 2 * SALTS: one conditional subtraction finishes the sum mod SALTS.
    let sum = id % SALTS + key;
    let residue = if sum >= SALTS { sum - SALTS } else { sum };
    (residue + 1) << 40
}

/// The per-process key of the salts, in `1..=SALTS` (0 is "not drawn yet").
#[inline(always)]
fn process_key() -> u64 {
    use std::sync::atomic::Ordering;
    match PROCESS_KEY.load(Ordering::Relaxed) {
        0 => init_process_key(),
        k => k,
    }
}

static PROCESS_KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cold]
fn init_process_key() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::Ordering;
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5EED);
    let k = h.finish() % SALTS + 1;
    // Relaxed: threads racing the first use each draw a key; one wins, all later reads see it.
    match PROCESS_KEY.compare_exchange(0, k, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => k,
        Err(won) => won,
    }
}

/// A circuit breaker. Thread-safe: every function taking `const surgewall_breaker *` may be
/// called from any thread at any time. Reference counted: `surgewall_breaker_clone` gives a
/// second handle to the same breaker; each handle is freed once with `surgewall_breaker_free`.
pub struct surgewall_breaker {
    _private: [u8; 0],
}

opaque_handle!(surgewall_breaker => Breaker, tag 4, aux salt_bits);

/// The salt's 24 bits, as each handle's slot keeps them (computed once per handle).
fn salt_bits(b: &Breaker) -> u32 {
    (salt(b) >> 40) as u32
}

/// The breaker behind `b` and the salt of its permits, both from the one handle lookup.
#[inline(always)]
fn salted<'a>(b: *const surgewall_breaker) -> Result<(&'a Breaker, u64), Status> {
    let (breaker, bits) = surgewall_breaker::get_with_aux(b)?;
    Ok((breaker, u64::from(bits) << 40))
}

/// A permit: what `surgewall_breaker_acquire` hands out and `surgewall_breaker_record` takes
/// back, exactly once. Recording one twice is the caller's bug: in CLOSED it is counted twice
/// (a CLOSED permit is only its generation); in HALF_OPEN each probe carries its number, so a
/// probe reported or released twice is `SURGEWALL_UNEXPECTED_RESULT` whatever the other
/// probes do. A plain value: copy it, keep it on the stack, pass it across threads.
/// Two `uint64_t`, so it travels in two registers (SysV x86-64, AArch64).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct surgewall_permit {
    /// `generation ^ salt`: the breaker generation it was issued under in the low 40 bits
    /// (older ones are dropped as late), and in the top 24 the salt tying it to the breaker
    /// that issued it (a zeroed or foreign permit is refused; see
    /// `surgewall_breaker_fast_path`), over a half-open probe's number.
    pub token: u64,
    /// When the call started (clock ns), or 0 when the breaker does not time calls.
    pub start_ns: u64,
}

/// A breaker state.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum surgewall_state {
    /// Calls pass; outcomes are recorded; the trip rules apply.
    Closed = 0,
    /// Calls are rejected until the open wait is over.
    Open = 1,
    /// A fixed number of probes pass; their outcomes decide.
    HalfOpen = 2,
    /// Opened by hand.
    ForcedOpen = 3,
    /// Everything passes, nothing is recorded.
    Disabled = 4,
    /// Everything passes and is recorded; never trips.
    MetricsOnly = 5,
}

impl From<State> for surgewall_state {
    fn from(s: State) -> Self {
        match s {
            State::Closed => surgewall_state::Closed,
            State::Open => surgewall_state::Open,
            State::HalfOpen => surgewall_state::HalfOpen,
            State::ForcedOpen => surgewall_state::ForcedOpen,
            State::Disabled => surgewall_state::Disabled,
            State::MetricsOnly => surgewall_state::MetricsOnly,
        }
    }
}

/// How a call ended (pass one of these as the `outcome` argument).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum surgewall_outcome {
    /// The call succeeded.
    Success = 0,
    /// The call failed.
    Failure = 1,
    /// The result says nothing about the dependency: release the permit, count nowhere.
    Ignored = 2,
}

pub(crate) fn outcome(v: i32) -> Result<Outcome, Status> {
    match v {
        0 => Ok(Outcome::Success),
        1 => Ok(Outcome::Failure),
        2 => Ok(Outcome::Ignored),
        _ => Err(Status::SURGEWALL_INVALID_ARG),
    }
}

/// Nanoseconds of a duration, `UINT64_MAX` for "never".
pub(crate) fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Counts of a window, and its rates.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_window_counts {
    /// Calls recorded (successes and failures).
    pub calls: u64,
    /// Failures among them.
    pub failures: u64,
    /// Slow calls among them.
    pub slow: u64,
    /// failures / calls, or NaN ("not enough data", test with `isnan`) while the window holds
    /// too few calls to be judged: fewer than `minimum_calls` in CLOSED and METRICS_ONLY, no
    /// reported probe in HALF_OPEN, always in the states without a window. Never a 0 that
    /// means "no data".
    pub failure_rate: f64,
    /// slow / calls, or NaN by the same rule.
    pub slow_rate: f64,
}

impl surgewall_window_counts {
    /// The counts with their rates, NaN where the core says a rate is absent.
    pub(crate) fn new(
        c: engine::breaker::Counts,
        failure_rate: Option<f64>,
        slow_rate: Option<f64>,
    ) -> Self {
        surgewall_window_counts {
            calls: c.calls,
            failures: c.failures,
            slow: c.slow,
            failure_rate: failure_rate.unwrap_or(f64::NAN),
            slow_rate: slow_rate.unwrap_or(f64::NAN),
        }
    }
}

/// A snapshot of everything observable about a breaker.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_breaker_stats {
    /// The current state.
    pub state: surgewall_state,
    /// The current generation.
    pub generation: u64,
    /// Nanoseconds in the current state.
    pub time_in_state_ns: u64,
    /// The current episode's window: the sliding window in CLOSED and METRICS_ONLY, the probes
    /// that reported in HALF_OPEN, empty otherwise.
    pub window: surgewall_window_counts,
    /// The window of the last episode that ended (CLOSED, METRICS_ONLY or HALF_OPEN, whatever
    /// it ended in); its rates are NaN by the rule of the episode it ended.
    pub last_window: surgewall_window_counts,
    /// `minimum_calls` of the configuration: calls a CLOSED or METRICS_ONLY window needs
    /// before its rates are judged (before that they are NaN).
    pub minimum_calls: u64,
    /// The failure-rate threshold in force, or a negative number when that rule is off.
    pub failure_rate_threshold: f64,
    /// Successes, ever.
    pub successes: u64,
    /// Failures, ever.
    pub failures: u64,
    /// Slow calls, ever.
    pub slow_calls: u64,
    /// Permits released as ignored, ever.
    pub ignored: u64,
    /// Rejections while OPEN or FORCED_OPEN.
    pub rejected_open: u64,
    /// Rejections while HALF_OPEN with all probe slots taken.
    pub rejected_half_open: u64,
    /// Results dropped as late.
    pub late_results: u64,
    /// Results no permit could explain.
    pub unexpected_results: u64,
    /// The current streak of consecutive failures.
    pub consecutive_failures: u64,
    /// Openings since the breaker last closed.
    pub consecutive_opens: u64,
    /// Probes handed out in this half-open episode.
    pub half_open_admitted: u64,
    /// Probes reported in this half-open episode.
    pub half_open_reported: u64,
    /// Nanoseconds left of an OPEN or timed FORCED_OPEN wait (UINT64_MAX: a forced open without
    /// deadline); 0 in every other state, HALF_OPEN included (a rejection there carries a short
    /// hint instead: see `surgewall_breaker_acquire`).
    pub retry_after_ns: u64,
    /// `transitions[from][to]`, indexed by `surgewall_state`.
    pub transitions: [[u64; 6]; 6],
}

/// Creates a breaker named by `name` (`name_len` bytes of UTF-8 without NUL: an embedded NUL
/// is `SURGEWALL_INVALID_ARG`) from `cfg`, which is consumed
/// whatever the outcome. On `SURGEWALL_INVALID_CONFIG` (or another error), `*err_out` (if not
/// NULL) receives an error object naming the field. The breaker joins the process-wide catalog
/// the agent serves (as `name`, or `name~2`... while another live breaker has that name);
/// `surgewall_breaker_unlist` takes it off.
#[no_mangle]
pub extern "C" fn surgewall_breaker_new(
    name: *const u8,
    name_len: usize,
    cfg: *mut surgewall_breaker_config,
    out: *mut *mut surgewall_breaker,
    err_out: *mut *mut surgewall_error,
) -> Status {
    boundary(|| {
        let state = consume(cfg, out, err_out)?;
        let name = crate::status::name(name, name_len)
            .map_err(|(s, why)| report(err_out, s, "name", why))?;
        let config = state
            .builder
            .build()
            .map_err(|e| report_config(err_out, &e))?;
        let (clock, fallback) = (state.clock.unwrap_or_else(Clock::coarse), state.fallback);
        let mut builder = Breaker::builder(name, config).clock(clock);
        if let Some(f) = fallback {
            builder = builder.fallback(f);
        }
        let breaker = std::sync::Arc::new(builder.build());
        engine::catalog::Catalog::global().join_breaker(&breaker);
        write(out, surgewall_breaker::insert_arc(breaker)?)
    })
}

/// A second handle to the same breaker.
#[no_mangle]
pub extern "C" fn surgewall_breaker_clone(
    b: *const surgewall_breaker,
    out: *mut *mut surgewall_breaker,
) -> Status {
    surgewall_breaker::clone_into(b, out)
}

/// Frees one handle (the breaker lives while other handles do). NULL is a no-op; a second free
/// is `SURGEWALL_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn surgewall_breaker_free(b: *mut surgewall_breaker) -> Status {
    surgewall_breaker::free(b)
}

pub(crate) fn reject_status(reason: RejectReason) -> Status {
    match reason {
        RejectReason::Open => Status::SURGEWALL_REJECTED_OPEN,
        RejectReason::HalfOpenFull => Status::SURGEWALL_REJECTED_HALF_OPEN,
        RejectReason::ForcedOpen => Status::SURGEWALL_REJECTED_FORCED_OPEN,
    }
}

/// What a binding needs to admit calls without a call into the library: the breaker's packed
/// state word and the salt of its permits. Valid while any handle to the breaker lives.
///
/// Reading `*state_word` atomically (acquire): `state = word & 7` (a `surgewall_state`),
/// `generation = word >> 24`. When the state is CLOSED, DISABLED or METRICS_ONLY and
/// `times_calls` is false, the permit `{generation ^ salt, 0}` is exactly what
/// `surgewall_breaker_acquire` would return; in every other case call it.
///
/// The salt has only its top 24 bits set and is never zero; the generation fits the low 40.
/// A half-open probe's token also carries the probe's number in its top 24 bits (under the
/// salt), so probes are told apart; bindings never build those (HALF_OPEN is not an admitting
/// state). A token whose top 24 bits are neither the salt nor the salt over a checked probe
/// number is `SURGEWALL_INVALID_PERMIT`: a zeroed permit always, one with a bit of its top 24
/// flipped always, another breaker's unless the two breakers' ids are a multiple of 2^24 - 1
/// apart (or, with a chance of `half_open_calls` in 2^24, its salt reads as a probe number),
/// a forged one with a chance of `1 + half_open_calls` in 2^24 of passing.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_breaker_fast_path {
    /// The packed state word (read it with an atomic acquire load; never write it).
    pub state_word: *const u64,
    /// `permit.token = generation ^ salt` (only the top 24 bits are set, never zero).
    pub salt: u64,
    /// Whether permits carry a start time (then acquire through the library).
    pub times_calls: bool,
}

/// Fills `*out` with the breaker's fast-path description (see `surgewall_breaker_fast_path`).
#[no_mangle]
pub extern "C" fn surgewall_breaker_get_fast_path(
    b: *const surgewall_breaker,
    out: *mut surgewall_breaker_fast_path,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let (breaker, salt) = salted(b)?;
        write(
            out,
            surgewall_breaker_fast_path {
                state_word: breaker.state_word_ptr(),
                salt,
                times_calls: breaker.config().times_calls(),
            },
        )
    })
}

/// The fallback payload configured for this breaker: `*body`/`*body_len` and
/// `*content_type`/`*content_type_len` point into the breaker and stay valid while a handle to
/// it lives. Without a fallback it succeeds with NULL pointers and lengths 0.
#[no_mangle]
pub extern "C" fn surgewall_breaker_fallback(
    b: *const surgewall_breaker,
    body: *mut *const u8,
    body_len: *mut usize,
    content_type: *mut *const u8,
    content_type_len: *mut usize,
) -> Status {
    boundary(|| {
        let fallback = surgewall_breaker::get(b)?.fallback();
        write_fallback(fallback, body, body_len, content_type, content_type_len)
    })
}

/// Points the out-params at `fallback`'s body and content type (NULL and 0 without one).
pub(crate) fn write_fallback(
    fallback: Option<&engine::Fallback>,
    body: *mut *const u8,
    body_len: *mut usize,
    content_type: *mut *const u8,
    content_type_len: *mut usize,
) -> Result<(), Status> {
    non_null(body)?;
    non_null(body_len)?;
    non_null(content_type)?;
    non_null(content_type_len)?;
    let (bp, bl, cp, cl) = match fallback {
        Some(f) => (
            f.body().as_ptr(),
            f.body().len(),
            f.content_type().as_ptr(),
            f.content_type().len(),
        ),
        None => (std::ptr::null(), 0, std::ptr::null(), 0),
    };
    write(body, bp)?;
    write(body_len, bl)?;
    write(content_type, cp)?;
    write(content_type_len, cl)
}

/// Asks for a permit. `SURGEWALL_OK` writes `*permit_out`; a `SURGEWALL_REJECTED_*` status
/// writes `*retry_after_ns_out` (if not NULL: nanoseconds until the breaker may admit,
/// UINT64_MAX for an indefinite forced open; for `SURGEWALL_REJECTED_HALF_OPEN` a short hint
/// to poll on, a tenth of `open_for` within [1 ms, 1 s] and never past the reclaim of stuck
/// probes). Every OK must be followed by exactly one
/// `surgewall_breaker_record` (or `_release`).
#[no_mangle]
pub extern "C" fn surgewall_breaker_acquire(
    b: *const surgewall_breaker,
    permit_out: *mut surgewall_permit,
    retry_after_ns_out: *mut u64,
) -> Status {
    // The common case (an admitting state, untimed) is loads, tests and two stores: inline,
    // with no call, so the function needs no stack frame for it. Everything else, every
    // misuse included, takes the checked path from the start.
    fast_or(
        || {
            let Ok((breaker, salt)) = salted(b) else {
                return false;
            };
            let Some(p) = breaker.try_acquire_raw_inline() else {
                return false;
            };
            write(
                permit_out,
                surgewall_permit {
                    token: p.generation ^ salt,
                    start_ns: p.start_ns,
                },
            )
            .is_ok()
        },
        || acquire_checked(b, permit_out, retry_after_ns_out),
    )
}

/// `extern "C"` (it cannot unwind), so the call above is a plain tail call.
#[inline(never)]
extern "C" fn acquire_checked(
    b: *const surgewall_breaker,
    permit_out: *mut surgewall_permit,
    retry_after_ns_out: *mut u64,
) -> Status {
    boundary(|| {
        non_null(permit_out)?;
        let (breaker, salt) = salted(b)?;
        match breaker.try_acquire_raw() {
            Ok(p) => write(
                permit_out,
                surgewall_permit {
                    token: seal(p.generation) ^ salt,
                    start_ns: p.start_ns,
                },
            ),
            Err(r) => {
                if !retry_after_ns_out.is_null() {
                    write(retry_after_ns_out, ns(r.retry_after))?;
                }
                Err(reject_status(r.reason))
            }
        }
    })
}

/// The permit `p` as `breaker` takes it, if it carries `salt`.
#[inline(always)]
fn raw(breaker: &Breaker, salt: u64, p: surgewall_permit) -> Result<RawPermit, Status> {
    unsalt(salt, p.token, p.start_ns, || {
        breaker.config().half_open_calls()
    })
}

/// The engine's permit from a token `seal(generation) ^ salt`, if it carries `salt` (over a
/// probe number of at most `max_probes()`, when it carries one).
#[inline(always)]
pub(crate) fn unsalt(
    salt: u64,
    token: u64,
    start_ns: u64,
    max_probes: impl FnOnce() -> u32,
) -> Result<RawPermit, Status> {
    let t = token ^ salt;
    let generation = if t & !GENERATION_MASK == 0 {
        t
    } else {
        unseal_probe(t, max_probes()).ok_or(Status::SURGEWALL_INVALID_PERMIT)?
    };
    Ok(RawPermit {
        generation,
        start_ns,
    })
}

pub(crate) fn recorded(r: Recorded) -> Result<(), Status> {
    match r {
        Recorded::Counted | Recorded::Disabled => Ok(()),
        Recorded::Late => Err(Status::SURGEWALL_LATE_RESULT),
        Recorded::Unexpected => Err(Status::SURGEWALL_UNEXPECTED_RESULT),
        Recorded::Invalid => Err(Status::SURGEWALL_INVALID_PERMIT),
    }
}

/// Records how the call made under `permit` ended (`outcome` is a `surgewall_outcome`); the
/// breaker times it when it times calls. `SURGEWALL_LATE_RESULT`: the breaker moved on and the
/// result was dropped (counted in `late_results`).
#[no_mangle]
pub extern "C" fn surgewall_breaker_record(
    b: *const surgewall_breaker,
    permit: surgewall_permit,
    outcome: i32,
) -> Status {
    // The common case (a success counted by the engine's fast path) is loads, tests and one
    // atomic add: inline, with no call, so the function needs no stack frame for it.
    // Everything else, every misuse included, takes the checked path from the start.
    const SUCCESS: i32 = surgewall_outcome::Success as i32;
    if outcome != SUCCESS {
        return record_checked(b, permit, outcome);
    }
    fast_or(
        || {
            let Ok((breaker, salt)) = salted(b) else {
                return false;
            };
            let Ok(p) = raw(breaker, salt, permit) else {
                return false;
            };
            breaker.try_record_success_inline(p)
        },
        || record_checked(b, permit, SUCCESS),
    )
}

/// `extern "C"` (it cannot unwind), so the call above is a plain tail call.
#[inline(never)]
extern "C" fn record_checked(
    b: *const surgewall_breaker,
    permit: surgewall_permit,
    outcome: i32,
) -> Status {
    boundary(|| {
        let (breaker, salt) = salted(b)?;
        let o = self::outcome(outcome)?;
        recorded(breaker.record_raw(raw(breaker, salt, permit)?, o))
    })
}

/// Records the outcome of a call that took `duration_ns` (negative is `SURGEWALL_INVALID_ARG`).
#[no_mangle]
pub extern "C" fn surgewall_breaker_record_timed(
    b: *const surgewall_breaker,
    permit: surgewall_permit,
    outcome: i32,
    duration_ns: i64,
) -> Status {
    boundary(|| {
        let (breaker, salt) = salted(b)?;
        let o = self::outcome(outcome)?;
        let d = u64::try_from(duration_ns).map_err(|_| Status::SURGEWALL_INVALID_ARG)?;
        recorded(breaker.record_raw_with_duration(
            raw(breaker, salt, permit)?,
            o,
            Duration::from_nanos(d),
        ))
    })
}

/// Releases a permit whose call was never made (counts nowhere; a probe slot comes back).
#[no_mangle]
pub extern "C" fn surgewall_breaker_release(
    b: *const surgewall_breaker,
    permit: surgewall_permit,
) -> Status {
    surgewall_breaker_record(b, permit, surgewall_outcome::Ignored as i32)
}

/// The current state (no side effects).
#[no_mangle]
pub extern "C" fn surgewall_breaker_state(
    b: *const surgewall_breaker,
    state_out: *mut surgewall_state,
) -> Status {
    boundary(|| {
        non_null(state_out)?;
        write(state_out, surgewall_breaker::get(b)?.state().into())
    })
}

/// Nanoseconds left of an OPEN or timed FORCED_OPEN wait, UINT64_MAX for an indefinite forced
/// open, 0 in every other state (HALF_OPEN included: a rejection there carries a short hint).
#[no_mangle]
pub extern "C" fn surgewall_breaker_retry_after(
    b: *const surgewall_breaker,
    ns_out: *mut u64,
) -> Status {
    boundary(|| {
        non_null(ns_out)?;
        write(
            ns_out,
            surgewall_breaker::get(b)?.retry_after().map_or(0, ns),
        )
    })
}

/// Fills `*out` with a snapshot of the breaker's metrics.
#[no_mangle]
pub extern "C" fn surgewall_breaker_metrics(
    b: *const surgewall_breaker,
    out: *mut surgewall_breaker_stats,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let m = surgewall_breaker::get(b)?.metrics();
        write(
            out,
            surgewall_breaker_stats {
                state: m.state.into(),
                generation: m.generation,
                time_in_state_ns: ns(m.time_in_state),
                window: surgewall_window_counts::new(m.window, m.failure_rate, m.slow_call_rate),
                last_window: surgewall_window_counts::new(
                    m.last_window,
                    m.last_failure_rate,
                    m.last_slow_call_rate,
                ),
                minimum_calls: m.minimum_calls,
                failure_rate_threshold: m.failure_rate_threshold.unwrap_or(-1.0),
                successes: m.successes,
                failures: m.failures,
                slow_calls: m.slow_calls,
                ignored: m.ignored,
                rejected_open: m.rejected_open,
                rejected_half_open: m.rejected_half_open,
                late_results: m.late_results,
                unexpected_results: m.unexpected_results,
                consecutive_failures: m.consecutive_failures,
                consecutive_opens: m.consecutive_opens,
                half_open_admitted: m.half_open_admitted,
                half_open_reported: m.half_open_reported,
                retry_after_ns: m.retry_after.map_or(0, ns),
                transitions: m.transitions,
            },
        )
    })
}

fn manual(b: *const surgewall_breaker, f: impl FnOnce(&Breaker) -> Result<(), Status>) -> Status {
    boundary(|| f(surgewall_breaker::get(b)?))
}

/// Opens the breaker by hand for `duration_ns` (then it probes), or until another manual
/// transition when `duration_ns` is negative or longer than 2^47 µs (about 4.46 years, the
/// longest wait a breaker keeps).
#[no_mangle]
pub extern "C" fn surgewall_breaker_force_open(
    b: *const surgewall_breaker,
    duration_ns: i64,
) -> Status {
    manual(b, |br| {
        br.force_open(u64::try_from(duration_ns).ok().map(Duration::from_nanos));
        Ok(())
    })
}

/// Opens the breaker by hand as a trip would (resilience4j's `transitionToOpenState`), unlike
/// `surgewall_breaker_force_open`: rejections say `SURGEWALL_REJECTED_OPEN`, the open wait
/// applies with its backoff of consecutive opens, then the next caller starts probing. A
/// no-op when already OPEN.
#[no_mangle]
pub extern "C" fn surgewall_breaker_open(b: *const surgewall_breaker) -> Status {
    manual(b, |br| {
        br.open();
        Ok(())
    })
}

/// Every call passes, nothing is recorded.
#[no_mangle]
pub extern "C" fn surgewall_breaker_disable(b: *const surgewall_breaker) -> Status {
    manual(b, |br| {
        br.disable();
        Ok(())
    })
}

/// Every call passes and is recorded; the breaker never trips.
#[no_mangle]
pub extern "C" fn surgewall_breaker_metrics_only(b: *const surgewall_breaker) -> Status {
    manual(b, |br| {
        br.metrics_only();
        Ok(())
    })
}

/// Closes the breaker (a no-op when CLOSED).
#[no_mangle]
pub extern "C" fn surgewall_breaker_close(b: *const surgewall_breaker) -> Status {
    manual(b, |br| {
        br.close();
        Ok(())
    })
}

/// Starts probing now, from OPEN or FORCED_OPEN; `SURGEWALL_INVALID_TRANSITION` from CLOSED.
#[no_mangle]
pub extern "C" fn surgewall_breaker_half_open(b: *const surgewall_breaker) -> Status {
    manual(b, |br| {
        br.half_open()
            .map_err(|_| Status::SURGEWALL_INVALID_TRANSITION)
    })
}

/// A fresh CLOSED episode from any state.
#[no_mangle]
pub extern "C" fn surgewall_breaker_reset(b: *const surgewall_breaker) -> Status {
    manual(b, |br| {
        br.reset();
        Ok(())
    })
}

/// Moves the failure-rate threshold (in (0, 1]); the previous one goes to `*old_out` if not NULL.
#[no_mangle]
pub extern "C" fn surgewall_breaker_set_failure_rate_threshold(
    b: *const surgewall_breaker,
    threshold: f64,
    old_out: *mut f64,
) -> Status {
    boundary(|| {
        let br = surgewall_breaker::get(b)?;
        let old = br
            .set_failure_rate_threshold(threshold)
            .map_err(|_| Status::SURGEWALL_INVALID_ARG)?;
        if !old_out.is_null() {
            write(old_out, old)?;
        }
        Ok(())
    })
}

/// The breaker's process-unique id (the `source` of its events).
#[no_mangle]
pub extern "C" fn surgewall_breaker_id(b: *const surgewall_breaker, id_out: *mut u64) -> Status {
    boundary(|| {
        non_null(id_out)?;
        write(id_out, surgewall_breaker::get(b)?.id())
    })
}

/// Copies the breaker's name, NUL-terminated, into `buf` (`cap` bytes). `*len_out` receives the
/// name's length without the NUL, also when the status is `SURGEWALL_BUFFER_TOO_SMALL`.
#[no_mangle]
pub extern "C" fn surgewall_breaker_name(
    b: *const surgewall_breaker,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> Status {
    boundary(|| {
        non_null(len_out)?;
        copy_out(surgewall_breaker::get(b)?.name(), buf, cap, len_out)
    })
}

// Two registers on SysV x86-64 and AArch64, not memory: see `surgewall_permit`.
const _: () = assert!(std::mem::size_of::<surgewall_permit>() == 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_numbers_travel_checked_and_one_flipped_bit_never_passes() {
        let salt = salt_of(7, 3);
        let plain = 0x12_3456_789a;
        assert_eq!(seal(plain), plain);
        for number in [1u64, 2, 3, 14, 4095, 65_535] {
            let g = plain | number << PROBE_SHIFT;
            let token = seal(g) ^ salt;
            let back = unsalt(salt, token, 9, || 65_535).unwrap();
            assert_eq!((back.generation, back.start_ns), (g, 9));
            // Beyond the breaker's half_open_calls: refused.
            assert_eq!(
                unsalt(salt, token, 0, || number as u32 - 1),
                Err(Status::SURGEWALL_INVALID_PERMIT)
            );
            for bit in 40..64 {
                assert_eq!(
                    unsalt(salt, token ^ 1 << bit, 0, || 65_535),
                    Err(Status::SURGEWALL_INVALID_PERMIT),
                    "number {number}, bit {bit}"
                );
            }
        }
        // An ordinary token with one salt bit flipped: refused too.
        for bit in 40..64 {
            assert!(unsalt(salt, (plain ^ salt) ^ 1 << bit, 0, || 65_535).is_err());
        }
    }

    #[test]
    fn salts_live_in_the_top_24_bits_and_are_never_zero() {
        for key in [1, 2, SALTS / 2, SALTS - 1, SALTS] {
            for id in (0..4096).chain([SALTS - 1, SALTS, SALTS + 1, u64::MAX >> 8, u64::MAX]) {
                let s = salt_of(id, key);
                assert_eq!(s & GENERATION_MASK, 0, "id {id} key {key}");
                assert_ne!(s, 0, "id {id} key {key}");
            }
        }
        assert!(init_process_key() <= SALTS && process_key() >= 1);
    }

    #[test]
    fn breakers_get_distinct_salts_unless_their_ids_are_a_multiple_of_the_salt_count_apart() {
        let key = process_key();
        let mut seen = std::collections::HashSet::new();
        for id in 1..100_000 {
            assert!(seen.insert(salt_of(id, key)), "id {id}");
        }
        assert_eq!(salt_of(7, key), salt_of(7 + SALTS, key));
    }

    #[test]
    fn tokens_carry_the_generation_and_refuse_other_salts() {
        let mut cfg = std::ptr::null_mut();
        assert_eq!(
            crate::surgewall_breaker_config_new(&mut cfg),
            Status::SURGEWALL_OK
        );
        let mut b = std::ptr::null_mut();
        let name = "salted";
        let null_err = std::ptr::null_mut();
        assert_eq!(
            surgewall_breaker_new(name.as_ptr(), name.len(), cfg, &mut b, null_err),
            Status::SURGEWALL_OK
        );
        let breaker = surgewall_breaker::get(b).unwrap();
        breaker.reset(); // generation 1
        let mut p = surgewall_permit {
            token: 0,
            start_ns: 0,
        };
        assert_eq!(
            surgewall_breaker_acquire(b, &mut p, std::ptr::null_mut()),
            Status::SURGEWALL_OK
        );
        assert_eq!(p.token, 1 ^ salt(breaker));
        assert_eq!(
            salted(b).unwrap().1,
            salt(breaker),
            "the slot keeps the salt"
        );
        assert_eq!(raw(breaker, salt(breaker), p).unwrap().generation, 1);
        for bad in [
            0,
            1,
            p.token ^ (1 << 40),
            p.token ^ (1 << 63),
            p.token & GENERATION_MASK,
        ] {
            let forged = surgewall_permit { token: bad, ..p };
            assert_eq!(
                surgewall_breaker_record(b, forged, 0),
                Status::SURGEWALL_INVALID_PERMIT,
                "token {bad:#x}"
            );
        }
        assert_eq!(surgewall_breaker_record(b, p, 0), Status::SURGEWALL_OK);
        assert_eq!(surgewall_breaker_free(b), Status::SURGEWALL_OK);
    }
}
