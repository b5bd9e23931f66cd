//! SLO behaviour; the budget and burn arithmetic against a plain log of outcomes.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::clock::MockClock;
use crate::BreakerConfig;

const S: Duration = Duration::from_secs(1);

/// 99 % over 60 s in 1 s buckets; fast 10 s / 2 s at 10, slow 30 s / 5 s at 5.
fn config() -> SloConfigBuilder {
    SloConfig::builder()
        .objective(0.99)
        .window(S * 60)
        .budget_buckets(60)
        .burn_bucket(S)
        .fast_burn(S * 10, S * 2, 10.0)
        .slow_burn(S * 30, S * 5, 5.0)
        .min_open(S * 5)
}

fn tracker(c: SloConfig, breaker: Option<Arc<Breaker>>) -> (SloTracker, MockClock, EventRing) {
    let (clock, time) = Clock::mock();
    let ring = EventRing::new(64);
    let mut b = SloTracker::builder(c).clock(clock).events(ring.clone());
    if let Some(br) = breaker {
        b = b.breaker(br);
    }
    (b.build(), time, ring)
}

/// `n` calls, `bad_every`-th of them bad, spread over `over`.
fn traffic(slo: &SloTracker, time: &MockClock, n: u32, bad_every: u32, over: Duration) {
    for i in 0..n {
        slo.record(bad_every == 0 || i % bad_every != 0);
        time.advance(over / n);
    }
}

#[test]
fn the_budget_counts_allowed_remaining_and_overspent() {
    let (slo, time, _) = tracker(config().build().unwrap(), None);
    assert_eq!(slo.metrics().budget_remaining_fraction, 1.0);
    traffic(&slo, &time, 1000, 0, S * 10);
    slo.record(false);
    slo.record(false);
    let m = slo.metrics();
    assert_eq!((m.calls, m.bad), (1002, 2));
    assert!((m.budget_allowed - 10.02).abs() < 1e-9);
    assert!((m.budget_remaining - 8.02).abs() < 1e-9);
    assert!((m.budget_remaining_fraction - 8.02 / 10.02).abs() < 1e-12);
    for _ in 0..20 {
        slo.record(false);
    }
    assert!(
        slo.metrics().budget_remaining < 0.0,
        "overspent reads negative"
    );
    time.advance(S * 61);
    let m = slo.metrics();
    assert_eq!(
        (m.calls, m.budget_remaining_fraction),
        (0, 1.0),
        "the window rolled"
    );
}

#[test]
fn a_fast_burn_fires_once_and_recovers_once_with_hysteresis() {
    let (slo, time, ring) = tracker(config().build().unwrap(), None);
    let mut sub = ring.subscribe();
    traffic(&slo, &time, 100, 5, S * 10); // 20 % bad: burn 20 in every window
    let m = slo.tick();
    assert!(m.fast.burning && m.slow.burning);
    assert!(
        (m.fast.long_burn - 20.0).abs() < 1e-9,
        "{}",
        m.fast.long_burn
    );
    slo.tick(); // still burning: no second event
    let kinds: Vec<_> = sub.by_ref().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::SloBurn {
                fast: true,
                burn_rate: m.fast.long_burn
            },
            EventKind::SloBurn {
                fast: false,
                burn_rate: m.slow.long_burn
            },
        ]
    );
    // 7 % bad for 3 s: the short window burns 7 — under 10, above the recovery line of 5.
    traffic(&slo, &time, 300, 14, S * 3);
    let m = slo.tick();
    assert!(
        m.fast.short_burn < 10.0 && m.fast.short_burn >= 5.0,
        "{}",
        m.fast.short_burn
    );
    assert!(m.fast.burning, "inside the hysteresis band it keeps firing");
    assert!(sub.poll().is_none());
    // Clean traffic: the short window drops below 5 and the fast pair recovers.
    traffic(&slo, &time, 300, 0, S * 3);
    let m = slo.tick();
    assert!(!m.fast.burning);
    let e = sub.poll().unwrap();
    assert_eq!(
        (e.source, e.kind),
        (
            slo.id(),
            EventKind::SloRecovered {
                fast: true,
                burn_rate: m.fast.long_burn
            }
        )
    );
    // The slow pair's 5 s window is clean enough too: it recovers in the same tick.
    assert!(!m.slow.burning);
    assert_eq!(
        sub.poll().unwrap().kind,
        EventKind::SloRecovered {
            fast: false,
            burn_rate: m.slow.long_burn
        }
    );
    assert_eq!((m.burn_events, m.recovered_events), (2, 2));
}

#[test]
fn min_calls_keeps_a_single_error_from_firing() {
    let (slo, _time, _) = tracker(config().min_calls(20).build().unwrap(), None);
    slo.record(false);
    let m = slo.tick();
    assert!(m.fast.long_burn > 10.0 && !m.fast.burning);
}

