//! The admin port under hostile use, over real sockets: connection caps, slow clients,
//! oversized headers and bodies, and TLS.
// Each test holds the one-agent-per-process turn for its whole run, awaits included: every
// #[tokio::test] runs on a runtime of its own, so no other task waits on that lock.
#![allow(clippy::await_holding_lock)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use surgewall_agent::{Agent, AgentBuilder, Tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::{self, pki_types::ServerName};

mod common;
use common::*;

fn builder() -> AgentBuilder {
    Agent::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .catalog(catalog())
}

/// Reads until the peer closes (or 10 s pass); what it sent.
fn read_to_close(s: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the agent did not close the connection: {e}"),
        }
    }
    (
        String::from_utf8_lossy(&all).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn connections_beyond_the_cap_are_answered_503_and_a_freed_slot_serves_again() {
    let _turn = one_at_a_time();
    let agent = builder().max_connections(3).start().unwrap();
    let addr = agent.local_addr();
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100)); // the agent accepts them
    let mut over = TcpStream::connect(addr).unwrap();
    over.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let (reply, _) = read_to_close(&mut over);
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(
        reply.contains("retry-after: 1") && reply.contains("connections"),
        "{reply}"
    );

    drop(held);
    std::thread::sleep(Duration::from_millis(100));
    let metrics = get(addr, "/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(
        sample(&metrics.body, "surgewall_agent_connections_refused_total"),
        Some(1.0)
    );
    agent.stop().unwrap();
}

#[test]
fn slow_loris_clients_are_cut_off_at_the_header_timeout() {
    let _turn = one_at_a_time();
    let agent = builder()
        .header_timeout(Duration::from_millis(300))
        .start()
        .unwrap();
    let addr = agent.local_addr();

    // Headers a byte at a time, never finished.
    let mut trickle = TcpStream::connect(addr).unwrap();
    trickle.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    let (_, took) = read_to_close(&mut trickle);
    assert!(took < Duration::from_secs(5), "closed after {took:?}");

    // A connection opened and left silent.
    let mut idle = TcpStream::connect(addr).unwrap();
    let (_, took) = read_to_close(&mut idle);
    assert!(took < Duration::from_secs(5), "closed after {took:?}");

    // Idle after a request, on a kept-alive connection.
    let mut kept = TcpStream::connect(addr).unwrap();
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let (reply, took) = read_to_close(&mut kept);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    assert_eq!(
        get(addr, "/healthz").status,
        200,
        "others are served meanwhile"
    );
    agent.stop().unwrap();
}

#[test]
fn a_body_sent_too_slowly_gets_408_and_oversized_requests_are_refused() {
    let _turn = one_at_a_time();
    let agent = builder()
        .request_timeout(Duration::from_millis(300))
        .start()
        .unwrap();
    let addr = agent.local_addr();

    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(
        format!("POST /api/resilience/circuit-breakers/x/force-open HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"dur")
            .as_bytes(),
    )
    .unwrap();
    let (reply, _) = read_to_close(&mut slow);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("application/problem+json"), "{reply}");

    // Headers: 16 KiB and 64 of them at most.
    let big = "a".repeat(20_000);
    let r = http(
        addr,
        &format!(
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(r.status, 431);
    let many: String = (0..80).map(|i| format!("X-{i}: y\r\n")).collect();
    let r = http(
        addr,
        &format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n{many}Connection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 431);

    let body = format!(
        "{{\"duration_seconds\": 1, \"pad\": \"{}\"}}",
        "p".repeat(20_000)
    );
    let r = post(addr, "/api/resilience/circuit-breakers/x/force-open", &body);
    assert_eq!(r.status, 413);
    agent.stop().unwrap();
}

fn certificate() -> (String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (cert.cert.pem(), cert.signing_key.serialize_pem())
}

/// One HTTPS GET with rustls, trusting `cert_pem`.
async fn https_get(addr: SocketAddr, cert_pem: &str, path: &str) -> std::io::Result<String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    #[allow(deprecated)] // the agent's provider: ring
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    let port = addr.port();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut reply = String::new();
    tls.read_to_string(&mut reply).await?;
    Ok(reply)
}

#[tokio::test]
async fn with_tls_the_admin_port_speaks_https_only() {
    let _turn = one_at_a_time();
    let (cert, key) = certificate();
    assert!(
        Tls::from_pem(cert.as_bytes(), b"not a key").is_err(),
        "a key that is not PEM is refused at configuration"
    );
    let err = Tls::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    let tls = Tls::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let agent = builder()
        .tls(tls)
        .header_timeout(Duration::from_millis(500))
        .start()
        .unwrap();
    let addr = agent.local_addr();
    let reply = https_get(addr, &cert, "/healthz").await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let metrics = https_get(addr, &cert, "/metrics").await.unwrap();
    assert!(metrics.contains("surgewall_agent_connections"), "{metrics}");

    agent.stop().unwrap();

    // The same from the environment, as the C, Python and Go starters get it.
    let dir = std::env::temp_dir().join(format!("surgewall-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    // The only test touching the environment, and under the turn: no agent starts meanwhile.
    std::env::set_var(surgewall_agent::TLS_CERT_ENV, &cert_file);
    std::env::set_var(surgewall_agent::TLS_KEY_ENV, &key_file);
    let started = builder().start();
    std::env::remove_var(surgewall_agent::TLS_CERT_ENV);
    std::env::remove_var(surgewall_agent::TLS_KEY_ENV);
    std::fs::remove_dir_all(&dir).unwrap();
    let agent = started.unwrap();
    let addr = agent.local_addr();
    let reply = https_get(addr, &cert, "/healthz").await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    // Plain HTTP on the TLS port gets no answer, and the connection is closed.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let (reply, _) = read_to_close(&mut plain);
    assert!(!reply.contains("200 OK"), "{reply}");
    agent.stop().unwrap();
}
