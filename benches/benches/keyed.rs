//! Group `keyed`: a keyed call over 10 000 `u64` keys cycled, surgewall's keyed bulkhead
//! (get-or-create + try_acquire + release) against governor's keyed `check_key` (get-or-create
//! + one GCRA CAS), both on a DashMap with the same hasher (foldhash, fast, random seed).
//!
//! `cargo bench -p surgewall-benches --bench keyed -- --warm-up-time 1 --measurement-time 3`
//!
//! Room for `surgewall_keyed_breaker`: add it to `keyed()` with the same key cycle.

use std::hint::black_box;
use std::num::NonZeroU32;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use governor::{Quota, RateLimiter};
use surgewall::bulkhead::keyed::KeyedBulkhead;

const KEYS: u64 = 10_000;

fn keyed(c: &mut Criterion) {
    let mut g = c.benchmark_group("keyed");
    g.throughput(Throughput::Elements(1));

    // A quota that never limits, so every call takes the admit path (one CAS).
    let quota = Quota::per_second(NonZeroU32::new(u32::MAX).unwrap());
    let governor = RateLimiter::dashmap_with_hasher(quota, foldhash::fast::RandomState::default());
    for k in 0..KEYS {
        let _ = governor.check_key(&k);
    }
    let mut k = 0u64;
    g.bench_function("governor_check_key", |b| {
        b.iter(|| {
            k = if k + 1 == KEYS { 0 } else { k + 1 };
            black_box(governor.check_key(black_box(&k)).is_ok())
        })
    });

    let tenants = KeyedBulkhead::<u64>::builder(64)
        .max_keys(KEYS as usize * 2)
        .build()
        .unwrap();
    for k in 0..KEYS {
        drop(tenants.try_acquire(&k));
    }
    let mut k = 0u64;
    g.bench_function("surgewall_keyed_bulkhead", |b| {
        b.iter(|| {
            k = if k + 1 == KEYS { 0 } else { k + 1 };
            let permit = tenants.try_acquire(black_box(&k));
            black_box(permit.is_ok());
            drop(permit);
        })
    });
    g.finish();
    assert_eq!(tenants.len() as u64, KEYS);
}

criterion_group!(benches, keyed);
criterion_main!(benches);
