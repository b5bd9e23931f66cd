//! The breaker contract (DESIGN.md §3), one behaviour per test, driven by the mock clock.

use std::time::Duration;

use surgewall::clock::{Clock, MockClock};
use surgewall::events::{EventKind, EventRing};
use surgewall::{
    Breaker, BreakerConfig, BreakerConfigBuilder, Outcome, RawPermit, Recorded, RejectReason,
    State, TransitionReason,
};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

fn breaker(cfg: BreakerConfigBuilder) -> (Breaker, MockClock, EventRing) {
    let (clock, time) = Clock::mock();
    let ring = EventRing::new(256);
    let b = Breaker::builder("test", cfg.build().unwrap())
        .clock(clock)
        .events(ring.clone())
        .build();
    (b, time, ring)
}

/// Failure rate 50 % over the last 10 calls once 4 are in; open 5 s; 2 probes.
fn count_cfg() -> BreakerConfigBuilder {
    BreakerConfig::builder()
        .failure_rate(0.5)
        .minimum_calls(4)
        .count_window(10)
        .open_for(5 * S)
        .half_open_calls(2)
        .half_open_max_duration(30 * S)
}

fn run(b: &Breaker, outcomes: &[Outcome]) {
    for &o in outcomes {
        b.acquire().expect("admitted").record(o);
    }
}

use Outcome::{Failure as F, Ignored as I, Success as K};

fn trip(b: &Breaker) {
    run(b, &[F, F, F, F]);
    assert_eq!(b.state(), State::Open);
}

// ---- CLOSED ---------------------------------------------------------------------------------

#[test]
fn rate_rules_wait_for_minimum_calls() {
    let (b, _, _) = breaker(count_cfg());
    run(&b, &[F, F, F]);
    assert_eq!(b.state(), State::Closed, "3 calls < minimum_calls 4");
    run(&b, &[F]);
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.metrics().last_window.calls, 4);
    assert_eq!(b.metrics().last_window.failures, 4);
}

#[test]
fn the_success_that_reaches_minimum_calls_can_trip() {
    let (b, _, _) = breaker(count_cfg());
    run(&b, &[F, F, K]);
    assert_eq!(b.state(), State::Closed);
    // 4th call, a success: 2 failures of 4 = 50 % >= 50 %.
    let r = b.acquire().unwrap().success();
    assert_eq!(
        r,
        Recorded::Counted,
        "the tripping call still gets its own result"
    );
    assert_eq!(b.state(), State::Open);
}

#[test]
fn rate_under_threshold_stays_closed() {
    let (b, _, _) = breaker(count_cfg());
    run(&b, &[F, K, K, K, F, K, K, K, K, K]);
    assert_eq!(b.state(), State::Closed);
    assert!((b.metrics().window.failure_rate() - 0.2).abs() < 1e-9);
}

#[test]
fn ignored_outcomes_count_nowhere() {
    let (b, _, _) = breaker(count_cfg());
    run(&b, &[F, F, F, I, I, I, I]);
    let m = b.metrics();
    assert_eq!(b.state(), State::Closed);
    assert_eq!((m.window.calls, m.ignored), (3, 4));
}

#[test]
fn count_window_slides() {
    let (b, _, _) = breaker(count_cfg().failure_rate(0.6));
    // Alternating: never above 50 % < 60 %.
    run(&b, &[K, F, K, F, K, F, K, F, K, F]);
    assert_eq!(b.state(), State::Closed);
    // Five more successes push the first five calls (two failures) out of the last 10.
    run(&b, &[K, K, K, K, K]);
    let m = b.metrics();
    assert_eq!(m.window.calls, 10);
    assert_eq!(m.window.failures, 3);
}

#[test]
fn time_window_forgets_old_buckets() {
    let (b, time, _) = breaker(
        BreakerConfig::builder()
            .failure_rate(0.5)
            .minimum_calls(4)
            .time_window(10 * S, 10),
    );
    run(&b, &[F, F, F]);
    time.advance(11 * S);
    // The old failures left the window: one more failure is 1 of 1 call, under minimum_calls.
    run(&b, &[F]);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics().window.calls, 1);
    run(&b, &[F, F, K]);
    assert_eq!(b.state(), State::Open, "3 of 4 in the new window");
}

#[test]
fn time_window_keeps_calls_within_its_span() {
    let (b, time, _) = breaker(
        BreakerConfig::builder()
            .failure_rate(0.5)
            .minimum_calls(4)
            .time_window(10 * S, 10),
    );
    run(&b, &[K, K]);
    time.advance(3 * S);
    run(&b, &[F]);
    time.advance(3 * S);
    run(&b, &[K]);
    let m = b.metrics();
    assert_eq!((m.window.calls, m.window.failures), (4, 1));
    time.advance(5 * S); // t = 11 s: the first two successes (t = 0) have left
    let m = b.metrics();
    assert_eq!((m.window.calls, m.window.failures), (2, 1));
}

#[test]
fn a_bucket_rollover_can_trip() {
    // Old successes leaving the window raise the failure rate over the threshold.
    let (b, time, _) = breaker(
        BreakerConfig::builder()
            .failure_rate(0.5)
            .minimum_calls(4)
            .time_window(10 * S, 10),
    );
    run(&b, &[K, K, K, K, K, K]);
    time.advance(5 * S);
    run(&b, &[F, F, F, K]);
    assert_eq!(b.state(), State::Closed, "3 of 10");
    time.advance(6 * S); // the six successes leave: 3 failures of 4
    run(&b, &[K]);
    assert_eq!(b.state(), State::Open, "evaluated on the rollover");
}

