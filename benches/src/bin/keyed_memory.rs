//! Bytes per idle key (budget G7: an idle keyed bulkhead <= 48 B and an idle keyed breaker
//! <= 64 B beyond a `u64` key, 1M idle keys < 64 MB RSS), measured as the RSS growth of this
//! process while 1M keys are created, with governor's keyed rate limiter measured in the same
//! run as the peer.
//!
//! `cargo run --release -p surgewall-benches --bin keyed_memory`
//!
//! Each structure is built after the previous one and kept alive until the end, so no
//! measurement reuses memory another one freed.

use std::num::NonZeroU32;

use governor::{Quota, RateLimiter};
use surgewall::breaker::keyed::KeyedBreaker;
use surgewall::bulkhead::keyed::KeyedBulkhead;
use surgewall::BreakerConfig;

const KEYS: u64 = 1_000_000;

/// Resident set size in bytes, from `/proc/self/statm` (pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm resident field");
    pages * 4096
}

/// RSS growth per key while `build` creates `KEYS` keys; returns the figure and what to keep
/// alive.
fn per_key<T>(build: impl FnOnce() -> T) -> (u64, T) {
    let before = rss_bytes();
    let kept = build();
    let after = rss_bytes();
    (after.saturating_sub(before) / KEYS, kept)
}

fn bulkhead_bytes_per_key() -> (u64, KeyedBulkhead<u64>) {
    per_key(|| {
        let tenants = KeyedBulkhead::<u64>::builder(10)
            .max_keys(KEYS as usize)
            .build()
            .expect("valid limits");
        for k in 0..KEYS {
            // Acquire and release: the key is created, used once, and idle.
            drop(tenants.try_acquire(&k).expect("a fresh key has room"));
        }
        assert_eq!(tenants.len() as u64, KEYS);
        tenants
    })
}

type Governor = governor::DefaultKeyedRateLimiter<u64>;

fn governor_bytes_per_key() -> (u64, Governor) {
    per_key(|| {
        let limiter = RateLimiter::keyed(Quota::per_second(NonZeroU32::new(100).unwrap()));
        for k in 0..KEYS {
            let _ = limiter.check_key(&k);
        }
        assert_eq!(limiter.len() as u64, KEYS);
        limiter
    })
}

/// Idle keyed breakers: each key created, used once (a success), and idle, CLOSED.
fn breaker_bytes_per_key() -> (u64, KeyedBreaker<u64>) {
    per_key(|| {
        let endpoints = KeyedBreaker::<u64>::builder(BreakerConfig::default())
            .max_keys(KEYS as usize)
            .build()
            .expect("a valid configuration");
        for k in 0..KEYS {
            endpoints
                .try_acquire(&k)
                .expect("a fresh key admits")
                .success();
        }
        assert_eq!(endpoints.len() as u64, KEYS);
        endpoints
    })
}

fn main() {
    // Warm the allocator and the process (first-touch costs) before measuring.
    drop(std::hint::black_box(vec![0u8; 1 << 20]));

    let (bulkhead, _keep_bulkhead) = bulkhead_bytes_per_key();
    let (governor, _keep_governor) = governor_bytes_per_key();
    let (breaker, _keep_breaker) = breaker_bytes_per_key();

    println!("keys={KEYS}");
    println!("bulkhead_bytes_per_key={bulkhead}");
    println!(
        "bulkhead_bytes_per_key_beyond_key={}",
        bulkhead.saturating_sub(8)
    );
    println!(
        "bulkhead_rss_mb_for_1m_keys={:.1}",
        (bulkhead * KEYS) as f64 / 1e6
    );
    println!("governor_bytes_per_key={governor}");
    println!("breaker_bytes_per_key={breaker}");
    println!(
        "breaker_bytes_per_key_beyond_key={}",
        breaker.saturating_sub(8)
    );
    println!(
        "breaker_rss_mb_for_1m_keys={:.1}",
        (breaker * KEYS) as f64 / 1e6
    );
    println!(
        "bulkhead_vs_governor={:.2}",
        bulkhead as f64 / governor.max(1) as f64
    );
    println!(
        "breaker_vs_governor={:.2}",
        breaker as f64 / governor.max(1) as f64
    );
}
