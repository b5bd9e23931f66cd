//! The defaults each kind's configuration starts from, read from the core's own defaults so
//! that a binding never keeps a copy: a binding that leaves a setting out gets the value a
//! fresh `surgewall_*_config` has, and shows it (Python's signatures, Go's and C's docs).

use std::time::Duration;

use engine::{Backoff, BreakerConfig, BulkheadConfig, Jitter, RetryBudgetConfig, RetryPolicy};

use crate::breaker::ns;
use crate::retry::surgewall_jitter;
use crate::status::{boundary, non_null, write, Status};

/// A retry backoff's kind (in `surgewall_retry_defaults`; each has its own setter).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum surgewall_backoff {
    /// No wait between attempts (`surgewall_retry_config_set_backoff_none`).
    None = 0,
    /// The same delay every time.
    Constant = 1,
    /// `initial + (n - 1) * step`.
    Linear = 2,
    /// `initial * multiplier^(n - 1)`.
    Exponential = 3,
    /// Decorrelated jitter from `base`.
    Decorrelated = 4,
}

/// What a fresh `surgewall_retry_config` holds. A duration of -1 means "none" (no cap, no
/// limit).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_retry_defaults {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The backoff's kind (a `surgewall_backoff`).
    pub backoff: i32,
    /// Its first delay: `delay` (constant), `initial` (linear, exponential) or `base`
    /// (decorrelated); 0 for none.
    pub backoff_initial_ns: u64,
    /// The linear step (0 for other kinds).
    pub backoff_step_ns: u64,
    /// The exponential multiplier (1 for other kinds).
    pub backoff_multiplier: f64,
    /// The jitter (a `surgewall_jitter`).
    pub jitter: i32,
    /// The cap on computed delays (-1: no cap).
    pub max_delay_ns: i64,
    /// The longest server Retry-After waited (-1: no limit but `max_elapsed`).
    pub max_retry_after_ns: i64,
    /// The elapsed-time limit (-1: none).
    pub max_elapsed_ns: i64,
}

/// What a fresh `surgewall_breaker_config` holds (its failure-rate rule on, a time window).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_breaker_defaults {
    /// The failure-rate threshold.
    pub failure_rate: f64,
    /// Calls the window must hold before a rate can trip it.
    pub minimum_calls: u32,
    /// The time window's length.
    pub window_ns: u64,
    /// Its buckets.
    pub window_buckets: u32,
    /// How long it stays OPEN after a trip.
    pub open_for_ns: u64,
    /// Probes admitted in HALF_OPEN.
    pub half_open_calls: u32,
    /// When an unfinished half-open episode is reclaimed (reopens).
    pub half_open_max_ns: u64,
}

/// What a bulkhead gets when a binding leaves a setting out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_bulkhead_defaults {
    /// Calls in flight at once.
    pub max_concurrent: u32,
    /// How long a blocking acquire waits for a slot (0: never waits).
    pub max_wait_ns: u64,
}

/// What a retry budget gets when a binding leaves a setting out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_retry_budget_defaults {
    /// Retries allowed as a share of requests.
    pub ratio: f64,
    /// The floor of retries a second.
    pub min_per_second: f64,
    /// The sliding window, in seconds.
    pub window_secs: u32,
}

fn optional_ns(d: Option<Duration>) -> i64 {
    d.map_or(-1, |d| i64::try_from(ns(d)).unwrap_or(i64::MAX))
}