#[test]
fn consecutive_failures_trip_on_the_kth() {
    let (b, _, ring) = breaker(
        BreakerConfig::builder()
            .no_failure_rate()
            .consecutive_failures(3),
    );
    let mut sub = ring.subscribe();
    run(&b, &[F, F, K, F, F]);
    assert_eq!(b.state(), State::Closed, "a success resets the streak");
    run(&b, &[I]);
    assert_eq!(
        b.metrics().consecutive_failures,
        2,
        "ignored leaves the streak"
    );
    run(&b, &[F]);
    assert_eq!(b.state(), State::Open);
    let e = sub.poll().unwrap();
    assert_eq!(
        e.kind,
        EventKind::Transition {
            from: State::Closed,
            to: State::Open,
            generation: 1,
            reason: TransitionReason::ConsecutiveFailures
        }
    );
}

#[test]
fn slow_calls_by_caller_duration() {
    let (b, _, ring) = breaker(
        BreakerConfig::builder()
            .no_failure_rate()
            .slow_calls(0.5, 100 * MS)
            .minimum_calls(4)
            .count_window(4),
    );
    let mut sub = ring.subscribe();
    for d in [50, 150, 99, 100] {
        b.acquire()
            .unwrap()
            .record_with_duration(Outcome::Success, d * MS);
    }
    assert_eq!(b.state(), State::Open, "2 of 4 calls took >= 100 ms");
    assert_eq!(b.metrics().slow_calls, 2);
    match sub.poll().unwrap().kind {
        EventKind::Transition { reason, .. } => assert_eq!(reason, TransitionReason::SlowCallRate),
        k => panic!("{k:?}"),
    }
}

#[test]
fn slow_calls_timed_by_the_breaker() {
    let (b, time, _) = breaker(
        BreakerConfig::builder()
            .no_failure_rate()
            .slow_calls(1.0, 100 * MS)
            .minimum_calls(2)
            .count_window(2),
    );
    assert!(b.config().times_calls());
    for _ in 0..2 {
        let p = b.acquire().unwrap();
        time.advance(100 * MS);
        p.success();
    }
    assert_eq!(b.state(), State::Open);
}

#[test]
fn metrics_only_records_but_never_trips() {
    let (b, _, _) = breaker(count_cfg());
    b.metrics_only();
    run(&b, &[F, F, F, F, F, F]);
    let m = b.metrics();
    assert_eq!(m.state, State::MetricsOnly);
    assert_eq!((m.failures, m.window.failures), (6, 6));
}

#[test]
fn disabled_admits_everything_and_records_nothing() {
    let (b, _, _) = breaker(count_cfg());
    b.disable();
    for _ in 0..10 {
        assert_eq!(b.acquire().unwrap().failure(), Recorded::Disabled);
    }
    assert_eq!(b.metrics().failures, 0);
    assert_eq!(b.state(), State::Disabled);
}

// ---- OPEN -----------------------------------------------------------------------------------

#[test]
fn open_rejects_with_exact_retry_after_and_ends() {
    let (b, time, _) = breaker(count_cfg());
    trip(&b);
    let r = b.acquire().unwrap_err();
    assert_eq!(r.reason, RejectReason::Open);
    assert_eq!(r.retry_after, 5 * S);
    time.advance(4999 * MS);
    assert_eq!(b.acquire().unwrap_err().retry_after, MS);
    assert_eq!(b.retry_after(), Some(MS));
    time.advance(MS);
    // I7: at elapsed == open_for the breaker admits again; reading had no side effect.
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.retry_after(), Some(Duration::ZERO));
    let p = b.acquire().expect("first probe");
    assert_eq!(b.state(), State::HalfOpen);
    p.success();
    assert_eq!(b.metrics().rejected_open, 2);
}

#[test]
fn open_wait_backs_off_and_resets_on_close() {
    let (b, time, _) = breaker(
        count_cfg()
            .open_backoff(2.0, 12 * S, 0.0)
            .half_open_calls(1),
    );
    trip(&b);
    let mut waits = vec![];
    for _ in 0..4 {
        let wait = b.acquire().unwrap_err().retry_after;
        waits.push(wait.as_secs());
        time.advance(wait);
        b.acquire().unwrap().failure(); // the probe fails: open again
        assert_eq!(b.state(), State::Open);
    }
    assert_eq!(waits, vec![5, 10, 12, 12]);
    let wait = b.acquire().unwrap_err().retry_after;
    time.advance(wait);
    b.acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
    trip(&b);
    assert_eq!(
        b.acquire().unwrap_err().retry_after,
        5 * S,
        "backoff starts over"
    );
}

#[test]
fn open_wait_jitter_stays_within_bounds() {
    for seed in 0..50 {
        let (b, time, _) = breaker(count_cfg().open_backoff(1.0, 10 * S, 0.2).seed(seed));
        trip(&b);
        let wait = b.acquire().unwrap_err().retry_after;
        assert!(wait >= 4 * S && wait <= 6 * S, "seed {seed}: {wait:?}");
        time.advance(wait);
        assert!(
            b.acquire().is_ok(),
            "the wait it announced is the wait it keeps"
        );
    }
}

#[test]
fn exactly_one_caller_moves_open_to_half_open() {
    let (b, time, ring) = breaker(count_cfg());
    trip(&b);
    time.advance(5 * S);
    let mut sub = ring.subscribe();
    let permits: Vec<_> = (0..5).map(|_| b.acquire()).collect();
    assert_eq!(permits.iter().filter(|p| p.is_ok()).count(), 2);
    let transitions = sub
        .by_ref()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Transition {
                    to: State::HalfOpen,
                    ..
                }
            )
        })
        .count();
    assert_eq!(transitions, 1);
    assert_eq!(
        b.metrics()
            .transitions_between(State::Open, State::HalfOpen),
        1
    );
}

