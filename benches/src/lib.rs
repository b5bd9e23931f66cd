//! Shared pieces of surgewall's benchmarks (the benches themselves live in `benches/`).
//!
//! Run them with `make bench` (or `cargo bench -p surgewall-benches`); `make bench-check` runs
//! each once in `--test` mode, as CI does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use surgewall::{Breaker, BreakerConfig, BreakerConfigBuilder};

/// The thresholds of every breaker bench (the peers get their closest equivalent): trip at
/// 50 % failures once 20 calls are in a 60 s window of 10 buckets, open 5 s, 3 probes.
pub fn bench_thresholds() -> BreakerConfigBuilder {
    BreakerConfig::builder()
        .failure_rate(0.5)
        .minimum_calls(20)
        .time_window(Duration::from_secs(60), 10)
        .open_for(Duration::from_secs(5))
        .half_open_calls(3)
}

/// Keeps surgewall's coarse clock ticking (every 500 µs) while alive, as the agent does in
/// production. Without it coarse reads fall back to precise ones.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts the ticking thread.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        surgewall::clock::tick();
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                surgewall::clock::tick();
                std::thread::sleep(Duration::from_micros(500));
            }
            surgewall::clock::stop_ticking();
        });
        Ticker {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Runs `op` `iters` times on each of `threads` threads released together, and returns the
/// wall time from the release to the last thread's end (thread start-up is not timed).
pub fn parallel<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn() + Sync,
{
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    for _ in 0..iters {
                        op();
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = std::time::Instant::now();
        for h in handles {
            h.join().expect("bench thread");
        }
        start.elapsed()
    })
}

/// The `p`-th percentile (0..=100) of sorted values.
pub fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

/// Calls per timed batch: a VM's TSC ticks in steps of about 10 ns, as long as a call, so
/// single calls cannot be told apart; a batch's mean can, and a preemption or a cache line
/// taken away by the agent still shows in the batch it hits.
pub const BATCH: u64 = 32;

/// Times guarded calls in batches of [`BATCH`] for `span`; returns each batch's mean per
/// call in tenths of a nanosecond, sorted.
pub fn time_calls(b: &Breaker, span: Duration) -> Vec<u64> {
    let clock = quanta::Clock::new();
    let mut ticks = Vec::with_capacity(1 << 20);
    let call = || {
        let _ = std::hint::black_box(b.acquire().map(|p| p.success()));
    };
    for _ in 0..100_000 {
        call();
    }
    let end = Instant::now() + span;
    while Instant::now() < end {
        for _ in 0..1024 {
            let t0 = clock.raw();
            for _ in 0..BATCH {
                call();
            }
            ticks.push(clock.raw().wrapping_sub(t0));
        }
    }
    let mut tenths: Vec<u64> = ticks
        .iter()
        .map(|&t| clock.delta_as_nanos(0, t) * 10 / BATCH)
        .collect();
    tenths.sort_unstable();
    tenths
}

/// CPU time (user + system) of the thread named `surgewall-agent`, from /proc.
pub fn agent_cpu() -> Option<Duration> {
    let hz = 100.0; // USER_HZ on Linux
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() == "surgewall-agent" {
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks: f64 =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            return Some(Duration::from_secs_f64(ticks / hz));
        }
    }
    None
}
