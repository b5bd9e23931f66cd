//! The Rust runner of the shared semantic scenarios (`bindings/scenarios.txt`).
//!
//! The C, Python and Go suites run the same file through their bindings; all must agree.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use surgewall::clock::{Clock, MockClock};
use surgewall::retry::ErrorClass;
use surgewall::{
    Backoff, Breaker, BreakerConfig, BreakerMetrics, Bulkhead, BulkheadConfig, ConfigError, Jitter,
    Outcome, RawPermit, Recorded, RejectReason, RetryBudget, RetryBudgetConfig, RetryPolicy,
    SloConfig, SloTracker, ThresholdAdjuster, ThresholdConfig,
};

struct Run {
    breaker: Arc<Breaker>,
    clock: Clock,
    time: MockClock,
    held: HashMap<String, RawPermit>,
    slo: Option<SloTracker>,
    retry: Option<RetryPolicy>,
    budget: Option<RetryBudget>,
    bulkhead: Option<Bulkhead>,
}

fn ms(v: &str) -> Duration {
    Duration::from_millis(v.parse().expect("milliseconds"))
}

fn outcome(s: &str) -> Outcome {
    match s {
        "success" => Outcome::Success,
        "failure" => Outcome::Failure,
        "ignored" => Outcome::Ignored,
        _ => panic!("unknown outcome {s}"),
    }
}

fn kv(words: &[&str]) -> HashMap<String, String> {
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (w.to_string(), String::new()),
        })
        .collect()
}

fn configure(words: &[&str]) -> Run {
    let kv = kv(words);
    let get = |k: &str| kv.get(k).map(String::as_str);
    let mut b = BreakerConfig::builder();
    if let Some(v) = get("failure_rate") {
        b = b.failure_rate(v.parse().unwrap());
    }
    if get("no_failure_rate").is_some() {
        b = b.no_failure_rate();
    }
    if let (Some(r), Some(d)) = (get("slow_rate"), get("slow_ms")) {
        b = b.slow_calls(r.parse().unwrap(), ms(d));
    }
    if let Some(v) = get("consecutive_failures") {
        b = b.consecutive_failures(v.parse().unwrap());
    }
    if let Some(v) = get("minimum_calls") {
        b = b.minimum_calls(v.parse().unwrap());
    }
    if let Some(v) = get("count_window") {
        b = b.count_window(v.parse().unwrap());
    }
    if let (Some(d), Some(n)) = (get("time_window_ms"), get("buckets")) {
        b = b.time_window(ms(d), n.parse().unwrap());
    }
    if let Some(v) = get("open_for_ms") {
        b = b.open_for(ms(v));
    }
    if let (Some(m), Some(x)) = (get("backoff"), get("max_open_ms")) {
        b = b.open_backoff(m.parse().unwrap(), ms(x), 0.0);
    }
    if let Some(v) = get("half_open_calls") {
        b = b.half_open_calls(v.parse().unwrap());
    }
    if let Some(v) = get("half_open_max_ms") {
        b = b.half_open_max_duration(ms(v));
    }
    let (clock, time) = Clock::mock();
    Run {
        breaker: Arc::new(
            Breaker::builder("scenario", b.build().expect("scenario config"))
                .clock(clock.clone())
                .build(),
        ),
        clock,
        time,
        held: HashMap::new(),
        slo: None,
        retry: None,
        budget: None,
        bulkhead: None,
    }
}

/// `LONG_MS/SHORT_MS/THRESHOLD`.
fn pair(v: &str) -> (Duration, Duration, f64) {
    let p: Vec<&str> = v.split('/').collect();
    (ms(p[0]), ms(p[1]), p[2].parse().unwrap())
}

fn slo(run: &Run, words: &[&str]) -> Result<SloTracker, ConfigError> {
    let kv = kv(words);
    let mut c = SloConfig::builder();
    for (k, v) in &kv {
        c = match k.as_str() {
            "objective" => c.objective(v.parse().unwrap()),
            "window_ms" => c.window(ms(v)),
            "fast" => {
                let (l, s, t) = pair(v);
                c.fast_burn(l, s, t)
            }
            "slow" => {
                let (l, s, t) = pair(v);
                c.slow_burn(l, s, t)
            }
            "burn_bucket_ms" => c.burn_bucket(ms(v)),
            "recovery" => c.recovery_factor(v.parse().unwrap()),
            "min_open_ms" => c.min_open(ms(v)),
            "link" => c,
            _ => panic!("unknown slo key {k}"),
        };
    }
    let mut b = SloTracker::builder(c.build()?).clock(run.clock.clone());
    if kv.contains_key("link") {
        b = b.breaker(run.breaker.clone());
    }
    Ok(b.build())
}

