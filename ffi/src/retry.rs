//! Retry policies, schedules and budgets over the C ABI.
//!
//! A C caller drives retries itself: create a schedule per operation, make an attempt, ask
//! `surgewall_retry_schedule_next` what to do, sleep the returned delay (or stop), repeat.

use std::sync::{Arc, Mutex};

use engine::clock::Clock;
use engine::{
    AttemptOutcome, Backoff, BreakerWait, ConfigError, Decision, Hint, Jitter, RetryBudget,
    RetryBudgetConfig, RetryBudgetRegistry, RetryPolicy, RetrySchedule,
};

use crate::breaker::{ns, surgewall_breaker};
use crate::builder::{consume, set, Builder};
use crate::clock::surgewall_mock_clock;
use crate::config::duration;
use crate::error::{report, report_config, surgewall_error};
use crate::handle::{opaque_handle, Handle};
use crate::status::{boundary, non_null, write, Status};

/// A retry budget: retries <= ratio x requests + a floor per second over a sliding window,
/// shared by every policy that uses it. Thread-safe.
pub struct surgewall_retry_budget {
    _private: [u8; 0],
}

opaque_handle!(surgewall_retry_budget => Arc<RetryBudget>, tag 9);

/// A snapshot of a retry budget.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_retry_budget_stats {
    /// Requests in the window.
    pub requests: u64,
    /// Retries granted in the window.
    pub retries: u64,
    /// Retries the rule allows in the window now.
    pub allowed: f64,
    /// Retries still grantable now.
    pub remaining: u64,
    /// Retries granted, ever.
    pub granted_total: u64,
    /// Retries refused, ever.
    pub refused_total: u64,
}

fn budget_config(
    ratio: f64,
    min_per_second: f64,
    window_secs: u32,
) -> Result<RetryBudgetConfig, ConfigError> {
    RetryBudgetConfig::new(ratio, min_per_second, window_secs)
}

/// Creates a budget of its own: `ratio` of requests (in [0, 1]) plus `min_per_second` retries
/// a second, over the last `window_secs` seconds (1..=60). `clock` may be NULL or a mock clock.
#[no_mangle]
pub extern "C" fn surgewall_retry_budget_new(
    ratio: f64,
    min_per_second: f64,
    window_secs: u32,
    clock: *const surgewall_mock_clock,
    out: *mut *mut surgewall_retry_budget,
    err_out: *mut *mut surgewall_error,
) -> Status {
    boundary(|| {
        non_null(out).map_err(|s| report(err_out, s, "out", "out is NULL"))?;
        let config = budget_config(ratio, min_per_second, window_secs)
            .map_err(|e| report_config(err_out, &e))?;
        let budget = if clock.is_null() {
            RetryBudget::new(config)
        } else {
            let c = surgewall_mock_clock::get(clock)
                .map_err(|s| report(err_out, s, "clock", "the clock handle is invalid"))?;
            RetryBudget::with_clock(config, c.clock.clone(), engine::breaker::default_events())
        };
        write(out, surgewall_retry_budget::insert(Arc::new(budget))?)
    })
}

/// The process-wide budget named `name` (UTF-8 without NUL; listed under that name in the
/// catalog the agent serves), created with this configuration
/// on first use (later calls with the same name get the same budget, whatever configuration
/// they pass). The name keeps its budget registered (a few hundred bytes) after every handle
/// to it is freed, until `surgewall_retry_budget_unshare`: a process that makes budgets of
/// ever new names must unshare the ones it is done with.
#[no_mangle]
pub extern "C" fn surgewall_retry_budget_shared(
    name: *const u8,
    name_len: usize,
    ratio: f64,
    min_per_second: f64,
    window_secs: u32,
    out: *mut *mut surgewall_retry_budget,
    err_out: *mut *mut surgewall_error,
) -> Status {
    boundary(|| {
        non_null(out).map_err(|s| report(err_out, s, "out", "out is NULL"))?;
        let name = crate::status::name(name, name_len)
            .map_err(|(s, why)| report(err_out, s, "name", why))?;
        let config = budget_config(ratio, min_per_second, window_secs)
            .map_err(|e| report_config(err_out, &e))?;
        let budget = RetryBudgetRegistry::global().get_or_create(name, config);
        engine::catalog::Catalog::global().join_retry_budget(name, &budget);
        write(out, surgewall_retry_budget::insert(budget)?)
    })
}

