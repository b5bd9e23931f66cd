//! The agent end to end: a real server on 127.0.0.1, real HTTP over TCP.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use surgewall::breaker::keyed::KeyedBreaker;
use surgewall::bulkhead::keyed::KeyedBulkhead;
use surgewall::catalog::{KeyedBreakerView, KeyedBulkheadView};
use surgewall::clock::Clock;
use surgewall::{Breaker, BreakerConfig, Bulkhead, BulkheadConfig, State};
use surgewall_agent::{Agent, AgentError};

mod common;
use common::*;

#[test]
fn one_agent_per_process_and_stop_joins_and_stops_the_ticker() {
    let _turn = one_at_a_time();
    let agent = start(catalog());
    assert!(Agent::is_running());
    let again = Agent::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .start();
    assert!(
        matches!(again, Err(AgentError::AlreadyRunning)),
        "{again:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !surgewall::clock::is_ticking() {
        assert!(
            Instant::now() < deadline,
            "the agent ticks the coarse clock"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let addr = agent.local_addr();
    agent.stop().unwrap();
    assert!(!Agent::is_running());
    assert!(
        !surgewall::clock::is_ticking(),
        "a stopped agent no longer ticks"
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing serves after stop"
    );
    // And it can start again; dropping the handle stops it too.
    drop(start(catalog()));
    assert!(!Agent::is_running());
}

#[test]
fn a_taken_address_is_a_clear_error_and_leaves_no_agent_running() {
    let _turn = one_at_a_time();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    let err = Agent::builder().bind(addr).start().unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(!Agent::is_running());
}

#[test]
fn breakers_are_listed_read_and_moved_by_name_even_with_slashes() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let users = tripping("/api/users");
    let other = tripping("/api/users");
    catalog.join_breaker(&users);
    assert_eq!(catalog.join_breaker(&other), "/api/users~2");
    users.acquire().unwrap().failure();
    assert_eq!(users.state(), State::Open);
    let agent = start(catalog);
    let addr = agent.local_addr();

    let list = get(addr, "/api/resilience/circuit-breakers").json();
    let names: Vec<&str> = list["circuit_breakers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/api/users", "/api/users~2"]);

    let one = get(addr, "/api/resilience/circuit-breakers/%2Fapi%2Fusers");
    assert_eq!(one.status, 200, "{}", one.body);
    let one = one.json();
    assert_eq!(one["state"], "open");
    assert_eq!(one["totals"]["failures"], 1);
    assert!(one["retry_after_ms"].as_f64().unwrap() > 0.0);

    let reset = post(
        addr,
        "/api/resilience/circuit-breakers/%2Fapi%2Fusers/reset",
        "",
    );
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(
        users.state(),
        State::Closed,
        "the reset reached the breaker"
    );
    assert_eq!(reset.json()["state"], "closed");

    let forced = post(
        addr,
        "/api/resilience/circuit-breakers/%2Fapi%2Fusers~2/force-open",
        r#"{"duration_seconds": 30}"#,
    );
    assert_eq!(forced.status, 200, "{}", forced.body);
    assert_eq!(other.state(), State::ForcedOpen);
    let retry = other.metrics().retry_after.unwrap();
    // Deadlines are kept in whole microseconds, rounded up.
    let most = Duration::from_secs(30) + Duration::from_micros(1);
    assert!(
        retry > Duration::from_secs(29) && retry <= most,
        "{retry:?}"
    );

    assert_eq!(
        post(
            addr,
            "/api/resilience/circuit-breakers/%2Fapi%2Fusers/disable",
            ""
        )
        .status,
        200
    );
    assert_eq!(users.state(), State::Disabled);
    assert_eq!(
        post(
            addr,
            "/api/resilience/circuit-breakers/%2Fapi%2Fusers/metrics-only",
            ""
        )
        .status,
        200
    );
    assert_eq!(users.state(), State::MetricsOnly);
    let opened = post(
        addr,
        "/api/resilience/circuit-breakers/%2Fapi%2Fusers/open",
        "",
    );
    assert_eq!(opened.status, 200);
    assert_eq!(users.state(), State::Open);
    let r = users.acquire().unwrap_err();
    assert_eq!(
        r.reason,
        surgewall::RejectReason::Open,
        "a trip's OPEN, not forced"
    );
    assert!(r.retry_after > Duration::ZERO && r.retry_after < Duration::MAX);
    agent.stop().unwrap();
}