// ---- HALF_OPEN ------------------------------------------------------------------------------

fn half_open(b: &Breaker, time: &MockClock) {
    trip(b);
    time.advance(5 * S);
}

#[test]
fn half_open_admits_exactly_n_and_says_full() {
    let (b, time, _) = breaker(count_cfg().half_open_calls(3));
    half_open(&b, &time);
    let p: Vec<_> = (0..3).map(|_| b.acquire().unwrap()).collect();
    let r = b.acquire().unwrap_err();
    assert_eq!(r.reason, RejectReason::HalfOpenFull, "distinct from open");
    assert_eq!(
        r.retry_after,
        500 * MS,
        "a short hint (open_for / 10), not the 30 s reclaim"
    );
    assert_eq!(b.metrics().half_open_admitted, 3);
    drop(p);
}

#[test]
fn an_ignored_probe_gives_its_slot_back() {
    let (b, time, _) = breaker(count_cfg());
    half_open(&b, &time);
    let p1 = b.acquire().unwrap();
    let p2 = b.acquire().unwrap();
    assert!(b.acquire().is_err());
    p1.ignore();
    let p3 = b.acquire().expect("the slot came back");
    p2.success();
    p3.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn a_dropped_probe_gives_its_slot_back() {
    let (b, time, _) = breaker(count_cfg());
    half_open(&b, &time);
    let p1 = b.acquire().unwrap();
    let _p2 = b.acquire().unwrap();
    drop(p1);
    assert!(b.acquire().is_ok());
}

#[test]
fn half_open_closes_only_when_all_probes_reported() {
    let (b, time, ring) = breaker(count_cfg().half_open_calls(3));
    half_open(&b, &time);
    let ps: Vec<_> = (0..3).map(|_| b.acquire().unwrap()).collect();
    let mut sub = ring.subscribe();
    let mut it = ps.into_iter();
    it.next().unwrap().success();
    it.next().unwrap().success();
    assert_eq!(b.state(), State::HalfOpen);
    it.next().unwrap().success();
    assert_eq!(b.state(), State::Closed);
    match sub.poll().unwrap().kind {
        EventKind::Transition { reason, to, .. } => {
            assert_eq!(
                (to, reason),
                (State::Closed, TransitionReason::ProbesSucceeded)
            )
        }
        k => panic!("{k:?}"),
    }
    let m = b.metrics();
    assert_eq!(
        m.window.calls, 0,
        "a closed episode starts with fresh counts"
    );
    assert_eq!(
        (m.last_window.calls, m.last_window.failures),
        (3, 0),
        "the last snapshot is the probes' episode that just ended"
    );
}

#[test]
fn half_open_reopens_as_soon_as_the_rate_cannot_stay_under() {
    // 4 probes, 50 %: the second failure makes 2/4 certain.
    let (b, time, _) = breaker(count_cfg().half_open_calls(4));
    half_open(&b, &time);
    let ps: Vec<_> = (0..4).map(|_| b.acquire().unwrap()).collect();
    let mut it = ps.into_iter();
    it.next().unwrap().failure();
    assert_eq!(b.state(), State::HalfOpen, "1 of 4 could still end at 25 %");
    it.next().unwrap().failure();
    assert_eq!(b.state(), State::Open);
    // The remaining probes are late now.
    assert_eq!(it.next().unwrap().success(), Recorded::Late);
    assert_eq!(b.metrics().late_results, 1);
}

#[test]
fn a_stuck_half_open_episode_reopens() {
    // I6: probes that never report are reclaimed after half_open_max_duration.
    let (b, time, _) = breaker(count_cfg());
    half_open(&b, &time);
    let p1 = b.acquire().unwrap();
    let p2 = b.acquire().unwrap();
    std::mem::forget((p1, p2)); // a foreign caller that never reports
    time.advance(30 * S);
    let r = b.acquire().unwrap_err();
    assert_eq!(r.reason, RejectReason::Open);
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        b.metrics()
            .transitions_between(State::HalfOpen, State::Open),
        1
    );
    time.advance(r.retry_after);
    assert!(b.acquire().is_ok(), "and it probes again after the wait");
}

#[test]
fn a_probe_recorded_twice_is_unexpected() {
    let (b, time, _) = breaker(count_cfg());
    half_open(&b, &time);
    let raw = b.try_acquire_raw().unwrap();
    assert_eq!(b.record_raw(raw, Outcome::Success), Recorded::Counted);
    assert_eq!(b.record_raw(raw, Outcome::Success), Recorded::Unexpected);
    assert_eq!(b.metrics().unexpected_results, 1);
    assert_eq!(
        b.state(),
        State::HalfOpen,
        "a duplicate does not count as the second probe"
    );
}

/// Issue 15: each probe has a number, so a probe reported twice is refused even while another
/// probe is out (it used to be taken as that one's report and close the breaker).
#[test]
fn a_probe_reported_twice_is_refused_while_another_is_out() {
    let (b, time, _) = breaker(count_cfg());
    half_open(&b, &time);
    let p1 = b.try_acquire_raw().unwrap();
    let p2 = b.try_acquire_raw().unwrap();
    assert_ne!(p1, p2, "probes are told apart");
    assert_eq!(b.record_raw(p1, Outcome::Success), Recorded::Counted);
    assert_eq!(b.record_raw(p1, Outcome::Success), Recorded::Unexpected);
    assert_eq!(b.record_raw(p1, Outcome::Ignored), Recorded::Unexpected);
    let m = b.metrics();
    assert_eq!((m.state, m.unexpected_results), (State::HalfOpen, 2));
    assert_eq!((m.half_open_admitted, m.half_open_reported), (2, 1));
    // The other probe's report still counts and closes the episode.
    assert_eq!(b.record_raw(p2, Outcome::Success), Recorded::Counted);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics().late_results, 0);
}

