//! `surgewall_breaker_config`: the single-owner builder a breaker is made from.
//!
//! Setters never fail on values: they record them, and `surgewall_breaker_new` validates the
//! whole configuration, naming the first bad field in its error object. Durations are signed
//! nanoseconds so that a negative one can be reported rather than wrapped.

use std::time::Duration;

use engine::clock::Clock;
use engine::{BreakerConfig, BreakerConfigBuilder, ConfigError};

use crate::builder::{set, Builder};
use crate::clock::surgewall_mock_clock;
use crate::handle::{opaque_handle, Handle};
use crate::status::{boundary, non_null, write, Status};

/// What a config handle holds until a constructor consumes it.
pub struct ConfigState {
    pub(crate) builder: BreakerConfigBuilder,
    /// The clock set with `_set_mock_clock` / `_set_precise_clock`; the coarse one if none.
    pub(crate) clock: Option<Clock>,
    pub(crate) fallback: Option<engine::Fallback>,
}

/// A breaker configuration under construction. Single owner: not to be shared between
/// threads. `surgewall_breaker_new` consumes it (also when it fails); free it with
/// `surgewall_breaker_config_free` only if it was never passed to a constructor.
pub struct surgewall_breaker_config {
    _private: [u8; 0],
}

opaque_handle!(surgewall_breaker_config => Builder<ConfigState>, tag 3);

pub(crate) fn duration(field: &'static str, ns: i64) -> Result<Duration, ConfigError> {
    u64::try_from(ns)
        .map(Duration::from_nanos)
        .map_err(|_| ConfigError::new(field, format!("must not be negative, got {ns} ns")))
}

#[track_caller]
fn with_builder(
    cfg: *mut surgewall_breaker_config,
    f: impl FnOnce(BreakerConfigBuilder) -> BreakerConfigBuilder,
) -> Status {
    set(cfg, |s: &mut ConfigState| {
        s.builder = f(s.builder.clone());
        Ok(())
    })
}

/// Creates a configuration with the defaults: 50 % failure rate over a 60 s window of 10
/// buckets once 20 calls are in it, open 5 s, 3 probes reclaimed after 60 s, coarse clock.
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_new(out: *mut *mut surgewall_breaker_config) -> Status {
    boundary(|| {
        non_null(out)?;
        let state = ConfigState {
            builder: BreakerConfig::builder(),
            clock: None,
            fallback: None,
        };
        write(out, surgewall_breaker_config::insert(Builder::new(state))?)
    })
}

/// Frees a configuration that was never consumed. NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_free(cfg: *mut surgewall_breaker_config) -> Status {
    surgewall_breaker_config::free(cfg)
}

/// Trip when the window's failure rate reaches `threshold` (in (0, 1]).
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_failure_rate(
    cfg: *mut surgewall_breaker_config,
    threshold: f64,
) -> Status {
    with_builder(cfg, |b| b.failure_rate(threshold))
}

/// Turn the failure-rate rule off.
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_disable_failure_rate(
    cfg: *mut surgewall_breaker_config,
) -> Status {
    with_builder(cfg, |b| b.no_failure_rate())
}

/// Count calls of `duration_ns` or more as slow; trip when the slow rate reaches `threshold`.
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_slow_calls(
    cfg: *mut surgewall_breaker_config,
    threshold: f64,
    duration_ns: i64,
) -> Status {
    set(cfg, |s: &mut ConfigState| {
        let d = duration("slow_call_duration", duration_ns)?;
        s.builder = s.builder.clone().slow_calls(threshold, d);
        Ok(())
    })
}

/// Whether the breaker times calls itself (default on when slow calls are configured; turn it
/// off when you always pass durations to `surgewall_breaker_record_timed`).
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_time_calls(
    cfg: *mut surgewall_breaker_config,
    on: bool,
) -> Status {
    with_builder(cfg, |b| b.time_calls(on))
}

/// Trip on the `n`-th consecutive failure.
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_consecutive_failures(
    cfg: *mut surgewall_breaker_config,
    n: u32,
) -> Status {
    with_builder(cfg, |b| b.consecutive_failures(n))
}

