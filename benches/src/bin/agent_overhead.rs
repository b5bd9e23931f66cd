//! What the agent costs the service, and what it serves at scale (issue 13, budgets G9/G10).
//!
//! 1. The guarded call (acquire + record success, coarse clock) timed call by call, in
//!    alternating rounds: without the agent (a plain ticker thread keeps the coarse clock, as a
//!    service without the agent would) and with the agent running and scraped 10 times a second
//!    (`/metrics` and the dashboard summary). p50 and p99 of each condition, and their ratios.
//! 2. `GET /metrics` and `GET /api/resilience/dashboard/summary` with 1,000 breakers and a keyed
//!    breaker of 100,000 keys listed: latency percentiles, requests per second, and the agent
//!    thread's own CPU time while serving them.
//!
//! `cargo run --release -p surgewall-benches --bin agent_overhead` (`-- --quick` for a smoke run)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use surgewall::breaker::keyed::KeyedBreaker;
use surgewall::catalog::{Catalog, KeyedBreakerView};
use surgewall::{Breaker, BreakerConfig};
use surgewall_agent::Agent;
use surgewall_benches::{agent_cpu, bench_thresholds, pct, time_calls, Ticker, BATCH};

fn get(addr: SocketAddr, path: &str) -> usize {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    assert!(body.starts_with(b"HTTP/1.1 200"), "{path}");
    body.len()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (span, rounds, requests) = if quick {
        (Duration::from_millis(20), 2, 20)
    } else {
        (Duration::from_secs(2), 5, 500)
    };
    let catalog = Catalog::global();

    let config = bench_thresholds().build().expect("thresholds");
    let breakers: Vec<Arc<Breaker>> = (0..1000)
        .map(|i| Arc::new(Breaker::new(format!("svc-{i}"), config.clone())))
        .collect();
    for b in &breakers {
        catalog.join_breaker(b);
        let _ = b.acquire().map(|p| p.success());
    }
    let keyed = Arc::new(
        KeyedBreaker::<u64>::builder(BreakerConfig::default())
            .max_keys(200_000)
            .build()
            .expect("keyed"),
    );
    for k in 0..100_000u64 {
        let _ = keyed.try_acquire(&k).map(|p| p.success());
    }
    for k in 0..100u64 {
        let _ = keyed.force_open(&k, None);
    }
    let view: Arc<dyn KeyedBreakerView> = keyed.clone();
    catalog.join_keyed_breaker("users", &view);
    let hot = &breakers[0];

    println!("agent_overhead: 1,000 breakers and a keyed breaker of 100,000 keys listed");
    println!(
        "1. guarded call, {span:?} per round in batches of {BATCH}, {rounds} alternating rounds, steady state (ns per call, percentiles of batch means)"
    );
    let (mut base50, mut base99, mut with50, mut with99) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        {
            let _ticker = Ticker::start();
            std::thread::sleep(Duration::from_millis(300));
            let ns = time_calls(hot, span);
            base50.push(pct(&ns, 50.0));
            base99.push(pct(&ns, 99.0));
        }
        {
            let agent = Agent::builder()
                .bind("127.0.0.1:0".parse().unwrap())
                .start()
                .expect("agent");
            let addr = agent.local_addr();
            let scraping = Arc::new(AtomicBool::new(true));
            let scraper = {
                let on = scraping.clone();
                std::thread::spawn(move || {
                    while on.load(Ordering::Relaxed) {
                        get(addr, "/metrics");
                        get(addr, "/api/resilience/dashboard/summary");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
            };
            // Steady state: the first scrapes (and the start) are behind us.
            std::thread::sleep(Duration::from_millis(300));
            let ns = time_calls(hot, span);
            with50.push(pct(&ns, 50.0));
            with99.push(pct(&ns, 99.0));
            scraping.store(false, Ordering::Relaxed);
            scraper.join().unwrap();
            agent.stop().expect("stop");
        }
        let ns = |t: u64| t as f64 / 10.0;
        println!(
            "   round {round}: without agent p50 {:.1} p99 {:.1} | agent scraped 10/s p50 {:.1} p99 {:.1}",
            ns(base50[round]),
            ns(base99[round]),
            ns(with50[round]),
            ns(with99[round])
        );
    }
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2] as f64 / 10.0
    };
    let (b50, b99, w50, w99) = (
        median(&mut base50),
        median(&mut base99),
        median(&mut with50),
        median(&mut with99),
    );
    println!(
        "   medians: p50 {b50:.1} -> {w50:.1} ns ({:.3}x, G9 <= 1.05x); p99 {b99:.1} -> {w99:.1} ns ({:.3}x, G9 <= 1.1x)",
        w50 / b50,
        w99 / b99
    );

    println!("2. the agent's endpoints, {requests} sequential requests each");
    let agent = Agent::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .start()
        .expect("agent");
    let addr = agent.local_addr();
    for path in [
        "/metrics",
        "/api/resilience/dashboard/summary",
        "/api/resilience/circuit-breakers",
    ] {
        get(addr, path);
        let cpu0 = agent_cpu();
        let start = Instant::now();
        let mut lat: Vec<u64> = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let t = Instant::now();
            bytes = get(addr, path);
            lat.push(t.elapsed().as_micros() as u64);
        }
        let wall = start.elapsed();
        let cpu = agent_cpu().zip(cpu0).map(|(a, b)| a.saturating_sub(b));
        lat.sort_unstable();
        println!(
            "   {path}: {bytes} B, p50 {:.2} ms, p99 {:.2} ms (G10 <= 50 ms), {:.0} req/s, agent CPU {} ms per request",
            pct(&lat, 50.0) as f64 / 1e3,
            pct(&lat, 99.0) as f64 / 1e3,
            requests as f64 / wall.as_secs_f64(),
            cpu.map_or("n/a".into(), |c| format!("{:.2}", c.as_secs_f64() * 1e3 / requests as f64)),
        );
    }
    agent.stop().expect("stop");
}
