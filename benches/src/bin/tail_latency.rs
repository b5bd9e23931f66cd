//! Tail latency of the guarded call (budget G8: p99.9 <= 10x p50 at N = cores): every core
//! runs a thread that makes guarded calls (acquire + record success, coarse clock ticking) on
//! one shared breaker, timing each call with two TSC reads, and the percentiles of all calls
//! are printed beside those of the two TSC reads alone, measured the same way in the same run.
//!
//! `cargo run --release -p surgewall-benches --bin tail_latency`
//!
//! The per-call figures include the timer, whose own reads cost about as much as the call on
//! a VM (and whose ticks come in steps there). So the verdict uses a conservative ratio: the
//! timed p99.9 (timer included) over the mean of an untimed loop of the same calls on the same
//! threads (`p999_over_mean_bound`); the true p99.9 / p50 is below it when the median is near
//! the mean, as it is for a call this uniform.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use surgewall::Breaker;
use surgewall_benches::{bench_thresholds, Ticker};

const CALLS: usize = 2_000_000;
const WARM_UP: usize = 200_000;

/// Times `CALLS` runs of `op` on each of `threads` threads released together; returns every
/// duration in TSC ticks, sorted, and the mean of an untimed loop of `CALLS` runs per thread
/// in ns.
fn sample(threads: usize, op: &(impl Fn() + Sync)) -> (Vec<u64>, f64) {
    let clock = quanta::Clock::new();
    let barrier = Barrier::new(threads);
    let per_thread: Vec<(Vec<u64>, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (clock, barrier) = (&clock, &barrier);
                s.spawn(move || {
                    let mut ticks = Vec::with_capacity(CALLS);
                    for _ in 0..WARM_UP {
                        op();
                    }
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..CALLS {
                        op();
                    }
                    let mean_ns = start.elapsed().as_nanos() as f64 / CALLS as f64;
                    barrier.wait();
                    for _ in 0..CALLS {
                        let start = clock.raw();
                        op();
                        ticks.push(clock.raw().wrapping_sub(start));
                    }
                    (ticks, mean_ns)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sampling thread"))
            .collect()
    });
    let mean = per_thread.iter().map(|(_, m)| m).sum::<f64>() / threads as f64;
    let mut all: Vec<u64> = per_thread.into_iter().flat_map(|(t, _)| t).collect();
    all.sort_unstable();
    (all, mean)
}

/// Percentile `q` (0..1) of sorted tick counts, in nanoseconds.
fn pct_ns(sorted: &[u64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 * ns_per_tick()
}

/// quanta's calibrated scale, from a large tick count so that no rounding shows.
fn ns_per_tick() -> f64 {
    const TICKS: u64 = 1 << 40;
    quanta::Clock::new().delta_as_nanos(0, TICKS) as f64 / TICKS as f64
}

fn main() {
    let _ticker = Ticker::start();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    // The guarded call of the `guarded_call` bench: 50 % over 60 s once 20 calls are in.
    let breaker = Breaker::new(
        "tail",
        bench_thresholds().build().expect("a valid configuration"),
    );
    let (timer, _) = sample(threads, &|| {});
    let (calls, mean) = sample(threads, &|| {
        black_box(breaker.acquire().expect("CLOSED admits").success());
    });
    assert_eq!(breaker.metrics().failures, 0);

    let (p50, p99, p999, max) = (
        pct_ns(&calls, 0.5),
        pct_ns(&calls, 0.99),
        pct_ns(&calls, 0.999),
        pct_ns(&calls, 1.0),
    );
    println!("threads={threads} calls_per_thread={CALLS}");
    println!(
        "timer_p50_ns={:.1} timer_p999_ns={:.1}",
        pct_ns(&timer, 0.5),
        pct_ns(&timer, 0.999)
    );
    println!("call_mean_ns={mean:.2} (untimed loop)");
    println!("call_p50_ns={p50:.1} call_p99_ns={p99:.1} call_p999_ns={p999:.1} call_max_ns={max:.0} (timer included)");
    println!("p999_over_p50={:.2} (timer included)", p999 / p50);
    let bound = p999 / mean;
    println!("p999_over_mean_bound={bound:.2}");
    println!(
        "G8 (p99.9 <= 10x p50 at N = cores): {}",
        if bound <= 10.0 {
            "met"
        } else {
            "not shown (bound above 10)"
        }
    );
}
