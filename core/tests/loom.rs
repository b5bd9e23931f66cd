//! loom models of the breaker's concurrency invariants (DESIGN.md §3, I1-I5).
//!
//! Run with:
//! `RUSTFLAGS="--cfg surgewall_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p surgewall --release --test loom`
#![cfg(surgewall_loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use surgewall::clock::{Clock, MockClock};
use surgewall::events::{EventKind, EventRing};
use surgewall::{Breaker, BreakerConfig, BreakerConfigBuilder, Outcome, Recorded, State};

fn breaker(cfg: BreakerConfigBuilder) -> (Arc<Breaker>, MockClock, EventRing) {
    let (clock, time) = Clock::mock();
    let ring = EventRing::new(4);
    let b = Breaker::builder("loom", cfg.build().unwrap())
        .clock(clock)
        .events(ring.clone())
        .stripes(2)
        .build();
    (Arc::new(b), time, ring)
}

fn count_cfg() -> BreakerConfigBuilder {
    BreakerConfig::builder()
        .failure_rate(0.5)
        .minimum_calls(2)
        .count_window(2)
        .open_for(Duration::from_secs(1))
}

/// Puts `b` in HALF_OPEN with no probe out (the first probe is taken and given back).
fn into_half_open(b: &Breaker, time: &MockClock) {
    b.force_open(Some(Duration::from_secs(1)));
    time.advance(Duration::from_secs(1));
    b.acquire().unwrap().ignore();
    assert_eq!(b.state(), State::HalfOpen);
}

/// I1: when more callers than probe slots race, exactly `half_open_calls` are admitted.
#[test]
fn i1_half_open_admits_exactly_n() {
    loom::model(|| {
        let (b, time, _) = breaker(count_cfg().half_open_calls(2));
        b.force_open(Some(Duration::from_secs(1)));
        time.advance(Duration::from_secs(1));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.try_acquire_raw().is_ok())
            })
            .collect();
        let admitted = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&ok| ok)
            .count();
        assert_eq!(admitted, 2);
        assert_eq!(b.metrics().half_open_admitted, 2);
        assert_eq!(b.metrics().rejected_half_open, 1);
    });
}

