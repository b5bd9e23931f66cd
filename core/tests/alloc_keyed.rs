//! Zero allocations on the keyed breaker's hot paths once a key exists: get + acquire +
//! record in CLOSED, a rejection in OPEN, a half-open episode, counted by a global allocator.

use std::time::Duration;
use surgewall::breaker::keyed::KeyedBreaker;
use surgewall::clock::Clock;
use surgewall::events::EventRing;
use surgewall::{BreakerConfig, Outcome, State};

mod common;
use common::allocations;

#[test]
fn keyed_hot_paths_do_not_allocate_once_the_key_exists() {
    let (clock, time) = Clock::mock();
    let config = BreakerConfig::builder()
        .failure_rate(0.5)
        .minimum_calls(10)
        .time_window(Duration::from_secs(10), 10)
        .open_for(Duration::from_secs(1))
        .half_open_calls(2)
        .build()
        .unwrap();
    let b = KeyedBreaker::<u64>::builder(config)
        .clock(clock)
        .events(EventRing::new(64))
        .build()
        .unwrap();
    // Create the keys (creation may allocate: a map slot, an arena chunk) and warm up the
    // process state (the stripe index).
    for k in 0..64 {
        b.try_acquire(&k).unwrap().success();
    }

    let n = allocations(|| {
        for i in 0..1000u64 {
            let p = b.try_acquire(&(i % 64)).unwrap();
            if i % 100 == 0 {
                time.advance(Duration::from_millis(3000)); // bucket rollovers on the way
            }
            p.success();
        }
    });
    assert_eq!(n, 0, "get + acquire + record success in CLOSED");

    time.advance(Duration::from_secs(11)); // the successes leave the window
    let n = allocations(|| {
        for _ in 0..10 {
            b.try_acquire(&7).unwrap().failure(); // trips: a transition and an event
        }
    });
    assert_eq!(n, 0, "failures and the trip");
    assert_eq!(b.state(&7), Some(State::Open));

    let n = allocations(|| {
        for _ in 0..1000 {
            assert!(b.try_acquire(&7).is_err());
        }
    });
    assert_eq!(n, 0, "rejection in OPEN");

    time.advance(Duration::from_secs(1));
    let n = allocations(|| {
        let p1 = b.try_acquire_raw(&7).unwrap();
        let p2 = b.try_acquire_raw(&7).unwrap();
        assert!(b.try_acquire_raw(&7).is_err()); // half-open full
        b.record_raw(p1, Outcome::Success);
        b.record_raw_with_duration(p2, Outcome::Success, Duration::from_millis(1));
    });
    assert_eq!(n, 0, "a half-open episode with its probes");
    assert_eq!(b.state(&7), Some(State::Closed));

    let n = allocations(|| {
        assert_eq!(b.get(&7).unwrap().state, State::Closed);
        let _ = b.metrics();
    });
    assert_eq!(n, 0, "reading a key and the counters");
}
