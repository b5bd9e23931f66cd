//! Smoke tests of the exports from Rust (the C suites in bindings/c test the whole surface).

use std::ptr::{null, null_mut};

use crate::*;

const NO_ERR: *mut *mut surgewall_error = null_mut();

#[test]
fn bulkhead_limits_and_reports_misuse() {
    let mut b = null_mut();
    let name = "db";
    assert_eq!(
        surgewall_bulkhead_new(name.as_ptr(), name.len(), 1, 0, null(), &mut b, NO_ERR),
        Status::SURGEWALL_OK
    );
    assert_eq!(surgewall_bulkhead_try_acquire(b), Status::SURGEWALL_OK);
    assert_eq!(
        surgewall_bulkhead_try_acquire(b),
        Status::SURGEWALL_BULKHEAD_FULL
    );
    assert_eq!(surgewall_bulkhead_release(b), Status::SURGEWALL_OK);
    assert_eq!(
        surgewall_bulkhead_release(b),
        Status::SURGEWALL_UNEXPECTED_RESULT
    );
    assert_eq!(surgewall_bulkhead_free(b), Status::SURGEWALL_OK);
    assert_eq!(
        surgewall_bulkhead_try_acquire(b),
        Status::SURGEWALL_INVALID_HANDLE
    );

    let mut err = null_mut();
    assert_eq!(
        surgewall_bulkhead_new(name.as_ptr(), name.len(), 0, 0, null(), &mut b, &mut err),
        Status::SURGEWALL_INVALID_CONFIG
    );
    // SAFETY: the error's field is a NUL-terminated string owned by the error.
    let field = unsafe { std::ffi::CStr::from_ptr(surgewall_error_field(err)) };
    assert_eq!(field.to_str().unwrap(), "max_concurrent");
    assert_eq!(surgewall_error_free(err), Status::SURGEWALL_OK);
}

#[test]
fn keyed_bulkhead_isolates_keys() {
    let mut cfg = null_mut();
    assert_eq!(
        surgewall_keyed_bulkhead_config_new(1, &mut cfg),
        Status::SURGEWALL_OK
    );
    let mut kb = null_mut();
    assert_eq!(
        surgewall_keyed_bulkhead_new(cfg, &mut kb, NO_ERR),
        Status::SURGEWALL_OK
    );
    let mut p = surgewall_keyed_permit {
        slot: 0,
        generation: 0,
    };
    let mut why = surgewall_keyed_rejection::KeyFull;
    assert_eq!(
        surgewall_keyed_bulkhead_try_acquire(kb, 7, &mut p, &mut why),
        Status::SURGEWALL_OK
    );
    let mut q = p;
    assert_eq!(
        surgewall_keyed_bulkhead_try_acquire(kb, 7, &mut q, &mut why),
        Status::SURGEWALL_BULKHEAD_FULL
    );
    assert_eq!(why, surgewall_keyed_rejection::KeyFull);
    assert_eq!(
        surgewall_keyed_bulkhead_try_acquire(kb, 8, &mut q, null_mut()),
        Status::SURGEWALL_OK
    );
    assert_eq!(
        surgewall_keyed_bulkhead_release(kb, p),
        Status::SURGEWALL_OK
    );
    assert_eq!(
        surgewall_keyed_bulkhead_release(kb, q),
        Status::SURGEWALL_OK
    );
    assert_eq!(
        surgewall_keyed_bulkhead_new(cfg, &mut kb, NO_ERR),
        Status::SURGEWALL_INVALID_HANDLE,
        "consumed"
    );
    assert_eq!(surgewall_keyed_bulkhead_free(kb), Status::SURGEWALL_OK);
}

