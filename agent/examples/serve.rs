//! A small service with the agent running: a few breakers, a bulkhead, a keyed breaker, a retry
//! budget and an SLO, driven by synthetic traffic with an outage every so often, so the admin
//! API and `/metrics` have something to show.
//!
//! ```sh
//! cargo run -p surgewall-agent --example serve -- [ADDR] [SECONDS]
//! # ADDR defaults to 127.0.0.1:9464; SECONDS (0 = until killed) to 0
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use surgewall::breaker::keyed::KeyedBreaker;
use surgewall::catalog::{Catalog, KeyedBreakerView};
use surgewall::retry::RetryBudgetConfig;
use surgewall::slo::{SloConfig, SloTracker};
use surgewall::{Breaker, BreakerConfig, Bulkhead, BulkheadConfig, RetryBudget};
use surgewall_agent::Agent;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:9464".into())
        .parse()?;
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);

    let catalog = Catalog::global();
    let config = BreakerConfig::builder()
        .failure_rate(0.5)
        .minimum_calls(20)
        .time_window(Duration::from_secs(10), 10)
        .open_for(Duration::from_secs(3))
        .half_open_calls(3)
        .build()?;
    let breakers: Vec<Arc<Breaker>> = ["payments", "/api/users", "inventory"]
        .into_iter()
        .map(|n| Arc::new(Breaker::new(n, config.clone())))
        .collect();
    for b in &breakers {
        catalog.join_breaker(b);
    }
    let db = Arc::new(Bulkhead::new(
        "db",
        BulkheadConfig::builder().max_concurrent(8).build()?,
    ));
    catalog.join_bulkhead(&db);
    let hosts = Arc::new(
        KeyedBreaker::<u64>::builder(config.clone())
            .max_keys(10_000)
            .idle_ttl(Duration::from_secs(60))
            .build()?,
    );
    let view: Arc<dyn KeyedBreakerView> = hosts.clone();
    catalog.join_keyed_breaker("upstream-hosts", &view);
    let tenants = Arc::new(
        surgewall::bulkhead::keyed::KeyedBulkhead::<u64>::builder(4)
            .max_keys(10_000)
            .build()?,
    );
    let tview: Arc<dyn surgewall::catalog::KeyedBulkheadView> = tenants.clone();
    catalog.join_keyed_bulkhead("upstream-hosts", &tview);
    let budget = Arc::new(RetryBudget::new(RetryBudgetConfig::new(0.2, 1.0, 10)?));
    catalog.join_retry_budget("outbound", &budget);
    let slo = Arc::new(SloTracker::new(
        SloConfig::builder().objective(0.99).build()?,
    ));
    catalog.join_slo("checkout", &slo);

    let agent = Agent::builder().bind(addr).start()?;
    println!(
        "surgewall agent on http://{}/ (metrics: /metrics, API: /api/resilience/)",
        agent.local_addr()
    );

    let start = Instant::now();
    let mut i: u64 = 0;
    while seconds == 0 || start.elapsed() < Duration::from_secs(seconds) {
        // payments fails hard for 5 s of every 30; the others fail now and then.
        let outage = start.elapsed().as_secs() % 30 < 5;
        for (n, b) in breakers.iter().enumerate() {
            if let Ok(p) = b.acquire() {
                let bad = if n == 0 {
                    outage
                } else {
                    i % (7 + n as u64) == 0
                };
                let _ = if bad { p.failure() } else { p.success() };
                slo.record(!bad);
            }
        }
        if let Ok(p) = hosts.try_acquire(&(i % 50)) {
            let _ = if outage && i % 50 < 3 {
                p.failure()
            } else {
                p.success()
            };
        }
        budget.record_request();
        let _slot = db.try_acquire();
        let _tenant = tenants.try_acquire(&(i % 50));
        slo.tick();
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    agent.stop()?;
    Ok(())
}
