//! The guarded call: acquire a permit, record a success (DESIGN.md §8, budgets G1-G3).
//!
//! Group `guarded_call` (one thread) holds the baselines, surgewall and the peer crates in one
//! run; group `shared_breaker` measures the total throughput of 1 and 2 threads on one
//! breaker. Clock modes: surgewall uses its coarse clock (ticked every 500 µs, as by the agent)
//! unless the name says `timed` (two precise reads per call for slow-call detection); the peers
//! use their own real clocks.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use failsafe::{backoff, failure_policy, CircuitBreaker as _};
use surgewall::Breaker;
use surgewall_benches::{bench_thresholds, parallel, Ticker};

/// The same thresholds for everyone: trip at 50 % failures once 20 calls are in a 60 s window
/// (recloser: over the last 100 calls), open 5 s, 3 probes.
fn surgewall_breaker(timed: bool) -> Breaker {
    let mut b = bench_thresholds();
    if timed {
        b = b.slow_calls(1.0, Duration::from_secs(1));
    }
    Breaker::new("bench", b.build().unwrap())
}

fn failsafe_breaker() -> impl failsafe::CircuitBreaker + Send + Sync {
    let policy = failure_policy::success_rate_over_time_window(
        0.5,
        20,
        Duration::from_secs(60),
        backoff::constant(Duration::from_secs(5)),
    );
    failsafe::Config::new().failure_policy(policy).build()
}

fn recloser_breaker() -> recloser::Recloser {
    recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(100)
        .half_open_len(3)
        .open_wait(Duration::from_secs(5))
        .build()
}

fn guarded_call(c: &mut Criterion) {
    let _ticker = Ticker::start();
    let mut g = c.benchmark_group("guarded_call");
    g.throughput(Throughput::Elements(1));

    let counter = AtomicU64::new(0);
    g.bench_function("baseline_fetch_add", |b| {
        b.iter(|| black_box(&counter).fetch_add(1, Ordering::Relaxed))
    });

    let clock = quanta::Clock::new();
    let _ = clock.raw();
    g.bench_function("baseline_clock_raw", |b| {
        // Two TSC reads: what timing one call costs at least.
        b.iter(|| {
            let start = clock.raw();
            black_box(clock.raw().wrapping_sub(start))
        })
    });

    let breaker = surgewall_breaker(false);
    g.bench_function("surgewall_closed_success", |b| {
        b.iter(|| black_box(&breaker).acquire().unwrap().success())
    });

    let timed = surgewall_breaker(true);
    g.bench_function("surgewall_closed_success_timed", |b| {
        b.iter(|| black_box(&timed).acquire().unwrap().success())
    });

    let open = surgewall_breaker(false);
    open.force_open(None);
    g.bench_function("surgewall_open_reject", |b| {
        b.iter(|| black_box(&open).acquire().is_err())
    });

    let fs = failsafe_breaker();
    g.bench_function("failsafe_rs", |b| {
        b.iter(|| black_box(&fs).call(|| Ok::<_, ()>(())))
    });

    let rc = recloser_breaker();
    g.bench_function("recloser", |b| {
        b.iter(|| black_box(&rc).call(|| Ok::<_, ()>(())))
    });
    g.finish();
}

fn shared_breaker(c: &mut Criterion) {
    let _ticker = Ticker::start();
    let mut g = c.benchmark_group("shared_breaker");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut counts = vec![1, 2];
    if cores > 2 {
        counts.push(cores);
    }
    for threads in counts {
        g.throughput(Throughput::Elements(threads as u64));

        let breaker = Arc::new(surgewall_breaker(false));
        g.bench_function(format!("surgewall/{threads}"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, || {
                    black_box(&*breaker).acquire().unwrap().success();
                })
            })
        });

        // The lower anchor: one shared counter, one RMW per call.
        let counter = AtomicU64::new(0);
        g.bench_function(format!("shared_fetch_add/{threads}"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, || {
                    black_box(&counter).fetch_add(1, Ordering::Relaxed);
                })
            })
        });

        let fs = failsafe_breaker();
        g.bench_function(format!("failsafe_rs/{threads}"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, || {
                    let _ = black_box(&fs).call(|| Ok::<_, ()>(()));
                })
            })
        });

        let rc = recloser_breaker();
        g.bench_function(format!("recloser/{threads}"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, || {
                    let _ = black_box(&rc).call(|| Ok::<_, ()>(()));
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, guarded_call, shared_breaker);
criterion_main!(benches);
