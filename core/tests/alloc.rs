//! Zero allocations on the hot paths: acquire + record in CLOSED, a rejection in OPEN, a
//! half-open probe (and the transitions around it), counted by a global allocator.

use std::time::Duration;
use surgewall::clock::Clock;
use surgewall::{Breaker, BreakerConfig, Outcome, State};

mod common;
use common::allocations;

#[test]
fn hot_paths_do_not_allocate() {
    let (clock, time) = Clock::mock();
    let config = BreakerConfig::builder()
        .failure_rate(0.5)
        .minimum_calls(10)
        .time_window(Duration::from_secs(10), 10)
        .slow_calls(1.0, Duration::from_secs(5))
        .open_for(Duration::from_secs(1))
        .half_open_calls(2)
        .build()
        .unwrap();
    let b = Breaker::builder("alloc", config).clock(clock).build();
    // Warm up lazily initialised process state (the stripe index, the precise clock).
    b.acquire().unwrap().success();
    Clock::precise().now_ns();

    let n = allocations(|| {
        for i in 0..1000 {
            let p = b.acquire().unwrap();
            if i % 100 == 0 {
                time.advance(Duration::from_millis(300)); // bucket rollovers on the way
            }
            p.success();
        }
    });
    assert_eq!(n, 0, "acquire + record success in CLOSED");
    assert_eq!(b.state(), State::Closed);

    time.advance(Duration::from_secs(11)); // the successes leave the window
    let n = allocations(|| {
        for _ in 0..10 {
            b.acquire().unwrap().failure(); // trips: a transition and an event
        }
    });
    assert_eq!(n, 0, "failures and the trip");
    assert_eq!(b.state(), State::Open);

    let n = allocations(|| {
        for _ in 0..1000 {
            assert!(b.acquire().is_err());
        }
    });
    assert_eq!(n, 0, "rejection in OPEN");

    time.advance(Duration::from_secs(1));
    let n = allocations(|| {
        let p1 = b.try_acquire_raw().unwrap();
        let p2 = b.try_acquire_raw().unwrap();
        assert!(b.try_acquire_raw().is_err()); // half-open full
        b.record_raw(p1, Outcome::Success);
        b.record_raw_with_duration(p2, Outcome::Success, Duration::from_millis(1));
    });
    assert_eq!(n, 0, "a half-open episode with its probes");
    assert_eq!(b.state(), State::Closed);

    let n = allocations(|| {
        let m = b.metrics();
        assert_eq!(m.state, State::Closed);
    });
    assert_eq!(n, 0, "reading the metrics snapshot");
}
