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
