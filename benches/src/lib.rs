//! Shared pieces of surgewall's benchmarks (the benches themselves live in `benches/`).
//!
//! Run them with `make bench` (or `cargo bench -p surgewall-benches`); `make bench-check` runs
//! each once in `--test` mode, as CI does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use surgewall::{BreakerConfig, BreakerConfigBuilder};

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
