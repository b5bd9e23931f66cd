//! The live stream end to end: real WebSocket and SSE clients on 127.0.0.1.
// Each test holds the one-agent-per-process turn for its whole run, awaits included: every
// #[tokio::test] runs on a runtime of its own, so no other task waits on that lock.
#![allow(clippy::await_holding_lock)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use surgewall::breaker::keyed::KeyedBreaker;
use surgewall::catalog::{Catalog, KeyedBreakerView};
use surgewall::events::{Event, EventKind};
use surgewall::{Breaker, BreakerConfig, Bulkhead, BulkheadConfig};
use surgewall_agent::{Agent, AgentBuilder};
use tokio::net::TcpStream as AsyncTcp;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod common;
use common::*;

type Ws = WebSocketStream<MaybeTlsStream<AsyncTcp>>;

fn builder(catalog: &'static Catalog) -> AgentBuilder {
    Agent::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .catalog(catalog)
        .stream_update_interval(Duration::from_millis(50))
}

fn trip(b: &Breaker) {
    b.acquire().expect("admits").failure();
}

async fn connect(addr: SocketAddr) -> Ws {
    let url = format!("ws://{addr}/api/resilience/ws");
    tokio_tungstenite::connect_async(url)
        .await
        .expect("the handshake succeeds")
        .0
}

/// The next JSON message (text frame) within 5 s.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("the stream is open")
            .expect("a valid frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// The next message that `pred` accepts (others skipped).
async fn until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let v = next(ws).await;
        if pred(&v) {
            return v;
        }
    }
}

fn is_transition_of<'a>(name: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |v| v["type"] == "transition" && v["name"] == name
}

#[tokio::test]
async fn a_client_gets_a_snapshot_then_every_transition_as_it_happens() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let b = tripping("payments");
    catalog.join_breaker(&b);
    let agent = builder(catalog).start().unwrap();
    let addr = agent.local_addr();
    let mut ws = connect(addr).await;

    let snap = next(&mut ws).await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["agent"]["changes"], "open");
    assert_eq!(snap["summary"]["circuit_breakers"]["total"], 1);
    let listed = &snap["circuit_breakers"][0];
    assert_eq!(
        (&listed["name"], &listed["state"]),
        (&"payments".into(), &"closed".into())
    );
    let started = snap["recent"].as_array().unwrap();
    assert!(started
        .iter()
        .any(|e| e["type"] == "agent" && e["state"] == "started"));

    trip(&b);
    let t = until(&mut ws, is_transition_of("payments")).await;
    assert_eq!(
        (t["from"].as_str(), t["to"].as_str()),
        (Some("closed"), Some("open"))
    );
    assert_eq!(t["kind"], "circuit_breaker");
    assert!(t["key"].is_null());
    assert!(t["reason"].is_string());
    let retry = t["retry_after_ms"]
        .as_f64()
        .expect("an open breaker's wait");
    assert!(retry > 0.0 && retry <= 60_000.0, "{retry}");
    assert!(t["seq"].as_u64().unwrap() > snap["seq"].as_u64().unwrap());

    // A change made through the REST API streams too, and the next update carries the view.
    let r = post(addr, "/api/resilience/circuit-breakers/payments/reset", "");
    assert_eq!(r.status, 200);
    let back = until(&mut ws, is_transition_of("payments")).await;
    assert_eq!(
        (back["from"].as_str(), back["to"].as_str()),
        (Some("open"), Some("closed"))
    );
    assert!(back["seq"].as_u64() > t["seq"].as_u64());
    let update = until(&mut ws, |v| {
        v["type"] == "update"
            && v["circuit_breakers"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|b| b["name"] == "payments" && b["state"] == "closed")
            })
    })
    .await;
    assert!(update["summary"].is_object());
    agent.stop().unwrap();
}

