//! The Rust runner of the shared semantic scenarios (`bindings/scenarios.txt`).
//!
//! The C, Python and Go suites run the same file through their bindings; all must agree.

use std::collections::HashMap;
use std::time::Duration;

use surgewall::clock::{Clock, MockClock};
use surgewall::{
    Breaker, BreakerConfig, BreakerMetrics, Outcome, RawPermit, Recorded, RejectReason,
};

struct Run {
    breaker: Breaker,
    time: MockClock,
    held: HashMap<String, RawPermit>,
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
        breaker: Breaker::builder("scenario", b.build().expect("scenario config"))
            .clock(clock)
            .build(),
        time,
        held: HashMap::new(),
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
        _ => panic!("unknown metric {key}"),
    }
}

fn step(run: &mut Run, words: &[&str], at: &str) {
    let b = &run.breaker;
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
        "half_open" => {
            let refused = words.get(2) == Some(&"refused");
            assert_eq!(b.half_open().is_err(), refused, "{at}");
        }
        "expect" => {
            let m = b.metrics();
            for w in &words[1..] {
                let (k, v) = w.split_once('=').expect("key=value");
                assert_eq!(metric(&m, k), v, "{at}: {k}");
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