/// Calls needed in the window before the rate rules apply.
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_minimum_calls(
    cfg: *mut surgewall_breaker_config,
    n: u32,
) -> Status {
    with_builder(cfg, |b| b.minimum_calls(n))
}

/// A time window of `duration_ns` cut into `buckets` buckets.
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_time_window(
    cfg: *mut surgewall_breaker_config,
    duration_ns: i64,
    buckets: u32,
) -> Status {
    set(cfg, |s: &mut ConfigState| {
        let d = duration("window", duration_ns)?;
        s.builder = s.builder.clone().time_window(d, buckets);
        Ok(())
    })
}

/// A window of the last `calls` calls.
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_count_window(
    cfg: *mut surgewall_breaker_config,
    calls: u32,
) -> Status {
    with_builder(cfg, |b| b.count_window(calls))
}

/// How long the breaker stays open before probing (at most 2^47 µs, about 4.46 years: longer
/// is reported by the constructor, naming `open_for`).
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_open_for(
    cfg: *mut surgewall_breaker_config,
    ns: i64,
) -> Status {
    set(cfg, |s: &mut ConfigState| {
        let d = duration("open_for", ns)?;
        s.builder = s.builder.clone().open_for(d);
        Ok(())
    })
}

/// Grow the open wait by `multiplier` per consecutive opening up to `max_ns` (at most 2^47 µs,
/// about 4.46 years), with `jitter`.
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_open_backoff(
    cfg: *mut surgewall_breaker_config,
    multiplier: f64,
    max_ns: i64,
    jitter: f64,
) -> Status {
    set(cfg, |s: &mut ConfigState| {
        let d = duration("max_open_for", max_ns)?;
        s.builder = s.builder.clone().open_backoff(multiplier, d, jitter);
        Ok(())
    })
}

/// Probes per half-open episode.
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_half_open_calls(
    cfg: *mut surgewall_breaker_config,
    n: u32,
) -> Status {
    with_builder(cfg, |b| b.half_open_calls(n))
}

/// How long a half-open episode waits for its probes before it reopens (at most 2^47 µs,
/// about 4.46 years).
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_half_open_max_duration(
    cfg: *mut surgewall_breaker_config,
    ns: i64,
) -> Status {
    set(cfg, |s: &mut ConfigState| {
        let d = duration("half_open_max_duration", ns)?;
        s.builder = s.builder.clone().half_open_max_duration(d);
        Ok(())
    })
}

/// Seed the jitter of the open wait (deterministic tests).
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_seed(
    cfg: *mut surgewall_breaker_config,
    seed: u64,
) -> Status {
    with_builder(cfg, |b| b.seed(seed))
}

/// Drive the breaker with a mock clock (tests).
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_mock_clock(
    cfg: *mut surgewall_breaker_config,
    clock: *const surgewall_mock_clock,
) -> Status {
    boundary(|| {
        let c = surgewall_mock_clock::get(clock)?.clock.clone();
        surgewall_breaker_config::get(cfg)?.update(|s| {
            s.clock = Some(c);
            Ok(())
        });
        Ok(())
    })
}

/// Read time precisely on every call instead of the coarse clock.
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_precise_clock(
    cfg: *mut surgewall_breaker_config,
) -> Status {
    set(cfg, |s: &mut ConfigState| {
        s.clock = Some(Clock::precise());
        Ok(())
    })
}

/// The payload callers serve when the breaker rejects: `body` (`body_len` bytes, copied) with
/// its `content_type` (UTF-8, `content_type_len` bytes), e.g. `application/json`. A content
/// type that is not UTF-8 is `SURGEWALL_INVALID_UTF8` at once and changes nothing (the
/// previous fallback, if any, stays in force).
#[no_mangle]
pub extern "C" fn surgewall_breaker_config_set_fallback(
    cfg: *mut surgewall_breaker_config,
    content_type: *const u8,
    content_type_len: usize,
    body: *const u8,
    body_len: usize,
) -> Status {
    boundary(|| {
        let ct = crate::status::utf8(content_type, content_type_len)?;
        let bytes = crate::status::bytes(body, body_len)?.to_vec();
        surgewall_breaker_config::get(cfg)?.update(|s| {
            s.fallback = Some(engine::Fallback::new(ct, bytes));
            Ok(())
        });
        Ok(())
    })
}
