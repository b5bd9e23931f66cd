//! loom models of the keyed breaker's own concurrent state: the streak packed in the window
//! word (I4: many failures crossing the limit make one transition), the window word's change
//! of layout at a trip (a stale writer never corrupts the OPEN word), and the eviction commit
//! racing a trip (an OPEN key is never evicted; a key that is evicted fences the trip).
//!
//! Run: `RUSTFLAGS="--cfg surgewall_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p surgewall
//! --release --test loom_keyed`.
//!
//! Recording threads use raw permits taken before they start (the record path holds no map
//! lock); only one thread touches the map at a time, since DashMap's locks are not modelled.
#![cfg(surgewall_loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use surgewall::breaker::keyed::{KeyedBreaker, KeyedRejected};
use surgewall::clock::Clock;
use surgewall::events::EventRing;
use surgewall::{BreakerConfig, Outcome, Recorded, State};

fn keyed(k: u32) -> Arc<KeyedBreaker<u64>> {
    let (clock, _) = Clock::mock();
    let config = BreakerConfig::builder()
        .consecutive_failures(k)
        .open_for(Duration::from_secs(1))
        .build()
        .unwrap();
    Arc::new(
        KeyedBreaker::builder(config)
            .clock(clock)
            .events(EventRing::new(4))
            .idle_ttl(Duration::from_secs(1))
            .build()
            .unwrap(),
    )
}

const CLOSED_TO_OPEN: (usize, usize) = (State::Closed as usize, State::Open as usize);

/// Two failures racing on one key with K = 2: both are counted and exactly one opens it.
#[test]
fn racing_failures_open_a_key_once() {
    loom::model(|| {
        let b = keyed(2);
        let permits = [
            b.try_acquire_raw(&1).unwrap(),
            b.try_acquire_raw(&1).unwrap(),
        ];
        let threads: Vec<_> = permits
            .into_iter()
            .map(|p| {
                let b = b.clone();
                thread::spawn(move || b.record_raw(p, Outcome::Failure))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Recorded::Counted);
        }
        assert_eq!(b.state(&1), Some(State::Open));
        let m = b.metrics();
        assert_eq!(m.transitions[CLOSED_TO_OPEN.0][CLOSED_TO_OPEN.1], 1);
        assert_eq!(m.failures, 2);
    });
}

/// A sweep evicting an idle key races the failure that trips it: either the trip wins (the
/// key stays, OPEN) or the eviction wins (the key is gone and no transition happened).
#[test]
fn an_eviction_racing_a_trip_never_loses_an_open_key() {
    loom::model(|| {
        let b = keyed(1);
        let p = b.try_acquire_raw(&1).unwrap();
        assert_eq!(b.sweep(0), 0); // the idle mark
        let recorder = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(p, Outcome::Failure))
        };
        let evicted = b.sweep(1_000_000_000);
        let recorded = recorder.join().unwrap();
        let opened = b.metrics().transitions[CLOSED_TO_OPEN.0][CLOSED_TO_OPEN.1];
        if evicted == 1 {
            assert_eq!(b.get(&1), None);
            assert_eq!(opened, 0, "an evicted key must not have opened");
        } else {
            assert_eq!(evicted, 0);
            assert_eq!(recorded, Recorded::Counted);
            assert_eq!(b.state(&1), Some(State::Open));
            assert_eq!(opened, 1);
        }
    });
}

/// The window word changes layout with the state: a success racing the failure that trips the
/// key must never write over the OPEN episode's probe word (the openings count) nor the
/// deadline, whichever order they run in.
#[test]
fn a_stale_success_never_corrupts_the_open_word() {
    loom::model(|| {
        let b = keyed(1);
        let fail = b.try_acquire_raw(&1).unwrap();
        let ok = b.try_acquire_raw(&1).unwrap();
        let failer = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(fail, Outcome::Failure))
        };
        let recorded = b.record_raw(ok, Outcome::Success);
        assert_eq!(failer.join().unwrap(), Recorded::Counted);
        assert!(matches!(recorded, Recorded::Counted | Recorded::Late));
        let s = b.get(&1).unwrap();
        assert_eq!(s.state, State::Open);
        assert_eq!(s.consecutive_opens, 1);
        assert_eq!(s.retry_after, Some(Duration::from_secs(1)));
    });
}