#[test]
fn errors_are_problem_details_with_the_right_status() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let b = tripping("payments");
    catalog.join_breaker(&b);
    let agent = start(catalog);
    let addr = agent.local_addr();

    let missing = get(addr, "/api/resilience/circuit-breakers/nope");
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .headers
            .contains("content-type: application/problem+json"),
        "{}",
        missing.headers
    );
    let p = missing.json();
    assert_eq!(p["status"], 404);
    assert!(p["detail"].as_str().unwrap().contains("nope"), "{p}");
    assert_eq!(get(addr, "/no/such/path").json()["status"], 404);

    let wrong_method = get(addr, "/api/resilience/circuit-breakers/payments/reset");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.json()["status"], 405);

    for bad in [
        r#"{"duration_seconds": -1}"#,
        r#"{"duration_seconds": 0}"#,
        r#"{"duration_seconds": 1e300}"#,
        r#"{"duration_seconds": "soon"}"#,
        r#"{"until": 3}"#,
        "{",
        "[null]",
        "[30]",
        "30",
    ] {
        let r = post(
            addr,
            "/api/resilience/circuit-breakers/payments/force-open",
            bad,
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.json()["status"], 400);
    }
    assert_eq!(b.state(), State::Closed, "a refused body changes nothing");

    let huge = format!(r#"{{"duration_seconds": 1{}}}"#, " ".repeat(20_000));
    let r = post(
        addr,
        "/api/resilience/circuit-breakers/payments/force-open",
        &huge,
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(b.state(), State::Closed);
    agent.stop().unwrap();
}

#[test]
fn metrics_are_read_at_scrape_time_in_both_formats() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let b = tripping("payments");
    let bulkhead = Arc::new(Bulkhead::new(
        "db",
        BulkheadConfig::builder().max_concurrent(4).build().unwrap(),
    ));
    catalog.join_breaker(&b);
    catalog.join_bulkhead(&bulkhead);
    let agent = start(catalog);
    let addr = agent.local_addr();

    b.acquire().unwrap().success();
    b.acquire().unwrap().success();
    let _slots = (
        bulkhead.try_acquire().unwrap(),
        bulkhead.try_acquire().unwrap(),
    );
    let text = get(addr, "/metrics");
    assert_eq!(text.status, 200);
    assert!(
        text.headers
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        text.headers
    );
    for (series, value) in [
        (
            r#"surgewall_circuit_breaker_requests_total{endpoint="payments",outcome="success"}"#,
            2.0,
        ),
        (
            r#"surgewall_circuit_breaker_requests_total{endpoint="payments",outcome="failure"}"#,
            0.0,
        ),
        (
            r#"surgewall_circuit_breaker_state{endpoint="payments"}"#,
            0.0,
        ),
        (r#"surgewall_bulkhead_active_calls{service="db"}"#, 2.0),
        (
            r#"surgewall_bulkhead_max_concurrent_calls{service="db"}"#,
            4.0,
        ),
    ] {
        assert_eq!(
            sample(&text.body, series),
            Some(value),
            "{series} in\n{}",
            text.body
        );
    }
    assert!(text
        .body
        .lines()
        .any(|l| l == "# TYPE surgewall_circuit_breaker_requests_total counter"));
    assert!(!text.body.contains("# EOF"));
    // 2 calls < minimum_calls 20: no rate sample ("not enough data"), never a 0.
    assert_eq!(
        sample(
            &text.body,
            r#"surgewall_circuit_breaker_window_minimum_calls{endpoint="payments"}"#
        ),
        Some(20.0)
    );
    assert_eq!(
        sample(
            &text.body,
            r#"surgewall_circuit_breaker_failure_rate{endpoint="payments"}"#
        ),
        None,
        "{}",
        text.body
    );
    let one = get(addr, "/api/resilience/circuit-breakers/payments").json();
    assert_eq!(one["minimum_calls"], 20);
    assert!(one["window"]["failure_rate"].is_null(), "{one}");
    assert!(one["last_window"]["failure_rate"].is_null(), "{one}");

    b.acquire().unwrap().failure();
    let timed = Arc::new(Breaker::new(
        "timed",
        BreakerConfig::builder()
            .slow_calls(0.9, Duration::from_secs(1))
            .build()
            .unwrap(),
    ));
    catalog.join_breaker(&timed);
    let p = timed.try_acquire_raw().unwrap();
    timed.record_raw_with_duration(p, surgewall::Outcome::Success, Duration::from_millis(30));
    let judged = Arc::new(Breaker::new(
        "judged",
        BreakerConfig::builder()
            .failure_rate(0.9)
            .minimum_calls(2)
            .build()
            .unwrap(),
    ));
    catalog.join_breaker(&judged);
    judged.acquire().unwrap().success();
    judged.acquire().unwrap().failure();
    let om = http(
        addr,
        &format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: application/openmetrics-text;version=1.0.0\r\nConnection: close\r\n\r\n"),
    );
    assert!(
        om.headers
            .contains("content-type: application/openmetrics-text"),
        "{}",
        om.headers
    );
    assert!(om.body.trim_end().ends_with("# EOF"));
    assert!(om
        .body
        .lines()
        .any(|l| l == "# TYPE surgewall_circuit_breaker_requests counter"));
    for (series, value) in [
        (
            r#"surgewall_circuit_breaker_state{endpoint="payments"}"#,
            1.0,
        ),
        (
            r#"surgewall_circuit_breaker_transitions_total{endpoint="payments",from="closed",to="open"}"#,
            1.0,
        ),
        // 30 ms: not in le=0.025, in le=0.05 and above (cumulative)
        (
            r#"surgewall_circuit_breaker_call_duration_seconds_bucket{le="0.025",endpoint="timed"}"#,
            0.0,
        ),
        (
            r#"surgewall_circuit_breaker_call_duration_seconds_bucket{le="0.05",endpoint="timed"}"#,
            1.0,
        ),
        (
            r#"surgewall_circuit_breaker_call_duration_seconds_bucket{le="+Inf",endpoint="timed"}"#,
            1.0,
        ),
        (
            r#"surgewall_circuit_breaker_call_duration_seconds_count{endpoint="timed"}"#,
            1.0,
        ),
        (
            r#"surgewall_circuit_breaker_call_duration_seconds_sum{endpoint="timed"}"#,
            0.03,
        ),
        // 2 calls = minimum_calls: the rates are judged, and exported.
        (
            r#"surgewall_circuit_breaker_failure_rate{endpoint="judged"}"#,
            0.5,
        ),
        (
            r#"surgewall_circuit_breaker_slow_call_rate{endpoint="judged"}"#,
            0.0,
        ),
    ] {
        assert_eq!(
            sample(&om.body, series),
            Some(value),
            "{series} in\n{}",
            om.body
        );
    }
    agent.stop().unwrap();
}

#[test]
fn the_agent_sweeps_listed_keyed_registries() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let (clock, time) = Clock::mock();
    let keyed = Arc::new(
        KeyedBreaker::<u64>::builder(BreakerConfig::default())
            .idle_ttl(Duration::from_secs(1))
            .clock(clock)
            .build()
            .unwrap(),
    );
    let view: Arc<dyn KeyedBreakerView> = keyed.clone();
    catalog.join_keyed_breaker("hosts", &view);
    keyed.try_acquire(&1).unwrap().success();
    time.advance(Duration::from_secs(5));
    let agent = start(catalog);
    let deadline = Instant::now() + Duration::from_secs(10);
    // The first sweep marks the key idle, a later one (a mock second on) evicts it.
    while !keyed.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the agent never swept the idle key"
        );
        time.advance(Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(5));
    }
    let summary = get(agent.local_addr(), "/api/resilience/keyed-circuit-breakers").json();
    assert_eq!(
        summary["keyed_circuit_breakers"][0]["registry"]["evicted"],
        1
    );
    agent.stop().unwrap();
}