/// A retry policy from the scenario's keys (the rest the core's defaults), or the error its
/// build reports.
fn retry(run: &Run, words: &[&str]) -> Result<RetryPolicy, surgewall::ConfigError> {
    let kv = kv(words);
    let mut b = RetryPolicy::builder()
        .jitter(Jitter::None)
        .clock(run.clock.clone());
    for (k, v) in &kv {
        b = match k.as_str() {
            "max_attempts" => b.max_attempts(v.parse().unwrap()),
            "backoff" => {
                let p: Vec<&str> = v.split(':').collect();
                b.backoff(match p[0] {
                    "none" => Backoff::none(),
                    "constant" => Backoff::constant(ms(p[1])),
                    "linear" => Backoff::linear(ms(p[1]), ms(p[2])),
                    "exponential" => Backoff::exponential(ms(p[1]), p[2].parse().unwrap()),
                    o => panic!("unknown backoff {o}"),
                })
            }
            "max_delay_ms" => b.max_delay(ms(v)),
            "max_elapsed_ms" => b.max_elapsed(ms(v)),
            "max_retry_after_ms" => b.max_retry_after(ms(v)),
            _ => panic!("unknown retry key {k}"),
        };
    }
    b.build()
}

fn slo_metric(m: &surgewall::SloMetrics, key: &str) -> String {
    match key {
        "fast_long_calls" => m.fast.long_calls.to_string(),
        "fast_short_calls" => m.fast.short_calls.to_string(),
        "fast_burning" => m.fast.burning.to_string(),
        "slow_burning" => m.slow.burning.to_string(),
        "holding_breaker" => m.holding_breaker.to_string(),
        "burn_bucket_ms" => m.burn_bucket.as_millis().to_string(),
        _ => panic!("unknown slo metric {key}"),
    }
}

fn metric(m: &BreakerMetrics, key: &str) -> String {
    match key {
        "state" => m.state.as_str().to_string(),
        "generation" => m.generation.to_string(),
        "successes" => m.successes.to_string(),
        "failures" => m.failures.to_string(),
        "ignored" => m.ignored.to_string(),
        "slow" => m.slow_calls.to_string(),
        "rejected_open" => m.rejected_open.to_string(),
        "rejected_half_open" => m.rejected_half_open.to_string(),
        "late" => m.late_results.to_string(),
        "window_calls" => m.window.calls.to_string(),
        "window_failures" => m.window.failures.to_string(),
        "consecutive_opens" => m.consecutive_opens.to_string(),
        "last_window_calls" => m.last_window.calls.to_string(),
        "last_window_failures" => m.last_window.failures.to_string(),
        "minimum_calls" => m.minimum_calls.to_string(),
        "transitions" => m.transitions.iter().flatten().sum::<u64>().to_string(),
        "retry_after_ms" => m.retry_after.map_or(0, |d| d.as_millis()).to_string(),
        _ => panic!("unknown metric {key}"),
    }
}

/// A rate against `absent` or a number (within 1e-9).
fn assert_rate(got: Option<f64>, want: &str, at: &str) {
    match (got, want) {
        (None, "absent") => {}
        (Some(r), w) if w != "absent" => {
            let w: f64 = w.parse().expect("a rate");
            assert!((r - w).abs() < 1e-9, "{at}: {r} != {w}");
        }
        _ => panic!("{at}: {got:?} != {want}"),
    }
}