#[test]
fn a_fast_burn_holds_the_breaker_open_for_at_least_min_open() {
    let (clock, time) = Clock::mock();
    let breaker = Arc::new(
        Breaker::builder("api", BreakerConfig::default())
            .clock(clock.clone())
            .events(EventRing::new(64))
            .build(),
    );
    let slo = SloTracker::builder(config().min_open(S * 20).build().unwrap())
        .clock(clock)
        .breaker(breaker.clone())
        .build();
    traffic(&slo, &time, 100, 2, S * 5);
    assert!(slo.tick().holding_breaker);
    assert_eq!(breaker.state(), State::ForcedOpen);
    // No calls get through; after 10 s the short and long windows are empty and the pair
    // recovers, but min_open (20 s) is not over.
    time.advance(S * 11);
    let m = slo.tick();
    assert!(!m.fast.burning && m.holding_breaker);
    assert_eq!(breaker.state(), State::ForcedOpen);
    time.advance(S * 9);
    assert!(!slo.tick().holding_breaker);
    assert_eq!(
        breaker.state(),
        State::HalfOpen,
        "handed back to the probes"
    );
}

#[test]
fn a_breaker_moved_by_somebody_else_is_left_alone() {
    let (clock, time) = Clock::mock();
    let breaker = Arc::new(
        Breaker::builder("api", BreakerConfig::default())
            .clock(clock.clone())
            .build(),
    );
    let slo = SloTracker::builder(config().build().unwrap())
        .clock(clock)
        .breaker(breaker.clone())
        .build();
    traffic(&slo, &time, 100, 2, S * 5);
    slo.tick();
    breaker.disable(); // an operator
    time.advance(S * 30);
    assert!(!slo.tick().holding_breaker);
    assert_eq!(breaker.state(), State::Disabled);
}

#[test]
fn configuration_errors_name_the_field() {
    let f = |b: SloConfigBuilder| b.build().unwrap_err().field();
    let b = config;
    assert_eq!(f(b().objective(f64::NAN)), "objective");
    assert_eq!(f(b().objective(0.0)), "objective");
    assert_eq!(f(b().objective(1.5)), "objective");
    assert_eq!(f(b().window(Duration::ZERO)), "window");
    assert_eq!(f(b().window(S * 20)), "window"); // shorter than the slow pair's 30 s
    assert_eq!(f(b().budget_buckets(0)), "budget_buckets");
    assert_eq!(f(b().burn_bucket(Duration::ZERO)), "burn_bucket");
    assert_eq!(f(b().burn_bucket(Duration::from_nanos(1))), "burn_bucket");
    assert_eq!(f(b().fast_burn(S, S * 2, 10.0)), "fast_burn.short");
    assert_eq!(f(b().fast_burn(Duration::ZERO, S, 10.0)), "fast_burn.long");
    assert_eq!(f(b().slow_burn(S * 30, S * 5, -1.0)), "slow_burn.threshold");
    assert_eq!(f(b().slow_burn(S * 30, S * 5, 0.0)), "slow_burn.threshold");
    assert_eq!(f(b().recovery_factor(0.0)), "recovery_factor");
    assert_eq!(f(b().recovery_factor(1.1)), "recovery_factor");
}

proptest! {
    /// Budget and burn arithmetic equal a direct computation over a plain log.
    #[test]
    fn budget_and_burn_match_a_reference_log(
        events in proptest::collection::vec((0u64..3_000, any::<bool>()), 1..300),
        objective in 0.5f64..0.9999,
    ) {
        let (slo, time, _) = tracker(config().objective(objective).build().unwrap(), None);
        let mut log: Vec<(u64, bool)> = vec![];
        for (advance_ms, good) in events {
            time.advance(Duration::from_millis(advance_ms));
            slo.record(good);
            log.push((time.now_ns(), good));
            let now = time.now_ns();
            let sec = now / 1_000_000_000;
            // A window of n one-second buckets holds the outcomes of seconds (sec - n, sec].
            let count = |n: u64| {
                let inside: Vec<_> = log.iter().filter(|&&(t, _)| t / 1_000_000_000 + n > sec).collect();
                (inside.len() as u64, inside.iter().filter(|&&&(_, g)| !g).count() as u64)
            };
            let burn = |(calls, bad): (u64, u64)| if calls == 0 { 0.0 } else { bad as f64 / calls as f64 / (1.0 - objective) };
            let m = slo.metrics();
            let (calls, bad) = count(60);
            prop_assert_eq!((m.calls, m.bad), (calls, bad));
            let allowed = (1.0 - objective) * calls as f64;
            prop_assert_eq!(m.budget_allowed, allowed);
            prop_assert_eq!(m.budget_remaining, allowed - bad as f64);
            if calls > 0 {
                prop_assert_eq!(m.budget_remaining_fraction, (allowed - bad as f64) / allowed);
            }
            prop_assert_eq!(m.fast.long_burn, burn(count(10)));
            prop_assert_eq!(m.fast.short_burn, burn(count(2)));
            prop_assert_eq!(m.slow.long_burn, burn(count(30)));
            prop_assert_eq!(m.slow.short_burn, burn(count(5)));
        }
    }
}
