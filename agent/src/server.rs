//! The accept loop: HTTP/1.1 (with WebSocket upgrades) over plain TCP or TLS, with every
//! resource a client can hold bounded.
//!
//! | limit | default | beyond it |
//! |---|---|---|
//! | connections open at once | 256 | accepted and closed at once (plain TCP: a `503` first) |
//! | time to send a request's headers, and idle time between requests | 10 s | closed |
//! | TLS handshake | 10 s | closed |
//! | request headers | 64 headers, 16 KiB | `431` and closed |
//! | time to read a body and answer (not the live streams' bodies) | 30 s | `408` |
//! | request body | 16 KiB | `413` |
//! | live-stream clients, their queue, a stalled write | see `stream` | `503` / disconnected |
//! | a WebSocket frame or message from a client | 4 KiB | closed (`1009`) |
//!
//! A slow-loris client (headers a byte at a time, or a connection opened and left) holds one
//! connection for at most the header timeout, and never more than the connection cap in all.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::api::problem;
use crate::stream::AgentStats;
use crate::tls::Tls;

/// The admin port's limits (see the module docs; set with the builder).
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_headers: usize,
    pub(crate) max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_headers: 64,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// How long stopping waits for requests in progress before it drops them.
const DRAIN: Duration = Duration::from_secs(2);

/// Middleware: a request that takes longer than the limit to read and answer gets a 408.
/// (The live streams answer at once; their bodies are not timed here.)
pub(crate) async fn in_time(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => problem(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request was not read and answered within {limit:?}"),
        ),
    }
}

/// Serves `app` on `listener` until `stop` changes, then lets requests in progress finish
/// (at most [`DRAIN`]).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Tls>,
    stats: Arc<AgentStats>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let builder = Arc::new(builder);
    let mut conns = JoinSet::new();
    loop {
        let (tcp, _peer): (TcpStream, SocketAddr) = tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors and the like: wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.connections_refused.fetch_add(1, Relaxed);
            if tls.is_none() {
                conns.spawn(refuse(tcp));
            }
            continue;
        };
        let (app, builder, stats, stop) =
            (app.clone(), builder.clone(), stats.clone(), stop.clone());
        let tls = tls.clone();
        let header_timeout = limits.header_timeout;
        conns.spawn(async move {
            let _slot = slot;
            stats.connections_open.fetch_add(1, Relaxed);
            match tls {
                None => connection(tcp, app, &builder, stop).await,
                Some(tls) => {
                    // The handshake is bounded like a request's headers.
                    if let Ok(Ok(io)) = timeout(header_timeout, tls.acceptor().accept(tcp)).await {
                        connection(io, app, &builder, stop).await;
                    }
                }
            }
            stats.connections_open.fetch_sub(1, Relaxed);
        });
    }
    drop(listener);
    let drained = timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        conns.abort_all();
    }
}

async fn connection<I>(
    io: I,
    app: Router,
    builder: &http1::Builder,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Over the connection cap: a short 503 and close, written within a second or not at all.
async fn refuse(mut tcp: TcpStream) {
    const BODY: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the agent has as many connections open as it may; try again later"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = timeout(Duration::from_secs(1), async {
        tcp.write_all(response.as_bytes()).await?;
        tcp.shutdown().await?;
        // Read what the client sent until it closes: closing with its request unread would
        // reset the connection, and the client could lose the 503 before reading it.
        let mut sink = [0u8; 1024];
        while tcp.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