/// Forgets the process-wide budget named `name`: the next `surgewall_retry_budget_shared` of
/// that name creates a new one; handles to the old one keep it working until freed (its memory
/// goes with the last). `SURGEWALL_NOT_FOUND` when no budget has that name.
#[no_mangle]
pub extern "C" fn surgewall_retry_budget_unshare(name: *const u8, name_len: usize) -> Status {
    boundary(|| {
        let name = crate::status::utf8(name, name_len)?;
        RetryBudgetRegistry::global()
            .remove(name)
            .map(drop)
            .ok_or(Status::SURGEWALL_NOT_FOUND)
    })
}

/// Frees one handle to a budget. NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_retry_budget_free(b: *mut surgewall_retry_budget) -> Status {
    surgewall_retry_budget::free(b)
}

/// Counts a request (a first attempt) toward the budget.
#[no_mangle]
pub extern "C" fn surgewall_retry_budget_record_request(
    b: *const surgewall_retry_budget,
) -> Status {
    boundary(|| {
        surgewall_retry_budget::get(b)?.record_request();
        Ok(())
    })
}

/// Asks for one retry: `SURGEWALL_OK` (granted and counted) or
/// `SURGEWALL_RETRY_BUDGET_EXHAUSTED`.
#[no_mangle]
pub extern "C" fn surgewall_retry_budget_try_retry(b: *const surgewall_retry_budget) -> Status {
    boundary(|| {
        if surgewall_retry_budget::get(b)?.try_retry() {
            Ok(())
        } else {
            Err(Status::SURGEWALL_RETRY_BUDGET_EXHAUSTED)
        }
    })
}

/// Fills `*out` with a snapshot.
#[no_mangle]
pub extern "C" fn surgewall_retry_budget_metrics(
    b: *const surgewall_retry_budget,
    out: *mut surgewall_retry_budget_stats,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let m = surgewall_retry_budget::get(b)?.metrics();
        write(
            out,
            surgewall_retry_budget_stats {
                requests: m.requests,
                retries: m.retries,
                allowed: m.allowed,
                remaining: m.remaining,
                granted_total: m.granted_total,
                refused_total: m.refused_total,
            },
        )
    })
}

// ---- policies ------------------------------------------------------------------------------

/// A retry policy under construction (single owner; consumed by `surgewall_retry_policy_new`).
/// Defaults (read them with `surgewall_retry_defaults_get`): 3 attempts, exponential backoff from
/// 100 ms doubling, full jitter, no cap on
/// delays (`max_delay` caps only when set), a server's Retry-After waited in full (no
/// `max_retry_after`), no elapsed limit, wait for an open breaker, no budget.
pub struct surgewall_retry_config {
    _private: [u8; 0],
}

opaque_handle!(surgewall_retry_config => Builder<engine::retry::RetryPolicyBuilder>, tag 10);

/// A validated retry policy: shareable and thread-safe; each operation takes its own schedule.
pub struct surgewall_retry_policy {
    _private: [u8; 0],
}

opaque_handle!(surgewall_retry_policy => RetryPolicy, tag 11);

/// The retry state of one operation. Single owner: use it from one thread at a time.
pub struct surgewall_retry_schedule {
    _private: [u8; 0],
}

opaque_handle!(surgewall_retry_schedule => Mutex<RetrySchedule>, tag 12);