#[test]
fn retry_schedule_counts_attempts_and_stops() {
    let mut clock = null_mut();
    assert_eq!(surgewall_mock_clock_new(&mut clock), Status::SURGEWALL_OK);
    let mut cfg = null_mut();
    assert_eq!(surgewall_retry_config_new(&mut cfg), Status::SURGEWALL_OK);
    assert_eq!(
        surgewall_retry_config_set_max_attempts(cfg, 3),
        Status::SURGEWALL_OK
    );
    assert_eq!(
        surgewall_retry_config_set_backoff_constant(cfg, 10_000_000),
        Status::SURGEWALL_OK
    );
    assert_eq!(
        surgewall_retry_config_set_jitter(cfg, 0),
        Status::SURGEWALL_OK
    );
    assert_eq!(
        surgewall_retry_config_set_mock_clock(cfg, clock),
        Status::SURGEWALL_OK
    );
    let mut policy = null_mut();
    assert_eq!(
        surgewall_retry_policy_new(cfg, &mut policy, NO_ERR),
        Status::SURGEWALL_OK
    );
    let mut s = null_mut();
    assert_eq!(
        surgewall_retry_schedule_new(policy, &mut s),
        Status::SURGEWALL_OK
    );
    let mut d = surgewall_retry_decision {
        retry: false,
        delay_ns: 0,
        stop_reason: 0,
    };
    for _ in 0..2 {
        assert_eq!(
            surgewall_retry_schedule_next(s, 1, -1, null(), &mut d),
            Status::SURGEWALL_OK
        );
        assert!(d.retry);
        assert_eq!(d.delay_ns, 10_000_000);
    }
    assert_eq!(
        surgewall_retry_schedule_next(s, 1, -1, null(), &mut d),
        Status::SURGEWALL_OK
    );
    assert!(!d.retry);
    assert_eq!(d.stop_reason, surgewall_stop_reason::MaxAttempts as i32);
    assert_eq!(
        surgewall_retry_schedule_next(s, 9, -1, null(), &mut d),
        Status::SURGEWALL_INVALID_ARG
    );
    let mut bad = null_mut();
    assert_eq!(surgewall_retry_config_new(&mut bad), Status::SURGEWALL_OK);
    assert_eq!(
        surgewall_retry_config_set_max_delay(bad, -5),
        Status::SURGEWALL_OK
    );
    let mut err = null_mut();
    assert_eq!(
        surgewall_retry_policy_new(bad, &mut policy, &mut err),
        Status::SURGEWALL_INVALID_CONFIG
    );
    // SAFETY: the error's field is a NUL-terminated string owned by the error.
    let field = unsafe { std::ffi::CStr::from_ptr(surgewall_error_field(err)) };
    assert_eq!(field.to_str().unwrap(), "max_delay");
    surgewall_error_free(err);
    surgewall_retry_schedule_free(s);
    surgewall_retry_policy_free(policy);
    surgewall_mock_clock_free(clock);
}

#[test]
fn slo_tracker_counts_budget() {
    let mut cfg = null_mut();
    assert_eq!(surgewall_slo_config_new(&mut cfg), Status::SURGEWALL_OK);
    assert_eq!(
        surgewall_slo_config_set_objective(cfg, 0.9),
        Status::SURGEWALL_OK
    );
    let mut slo = null_mut();
    assert_eq!(
        surgewall_slo_new(cfg, &mut slo, NO_ERR),
        Status::SURGEWALL_OK
    );
    for good in [true, true, true, false] {
        assert_eq!(surgewall_slo_record(slo, good), Status::SURGEWALL_OK);
    }
    let mut st = std::mem::MaybeUninit::<surgewall_slo_stats>::uninit();
    assert_eq!(
        surgewall_slo_metrics(slo, st.as_mut_ptr()),
        Status::SURGEWALL_OK
    );
    // SAFETY: written on OK.
    let st = unsafe { st.assume_init() };
    assert_eq!((st.calls, st.bad), (4, 1));
    surgewall_slo_free(slo);
}

fn new_breaker_config() -> *mut surgewall_breaker_config {
    let mut cfg = null_mut();
    assert_eq!(surgewall_breaker_config_new(&mut cfg), Status::SURGEWALL_OK);
    cfg
}

