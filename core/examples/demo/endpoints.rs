//! Demo section: per-endpoint breakers. One keyed breaker guards every endpoint of a
//! dependency; `/search` goes down for a while, its breaker opens and probes its way back,
//! and the other endpoints never notice. The transition events name the endpoint, and a
//! sweep evicts the endpoints nobody called for a while (never an open one). Mock clock.

use std::io::Write;
use std::time::Duration;

use surgewall::breaker::keyed::{KeyedBreaker, KeyedRejected};
use surgewall::clock::Clock;
use surgewall::events::{EventKind, EventRing};
use surgewall::{BreakerConfig, State};

const ENDPOINTS: [&str; 4] = ["/search", "/cart", "/users", "/pay"];

/// Runs the endpoints demo, writing a timeline to `out`.
pub fn run(out: &mut impl Write) -> std::io::Result<()> {
    let (clock, time) = Clock::mock();
    let ring = EventRing::new(64);
    let mut events = ring.subscribe();
    let template = BreakerConfig::builder()
        .failure_rate(0.5)
        .minimum_calls(10)
        .time_window(Duration::from_secs(10), 2)
        .open_for(Duration::from_secs(2))
        .half_open_calls(2)
        .build()
        .expect("a valid template");
    let endpoints = KeyedBreaker::<&str>::builder(template)
        .max_keys(1000)
        .idle_ttl(Duration::from_secs(5))
        .clock(clock)
        .events(ring)
        .build()
        .expect("the template fits a keyed breaker");
    let name_of = |key: u64| {
        ENDPOINTS
            .iter()
            .chain(&["/old-report"])
            .find(|e| endpoints.event_key(e) == key)
            .copied()
            .unwrap_or("?")
    };

    writeln!(
        out,
        "== per-endpoint breakers: 50 % over 10 s once 10 calls are in; /search fails from t=2 s to t=6 s =="
    )?;
    writeln!(
        out,
        "{:>3}  {:<26}{:<26}{:<26}{:<26}events",
        "t", ENDPOINTS[0], ENDPOINTS[1], ENDPOINTS[2], ENDPOINTS[3]
    )?;
    // A report endpoint called once at the start, then never again: swept away later.
    endpoints
        .try_acquire(&"/old-report")
        .expect("admitted")
        .success();
    let mut opened_by = Vec::new();
    for t in 0..12u64 {
        let mut cells = Vec::new();
        for endpoint in ENDPOINTS {
            let down = endpoint == "/search" && (2..6).contains(&t);
            let (mut ok, mut failed, mut rejected) = (0, 0, 0);
            for _ in 0..10 {
                match endpoints.try_acquire(&endpoint) {
                    Ok(permit) if down => {
                        permit.failure();
                        failed += 1;
                    }
                    Ok(permit) => {
                        permit.success();
                        ok += 1;
                    }
                    Err(KeyedRejected::Rejected(_)) => rejected += 1,
                    Err(KeyedRejected::TooManyKeys(_)) => unreachable!("1000 keys are allowed"),
                }
            }
            let state = endpoints.state(&endpoint).unwrap_or(State::Closed);
            cells.push(format!(
                "{:<11} {ok:>2}/{failed:>2}/{rejected:>2}",
                state.to_string()
            ));
        }
        endpoints.sweep(endpoints.clock().now_ns());
        let mut what = Vec::new();
        for e in events.by_ref() {
            match e.kind {
                EventKind::KeyedTransition { key, from, to, .. } => {
                    if to == State::Open {
                        opened_by.push(name_of(key));
                    }
                    what.push(format!("{} {from}->{to}", name_of(key)))
                }
                EventKind::Evicted { key } => what.push(format!("{} evicted", name_of(key))),
                _ => {}
            }
        }
        writeln!(
            out,
            "{t:>2}s  {:<26}{:<26}{:<26}{:<26}{}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            what.join(", ")
        )?;
        time.advance(Duration::from_secs(1));
    }
    let m = endpoints.metrics();
    let opened: u64 = m
        .transitions
        .iter()
        .map(|row| row[State::Open as usize])
        .sum();
    writeln!(
        out,
        "cells: ok/failed/rejected per second; {} keys held, {} evicted; {opened} openings, all of /search",
        m.registry.keys, m.registry.evicted
    )?;
    Ok(())
}