/// How an attempt went (pass one as the `outcome` of `surgewall_retry_schedule_next`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum surgewall_attempt_outcome {
    /// It succeeded: the schedule stops.
    Success = 0,
    /// It failed in a way worth retrying.
    Retryable = 1,
    /// It failed in a way retrying cannot fix: the schedule stops.
    NotRetryable = 2,
}

/// Why a schedule stopped.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum surgewall_stop_reason {
    /// The last attempt succeeded.
    Succeeded = 0,
    /// The last error was not retryable.
    NotRetryable = 1,
    /// `max_attempts` attempts were made.
    MaxAttempts = 2,
    /// The next attempt would not fit in `max_elapsed`.
    MaxElapsed = 3,
    /// The retry budget refused.
    BudgetExhausted = 4,
    /// The breaker rejects and the policy does not (or cannot) wait for it.
    BreakerOpen = 5,
    /// The server's Retry-After is longer than `max_retry_after`, or waiting it would overrun
    /// `max_elapsed`: a Retry-After is never shortened, so the schedule stops.
    RetryAfterTooLong = 6,
}

/// The jitter applied to computed delays (pass one to `surgewall_retry_config_set_jitter`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum surgewall_jitter {
    /// The computed delay as is.
    None = 0,
    /// Uniform in [0, delay].
    Full = 1,
    /// Uniform in [delay / 2, delay].
    Equal = 2,
}

/// What to do after an attempt.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_retry_decision {
    /// Retry after `delay_ns` (true) or stop for `stop_reason` (false).
    pub retry: bool,
    /// Nanoseconds to wait before the next attempt (when `retry`).
    pub delay_ns: u64,
    /// Why the schedule stopped (a `surgewall_stop_reason`, when not `retry`).
    pub stop_reason: i32,
}

/// Applies `f` to the builder, recording the first value it could not represent.
#[track_caller]
fn retry_set(
    cfg: *mut surgewall_retry_config,
    f: impl FnOnce(
        engine::retry::RetryPolicyBuilder,
    ) -> Result<engine::retry::RetryPolicyBuilder, ConfigError>,
) -> Status {
    set(cfg, |b: &mut engine::retry::RetryPolicyBuilder| {
        *b = f(b.clone())?;
        Ok(())
    })
}

/// Creates a retry configuration with the defaults.
#[no_mangle]
pub extern "C" fn surgewall_retry_config_new(out: *mut *mut surgewall_retry_config) -> Status {
    boundary(|| {
        non_null(out)?;
        write(
            out,
            surgewall_retry_config::insert(Builder::new(RetryPolicy::builder()))?,
        )
    })
}

/// Names the policy made from `cfg`, and so lists it in the catalog the agent serves (its
/// operations, retries and stops by reason; see `surgewall_keyed_breaker_config_set_name`).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_name(
    cfg: *mut surgewall_retry_config,
    name: *const u8,
    name_len: usize,
) -> Status {
    set(cfg, |b: &mut engine::retry::RetryPolicyBuilder| {
        *b = b.clone().name(crate::agent::catalog_name(name, name_len)?);
        Ok(())
    })
}

/// Frees a configuration that was never consumed. NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_retry_config_free(cfg: *mut surgewall_retry_config) -> Status {
    surgewall_retry_config::free(cfg)
}

/// Attempts in all, the first included (>= 1).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_max_attempts(
    cfg: *mut surgewall_retry_config,
    n: u32,
) -> Status {
    retry_set(cfg, |b| Ok(b.max_attempts(n)))
}

/// No wait between attempts: each retry starts as soon as the schedule allows it. The one way
/// to retry without waiting (every other backoff's delays are longer than zero: a zero delay
/// is reported by `surgewall_retry_policy_new`, naming the field).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_backoff_none(
    cfg: *mut surgewall_retry_config,
) -> Status {
    retry_set(cfg, |b| Ok(b.backoff(Backoff::none())))
}

