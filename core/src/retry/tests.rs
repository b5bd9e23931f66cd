//! Retry behaviour, and invariant I10 as properties.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::clock::{Clock, MockClock};
use crate::events::{EventKind, EventRing};
use crate::{BreakerConfig, State};

const MS: Duration = Duration::from_millis(1);

fn constant(ms: u64) -> RetryPolicyBuilder {
    RetryPolicy::builder()
        .backoff(Backoff::constant(MS * ms as u32))
        .jitter(Jitter::None)
}

fn mock() -> (Clock, MockClock) {
    Clock::mock()
}

fn drain(s: &mut RetrySchedule) -> (Vec<Duration>, StopReason) {
    let mut v = vec![];
    loop {
        match s.next(AttemptOutcome::Retryable) {
            Decision::Retry(d) => v.push(d),
            Decision::Stop(r) => return (v, r),
        }
    }
}

#[test]
fn max_attempts_counts_the_first_attempt() {
    let once = constant(10).max_attempts(1).build().unwrap();
    assert_eq!(
        once.schedule().next(AttemptOutcome::Retryable),
        Decision::Stop(StopReason::MaxAttempts)
    );
    let three = constant(10).max_attempts(3).build().unwrap();
    let mut s = three.schedule();
    let (delays, why) = drain(&mut s);
    assert_eq!(
        (delays.len(), why, s.attempts()),
        (2, StopReason::MaxAttempts, 3)
    );
}

#[test]
fn success_and_fatal_errors_stop_and_stopping_is_sticky() {
    let p = constant(10).max_attempts(5).build().unwrap();
    let mut s = p.schedule();
    assert_eq!(
        s.next(AttemptOutcome::Success),
        Decision::Stop(StopReason::Succeeded)
    );
    assert_eq!(
        s.next(AttemptOutcome::Retryable),
        Decision::Stop(StopReason::Succeeded)
    );
    let mut s = p.schedule();
    assert!(matches!(
        s.next(AttemptOutcome::Retryable),
        Decision::Retry(_)
    ));
    assert_eq!(
        s.next(AttemptOutcome::NotRetryable),
        Decision::Stop(StopReason::NotRetryable)
    );
    assert_eq!(s.stopped(), Some(StopReason::NotRetryable));
    let m = p.metrics();
    assert_eq!((m.operations, m.retries), (2, 1));
    assert_eq!(
        m.stopped(StopReason::Succeeded),
        1,
        "a sticky stop counts once"
    );
    assert_eq!(m.stopped(StopReason::NotRetryable), 1);
}

