//! `surgewall_breaker`: circuit breakers over the C ABI.
//!
//! All functions taking a `const surgewall_breaker *` are thread-safe and lock-free; the hot
//! path is `surgewall_breaker_acquire` then `surgewall_breaker_record`, with the permit as a
//! plain value in between (no allocation, no lock held across the caller's call).

use std::time::Duration;

use engine::{Breaker, Outcome, RawPermit, Recorded, RejectReason, State};

use crate::builder::consume;
use crate::config::surgewall_breaker_config;
use crate::error::{report, report_config, surgewall_error};
use crate::handle::{opaque_handle, Handle};
use crate::status::{boundary, copy_out, non_null, utf8, write, Status};

/// The salt of a breaker's permits: its id mixed with a per-process random key, so a zeroed,
/// forged or foreign permit fails the check (`check = generation ^ salt`). One xor, so the
/// check costs nothing measurable on the hot path.
#[inline]
pub(crate) fn salt(b: &Breaker) -> u64 {
    b.id() ^ process_key()
}

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
    let k = h.finish() | 1;
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

opaque_handle!(surgewall_breaker => Breaker, tag 4);

/// A permit: what `surgewall_breaker_acquire` hands out and `surgewall_breaker_record` takes
/// back, exactly once. A plain value: copy it, keep it on the stack, pass it across threads.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct surgewall_permit {
    /// The breaker generation it was issued under (older ones are dropped as late).
    pub generation: u64,
    /// When the call started (clock ns), or 0 when the breaker does not time calls.
    pub start_ns: u64,
    /// Ties the permit to the breaker that issued it (a zeroed or foreign permit is refused).
    pub check: u64,
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

/// Counts of a window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct surgewall_window_counts {
    /// Calls recorded (successes and failures).
    pub calls: u64,
    /// Failures among them.
    pub failures: u64,
    /// Slow calls among them.
    pub slow: u64,
    /// failures / calls (0 without calls).
    pub failure_rate: f64,
    /// slow / calls (0 without calls).
    pub slow_rate: f64,
}

impl From<engine::breaker::Counts> for surgewall_window_counts {
    fn from(c: engine::breaker::Counts) -> Self {
        surgewall_window_counts {
            calls: c.calls,
            failures: c.failures,
            slow: c.slow,
            failure_rate: c.failure_rate(),
            slow_rate: c.slow_rate(),
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
    /// The current window.
    pub window: surgewall_window_counts,
    /// The window that ended the last episode.
    pub last_window: surgewall_window_counts,
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
    /// Nanoseconds until the breaker admits again (0: it admits now; UINT64_MAX: never by itself).
    pub retry_after_ns: u64,
    /// `transitions[from][to]`, indexed by `surgewall_state`.
    pub transitions: [[u64; 6]; 6],
}

/// Creates a breaker named by `name` (`name_len` bytes of UTF-8) from `cfg`, which is consumed
/// whatever the outcome. On `SURGEWALL_INVALID_CONFIG` (or another error), `*err_out` (if not
/// NULL) receives an error object naming the field.
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
        let name = utf8(name, name_len)
            .map_err(|s| report(err_out, s, "name", "the name must be valid UTF-8"))?;
        let config = state
            .builder
            .build()
            .map_err(|e| report_config(err_out, &e))?;
        let (clock, fallback) = (state.clock, state.fallback);
        let mut builder = Breaker::builder(name, config).clock(clock);
        if let Some(f) = fallback {
            builder = builder.fallback(f);
        }
        let breaker = builder.build();
        write(out, surgewall_breaker::insert(breaker)?)
    })
}

/// A second handle to the same breaker.
#[no_mangle]
pub extern "C" fn surgewall_breaker_clone(
    b: *const surgewall_breaker,
    out: *mut *mut surgewall_breaker,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let shared = surgewall_breaker::get_arc(b)?;
        write(out, surgewall_breaker::insert_arc(shared)?)
    })
}

/// Frees one handle (the breaker lives while other handles do). NULL is a no-op; a second free
/// is `SURGEWALL_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn surgewall_breaker_free(b: *mut surgewall_breaker) -> Status {
    if b.is_null() {
        return Status::SURGEWALL_OK;
    }
    boundary(|| surgewall_breaker::remove(b).map(drop))
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
/// `times_calls` is false, the permit `{generation, 0, generation ^ salt}` is exactly what
/// `surgewall_breaker_acquire` would return; in every other case call it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_breaker_fast_path {
    /// The packed state word (read it with an atomic acquire load; never write it).
    pub state_word: *const u64,
    /// `permit.check = generation ^ salt`.
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
        let breaker = surgewall_breaker::get(b)?;
        write(
            out,
            surgewall_breaker_fast_path {
                state_word: breaker.state_word_ptr(),
                salt: salt(breaker),
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
        non_null(body)?;
        non_null(body_len)?;
        non_null(content_type)?;
        non_null(content_type_len)?;
        let (bp, bl, cp, cl) = match surgewall_breaker::get(b)?.fallback() {
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
    })
}

/// Asks for a permit. `SURGEWALL_OK` writes `*permit_out`; a `SURGEWALL_REJECTED_*` status
/// writes `*retry_after_ns_out` (if not NULL: nanoseconds until the breaker may admit,
/// UINT64_MAX for an indefinite forced open). Every OK must be followed by exactly one
/// `surgewall_breaker_record` (or `_release`).
#[no_mangle]
pub extern "C" fn surgewall_breaker_acquire(
    b: *const surgewall_breaker,
    permit_out: *mut surgewall_permit,
    retry_after_ns_out: *mut u64,
) -> Status {
    boundary(|| {
        non_null(permit_out)?;
        let breaker = surgewall_breaker::get(b)?;
        match breaker.try_acquire_raw() {
            Ok(p) => write(
                permit_out,
                surgewall_permit {
                    generation: p.generation,
                    start_ns: p.start_ns,
                    check: p.generation ^ salt(breaker),
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

#[inline(always)]
fn raw(breaker: &Breaker, p: surgewall_permit) -> Result<RawPermit, Status> {
    if p.check ^ salt(breaker) != p.generation {
        return Err(Status::SURGEWALL_INVALID_PERMIT);
    }
    Ok(RawPermit {
        generation: p.generation,
        start_ns: p.start_ns,
    })
}

fn recorded(r: Recorded) -> Result<(), Status> {
    match r {
        Recorded::Counted | Recorded::Disabled => Ok(()),
        Recorded::Late => Err(Status::SURGEWALL_LATE_RESULT),
        Recorded::Unexpected => Err(Status::SURGEWALL_UNEXPECTED_RESULT),
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
    boundary(|| {
        let breaker = surgewall_breaker::get(b)?;
        let o = self::outcome(outcome)?;
        recorded(breaker.record_raw(raw(breaker, permit)?, o))
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
        let breaker = surgewall_breaker::get(b)?;
        let o = self::outcome(outcome)?;
        let d = u64::try_from(duration_ns).map_err(|_| Status::SURGEWALL_INVALID_ARG)?;
        recorded(breaker.record_raw_with_duration(
            raw(breaker, permit)?,
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

/// Nanoseconds until the breaker admits again: 0 when it admits now, UINT64_MAX for an
/// indefinite forced open.
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
                window: m.window.into(),
                last_window: m.last_window.into(),
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
/// transition when `duration_ns` is negative.
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
