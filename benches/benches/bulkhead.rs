//! Group `bulkhead`: one try_acquire + release of an uncontended bulkhead against the floor,
//! a bare uncontended `AtomicU64::fetch_add`, in the same run.
//!
//! `cargo bench -p surgewall-benches --bench bulkhead -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use surgewall::{Bulkhead, BulkheadConfig};

fn bulkhead(c: &mut Criterion) {
    let mut g = c.benchmark_group("bulkhead");
    g.throughput(Throughput::Elements(1));

    let counter = AtomicU64::new(0);
    g.bench_function("baseline_fetch_add", |b| {
        b.iter(|| black_box(&counter).fetch_add(1, Ordering::Relaxed))
    });

    let bulkhead = Bulkhead::new(
        "bench",
        BulkheadConfig::builder()
            .max_concurrent(64)
            .build()
            .unwrap(),
    );
    g.bench_function("surgewall_try_acquire_release", |b| {
        b.iter(|| {
            let permit = black_box(&bulkhead).try_acquire();
            black_box(permit.is_ok());
            drop(permit);
        })
    });
    g.finish();
    assert_eq!(bulkhead.metrics().active, 0);
}

criterion_group!(benches, bulkhead);
criterion_main!(benches);