fn step(run: &mut Run, words: &[&str], at: &str) {
    let b = &run.breaker.clone();
    match words[0] {
        "call" => {
            let o = outcome(words[1]);
            let opts = kv(&words[2..]);
            let times = opts
                .keys()
                .find_map(|k| k.strip_prefix('x').map(|n| n.parse::<u32>().unwrap()))
                .unwrap_or(1);
            for _ in 0..times {
                let p = b
                    .try_acquire_raw()
                    .unwrap_or_else(|r| panic!("{at}: rejected: {r}"));
                match opts.get("ms") {
                    Some(d) => b.record_raw_with_duration(p, o, ms(d)),
                    None => b.record_raw(p, o),
                };
            }
        }
        "reject" => {
            let r = b
                .try_acquire_raw()
                .expect_err(&format!("{at}: admitted, expected a rejection"));
            let want = match words[1] {
                "open" => RejectReason::Open,
                "half_open" => RejectReason::HalfOpenFull,
                "forced_open" => RejectReason::ForcedOpen,
                w => panic!("unknown reason {w}"),
            };
            assert_eq!(r.reason, want, "{at}");
            if let Some(v) = kv(&words[2..]).get("retry_after_ms") {
                assert_eq!(r.retry_after, ms(v), "{at}");
            }
        }
        "hold" => {
            let p = b
                .try_acquire_raw()
                .unwrap_or_else(|r| panic!("{at}: rejected: {r}"));
            run.held.insert(words[1].to_string(), p);
        }
        "release" => {
            let p = run.held[words[1]];
            let got = b.record_raw(p, outcome(words[2]));
            let want = match words.get(4).copied().unwrap_or("counted") {
                "counted" => Recorded::Counted,
                "late" => Recorded::Late,
                "unexpected" => Recorded::Unexpected,
                w => panic!("unknown result {w}"),
            };
            assert_eq!(got, want, "{at}");
        }
        "advance" => run.time.advance(ms(words[1])),
        "force_open" => b.force_open(words.get(1).map(|v| ms(v))),
        "reset" => b.reset(),
        "disable" => b.disable(),
        "metrics_only" => b.metrics_only(),
        "close" => b.close(),
        "open" => b.open(),
        "half_open" => {
            let refused = words.get(2) == Some(&"refused");
            assert_eq!(b.half_open().is_err(), refused, "{at}");
        }
        "slo" => run.slo = Some(slo(run, &words[1..]).expect("scenario slo")),
        "slo_refused" => {
            let err = slo(run, &words[2..]).expect_err(&format!("{at}: accepted"));
            assert_eq!(err.field(), words[1], "{at}: {err}");
        }
        "record" => {
            let o = kv(&words[1..]);
            let n = |k: &str| o.get(k).map_or(0, |v| v.parse::<u64>().unwrap());
            let rounds = o
                .keys()
                .find_map(|k| k.strip_prefix('x').map(|n| n.parse::<u64>().unwrap()))
                .unwrap_or(1);
            let slo = run.slo.as_ref().expect("slo first");
            for _ in 0..rounds {
                (0..n("good")).for_each(|_| slo.record(true));
                (0..n("bad")).for_each(|_| slo.record(false));
                run.time.advance(Duration::from_millis(n("every_ms")));
            }
        }
        "tick" => {
            run.slo.as_ref().expect("slo first").tick();
        }
        "expect_slo" => {
            let m = run.slo.as_ref().expect("slo first").metrics();
            for w in &words[1..] {
                let (k, v) = w.split_once('=').expect("key=value");
                assert_eq!(slo_metric(&m, k), v, "{at}: {k}");
            }
        }
        "retry" => run.retry = Some(retry(run, &words[1..]).expect("scenario retry")),
        "retry_refused" => {
            let err = retry(run, &words[2..]).expect_err(&format!("{at}: accepted"));
            assert_eq!(err.field(), words[1], "{at}: {err}");
        }
        "run_retry" => {
            let o = kv(&words[1..]);
            let ra = o.get("retry_after_ms").map(|v| ms(v));
            let mut slept = vec![];
            let time = &run.time;
            let policy = run.retry.as_ref().expect("retry first");
            let sleep = |d: Duration| {
                slept.push(d.as_millis().to_string());
                time.advance(d);
            };
            let classify = |_: &()| ra.map_or(ErrorClass::Retryable, ErrorClass::RetryAfter);
            let reason = if o.get("guarded").map(String::as_str) == Some("true") {
                // Each attempt goes through the breaker; the schedule is breaker-aware.
                policy
                    .run_guarded(b, sleep, classify, |_| Err::<(), ()>(()))
                    .unwrap_err()
                    .reason
            } else {
                policy
                    .run(sleep, classify, |_| Err::<(), ()>(()))
                    .unwrap_err()
                    .reason
            };
            assert_eq!(slept.join(","), o["delays"], "{at}: delays");
            assert_eq!(reason.as_str(), o["stop"], "{at}: stop");
        }
        "preview_retry" => {
            let p = run.retry.as_ref().expect("retry first");
            let delays: Vec<String> = p.preview().map(|d| d.as_millis().to_string()).collect();
            assert_eq!(delays.join(","), kv(&words[1..])["delays"], "{at}: delays");
        }
        "bulkhead" => {
            let max = kv(&words[1..])["max"].parse().unwrap();
            let c = BulkheadConfig::builder().max_concurrent(max).build();
            run.bulkhead =
                Some(Bulkhead::builder("scenario", c.expect("scenario bulkhead")).build());
        }
        "bulkhead_take" => {
            let bh = run.bulkhead.as_ref().expect("bulkhead first");
            let full = words.get(2) == Some(&"full");
            assert_eq!(bh.try_acquire_raw().is_err(), full, "{at}");
        }
        "bulkhead_release" => {
            let bh = run.bulkhead.as_ref().expect("bulkhead first");
            assert_eq!(bh.release_raw(), Ok(()), "{at}");
        }
        "bulkhead_resize" => {
            let bh = run.bulkhead.as_ref().expect("bulkhead first");
            let refused = words.get(3) == Some(&"refused");
            let r = bh.set_max_concurrent(words[1].parse().unwrap());
            assert_eq!(r.is_err(), refused, "{at}: {r:?}");
        }
        "expect_bulkhead" => {
            let m = run.bulkhead.as_ref().expect("bulkhead first").metrics();
            for w in &words[1..] {
                let (k, v) = w.split_once('=').expect("key=value");
                let got = match k {
                    "active" => m.active,
                    "max_concurrent" => m.max_concurrent,
                    "accepted" => m.accepted,
                    "rejected" => m.rejected,
                    _ => panic!("unknown bulkhead metric {k}"),
                };
                assert_eq!(got.to_string(), v, "{at}: {k}");
            }
        }
        "budget" => {
            let o = kv(&words[1..]);
            let c = RetryBudgetConfig::new(
                o["ratio"].parse().unwrap(),
                o["floor"].parse().unwrap(),
                o["window_s"].parse().unwrap(),
            )
            .expect("scenario budget");
            run.budget = Some(RetryBudget::with_clock(
                c,
                run.clock.clone(),
                b.events().clone(),
            ));
        }
        "try_retry" => {
            let o = kv(&words[1..]);
            let n: usize = words[1][1..].parse().unwrap();
            let budget = run.budget.as_ref().expect("budget first");
            let granted = (0..n).filter(|_| budget.try_retry()).count();
            assert_eq!(granted.to_string(), o["granted"], "{at}: granted");
        }
        "threshold_refused" => {
            let o = kv(&words[2..]);
            let f = |k: &str| o[k].parse::<f64>().unwrap();
            let err = ThresholdConfig::new(f("target"), f("min"), f("max"), f("step"))
                .and_then(|c| ThresholdAdjuster::new(run.breaker.clone(), c))
                .expect_err(&format!("{at}: accepted"));
            assert_eq!(err.field(), words[1], "{at}: {err}");
        }
        "expect" => {
            let m = b.metrics();
            for w in &words[1..] {
                let (k, v) = w.split_once('=').expect("key=value");
                let rate = match k {
                    "failure_rate" => Some(m.failure_rate),
                    "last_failure_rate" => Some(m.last_failure_rate),
                    _ => None,
                };
                match rate {
                    Some(got) => assert_rate(got, v, &format!("{at}: {k}")),
                    None => assert_eq!(metric(&m, k), v, "{at}: {k}"),
                }
            }
        }
        other => panic!("{at}: unknown command {other}"),
    }
}

#[test]
fn shared_scenarios() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../bindings/scenarios.txt");
    let text = std::fs::read_to_string(path).expect("bindings/scenarios.txt");
    let mut run: Option<Run> = None;
    let mut name = String::new();
    let mut ran = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap().trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let at = format!("{name} (line {})", n + 1);
        match words[0] {
            "scenario" => name = words[1].to_string(),
            "config" => run = Some(configure(&words[1..])),
            "end" => {
                run = None;
                ran += 1;
            }
            _ => step(run.as_mut().expect("config first"), &words, &at),
        }
    }
    assert!(ran >= 15, "only {ran} scenarios ran");
}