/// The same delay before every retry (> 0).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_backoff_constant(
    cfg: *mut surgewall_retry_config,
    delay_ns: i64,
) -> Status {
    retry_set(cfg, |b| {
        Ok(b.backoff(Backoff::constant(duration("backoff.delay", delay_ns)?)))
    })
}

/// `initial + (n - 1) * step` before the n-th retry (`initial` > 0, `step` >= 0).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_backoff_linear(
    cfg: *mut surgewall_retry_config,
    initial_ns: i64,
    step_ns: i64,
) -> Status {
    retry_set(cfg, |b| {
        Ok(b.backoff(Backoff::linear(
            duration("backoff.initial", initial_ns)?,
            duration("backoff.step", step_ns)?,
        )))
    })
}

/// `initial * multiplier^(n - 1)` before the n-th retry (`initial` > 0, `multiplier` >= 1).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_backoff_exponential(
    cfg: *mut surgewall_retry_config,
    initial_ns: i64,
    multiplier: f64,
) -> Status {
    retry_set(cfg, |b| {
        Ok(b.backoff(Backoff::exponential(
            duration("backoff.initial", initial_ns)?,
            multiplier,
        )))
    })
}

/// Decorrelated jitter: each delay uniform in [base, 3 x the previous one], capped (`base` > 0).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_backoff_decorrelated(
    cfg: *mut surgewall_retry_config,
    base_ns: i64,
) -> Status {
    retry_set(cfg, |b| {
        Ok(b.backoff(Backoff::decorrelated_jitter(duration(
            "backoff.base",
            base_ns,
        )?)))
    })
}

/// The jitter (a `surgewall_jitter`). An unknown value is `SURGEWALL_INVALID_ARG` at once and
/// changes nothing (the previous jitter stays in force).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_jitter(
    cfg: *mut surgewall_retry_config,
    jitter: i32,
) -> Status {
    let j = match jitter {
        0 => Jitter::None,
        1 => Jitter::Full,
        2 => Jitter::Equal,
        _ => return Status::SURGEWALL_INVALID_ARG,
    };
    retry_set(cfg, |b| Ok(b.jitter(j)))
}

/// The longest computed (backoff) delay; default: no cap. It never shortens a server's
/// Retry-After (see `surgewall_retry_config_set_max_retry_after`) nor a breaker wait.
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_max_delay(
    cfg: *mut surgewall_retry_config,
    ns: i64,
) -> Status {
    retry_set(cfg, |b| Ok(b.max_delay(duration("max_delay", ns)?)))
}

/// The longest server Retry-After the schedule waits: a longer one stops it with
/// `SURGEWALL_STOP_REASON_RETRY_AFTER_TOO_LONG` (never shortened). Default: no limit but
/// `max_elapsed`.
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_max_retry_after(
    cfg: *mut surgewall_retry_config,
    ns: i64,
) -> Status {
    retry_set(cfg, |b| {
        Ok(b.max_retry_after(duration("max_retry_after", ns)?))
    })
}

/// Never start an attempt that would end after `ns` from the schedule's start.
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_max_elapsed(
    cfg: *mut surgewall_retry_config,
    ns: i64,
) -> Status {
    retry_set(cfg, |b| Ok(b.max_elapsed(duration("max_elapsed", ns)?)))
}

/// How long one attempt may take (used to decide whether the next one fits).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_attempt_timeout(
    cfg: *mut surgewall_retry_config,
    ns: i64,
) -> Status {
    retry_set(cfg, |b| {
        Ok(b.attempt_timeout(duration("attempt_timeout", ns)?))
    })
}

/// When the breaker rejects: wait for it (`stop` false, the default) or stop.
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_stop_on_open_breaker(
    cfg: *mut surgewall_retry_config,
    stop: bool,
) -> Status {
    retry_set(cfg, |b| {
        Ok(b.on_breaker_open(if stop {
            BreakerWait::Stop
        } else {
            BreakerWait::Wait
        }))
    })
}

