//! One task per client, over WebSocket or SSE: its start (a snapshot, or on resumption what it
//! missed), then every message, heartbeats when quiet, and a counted reason when it ends.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::{Map, Value};
use surgewall::catalog::Catalog;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{sleep_until, timeout, Instant};

use super::feed::{gap, snapshot};
use super::{now_ms, Admitted, Ended, Hub, Msg, Start};
use crate::api::{problem, Resets};

/// The most messages written to a client with one flush.
const WRITE_BATCH: usize = 64;

/// The largest frame or message a client may send us (it has nothing to say but pings).
pub(crate) const MAX_CLIENT_FRAME: usize = 4096;

/// What the stream's handlers share.
#[derive(Clone)]
pub(crate) struct Live {
    pub(crate) hub: Arc<Hub>,
    pub(crate) catalog: &'static Catalog,
    pub(crate) resets: Arc<Resets>,
    /// The snapshot's `agent` object.
    pub(crate) agent: Arc<Value>,
}

/// Where a client's messages go.
trait Out: Send {
    /// Writes `batch` (oldest first) with one flush: a burst costs a client one write, not one
    /// per message.
    fn send(&mut self, batch: &[Arc<Msg>]) -> impl Future<Output = Result<(), Ended>> + Send;
    /// Resolves when the client has gone (or broke the protocol).
    fn closed(&mut self) -> impl Future<Output = Ended> + Send;
}

struct Ws(WebSocket);

impl Out for Ws {
    async fn send(&mut self, batch: &[Arc<Msg>]) -> Result<(), Ended> {
        for m in batch {
            let frame = Message::Text(m.json.clone());
            self.0.feed(frame).await.map_err(|_| Ended::Closed)?;
        }
        self.0.flush().await.map_err(|_| Ended::Closed)
    }

    async fn closed(&mut self) -> Ended {
        loop {
            match self.0.recv().await {
                None | Some(Ok(Message::Close(_))) => return Ended::Closed,
                // Pings are answered by the library; anything else a client says is ignored.
                Some(Ok(_)) => continue,
                Some(Err(_)) => return Ended::Protocol,
            }
        }
    }
}

/// SSE: frames go to the response body through a small queue, which fills when the client
/// stops reading (the socket stops taking bytes).
struct Sse(mpsc::Sender<Bytes>);

impl Out for Sse {
    async fn send(&mut self, batch: &[Arc<Msg>]) -> Result<(), Ended> {
        let frames = match batch {
            [one] => one.sse.clone(),
            _ => batch.iter().flat_map(|m| m.sse.iter().copied()).collect(),
        };
        self.0.send(frames).await.map_err(|_| Ended::Closed)
    }

    async fn closed(&mut self) -> Ended {
        self.0.closed().await;
        Ended::Closed
    }
}

#[derive(Deserialize)]
pub(crate) struct Resume {
    last_event_id: Option<u64>,
}

/// `GET /api/resilience/ws` (`?last_event_id=N` resumes, as SSE's header does).
pub(crate) async fn ws(
    State(live): State<Live>,
    Query(resume): Query<Resume>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(admitted) = live.hub.admit() else {
        return full();
    };
    upgrade
        .max_frame_size(MAX_CLIENT_FRAME)
        .max_message_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| async move {
            let mut out = Ws(socket);
            let ended = run(&live, &mut out, resume.last_event_id).await;
            finish(&live.hub, ended, admitted);
            if ended == Ended::Stopping {
                let _ = out.0.send(Message::Close(None)).await;
            }
        })
}