/// Issue 15 item 8: a corrected duration still failed the build (the first rejected value was
/// kept for good) while a corrected rate did not; now the last call of a setter is what counts.
#[test]
fn a_corrected_setter_call_replaces_the_rejected_one() {
    let name = "corrected";
    let cfg = new_breaker_config();
    assert_eq!(
        surgewall_breaker_config_set_open_for(cfg, -1),
        Status::SURGEWALL_OK
    );
    assert_eq!(
        surgewall_breaker_config_set_open_for(cfg, 1_000_000),
        Status::SURGEWALL_OK
    );
    let mut b = null_mut();
    assert_eq!(
        surgewall_breaker_new(name.as_ptr(), name.len(), cfg, &mut b, NO_ERR),
        Status::SURGEWALL_OK
    );
    assert_eq!(surgewall_breaker_free(b), Status::SURGEWALL_OK);

    // Uncorrected, it is still reported; another setter's call does not clear it.
    let cfg = new_breaker_config();
    surgewall_breaker_config_set_open_for(cfg, -1);
    surgewall_breaker_config_set_half_open_max_duration(cfg, 1_000_000);
    let mut err = null_mut();
    assert_eq!(
        surgewall_breaker_new(name.as_ptr(), name.len(), cfg, &mut b, &mut err),
        Status::SURGEWALL_INVALID_CONFIG
    );
    // SAFETY: the error's field is a NUL-terminated string owned by the error.
    let field = unsafe { std::ffi::CStr::from_ptr(surgewall_error_field(err)) };
    assert_eq!(field.to_str().unwrap(), "open_for");
    assert_eq!(surgewall_error_free(err), Status::SURGEWALL_OK);
}

/// Issue 15 item 8: "the last override of a key wins", also over a rejected override.
#[test]
fn a_replaced_invalid_override_no_longer_fails_the_keyed_breaker() {
    let mut kcfg = null_mut();
    assert_eq!(
        surgewall_keyed_breaker_config_new(new_breaker_config(), &mut kcfg),
        Status::SURGEWALL_OK
    );
    let mut clock = null_mut();
    assert_eq!(surgewall_mock_clock_new(&mut clock), Status::SURGEWALL_OK);
    let bad = new_breaker_config();
    surgewall_breaker_config_set_mock_clock(bad, clock); // an override may not set a clock
    assert_eq!(
        surgewall_keyed_breaker_config_set_override(kcfg, 7, bad),
        Status::SURGEWALL_OK
    );
    assert_eq!(
        surgewall_keyed_breaker_config_set_override(kcfg, 7, new_breaker_config()),
        Status::SURGEWALL_OK
    );
    let mut kb = null_mut();
    assert_eq!(
        surgewall_keyed_breaker_new(kcfg, &mut kb, NO_ERR),
        Status::SURGEWALL_OK
    );
    assert_eq!(surgewall_keyed_breaker_free(kb), Status::SURGEWALL_OK);
    assert_eq!(surgewall_mock_clock_free(clock), Status::SURGEWALL_OK);
}

/// Issue 15 item 8: `max_keys` 0 was documented as "none" but allowed one key; it is now
/// refused by the constructor, naming the field.
#[test]
fn a_key_cap_of_zero_is_refused() {
    let mut cfg = null_mut();
    assert_eq!(
        surgewall_keyed_bulkhead_config_new(1, &mut cfg),
        Status::SURGEWALL_OK
    );
    assert_eq!(
        surgewall_keyed_bulkhead_config_set_max_keys(cfg, 0, false),
        Status::SURGEWALL_OK
    );
    let (mut kb, mut err) = (null_mut(), null_mut());
    assert_eq!(
        surgewall_keyed_bulkhead_new(cfg, &mut kb, &mut err),
        Status::SURGEWALL_INVALID_CONFIG
    );
    // SAFETY: the error's field is a NUL-terminated string owned by the error.
    let field = unsafe { std::ffi::CStr::from_ptr(surgewall_error_field(err)) };
    assert_eq!(field.to_str().unwrap(), "max_keys");
    assert_eq!(surgewall_error_free(err), Status::SURGEWALL_OK);

    let mut kcfg = null_mut();
    assert_eq!(
        surgewall_keyed_breaker_config_new(new_breaker_config(), &mut kcfg),
        Status::SURGEWALL_OK
    );
    surgewall_keyed_breaker_config_set_max_keys(kcfg, 0, true);
    let mut kbr = null_mut();
    assert_eq!(
        surgewall_keyed_breaker_new(kcfg, &mut kbr, NO_ERR),
        Status::SURGEWALL_INVALID_CONFIG
    );
}
