//! What the live stream costs the service, and what it holds (issue 14, item 5).
//!
//! 1. The guarded call (acquire + record success) timed call by call, in alternating rounds
//!    of three conditions, agent running in each: (A) nothing else; (B) another breaker
//!    flapping every 10 ms; (C) the same, with 50 WebSocket clients attached and reading.
//!    p50 and p99 of each, and the ratios C/A and C/B.
//! 2. The agent thread's CPU per 1,000 events/s: breakers flapped at a fixed rate of
//!    transitions, with 0 and with 50 clients attached.
//! 3. A bounded load run: WebSocket and SSE clients held at once, with a transition every
//!    20 ms; every client's delivery latency for every transition (from the transition's call
//!    to the client's read of it), p50/p99/max, and the clients still connected at the end.
//!
//! `cargo run --release -p surgewall-benches --bin agent_stream` (`-- --quick` for a smoke run)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use surgewall::catalog::Catalog;
use surgewall::{Breaker, BreakerConfig};
use surgewall_agent::Agent;
use surgewall_benches::{agent_cpu, bench_thresholds, pct, time_calls, BATCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// When each generation of the probe breaker was entered, for latencies.
type Sent = Arc<Mutex<HashMap<u64, Instant>>>;

/// Latencies seen by the clients (µs), and how many clients ended their run connected.
#[derive(Default)]
struct Seen {
    micros: Vec<u64>,
    connected: usize,
}

/// The transition message's generation, if `text` is a transition of `name`.
fn transition_of(text: &str, name: &str) -> Option<u64> {
    if !text.contains(r#""type":"transition""#) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    (v["name"] == name).then(|| v["generation"].as_u64())?
}

async fn ws_client(addr: SocketAddr, probe: &'static str, sent: Sent, until: Instant) -> Vec<u64> {
    let url = format!("ws://{addr}/api/resilience/ws");
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        return vec![u64::MAX];
    };
    let mut lat = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until.into(), ws.next()).await {
        let now = Instant::now();
        if let Some(g) = m.to_text().ok().and_then(|t| transition_of(t, probe)) {
            if let Some(t0) = sent.lock().unwrap().get(&g) {
                lat.push(now.duration_since(*t0).as_micros() as u64);
            }
        }
    }
    // Ended before `until`: the stream was closed under it (marked, not a latency).
    if Instant::now() < until {
        lat.push(u64::MAX);
    }
    lat
}

async fn sse_client(addr: SocketAddr, probe: &'static str, sent: Sent, until: Instant) -> Vec<u64> {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
        return vec![u64::MAX];
    };
    let req = format!("GET /api/resilience/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    if tcp.write_all(req.as_bytes()).await.is_err() {
        return vec![u64::MAX];
    }
    // Each SSE message is one chunk, so a `data:` line is never split by the chunk framing.
    let mut lines = BufReader::new(tcp).lines();
    let mut lat = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(until.into(), lines.next_line()).await {
        let now = Instant::now();
        if let Some(g) = line
            .strip_prefix("data: ")
            .and_then(|t| transition_of(t, probe))
        {
            if let Some(t0) = sent.lock().unwrap().get(&g) {
                lat.push(now.duration_since(*t0).as_micros() as u64);
            }
        }
    }
    if Instant::now() < until {
        lat.push(u64::MAX);
    }
    lat
}

/// Runs `ws` WebSocket and `sse` SSE clients on a thread of their own until `until`.
fn clients(
    addr: SocketAddr,
    (ws, sse): (usize, usize),
    probe: &'static str,
    sent: Sent,
    until: Instant,
) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut tasks = Vec::new();
            for i in 0..ws + sse {
                let sent = sent.clone();
                tasks.push(tokio::spawn(async move {
                    if i < ws {
                        ws_client(addr, probe, sent, until).await
                    } else {
                        sse_client(addr, probe, sent, until).await
                    }
                }));
            }
            let mut seen = Seen::default();
            for t in tasks {
                let lat = t.await.unwrap();
                if lat.last() != Some(&u64::MAX) {
                    seen.connected += 1;
                }
                seen.micros
                    .extend(lat.into_iter().filter(|&l| l != u64::MAX));
            }
            seen
        })
    })
}

/// Flaps `b` (force open, reset) every `every` until `on` goes false, noting when each
/// generation was entered.
fn flapper(
    b: Arc<Breaker>,
    every: Duration,
    on: Arc<AtomicBool>,
    sent: Sent,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut n = 0;
        let mut next = Instant::now();
        while on.load(Ordering::Relaxed) {
            let t0 = Instant::now();
            if n % 2 == 0 {
                b.force_open(None);
            } else {
                b.reset();
            }
            sent.lock().unwrap().insert(b.metrics().generation, t0);
            n += 1;
            next += every;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        n
    })
}