#[test]
fn retry_after_replaces_the_delay_and_is_never_shortened() {
    let p = constant(10)
        .max_attempts(5)
        .max_delay(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut s = p.schedule();
    let hint = |d| Hint::none().retry_after(d);
    assert_eq!(
        s.next_with(AttemptOutcome::Retryable, hint(MS * 700)),
        Decision::Retry(MS * 700)
    );
    assert_eq!(
        s.next_with(AttemptOutcome::Retryable, hint(Duration::from_secs(60))),
        Decision::Retry(Duration::from_secs(60)),
        "max_delay caps the backoff, never a server's Retry-After"
    );
    assert_eq!(s.next(AttemptOutcome::Retryable), Decision::Retry(MS * 10));
}

#[test]
fn a_retry_after_beyond_max_elapsed_stops_with_its_own_reason() {
    // Retry-After: 3600 under max_elapsed 120 s: the schedule used to answer Retry(30 s) (the
    // default max_delay) and retry into an explicit one-hour throttle.
    let p = RetryPolicy::builder()
        .max_attempts(3)
        .max_elapsed(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut s = p.schedule();
    assert_eq!(
        s.next_with(
            AttemptOutcome::Retryable,
            Hint::none().retry_after(Duration::from_secs(3600))
        ),
        Decision::Stop(StopReason::RetryAfterTooLong)
    );
    assert_eq!(p.metrics().stopped(StopReason::RetryAfterTooLong), 1);
    // One that fits is waited in full.
    let mut s = p.schedule();
    assert_eq!(
        s.next_with(
            AttemptOutcome::Retryable,
            Hint::none().retry_after(Duration::from_secs(100))
        ),
        Decision::Retry(Duration::from_secs(100))
    );
    // With no limit at all, an hour is waited.
    let p = RetryPolicy::builder().build().unwrap();
    assert_eq!(
        p.schedule().next_with(
            AttemptOutcome::Retryable,
            Hint::none().retry_after(Duration::from_secs(3600))
        ),
        Decision::Retry(Duration::from_secs(3600))
    );
}

#[test]
fn max_retry_after_is_the_cap_the_user_sets_for_retry_after() {
    let p = constant(10)
        .max_attempts(5)
        .max_retry_after(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut s = p.schedule();
    assert_eq!(
        s.next_with(
            AttemptOutcome::Retryable,
            Hint::none().retry_after(Duration::from_secs(30))
        ),
        Decision::Retry(Duration::from_secs(30)),
        "up to the cap: waited"
    );
    assert_eq!(
        s.next_with(
            AttemptOutcome::Retryable,
            Hint::none().retry_after(Duration::from_secs(31))
        ),
        Decision::Stop(StopReason::RetryAfterTooLong),
        "beyond it: stopped, not shortened"
    );
    let (clock, time) = mock();
    let p = constant(10)
        .max_attempts(3)
        .max_elapsed(Duration::from_secs(120))
        .clock(clock)
        .build()
        .unwrap();
    let mut slept = vec![];
    let err = p
        .run(
            |d| {
                slept.push(d);
                time.advance(d)
            },
            |_: &()| ErrorClass::RetryAfter(Duration::from_secs(3600)),
            |_| Err::<(), ()>(()),
        )
        .unwrap_err();
    assert_eq!(
        (err.reason, err.attempts, slept),
        (StopReason::RetryAfterTooLong, 1, vec![])
    );
}

#[test]
fn there_is_no_hidden_cap_on_delays() {
    // Constant(60 s) used to sleep 30 s: a default max_delay nobody set.
    let p = constant(60_000).jitter(Jitter::None).build().unwrap();
    assert_eq!(p.max_delay(), None);
    assert_eq!(drain(&mut p.schedule()).0, [Duration::from_secs(60); 2]);
    let p = RetryPolicy::builder()
        .backoff(Backoff::exponential(Duration::from_secs(20), 2.0))
        .jitter(Jitter::None)
        .max_attempts(4)
        .build()
        .unwrap();
    assert_eq!(
        drain(&mut p.schedule()).0,
        [
            Duration::from_secs(20),
            Duration::from_secs(40),
            Duration::from_secs(80)
        ]
    );
    // A cap applies where it is set.
    let p = constant(60_000)
        .jitter(Jitter::None)
        .max_delay(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(drain(&mut p.schedule()).0, [Duration::from_secs(5); 2]);
}

#[test]
fn the_budget_floor_is_a_lump_per_window_usable_in_one_burst() {
    // Floor 1 a second over 10 s, no requests: 10 retries at once, then none until the second
    // that holds them leaves the window.
    let (b, time, _) = budget(0.0, 1.0, 10);
    assert_eq!((0..20).filter(|_| b.try_retry()).count(), 10);
    time.advance(Duration::from_secs(9));
    assert!(
        !b.try_retry(),
        "not a rate: nothing was earned back second by second"
    );
    time.advance(Duration::from_secs(1));
    assert_eq!((0..20).filter(|_| b.try_retry()).count(), 10);
}

#[test]
fn kinds_follow_their_formulas_without_jitter() {
    let run = |b: Backoff| {
        let p = RetryPolicy::builder()
            .backoff(b)
            .jitter(Jitter::None)
            .max_attempts(5)
            .max_delay(MS * 500)
            .build()
            .unwrap();
        drain(&mut p.schedule()).0
    };
    assert_eq!(run(Backoff::constant(MS * 50)), [MS * 50; 4]);
    assert_eq!(
        run(Backoff::linear(MS * 100, MS * 50)),
        [MS * 100, MS * 150, MS * 200, MS * 250]
    );
    assert_eq!(
        run(Backoff::exponential(MS * 100, 3.0)),
        [MS * 100, MS * 300, MS * 500, MS * 500]
    );
}

#[test]
fn a_seed_repeats_the_delays_and_another_seed_does_not() {
    let p = |seed| {
        RetryPolicy::builder()
            .max_attempts(8)
            .backoff(Backoff::exponential(MS * 100, 2.0))
            .jitter(Jitter::Full)
            .seed(seed)
            .build()
            .unwrap()
    };
    let a: Vec<_> = (0..3).map(|_| drain(&mut p(1).schedule()).0).collect();
    let b = drain(&mut p(1).schedule()).0;
    let c = drain(&mut p(2).schedule()).0;
    assert_eq!(a[0], b);
    assert!(a.iter().all(|v| v == &a[0]));
    assert_ne!(b, c);
    // Two schedules of one policy draw different streams.
    let shared = p(1);
    assert_ne!(
        drain(&mut shared.schedule()).0,
        drain(&mut shared.schedule()).0
    );
}

#[test]
fn max_elapsed_never_starts_an_attempt_that_would_overrun() {
    // delay 100 ms, attempt at most 200 ms, 1 s in all: retry k needs
    // (k - 1) * 100 + 100 + 200 <= 1000, so k <= 8.
    let (clock, _time) = mock();
    let p = constant(100)
        .max_attempts(100)
        .max_elapsed(Duration::from_secs(1))
        .attempt_timeout(MS * 200)
        .clock(clock)
        .build()
        .unwrap();
    let mut s = p.schedule();
    let (delays, why) = drain(&mut s);
    assert_eq!((delays.len(), why), (8, StopReason::MaxElapsed));
    assert_eq!(s.total_delay(), MS * 800);
}

#[test]
fn without_attempt_timeout_the_longest_attempt_is_the_estimate() {
    let (clock, time) = mock();
    let p = constant(100)
        .max_attempts(100)
        .max_elapsed(Duration::from_secs(1))
        .clock(clock)
        .build()
        .unwrap();
    let mut s = p.schedule();
    time.advance(MS * 300); // attempt 1: 300 ms
    let d = s.next(AttemptOutcome::Retryable);
    assert_eq!(d, Decision::Retry(MS * 100)); // 300 + 100 + 300 <= 1000
    time.advance(MS * 100); // the sleep
    time.advance(MS * 50); // attempt 2: 50 ms, but 300 stays the estimate
                           // spent 450 + 100 + 300 = 850 <= 1000: retry; then 550 + 100 + 300 = 950: retry;
    assert!(matches!(
        s.next(AttemptOutcome::Retryable),
        Decision::Retry(_)
    ));
    time.advance(MS * 100);
    assert!(matches!(
        s.next(AttemptOutcome::Retryable),
        Decision::Retry(_)
    ));
    time.advance(MS * 100);
    // spent 650 + 100 + 300 = 1050 > 1000: stop.
    assert_eq!(
        s.next(AttemptOutcome::Retryable),
        Decision::Stop(StopReason::MaxElapsed)
    );
}

fn open_breaker(clock: &Clock, open_for: Duration) -> Breaker {
    let b = Breaker::builder(
        "dep",
        BreakerConfig::builder()
            .consecutive_failures(1)
            .open_for(open_for)
            .half_open_calls(1)
            .build()
            .unwrap(),
    )
    .clock(clock.clone())
    .events(EventRing::new(64))
    .build();
    b.acquire().unwrap().failure();
    assert_eq!(b.state(), State::Open);
    b
}

#[test]
fn an_open_breaker_is_waited_for_or_stops_the_schedule() {
    let (clock, time) = mock();
    let breaker = open_breaker(&clock, Duration::from_secs(5));
    let hint = Hint::none().breaker(&breaker);
    let waits = constant(100)
        .max_attempts(5)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(
        waits.schedule().next_with(AttemptOutcome::Retryable, hint),
        Decision::Retry(Duration::from_secs(5)),
        "waits the breaker's retry_after, beyond max_delay if need be"
    );
    let stops = constant(100)
        .max_attempts(5)
        .on_breaker_open(BreakerWait::Stop)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(
        stops.schedule().next_with(AttemptOutcome::Retryable, hint),
        Decision::Stop(StopReason::BreakerOpen)
    );
    let short = constant(100)
        .max_attempts(5)
        .max_elapsed(Duration::from_secs(2))
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(
        short.schedule().next_with(AttemptOutcome::Retryable, hint),
        Decision::Stop(StopReason::BreakerOpen),
        "a wait beyond max_elapsed stops"
    );
    // A breaker whose wait ends before the delay does not change the delay.
    time.advance(MS * 4950);
    assert_eq!(
        waits.schedule().next_with(AttemptOutcome::Retryable, hint),
        Decision::Retry(MS * 100)
    );
    breaker.force_open(None);
    assert_eq!(
        waits.schedule().next_with(AttemptOutcome::Retryable, hint),
        Decision::Stop(StopReason::BreakerOpen),
        "an indefinite forced open cannot be waited for"
    );
}

fn budget(ratio: f64, floor: f64, secs: u32) -> (Arc<RetryBudget>, MockClock, EventRing) {
    let (clock, time) = mock();
    let ring = EventRing::new(64);
    let b = RetryBudget::with_clock(
        RetryBudgetConfig::new(ratio, floor, secs).unwrap(),
        clock,
        ring.clone(),
    );
    (Arc::new(b), time, ring)
}

#[test]
fn the_budget_allows_ratio_times_requests_plus_the_floor() {
    let (b, time, ring) = budget(0.1, 1.0, 2);
    let mut sub = ring.subscribe();
    for _ in 0..30 {
        b.record_request();
    }
    // 0.1 * 30 + 1 * 2 = 5
    let granted = (0..10).filter(|_| b.try_retry()).count();
    assert_eq!(granted, 5);
    let m = b.metrics();
    assert_eq!(
        (m.requests, m.retries, m.remaining, m.refused_total),
        (30, 5, 0, 5)
    );
    // Five refusals in one second: one event.
    let e = sub.poll().unwrap();
    assert_eq!(
        (e.source, e.kind),
        (b.id(), EventKind::RetryBudgetExhausted)
    );
    assert!(sub.poll().is_none());
    // Two seconds later the window has slid past all of it: the floor alone allows 2.
    time.advance(Duration::from_secs(2));
    assert_eq!(b.metrics().requests, 0);
    assert_eq!((0..5).filter(|_| b.try_retry()).count(), 2);
    assert_eq!(sub.poll().unwrap().kind, EventKind::RetryBudgetExhausted);
}

#[test]
fn a_schedule_counts_its_request_and_stops_when_the_budget_refuses() {
    let (b, _time, _ring) = budget(0.5, 0.0, 10);
    let p = constant(10)
        .max_attempts(10)
        .budget(b.clone())
        .build()
        .unwrap();
    let mut a = p.schedule();
    let mut c = p.schedule();
    assert_eq!(b.metrics().requests, 2);
    assert!(matches!(
        a.next(AttemptOutcome::Retryable),
        Decision::Retry(_)
    ));
    assert_eq!(
        c.next(AttemptOutcome::Retryable),
        Decision::Stop(StopReason::BudgetExhausted)
    );
    assert_eq!(p.metrics().budget.unwrap().retries, 1);
}

#[test]
fn a_stopped_retry_takes_nothing_from_the_budget() {
    let (b, _time, _ring) = budget(0.0, 1.0, 1);
    let p = constant(10)
        .max_attempts(1)
        .budget(b.clone())
        .build()
        .unwrap();
    p.schedule().next(AttemptOutcome::Retryable);
    assert_eq!(b.metrics().retries, 0);
}

#[test]
fn the_registry_shares_one_budget_per_name() {
    let (clock, _time) = mock();
    let r = RetryBudgetRegistry::with_clock(clock, Some(EventRing::new(8)));
    let a = r.get_or_create("users", RetryBudgetConfig::new(0.0, 1.0, 1).unwrap());
    let b = r.get_or_create("users", RetryBudgetConfig::default());
    let other = r.get_or_create("orders", RetryBudgetConfig::default());
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &other));
    assert!(a.try_retry());
    assert!(!b.try_retry(), "the floor of 1 is shared");
    assert_eq!(r.names(), ["orders", "users"]);
}

#[test]
fn the_driver_stops_on_fatal_errors_and_honours_retry_after() {
    let (clock, time) = mock();
    let p = constant(10).max_attempts(5).clock(clock).build().unwrap();
    let mut calls = 0;
    let err = p
        .run(
            |d| time.advance(d),
            |e: &u16| *e >= 500,
            |_| {
                calls += 1;
                Err::<(), u16>(404)
            },
        )
        .unwrap_err();
    assert_eq!(
        (calls, err.reason, err.last),
        (1, StopReason::NotRetryable, CallError::Failed(404))
    );

    let mut slept = vec![];
    let got = p.run(
        |d| slept.push(d),
        |e: &u16| match e {
            429 => ErrorClass::RetryAfter(MS * 250),
            503 => ErrorClass::Retryable,
            _ => ErrorClass::Fatal,
        },
        |attempt| match attempt {
            1 => Err(429),
            2 => Err(503),
            n => Ok(n),
        },
    );
    assert_eq!(got, Ok(3));
    assert_eq!(slept, [MS * 250, MS * 10]);
}

#[test]
fn the_guarded_driver_waits_out_an_open_breaker_without_calling() {
    let (clock, time) = mock();
    let breaker = open_breaker(&clock, Duration::from_secs(3));
    let p = constant(10).max_attempts(3).clock(clock).build().unwrap();
    let mut calls = vec![];
    let got = p.run_guarded(
        &breaker,
        |d| time.advance(d),
        |_: &()| true,
        |attempt| {
            calls.push((attempt, breaker.state()));
            Ok(attempt)
        },
    );
    // Attempt 1 is rejected (no call), the schedule waits 3 s, attempt 2 is the probe.
    assert_eq!(got, Ok(2));
    assert_eq!(calls, [(2, State::HalfOpen)]);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn configuration_errors_name_the_field() {
    let field = |b: RetryPolicyBuilder| b.build().unwrap_err().field();
    let b = RetryPolicy::builder;
    assert_eq!(field(b().max_attempts(0)), "max_attempts");
    assert_eq!(
        field(b().backoff(Backoff::exponential(MS, f64::NAN))),
        "backoff.multiplier"
    );
    assert_eq!(
        field(b().backoff(Backoff::exponential(MS, 0.9))),
        "backoff.multiplier"
    );
    assert_eq!(
        field(b().backoff(Backoff::exponential(MS, f64::INFINITY))),
        "backoff.multiplier"
    );
    assert_eq!(
        field(b().backoff(Backoff::exponential(Duration::ZERO, 2.0))),
        "backoff.initial"
    );
    assert_eq!(
        field(b().backoff(Backoff::decorrelated_jitter(Duration::ZERO))),
        "backoff.base"
    );
    // Delays are positive for every kind: a zero is an error, not "no wait".
    assert_eq!(
        field(b().backoff(Backoff::constant(Duration::ZERO))),
        "backoff.delay"
    );
    assert_eq!(
        field(b().backoff(Backoff::linear(Duration::ZERO, MS))),
        "backoff.initial"
    );
    let err = b()
        .backoff(Backoff::constant(Duration::ZERO))
        .build()
        .unwrap_err();
    assert!(err.reason().contains("none backoff"), "{err}");
    assert!(b()
        .backoff(Backoff::linear(MS, Duration::ZERO))
        .build()
        .is_ok());
    assert_eq!(field(b().max_delay(Duration::ZERO)), "max_delay");
    assert_eq!(field(b().max_delay_secs(f64::NAN)), "max_delay");
    assert_eq!(field(b().max_elapsed_secs(-1.0)), "max_elapsed");
    assert_eq!(field(b().max_elapsed(Duration::ZERO)), "max_elapsed");
    assert_eq!(field(b().attempt_timeout_secs(0.0)), "attempt_timeout");
    let err = b()
        .max_elapsed(MS)
        .attempt_timeout(MS * 2)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "attempt_timeout");
    assert!(err.reason().contains("max_elapsed"), "{err}");
    let nan = RetryBudgetConfig::new(f64::NAN, 1.0, 10).unwrap_err();
    assert_eq!((nan.field(), nan.reason().contains("NaN")), ("ratio", true));
    assert_eq!(
        RetryBudgetConfig::new(1.01, 1.0, 10).unwrap_err().field(),
        "ratio"
    );
    assert_eq!(
        RetryBudgetConfig::new(0.2, -1.0, 10).unwrap_err().field(),
        "min_per_second"
    );
    assert_eq!(
        RetryBudgetConfig::new(0.2, 1.0, 0).unwrap_err().field(),
        "window_secs"
    );
    assert_eq!(
        RetryBudgetConfig::new(0.2, 1.0, 61).unwrap_err().field(),
        "window_secs"
    );
}

// ---- invariant I10 ------------------------------------------------------------------------

fn any_backoff() -> impl Strategy<Value = Backoff> {
    let d = || (0u64..2_000).prop_map(|ms| MS * ms as u32);
    let pos = || (1u64..2_000).prop_map(|ms| MS * ms as u32);
    prop_oneof![
        Just(Backoff::None),
        pos().prop_map(Backoff::constant),
        (pos(), d()).prop_map(|(a, b)| Backoff::linear(a, b)),
        (pos(), 1.0f64..4.0).prop_map(|(a, m)| Backoff::exponential(a, m)),
        pos().prop_map(Backoff::decorrelated_jitter),
    ]
}

fn any_jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Equal)]
}

