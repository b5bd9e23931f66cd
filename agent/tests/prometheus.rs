//! The agent scraped by a real Prometheus server (Debian's `prometheus`, which `.ci/run`
//! installs) on a free loopback port, and its exposition checked by `promtool`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use surgewall::catalog::Catalog;
use surgewall::{Breaker, BreakerConfig, Bulkhead, BulkheadConfig};
use surgewall_agent::metrics::{render, Format};
use surgewall_agent::Agent;

fn tool(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: `apt-get install prometheus` (.ci/run installs it)"
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops the server however the test ends.
struct Server(Child, std::path::PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    Some(raw.split_once("\r\n\r\n")?.1.to_owned())
}

/// The scalar result of an instant query, once Prometheus has one.
fn query(prom: SocketAddr, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = get(prom, &format!("/api/v1/query?query={encoded}"))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let value = v["data"]["result"].get(0)?["value"][1]
        .as_str()?
        .parse::<f64>()
        .ok()?;
    value.is_finite().then_some(value)
}

#[test]
fn prometheus_scrapes_the_rates_and_utilisation_the_test_drove() {
    let catalog: &'static Catalog = Box::leak(Box::new(Catalog::new()));
    let config = BreakerConfig::builder().failure_rate(0.9).build().unwrap();
    let payments = Arc::new(Breaker::new("payments", config));
    let db = Arc::new(Bulkhead::new(
        "db",
        BulkheadConfig::builder().max_concurrent(4).build().unwrap(),
    ));
    catalog.join_breaker(&payments);
    catalog.join_bulkhead(&db);
    let _held = [
        db.try_acquire().unwrap(),
        db.try_acquire().unwrap(),
        db.try_acquire().unwrap(),
    ];

    let agent = Agent::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .catalog(catalog)
        .start()
        .unwrap();
    let target = agent.local_addr();

    let dir = std::env::temp_dir().join(format!("surgewall-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: surgewall\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let prom: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(tool("prometheus"))
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={prom}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server(child, dir);

    // Three successes to one failure, in small batches, until Prometheus has the rates.
    let driving = Arc::new(AtomicBool::new(true));
    let driver = {
        let (b, on) = (payments.clone(), driving.clone());
        std::thread::spawn(move || {
            while on.load(Ordering::Relaxed) {
                for _ in 0..3 {
                    b.acquire().unwrap().success();
                }
                b.acquire().unwrap().failure();
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let success_ratio = "sum(rate(surgewall_circuit_breaker_requests_total{endpoint=\"payments\",outcome=\"success\"}[1m])) \
         / sum(rate(surgewall_circuit_breaker_requests_total{endpoint=\"payments\"}[1m]))";
    let utilisation = "surgewall_bulkhead_active_calls{service=\"db\"} \
         / surgewall_bulkhead_max_concurrent_calls{service=\"db\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    let (ratio, used) = loop {
        if let (Some(r), Some(u)) = (query(prom, success_ratio), query(prom, utilisation)) {
            break (r, u);
        }
        assert!(Instant::now() < deadline, "Prometheus never had the series");
        std::thread::sleep(Duration::from_millis(250));
    };
    driving.store(false, Ordering::Relaxed);
    driver.join().unwrap();
    // A scrape may land inside a batch of four: the ratio is 3/4 within a batch's share.
    assert!((ratio - 0.75).abs() < 0.05, "success ratio {ratio}");
    assert_eq!(used, 0.75);
    let up = query(prom, "up{job=\"surgewall\"}");
    assert_eq!(up, Some(1.0));
    agent.stop().unwrap();
}

#[test]
fn promtool_accepts_the_exposition() {
    let catalog: &'static Catalog = Box::leak(Box::new(Catalog::new()));
    let b = Arc::new(Breaker::new("payments", BreakerConfig::default()));
    let db = Arc::new(Bulkhead::new("db", BulkheadConfig::default()));
    catalog.join_breaker(&b);
    catalog.join_bulkhead(&db);
    b.acquire().unwrap().success();
    b.acquire().unwrap().failure();
    b.force_open(None);
    let timed = Arc::new(Breaker::new(
        "timed",
        BreakerConfig::builder()
            .slow_calls(0.9, Duration::from_secs(1))
            .build()
            .unwrap(),
    ));
    catalog.join_breaker(&timed);
    let p = timed.try_acquire_raw().unwrap();
    timed.record_raw_with_duration(p, surgewall::Outcome::Failure, Duration::from_millis(300));
    let text = render(catalog, Format::Text);
    assert!(text.contains("# TYPE surgewall_circuit_breaker_call_duration_seconds histogram"));
    let mut check = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