/// `GET /api/resilience/events` (`Last-Event-ID` resumes).
pub(crate) async fn sse(State(live): State<Live>, headers: HeaderMap) -> Response {
    let last = match headers
        .get("last-event-id")
        .map(|v| v.to_str().map(str::parse))
    {
        None => None,
        Some(Ok(Ok(id))) => Some(id),
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Last-Event-ID must be an event id this agent sent (a whole number)",
            )
        }
    };
    let Some(admitted) = live.hub.admit() else {
        return full();
    };
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut out = Sse(tx);
        // Tells EventSource to come back after 1 s, not its default 3 s.
        let ended = match out.0.send(Bytes::from_static(b"retry: 1000\n\n")).await {
            Ok(()) => run(&live, &mut out, last).await,
            Err(_) => Ended::Closed,
        };
        finish(&live.hub, ended, admitted);
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let frame = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), rx))
    });
    let mut r = Body::from_stream(body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

fn full() -> Response {
    let mut r = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the agent serves as many live clients as it may; try again later",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

fn finish(hub: &Hub, ended: Ended, admitted: Admitted) {
    hub.stats.stream_ended[ended as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    drop(admitted);
}

/// The client's first messages: what it missed, or a snapshot (after a `gap` when what it
/// missed is no longer kept).
fn start(live: &Live, last: Option<u64>) -> (broadcast::Receiver<Arc<Msg>>, Vec<Arc<Msg>>) {
    let (rx, start) = live.hub.join(last);
    match start {
        Start::Replay(missed) => (rx, missed),
        Start::Snapshot { seq, recent } => {
            let mut first = Vec::new();
            if let Some(last) = last {
                let missed = live.hub.first_kept().saturating_sub(last + 1);
                first.push(Arc::new(unnumbered("gap", gap(missed, "backlog"))));
            }
            let snap = snapshot(
                live.catalog,
                &live.resets,
                seq,
                &recent,
                (*live.agent).clone(),
            );
            first.push(Arc::new(snap));
            (rx, first)
        }
    }
}

/// One write, or `Stalled` when the client takes longer than `limit` to take it.
async fn write(out: &mut impl Out, batch: &[Arc<Msg>], limit: Duration) -> Result<(), Ended> {
    timeout(limit, out.send(batch))
        .await
        .unwrap_or(Err(Ended::Stalled))
}

/// A message for one client only: no `seq` (and so no SSE `id:`), as the hub's would have.
fn unnumbered(kind: &'static str, mut body: Map<String, Value>) -> Msg {
    body.insert("type".into(), kind.into());
    body.insert("at_ms".into(), now_ms().into());
    Msg::new(None, kind, Value::Object(body).to_string())
}

fn heartbeat() -> Msg {
    unnumbered("heartbeat", Map::new())
}

/// Serves one client until it goes, falls behind, stalls, or the agent stops.
async fn run(live: &Live, out: &mut impl Out, last: Option<u64>) -> Ended {
    let config = &live.hub.config;
    let mut stop = live.hub.stopping();
    let (mut rx, first) = start(live, last);
    let limit = config.write_timeout;
    if let Err(e) = write(out, &first, limit).await {
        return e;
    }
    let mut quiet_until = Instant::now() + config.heartbeat;
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    loop {
        let next = tokio::select! {
            // Messages first: the agent's "stopping" event goes out before the stream ends.
            biased;
            m = rx.recv() => m,
            _ = stop.wait_for(|s| *s) => return Ended::Stopping,
            why = out.closed() => return why,
            () = sleep_until(quiet_until) => Ok(Arc::new(heartbeat())),
        };
        // What else is queued already goes out in the same write.
        let mut next = Some(next);
        loop {
            use broadcast::error::{RecvError, TryRecvError};
            let m = match next.take() {
                Some(m) => m,
                None if batch.len() >= WRITE_BATCH => break,
                None => match rx.try_recv() {
                    Ok(m) => Ok(m),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                },
            };
            match m {
                Ok(m) => batch.push(m),
                Err(RecvError::Lagged(_)) => return Ended::Slow,
                Err(RecvError::Closed) => return Ended::Stopping,
            }
        }
        if let Err(e) = write(out, &batch, limit).await {
            return e;
        }
        batch.clear();
        quiet_until = Instant::now() + config.heartbeat;
    }
}