/// A released probe's number is free for the next probe; the released permit is spent.
#[test]
fn a_released_probe_number_is_reused_and_its_permit_spent() {
    let (b, time, _) = breaker(count_cfg());
    half_open(&b, &time);
    let p1 = b.try_acquire_raw().unwrap();
    let p2 = b.try_acquire_raw().unwrap();
    assert_eq!(b.record_raw(p1, Outcome::Ignored), Recorded::Counted);
    let p3 = b.try_acquire_raw().unwrap();
    assert_eq!(p3, p1, "the lowest free number comes back");
    assert_eq!(b.record_raw(p2, Outcome::Success), Recorded::Counted);
    assert_eq!(b.record_raw(p2, Outcome::Ignored), Recorded::Unexpected);
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.record_raw(p3, Outcome::Success), Recorded::Counted);
    assert_eq!(b.state(), State::Closed);
}

/// Probe numbers the breaker never issued are refused and change nothing.
#[test]
fn probe_numbers_never_issued_are_refused() {
    let (b, time, _) = breaker(count_cfg());
    let closed = b.try_acquire_raw().unwrap();
    let numbered = |p: RawPermit, n: u64| RawPermit {
        generation: p.generation | n << 40,
        ..p
    };
    // A number under a CLOSED generation, beyond half_open_calls, or in the unused top bits.
    assert_eq!(b.record_raw(numbered(closed, 1), F), Recorded::Invalid);
    assert_eq!(b.record_raw(numbered(closed, 3), F), Recorded::Invalid);
    assert_eq!(
        b.record_raw(numbered(closed, 1 << 16), F),
        Recorded::Invalid
    );
    assert_eq!(b.metrics().failures, 0);
    half_open(&b, &time);
    let p = b.try_acquire_raw().unwrap();
    let plain = RawPermit {
        generation: p.generation & ((1 << 40) - 1),
        ..p
    };
    // A permit without a number under a HALF_OPEN generation, and a number not out.
    assert_eq!(b.record_raw(plain, K), Recorded::Unexpected);
    assert_eq!(b.record_raw(numbered(plain, 2), K), Recorded::Unexpected);
    let m = b.metrics();
    assert_eq!((m.half_open_reported, m.unexpected_results), (0, 5));
    assert_eq!(b.record_raw(p, K), Recorded::Counted);
}

/// With more probes than one word of numbers holds, every probe is still told apart.
#[test]
fn many_probes_are_each_reported_once() {
    let (b, time, _) = breaker(count_cfg().half_open_calls(40));
    half_open(&b, &time);
    let probes: Vec<_> = (0..40).map(|_| b.try_acquire_raw().unwrap()).collect();
    let mut distinct = probes.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 40);
    for p in &probes[..39] {
        assert_eq!(b.record_raw(*p, K), Recorded::Counted);
        assert_eq!(b.record_raw(*p, K), Recorded::Unexpected);
    }
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.record_raw(probes[39], K), Recorded::Counted);
    assert_eq!(b.state(), State::Closed);
}

// ---- generation fence, permits, panics ------------------------------------------------------

#[test]
fn results_from_an_older_generation_are_late() {
    let (b, _, _) = breaker(count_cfg());
    let old = b.try_acquire_raw().unwrap();
    b.reset();
    assert_eq!(b.record_raw(old, Outcome::Failure), Recorded::Late);
    let m = b.metrics();
    assert_eq!((m.late_results, m.failures), (1, 0));
}

#[test]
fn a_panic_in_a_guarded_call_is_a_failure() {
    let (b, _, _) = breaker(
        BreakerConfig::builder()
            .no_failure_rate()
            .consecutive_failures(1),
    );
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = b.call(|| -> Result<(), ()> { panic!("boom") });
    }));
    assert!(r.is_err(), "the panic goes on");
    assert_eq!(b.metrics().failures, 1);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn call_classified_lets_the_caller_decide() {
    let (b, _, _) = breaker(count_cfg());
    let status = b
        .call_classified(
            || 429,
            |s| {
                if *s == 429 {
                    Outcome::Ignored
                } else {
                    Outcome::Success
                }
            },
        )
        .unwrap();
    assert_eq!(status, 429);
    assert_eq!(b.metrics().ignored, 1);
}

// ---- manual transitions ---------------------------------------------------------------------

#[test]
fn force_open_without_deadline_holds_until_changed() {
    let (b, time, _) = breaker(count_cfg());
    b.force_open(None);
    time.advance(Duration::from_secs(3600));
    let r = b.acquire().unwrap_err();
    assert_eq!(r.reason, RejectReason::ForcedOpen);
    assert_eq!(r.retry_after, Duration::MAX);
    b.half_open().unwrap();
    assert!(b.acquire().is_ok());
}

#[test]
fn force_open_for_a_duration_then_probes() {
    let (b, time, _) = breaker(count_cfg());
    b.force_open(Some(2 * S));
    assert_eq!(b.acquire().unwrap_err().retry_after, 2 * S);
    time.advance(2 * S);
    assert!(b.acquire().is_ok());
    assert_eq!(b.state(), State::HalfOpen);
}