/// A trip's event names its key, read after the transition without a map lock: racing a
/// reset, an eviction and the slot's reuse by another key, the event says key 1 or no key,
/// never the slot's next key.
#[test]
fn a_transition_event_never_names_the_next_owner_of_its_slot() {
    use surgewall::events::EventKind;
    loom::model(|| {
        let (clock, _) = Clock::mock();
        let config = BreakerConfig::builder()
            .consecutive_failures(1)
            .build()
            .unwrap();
        let ring = EventRing::new(8);
        let b = Arc::new(
            KeyedBreaker::<u64>::builder(config)
                .clock(clock)
                .events(ring.clone())
                .event_key(|k| *k)
                .idle_ttl(Duration::from_secs(1))
                .build()
                .unwrap(),
        );
        let mut sub = ring.subscribe();
        let p = b.try_acquire_raw(&1).unwrap();
        let tripper = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(p, Outcome::Failure))
        };
        b.reset(&1).unwrap();
        b.sweep(0);
        b.sweep(1_000_000_000);
        let _ = b.try_acquire_raw(&2);
        tripper.join().unwrap();
        for e in sub.by_ref() {
            match e.kind {
                EventKind::KeyedTransition { key, .. } => assert_eq!(key, 1),
                EventKind::Transition { .. } | EventKind::Evicted { key: 1 } => {}
                other => panic!("unexpected event {other:?}"),
            }
        }
    });
}

// ---- I7: a trip racing a manual transition on its key (issue 15) ----------------------------

/// A key that trips on one failure (open 1 s, one probe, episodes of 10 s) and a CLOSED permit
/// of it for the tripping thread.
fn trip_race() -> (
    Arc<KeyedBreaker<u64>>,
    surgewall::clock::MockClock,
    surgewall::breaker::keyed::KeyedRawPermit,
) {
    let (clock, time) = Clock::mock();
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(1))
        .half_open_calls(1)
        .half_open_max_duration(Duration::from_secs(10))
        .build()
        .unwrap();
    let b = Arc::new(
        KeyedBreaker::builder(config)
            .clock(clock)
            .events(EventRing::new(4))
            .build()
            .unwrap(),
    );
    let p = b.try_acquire_raw(&1).unwrap();
    (b, time, p)
}

/// Whatever state the race left key 1 in, its wait ends: an hour on, a call is admitted.
fn key_wait_ends(b: &KeyedBreaker<u64>, time: &surgewall::clock::MockClock) {
    for _ in 0..2 {
        time.advance(Duration::from_secs(3600));
        if let Ok(p) = b.try_acquire_raw(&1) {
            b.record_raw(p, Outcome::Ignored);
            return;
        }
    }
    panic!("key stuck: {:?}", b.get(&1));
}

/// A forced open for no time racing the trip: the key ends FORCED_OPEN with the forced open's
/// deadline (the trip's never lands on it), so the wait is over.
#[test]
fn i7_a_trip_racing_force_open_on_a_key_always_ends() {
    loom::model(|| {
        let (b, time, p) = trip_race();
        let tripper = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(p, Outcome::Failure))
        };
        b.force_open(&1, Some(Duration::ZERO)).unwrap();
        tripper.join().unwrap();
        let s = b.get(&1).unwrap();
        assert_eq!(s.state, State::ForcedOpen);
        assert_eq!(
            s.retry_after,
            Some(Duration::ZERO),
            "the forced open's deadline"
        );
        key_wait_ends(&b, &time);
    });
}