/// Share `budget` (the policy keeps its own reference).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_budget(
    cfg: *mut surgewall_retry_config,
    budget: *const surgewall_retry_budget,
) -> Status {
    boundary(|| {
        let budget = surgewall_retry_budget::get(budget)?.clone();
        surgewall_retry_config::get(cfg)?.update(|b| {
            *b = b.clone().budget(budget);
            Ok(())
        });
        Ok(())
    })
}

/// Seed the jitter (deterministic tests).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_seed(
    cfg: *mut surgewall_retry_config,
    seed: u64,
) -> Status {
    retry_set(cfg, |b| Ok(b.seed(seed)))
}

/// Read time from a mock clock (tests).
#[no_mangle]
pub extern "C" fn surgewall_retry_config_set_mock_clock(
    cfg: *mut surgewall_retry_config,
    clock: *const surgewall_mock_clock,
) -> Status {
    boundary(|| {
        let clock: Clock = surgewall_mock_clock::get(clock)?.clock.clone();
        surgewall_retry_config::get(cfg)?.update(|b| {
            *b = b.clone().clock(clock);
            Ok(())
        });
        Ok(())
    })
}

/// Creates a policy from `cfg` (consumed whatever the outcome).
#[no_mangle]
pub extern "C" fn surgewall_retry_policy_new(
    cfg: *mut surgewall_retry_config,
    out: *mut *mut surgewall_retry_policy,
    err_out: *mut *mut surgewall_error,
) -> Status {
    boundary(|| {
        let builder = consume(cfg, out, err_out)?;
        let policy = Arc::new(builder.build().map_err(|e| report_config(err_out, &e))?);
        if let Some(name) = policy.name() {
            engine::catalog::Catalog::global().join_retry_policy(name, &policy);
        }
        write(out, surgewall_retry_policy::insert_arc(policy)?)
    })
}

/// Frees a policy (schedules made from it keep working). NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_retry_policy_free(p: *mut surgewall_retry_policy) -> Status {
    surgewall_retry_policy::free(p)
}

/// Totals of a policy.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_retry_stats {
    /// Schedules created (operations started).
    pub operations: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Schedules stopped, indexed by `surgewall_stop_reason`.
    pub stops: [u64; 7],
}

/// Fills `*out` with the policy's totals.
#[no_mangle]
pub extern "C" fn surgewall_retry_policy_metrics(
    p: *const surgewall_retry_policy,
    out: *mut surgewall_retry_stats,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let m = surgewall_retry_policy::get(p)?.metrics();
        write(
            out,
            surgewall_retry_stats {
                operations: m.operations,
                retries: m.retries,
                stops: m.stops,
            },
        )
    })
}

/// The delays the next operation would wait between its attempts if every attempt failed at
/// once (no Retry-After, no breaker), cut by `max_attempts` and `max_elapsed`: up to `cap` of
/// them go to `delays_ns_out` (may be NULL when `cap` is 0), and how many were written to
/// `*len_out` (fewer than `cap`: that is all of them). Under a seed, the very delays of the
/// next schedule unless another one starts first. Counts nothing, asks no budget.
#[no_mangle]
pub extern "C" fn surgewall_retry_policy_preview(
    p: *const surgewall_retry_policy,
    delays_ns_out: *mut u64,
    cap: usize,
    len_out: *mut usize,
) -> Status {
    boundary(|| {
        non_null(len_out)?;
        if cap > 0 {
            non_null(delays_ns_out)?;
        }
        let policy = surgewall_retry_policy::get(p)?;
        let mut n = 0;
        for d in policy.preview().take(cap) {
            // SAFETY: non-null with room for `cap` values (C contract), and `n < cap`.
            unsafe { delays_ns_out.add(n).write(ns(d)) };
            n += 1;
        }
        write(len_out, n)
    })
}

