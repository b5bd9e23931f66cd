//! The dashboard with something to watch: breakers with outages that come and go (so they
//! open, half-open and close), bulkheads with queues, a keyed breaker and a keyed bulkhead, an
//! SLO and a retry budget, all driven by synthetic traffic, with the agent on loopback.
//!
//! ```sh
//! cargo run -p surgewall-agent --example dashboard -- [--port 9464] [--breakers 24] [--seconds 0]
//! # --port 0 picks a free port; --seconds 0 runs until killed
//! ```
//!
//! The first line on stdout is the dashboard's URL (`http://127.0.0.1:PORT/`), so a test can
//! start it on port 0 and read where it listens. A few breakers hold still for tests: `search`
//! is always healthy, `legacy-billing` starts disabled, `audit-log` metrics-only and
//! `fraud-check` forced open.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use surgewall::breaker::keyed::KeyedBreaker;
use surgewall::bulkhead::keyed::KeyedBulkhead;
use surgewall::catalog::{Catalog, KeyedBreakerView, KeyedBulkheadView};
use surgewall::retry::RetryBudgetConfig;
use surgewall::slo::{SloConfig, SloTracker};
use surgewall::{Breaker, BreakerConfig, Bulkhead, BulkheadConfig, Outcome, RetryBudget};
use surgewall_agent::Agent;

/// The command line: `--port`, `--breakers`, `--seconds`.
struct Args {
    port: u16,
    breakers: usize,
    seconds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 9464,
        breakers: 24,
        seconds: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value:?}: {e}");
        match flag.as_str() {
            "--port" => args.port = value.parse().map_err(bad)?,
            "--breakers" => args.breakers = value.parse().map_err(bad)?,
            "--seconds" => args.seconds = value.parse().map_err(bad)?,
            _ => {
                return Err(format!(
                    "unknown flag {flag} (--port, --breakers, --seconds)"
                ))
            }
        }
    }
    if !(4..=100_000).contains(&args.breakers) {
        return Err(format!(
            "--breakers must be in 4..=100000, not {}",
            args.breakers
        ));
    }
    Ok(args)
}

/// The fixed breakers first, then `svc-0004`... up to `n` in all.
fn breaker_names(n: usize) -> Vec<String> {
    let fixed = [
        "payments",
        "search",
        "/api/users",
        "inventory",
        "legacy-billing",
        "audit-log",
        "fraud-check",
    ];
    let mut names: Vec<String> = fixed.iter().take(n).map(|s| s.to_string()).collect();
    names.extend((names.len()..n).map(|i| format!("svc-{i:04}")));
    names
}

/// How a breaker's calls go: healthy, or failing through an outage window of each period.
struct Traffic {
    period_s: u64,
    outage_s: u64,
    offset_s: u64,
    /// 1 in `noise` calls fails outside outages (0: none).
    noise: u64,
    /// 1 in `slow` calls takes long (0: none).
    slow: u64,
}

impl Traffic {
    fn for_breaker(i: usize, name: &str) -> Self {
        let i = i as u64;
        match name {
            "search" => Traffic::steady(0),
            "payments" => Traffic {
                period_s: 30,
                outage_s: 12,
                offset_s: 0,
                noise: 50,
                slow: 0,
            },
            "/api/users" => Traffic {
                slow: 4,
                ..Traffic::steady(25)
            },
            // One in twelve generated breakers has outages; the rest only a little noise.
            _ if i % 12 == 0 => Traffic {
                period_s: 20 + i % 40,
                outage_s: 9,
                offset_s: i * 7,
                noise: 40,
                slow: 0,
            },
            _ => Traffic::steady(10 + i % 90),
        }
    }

    fn steady(noise: u64) -> Self {
        Traffic {
            period_s: 1,
            outage_s: 0,
            offset_s: 0,
            noise,
            slow: 0,
        }
    }

    fn failing(&self, elapsed_s: u64, call: u64) -> bool {
        let in_outage = (elapsed_s + self.offset_s) % self.period_s < self.outage_s;
        in_outage || (self.noise > 0 && call % self.noise == 0)
    }
}