proptest! {
    /// I10: attempts <= max_attempts; every delay within its kind's bounds (or the capped
    /// Retry-After); total delay <= max_elapsed; and with attempts no longer than
    /// attempt_timeout, the whole operation ends within max_elapsed.
    #[test]
    fn schedules_keep_attempts_delays_and_elapsed_in_bounds(
        backoff in any_backoff(),
        jitter in any_jitter(),
        max_attempts in 1u32..12,
        max_delay_ms in 1u64..5_000,
        max_elapsed_ms in proptest::option::of(1u64..20_000),
        timeout_ms in 1u64..1_000,
        steps in proptest::collection::vec((0.0f64..=1.0, proptest::option::of(0u64..10_000)), 12),
        seed in any::<u64>(),
    ) {
        let (clock, time) = mock();
        let mut b = RetryPolicy::builder()
            .backoff(backoff)
            .jitter(jitter)
            .max_attempts(max_attempts)
            .max_delay(MS * max_delay_ms as u32)
            .seed(seed)
            .clock(clock.clone());
        if let Some(e) = max_elapsed_ms {
            b = b.max_elapsed(MS * e as u32).attempt_timeout(MS * timeout_ms.min(e) as u32);
        }
        let p = b.build().unwrap();
        let max_delay = p.max_delay().unwrap();
        let start = clock.now_ns();
        let mut s = p.schedule();
        let mut total = Duration::ZERO;
        let mut prev = match backoff { Backoff::DecorrelatedJitter { base } => base, _ => Duration::ZERO };
        let mut attempts = 1u32;
        for (frac, ra) in steps {
            // The attempt runs for a fraction of attempt_timeout.
            time.advance((MS * timeout_ms.min(max_elapsed_ms.unwrap_or(u64::MAX)) as u32).mul_f64(frac));
            let hint = match ra { Some(ms) => Hint::none().retry_after(MS * ms as u32), None => Hint::none() };
            match s.next_with(AttemptOutcome::Retryable, hint) {
                Decision::Retry(d) => {
                    attempts += 1;
                    match (ra, backoff) {
                        // A Retry-After is waited in full, never capped.
                        (Some(ms), _) => prop_assert_eq!(d, MS * ms as u32),
                        (None, Backoff::DecorrelatedJitter { base }) => {
                            prop_assert!(d <= max_delay);
                            prop_assert!(d >= base.min(max_delay), "{:?} < base", d);
                            prop_assert!(d <= (prev * 3).min(max_delay).max(base.min(max_delay)), "{:?} > 3 x {:?}", d, prev);
                        }
                        (None, _) => {
                            prop_assert!(d <= max_delay);
                            let (lo, hi) = p.delay_bounds(attempts - 1);
                            prop_assert!(lo <= d && d <= hi, "{:?} not in [{:?}, {:?}]", d, lo, hi);
                        }
                    }
                    prev = d.max(Duration::from_nanos(1));
                    total += d;
                    time.advance(d);
                }
                Decision::Stop(r) => {
                    prop_assert!(matches!(r, StopReason::MaxAttempts | StopReason::MaxElapsed | StopReason::RetryAfterTooLong));
                    if r == StopReason::RetryAfterTooLong { prop_assert!(ra.is_some()); }
                    if r == StopReason::MaxAttempts { prop_assert_eq!(attempts, max_attempts); }
                    break;
                }
            }
        }
        prop_assert!(attempts <= max_attempts);
        prop_assert_eq!(s.attempts(), attempts);
        prop_assert_eq!(s.total_delay(), total);
        if let Some(e) = max_elapsed_ms {
            prop_assert!(total <= MS * e as u32);
            // Every attempt started was expected to fit, and did (none ran past the timeout).
            prop_assert!(clock.now_ns() - start <= e * 1_000_000);
        }
    }

    /// I10: a budget grants a retry exactly when, counting it, the retries in the window ending
    /// now stay within ratio * requests + floor * seconds (checked against a plain log).
    #[test]
    fn the_budget_matches_its_rule_exactly(
        ratio in 0.0f64..=1.0,
        floor in 0.0f64..3.0,
        secs in 1u32..5,
        ops in proptest::collection::vec((0u64..700, any::<bool>()), 1..200),
    ) {
        let (b, time, _ring) = budget(ratio, floor, secs);
        let clock_sec = |t: &MockClock| t.now_ns() / 1_000_000_000;
        let mut log: Vec<(u64, bool)> = vec![]; // (second, is_request), grants only for retries
        let in_window = |log: &Vec<(u64, bool)>, s: u64, req: bool| {
            log.iter().filter(|&&(t, r)| r == req && t + u64::from(secs) > s && t <= s).count() as f64
        };
        for (advance_ms, is_request) in ops {
            time.advance(MS * advance_ms as u32);
            let s = clock_sec(&time);
            if is_request {
                b.record_request();
                log.push((s, true));
            } else {
                let requests = in_window(&log, s, true);
                let retries = in_window(&log, s, false);
                let fits = retries + 1.0 <= ratio * requests + floor * f64::from(secs);
                let granted = b.try_retry();
                prop_assert_eq!(granted, fits, "requests {} retries {}", requests, retries);
                if granted { log.push((s, false)); }
            }
            let m = b.metrics();
            prop_assert_eq!(m.requests as f64, in_window(&log, s, true));
            prop_assert_eq!(m.retries as f64, in_window(&log, s, false));
        }
        // The rule holds at every grant (checked above); windows slide, so a later window may
        // hold retries whose requests have left it: the guarantee is at grant time.
    }

    /// I10: a breaker-aware schedule never schedules an attempt the breaker would reject.
    #[test]
    fn nothing_is_retried_into_an_open_breaker(
        trip_after in 1u32..4,
        open_ms in 1u64..3_000,
        delay_ms in 0u64..1_000,
        stop_mode in any::<bool>(),
        max_elapsed_ms in proptest::option::of(1u64..10_000),
        outcomes in proptest::collection::vec(any::<bool>(), 1..40),
        ops in 1usize..6,
    ) {
        let (clock, time) = mock();
        let breaker = Breaker::builder(
            "dep",
            BreakerConfig::builder()
                .consecutive_failures(trip_after)
                .open_for(MS * open_ms as u32)
                .half_open_calls(1)
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .events(EventRing::new(64))
        .build();
        // No wait at all is the none backoff (a zero constant delay is refused).
        let mut b = if delay_ms == 0 { constant(1).backoff(Backoff::none()) } else { constant(delay_ms) }
            .max_attempts(20)
            .on_breaker_open(if stop_mode { BreakerWait::Stop } else { BreakerWait::Wait })
            .clock(clock.clone());
        if let Some(e) = max_elapsed_ms { b = b.max_elapsed(MS * e as u32); }
        let p = b.build().unwrap();
        let mut outcomes = outcomes.into_iter().cycle();
        for _ in 0..ops {
            // Each operation starts when the breaker admits (a caller would get a rejection).
            if let Some(wait) = breaker.wait_hint() { time.advance(wait); }
            let mut s = p.schedule();
            loop {
                let permit = breaker.acquire();
                prop_assert!(permit.is_ok(), "an attempt was scheduled into a rejecting breaker: {:?}", breaker.state());
                let ok = outcomes.next().unwrap();
                permit.unwrap().record(if ok { Outcome::Success } else { Outcome::Failure });
                let outcome = if ok { AttemptOutcome::Success } else { AttemptOutcome::Retryable };
                match s.next_with(outcome, Hint::none().breaker(&breaker)) {
                    Decision::Retry(d) => {
                        time.advance(d);
                        prop_assert!(breaker.wait_hint().is_none_or(|w| w.is_zero()));
                    }
                    Decision::Stop(r) => {
                        prop_assert!(r != StopReason::BreakerOpen || breaker.wait_hint().is_some());
                        break;
                    }
                }
            }
        }
    }
}

#[test]
fn the_none_backoff_retries_without_waiting_and_keeps_every_other_rule() {
    let (clock, time) = mock();
    let p = RetryPolicy::builder()
        .max_attempts(4)
        .backoff(Backoff::none())
        .clock(clock)
        .build()
        .unwrap();
    assert_eq!(p.backoff(), Backoff::None);
    assert_eq!(p.delay_bounds(2), (Duration::ZERO, Duration::ZERO));
    let mut s = p.schedule();
    assert_eq!(
        drain(&mut s),
        (vec![Duration::ZERO; 3], StopReason::MaxAttempts)
    );
    // A Retry-After still replaces the (zero) delay, in full.
    let mut s = p.schedule();
    let d = s.next_with(
        AttemptOutcome::Retryable,
        Hint::none().retry_after(MS * 700),
    );
    assert_eq!(d, Decision::Retry(MS * 700));
    time.advance(MS * 700);
    assert_eq!(
        s.next(AttemptOutcome::Retryable),
        Decision::Retry(Duration::ZERO)
    );
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let p = RetryPolicy::builder().build().unwrap();
    assert_eq!(p.max_attempts(), 3);
    assert_eq!(
        p.backoff(),
        Backoff::exponential(Duration::from_millis(100), 2.0)
    );
    assert_eq!(p.jitter(), Jitter::Full);
    assert_eq!(p.max_delay(), None, "no hidden cap");
    assert_eq!(p.max_retry_after(), None);
    assert_eq!(p.max_elapsed(), None);
    assert!(p.budget().is_none());
}

#[test]
fn a_preview_is_the_next_schedules_delays_and_counts_nothing() {
    let (clock, _time) = mock();
    let (budget, _, _) = budget(0.0, 0.0, 1); // refuses every retry
    let p = RetryPolicy::builder()
        .max_attempts(6)
        .backoff(Backoff::exponential(MS * 100, 2.0))
        .jitter(Jitter::Full)
        .max_elapsed(MS * 1000)
        .seed(7)
        .clock(clock)
        .build()
        .unwrap();
    let preview: Vec<Duration> = p.preview().collect();
    assert!(!preview.is_empty() && preview.len() <= 5);
    assert!(preview.iter().sum::<Duration>() <= MS * 1000);
    assert_eq!(
        p.preview().collect::<Vec<_>>(),
        preview,
        "a preview draws nothing"
    );
    assert_eq!(p.metrics().operations, 0);
    assert_eq!(p.metrics().retries, 0);
    // The next operation, its attempts failing at once (the mock clock stands still), waits
    // exactly those delays.
    let (delays, stop) = drain(&mut p.schedule());
    assert_eq!(delays, preview);
    assert!(matches!(
        stop,
        StopReason::MaxAttempts | StopReason::MaxElapsed
    ));
    // A budget is not asked by a preview.
    let q = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(MS * 10))
        .jitter(Jitter::None)
        .budget(budget.clone())
        .build()
        .unwrap();
    assert_eq!(q.preview().collect::<Vec<_>>(), [MS * 10, MS * 10]);
    assert_eq!(budget.metrics().refused_total, 0);
    // Past attempts took no time; the attempt to come counts as its attempt_timeout:
    // 5 delays of 10 + 40 fit 90, a sixth does not.
    let r = constant(10)
        .max_attempts(10)
        .max_elapsed(MS * 90)
        .attempt_timeout(MS * 40)
        .build()
        .unwrap();
    assert_eq!(r.preview().collect::<Vec<_>>(), [MS * 10; 5]);
    // Lazy: a huge max_attempts is fine when the caller takes a few.
    let huge = constant(1).max_attempts(u32::MAX).build().unwrap();
    assert_eq!(huge.preview().take(3).count(), 3);
}