/// A manual half-open of the key as soon as it reads OPEN, racing the trip's publication:
/// the episode keeps its own deadline, so a probe never reported is reclaimed.
#[test]
fn i7_a_trip_racing_half_open_on_a_key_always_ends() {
    loom::model(|| {
        let (b, time, p) = trip_race();
        let tripper = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(p, Outcome::Failure))
        };
        while b.state(&1) != Some(State::Open) {
            thread::yield_now();
        }
        b.half_open(&1).unwrap().unwrap();
        tripper.join().unwrap();
        let s = b.get(&1).unwrap();
        assert_eq!((s.state, s.retry_after), (State::HalfOpen, None));
        b.try_acquire_raw(&1).unwrap(); // a probe never reported
        assert_eq!(b.retry_after(&1), None, "the read is 0 in HALF_OPEN");
        // The rejection's short hint never goes past the episode's own deadline (10 s on),
        // which the trip's publication never replaced.
        time.advance(Duration::from_millis(9_950));
        match b.try_acquire_raw(&1) {
            Err(KeyedRejected::Rejected(r)) => {
                assert_eq!(r.retry_after, Duration::from_millis(50))
            }
            other => panic!("{other:?}"),
        }
        key_wait_ends(&b, &time);
    });
}

/// A reset of the key racing the trip: the key ends CLOSED with a window-layout word (the
/// trip's probe word never lands on it), and its next trip has its own, exact wait.
#[test]
fn i7_a_trip_racing_reset_on_a_key_always_ends() {
    loom::model(|| {
        let (b, time, p) = trip_race();
        let tripper = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(p, Outcome::Failure))
        };
        b.reset(&1).unwrap();
        tripper.join().unwrap();
        let s = b.get(&1).unwrap();
        assert_eq!((s.state, s.consecutive_opens), (State::Closed, 0));
        let p = b.try_acquire_raw(&1).unwrap();
        assert_eq!(b.record_raw(p, Outcome::Failure), Recorded::Counted);
        let s = b.get(&1).unwrap();
        assert_eq!(s.state, State::Open);
        assert_eq!(s.consecutive_opens, 1);
        assert_eq!(s.retry_after, Some(Duration::from_secs(1)));
        key_wait_ends(&b, &time);
    });
}

/// Issue 15 on a key: a probe's permit reported by one thread and released by another at once,
/// while the key's second probe reports: one use settles the number, the other is unexpected.
#[test]
fn a_key_probe_number_settles_once_under_a_race() {
    loom::model(|| {
        let (clock, time) = Clock::mock();
        let config = BreakerConfig::builder()
            .consecutive_failures(1)
            .open_for(Duration::from_secs(1))
            .half_open_calls(2)
            .build()
            .unwrap();
        let b = Arc::new(
            KeyedBreaker::<u64>::builder(config)
                .clock(clock)
                .events(EventRing::new(4))
                .build()
                .unwrap(),
        );
        b.force_open(&1, Some(Duration::from_secs(1))).unwrap();
        time.advance(Duration::from_secs(1));
        let p1 = b.try_acquire_raw(&1).unwrap();
        let p2 = b.try_acquire_raw(&1).unwrap();
        let threads: Vec<_> = [Outcome::Success, Outcome::Ignored]
            .into_iter()
            .map(|o| {
                let b = b.clone();
                thread::spawn(move || b.record_raw(p1, o))
            })
            .collect();
        assert_eq!(b.record_raw(p2, Outcome::Success), Recorded::Counted);
        let got: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        match got[..] {
            // The report won; the release is unexpected, or late once the key has closed.
            [Recorded::Counted, Recorded::Unexpected | Recorded::Late] => {
                assert_eq!(b.state(&1), Some(State::Closed))
            }
            [Recorded::Unexpected, Recorded::Counted] => {
                assert_eq!(b.state(&1), Some(State::HalfOpen));
                let p3 = b.try_acquire_raw(&1).unwrap();
                assert_eq!(p3, p1, "the released number comes back");
                assert_eq!(b.record_raw(p3, Outcome::Success), Recorded::Counted);
                assert_eq!(b.state(&1), Some(State::Closed));
            }
            ref other => panic!("one use of the number settles it, got {other:?}"),
        }
        let m = b.metrics();
        assert_eq!(m.late_results + m.unexpected_results, 1);
    });
}
