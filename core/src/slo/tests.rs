//! SLO behaviour; the budget and burn arithmetic against a plain log of outcomes.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::clock::MockClock;
use crate::BreakerConfig;

const S: Duration = Duration::from_secs(1);

/// 99 % over 60 s in 1 s budget buckets; fast 10 s / 2 s at 10, slow 30 s / 5 s at 5; burn
/// buckets derived (200 ms, a tenth of the shortest window).
fn config() -> SloConfigBuilder {
    SloConfig::builder()
        .objective(0.99)
        .window(S * 60)
        .budget_buckets(60)
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
                burn_rate: m.fast.long_burn.min(m.fast.short_burn)
            },
            EventKind::SloBurn {
                fast: false,
                burn_rate: m.slow.long_burn.min(m.slow.short_burn)
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
    // Clean traffic for 5 s: the short windows drop below the recovery lines, both recover.
    traffic(&slo, &time, 500, 0, S * 5);
    let m = slo.tick();
    assert!(!m.fast.burning);
    let e = sub.poll().unwrap();
    assert_eq!(
        (e.source, e.kind),
        (
            slo.id(),
            EventKind::SloRecovered {
                fast: true,
                burn_rate: m.fast.short_burn
            }
        )
    );
    // The slow pair's 5 s window is clean enough too: it recovers in the same tick.
    assert!(!m.slow.burning);
    assert_eq!(
        sub.poll().unwrap().kind,
        EventKind::SloRecovered {
            fast: false,
            burn_rate: m.slow.short_burn
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

fn linked(c: SloConfig, half_open_calls: u32) -> (SloTracker, Arc<Breaker>, MockClock, EventRing) {
    let (clock, time) = Clock::mock();
    let ring = EventRing::new(256);
    let breaker = Arc::new(
        Breaker::builder(
            "api",
            BreakerConfig::builder()
                .failure_rate(0.5)
                .minimum_calls(100)
                .half_open_calls(half_open_calls)
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .events(ring.clone())
        .build(),
    );
    let slo = SloTracker::builder(c)
        .clock(clock)
        .events(ring.clone())
        .breaker(breaker.clone())
        .build();
    (slo, breaker, time, ring)
}

/// `n` calls through the breaker (those it admits), every `bad_every`-th bad, over `over`;
/// both the breaker and the tracker see each admitted call.
fn guarded(
    slo: &SloTracker,
    b: &Breaker,
    time: &MockClock,
    n: u32,
    bad_every: u32,
    over: Duration,
) {
    for i in 0..n {
        if let Ok(p) = b.acquire() {
            let good = bad_every == 0 || i % bad_every != 0;
            slo.record(good);
            p.record(if good {
                Outcome::Success
            } else {
                Outcome::Failure
            });
        }
        time.advance(over / n);
    }
}

#[test]
fn a_fast_burn_holds_the_breaker_open_for_at_least_min_open() {
    let (slo, breaker, time, _) = linked(config().min_open(S * 20).build().unwrap(), 3);
    traffic(&slo, &time, 100, 2, S * 5);
    assert!(slo.tick().holding_breaker);
    assert_eq!(breaker.state(), State::ForcedOpen);
    // No calls get through; after 11 s both fast windows are empty: no data, so the pair
    // keeps firing (it used to "recover" here) and min_open (20 s) is not over anyway.
    time.advance(S * 11);
    let m = slo.tick();
    assert!(m.fast.burning && m.holding_breaker);
    assert_eq!((m.fast.short_calls, m.recovered_events), (0, 0));
    assert_eq!(breaker.state(), State::ForcedOpen);
    // min_open is over and the short window holds nothing: the probe rule hands the breaker
    // to its probes; the pair still fires (no evidence either way yet).
    time.advance(S * 9);
    let m = slo.tick();
    assert!(!m.holding_breaker && m.fast.burning);
    assert_eq!(breaker.state(), State::HalfOpen, "handed to the probes");
}

#[test]
fn an_empty_window_is_no_data_and_recovers_nothing() {
    // 60 s of 30 % errors, then 61 s without a call.
    let c = config()
        .window(S * 120)
        .fast_burn(S * 60, S * 10, 10.0)
        .slow_burn(S * 120, S * 20, 5.0)
        .build()
        .unwrap();
    let (slo, time, ring) = tracker(c, None);
    let mut sub = ring.subscribe();
    traffic(&slo, &time, 6000, 10, S * 60); // every 10th bad... 10 %: burn 10
    traffic(&slo, &time, 3000, 2, S * 30); // 50 %: the last 30 s burn 50
    let m = slo.tick();
    assert!(m.fast.burning);
    time.advance(S * 61);
    let m = slo.tick();
    assert!(m.fast.burning, "an empty short window is not a recovery");
    assert_eq!((m.fast.short_calls, m.recovered_events), (0, 0));
    let kinds: Vec<_> = sub.by_ref().map(|e| e.kind).collect();
    assert!(
        kinds.iter().all(|k| matches!(k, EventKind::SloBurn { .. })),
        "{kinds:?}"
    );
}

#[test]
fn the_event_reports_the_burn_that_decided() {
    let (slo, time, ring) = tracker(config().build().unwrap(), None);
    let mut sub = ring.subscribe();
    traffic(&slo, &time, 800, 2, S * 8); // 50 % for 8 s: burn 50
    traffic(&slo, &time, 200, 8, S * 2); // 12.5 % for the last 2 s: burn 12.5
    let m = slo.tick();
    assert!(m.fast.burning && m.fast.long_burn > 40.0);
    assert_eq!(
        sub.poll().unwrap().kind,
        EventKind::SloBurn {
            fast: true,
            burn_rate: m.fast.short_burn
        },
        "the short window decided (the slower burn), not the long one"
    );
    assert!(
        (m.fast.short_burn - 12.5).abs() < 1e-9,
        "{}",
        m.fast.short_burn
    );
}

#[test]
fn the_recovery_factor_is_the_hysteresis() {
    // The same traffic: 20 % bad, then 7 % bad in the short window (burn 7: under the
    // threshold 10, above 10 x 0.5).
    let run = |factor: f64| {
        let (slo, time, _) = tracker(config().recovery_factor(factor).build().unwrap(), None);
        traffic(&slo, &time, 100, 5, S * 10);
        assert!(slo.tick().fast.burning);
        traffic(&slo, &time, 300, 14, S * 3);
        let m = slo.tick();
        assert!(m.fast.short_burn > 5.0 && m.fast.short_burn < 10.0);
        m.fast.burning
    };
    assert!(run(0.5), "inside the band it keeps firing");
    assert!(!run(1.0), "without hysteresis it recovers");
    assert!(!run(0.75), "burn 7.1 < 7.5 recovers");
}

#[test]
fn the_held_breaker_stays_held_until_the_probes_bring_evidence() {
    let c = config().min_open(S * 5).build().unwrap();
    // Probes that succeed: the breaker closes, good calls fill the short window, recovered.
    let (slo, breaker, time, _) = linked(c, 3);
    traffic(&slo, &time, 100, 4, S * 2); // 25 %: burn 25
    assert!(slo.tick().holding_breaker);
    for _ in 0..10 {
        guarded(&slo, &breaker, &time, 20, 0, S);
        let m = slo.tick();
        assert_eq!(m.recovered_events, 0, "no recovery while nothing is called");
        if !m.holding_breaker {
            break;
        }
        assert_eq!(breaker.state(), State::ForcedOpen);
    }
    assert_eq!(breaker.state(), State::HalfOpen);
    guarded(&slo, &breaker, &time, 20, 0, S);
    let m = slo.tick();
    assert_eq!(breaker.state(), State::Closed);
    assert!(!m.fast.burning && m.recovered_events >= 1, "{m:?}");

    // Probes into a dependency still failing at 25 %: the breaker's own rule (50 %) lets them
    // close it, the short window burns 25 >= 10 and the tracker holds the breaker again.
    let (slo, breaker, time, _) = linked(c, 3);
    traffic(&slo, &time, 100, 4, S * 2);
    slo.tick();
    time.advance(S * 6);
    assert!(!slo.tick().holding_breaker);
    assert_eq!(breaker.state(), State::HalfOpen);
    guarded(&slo, &breaker, &time, 20, 4, S);
    let m = slo.tick();
    assert!(m.fast.burning && m.holding_breaker, "{m:?}");
    assert_eq!(breaker.state(), State::ForcedOpen);
    // Each pair fired once (fast and slow); nothing recovered, nothing fired twice.
    assert_eq!((m.burn_events, m.recovered_events), (2, 0));
}

#[test]
fn a_burn_window_covers_its_length_at_every_instant() {
    // SLO(0.99, window=300, fast_burn=BurnWindows(long=60, short=10, threshold=10)) at a
    // steady 100 calls/s: the bucket is 1 s (10 s / 10).
    for long in [60u32, 120] {
        let c = SloConfig::builder()
            .objective(0.99)
            .window(S * 300)
            .fast_burn(S * long, S * 10, 10.0)
            .slow_burn(S * 300, S * 30, 6.0)
            .build()
            .unwrap();
        assert_eq!(c.burn_bucket(), S);
        let (slo, time, _) = tracker(c, None);
        for t in 1..=250u64 {
            traffic(&slo, &time, 100, 0, S);
            let m = slo.metrics();
            assert_eq!(m.burn_bucket, S);
            let want = 100 * t.min(u64::from(long));
            assert!(
                m.fast.long_calls >= want && m.fast.long_calls <= want + 100,
                "long={long} t={t}: {} calls, want {want}..={}",
                m.fast.long_calls,
                want + 100
            );
            let short = 100 * t.min(10);
            assert!(m.fast.short_calls >= short && m.fast.short_calls <= short + 100);
            // Half a second later (mid-bucket) the window still covers its length.
            if t == 110 {
                traffic(&slo, &time, 50, 0, S / 2);
                let m = slo.metrics();
                assert!(m.fast.long_calls >= want, "{}", m.fast.long_calls);
                traffic(&slo, &time, 50, 0, S / 2);
            }
        }
        if long == 60 {
            // The numbers: 5,500 calls at t=55 s, and at least 6,000 from then on.
            let (slo, time, _) = tracker(
                SloConfig::builder()
                    .objective(0.99)
                    .window(S * 300)
                    .fast_burn(S * 60, S * 10, 10.0)
                    .slow_burn(S * 300, S * 30, 6.0)
                    .build()
                    .unwrap(),
                None,
            );
            traffic(&slo, &time, 5500, 0, S * 55);
            assert_eq!(slo.metrics().fast.long_calls, 5500);
        }
    }
}

#[test]
fn a_threshold_fires_at_the_threshold() {
    // objective, threshold, bad calls out of 10,000 that burn exactly at the threshold.
    for (objective, threshold, bad) in [
        (0.999, 14.4, 144u32),
        (0.999, 6.0, 60),
        (0.99, 14.4, 1440),
        (0.99, 6.0, 600),
        (0.995, 14.4, 720),
        (0.995, 6.0, 300),
    ] {
        for (bad, fires) in [(bad, true), (bad - 1, false)] {
            let c = config()
                .objective(objective)
                .fast_burn(S * 10, S * 2, threshold)
                .slow_burn(S * 30, S * 5, threshold)
                .build()
                .unwrap();
            let (slo, _time, _) = tracker(c, None);
            for i in 0..10_000 {
                slo.record(i >= bad);
            }
            let m = slo.tick();
            assert_eq!(
                (m.fast.burning, m.slow.burning),
                (fires, fires),
                "{objective} {threshold} {bad}: burn {}",
                m.fast.long_burn
            );
            if fires {
                assert_eq!(m.fast.long_burn, threshold, "{objective} {bad}");
            }
        }
    }
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
    // The shortest window (2 s) must span at least 10 buckets.
    assert_eq!(
        f(b().burn_bucket(Duration::from_millis(201))),
        "burn_bucket"
    );
    assert!(b().burn_bucket(Duration::from_millis(200)).build().is_ok());
    assert_eq!(f(b().objective(1.0 - 1e-10)), "objective");
    assert_eq!(f(b().slow_burn(S * 30, S * 5, 1e-7)), "slow_burn.threshold");
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
            // The budget: n one-second buckets hold the outcomes of seconds (sec - n, sec].
            let count = |n: u64| {
                let inside: Vec<_> = log.iter().filter(|&&(t, _)| t / 1_000_000_000 + n > sec).collect();
                (inside.len() as u64, inside.iter().filter(|&&&(_, g)| !g).count() as u64)
            };
            // A burn window of L: the ceil(L / w) whole 200 ms buckets before the current one,
            // and the current one.
            let w = 200_000_000u64;
            let window = |l: u64| {
                let k = (l * 1_000_000_000).div_ceil(w);
                let inside: Vec<_> = log.iter().filter(|&&(t, _)| t / w + k >= now / w).collect();
                (inside.len() as u64, inside.iter().filter(|&&&(_, g)| !g).count() as u64)
            };
            let ppb = ((1.0 - objective) * 1e9).round();
            let burn = |(calls, bad): (u64, u64)| if calls == 0 { 0.0 } else { bad as f64 * 1e9 / (ppb * calls as f64) };
            let m = slo.metrics();
            let (calls, bad) = count(60);
            prop_assert_eq!((m.calls, m.bad), (calls, bad));
            let allowed = (1.0 - objective) * calls as f64;
            prop_assert_eq!(m.budget_allowed, allowed);
            prop_assert_eq!(m.budget_remaining, allowed - bad as f64);
            if calls > 0 {
                prop_assert_eq!(m.budget_remaining_fraction, (allowed - bad as f64) / allowed);
            }
            prop_assert_eq!(m.fast.long_burn, burn(window(10)));
            prop_assert_eq!(m.fast.short_burn, burn(window(2)));
            prop_assert_eq!(m.slow.long_burn, burn(window(30)));
            prop_assert_eq!(m.slow.short_burn, burn(window(5)));
        }
    }
}