/// Threads that hold a bulkhead's slots for a while, more of them than it has slots, so it
/// shows use and a queue.
fn load_bulkhead(bulkhead: Arc<Bulkhead>, workers: u64, hold_ms: u64) {
    for w in 0..workers {
        let b = bulkhead.clone();
        std::thread::spawn(move || {
            let mut n = w;
            loop {
                n += 1;
                if let Ok(_slot) = b.acquire() {
                    std::thread::sleep(Duration::from_millis(
                        hold_ms + (n * 37 + w * 11) % hold_ms,
                    ));
                }
                std::thread::sleep(Duration::from_millis((n * 53) % 40));
            }
        });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dashboard: {e}");
            std::process::exit(2)
        }
    };
    let catalog = Catalog::global();
    let config = BreakerConfig::builder()
        .failure_rate(0.5)
        .slow_calls(0.8, Duration::from_millis(200))
        .minimum_calls(20)
        .time_window(Duration::from_secs(10), 10)
        .open_for(Duration::from_secs(5))
        .half_open_calls(3)
        .build()?;

    let names = breaker_names(args.breakers);
    let breakers: Vec<(Arc<Breaker>, Traffic)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                Arc::new(Breaker::new(n, config.clone())),
                Traffic::for_breaker(i, n),
            )
        })
        .collect();
    for (b, _) in &breakers {
        catalog.join_breaker(b);
        match b.name() {
            "legacy-billing" => b.disable(),
            "audit-log" => b.metrics_only(),
            "fraud-check" => b.force_open(None),
            _ => {}
        }
    }

    for (name, max, workers, hold_ms) in [
        ("db", 8, 10, 60),
        ("cache", 16, 6, 20),
        ("mailer", 2, 3, 150),
    ] {
        let config = BulkheadConfig::builder()
            .max_concurrent(max)
            .max_wait(Duration::from_millis(300))
            .build()?;
        let b = Arc::new(Bulkhead::new(name, config));
        catalog.join_bulkhead(&b);
        load_bulkhead(b, workers, hold_ms);
    }

    let hosts = Arc::new(
        KeyedBreaker::<String>::builder(config.clone())
            .max_keys(10_000)
            .idle_ttl(Duration::from_secs(60))
            .build()?,
    );
    let view: Arc<dyn KeyedBreakerView> = hosts.clone();
    catalog.join_keyed_breaker("upstream-hosts", &view);
    let loads = Arc::new(
        KeyedBulkhead::<String>::builder(4)
            .max_keys(10_000)
            .build()?,
    );
    let lview: Arc<dyn KeyedBulkheadView> = loads.clone();
    catalog.join_keyed_bulkhead("upstream-hosts", &lview);
    let budget = Arc::new(RetryBudget::new(RetryBudgetConfig::new(0.2, 1.0, 10)?));
    catalog.join_retry_budget("outbound", &budget);
    // checkout burns its budget through each payments outage; profile stays within its own.
    let checkout = Arc::new(SloTracker::new(
        SloConfig::builder().objective(0.99).build()?,
    ));
    catalog.join_slo("checkout", &checkout);
    let profile = Arc::new(SloTracker::new(
        SloConfig::builder().objective(0.95).build()?,
    ));
    catalog.join_slo("profile", &profile);

    let agent = Agent::builder()
        .bind(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .start()?;
    println!("http://{}/", agent.local_addr());
    std::io::stdout().flush()?;

    let start = Instant::now();
    let mut call: u64 = 0;
    let mut held = Vec::new();
    while args.seconds == 0 || start.elapsed() < Duration::from_secs(args.seconds) {
        let elapsed_s = start.elapsed().as_secs();
        call += 1;
        for (b, traffic) in &breakers {
            let Ok(permit) = b.acquire() else { continue };
            let bad = traffic.failing(elapsed_s, call);
            let slow = traffic.slow > 0 && call % traffic.slow == 0;
            let took = Duration::from_millis(if slow { 300 } else { 5 });
            let outcome = if bad {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            let _ = permit.record_with_duration(outcome, took);
            match b.name() {
                "payments" => checkout.record(!bad),
                "/api/users" => profile.record(!bad),
                _ => {}
            }
        }
        // Hosts 0..3 fail for 8 s of every 20; the keys of the others stay closed.
        for h in 0..40 {
            if let Ok(p) = hosts.try_acquire(&format!("host-{h:02}")) {
                let bad = h < 3 && elapsed_s % 20 < 8;
                let _ = if bad { p.failure() } else { p.success() };
            }
        }
        // Hosts 0..5 keep a few calls in flight for a while.
        held.retain(|(_, until)| *until > call);
        if let Ok(p) = loads.try_acquire(&format!("host-{:02}", call % 6)) {
            held.push((p, call + (call % 7) * 10));
        }
        budget.record_request();
        if call % 3 == 0 {
            let _ = budget.try_retry();
        }
        checkout.tick();
        profile.tick();
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.stop()?;
    Ok(())
}
