use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use super::*;
use crate::clock::Clock;

fn bulkhead(max: u32) -> Bulkhead {
    Bulkhead::new(
        "t",
        BulkheadConfig::builder()
            .max_concurrent(max)
            .build()
            .unwrap(),
    )
}

fn mocked(max: u32) -> (Bulkhead, crate::clock::MockClock) {
    let (clock, time) = Clock::mock();
    let b = Bulkhead::builder(
        "t",
        BulkheadConfig::builder()
            .max_concurrent(max)
            .build()
            .unwrap(),
    )
    .clock(clock)
    .build();
    (b, time)
}

/// Spins until `n` callers are parked in the queue (no timing: a state the test waits for).
fn until_waiting(b: &Bulkhead, n: u64) {
    while b.metrics().waiting != n {
        std::thread::yield_now();
    }
}

#[test]
fn admits_exactly_max_and_counts() {
    let b = bulkhead(3);
    let permits: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    let full = b.try_acquire().unwrap_err();
    assert_eq!(full.max_concurrent, 3);
    assert!(b.try_acquire_raw().is_err());
    let m = b.metrics();
    assert_eq!((m.active, m.accepted, m.rejected), (3, 3, 2));
    drop(permits);
    let m = b.metrics();
    assert_eq!((m.active, m.accepted, m.waiting), (0, 3, 0));
    assert!(b.is_idle());
    assert_eq!(b.completed(), 3);
}

#[test]
fn release_with_nothing_acquired_is_reported_and_never_underflows() {
    let b = bulkhead(2);
    b.try_acquire_raw().unwrap();
    assert_eq!(b.release_raw(), Ok(()));
    assert_eq!(b.release_raw(), Err(NotAcquired));
    assert_eq!(b.release_raw(), Err(NotAcquired));
    let m = b.metrics();
    assert_eq!((m.active, m.unexpected_releases, m.accepted), (0, 2, 1));
    // Still fully usable: exactly two slots.
    b.try_acquire_raw().unwrap();
    b.try_acquire_raw().unwrap();
    assert!(b.try_acquire_raw().is_err());
}

#[test]
fn a_panic_gives_the_slot_back() {
    let b = bulkhead(1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.call(|| panic!("boom")).unwrap();
    }));
    assert!(r.is_err());
    assert_eq!(b.active(), 0);
    assert_eq!(b.call(|| 1), Ok(1));
}

#[test]
fn zero_wait_is_a_try() {
    let (b, _time) = mocked(1);
    let _p = b.try_acquire().unwrap();
    let e = b.acquire_timeout(Duration::ZERO).unwrap_err();
    assert!(!e.timed_out);
    let m = b.metrics();
    assert_eq!((m.rejected, m.waited, m.waiting), (1, 0, 0));
}

#[test]
fn a_waiter_times_out_on_the_mock_clock() {
    let (b, time) = mocked(1);
    let held = b.try_acquire().unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| b.acquire_timeout(Duration::from_secs(5)).map(drop));
        until_waiting(&b, 1);
        time.advance(Duration::from_secs(5));
        let err = waiter.join().unwrap().unwrap_err();
        assert!(err.timed_out);
        assert_eq!(err.waited, Duration::from_secs(5));
        assert!(err.to_string().contains("no slot came free"), "{err}");
    });
    let m = b.metrics();
    assert_eq!((m.timed_out, m.waiting, m.waited, m.active), (1, 0, 1, 1));
    assert_eq!(m.total_wait, Duration::from_secs(5));
    // the wait is in the queue-wait histogram: (2.5 s, 5 s]
    assert_eq!(m.wait_durations.count(), 1);
    assert_eq!(m.wait_durations.counts[9], 1);
    assert_eq!(m.wait_durations.sum, Duration::from_secs(5));
    drop(held);
    assert!(b.is_idle());
}

#[test]
fn a_release_hands_its_slot_to_the_waiter_before_any_barging_try() {
    let (b, time) = mocked(1);
    let held = b.try_acquire().unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let b = &b;
        let waiter = s.spawn(move || {
            let p = b.acquire_timeout(Duration::from_secs(60)).unwrap();
            go_rx.recv().unwrap();
            drop(p);
        });
        until_waiting(b, 1);
        time.advance(Duration::from_secs(3));
        drop(held);
        // The slot went to the waiter, not back to the pool.
        assert!(b.try_acquire().is_err());
        assert_eq!(b.metrics().active, 1);
        go_tx.send(()).unwrap();
        waiter.join().unwrap();
    });
    let m = b.metrics();
    assert_eq!((m.accepted, m.waited, m.timed_out, m.active), (2, 1, 0, 0));
    assert_eq!(m.max_wait, Duration::from_secs(3));
    assert_eq!(m.total_wait, Duration::from_secs(3));
}