/// I2: no lost counts when threads record concurrently.
#[test]
fn i2_no_lost_counts() {
    loom::model(|| {
        let (b, _, _) = breaker(
            BreakerConfig::builder()
                .failure_rate(1.0)
                .minimum_calls(8)
                .count_window(8),
        );
        let threads: Vec<_> = [Outcome::Success, Outcome::Failure]
            .into_iter()
            .map(|second| {
                let b = b.clone();
                thread::spawn(move || {
                    b.acquire().unwrap().success();
                    b.acquire().unwrap().record(second);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = b.metrics();
        assert_eq!((m.successes, m.failures), (3, 1));
        assert_eq!(m.window.calls, 4);
        assert_eq!(m.window.failures, 1);
    });
}

/// I3: a result whose permit is from an older generation is dropped and counted, never both
/// counted and dropped, never lost.
#[test]
fn i3_generation_fence() {
    loom::model(|| {
        let (b, _, _) = breaker(count_cfg());
        let permit = b.try_acquire_raw().unwrap();
        let resetter = {
            let b = b.clone();
            thread::spawn(move || b.reset())
        };
        let recorded = b.record_raw(permit, Outcome::Failure);
        resetter.join().unwrap();
        let m = b.metrics();
        match recorded {
            Recorded::Late => assert_eq!((m.late_results, m.failures), (1, 0)),
            Recorded::Counted => assert_eq!((m.late_results, m.failures), (0, 1)),
            other => panic!("{other:?}"),
        }
        // After the reset, a result of the old generation is always late.
        assert_eq!(b.record_raw(permit, Outcome::Failure), Recorded::Late);
        assert_eq!(b.state(), State::Closed);
    });
}

/// I4: several threads crossing the threshold together make one transition and one event.
#[test]
fn i4_one_transition_one_event() {
    loom::model(|| {
        let (b, _, ring) = breaker(
            BreakerConfig::builder()
                .no_failure_rate()
                .consecutive_failures(1),
        );
        let mut sub = ring.subscribe();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || {
                    if let Ok(p) = b.acquire() {
                        p.failure();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(b.state(), State::Open);
        assert_eq!(
            b.metrics().transitions_between(State::Closed, State::Open),
            1
        );
        let opened = sub
            .by_ref()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::Transition {
                        to: State::Open,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(opened, 1);
    });
}

/// I5: every permit is released exactly once, whether recorded, ignored or dropped: after
/// the race the half-open episode has all its slots back.
#[test]
fn i5_every_permit_released_once() {
    loom::model(|| {
        let (b, time, _) = breaker(count_cfg().half_open_calls(1));
        into_half_open(&b, &time);
        let dropper = {
            let b = b.clone();
            thread::spawn(move || {
                let got = b.acquire().map(drop).is_ok();
                u64::from(got)
            })
        };
        let ignorer = {
            let b = b.clone();
            thread::spawn(move || u64::from(b.acquire().map(|p| p.ignore()).is_ok()))
        };
        let released = dropper.join().unwrap() + ignorer.join().unwrap();
        let m = b.metrics();
        assert!(released >= 1, "a freed slot is always taken by someone");
        assert_eq!(m.state, State::HalfOpen);
        assert_eq!(m.half_open_admitted, 0, "every slot came back");
        assert_eq!(m.ignored, released + 1);
        assert!(b.acquire().is_ok());
    });
}

// ---- probe numbers (issue 15) ----------------------------------------------------------------

/// A probe's permit used twice at once, reported by one thread and released by another, while
/// a second probe reports: exactly one use of the number settles it, and the episode goes as
/// that one says: two reports close it (the other use is then unexpected, or late once the
/// breaker has closed), a release leaves it waiting for its second probe (the report is
/// unexpected).
#[test]
fn a_probe_number_settles_once_under_a_race() {
    loom::model(|| {
        let (b, time, _) = breaker(count_cfg().half_open_calls(2));
        into_half_open(&b, &time);
        let p1 = b.try_acquire_raw().unwrap();
        let p2 = b.try_acquire_raw().unwrap();
        let threads: Vec<_> = [Outcome::Success, Outcome::Ignored]
            .into_iter()
            .map(|o| {
                let b = b.clone();
                thread::spawn(move || b.record_raw(p1, o))
            })
            .collect();
        assert_eq!(b.record_raw(p2, Outcome::Success), Recorded::Counted);
        let got: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let m = b.metrics();
        match got[..] {
            [Recorded::Counted, Recorded::Unexpected | Recorded::Late] => {
                assert_eq!(m.state, State::Closed)
            }
            [Recorded::Unexpected, Recorded::Counted] => {
                assert_eq!(m.state, State::HalfOpen);
                assert_eq!((m.half_open_admitted, m.half_open_reported), (1, 1));
                // The released number is free again: the next probe takes it and closes.
                let p3 = b.try_acquire_raw().unwrap();
                assert_eq!(p3, p1);
                assert_eq!(b.record_raw(p3, Outcome::Success), Recorded::Counted);
                assert_eq!(b.state(), State::Closed);
            }
            ref other => panic!("one use of the number settles it, got {other:?}"),
        }
        assert_eq!(m.late_results + m.unexpected_results, 1);
    });
}

/// A release racing an acquire on a full episode: a probe admitted in the released place
/// always finds a free number (the release frees its number before it gives the place back),
/// never the other outstanding probe's.
#[test]
fn a_probe_admitted_in_a_released_place_gets_a_free_number() {
    loom::model(|| {
        let (b, time, _) = breaker(count_cfg().half_open_calls(2));
        into_half_open(&b, &time);
        let p1 = b.try_acquire_raw().unwrap();
        let p2 = b.try_acquire_raw().unwrap();
        let releaser = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(p1, Outcome::Ignored))
        };
        let acquirer = {
            let b = b.clone();
            thread::spawn(move || b.try_acquire_raw().ok())
        };
        assert_eq!(releaser.join().unwrap(), Recorded::Counted);
        let p3 = acquirer
            .join()
            .unwrap()
            .unwrap_or_else(|| b.try_acquire_raw().unwrap());
        assert_ne!(p3, p2, "never the outstanding probe's number");
        assert_eq!(b.record_raw(p2, Outcome::Success), Recorded::Counted);
        assert_eq!(b.record_raw(p3, Outcome::Success), Recorded::Counted);
        assert_eq!(b.state(), State::Closed);
    });
}

// ---- I7: a trip racing a manual transition (issue 15) ---------------------------------------

/// A breaker that trips on one failure, with a CLOSED permit taken for the tripping thread.
fn trip_race() -> (Arc<Breaker>, MockClock, surgewall::RawPermit) {
    let (b, time, _) = breaker(
        BreakerConfig::builder()
            .no_failure_rate()
            .consecutive_failures(1)
            .open_for(Duration::from_secs(1))
            .half_open_calls(1)
            .half_open_max_duration(Duration::from_secs(10)),
    );
    let p = b.try_acquire_raw().unwrap();
    (b, time, p)
}

/// Whatever state the race left, its wait ends: an hour on, a call is admitted (an episode
/// whose probe is out first reopens, and that wait ends too).
fn wait_ends(b: &Breaker, time: &MockClock) {
    for _ in 0..2 {
        time.advance(Duration::from_secs(3600));
        if let Ok(p) = b.try_acquire_raw() {
            b.record_raw(p, Outcome::Ignored);
            return;
        }
    }
    panic!(
        "stuck in {:?}, retry_after {:?}",
        b.state(),
        b.retry_after()
    );
}

/// A forced open for no time racing the trip: the breaker ends FORCED_OPEN (came the forced
/// open first, the failure's permit is late), and the trip's deadline never lands on the
/// forced open's: the wait is over.
#[test]
fn i7_a_trip_racing_force_open_always_ends() {
    loom::model(|| {
        let (b, time, p) = trip_race();
        let tripper = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(p, Outcome::Failure))
        };
        b.force_open(Some(Duration::ZERO));
        tripper.join().unwrap();
        assert_eq!(b.state(), State::ForcedOpen);
        assert_eq!(
            b.retry_after(),
            Some(Duration::ZERO),
            "the forced open's deadline"
        );
        wait_ends(&b, &time);
    });
}

/// A manual half-open racing the trip's publication, as a health check that acts when it
/// reads OPEN: the episode's deadline (half_open_max_duration) is never replaced by the
/// trip's, so a probe never reported is reclaimed (I6) and the breaker admits again.
#[test]
fn i7_a_trip_racing_half_open_always_ends() {
    loom::model(|| {
        let (b, time, p) = trip_race();
        let tripper = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(p, Outcome::Failure))
        };
        while b.state() != State::Open {
            thread::yield_now();
        }
        b.half_open().unwrap();
        tripper.join().unwrap();
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.wait_hint(), None, "a probe slot is free");
        b.try_acquire_raw().unwrap(); // a probe never reported
        assert_eq!(
            b.wait_hint(),
            Some(Duration::from_millis(100)),
            "open_for / 10"
        );
        // The rejection's hint never goes past the episode's own deadline (10 s on), which
        // the trip's publication never replaced.
        time.advance(Duration::from_millis(9_950));
        let r = b.try_acquire_raw().unwrap_err();
        assert_eq!(r.retry_after, Duration::from_millis(50));
        wait_ends(&b, &time);
    });
}

/// A reset racing the trip: the breaker ends CLOSED (came the reset first, the failure's
/// permit is late), and the next trip's wait is its own, exact, and ends.
#[test]
fn i7_a_trip_racing_reset_always_ends() {
    loom::model(|| {
        let (b, time, p) = trip_race();
        let tripper = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(p, Outcome::Failure))
        };
        b.reset();
        tripper.join().unwrap();
        assert_eq!(b.state(), State::Closed);
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.retry_after(), Some(Duration::from_secs(1)));
        wait_ends(&b, &time);
    });
}
