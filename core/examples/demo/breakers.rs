//! A breaker in front of a flaky dependency: healthy, an outage, a slow spell, recovery.

use std::io::Write;
use std::time::Duration;

use surgewall::clock::Clock;
use surgewall::events::{EventKind, EventRing};
use surgewall::{Breaker, BreakerConfig, Outcome};

/// One phase of the simulated dependency.
struct Phase {
    name: &'static str,
    until_s: u64,
    failure_per_mille: u64,
    latency_ms: u64,
}

const PHASES: [Phase; 5] = [
    Phase {
        name: "healthy",
        until_s: 8,
        failure_per_mille: 20,
        latency_ms: 20,
    },
    Phase {
        name: "failing (90 % errors)",
        until_s: 12,
        failure_per_mille: 900,
        latency_ms: 5,
    },
    Phase {
        name: "healthy again",
        until_s: 18,
        failure_per_mille: 10,
        latency_ms: 25,
    },
    Phase {
        name: "slow (800 ms)",
        until_s: 26,
        failure_per_mille: 0,
        latency_ms: 800,
    },
    Phase {
        name: "healthy again",
        until_s: 34,
        failure_per_mille: 10,
        latency_ms: 25,
    },
];

/// A tiny deterministic generator (the demo must print the same thing every time).
struct Lcg(u64);

impl Lcg {
    fn per_mille(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % 1000
    }
}

pub fn run(out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "== 1. A circuit breaker in front of a flaky dependency =="
    )?;
    writeln!(
        out,
        "payments: trip at 50 % failures or 80 % slow calls (>= 500 ms) once 20 calls are in a\n\
         5 s window; open 2 s, doubling per consecutive opening up to 8 s; 3 probes.\n\
         100 calls/s of simulated traffic, simulated time.\n"
    )?;
    let (clock, time) = Clock::mock();
    let ring = EventRing::new(64);
    let config = BreakerConfig::builder()
        .failure_rate(0.5)
        .slow_calls(0.8, Duration::from_millis(500))
        .minimum_calls(20)
        .time_window(Duration::from_secs(5), 10)
        .open_for(Duration::from_secs(2))
        .open_backoff(2.0, Duration::from_secs(8), 0.0)
        .half_open_calls(3)
        .build()
        .expect("valid config");
    let breaker = Breaker::builder("payments", config)
        .clock(clock)
        .events(ring.clone())
        .build();
    let mut events = ring.subscribe();
    let start = time.now_ns();
    let secs = |ns: u64| (ns - start) as f64 / 1e9;

    let mut rng = Lcg(7);
    let (mut served, mut rejected) = (0u64, 0u64);
    let mut phase_idx = usize::MAX;
    for tick in 0..(PHASES[PHASES.len() - 1].until_s * 100) {
        let now_s = tick / 100;
        let (i, phase) = PHASES
            .iter()
            .enumerate()
            .find(|(_, p)| now_s < p.until_s)
            .expect("a phase");
        if i != phase_idx {
            phase_idx = i;
            writeln!(
                out,
                "{:>6.2}s  -- the dependency is now {} --",
                secs(time.now_ns()),
                phase.name
            )?;
        }
        match breaker.acquire() {
            Ok(permit) => {
                served += 1;
                let outcome = if rng.per_mille() < phase.failure_per_mille {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                permit.record_with_duration(outcome, Duration::from_millis(phase.latency_ms));
            }
            Err(_) => rejected += 1,
        }
        time.advance(Duration::from_millis(10));

        for e in events.by_ref() {
            if let EventKind::Transition {
                from, to, reason, ..
            } = e.kind
            {
                let m = breaker.metrics();
                let detail = match to {
                    surgewall::State::Open => format!(
                        "  (last window: {} calls, {} failed, {} slow; retry after {:.1?})",
                        m.last_window.calls,
                        percent(m.last_failure_rate),
                        percent(m.last_slow_call_rate),
                        m.retry_after.unwrap_or_default()
                    ),
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "{:>6.2}s  {:>9} -> {:<9} because {}{}",
                    secs(e.at_ns),
                    from.as_str(),
                    to.as_str(),
                    reason.as_str(),
                    detail
                )?;
            }
        }
        if (tick + 1) % 400 == 0 {
            let m = breaker.metrics();
            writeln!(
                out,
                "{:>6.2}s  [{}] window {} calls, {} failed, {} slow | served {served}, rejected {rejected}",
                secs(time.now_ns()),
                m.state,
                m.window.calls,
                percent(m.failure_rate),
                percent(m.slow_call_rate),
            )?;
        }
    }
    let m = breaker.metrics();
    writeln!(
        out,
        "\ntotals: {} successes, {} failures, {} slow, {} rejected while open, {} while half-open full; \
         {} transitions; ends {}.\n",
        m.successes,
        m.failures,
        m.slow_calls,
        m.rejected_open,
        m.rejected_half_open,
        m.transitions.iter().flatten().sum::<u64>(),
        m.state
    )?;
    Ok(())
}

/// A rate as a percentage, or "n/a" while the window holds too few calls to judge it.
fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_string(), |r| format!("{:.0} %", r * 100.0))
}