#[test]
fn a_manual_open_waits_and_backs_off_as_a_trip_would() {
    let (b, time, ring) = breaker(
        count_cfg()
            .open_backoff(2.0, 60 * S, 0.0)
            .half_open_calls(1),
    );
    let mut sub = ring.subscribe();
    run(&b, &[F, K]);
    b.open();
    assert_eq!(b.state(), State::Open);
    let m = b.metrics();
    assert_eq!((m.last_window.calls, m.last_window.failures), (2, 1));
    assert_eq!(m.consecutive_opens, 1);
    let e = sub.poll().unwrap();
    assert_eq!(
        e.kind,
        EventKind::Transition {
            from: State::Closed,
            to: State::Open,
            generation: 1,
            reason: TransitionReason::Manual
        }
    );
    // Not a forced open: an OPEN rejection with the open wait, which ends.
    let r = b.acquire().unwrap_err();
    assert_eq!((r.reason, r.retry_after), (RejectReason::Open, 5 * S));
    b.open();
    assert_eq!(b.metrics().generation, 1, "already OPEN: a no-op");
    time.advance(5 * S);
    let probe = b.acquire().unwrap();
    assert_eq!(b.state(), State::HalfOpen);
    // Opened by hand from HALF_OPEN: the second consecutive open waits twice as long.
    b.open();
    assert_eq!(probe.success(), Recorded::Late);
    assert_eq!(b.acquire().unwrap_err().retry_after, 10 * S);
    // From FORCED_OPEN: the wait replaces the forced hold.
    b.force_open(None);
    b.open();
    assert_eq!(b.acquire().unwrap_err().retry_after, 20 * S);
    // A close resets the backoff; a manual open then waits the base time again.
    b.close();
    b.open();
    assert_eq!(b.acquire().unwrap_err().retry_after, 5 * S);
    assert_eq!(
        b.metrics().transitions_between(State::Closed, State::Open),
        2
    );
}

#[test]
fn closed_to_half_open_by_hand_is_refused() {
    let (b, _, _) = breaker(count_cfg());
    let e = b.half_open().unwrap_err();
    assert_eq!((e.from, e.to), (State::Closed, State::HalfOpen));
    assert!(e.to_string().contains("closed"));
}

#[test]
fn a_manual_transition_to_the_current_state_is_a_noop() {
    let (b, _, _) = breaker(count_cfg());
    let g = b.metrics().generation;
    b.close();
    b.disable();
    b.disable();
    let m = b.metrics();
    assert_eq!(m.generation, g + 1);
    assert_eq!(m.transitions_between(State::Closed, State::Disabled), 1);
}

#[test]
fn reset_starts_a_fresh_episode() {
    let (b, _, _) = breaker(count_cfg());
    run(&b, &[F, F, F]);
    b.reset();
    run(&b, &[F]);
    assert_eq!(b.state(), State::Closed, "the old failures are gone");
    assert_eq!(b.metrics().window.calls, 1);
    assert_eq!(b.metrics().failures, 4, "totals are kept");
}

// ---- time -----------------------------------------------------------------------------------

#[test]
fn real_time_passing_changes_nothing() {
    // I8: the breaker reads only its injected monotonic clock, never the wall clock, so a
    // wall-clock jump (or any real time passing) cannot lengthen or shorten OPEN.
    let (b, time, _) = breaker(count_cfg());
    trip(&b);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(b.acquire().unwrap_err().retry_after, 5 * S);
    time.advance(5 * S);
    assert!(b.acquire().is_ok());
}

#[test]
fn metrics_report_time_in_state_and_rejections() {
    let (b, time, _) = breaker(count_cfg());
    trip(&b);
    time.advance(2 * S);
    for _ in 0..3 {
        let _ = b.acquire();
    }
    let m = b.metrics();
    assert_eq!(m.time_in_state, 2 * S);
    assert_eq!(m.rejected_open, 3);
    assert_eq!(m.retry_after, Some(3 * S));
    assert_eq!(m.consecutive_opens, 1);
    assert_eq!(m.transitions_between(State::Closed, State::Open), 1);
}

#[test]
fn dynamic_threshold_applies_from_the_next_evaluation() {
    let (b, _, _) = breaker(count_cfg());
    assert_eq!(b.set_failure_rate_threshold(0.9).unwrap(), 0.5);
    run(&b, &[F, F, F, K]);
    assert_eq!(b.state(), State::Closed, "75 % < 90 %");
    assert_eq!(
        b.set_failure_rate_threshold(f64::NAN).unwrap_err().field(),
        "failure_rate"
    );
    b.set_failure_rate_threshold(0.7).unwrap();
    run(&b, &[F]);
    assert_eq!(b.state(), State::Open, "4 of 5 = 80 % >= 70 %");
}

// ---- the bindings' inline halves ------------------------------------------------------------