fn agent() -> Agent {
    Agent::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .stream_max_clients(512)
        .start()
        .expect("agent")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (span, rounds, load_secs, load_clients) = if quick {
        (Duration::from_millis(20), 1, 1, (4, 4))
    } else {
        (Duration::from_secs(2), 5, 10, (100, 100))
    };
    let catalog = Catalog::global();
    let config = bench_thresholds().build().expect("thresholds");
    let hot = Arc::new(Breaker::new("hot", config.clone()));
    catalog.join_breaker(&hot);
    let flapping_config = BreakerConfig::default();
    let flap = Arc::new(Breaker::new("flap", flapping_config.clone()));
    catalog.join_breaker(&flap);
    let many: Vec<Arc<Breaker>> = (0..20)
        .map(|i| Arc::new(Breaker::new(format!("many-{i}"), flapping_config.clone())))
        .collect();
    for b in &many {
        catalog.join_breaker(b);
    }

    println!(
        "1. guarded call, {span:?} per condition and round in batches of {BATCH}, {rounds} rounds, agent running (ns per call, percentiles of batch means)"
    );
    let mut cond: [(Vec<u64>, Vec<u64>); 3] = Default::default();
    for round in 0..rounds {
        let agent = agent();
        let addr = agent.local_addr();
        std::thread::sleep(Duration::from_millis(200));
        for (c, (p50s, p99s)) in cond.iter_mut().enumerate() {
            let on = Arc::new(AtomicBool::new(true));
            let sent = Sent::default();
            let flapping = (c > 0).then(|| {
                flapper(
                    flap.clone(),
                    Duration::from_millis(10),
                    on.clone(),
                    sent.clone(),
                )
            });
            let attached = (c == 2).then(|| {
                let until = Instant::now() + span + Duration::from_millis(600);
                clients(addr, (50, 0), "flap", sent.clone(), until)
            });
            std::thread::sleep(Duration::from_millis(300)); // clients connected, steady state
            let ns = time_calls(&hot, span);
            p50s.push(pct(&ns, 50.0));
            p99s.push(pct(&ns, 99.0));
            on.store(false, Ordering::Relaxed);
            if let Some(f) = flapping {
                f.join().unwrap();
            }
            if let Some(a) = attached {
                let seen = a.join().unwrap();
                assert_eq!(seen.connected, 50, "every client stayed connected");
            }
        }
        let ns = |v: &Vec<u64>| v[round] as f64 / 10.0;
        println!(
            "   round {round}: A p50 {:.1} p99 {:.1} | B (flapping) p50 {:.1} p99 {:.1} | C (flapping, 50 WS clients) p50 {:.1} p99 {:.1}",
            ns(&cond[0].0), ns(&cond[0].1), ns(&cond[1].0), ns(&cond[1].1), ns(&cond[2].0), ns(&cond[2].1)
        );
        agent.stop().expect("stop");
    }
    let median = |v: &Vec<u64>| {
        let mut v = v.clone();
        v.sort_unstable();
        v[v.len() / 2] as f64 / 10.0
    };
    let m: Vec<(f64, f64)> = cond.iter().map(|(a, b)| (median(a), median(b))).collect();
    println!(
        "   medians: A p50 {:.1} p99 {:.1}; B p50 {:.1} p99 {:.1}; C p50 {:.1} p99 {:.1} ns",
        m[0].0, m[0].1, m[1].0, m[1].1, m[2].0, m[2].1
    );
    println!(
        "   ratios: C/A p50 {:.3}x p99 {:.3}x; C/B p50 {:.3}x p99 {:.3}x",
        m[2].0 / m[0].0,
        m[2].1 / m[0].1,
        m[2].0 / m[1].0,
        m[2].1 / m[1].1
    );

    let rate = 1000; // transitions per second, over the 20 `many` breakers
    let secs = if quick { 1 } else { 5 };
    println!("2. agent thread CPU at {rate} events/s for {secs} s");
    for attached_n in [0, 50] {
        let agent = agent();
        let addr = agent.local_addr();
        let until = Instant::now() + Duration::from_secs(secs + 2);
        let attached = (attached_n > 0)
            .then(|| clients(addr, (attached_n, 0), "none", Sent::default(), until));
        std::thread::sleep(Duration::from_millis(500));
        let on = Arc::new(AtomicBool::new(true));
        let every = Duration::from_secs_f64(20.0 / rate as f64);
        let flappers: Vec<_> = many
            .iter()
            .map(|b| flapper(b.clone(), every, on.clone(), Sent::default()))
            .collect();
        let cpu0 = agent_cpu();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        let cpu = agent_cpu().zip(cpu0).map(|(a, b)| a.saturating_sub(b));
        let wall = t0.elapsed();
        on.store(false, Ordering::Relaxed);
        let flips: u64 = flappers.into_iter().map(|f| f.join().unwrap()).sum();
        if let Some(a) = attached {
            a.join().unwrap();
        }
        let per_sec = flips as f64 / wall.as_secs_f64();
        println!(
            "   {attached_n} clients: {per_sec:.0} events/s, agent CPU {} ms per second per 1,000 events/s",
            cpu.map_or("n/a".into(), |c| format!(
                "{:.1}",
                c.as_secs_f64() * 1e3 / wall.as_secs_f64() / (per_sec / 1000.0)
            ))
        );
        agent.stop().expect("stop");
    }

    let (ws, sse) = load_clients;
    println!(
        "3. load: {ws} WebSocket + {sse} SSE clients for {load_secs} s, a transition every 20 ms"
    );
    let agent = agent();
    let addr = agent.local_addr();
    let sent = Sent::default();
    let until = Instant::now() + Duration::from_secs(load_secs + 3);
    let attached = clients(addr, (ws, sse), "flap", sent.clone(), until);
    // Every client connected (and past its snapshot) before the first transition.
    std::thread::sleep(Duration::from_secs(2));
    let on = Arc::new(AtomicBool::new(true));
    let f = flapper(flap.clone(), Duration::from_millis(20), on.clone(), sent);
    std::thread::sleep(Duration::from_secs(load_secs));
    on.store(false, Ordering::Relaxed);
    let flips = f.join().unwrap();
    let mut seen = attached.join().unwrap();
    seen.micros.sort_unstable();
    if seen.micros.is_empty() {
        println!("   no deliveries");
    } else {
        println!(
            "   {} of {} clients held to the end; {} deliveries of {flips} transitions; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            seen.connected,
            ws + sse,
            seen.micros.len(),
            pct(&seen.micros, 50.0) as f64 / 1e3,
            pct(&seen.micros, 99.0) as f64 / 1e3,
            *seen.micros.last().unwrap() as f64 / 1e3
        );
    }
    agent.stop().expect("stop");
}