#[test]
fn waiters_are_served_in_fifo_order() {
    let (b, _time) = mocked(1);
    let held = b.try_acquire().unwrap();
    let order = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for i in 0..4u64 {
            let (b, order) = (&b, &order);
            handles.push(s.spawn(move || {
                let _p = b.acquire_timeout(Duration::from_secs(60)).unwrap();
                order.lock().unwrap().push(i);
            }));
            // Queue them one at a time so their arrival order is known.
            until_waiting(b, i + 1);
        }
        drop(held);
        for h in handles {
            h.join().unwrap();
        }
    });
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    assert!(b.is_idle());
}

/// `waiters` threads that wait for a slot and `tries` that only try, `rounds` calls each, while
/// the calling thread runs `meanwhile`; returns the most calls seen inside at once and the calls
/// admitted.
fn hammer(
    b: &Bulkhead,
    waiters: usize,
    tries: usize,
    rounds: usize,
    meanwhile: impl FnOnce(),
) -> (u64, u64) {
    let inside = StdAtomicU64::new(0);
    let peak = StdAtomicU64::new(0);
    let admitted = StdAtomicU64::new(0);
    let start = Barrier::new(waiters + tries + 1);
    std::thread::scope(|s| {
        for t in 0..waiters + tries {
            let (inside, peak, admitted, start) = (&inside, &peak, &admitted, &start);
            s.spawn(move || {
                start.wait();
                for _ in 0..rounds {
                    let permit = if t < waiters {
                        Some(b.acquire_timeout(Duration::from_secs(30)).unwrap())
                    } else {
                        b.try_acquire().ok()
                    };
                    if let Some(p) = permit {
                        let now = inside.fetch_add(1, StdOrdering::SeqCst) + 1;
                        peak.fetch_max(now, StdOrdering::SeqCst);
                        admitted.fetch_add(1, StdOrdering::Relaxed);
                        std::hint::spin_loop();
                        inside.fetch_sub(1, StdOrdering::SeqCst);
                        drop(p);
                    }
                }
            });
        }
        start.wait();
        meanwhile();
    });
    (peak.into_inner(), admitted.into_inner())
}

/// I9 under real threads: never more than max in flight, no waiter lost (a lost wake-up would
/// time out after 30 s and fail the `timed_out == 0` check), every gauge back to zero.
#[test]
fn waiters_and_tries_stress_keeps_the_limit_and_returns_to_zero() {
    const MAX: u32 = 2;
    let b = bulkhead(MAX);
    let (peak, admitted) = hammer(&b, 4, 2, 2000, || {});
    let m = b.metrics();
    assert!(peak <= u64::from(MAX));
    assert_eq!(m.active, 0);
    assert_eq!(m.waiting, 0);
    assert_eq!(m.timed_out, 0);
    assert_eq!(m.unexpected_releases, 0);
    assert_eq!(m.accepted, admitted);
    // Every waiter got in; every try got in or was counted as rejected.
    assert_eq!(m.accepted + m.rejected, 6 * 2000);
    assert!(m.accepted >= 4 * 2000);
}