#[test]
fn the_summary_counts_breakers_by_state_and_bulkhead_utilisation() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let a = tripping("a");
    let b = tripping("b");
    let c = tripping("c");
    for x in [&a, &b, &c] {
        catalog.join_breaker(x);
    }
    a.acquire().unwrap().failure();
    c.force_open(None);
    let bulkhead = Arc::new(Bulkhead::new(
        "db",
        BulkheadConfig::builder().max_concurrent(4).build().unwrap(),
    ));
    catalog.join_bulkhead(&bulkhead);
    let _slot = bulkhead.try_acquire().unwrap();
    let retry = Arc::new(
        surgewall::RetryPolicy::builder()
            .name("outbound")
            .max_attempts(2)
            .build()
            .unwrap(),
    );
    catalog.join_retry_policy("outbound", &retry);
    let mut schedule = retry.schedule();
    while let surgewall::Decision::Retry(_) = schedule.next(surgewall::AttemptOutcome::Retryable) {}
    let agent = start(catalog);
    let r = get(agent.local_addr(), "/api/resilience/retries").json();
    assert_eq!(r["retries"][0]["name"], "outbound");
    assert_eq!(
        (
            r["retries"][0]["operations"].as_u64(),
            r["retries"][0]["retries"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(r["retries"][0]["stops"]["max_attempts"], 1);
    let text = get(agent.local_addr(), "/metrics").body;
    assert_eq!(
        sample(
            &text,
            r#"surgewall_retry_stops_total{name="outbound",reason="max_attempts"}"#
        ),
        Some(1.0)
    );
    let s = get(agent.local_addr(), "/api/resilience/dashboard/summary").json();
    assert_eq!(s["retries"], 1);
    assert_eq!(s["circuit_breakers"]["total"], 3);
    assert_eq!(s["circuit_breakers"]["by_state"]["open"], 1);
    assert_eq!(s["circuit_breakers"]["by_state"]["closed"], 1);
    assert_eq!(s["circuit_breakers"]["by_state"]["forced_open"], 1);
    assert_eq!(s["bulkheads"]["utilisation"], 0.25);
    let one = get(agent.local_addr(), "/api/resilience/bulkheads/db").json();
    assert_eq!(
        (one["active"].as_u64(), one["max_concurrent"].as_u64()),
        (Some(1), Some(4))
    );
    agent.stop().unwrap();
}

#[test]
fn every_documented_operation_is_served_with_a_documented_status() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let b = tripping("payments");
    let db = Arc::new(Bulkhead::new("db", BulkheadConfig::default()));
    catalog.join_breaker(&b);
    catalog.join_bulkhead(&db);
    let hosts = Arc::new(
        KeyedBreaker::<u64>::builder(BreakerConfig::default())
            .build()
            .unwrap(),
    );
    hosts.try_acquire(&7).unwrap().success();
    let view: Arc<dyn KeyedBreakerView> = hosts.clone();
    catalog.join_keyed_breaker("hosts", &view);
    let tenants = Arc::new(KeyedBulkhead::<u64>::builder(2).build().unwrap());
    let _slot = tenants.try_acquire(&7).unwrap();
    let tview: Arc<dyn KeyedBulkheadView> = tenants.clone();
    catalog.join_keyed_bulkhead("hosts", &tview);
    let agent = start(catalog);
    let addr = agent.local_addr();
    let doc = get(addr, "/api/resilience/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{}", paths.len());
    for (path, ops) in paths {
        if path == "/api/resilience/ws" || path == "/api/resilience/events" {
            continue; // endless streams: tests/live.rs drives them with real clients
        }
        let concrete = path
            .replace("{endpoint}", "payments")
            .replace("{service}", "db")
            .replace("{name}", "hosts")
            .replace("{key}", "7");
        for (method, op) in ops.as_object().unwrap() {
            let reply = match method.as_str() {
                "get" => get(addr, &concrete),
                "post" => post(addr, &concrete, ""),
                other => panic!("undocumented method {other}"),
            };
            let documented = op["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(&reply.status.to_string()),
                "{method} {concrete} answered {} (documented: {:?})",
                reply.status,
                documented.keys().collect::<Vec<_>>()
            );
            assert_eq!(reply.status, 200, "{method} {concrete}: {}", reply.body);
        }
    }
    agent.stop().unwrap();
}

#[test]
fn keys_of_keyed_breakers_are_paged_and_reached_by_both_paths() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let hosts = Arc::new(KeyedBreaker::<String>::builder(config).build().unwrap());
    for i in 0..50 {
        hosts.try_acquire(&format!("host-{i}")).unwrap().success();
    }
    for i in [3, 13, 23] {
        hosts.try_acquire(&format!("host-{i}")).unwrap().failure();
    }
    let view: Arc<dyn KeyedBreakerView> = hosts.clone();
    catalog.join_keyed_breaker("hosts", &view);
    let named = tripping("host-13"); // a named breaker wins over a key of the same name
    catalog.join_breaker(&named);
    let agent = start(catalog);
    let addr = agent.local_addr();

    let page = get(
        addr,
        "/api/resilience/keyed-circuit-breakers/hosts/keys?state=open&limit=2",
    )
    .json();
    assert_eq!(page["matching"], 3);
    assert_eq!(page["keys"].as_array().unwrap().len(), 2);
    let rest = get(
        addr,
        "/api/resilience/keyed-circuit-breakers/hosts/keys?state=open&offset=2",
    )
    .json();
    let mut seen: Vec<String> = page["keys"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["keys"].as_array().unwrap())
        .map(|k| k["key"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, ["host-13", "host-23", "host-3"]);
    let all = get(addr, "/api/resilience/keyed-circuit-breakers/hosts/keys").json();
    assert_eq!(
        (
            all["matching"].as_u64(),
            all["keys"].as_array().unwrap().len()
        ),
        (Some(50), 50)
    );
    for bad in [
        "state=sideways",
        "limit=0",
        "limit=1001",
        "offset=-1",
        "colour=red",
    ] {
        let r = get(
            addr,
            &format!("/api/resilience/keyed-circuit-breakers/hosts/keys?{bad}"),
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }

    let key = get(addr, "/api/resilience/circuit-breakers/host-3").json();
    assert_eq!(
        (key["registry"].as_str(), key["state"].as_str()),
        (Some("hosts"), Some("open"))
    );
    let named_view = get(addr, "/api/resilience/circuit-breakers/host-13").json();
    assert_eq!(named_view["name"], "host-13");
    assert_eq!(
        named_view["state"], "closed",
        "the named breaker, not the open key"
    );

    let reset = post(addr, "/api/resilience/circuit-breakers/host-3/reset", "");
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(hosts.state(&"host-3".to_owned()), Some(State::Closed));
    let reset = post(
        addr,
        "/api/resilience/keyed-circuit-breakers/hosts/keys/host-23/reset",
        "",
    );
    assert_eq!(reset.json()["state"], "closed");
    assert_eq!(hosts.state(&"host-23".to_owned()), Some(State::Closed));
    let missing = post(
        addr,
        "/api/resilience/keyed-circuit-breakers/hosts/keys/host-99/reset",
        "",
    );
    assert_eq!(missing.status, 404);
    assert_eq!(hosts.len(), 50, "a reset of a key not held creates nothing");
    assert_eq!(
        get(addr, "/api/resilience/keyed-circuit-breakers/nope/keys").status,
        404
    );
    agent.stop().unwrap();
}

#[test]
fn a_bulkhead_reset_starts_its_api_counters_from_zero_and_leaves_metrics_monotonic() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let db = Arc::new(Bulkhead::new(
        "db",
        BulkheadConfig::builder().max_concurrent(1).build().unwrap(),
    ));
    catalog.join_bulkhead(&db);
    let held = db.try_acquire().unwrap();
    assert!(db.try_acquire().is_err());
    let agent = start(catalog);
    let addr = agent.local_addr();
    let before = get(addr, "/api/resilience/bulkheads/db").json();
    assert_eq!(
        (before["accepted"].as_u64(), before["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(before["counting_since_reset"], false);

    let reset = post(addr, "/api/resilience/bulkheads/db/reset", "");
    assert_eq!(reset.status, 200, "{}", reset.body);
    let after = reset.json();
    assert_eq!(
        (after["accepted"].as_u64(), after["rejected"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        (
            after["active"].as_u64(),
            after["counting_since_reset"].as_bool()
        ),
        (Some(1), Some(true))
    );
    assert!(db.try_acquire().is_err());
    let later = get(addr, "/api/resilience/bulkheads/db").json();
    assert_eq!(later["rejected"], 1, "counts go on from the reset");
    let text = get(addr, "/metrics").body;
    assert_eq!(
        sample(
            &text,
            r#"surgewall_bulkhead_requests_total{service="db",outcome="rejected"}"#
        ),
        Some(2.0),
        "/metrics stays monotonic"
    );
    assert_eq!(
        post(addr, "/api/resilience/bulkheads/nope/reset", "").status,
        404
    );
    drop(held);
    agent.stop().unwrap();
}

#[test]
fn keys_that_are_not_closed_get_series_of_their_own_up_to_a_bound() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let keyed = Arc::new(
        KeyedBreaker::<u64>::builder(BreakerConfig::default())
            .build()
            .unwrap(),
    );
    for k in 0..1000u64 {
        keyed.try_acquire(&k).unwrap().success();
    }
    for k in 0..150u64 {
        keyed.force_open(&k, None).unwrap();
    }
    let view: Arc<dyn KeyedBreakerView> = keyed.clone();
    catalog.join_keyed_breaker("users", &view);
    let text = surgewall_agent::metrics::render(catalog, surgewall_agent::metrics::Format::Text);
    let per_key = text
        .lines()
        .filter(|l| l.starts_with("surgewall_keyed_circuit_breaker_key_state{"))
        .count();
    assert_eq!(
        per_key,
        surgewall_agent::metrics::KEY_SERIES,
        "bounded, not 150 and never 1000"
    );
    assert_eq!(
        sample(
            &text,
            r#"surgewall_keyed_circuit_breaker_keys_not_closed{name="users"}"#
        ),
        Some(150.0)
    );
    assert!(
        text.lines().any(|l| l
            .starts_with("surgewall_keyed_circuit_breaker_key_state{name=\"users\",key=\"")
            && l.ends_with(" 3.0")),
        "a forced-open key reads 3"
    );
}

#[test]
fn keys_of_keyed_bulkheads_show_their_load_a_page_at_a_time() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let tenants = Arc::new(
        KeyedBulkhead::<u64>::builder(2)
            .limit_for(9, 5)
            .build()
            .unwrap(),
    );
    let _held: Vec<_> = [1u64, 1, 9]
        .iter()
        .map(|k| tenants.try_acquire(k).unwrap())
        .collect();
    for k in 10..20u64 {
        tenants.try_acquire(&k).unwrap().release();
    }
    let view: Arc<dyn KeyedBulkheadView> = tenants.clone();
    catalog.join_keyed_bulkhead("tenants", &view);
    let agent = start(catalog);
    let addr = agent.local_addr();
    let one = get(addr, "/api/resilience/keyed-bulkheads/tenants/keys/1").json();
    assert_eq!(
        (one["active"].as_u64(), one["limit"].as_u64()),
        (Some(2), Some(2))
    );
    let nine = get(addr, "/api/resilience/keyed-bulkheads/tenants/keys/9").json();
    assert_eq!(
        (nine["active"].as_u64(), nine["limit"].as_u64()),
        (Some(1), Some(5))
    );
    let busy = get(
        addr,
        "/api/resilience/keyed-bulkheads/tenants/keys?busy=true",
    )
    .json();
    assert_eq!(busy["matching"], 2, "{busy}");
    let all = get(addr, "/api/resilience/keyed-bulkheads/tenants/keys?limit=5").json();
    assert_eq!(
        (
            all["matching"].as_u64(),
            all["keys"].as_array().unwrap().len()
        ),
        (Some(12), 5)
    );
    assert_eq!(
        get(addr, "/api/resilience/keyed-bulkheads/tenants/keys/404").status,
        404
    );
    assert_eq!(
        get(addr, "/api/resilience/keyed-bulkheads/tenants/keys?limit=0").status,
        400
    );
    assert_eq!(
        get(addr, "/api/resilience/keyed-bulkheads/nope").status,
        404
    );
    agent.stop().unwrap();
}

#[test]
fn foreign_hosts_and_cross_site_changes_are_refused() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let b = tripping("payments");
    catalog.join_breaker(&b);
    let agent = start(catalog);
    let addr = agent.local_addr();
    let port = addr.port();

    // DNS rebinding: a page whose own name resolves to 127.0.0.1.
    let rebound = http(
        addr,
        "GET /api/resilience/circuit-breakers HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    assert!(rebound.json()["detail"]
        .as_str()
        .unwrap()
        .contains("evil.example"));

    // A cross-site POST from a browser: refused, and the breaker untouched.
    let forced = http(
        addr,
        &format!(
            "POST /api/resilience/circuit-breakers/payments/force-open HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Origin: http://evil.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(forced.status, 403, "{}", forced.body);
    assert_eq!(b.state(), State::Closed);

    // The agent's own origin, and tools that send no Origin, may.
    for (host, origin) in [
        (
            format!("localhost:{port}"),
            format!("\r\nOrigin: http://localhost:{port}"),
        ),
        (format!("127.0.0.1:{port}"), String::new()),
    ] {
        let ok = http(
            addr,
            &format!(
                "POST /api/resilience/circuit-breakers/payments/force-open HTTP/1.1\r\nHost: {host}{origin}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(ok.status, 200, "{host}: {}", ok.body);
        b.reset();
    }
    // Reading from another origin is allowed (no state changes; the browser's CORS keeps the
    // answer from the page).
    let read = http(
        addr,
        &format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(read.status, 200);
    agent.stop().unwrap();
}

#[test]
fn with_a_token_changes_need_it_and_reads_do_not() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let b = tripping("payments");
    catalog.join_breaker(&b);
    let agent = Agent::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .catalog(catalog)
        .token("t0k3n")
        .start()
        .unwrap();
    let addr = agent.local_addr();
    let force = |auth: &str| {
        http(
            addr,
            &format!(
                "POST /api/resilience/circuit-breakers/payments/force-open HTTP/1.1\r\nHost: {addr}\r\n{auth}\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    for auth in [
        "",
        "Authorization: Bearer nope\r\n",
        "Authorization: t0k3n\r\n",
    ] {
        let r = force(auth);
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
        assert!(
            r.headers.contains("www-authenticate: bearer"),
            "{}",
            r.headers
        );
        assert!(!r.body.contains("t0k3n"), "the token is never echoed");
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(force("Authorization: Bearer t0k3n\r\n").status, 200);
    assert_eq!(b.state(), State::ForcedOpen);
    assert_eq!(
        get(addr, "/api/resilience/circuit-breakers/payments").status,
        200
    );
    agent.stop().unwrap();
}

#[test]
fn the_dashboard_is_one_page_at_the_root_that_no_other_site_may_frame() {
    let _turn = one_at_a_time();
    let agent = start(catalog());
    let page = get(agent.local_addr(), "/");
    assert_eq!(page.status, 200);
    assert!(
        page.headers
            .contains("content-type: text/html; charset=utf-8"),
        "{}",
        page.headers
    );
    let csp = page
        .headers
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .expect("a content-security-policy");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(
        page.body.contains("<title>surgewall"),
        "{}",
        &page.body[..200]
    );
    // The page is not a catch-all: other unknown paths are still 404 problems.
    assert_eq!(get(agent.local_addr(), "/index.html").status, 404);
    agent.stop().unwrap();
}