/// Starts an operation: its first attempt begins now (and counts as a request for the budget).
#[no_mangle]
pub extern "C" fn surgewall_retry_schedule_new(
    p: *const surgewall_retry_policy,
    out: *mut *mut surgewall_retry_schedule,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let schedule = surgewall_retry_policy::get(p)?.schedule();
        write(out, surgewall_retry_schedule::insert(Mutex::new(schedule))?)
    })
}

/// Frees a schedule. NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_retry_schedule_free(s: *mut surgewall_retry_schedule) -> Status {
    surgewall_retry_schedule::free(s)
}

/// After an attempt: what to do next. `outcome` is a `surgewall_attempt_outcome`;
/// `retry_after_ns` a server's Retry-After (negative: none), waited in full or the schedule
/// stops with `SURGEWALL_STOP_REASON_RETRY_AFTER_TOO_LONG`; `breaker` (may be NULL) the
/// breaker guarding the dependency — the schedule never retries into it while it rejects.
#[no_mangle]
pub extern "C" fn surgewall_retry_schedule_next(
    s: *const surgewall_retry_schedule,
    outcome: i32,
    retry_after_ns: i64,
    breaker: *const surgewall_breaker,
    out: *mut surgewall_retry_decision,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let outcome = match outcome {
            0 => AttemptOutcome::Success,
            1 => AttemptOutcome::Retryable,
            2 => AttemptOutcome::NotRetryable,
            _ => return Err(Status::SURGEWALL_INVALID_ARG),
        };
        let schedule = surgewall_retry_schedule::get(s)?;
        let br = if breaker.is_null() {
            None
        } else {
            Some(surgewall_breaker::get_arc(breaker)?)
        };
        let mut hint = Hint::none();
        if let Ok(ra) = u64::try_from(retry_after_ns) {
            hint = hint.retry_after(std::time::Duration::from_nanos(ra));
        }
        if let Some(b) = &br {
            hint = hint.breaker(b);
        }
        let d = schedule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_with(outcome, hint);
        write(
            out,
            match d {
                Decision::Retry(delay) => surgewall_retry_decision {
                    retry: true,
                    delay_ns: ns(delay),
                    stop_reason: -1,
                },
                Decision::Stop(reason) => surgewall_retry_decision {
                    retry: false,
                    delay_ns: 0,
                    stop_reason: reason as i32,
                },
            },
        )
    })
}

/// Waits `delay_ns` (a decision's delay) on the schedule's clock: a mock clock (set with
/// `surgewall_retry_config_set_mock_clock`) is advanced, and no real time passes; any other
/// clock sleeps the calling thread. So a C retry loop driven by a mock clock needs no sleep of
/// its own.
#[no_mangle]
pub extern "C" fn surgewall_retry_schedule_sleep(
    s: *const surgewall_retry_schedule,
    delay_ns: u64,
) -> Status {
    boundary(|| {
        let schedule = surgewall_retry_schedule::get(s)?;
        // The clock is cloned out, so no lock is held while the thread sleeps.
        let clock = schedule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clock()
            .clone();
        let d = std::time::Duration::from_nanos(delay_ns);
        match clock.mock_handle() {
            Some(mock) => mock.advance(d),
            None => std::thread::sleep(d),
        }
        Ok(())
    })
}

/// Attempts started so far, the first included.
#[no_mangle]
pub extern "C" fn surgewall_retry_schedule_attempts(
    s: *const surgewall_retry_schedule,
    out: *mut u32,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let s = surgewall_retry_schedule::get(s)?;
        let n = s.lock().unwrap_or_else(|p| p.into_inner()).attempts();
        write(out, n)
    })
}

/// The budget's process-unique id: the `source` of its `RETRY_BUDGET_EXHAUSTED` events.
#[no_mangle]
pub extern "C" fn surgewall_retry_budget_id(
    b: *const surgewall_retry_budget,
    id_out: *mut u64,
) -> Status {
    boundary(|| {
        non_null(id_out)?;
        write(id_out, surgewall_retry_budget::get(b)?.id())
    })
}