#[test]
fn concurrent_tries_never_exceed_the_limit() {
    let b = Arc::new(bulkhead(3));
    let inside = Arc::new(StdAtomicU64::new(0));
    let peak = Arc::new(StdAtomicU64::new(0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (b, inside, peak) = (b.clone(), inside.clone(), peak.clone());
            std::thread::spawn(move || {
                let mut ok = 0u64;
                for _ in 0..20_000 {
                    if let Ok(p) = b.try_acquire() {
                        let now = inside.fetch_add(1, StdOrdering::SeqCst) + 1;
                        peak.fetch_max(now, StdOrdering::SeqCst);
                        inside.fetch_sub(1, StdOrdering::SeqCst);
                        drop(p);
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let ok: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let m = b.metrics();
    assert!(peak.load(StdOrdering::SeqCst) <= 3);
    assert_eq!(m.accepted, ok);
    assert_eq!(m.accepted + m.rejected, 80_000);
    assert_eq!(m.active, 0);
}

/// `close` wakes every parked waiter at once with a `closed` refusal (a waiter left to its
/// deadline would hang this test for 60 s), later waits are refused without parking, the
/// gauges come back to zero and the slot held across it can still be given back.
#[test]
fn close_wakes_every_waiter_and_refuses_later_waits() {
    let b = bulkhead(1);
    let held = b.try_acquire().unwrap();
    std::thread::scope(|s| {
        let waiters: Vec<_> = (0..4)
            .map(|_| s.spawn(|| b.acquire_timeout(Duration::from_secs(60)).map(drop)))
            .collect();
        until_waiting(&b, 4);
        b.close();
        for w in waiters {
            let e = w.join().unwrap().unwrap_err();
            assert!(e.closed && !e.timed_out, "{e:?}");
            assert_eq!(
                e.to_string(),
                "bulkhead full (1 concurrent calls); closed while waiting"
            );
        }
    });
    assert!(
        b.acquire_timeout(Duration::from_secs(60))
            .unwrap_err()
            .closed
    );
    let m = b.metrics();
    assert_eq!((m.waiting, m.timed_out, m.active), (0, 0, 1));
    drop(held);
    assert!(b.is_idle());
    assert!(b.try_acquire().is_ok()); // what does not wait is unchanged
}

#[test]
fn a_resize_validates_and_returns_the_previous_limit() {
    let b = bulkhead(2);
    assert_eq!(b.set_max_concurrent(5), Ok(2));
    assert_eq!(b.max_concurrent(), 5);
    assert_eq!(b.config().max_concurrent(), 5);
    assert_eq!(b.metrics().max_concurrent, 5);
    for bad in [0, MAX_CONCURRENT_LIMIT + 1] {
        assert_eq!(
            b.set_max_concurrent(bad).unwrap_err().field(),
            "max_concurrent"
        );
    }
    assert_eq!(b.max_concurrent(), 5, "a refused resize changes nothing");
    // Resizes are not calls: `accepted` leaves them out.
    let p = b.try_acquire().unwrap();
    b.set_max_concurrent(3).unwrap();
    drop(p);
    let m = b.metrics();
    assert_eq!((m.accepted, m.active, m.rejected), (1, 0, 0));
}

#[test]
fn a_shrink_keeps_the_permits_out_and_admits_again_below_the_new_limit() {
    let b = bulkhead(4);
    let mut held: Vec<_> = (0..4).map(|_| b.try_acquire().unwrap()).collect();
    assert_eq!(b.set_max_concurrent(2), Ok(4));
    assert_eq!(b.metrics().active, 4, "permits out stay valid");
    held.pop();
    held.pop();
    let full = b.try_acquire().unwrap_err();
    assert_eq!(full.max_concurrent, 2, "two in flight: at the new limit");
    held.pop();
    let p = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    drop((p, held));
    assert_eq!(b.metrics().active, 0);
}

#[test]
fn a_release_after_a_shrink_hands_no_slot_to_a_waiter_above_the_new_limit() {
    let (b, _time) = mocked(3);
    let mut held: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    std::thread::scope(|s| {
        let b = &b;
        let waiter = s.spawn(move || b.acquire_timeout(Duration::from_secs(60)).map(drop));
        until_waiting(b, 1);
        b.set_max_concurrent(1).unwrap();
        held.pop(); // 2 in flight, limit 1: freed, not handed over
        assert_eq!((b.metrics().active, b.metrics().waiting), (2, 1));
        held.pop(); // 1 in flight: still at the limit
        assert_eq!((b.metrics().active, b.metrics().waiting), (1, 1));
        held.pop(); // the waiter gets the slot
        assert!(waiter.join().unwrap().is_ok());
    });
    let m = b.metrics();
    assert_eq!((m.active, m.waiting, m.accepted, m.timed_out), (0, 0, 4, 0));
}

#[test]
fn a_growth_admits_the_waiters_oldest_first() {
    let (b, _time) = mocked(1);
    let held = b.try_acquire().unwrap();
    let order = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for i in 0..3u64 {
            let (b, order) = (&b, &order);
            handles.push(s.spawn(move || {
                let p = b.acquire_timeout(Duration::from_secs(60)).unwrap();
                order.lock().unwrap().push(i);
                p
            }));
            until_waiting(b, i + 1);
        }
        b.set_max_concurrent(3).unwrap(); // two new slots: the two oldest waiters
        until_waiting(&b, 1);
        assert_eq!(b.metrics().active, 3);
        while order.lock().unwrap().len() < 2 {
            std::thread::yield_now();
        }
        let mut first = order.lock().unwrap().clone();
        first.sort_unstable();
        assert_eq!(first, vec![0, 1]);
        b.set_max_concurrent(4).unwrap();
        let permits: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(b.metrics().active, 4);
        drop(permits);
    });
    assert_eq!(order.lock().unwrap()[2], 2);
    drop(held);
    assert!(b.is_idle());
}

/// Resizes racing waiters and tries: never more inside than the largest limit, no waiter lost
/// (a lost wake-up would time out after 30 s), every gauge back to zero, `accepted` exact.
#[test]
fn resizes_racing_waiters_and_tries_keep_the_limit_and_return_to_zero() {
    let b = bulkhead(1);
    let (peak, admitted) = hammer(&b, 2, 2, 2000, || {
        for i in 0..2000u32 {
            b.set_max_concurrent(1 + i % 3).unwrap();
            std::thread::yield_now();
        }
    });
    let m = b.metrics();
    assert!(peak <= 3);
    assert_eq!((m.active, m.waiting, m.timed_out), (0, 0, 0));
    assert_eq!(m.accepted, admitted);
    assert_eq!(m.accepted + m.rejected, 4 * 2000);
}
