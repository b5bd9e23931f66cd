//! Demo section: an SLO burning its error budget opens a breaker.
//!
//! A 99 % objective over 60 s (short windows so the demo runs in mock seconds): fast pair
//! 10 s / 2 s at burn 10, slow pair 30 s / 5 s at burn 5. The breaker's own rule (50 %
//! failures) never trips at 25 % errors, but the SLO burns 25x too fast: the tracker forces the
//! breaker open and holds it at least 5 s. Held, the breaker rejects everything, so the short
//! window holds no data: that is not a recovery. After 5 s the probe rule hands the breaker to
//! its probes; while errors go on, the calls they let through burn at 25 again and the tracker
//! holds the breaker again; once errors stop, the probes close it and the good calls recover
//! the SLO — evidence, not silence, ends the hold.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use surgewall::clock::Clock;
use surgewall::events::{EventKind, EventRing};
use surgewall::{Breaker, BreakerConfig, Fallback, SloConfig, SloTracker};

/// Runs the section, writing its report to `out`.
pub fn run(out: &mut impl Write) -> io::Result<()> {
    let (clock, time) = Clock::mock();
    let ring = EventRing::new(256);
    let mut events = ring.subscribe();
    let s = Duration::from_secs(1);
    let breaker = Arc::new(
        Breaker::builder(
            "checkout",
            BreakerConfig::builder()
                .failure_rate(0.5)
                .minimum_calls(20)
                .half_open_calls(3)
                .build()
                .expect("valid breaker"),
        )
        .clock(clock.clone())
        .events(ring.clone())
        .fallback(Fallback::json(
            r#"{"error":"checkout degraded, try later"}"#,
        ))
        .build(),
    );
    let config = SloConfig::builder()
        .objective(0.99)
        .window(s * 60)
        .budget_buckets(60)
        .fast_burn(s * 10, s * 2, 10.0)
        .slow_burn(s * 30, s * 5, 5.0)
        .min_open(s * 5)
        .build()
        .expect("valid SLO");
    let slo = SloTracker::builder(config)
        .clock(clock)
        .breaker(breaker.clone())
        .build();

    writeln!(
        out,
        "== SLO burn: 99 % over 60 s; errors 25 % from t=10 s to t=22 s =="
    )?;
    writeln!(
        out,
        "{:>4} {:>7} {:>10} {:>10} {:>10} {:>12} {:>9}  breaker",
        "t", "errors", "fast 10s", "fast 2s", "slow 30s", "budget left", "fallback"
    )?;
    let mut fallbacks = 0u32;
    for t in 1..=30u32 {
        let failing = (10..22).contains(&t);
        for i in 0..20u32 {
            match breaker.acquire() {
                Ok(permit) => {
                    let good = !(failing && i % 4 == 0);
                    slo.record(good);
                    if good {
                        permit.success();
                    } else {
                        permit.failure();
                    }
                }
                Err(_) => {
                    // The caller serves the breaker's static fallback instead.
                    let _body = breaker.fallback().map(|f| f.body());
                    fallbacks += 1;
                }
            }
            time.advance(Duration::from_millis(50));
        }
        let m = slo.tick();
        let notes: Vec<String> = events
            .by_ref()
            .filter_map(|e| match e.kind {
                EventKind::SloBurn { fast, burn_rate } => Some(format!(
                    "SloBurn({}, {burn_rate:.1})",
                    if fast { "fast" } else { "slow" }
                )),
                EventKind::SloRecovered { fast, burn_rate } => Some(format!(
                    "SloRecovered({}, {burn_rate:.1})",
                    if fast { "fast" } else { "slow" }
                )),
                EventKind::Transition { from, to, .. } => Some(format!("{from}->{to}")),
                _ => None,
            })
            .collect();
        if t % 3 == 0 || !notes.is_empty() {
            writeln!(
                out,
                "{t:>3}s {:>7} {:>10.1} {:>10} {:>10.1} {:>11.0}% {fallbacks:>9}  {:<11} {}",
                if failing { "25 %" } else { "0 %" },
                m.fast.long_burn,
                // An empty short window is "no data", not a burn of 0.
                if m.fast.short_calls == 0 {
                    "no data".to_string()
                } else {
                    format!("{:.1}", m.fast.short_burn)
                },
                m.slow.long_burn,
                100.0 * m.budget_remaining_fraction,
                breaker.state().as_str(),
                notes.join(" "),
            )?;
        }
    }
    let m = slo.metrics();
    writeln!(
        out,
        "end: {} calls in the SLO window, {} bad, budget {:.1} of {:.1} bad calls left; \
         {fallbacks} calls served the fallback ({}); breaker {}",
        m.calls,
        m.bad,
        m.budget_remaining,
        m.budget_allowed,
        breaker.fallback().map_or("none", |f| f.content_type()),
        breaker.state(),
    )?;
    Ok(())
}