#[tokio::test]
async fn keyed_transitions_name_the_registry_and_the_key_and_bulkhead_saturation_is_sampled() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(30))
        .build()
        .unwrap();
    let tenants = Arc::new(KeyedBreaker::<u64>::builder(config).build().unwrap());
    let view: Arc<dyn KeyedBreakerView> = tenants.clone();
    catalog.join_keyed_breaker("tenants", &view);
    let db = Arc::new(Bulkhead::new(
        "db",
        BulkheadConfig::builder().max_concurrent(2).build().unwrap(),
    ));
    catalog.join_bulkhead(&db);
    let agent = builder(catalog).start().unwrap();
    let mut ws = connect(agent.local_addr()).await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");

    tenants.try_acquire(&7).unwrap().failure();
    let t = until(&mut ws, is_transition_of("tenants")).await;
    assert_eq!(t["kind"], "keyed_circuit_breaker");
    assert_eq!(
        t["key"], "7",
        "the key as the service writes it, found from its hash"
    );
    assert_eq!(t["event_key"], tenants.event_key(&7));
    assert_eq!(t["to"], "open");
    assert!(t["retry_after_ms"].as_f64().unwrap() > 0.0);
    let worst = until(&mut ws, |v| {
        v["type"] == "update" && !v["keyed_circuit_breakers"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        worst["keyed_circuit_breakers"][0]["worst_keys"][0]["key"],
        "7"
    );

    let held = [db.try_acquire().unwrap(), db.try_acquire().unwrap()];
    let s = until(&mut ws, |v| v["type"] == "bulkhead_saturated").await;
    assert_eq!(
        (s["name"].as_str(), s["active"].as_u64()),
        (Some("db"), Some(2))
    );
    drop(held);
    let r = until(&mut ws, |v| v["type"] == "bulkhead_recovered").await;
    assert_eq!(r["active"], 0);
    agent.stop().unwrap();
}

/// A blocking SSE client over raw TCP (the body is chunked).
struct Sse {
    r: BufReader<TcpStream>,
}

/// One SSE message: its id (if any), event and data.
#[derive(Debug)]
struct Frame {
    id: Option<u64>,
    data: Value,
}

impl Sse {
    fn open(addr: SocketAddr, last_id: Option<u64>) -> (u16, Self) {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let resume = last_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        (&s).write_all(
            format!("GET /api/resilience/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
        }
        (status[9..12].parse().unwrap(), Sse { r })
    }

    /// The next line of the body (chunk framing removed).
    fn line(&mut self, pending: &mut String) -> String {
        loop {
            if let Some(i) = pending.find('\n') {
                let line = pending[..i].to_owned();
                pending.drain(..=i);
                return line;
            }
            let mut size = String::new();
            self.r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
            let mut chunk = vec![0; n + 2];
            self.r.read_exact(&mut chunk).unwrap();
            pending.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
        }
    }

    /// The next message with data (skips `retry:` and blank lines).
    fn next(&mut self, pending: &mut String) -> Frame {
        let (mut id, mut data) = (None, None);
        loop {
            let line = self.line(pending);
            if line.is_empty() {
                if let Some(data) = data.take() {
                    return Frame { id, data };
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().unwrap());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            }
        }
    }

    fn until(&mut self, pending: &mut String, pred: impl Fn(&Value) -> bool) -> Frame {
        loop {
            let f = self.next(pending);
            if pred(&f.data) {
                return f;
            }
        }
    }
}

#[test]
fn sse_resumes_after_the_last_event_id_and_starts_afresh_beyond_the_backlog() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    let b = tripping("search");
    catalog.join_breaker(&b);
    let agent = builder(catalog)
        .stream_update_interval(Duration::from_secs(3600))
        .stream_backlog(8)
        .start()
        .unwrap();
    let addr = agent.local_addr();
    let (status, mut sse) = Sse::open(addr, None);
    assert_eq!(status, 200);
    let p = &mut String::new();
    let snap = sse.next(p);
    assert_eq!(snap.data["type"], "snapshot");
    assert_eq!(snap.id, snap.data["seq"].as_u64());
    trip(&b);
    let seen = sse.until(p, is_transition_of("search"));
    let last = seen.id.expect("events carry their seq as id");
    drop(sse);

    // Two transitions while away: a resumption replays what came after `last` (the two
    // transitions, and any update between them), with no snapshot.
    b.reset();
    trip(&b);
    let (_, mut again) = Sse::open(addr, Some(last));
    let p = &mut String::new();
    let mut replayed = Vec::new();
    while replayed
        .iter()
        .filter(|f: &&Frame| f.data["type"] == "transition")
        .count()
        < 2
    {
        let f = again.next(p);
        assert_ne!(f.data["type"], "snapshot", "a resumption sends no snapshot");
        replayed.push(f);
    }
    let ids: Vec<u64> = replayed.iter().map(|f| f.id.unwrap()).collect();
    assert_eq!(ids[0], last + 1, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    let moves: Vec<_> = replayed
        .iter()
        .filter(|f| f.data["type"] == "transition")
        .map(|f| {
            (
                f.data["from"].as_str().unwrap(),
                f.data["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(moves, [("open", "closed"), ("closed", "open")]);
    drop(again);

    // More than the backlog holds: a counted gap, then a fresh snapshot.
    for _ in 0..10 {
        b.reset();
        trip(&b);
    }
    std::thread::sleep(Duration::from_millis(100)); // the feed reads the ring every 2 ms
    let (_, mut late) = Sse::open(addr, Some(last));
    let p = &mut String::new();
    let gap = late.next(p);
    assert_eq!(
        (gap.data["type"].as_str(), gap.data["reason"].as_str()),
        (Some("gap"), Some("backlog"))
    );
    assert!(gap.data["missed"].as_u64().unwrap() >= 10, "{gap:?}");
    assert_eq!(late.next(p).data["type"], "snapshot");
    drop(late);

    let (status, _) = Sse::open(addr, None);
    assert_eq!(status, 200);
    let bad = http(
        addr,
        &format!("GET /api/resilience/events HTTP/1.1\r\nHost: {addr}\r\nLast-Event-ID: soon\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("Last-Event-ID"), "{}", bad.body);
    agent.stop().unwrap();
}

#[tokio::test]
async fn a_stalled_client_is_dropped_and_the_others_never_notice() {
    let _turn = one_at_a_time();
    let catalog = catalog();
    // Many breakers make big updates: a client that reads nothing fills its socket quickly.
    let breakers: Vec<_> = (0..300).map(|i| tripping(&format!("svc-{i:03}"))).collect();
    for b in &breakers {
        catalog.join_breaker(b);
    }
    let agent = builder(catalog)
        .stream_update_interval(Duration::from_millis(20))
        .stream_write_timeout(Duration::from_millis(300))
        .start()
        .unwrap();
    let addr = agent.local_addr();
    let mut stalled = connect(addr).await; // never read again
    let mut reader = connect(addr).await;
    assert_eq!(next(&mut reader).await["type"], "snapshot");

    const ROUNDS: usize = 100;
    let flapper = {
        let breakers = breakers.clone();
        std::thread::spawn(move || {
            for round in 0..ROUNDS {
                for b in &breakers {
                    if round % 2 == 0 {
                        trip(b);
                    } else {
                        b.reset();
                    }
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    // The reader gets every transition, or a gap that counts it (in an unoptimised build the
    // feed can fall behind the ring): the stalled client costs it nothing.
    let (mut transitions, mut missed) = (0, 0);
    while transitions + missed < ROUNDS * 300 {
        let v = next(&mut reader).await;
        match v["type"].as_str() {
            Some("transition") => transitions += 1,
            Some("gap") => missed += v["missed"].as_u64().unwrap() as usize,
            _ => {}
        }
    }
    flapper.join().unwrap();
    assert_eq!(
        transitions + missed,
        ROUNDS * 300,
        "every transition delivered or counted"
    );
    assert!(transitions > 0);
    let metrics = get(addr, "/metrics").body;
    let dropped = |reason: &str| {
        let series = format!(r#"surgewall_agent_stream_disconnects_total{{reason="{reason}"}}"#);
        sample(&metrics, &series).unwrap()
    };
    // It stalled (a write timed out) or, had a write gone through late, fell a queue behind.
    assert_eq!(dropped("stalled") + dropped("slow"), 1.0, "{metrics}");
    assert_eq!(
        sample(&metrics, "surgewall_agent_stream_clients"),
        Some(1.0)
    );
    // The stalled client's socket was closed by the agent: draining it ends.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = stalled.next().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the agent closed the stalled client's connection"
    );
    agent.stop().unwrap();
}

#[tokio::test]
async fn clients_are_capped_foreign_pages_refused_and_client_frames_bounded() {
    let _turn = one_at_a_time();
    let agent = builder(catalog()).stream_max_clients(2).start().unwrap();
    let addr = agent.local_addr();
    let mut a = connect(addr).await;
    let _b = connect(addr).await;
    let url = format!("ws://{addr}/api/resilience/ws");
    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("a third client is refused: {other:?}"),
    }
    assert_eq!(
        get(addr, "/api/resilience/events").status,
        503,
        "SSE clients count against the same cap"
    );

    // A frame over 4 KiB ends that client (protocol), and frees its place.
    assert_eq!(next(&mut a).await["type"], "snapshot");
    a.send(Message::text("x".repeat(10_000))).await.ok();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = a.next().await {
            if let Message::Close(_) = m {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an oversized frame closes the connection");
    let metrics = get(addr, "/metrics").body;
    let protocol = r#"surgewall_agent_stream_disconnects_total{reason="protocol"}"#;
    assert_eq!(sample(&metrics, protocol), Some(1.0), "{metrics}");
    let _c = connect(addr).await;

    // A page of another site may not open the stream (WebSockets have no same-origin rule).
    let mut foreign =
        tungstenite::client::IntoClientRequest::into_client_request(url.as_str()).unwrap();
    foreign
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    drop(_b);
    tokio::time::sleep(Duration::from_millis(50)).await;
    match tokio_tungstenite::connect_async(foreign).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("a foreign origin is refused: {other:?}"),
    }
    let mut own =
        tungstenite::client::IntoClientRequest::into_client_request(url.as_str()).unwrap();
    own.headers_mut()
        .insert("origin", format!("http://{addr}").parse().unwrap());
    assert!(tokio_tungstenite::connect_async(own).await.is_ok());
    agent.stop().unwrap();
}

#[tokio::test]
async fn quiet_streams_get_heartbeats_and_stopping_says_so() {
    let _turn = one_at_a_time();
    let agent = builder(catalog())
        .stream_heartbeat(Duration::from_millis(50))
        .stream_update_interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    let mut ws = connect(agent.local_addr()).await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    let hb = next(&mut ws).await;
    assert_eq!(hb["type"], "heartbeat");
    assert!(hb["seq"].is_null() && hb["at_ms"].as_u64().unwrap() > 0);

    let stopping = std::thread::spawn(move || agent.stop());
    let last = until(&mut ws, |v| v["type"] != "heartbeat").await;
    assert_eq!(
        (last["type"].as_str(), last["state"].as_str()),
        (Some("agent"), Some("stopping"))
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(_) = m {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends when the agent stops");
    stopping.join().unwrap().unwrap();
}

#[tokio::test]
async fn a_ring_overrun_is_a_counted_gap_never_a_silent_hole() {
    let _turn = one_at_a_time();
    let agent = builder(catalog())
        .stream_queue(1 << 20) // this client keeps up with anything: only the ring overruns
        .stream_update_interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    let mut ws = connect(agent.local_addr()).await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");

    // Events from a source no policy in the catalog owns, published faster than the feed
    // turns them into JSON: the 4,096-event ring overruns.
    let source = u64::MAX - 7;
    let ring = surgewall::breaker::default_events();
    let bursts = 20;
    let per_burst = 20_000;
    for _ in 0..bursts {
        for key in 0..per_burst {
            ring.publish(Event {
                source,
                at_ns: 0,
                kind: EventKind::Evicted { key },
            });
        }
    }
    let published = bursts * per_burst;
    let (mut delivered, mut missed) = (0u64, 0u64);
    while delivered + missed < published {
        let v = next(&mut ws).await;
        match v["type"].as_str() {
            Some("evicted") if v["source"] == source => {
                assert!(v["name"].is_null(), "an unlisted source has no name");
                delivered += 1;
            }
            Some("gap") => {
                assert_eq!(v["reason"], "ring_overrun");
                missed += v["missed"].as_u64().unwrap();
            }
            _ => {}
        }
    }
    assert_eq!(
        delivered + missed,
        published,
        "every event delivered or counted"
    );
    assert!(
        missed > 0,
        "{published} events in a burst overran a 4,096-event ring"
    );
    let metrics = get(agent.local_addr(), "/metrics").body;
    assert_eq!(
        sample(&metrics, "surgewall_agent_stream_ring_missed_total"),
        Some(missed as f64),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("agent_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    agent.stop().unwrap();
}