/// `try_acquire_raw_inline` and `try_record_success_inline`, the halves the C ABI runs without
/// a stack frame, act exactly where `try_acquire_raw` / `record_raw` take their fast path, give
/// the same permit and count the same success; everywhere else they leave no trace.
#[test]
fn the_inline_halves_agree_with_the_full_paths() {
    use surgewall::RawPermit;
    let timed = || count_cfg().slow_calls(1.0, 100 * MS);
    type Setup = fn(&Breaker);
    let cases: [(&str, BreakerConfigBuilder, Setup, bool, bool); 7] = [
        ("closed", count_cfg(), |_| {}, true, true),
        (
            "metrics_only",
            count_cfg(),
            |b| b.metrics_only(),
            true,
            true,
        ),
        ("disabled", count_cfg(), |b| b.disable(), true, false),
        ("open", count_cfg(), trip, false, false),
        (
            "half_open",
            count_cfg(),
            |b| {
                trip(b);
                b.half_open().unwrap();
            },
            false,
            false,
        ),
        (
            "forced_open",
            count_cfg(),
            |b| b.force_open(None),
            false,
            false,
        ),
        ("timed", timed(), |_| {}, false, false),
    ];
    for (name, cfg, setup, admits_inline, counts_inline) in cases {
        let (b, _, _) = breaker(cfg);
        setup(&b);
        let before = b.metrics();
        let inline = b.try_acquire_raw_inline();
        assert_eq!(b.metrics(), before, "{name}: acquire inline left a trace");
        assert_eq!(inline.is_some(), admits_inline, "{name}");
        let full = b.try_acquire_raw();
        if let Some(p) = inline {
            assert_eq!(full.as_ref().ok(), Some(&p), "{name}: the same permit");
        }
        // A permit of the current generation, as acquire hands out (timed: with a start).
        let current = full.as_ref().map_or(
            RawPermit {
                generation: before.generation,
                start_ns: 0,
            },
            |p| *p,
        );
        let late = RawPermit {
            generation: before.generation + 1,
            ..current
        };
        let before = b.metrics();
        assert!(!b.try_record_success_inline(late), "{name}: late");
        assert_eq!(b.metrics(), before, "{name}: a late permit left a trace");
        assert_eq!(
            b.try_record_success_inline(current),
            counts_inline,
            "{name}"
        );
        let after = b.metrics();
        if counts_inline {
            assert_eq!(after.successes, before.successes + 1, "{name}");
            assert_eq!(after.window.calls, before.window.calls + 1, "{name}");
        } else {
            assert_eq!(after, before, "{name}: record inline left a trace");
            if full.is_ok() {
                b.record_raw(current, Outcome::Ignored);
            }
        }
    }
}

/// A success due in the next bucket is not counted inline (the window must roll first), and a
/// precise clock always needs the full path.
#[test]
fn the_record_inline_half_leaves_rolls_and_precise_clocks_to_the_full_path() {
    let (b, time, _) = breaker(BreakerConfig::builder().time_window(10 * S, 10));
    let p = b.try_acquire_raw_inline().unwrap();
    assert!(b.try_record_success_inline(p));
    time.advance(1500 * MS);
    let before = b.metrics();
    assert!(!b.try_record_success_inline(p), "a bucket boundary passed");
    assert_eq!(b.metrics(), before);
    assert_eq!(b.record_raw(p, Outcome::Success), Recorded::Counted);
    assert!(b.try_record_success_inline(p), "rolled: inline again");
    assert_eq!(b.metrics().successes, 3);

    let precise = Breaker::builder("precise", count_cfg().build().unwrap())
        .clock(Clock::precise())
        .build();
    let p = precise.try_acquire_raw_inline().unwrap();
    assert!(!precise.try_record_success_inline(p));
    assert_eq!(precise.metrics().successes, 0);
    assert_eq!(precise.record_raw(p, Outcome::Success), Recorded::Counted);
}

// ---- I7 under manual transitions racing trips ----------------------------------------------

/// Issue 15 item 1: one thread trips the breaker over and over (consecutive_failures = 1)
/// while another forces it open for no time whenever it reads OPEN. Each transition's deadline
/// must never be overwritten by an earlier transition's: once both stop, the breaker's wait
/// ends (here: an hour of mock time later it admits), whatever interleaving they ran.
#[test]
fn a_trip_racing_force_open_never_leaves_the_breaker_stuck() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (clock, time) = Clock::mock();
    let b = Arc::new(
        Breaker::builder(
            "race",
            BreakerConfig::builder()
                .no_failure_rate()
                .consecutive_failures(1)
                .open_for(S)
                .build()
                .unwrap(),
        )
        .clock(clock)
        .events(EventRing::new(16))
        .build(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let forcer = {
        let (b, stop) = (b.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if b.state() == State::Open {
                    b.force_open(Some(Duration::ZERO));
                }
            }
        })
    };
    let mut trips = 0;
    while trips < 20_000 {
        if let Ok(p) = b.acquire() {
            p.failure();
            trips += 1;
        } else if b.state() == State::ForcedOpen && b.retry_after() == Some(S) {
            // Looks stuck (the forced open's zero wait overwritten by the trip's), or the
            // forcer is between its CAS and its deadline: look again a little later.
            std::thread::sleep(MS);
            if b.state() == State::ForcedOpen && b.retry_after() == Some(S) {
                break;
            }
        }
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    forcer.join().unwrap();
    time.advance(Duration::from_secs(3600));
    assert!(
        b.acquire().is_ok(),
        "stuck in {:?}: retry_after {:?}",
        b.state(),
        b.retry_after()
    );
}

/// Issue 15 item 6: deadlines are kept modulo 2^48 µs, so past 2^48 µs of clock (8.9 years of
/// uptime) and across that wrap an OPEN wait is still exact and ends, a deadline read years
/// after it passed is over, and a forced open longer than the longest wait holds until
/// changed.
#[test]
fn open_waits_are_exact_and_end_at_any_clock_reading() {
    let wrap_ns = (1u64 << 48) * 1000;
    for start in [
        0,
        wrap_ns - S.as_nanos() as u64 / 2,
        wrap_ns,
        3 * wrap_ns + 7_000,
    ] {
        let (b, time, _) = breaker(
            BreakerConfig::builder()
                .no_failure_rate()
                .consecutive_failures(1)
                .open_for(S)
                .half_open_calls(1),
        );
        time.advance(Duration::from_nanos(start));
        b.acquire().unwrap().failure();
        assert_eq!(b.retry_after(), Some(S), "start {start}");
        time.advance(S - Duration::from_nanos(1));
        let r = b.acquire().unwrap_err();
        assert_eq!(r.retry_after, Duration::from_nanos(1), "start {start}");
        time.advance(Duration::from_nanos(1));
        b.acquire().expect("the wait is over").success();
        assert_eq!(b.state(), State::Closed);
        // Tripped, then nobody calls for 2^48 µs less 10 s: the deadline, modulo 2^48 µs,
        // reads as 9 s ahead, more than any wait of OPEN: it has passed.
        b.acquire().unwrap().failure();
        time.advance(Duration::from_nanos(wrap_ns) - 10 * S);
        b.acquire().expect("long over").success();
        b.force_open(Some(surgewall::MAX_WAIT));
        assert_eq!(b.retry_after(), Some(surgewall::MAX_WAIT));
        b.force_open(Some(surgewall::MAX_WAIT + MS));
        assert_eq!(b.retry_after(), Some(Duration::MAX), "holds until changed");
    }
}

