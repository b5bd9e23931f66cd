//! Group `keyed`: a keyed call over 10 000 `u64` keys cycled, surgewall's keyed bulkhead
//! (get-or-create + try_acquire + release) against governor's keyed `check_key` (get-or-create
//! + one GCRA CAS), both on a DashMap with the same hasher (foldhash, fast, random seed).
//!
//! `cargo bench -p surgewall-benches --bench keyed -- --warm-up-time 1 --measurement-time 3`
//!
//! `surgewall_keyed_breaker`: get-or-create + acquire + record success on a keyed breaker
//! (the guarded call, budget G7: <= 1.2x `governor_check_key`), same keys, same hasher, with
//! the coarse clock ticking as in production (its time window reads the clock per success).

use std::hint::black_box;
use std::num::NonZeroU32;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use governor::{Quota, RateLimiter};
use surgewall::breaker::keyed::KeyedBreaker;
use surgewall::bulkhead::keyed::KeyedBulkhead;
use surgewall_benches::{bench_thresholds, Ticker};

const KEYS: u64 = 10_000;

fn keyed(c: &mut Criterion) {
    let _ticker = Ticker::start();
    let mut g = c.benchmark_group("keyed");
    g.throughput(Throughput::Elements(1));

    // A quota that never limits, so every call takes the admit path (one CAS).
    let quota = Quota::per_second(NonZeroU32::new(u32::MAX).unwrap());
    let governor = RateLimiter::dashmap_with_hasher(quota, foldhash::fast::RandomState::default());
    for k in 0..KEYS {
        let _ = governor.check_key(&k);
    }
    // All three exist, warmed, before any is timed (as in `keyed_interleaved`), so each is
    // measured against the same heap and caches.
    let tenants = KeyedBulkhead::<u64>::builder(64)
        .max_keys(KEYS as usize * 2)
        .build()
        .unwrap();
    for k in 0..KEYS {
        drop(tenants.try_acquire(&k));
    }
    // The thresholds of the named breaker's bench: 50 % over 60 s once 20 calls are in.
    let config = bench_thresholds().build().unwrap();
    let endpoints = KeyedBreaker::<u64>::builder(config)
        .max_keys(KEYS as usize * 2)
        .build()
        .unwrap();
    for k in 0..KEYS {
        endpoints.try_acquire(&k).unwrap().success();
    }
    let mut k = 0u64;
    g.bench_function("governor_check_key", |b| {
        b.iter(|| {
            k = if k + 1 == KEYS { 0 } else { k + 1 };
            black_box(governor.check_key(black_box(&k)).is_ok())
        })
    });

    let mut k = 0u64;
    g.bench_function("surgewall_keyed_bulkhead", |b| {
        b.iter(|| {
            k = if k + 1 == KEYS { 0 } else { k + 1 };
            let permit = tenants.try_acquire(black_box(&k));
            black_box(permit.is_ok());
            drop(permit);
        })
    });

    let mut k = 0u64;
    g.bench_function("surgewall_keyed_breaker", |b| {
        b.iter(|| {
            k = if k + 1 == KEYS { 0 } else { k + 1 };
            black_box(endpoints.try_acquire(black_box(&k)).unwrap().success())
        })
    });
    g.finish();
    assert_eq!(tenants.len() as u64, KEYS);
    assert_eq!(endpoints.len() as u64, KEYS);
}

criterion_group!(benches, keyed);
criterion_main!(benches);
