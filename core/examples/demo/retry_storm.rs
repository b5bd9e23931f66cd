//! Demo section: a retry storm held back by a retry budget.
//!
//! 40 requests a second hit a dependency that is down for 5 seconds. Every client retries up
//! to 3 times (4 attempts). Without a budget that is 4x the traffic on a dependency that is
//! already failing; with a shared budget (10 % of requests + 2 per second, over 10 s) the
//! retries stay under the budget's line. Deterministic: a mock clock, a seeded policy.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use surgewall::clock::Clock;
use surgewall::events::{EventKind, EventRing};
use surgewall::{
    AttemptOutcome, Backoff, Decision, Jitter, RetryBudget, RetryBudgetConfig, RetryPolicy,
    StopReason,
};

/// Runs the section, writing its report to `out`.
pub fn run(out: &mut impl Write) -> io::Result<()> {
    let (clock, time) = Clock::mock();
    let ring = EventRing::new(256);
    let mut events = ring.subscribe();
    let config = RetryBudgetConfig::new(0.1, 2.0, 10).expect("valid budget");
    let budget = Arc::new(RetryBudget::with_clock(config, clock.clone(), ring));
    let policy = RetryPolicy::builder()
        .max_attempts(4)
        .backoff(Backoff::exponential(Duration::from_millis(50), 2.0))
        .jitter(Jitter::Full)
        .budget(budget.clone())
        .clock(clock)
        .seed(42)
        .build()
        .expect("valid policy");

    writeln!(
        out,
        "== retry storm: 40 req/s against a dependency down for 5 s =="
    )?;
    writeln!(
        out,
        "budget: retries <= {} x requests + {}/s x {} s (sliding, 1 s buckets); 4 attempts max",
        config.ratio(),
        config.min_per_second(),
        config.window_secs()
    )?;
    writeln!(
        out,
        "{:>4} {:>9} {:>16} {:>16} {:>8} {:>14}",
        "sec", "requests", "retries wanted", "retries allowed", "refused", "budget left"
    )?;
    let (mut total_req, mut total_wanted, mut total_granted) = (0u64, 0u64, 0u64);
    for sec in 1..=7u32 {
        let down = sec <= 5;
        let (mut wanted, mut granted, mut refused) = (0u64, 0u64, 0u64);
        for _ in 0..10 {
            // 4 operations every 100 ms; each runs its retries (the delays are simulated:
            // the dependency is either down for all of them or up).
            for _ in 0..4 {
                let mut s = policy.schedule();
                if !down {
                    s.next(AttemptOutcome::Success);
                    continue;
                }
                // Without a budget this operation would make max_attempts - 1 retries.
                wanted += u64::from(policy.max_attempts() - 1);
                loop {
                    match s.next(AttemptOutcome::Retryable) {
                        Decision::Retry(_) => granted += 1,
                        Decision::Stop(StopReason::BudgetExhausted) => {
                            refused += 1;
                            break;
                        }
                        Decision::Stop(_) => break,
                    }
                }
            }
            time.advance(Duration::from_millis(100));
        }
        total_req += 40;
        total_wanted += wanted;
        total_granted += granted;
        let m = budget.metrics();
        writeln!(
            out,
            "{sec:>4} {:>9} {wanted:>16} {granted:>16} {refused:>8} {:>14}",
            40, m.remaining
        )?;
    }
    let exhausted = events
        .by_ref()
        .filter(|e| e.kind == EventKind::RetryBudgetExhausted)
        .count();
    let m = policy.metrics();
    writeln!(
        out,
        "total: {total_req} requests; retries wanted {total_wanted}, allowed {total_granted} \
         ({:.0} % of wanted); load on the dependency {:.2}x instead of {:.2}x",
        100.0 * total_granted as f64 / total_wanted.max(1) as f64,
        (total_req + total_granted) as f64 / total_req as f64,
        (total_req + total_wanted) as f64 / total_req as f64,
    )?;
    writeln!(
        out,
        "stops: budget_exhausted {}, max_attempts {}, succeeded {}; RetryBudgetExhausted events: {exhausted} (at most one a second)",
        m.stopped(StopReason::BudgetExhausted),
        m.stopped(StopReason::MaxAttempts),
        m.stopped(StopReason::Succeeded),
    )?;
    Ok(())
}
