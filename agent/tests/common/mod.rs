//! What the agent's integration tests share: one agent at a time, and HTTP over real TCP.
#![allow(dead_code)] // each test binary uses its own part of it

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use surgewall::catalog::Catalog;
use surgewall::{Breaker, BreakerConfig};
use surgewall_agent::Agent;

/// One agent per process: the tests take turns.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn catalog() -> &'static Catalog {
    Box::leak(Box::new(Catalog::new()))
}

pub fn start(catalog: &'static Catalog) -> Agent {
    Agent::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .catalog(catalog)
        .sweep_interval(Duration::from_millis(5))
        .start()
        .expect("the agent starts")
}

/// The value of the sample `series` (name and labels exactly as exposed).
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub fn http(addr: SocketAddr, request: &str) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head[9..12].parse().unwrap();
    Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

pub fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// A breaker that trips on one failure and stays open a minute.
pub fn tripping(name: &str) -> Arc<Breaker> {
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(60))
        .build()
        .unwrap();
    Arc::new(Breaker::new(name, config))
}