// ---- issue 16: the observable contract --------------------------------------------------------

#[test]
fn half_open_reports_the_probes_as_its_window() {
    // consecutive_failures=1 (beside the default 50 % rule), 3 probes: one success and one
    // failure reported of three (1/3 < 0.5: still probing).
    let cfg = BreakerConfig::builder()
        .consecutive_failures(1)
        .open_for(S)
        .half_open_calls(3);
    let (b, time, _) = breaker(cfg);
    run(&b, &[F]);
    time.advance(S);
    let p: Vec<_> = (0..3).map(|_| b.acquire().unwrap()).collect();
    let m = b.metrics();
    assert_eq!(
        (m.window.calls, m.failure_rate),
        (0, None),
        "no probe reported yet"
    );
    let mut p = p.into_iter();
    p.next().unwrap().success();
    p.next().unwrap().failure();
    let m = b.metrics();
    assert_eq!(m.state, State::HalfOpen);
    assert_eq!(m.half_open_reported, 2);
    assert_eq!(
        (m.window.calls, m.window.failures, m.window.slow),
        (2, 1, 0)
    );
    assert_eq!((m.failure_rate, m.slow_call_rate), (Some(0.5), Some(0.0)));
}

#[test]
fn every_ended_episode_leaves_its_window() {
    let cfg = BreakerConfig::builder()
        .no_failure_rate()
        .consecutive_failures(1)
        .open_for(S)
        .half_open_calls(2);
    let (b, time, _) = breaker(cfg);
    let m = b.metrics();
    assert_eq!(
        (m.last_window.calls, m.last_failure_rate),
        (0, None),
        "nothing ended yet"
    );
    run(&b, &[F]);
    let m = b.metrics();
    assert_eq!(
        (m.last_window.calls, m.last_window.failures),
        (1, 1),
        "CLOSED -> OPEN"
    );
    assert_eq!(m.last_failure_rate, None, "1 call < minimum_calls 20");
    // HALF_OPEN -> OPEN: two failed probes (the first already decides with consecutive
    // failures, so take both before reporting).
    time.advance(S);
    let (p1, p2) = (b.acquire().unwrap(), b.acquire().unwrap());
    p1.failure();
    assert_eq!(b.state(), State::Open);
    assert_eq!(p2.failure(), Recorded::Late);
    let m = b.metrics();
    assert_eq!(
        (m.last_window.calls, m.last_window.failures),
        (1, 1),
        "the probes' episode"
    );
    assert_eq!(
        m.last_failure_rate,
        Some(1.0),
        "a probe's episode is judged from one report"
    );
    // HALF_OPEN -> CLOSED: two successful probes.
    time.advance(2 * S);
    run(&b, &[K, K]);
    let m = b.metrics();
    assert_eq!(m.state, State::Closed);
    assert_eq!((m.last_window.calls, m.last_window.failures), (2, 0));
    assert_eq!(m.last_failure_rate, Some(0.0));
    // A reset ends the CLOSED episode too, and a forced open.
    run(&b, &[K, K, K]);
    b.reset();
    assert_eq!(b.metrics().last_window.calls, 3);
    run(&b, &[K]);
    b.force_open(None);
    assert_eq!(b.metrics().last_window.calls, 1);
}

#[test]
fn the_probes_failing_leave_their_own_window_not_the_closed_one() {
    // Before issue 16 the CLOSED window (1 call, 1 failure) stayed after HALF_OPEN -> OPEN.
    let cfg = BreakerConfig::builder()
        .failure_rate(0.5)
        .minimum_calls(1)
        .count_window(1)
        .open_for(S)
        .half_open_calls(2);
    let (b, time, _) = breaker(cfg);
    run(&b, &[F]);
    time.advance(S);
    let (p1, p2) = (b.acquire().unwrap(), b.acquire().unwrap());
    p1.failure(); // 1 of 2 probes failed: 0.5 >= 0.5, reopens at once
    assert_eq!(p2.failure(), Recorded::Late);
    let m = b.metrics();
    assert_eq!((m.last_window.calls, m.last_window.failures), (1, 1));
    time.advance(2 * S);
    let (p1, p2) = (b.acquire().unwrap(), b.acquire().unwrap());
    p2.success();
    p1.failure();
    let m = b.metrics();
    assert_eq!(m.state, State::Open);
    assert_eq!((m.last_window.calls, m.last_window.failures), (2, 1));
}

#[test]
fn force_open_on_forced_open_is_not_a_transition() {
    let (b, time, ring) = breaker(count_cfg());
    b.force_open(None);
    let before = b.metrics();
    let events = ring.published();
    b.force_open(None);
    let m = b.metrics();
    assert_eq!(m.generation, before.generation, "no generation bump");
    assert_eq!(
        m.transitions_between(State::ForcedOpen, State::ForcedOpen),
        0
    );
    assert_eq!(ring.published(), events, "no event");
    assert_eq!(m.retry_after, Some(Duration::MAX), "still until changed");
    // A new duration moves the deadline, nothing more.
    b.force_open(Some(2 * S));
    let m = b.metrics();
    assert_eq!(m.generation, before.generation);
    assert_eq!(m.retry_after, Some(2 * S));
    assert_eq!(ring.published(), events);
    // A timed forced open stays timed when forced open again without a duration.
    b.force_open(None);
    assert_eq!(b.retry_after(), Some(2 * S));
    b.force_open(Some(5 * S));
    time.advance(2 * S);
    assert_eq!(
        b.acquire().unwrap_err().retry_after,
        3 * S,
        "the deadline moved later"
    );
    time.advance(3 * S);
    assert!(b.acquire().is_ok());
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(
        b.metrics()
            .transitions_between(State::ForcedOpen, State::ForcedOpen),
        0
    );
}

