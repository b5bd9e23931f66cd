use super::*;
use crate::clock::MockClock;
use crate::registry::Overflow;
use std::sync::{Arc, Barrier};

const SEC: u64 = 1_000_000_000;

fn mock() -> (Clock, MockClock) {
    Clock::mock()
}

fn consecutive(k: u32) -> BreakerConfig {
    BreakerConfig::builder()
        .consecutive_failures(k)
        .open_for(Duration::from_secs(1))
        .half_open_calls(2)
        .half_open_max_duration(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn keyed(config: BreakerConfig, clock: Clock) -> KeyedBreaker<u64> {
    KeyedBreaker::builder(config)
        .clock(clock)
        .events(EventRing::new(64))
        .idle_ttl(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn rejected(r: Result<KeyedPermit<'_, u64>, KeyedRejected>) -> Rejected {
    match r {
        Err(KeyedRejected::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn the_cell_is_24_bytes_and_a_u64_slot_32() {
    assert_eq!(std::mem::size_of::<Cell>(), 24);
    assert_eq!(crate::registry::compact::slot_bytes::<u64, Cell>(), 32);
}

#[test]
fn one_instance_per_key_under_a_race() {
    let b = Arc::new(keyed(consecutive(3), Clock::coarse()));
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let slots: Vec<u32> = (0..threads)
        .map(|_| {
            let (b, barrier) = (b.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let p = b.try_acquire(&7).unwrap();
                let slot = p.raw().slot;
                barrier.wait(); // every permit is out before anyone fails
                p.failure();
                slot
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert!(slots.iter().all(|&s| s == slots[0]), "{slots:?}");
    let m = b.metrics();
    assert_eq!((m.registry.keys, m.registry.created), (1, 1));
    // 8 failures on one breaker with K = 3: it opened exactly once (I4).
    assert_eq!(b.state(&7), Some(State::Open));
    assert_eq!(
        m.transitions[State::Closed as usize][State::Open as usize],
        1
    );
    assert_eq!(m.failures + m.late_results, 8);
}

#[test]
fn the_key_cap_rejects_with_a_clear_error() {
    let b = KeyedBreaker::<u64>::builder(consecutive(1))
        .max_keys(2)
        .build()
        .unwrap();
    b.try_acquire(&1).unwrap().success();
    b.try_acquire(&2).unwrap().success();
    let err = b.try_acquire(&3).unwrap_err();
    assert_eq!(
        err,
        KeyedRejected::TooManyKeys(RegistryFull { max_keys: 2 })
    );
    assert!(err.to_string().contains("maximum of 2 keys"), "{err}");
    assert!(b.try_acquire(&1).is_ok(), "held keys still work");
    let m = b.metrics().registry;
    assert_eq!((m.keys, m.rejected, m.overflowed), (2, 1, 0));
    assert_eq!(b.get(&3), None);
}

#[test]
fn the_key_cap_can_route_to_a_shared_overflow_breaker() {
    let (clock, _) = mock();
    let b = KeyedBreaker::<u64>::builder(consecutive(1))
        .max_keys(1)
        .overflow(Overflow::Shared(u64::MAX))
        .clock(clock)
        .build()
        .unwrap();
    b.try_acquire(&1).unwrap().success();
    // Keys 2 and 3 share the overflow breaker: 2's failure opens it for 3 too.
    b.try_acquire(&2).unwrap().failure();
    let r = rejected(b.try_acquire(&3));
    assert_eq!(r.reason, RejectReason::Open);
    assert!(b.try_acquire(&1).is_ok(), "the held key is its own breaker");
    let m = b.metrics().registry;
    assert_eq!((m.keys, m.overflowed, m.rejected), (1, 2, 0));
    // The overflow entry is not listed (iteration shows held keys only).
    let mut keys = Vec::new();
    b.for_each(|k, _| keys.push(*k));
    assert_eq!(keys, [1]);
    // Its own key names it: to look at it, and to reset it, without taking a key's room.
    assert_eq!(b.state(&u64::MAX), Some(State::Open));
    b.reset(&u64::MAX).unwrap();
    assert_eq!(b.state(&u64::MAX), Some(State::Closed));
    assert!(b.try_acquire(&3).is_ok());
    assert_eq!(b.metrics().registry.keys, 1);
}

#[test]
fn per_key_overrides_apply_to_their_key_only() {
    let (clock, _) = mock();
    let b = KeyedBreaker::<u64>::builder(consecutive(3))
        .override_key(9, consecutive(1))
        .clock(clock)
        .build()
        .unwrap();
    b.try_acquire(&9).unwrap().failure();
    b.try_acquire(&1).unwrap().failure();
    assert_eq!(b.state(&9), Some(State::Open));
    assert_eq!(b.state(&1), Some(State::Closed));
    b.try_acquire(&1).unwrap().failure();
    b.try_acquire(&1).unwrap().failure();
    assert_eq!(b.state(&1), Some(State::Open));
}

#[test]
fn configurations_that_do_not_fit_name_their_field() {
    let build = |c: BreakerConfig| KeyedBreaker::<u64>::builder(c).build().unwrap_err();
    let err = build(BreakerConfig::builder().minimum_calls(129).build().unwrap());
    assert_eq!(err.field(), "minimum_calls");
    assert!(err.to_string().contains("129"), "{err}");
    let err = build(
        BreakerConfig::builder()
            .consecutive_failures(256)
            .build()
            .unwrap(),
    );
    assert_eq!(err.field(), "consecutive_failures");
    let err = build(
        BreakerConfig::builder()
            .count_window(2000)
            .minimum_calls(10)
            .build()
            .unwrap(),
    );
    assert_eq!(err.field(), "window.calls");
    let err = build(
        BreakerConfig::builder()
            .half_open_calls(5000)
            .build()
            .unwrap(),
    );
    assert_eq!(err.field(), "half_open_calls");
    // An override is checked too.
    let err = KeyedBreaker::<u64>::builder(BreakerConfig::default())
        .override_key(1, BreakerConfig::default())
        .override_key(
            2,
            BreakerConfig::builder()
                .half_open_calls(15)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "half_open_calls");
    assert!(
        err.reason().starts_with("per-key override 2: "),
        "says which override: {err}"
    );
    // The limits themselves are accepted.
    KeyedBreaker::<u64>::builder(
        BreakerConfig::builder()
            .count_window(510)
            .minimum_calls(128)
            .consecutive_failures(255)
            .half_open_calls(14)
            .build()
            .unwrap(),
    )
    .build()
    .unwrap();
}

#[test]
fn contract_trip_reject_probe_close() {
    let (clock, time) = mock();
    let config = BreakerConfig::builder()
        .failure_rate(0.5)
        .minimum_calls(4)
        .time_window(Duration::from_secs(10), 10)
        .open_for(Duration::from_secs(2))
        .open_backoff(2.0, Duration::from_secs(8), 0.0)
        .half_open_calls(2)
        .build()
        .unwrap();
    let b = keyed(config, clock);
    let k = 5;
    // Two failures and one success: 3 calls < minimum 4, so no verdict yet.
    b.try_acquire(&k).unwrap().failure();
    b.try_acquire(&k).unwrap().failure();
    b.try_acquire(&k).unwrap().success();
    assert_eq!(b.state(&k), Some(State::Closed));
    // The success that reaches the minimum trips it (2/4 >= 50 %) and keeps its own result.
    assert_eq!(b.try_acquire(&k).unwrap().success(), Recorded::Counted);
    assert_eq!(b.state(&k), Some(State::Open));

    // OPEN rejects with the exact time left.
    let r = rejected(b.try_acquire(&k));
    assert_eq!(
        (r.reason, r.retry_after),
        (RejectReason::Open, Duration::from_secs(2))
    );
    time.advance(Duration::from_millis(1500));
    assert_eq!(
        rejected(b.try_acquire(&k)).retry_after,
        Duration::from_millis(500)
    );
    assert_eq!(b.retry_after(&k), Some(Duration::from_millis(500)));

    // After the wait: exactly two probes, then "half-open full".
    time.advance(Duration::from_millis(500));
    let p1 = b.try_acquire(&k).unwrap();
    let p2 = b.try_acquire(&k).unwrap();
    assert_eq!(b.state(&k), Some(State::HalfOpen));
    assert_eq!(
        rejected(b.try_acquire(&k)).reason,
        RejectReason::HalfOpenFull
    );
    // One probe fails: 1/2 >= 50 % reopens at once, with a doubled wait.
    assert_eq!(p1.failure(), Recorded::Counted);
    assert_eq!(b.state(&k), Some(State::Open));
    assert_eq!(b.get(&k).unwrap().consecutive_opens, 2);
    assert_eq!(
        rejected(b.try_acquire(&k)).retry_after,
        Duration::from_secs(4)
    );
    // The other probe reports late (its generation is gone): dropped and counted (I3).
    assert_eq!(p2.success(), Recorded::Late);

    // Next episode: both probes succeed, the key closes with a fresh window.
    time.advance(Duration::from_secs(4));
    b.try_acquire(&k).unwrap().success();
    assert_eq!(b.state(&k), Some(State::HalfOpen));
    b.try_acquire(&k).unwrap().success();
    let s = b.get(&k).unwrap();
    assert_eq!(
        (s.state, s.window, s.consecutive_opens),
        (State::Closed, Counts::default(), 0)
    );

    let m = b.metrics();
    let t = |f: State, to: State| m.transitions[f as usize][to as usize];
    assert_eq!(t(State::Closed, State::Open), 1);
    assert_eq!(t(State::Open, State::HalfOpen), 2);
    assert_eq!(t(State::HalfOpen, State::Open), 1);
    assert_eq!(t(State::HalfOpen, State::Closed), 1);
    assert_eq!(
        (m.rejected_open, m.rejected_half_open, m.late_results),
        (3, 1, 1)
    );
}

#[test]
fn a_stuck_half_open_episode_reopens_and_an_ignored_probe_gives_its_slot_back() {
    let (clock, time) = mock();
    let b = keyed(consecutive(1), clock);
    b.try_acquire(&1).unwrap().failure();
    time.advance(Duration::from_secs(1));
    let a = b.try_acquire(&1).unwrap();
    let c = b.try_acquire(&1).unwrap();
    assert!(b.try_acquire(&1).is_err());
    assert_eq!(c.ignore(), Recorded::Counted);
    let d = b.try_acquire(&1).unwrap(); // the slot came back
                                        // Never reported: after half_open_max_duration the next caller reopens it (I6).
    time.advance(Duration::from_secs(10));
    assert_eq!(rejected(b.try_acquire(&1)).reason, RejectReason::Open);
    assert_eq!(b.state(&1), Some(State::Open));
    assert_eq!((a.success(), d.success()), (Recorded::Late, Recorded::Late));
}

#[test]
fn consecutive_failures_reset_on_success_and_ignore_leaves_them() {
    let (clock, _) = mock();
    let b = keyed(consecutive(3), clock);
    b.try_acquire(&1).unwrap().failure();
    b.try_acquire(&1).unwrap().failure();
    b.try_acquire(&1).unwrap().ignore();
    assert_eq!(b.get(&1).unwrap().consecutive_failures, 2);
    b.try_acquire(&1).unwrap().success();
    assert_eq!(b.get(&1).unwrap().consecutive_failures, 0);
    b.try_acquire(&1).unwrap().failure();
    b.try_acquire(&1).unwrap().failure();
    assert_eq!(b.state(&1), Some(State::Closed));
    b.try_acquire(&1).unwrap().failure();
    assert_eq!(b.state(&1), Some(State::Open));
}

#[test]
fn manual_transitions_per_key() {
    let (clock, time) = mock();
    let b = keyed(consecutive(1), clock);
    b.force_open(&1, Some(Duration::from_secs(3))).unwrap();
    let r = rejected(b.try_acquire(&1));
    assert_eq!(
        (r.reason, r.retry_after),
        (RejectReason::ForcedOpen, Duration::from_secs(3))
    );
    time.advance(Duration::from_secs(3));
    assert!(
        b.try_acquire(&1).is_ok(),
        "the forced deadline ends like an open wait"
    );
    b.force_open(&2, None).unwrap();
    assert_eq!(rejected(b.try_acquire(&2)).retry_after, Duration::MAX);
    b.reset(&2).unwrap();
    assert!(b.try_acquire(&2).is_ok());
    assert_eq!(
        b.half_open(&3).unwrap(),
        Err(TransitionError {
            from: State::Closed,
            to: State::HalfOpen
        })
    );
    b.disable(&4).unwrap();
    for _ in 0..5 {
        assert_eq!(b.try_acquire(&4).unwrap().failure(), Recorded::Disabled);
    }
    b.metrics_only(&4).unwrap();
    for _ in 0..5 {
        b.try_acquire(&4).unwrap().failure();
    }
    assert_eq!(
        b.state(&4),
        Some(State::MetricsOnly),
        "metrics-only never trips"
    );
    assert_eq!(b.get(&4).unwrap().window.failures, 5);
    b.close(&4).unwrap();
    assert_eq!(b.get(&4).unwrap().window, Counts::default());
}

#[test]
fn a_manual_open_per_key_waits_and_backs_off_as_a_trip_would() {
    let (clock, time) = mock();
    let config = BreakerConfig::builder()
        .consecutive_failures(5)
        .open_for(Duration::from_secs(1))
        .open_backoff(2.0, Duration::from_secs(60), 0.0)
        .half_open_calls(1)
        .build()
        .unwrap();
    let b = keyed(config, clock);
    b.open(&1).unwrap();
    let r = rejected(b.try_acquire(&1));
    assert_eq!(
        (r.reason, r.retry_after),
        (RejectReason::Open, Duration::from_secs(1))
    );
    assert!(b.try_acquire(&2).is_ok(), "other keys are untouched");
    time.advance(Duration::from_secs(1));
    let probe = b.try_acquire(&1).unwrap();
    assert_eq!(b.state(&1), Some(State::HalfOpen));
    b.open(&1).unwrap();
    assert_eq!(probe.success(), Recorded::Late);
    assert_eq!(
        rejected(b.try_acquire(&1)).retry_after,
        Duration::from_secs(2),
        "the second consecutive open backs off"
    );
    let g = b.get(&1).unwrap().generation;
    b.open(&1).unwrap();
    assert_eq!(b.get(&1).unwrap().generation, g, "already OPEN: a no-op");
    let t = b.metrics().transitions;
    assert_eq!(t[State::Closed as usize][State::Open as usize], 1);
    assert_eq!(t[State::HalfOpen as usize][State::Open as usize], 1);
}

#[test]
fn sweeps_evict_idle_closed_keys_only_and_publish_events() {
    let (clock, time) = mock();
    let ring = EventRing::new(64);
    let mut sub = ring.subscribe();
    let b = KeyedBreaker::<u64>::builder(consecutive(1))
        .clock(clock)
        .events(ring)
        .event_key(|k| *k)
        .idle_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    b.try_acquire(&1).unwrap().success(); // CLOSED, idle
    b.try_acquire(&2).unwrap().failure(); // OPEN
    b.force_open(&3, None).unwrap(); // FORCED_OPEN
    b.disable(&4).unwrap();
    b.metrics_only(&5).unwrap();
    b.try_acquire(&6).unwrap().failure(); // -> HALF_OPEN below
    b.try_acquire(&7).unwrap().success(); // CLOSED, but used between sweeps
    time.advance(Duration::from_secs(1));
    let _probe = b.try_acquire(&6).unwrap();
    assert_eq!(b.state(&6), Some(State::HalfOpen));
    while sub.poll().is_some() {}

    assert_eq!(b.sweep(0), 0);
    b.try_acquire(&7).unwrap().success();
    assert_eq!(b.sweep(30 * SEC), 0);
    assert_eq!(b.sweep(60 * SEC), 1, "only key 1: idle for 60 s");
    assert_eq!(b.get(&1), None);
    let mut keys = Vec::new();
    b.for_each(|k, _| keys.push(*k));
    keys.sort();
    assert_eq!(keys, [2, 3, 4, 5, 6, 7], "evicted keys leave iteration");
    assert_eq!(b.sweep(90 * SEC), 1, "key 7: idle since the 30 s sweep");
    // Much later: the busy states are still there.
    assert_eq!(b.sweep(10_000 * SEC), 0);
    assert_eq!(b.len(), 5);
    let e = sub.poll().unwrap();
    assert_eq!((e.kind, e.source), (EventKind::Evicted { key: 1 }, b.id()));
    assert_eq!(sub.poll().unwrap().kind, EventKind::Evicted { key: 7 });
    assert_eq!(b.metrics().registry.evicted, 2);
}

#[test]
fn transitions_name_their_key_from_every_path() {
    let (clock, time) = mock();
    let ring = EventRing::new(64);
    let mut sub = ring.subscribe();
    let b = KeyedBreaker::<String>::builder(consecutive(1))
        .clock(clock)
        .events(ring)
        .override_key("special".to_string(), consecutive(1))
        .max_keys(3)
        .overflow(Overflow::Shared("rest".to_string()))
        .build()
        .unwrap();
    let key = |k: &str| crate::registry::ledger::stable_hash(&k.to_string());
    let mut next = || {
        let e = sub.poll().expect("an event");
        assert_eq!(e.source, b.id());
        match e.kind {
            EventKind::KeyedTransition {
                key,
                from,
                to,
                reason,
                ..
            } => (key, from, to, reason),
            other => panic!("expected a keyed transition, got {other:?}"),
        }
    };
    // Recording through a permit (no lock held): CLOSED -> OPEN.
    b.try_acquire(&"a".to_string()).unwrap().failure();
    assert_eq!(
        next(),
        (
            key("a"),
            State::Closed,
            State::Open,
            TransitionReason::ConsecutiveFailures
        )
    );
    // Acquiring (under the shard's lock): OPEN -> HALF_OPEN; then the probes close it.
    time.advance(Duration::from_secs(1));
    let probes = [
        b.try_acquire(&"a".to_string()).unwrap(),
        b.try_acquire(&"a".to_string()).unwrap(),
    ];
    assert_eq!(
        next(),
        (
            key("a"),
            State::Open,
            State::HalfOpen,
            TransitionReason::WaitOver
        )
    );
    for p in probes {
        p.success();
    }
    assert_eq!(
        next(),
        (
            key("a"),
            State::HalfOpen,
            State::Closed,
            TransitionReason::ProbesSucceeded
        )
    );
    // A reserved slot (an override key) and the shared overflow entry beyond the cap.
    b.force_open(&"special".to_string(), None).unwrap();
    assert_eq!(
        next(),
        (
            key("special"),
            State::Closed,
            State::ForcedOpen,
            TransitionReason::Manual
        )
    );
    b.force_open(&"b".to_string(), None).unwrap(); // the third key: the cap is 3
    assert_eq!(next().0, key("b"));
    b.try_acquire(&"c".to_string()).unwrap().failure(); // beyond the cap
    assert_eq!(
        next(),
        (
            key("rest"),
            State::Closed,
            State::Open,
            TransitionReason::ConsecutiveFailures
        )
    );
    assert!(sub.poll().is_none());
}

#[test]
fn permits_stay_valid_after_their_key_is_evicted_and_the_cell_reused() {
    let (clock, _) = mock();
    let b = KeyedBreaker::<u64>::builder(consecutive(1))
        .clock(clock)
        .idle_ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    let raw = b.try_acquire_raw(&1).unwrap();
    let held = b.try_acquire(&1).unwrap();
    assert_eq!(b.sweep(0), 0);
    assert_eq!(
        b.sweep(SEC),
        1,
        "a CLOSED key does not count its permits out"
    );
    // The results are fenced: late, not counted, no panic.
    assert_eq!(b.record_raw(raw, Outcome::Failure), Recorded::Late);
    assert_eq!(held.failure(), Recorded::Late);
    // A new key takes the freed cell; the old permit still cannot touch it.
    let fresh = b.try_acquire(&2).unwrap();
    assert_eq!(fresh.raw().slot, raw.slot);
    assert!(fresh.raw().inner.generation > raw.inner.generation);
    assert_eq!(b.record_raw(raw, Outcome::Failure), Recorded::Late);
    assert_eq!(fresh.success(), Recorded::Counted);
    assert_eq!(b.state(&2), Some(State::Closed));
    // A forged permit is reported, never a panic: past the arena it is invalid; on a cell
    // that never had a key it is late (only generation 0 would match such a cell, and that
    // generation is invalid: see `raw_permits_the_breaker_never_issued_are_refused`).
    let forged = KeyedRawPermit {
        slot: 1 << 30,
        inner: raw.inner,
    };
    assert_eq!(b.record_raw(forged, Outcome::Success), Recorded::Invalid);
    let vacant = KeyedRawPermit {
        slot: raw.slot + 7,
        inner: raw.inner,
    };
    assert_eq!(b.record_raw(vacant, Outcome::Failure), Recorded::Late);
    assert_eq!(b.metrics().late_results, 4);
}

#[test]
fn time_window_is_two_half_buckets() {
    let (clock, time) = mock();
    let config = BreakerConfig::builder()
        .failure_rate(0.5)
        .minimum_calls(4)
        .time_window(Duration::from_secs(10), 10)
        .build()
        .unwrap();
    let b = keyed(config, clock);
    for _ in 0..3 {
        b.try_acquire(&1).unwrap().failure();
    }
    // 5 s later (next half-bucket) the failures are still in the window.
    time.advance(Duration::from_secs(5));
    assert_eq!(b.get(&1).unwrap().window.failures, 3);
    // 10 s after they started they have left, even though nothing was recorded since.
    time.advance(Duration::from_secs(5));
    assert_eq!(b.get(&1).unwrap().window, Counts::default());
    for _ in 0..3 {
        b.try_acquire(&1).unwrap().success();
    }
    b.try_acquire(&1).unwrap().failure();
    assert_eq!(
        b.state(&1),
        Some(State::Closed),
        "1/4 < 50 %: old failures do not count"
    );
}

#[test]
fn count_window_holds_between_half_and_all_of_its_calls() {
    let (clock, _) = mock();
    let config = BreakerConfig::builder()
        .failure_rate(0.9)
        .count_window(10)
        .minimum_calls(5)
        .build()
        .unwrap();
    let b = keyed(config, clock);
    for _ in 0..4 {
        b.try_acquire(&1).unwrap().failure(); // 4/4: under the minimum
    }
    b.try_acquire(&1).unwrap().success(); // bucket of 5 is full: 4/5 < 90 %
    assert_eq!(b.get(&1).unwrap().window.calls, 5);
    for _ in 0..5 {
        b.try_acquire(&1).unwrap().success();
    }
    assert_eq!(b.get(&1).unwrap().window.calls, 10);
    b.try_acquire(&1).unwrap().success();
    let w = b.get(&1).unwrap().window;
    assert_eq!((w.calls, w.failures), (6, 0), "the first bucket left whole");
    assert_eq!(b.state(&1), Some(State::Closed));
}

#[test]
fn a_full_bucket_halves_and_keeps_the_rates() {
    let buckets = Buckets::Time { width_ns: SEC };
    let mut w = 0;
    for i in 0..2000u64 {
        w = buckets.add(w, 0, i % 4 == 0, false).0;
    }
    let c = buckets.counts(w, 0);
    assert!((128..=255).contains(&c.calls), "{c:?}");
    let rate = c.failure_rate();
    assert!((0.2..=0.3).contains(&rate), "{c:?}");
    // A lone failure survives halving (rounded up).
    let mut w = buckets.add(0, 0, true, false).0;
    for _ in 0..1000 {
        w = buckets.add(w, 0, false, false).0;
    }
    assert!(buckets.counts(w, 0).failures >= 1);
}

#[test]
fn many_threads_many_keys_with_sweeps_keep_the_rules() {
    let b = Arc::new(
        KeyedBreaker::<u64>::builder(
            BreakerConfig::builder()
                .consecutive_failures(5)
                .open_for(Duration::from_millis(1))
                .build()
                .unwrap(),
        )
        .max_keys(64)
        .idle_ttl(Duration::ZERO)
        .events(EventRing::new(16))
        .build()
        .unwrap(),
    );
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let b = b.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    let k = (i * 7 + t) % 48;
                    if let Ok(p) = b.try_acquire(&k) {
                        if i % 3 == 0 {
                            p.failure();
                        } else {
                            p.success();
                        }
                    }
                    if t == 0 && i % 500 == 0 {
                        b.sweep(i * 1_000_000);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let m = b.metrics();
    assert!(m.registry.keys <= 48);
    assert_eq!(
        m.registry.created - m.registry.evicted,
        m.registry.keys as u64
    );
    let mut n = 0;
    b.for_each(|_, s| {
        n += 1;
        assert!(s.window.calls <= 510);
    });
    assert_eq!(n, m.registry.keys);
}

#[test]
fn the_window_word_switches_layout_with_the_state() {
    let (clock, time) = mock();
    let b = keyed(consecutive(2), clock);
    b.try_acquire(&1).unwrap().failure();
    assert_eq!(b.get(&1).unwrap().consecutive_failures, 1);
    b.try_acquire(&1).unwrap().failure(); // OPEN: the word holds the probe layout
    let s = b.get(&1).unwrap();
    assert_eq!((s.window, s.consecutive_opens), (Counts::default(), 1));
    time.advance(Duration::from_secs(1));
    b.try_acquire(&1).unwrap().success(); // lazily reset for the episode, opens kept
    assert_eq!(b.get(&1).unwrap().consecutive_opens, 1);
    b.try_acquire(&1).unwrap().success(); // closes: an empty window again
    let s = b.get(&1).unwrap();
    assert_eq!(
        (s.state, s.window, s.consecutive_failures),
        (State::Closed, Counts::default(), 0)
    );
    b.try_acquire(&1).unwrap().failure();
    assert_eq!(b.get(&1).unwrap().window.failures, 1);
    // Layout helpers.
    let probes = Probes {
        taken: P14,
        reported: 1 << 13,
        failures: P4,
        slow: 1,
    };
    let p = pack_probe(7, 3, probes);
    assert_eq!((probes_of(p, 7), probe_opens(p)), (probes, 3));
    assert_eq!(probes_of(p, 8), Probes::default());
    assert!(probe_is_current(p, 7) && probe_is_current(p, 6) && !probe_is_current(p, 8));
    assert_eq!(WindowWord::unpack(p), WindowWord::default());
    assert!(!probe_is_current(0, 7));
}

/// Issue 15 item 1 on a key: trips over and over (consecutive_failures = 1) racing forced
/// opens of no time; once both stop, the key's wait always ends.
#[test]
fn a_trip_racing_force_open_never_leaves_a_key_stuck() {
    use std::sync::atomic::AtomicBool;
    let (clock, time) = mock();
    let b = Arc::new(keyed(consecutive(1), clock));
    let stop = Arc::new(AtomicBool::new(false));
    let forcer = {
        let (b, stop) = (b.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if b.state(&1) == Some(State::Open) {
                    b.force_open(&1, Some(Duration::ZERO)).unwrap();
                }
            }
        })
    };
    let stuck = |b: &KeyedBreaker<u64>| {
        b.state(&1) == Some(State::ForcedOpen) && b.retry_after(&1) == Some(Duration::from_secs(1))
    };
    let mut trips = 0;
    while trips < 20_000 {
        if let Ok(p) = b.try_acquire(&1) {
            p.failure();
            trips += 1;
        } else if stuck(&b) {
            // Stuck, or the forcer is between its CAS and its deadline: look again later.
            std::thread::sleep(Duration::from_millis(1));
            if stuck(&b) {
                break;
            }
        }
        std::thread::yield_now();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    forcer.join().unwrap();
    time.advance(Duration::from_secs(3600));
    assert!(
        b.try_acquire(&1).is_ok(),
        "stuck in {:?}: retry_after {:?}",
        b.state(&1),
        b.retry_after(&1)
    );
}

/// Issue 15 item 5: a raw permit is tied to the key that got it. Moved to another key's slot
/// it is not counted there (fresh keys start at generations of their own); generation 0 (what
/// a slot never handed out holds) and the generation an eviction leaves on a vacant cell are
/// never issued: invalid, with no count and no transition.
#[test]
fn raw_permits_the_breaker_never_issued_are_refused() {
    let (clock, _) = mock();
    let ring = EventRing::new(16);
    let b = KeyedBreaker::<u64>::builder(consecutive(1))
        .clock(clock)
        .events(ring.clone())
        .idle_ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut sub = ring.subscribe();
    let p1 = b.try_acquire_raw(&1).unwrap();
    let p2 = b.try_acquire_raw(&2).unwrap();
    assert_ne!(p1.slot, p2.slot);
    assert_ne!(p1.inner.generation, p2.inner.generation);
    let moved = KeyedRawPermit {
        slot: p2.slot,
        inner: p1.inner,
    };
    assert_eq!(b.record_raw(moved, Outcome::Failure), Recorded::Late);
    assert_eq!(
        b.get(&2).unwrap().window.calls,
        0,
        "nothing counted on key 2"
    );
    let zero = RawPermit {
        generation: 0,
        start_ns: 0,
    };
    for slot in [p2.slot + 5, p1.slot, 1 << 30] {
        let forged = KeyedRawPermit { slot, inner: zero };
        assert_eq!(b.record_raw(forged, Outcome::Failure), Recorded::Invalid);
        assert_eq!(
            b.record_raw_with_duration(forged, Outcome::Failure, Duration::ZERO),
            Recorded::Invalid
        );
    }
    // Key 1 evicted: its cell is vacant at the generation the eviction moved it to.
    assert_eq!(b.record_raw(p1, Outcome::Success), Recorded::Counted);
    assert_eq!(b.record_raw(p2, Outcome::Success), Recorded::Counted);
    assert_eq!(b.sweep(0), 0);
    assert_eq!(b.sweep(SEC), 2);
    let at_eviction = KeyedRawPermit {
        slot: p1.slot,
        inner: RawPermit {
            generation: p1.inner.generation + 1,
            start_ns: 0,
        },
    };
    for o in [Outcome::Failure, Outcome::Success, Outcome::Ignored] {
        assert_eq!(b.record_raw(at_eviction, o), Recorded::Invalid, "{o:?}");
    }
    let m = b.metrics();
    assert_eq!(m.transitions, [[0; 6]; 6], "no phantom transition");
    assert_eq!(
        (m.failures, m.unexpected_results, m.late_results),
        (0, 9, 1)
    );
    assert!(sub.all(|e| matches!(e.kind, EventKind::Evicted { .. })));
    // The vacant cell serves a new key as usual.
    let p3 = b.try_acquire_raw(&3).unwrap();
    assert_eq!(b.record_raw(p3, Outcome::Failure), Recorded::Counted);
    assert_eq!(b.state(&3), Some(State::Open));
}

/// Issue 15 item 6: the idle mark counts milliseconds in 32 bits, which wrap after 49.7 days;
/// a sweep that finds a key idle for 12 days switches its mark to seconds, so a key idle for
/// months is still evicted once its idle TTL has passed, and never early.
#[test]
fn keys_idle_for_months_are_evicted_at_their_ttl() {
    let day = 86_400 * SEC;
    let (clock, _) = mock();
    let b = KeyedBreaker::<u64>::builder(consecutive(3))
        .clock(clock)
        .idle_ttl(Duration::from_secs(60 * 86_400))
        .build()
        .unwrap();
    b.try_acquire(&1).unwrap().success();
    assert_eq!(b.sweep(SEC / 2), 0, "first look: idle from now on");
    for d in [1, 13, 30, 50] {
        assert_eq!(b.sweep(d * day), 0, "day {d}");
    }
    assert_eq!(b.sweep(60 * day), 0, "idle 60 days less half a second");
    assert_eq!(b.sweep(60 * day + SEC), 1);
    assert_eq!(b.len(), 0);
}

/// Issue 16 items 1, 3, 4 and 5 for keys (a key keeps no last window: item 2 is the named
/// breaker's).
#[test]
fn a_key_reports_its_probes_absent_rates_and_a_short_half_open_hint() {
    let (clock, time) = mock();
    let config = BreakerConfig::builder()
        .failure_rate(0.5)
        .consecutive_failures(1)
        .minimum_calls(3)
        .open_for(Duration::from_secs(5))
        .half_open_calls(3)
        .half_open_max_duration(Duration::from_secs(60))
        .build()
        .unwrap();
    let b = keyed(config, clock);
    b.try_acquire(&1).unwrap().success();
    b.try_acquire(&1).unwrap().success();
    let s = b.get(&1).unwrap();
    assert_eq!((s.minimum_calls, s.window.calls), (3, 2));
    assert_eq!(
        (s.failure_rate(), s.slow_call_rate()),
        (None, None),
        "2 < 3 calls"
    );
    b.try_acquire(&1).unwrap().success();
    assert_eq!(b.get(&1).unwrap().failure_rate(), Some(0.0));
    b.try_acquire(&1).unwrap().failure();
    assert_eq!(b.state(&1), Some(State::Open));
    assert_eq!(
        b.get(&1).unwrap().failure_rate(),
        None,
        "OPEN has no window"
    );

    time.advance(Duration::from_secs(5));
    let ps: Vec<_> = (0..3).map(|_| b.try_acquire(&1).unwrap()).collect();
    let r = rejected(b.try_acquire(&1));
    assert_eq!(
        (r.reason, r.retry_after),
        (RejectReason::HalfOpenFull, Duration::from_millis(500))
    );
    assert_eq!(b.retry_after(&1), None, "the read is 0 in HALF_OPEN");
    let mut ps = ps.into_iter();
    ps.next().unwrap().success();
    ps.next().unwrap().failure();
    let s = b.get(&1).unwrap();
    assert_eq!(s.state, State::HalfOpen);
    assert_eq!((s.window.calls, s.window.failures), (2, 1));
    assert_eq!(s.failure_rate(), Some(0.5));
    drop(ps);

    // A forced open on a FORCED_OPEN key is not a transition.
    b.force_open(&2, None).unwrap();
    let (g, m) = (b.get(&2).unwrap().generation, b.metrics());
    b.force_open(&2, None).unwrap();
    b.force_open(&2, Some(Duration::from_secs(2))).unwrap();
    assert_eq!(b.get(&2).unwrap().generation, g);
    assert_eq!(b.metrics().transitions, m.transitions);
    assert_eq!(
        b.retry_after(&2),
        Some(Duration::from_secs(2)),
        "the deadline moved"
    );
    b.force_open(&2, None).unwrap();
    assert_eq!(
        b.retry_after(&2),
        Some(Duration::from_secs(2)),
        "still timed"
    );
}

/// Issue 15: a key's probes have numbers too, so a probe reported twice is refused while
/// another is out (it used to be taken as that one's report and close the key).
#[test]
fn a_probe_reported_twice_on_a_key_is_refused_while_another_is_out() {
    let (clock, time) = mock();
    let b = keyed(consecutive(1), clock);
    b.try_acquire(&1).unwrap().failure();
    time.advance(Duration::from_secs(1));
    let p1 = b.try_acquire_raw(&1).unwrap();
    let p2 = b.try_acquire_raw(&1).unwrap();
    assert_ne!(p1, p2, "probes are told apart");
    assert_eq!(b.record_raw(p1, Outcome::Success), Recorded::Counted);
    assert_eq!(b.record_raw(p1, Outcome::Success), Recorded::Unexpected);
    assert_eq!(b.record_raw(p1, Outcome::Ignored), Recorded::Unexpected);
    assert_eq!(b.state(&1), Some(State::HalfOpen));
    assert_eq!(b.metrics().unexpected_results, 2);
    assert_eq!(b.record_raw(p2, Outcome::Success), Recorded::Counted);
    assert_eq!(b.state(&1), Some(State::Closed));
    assert_eq!(b.metrics().late_results, 0);
}

/// A released number comes back to the next probe; numbers never issued are refused; the
/// largest episode (14 probes) tells every probe apart and keeps the opens count.
#[test]
fn key_probe_numbers_are_reused_once_released_and_never_forged() {
    let (clock, time) = mock();
    let config = BreakerConfig::builder()
        .no_failure_rate()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(1))
        .open_backoff(2.0, Duration::from_secs(60), 0.0)
        .half_open_calls(MAX_KEYED_HALF_OPEN_CALLS)
        .build()
        .unwrap();
    let b = keyed(config, clock);
    b.try_acquire(&1).unwrap().failure();
    time.advance(Duration::from_secs(1));
    let probes: Vec<_> = (0..14).map(|_| b.try_acquire_raw(&1).unwrap()).collect();
    assert!(b.try_acquire_raw(&1).is_err(), "half-open full");
    assert_eq!(b.record_raw(probes[5], Outcome::Ignored), Recorded::Counted);
    let again = b.try_acquire_raw(&1).unwrap();
    assert_eq!(again, probes[5], "the lowest free number comes back");
    let closed_gen = |p: KeyedRawPermit, n: u64| KeyedRawPermit {
        inner: RawPermit {
            generation: p.inner.generation & ((1 << 40) - 1) | n << 40,
            ..p.inner
        },
        ..p
    };
    assert_eq!(
        b.record_raw(closed_gen(probes[0], 15), Outcome::Success),
        Recorded::Invalid,
        "beyond half_open_calls"
    );
    assert_eq!(
        b.record_raw(closed_gen(probes[0], 0), Outcome::Success),
        Recorded::Unexpected,
        "no number under a HALF_OPEN generation"
    );
    for p in &probes[..13] {
        assert_eq!(b.record_raw(*p, Outcome::Success), Recorded::Counted);
    }
    assert_eq!(
        b.record_raw(probes[5], Outcome::Success),
        Recorded::Unexpected
    );
    assert_eq!(b.state(&1), Some(State::HalfOpen));
    // The last probe fails: the key reopens with the next wait of its backoff.
    assert_eq!(
        b.record_raw(probes[13], Outcome::Failure),
        Recorded::Counted
    );
    let s = b.get(&1).unwrap();
    assert_eq!((s.state, s.consecutive_opens), (State::Open, 2));
    assert_eq!(s.retry_after, Some(Duration::from_secs(2)));
    // A probe number under the OPEN generation was never issued.
    let open = b.get(&1).unwrap().generation;
    let forged = KeyedRawPermit {
        inner: RawPermit {
            generation: open | 1 << 40,
            start_ns: 0,
        },
        ..probes[0]
    };
    assert_eq!(b.record_raw(forged, Outcome::Failure), Recorded::Invalid);
}

/// Issue 15: the window's 7-bit epoch (the bucket number modulo 128) used to bring old counts
/// back after exactly 64 windows of silence: 3 failures, 128 s idle with windows of 2 s, and
/// one success tripped the key. A swept key's idle mark now says the window is older than two
/// buckets (sweeps every 10 s, or a single one, on the breaker's clock).
#[test]
fn old_failures_never_come_back_after_a_multiple_of_64_windows() {
    // (start, idle, sweeps every 10 s): the mock clock starts at 1 s; a start of 127 s puts
    // the first calls in bucket 128, whose epoch (0) is the one an empty word has.
    for (start_s, idle_s, sweeps) in [
        (0, 128, true),
        (0, 128, false),
        (0, 256, true),
        (0, 129, true),
        (0, 1280, true),
        (127, 128, true),
    ] {
        let (clock, time) = mock();
        let config = BreakerConfig::builder()
            .failure_rate(0.5)
            .minimum_calls(4)
            .time_window(Duration::from_secs(2), 2)
            .build()
            .unwrap();
        let b = KeyedBreaker::<u64>::builder(config)
            .clock(clock)
            .events(EventRing::new(64))
            .idle_ttl(Duration::from_secs(100_000))
            .build()
            .unwrap();
        time.advance(Duration::from_secs(start_s) + Duration::from_millis(300)); // mid-bucket
        for _ in 0..3 {
            b.try_acquire(&1).unwrap().failure();
        }
        assert_eq!(b.get(&1).unwrap().window.failures, 3);
        if sweeps {
            for _ in 0..idle_s / 10 {
                time.advance(Duration::from_secs(10));
                assert_eq!(b.sweep(time.now_ns()), 0);
            }
            time.advance(Duration::from_secs(idle_s % 10));
        } else {
            // One sweep right after the calls marks the key; none after.
            assert_eq!(b.sweep(time.now_ns()), 0);
            time.advance(Duration::from_secs(idle_s));
        }
        assert_eq!(
            b.get(&1).unwrap().window,
            Counts::default(),
            "idle {idle_s} s, sweeps {sweeps}"
        );
        b.try_acquire(&1).unwrap().success();
        let s = b.get(&1).unwrap();
        assert_eq!(
            (s.state, s.window.calls, s.window.failures),
            (State::Closed, 1, 0),
            "idle {idle_s} s, sweeps {sweeps}"
        );
        // The window still works as a window after that.
        for _ in 0..3 {
            b.try_acquire(&1).unwrap().failure();
        }
        assert_eq!(b.state(&1), Some(State::Open));
    }
}

/// The streak of consecutive failures is no window: it outlives any silence.
#[test]
fn a_long_silence_keeps_the_consecutive_failure_streak() {
    let (clock, time) = mock();
    let config = BreakerConfig::builder()
        .no_failure_rate()
        .consecutive_failures(3)
        .time_window(Duration::from_secs(2), 2)
        .build()
        .unwrap();
    let b = keyed(config, clock);
    b.try_acquire(&1).unwrap().failure();
    b.try_acquire(&1).unwrap().failure();
    time.advance(Duration::from_secs(128));
    assert_eq!(b.get(&1).unwrap().consecutive_failures, 2);
    b.try_acquire(&1).unwrap().failure();
    assert_eq!(b.state(&1), Some(State::Open));
}
