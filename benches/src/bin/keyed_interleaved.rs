//! The `keyed` group's three calls timed in alternating rounds, for a ratio that drift on a
//! shared machine cannot skew: criterion measures one function after the other, so a noisy
//! neighbour during one of them moves the ratio (governor's `check_key` was seen anywhere from
//! 16 to 23 ns on this VM within minutes). Each round times `CALLS` calls of each, over the
//! same 10 000 `u64` keys and the same hasher as the `keyed` bench; the minimum and the median
//! of the rounds are printed with their ratios to governor (budget G7: the keyed guarded call
//! <= 1.2x `check_key`).
//!
//! `cargo run --release -p surgewall-benches --bin keyed_interleaved`

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Instant;

use governor::{Quota, RateLimiter};
use surgewall::breaker::keyed::KeyedBreaker;
use surgewall::bulkhead::keyed::KeyedBulkhead;
use surgewall_benches::{bench_thresholds, Ticker};

const KEYS: u64 = 10_000;
const CALLS: u64 = 2_000_000;
const ROUNDS: usize = 15;

/// ns per call of `CALLS` calls of `op` on the keys in turn.
fn round(op: &mut impl FnMut(&u64)) -> f64 {
    let start = Instant::now();
    let mut k = 0u64;
    for _ in 0..CALLS {
        k = if k + 1 == KEYS { 0 } else { k + 1 };
        op(black_box(&k));
    }
    start.elapsed().as_nanos() as f64 / CALLS as f64
}

fn main() {
    let _ticker = Ticker::start();
    // As in the `keyed` bench: a quota that never limits, a bulkhead with room, the breaker
    // thresholds of the named breaker's bench.
    let quota = Quota::per_second(NonZeroU32::new(u32::MAX).expect("non-zero"));
    let governor = RateLimiter::dashmap_with_hasher(quota, foldhash::fast::RandomState::default());
    let tenants = KeyedBulkhead::<u64>::builder(64)
        .max_keys(KEYS as usize * 2)
        .build()
        .expect("valid limits");
    let config = bench_thresholds().build().expect("a valid configuration");
    let endpoints = KeyedBreaker::<u64>::builder(config)
        .max_keys(KEYS as usize * 2)
        .build()
        .expect("a valid configuration");

    let mut check = |k: &u64| {
        black_box(governor.check_key(k).is_ok());
    };
    let mut bulkhead = |k: &u64| {
        let permit = tenants.try_acquire(k);
        black_box(permit.is_ok());
    };
    let mut breaker = |k: &u64| {
        black_box(endpoints.try_acquire(k).expect("CLOSED admits").success());
    };
    // Warm up: every key exists before the first timed round.
    round(&mut check);
    round(&mut bulkhead);
    round(&mut breaker);
    let mut times: [Vec<f64>; 3] = Default::default();
    for _ in 0..ROUNDS {
        times[0].push(round(&mut check));
        times[1].push(round(&mut bulkhead));
        times[2].push(round(&mut breaker));
    }
    assert_eq!((tenants.len() as u64, endpoints.len() as u64), (KEYS, KEYS));
    for t in &mut times {
        t.sort_by(f64::total_cmp);
    }
    let (min, med) = (|t: &[f64]| t[0], |t: &[f64]| t[ROUNDS / 2]);
    let g = &times[0];
    println!("rounds={ROUNDS} calls_per_round={CALLS} keys={KEYS}");
    println!(
        "governor_check_key min_ns={:.2} median_ns={:.2}",
        min(g),
        med(g)
    );
    for (name, t) in [
        ("surgewall_keyed_bulkhead", &times[1]),
        ("surgewall_keyed_breaker", &times[2]),
    ] {
        println!(
            "{name} min_ns={:.2} median_ns={:.2} vs_governor_min={:.2} vs_governor_median={:.2}",
            min(t),
            med(t),
            min(t) / min(g),
            med(t) / med(g)
        );
    }
}