#[test]
fn manual_transitions_to_the_current_state_change_nothing() {
    let (b, _, ring) = breaker(count_cfg());
    for (go, state) in [
        (Breaker::disable as fn(&Breaker), State::Disabled),
        (Breaker::metrics_only, State::MetricsOnly),
        (Breaker::close, State::Closed),
    ] {
        go(&b);
        let (m, events) = (b.metrics(), ring.published());
        go(&b);
        let again = b.metrics();
        assert_eq!(again.state, state);
        assert_eq!(again.generation, m.generation, "{state}");
        assert_eq!(again.transitions, m.transitions, "{state}");
        assert_eq!(ring.published(), events, "{state}");
    }
    // A reset is not a transition to the current state: it ends the episode (fresh window,
    // fenced permits), so it counts CLOSED -> CLOSED.
    let p = b.acquire().unwrap();
    b.reset();
    assert_eq!(p.success(), Recorded::Late);
    assert_eq!(
        b.metrics()
            .transitions_between(State::Closed, State::Closed),
        1
    );
}

#[test]
fn rates_are_absent_until_the_window_holds_minimum_calls() {
    let (b, _, _) = breaker(count_cfg()); // minimum_calls 4, threshold 0.5
    let m = b.metrics();
    assert_eq!(
        (m.minimum_calls, m.failure_rate, m.slow_call_rate),
        (4, None, None)
    );
    run(&b, &[K, K, K]);
    let m = b.metrics();
    assert_eq!(m.window.calls, 3);
    assert_eq!(
        m.failure_rate, None,
        "3 successes < 4 calls is not a healthy 0.0"
    );
    run(&b, &[F]);
    let m = b.metrics();
    assert_eq!((m.failure_rate, m.slow_call_rate), (Some(0.25), Some(0.0)));
    // No window outside CLOSED, METRICS_ONLY and HALF_OPEN: absent.
    b.disable();
    assert_eq!(b.metrics().failure_rate, None);
}

#[test]
fn a_half_open_rejection_hints_a_short_bounded_wait() {
    let cfg = BreakerConfig::builder()
        .no_failure_rate()
        .consecutive_failures(1)
        .open_for(20 * S)
        .half_open_calls(1)
        .half_open_max_duration(60 * S);
    let (b, time, _) = breaker(cfg);
    run(&b, &[F]);
    assert_eq!(b.retry_after(), Some(20 * S), "the read: time left of OPEN");
    time.advance(20 * S);
    let probe = b.acquire().unwrap();
    let r = b.acquire().unwrap_err();
    assert_eq!(r.reason, RejectReason::HalfOpenFull);
    assert_eq!(r.retry_after, S, "a tenth of open_for, at most 1 s");
    assert_eq!(
        b.retry_after(),
        None,
        "the read is 0 outside OPEN / FORCED_OPEN"
    );
    assert_eq!(b.metrics().retry_after, None);
    assert_eq!(b.wait_hint(), Some(S));
    // Never past the reclaim of stuck probes.
    time.advance(59_500 * MS);
    assert_eq!(b.acquire().unwrap_err().retry_after, 500 * MS);
    drop(probe);
}

#[test]
fn the_half_open_hint_is_a_tenth_of_open_for_within_bounds() {
    let hint = |open: Duration, max: Duration| {
        BreakerConfig::builder()
            .open_for(open)
            .half_open_max_duration(max)
            .build()
            .unwrap()
            .half_open_retry_hint()
    };
    assert_eq!(hint(5 * S, 60 * S), 500 * MS);
    assert_eq!(hint(3600 * S, 60 * S), S, "capped at 1 s");
    assert_eq!(hint(5 * MS, 60 * S), MS, "at least 1 ms");
    assert_eq!(hint(5 * S, 200 * MS), 200 * MS, "never past the reclaim");
}

#[test]
fn breaker_aware_retry_polls_on_the_half_open_hint() {
    use surgewall::{AttemptOutcome, Backoff, Decision, Hint, Jitter, RetryPolicy};
    let (clock, time) = Clock::mock();
    let cfg = BreakerConfig::builder()
        .no_failure_rate()
        .consecutive_failures(1)
        .open_for(2 * S)
        .half_open_calls(1)
        .build()
        .unwrap();
    let b = Breaker::builder("dep", cfg).clock(clock.clone()).build();
    run(&b, &[F]);
    time.advance(2 * S);
    let probe = b.acquire().unwrap(); // someone else's probe, in flight
    let policy = RetryPolicy::builder()
        .max_attempts(5)
        .backoff(Backoff::constant(10 * MS))
        .jitter(Jitter::None)
        .clock(clock)
        .build()
        .unwrap();
    let mut s = policy.schedule();
    assert!(b.acquire().is_err());
    let d = s.next_with(AttemptOutcome::Retryable, Hint::none().breaker(&b));
    assert_eq!(
        d,
        Decision::Retry(200 * MS),
        "polls on the hint, not the 60 s reclaim"
    );
    time.advance(200 * MS);
    probe.success();
    assert!(b.acquire().is_ok(), "the probe closed it meanwhile");
}