/// Fills `*out` with the retry defaults: 3 attempts, exponential backoff from 100 ms doubling,
/// full jitter, no cap on delays, no `max_retry_after`, no elapsed limit.
#[no_mangle]
pub extern "C" fn surgewall_retry_defaults_get(out: *mut surgewall_retry_defaults) -> Status {
    boundary(|| {
        non_null(out)?;
        let p = RetryPolicy::builder()
            .seed(0)
            .build()
            .expect("the defaults are valid");
        let (backoff, initial, step, multiplier) = match p.backoff() {
            Backoff::None => (surgewall_backoff::None, Duration::ZERO, Duration::ZERO, 1.0),
            Backoff::Constant { delay } => {
                (surgewall_backoff::Constant, delay, Duration::ZERO, 1.0)
            }
            Backoff::Linear { initial, step } => (surgewall_backoff::Linear, initial, step, 1.0),
            Backoff::Exponential {
                initial,
                multiplier,
            } => (
                surgewall_backoff::Exponential,
                initial,
                Duration::ZERO,
                multiplier,
            ),
            Backoff::DecorrelatedJitter { base } => {
                (surgewall_backoff::Decorrelated, base, Duration::ZERO, 1.0)
            }
        };
        let jitter = match p.jitter() {
            Jitter::None => surgewall_jitter::None,
            Jitter::Full => surgewall_jitter::Full,
            Jitter::Equal => surgewall_jitter::Equal,
        };
        write(
            out,
            surgewall_retry_defaults {
                max_attempts: p.max_attempts(),
                backoff: backoff as i32,
                backoff_initial_ns: ns(initial),
                backoff_step_ns: ns(step),
                backoff_multiplier: multiplier,
                jitter: jitter as i32,
                max_delay_ns: optional_ns(p.max_delay()),
                max_retry_after_ns: optional_ns(p.max_retry_after()),
                max_elapsed_ns: optional_ns(p.max_elapsed()),
            },
        )
    })
}

/// Fills `*out` with the breaker defaults: 50 % failure rate over a 60 s window of 10 buckets
/// once 20 calls are in it, open 5 s, 3 probes reclaimed after 60 s.
#[no_mangle]
pub extern "C" fn surgewall_breaker_defaults_get(out: *mut surgewall_breaker_defaults) -> Status {
    boundary(|| {
        non_null(out)?;
        let c = BreakerConfig::default();
        let engine::Window::Time {
            duration: window,
            buckets,
        } = c.window()
        else {
            unreachable!("the default window is a time window")
        };
        write(
            out,
            surgewall_breaker_defaults {
                failure_rate: c.failure_rate().unwrap_or(f64::NAN),
                minimum_calls: c.minimum_calls(),
                window_ns: ns(window),
                window_buckets: buckets,
                open_for_ns: ns(c.open_for()),
                half_open_calls: c.half_open_calls(),
                half_open_max_ns: ns(c.half_open_max_duration()),
            },
        )
    })
}

/// Fills `*out` with the bulkhead defaults: 25 calls in flight (resilience4j's), no waiting.
#[no_mangle]
pub extern "C" fn surgewall_bulkhead_defaults_get(out: *mut surgewall_bulkhead_defaults) -> Status {
    boundary(|| {
        non_null(out)?;
        let c = BulkheadConfig::default();
        write(
            out,
            surgewall_bulkhead_defaults {
                max_concurrent: c.max_concurrent(),
                max_wait_ns: ns(c.max_wait()),
            },
        )
    })
}

/// Fills `*out` with the retry budget defaults: 20 % of requests plus 3 retries a second,
/// over 10 s.
#[no_mangle]
pub extern "C" fn surgewall_retry_budget_defaults_get(
    out: *mut surgewall_retry_budget_defaults,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let c = RetryBudgetConfig::default();
        write(
            out,
            surgewall_retry_budget_defaults {
                ratio: c.ratio(),
                min_per_second: c.min_per_second(),
                window_secs: c.window_secs(),
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_cores() {
        let mut r = std::mem::MaybeUninit::<surgewall_retry_defaults>::uninit();
        assert_eq!(
            surgewall_retry_defaults_get(r.as_mut_ptr()),
            Status::SURGEWALL_OK
        );
        // SAFETY: written on OK.
        let r = unsafe { r.assume_init() };
        assert_eq!(
            (r.max_attempts, r.backoff),
            (3, surgewall_backoff::Exponential as i32)
        );
        assert_eq!(
            (r.backoff_initial_ns, r.backoff_multiplier),
            (100_000_000, 2.0)
        );
        assert_eq!((r.jitter, r.max_delay_ns, r.max_elapsed_ns), (1, -1, -1));
        let mut b = std::mem::MaybeUninit::<surgewall_bulkhead_defaults>::uninit();
        assert_eq!(
            surgewall_bulkhead_defaults_get(b.as_mut_ptr()),
            Status::SURGEWALL_OK
        );
        // SAFETY: written on OK.
        let b = unsafe { b.assume_init() };
        assert_eq!((b.max_concurrent, b.max_wait_ns), (25, 0));
        assert_eq!(
            surgewall_breaker_defaults_get(std::ptr::null_mut()),
            Status::SURGEWALL_NULL_ARG
        );
    }
}
