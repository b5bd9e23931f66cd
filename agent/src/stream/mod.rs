//! The live stream: what `GET /api/resilience/ws` (WebSocket) and `GET /api/resilience/events`
//! (Server-Sent Events) carry to the dashboard and to any other client.
//!
//! ```text
//!  core event rings ──poll──▶ Feed ──publish──▶ Hub ──broadcast──▶ one task per client ──▶ socket
//!  catalog views ─(every update interval)─┘      │ seq, backlog (Last-Event-ID), recent
//! ```
//!
//! * [`feed`](feed) reads the process's event ring every couple of milliseconds (publishers
//!   never wait on it: the ring is the core's, lock-free) and turns each event into a JSON
//!   message naming its policy; a ring overrun becomes a `gap` message with the count. Every
//!   update interval it diffs the catalog's views and publishes what changed, and samples
//!   bulkheads for saturation.
//! * [`Hub`] numbers messages (`seq`), keeps a bounded backlog for SSE resumption and the last
//!   events for new clients' snapshots, and hands each message to every client through a
//!   bounded broadcast queue. Publishing never waits for a client.
//! * [`client`](client) runs one task per client: first a snapshot (or, on resumption, what it
//!   missed), then every message, with heartbeats when quiet. A client whose queue overflows
//!   (it reads slower than messages come) or whose socket stays unwritable past the write
//!   timeout is disconnected, with the reason counted; the others never notice.
//!
//! The message contract is documented for clients in the README ("Live stream").

pub(crate) mod client;
pub(crate) mod feed;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::ws::Utf8Bytes;
use serde_json::{Map, Value};
use tokio::sync::{broadcast, watch};

/// How the stream behaves; set with the [`AgentBuilder`](crate::AgentBuilder)'s `stream_*`
/// methods.
#[derive(Clone, Debug)]
pub(crate) struct StreamConfig {
    /// Clients (WebSocket and SSE together) served at once; more are refused with 503.
    pub(crate) max_clients: usize,
    /// Messages a client may fall behind before it is disconnected as slow.
    pub(crate) queue: usize,
    /// How long one write to a client may wait before it is disconnected as stalled.
    pub(crate) write_timeout: Duration,
    /// A heartbeat after this long without a message.
    pub(crate) heartbeat: Duration,
    /// How often changed views are sent (and bulkheads sampled for saturation).
    pub(crate) update_interval: Duration,
    /// Messages kept for `Last-Event-ID` resumption, and the most bytes they may take.
    pub(crate) backlog: usize,
    pub(crate) backlog_bytes: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_clients: 64,
            queue: 1024,
            write_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(15),
            update_interval: Duration::from_secs(1),
            backlog: 1024,
            backlog_bytes: 4 << 20,
        }
    }
}

/// The events a new client's snapshot carries as `recent`.
const RECENT: usize = 100;

/// Why a client's stream ended (the label of `surgewall_agent_stream_disconnects_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The client went away.
    Closed,
    /// It fell more than the queue behind.
    Slow,
    /// A write waited longer than the write timeout.
    Stalled,
    /// It broke the WebSocket protocol or sent a frame over the cap.
    Protocol,
    /// The agent is stopping.
    Stopping,
}

impl Ended {
    pub(crate) const ALL: [Ended; 5] = [
        Ended::Closed,
        Ended::Slow,
        Ended::Stalled,
        Ended::Protocol,
        Ended::Stopping,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ended::Closed => "closed",
            Ended::Slow => "slow",
            Ended::Stalled => "stalled",
            Ended::Protocol => "protocol",
            Ended::Stopping => "stopping",
        }
    }
}

/// One message, encoded once for every client: its JSON (a WebSocket text frame) and its SSE
/// frame.
#[derive(Debug)]
pub(crate) struct Msg {
    /// `None` for heartbeats (and so no SSE `id:` line).
    pub(crate) seq: Option<u64>,
    pub(crate) json: Utf8Bytes,
    pub(crate) sse: Bytes,
}

impl Msg {
    pub(crate) fn new(seq: Option<u64>, kind: &'static str, json: String) -> Self {
        let mut sse = String::with_capacity(json.len() + 40);
        if let Some(seq) = seq {
            sse.push_str(&format!("id: {seq}\n"));
        }
        // The JSON has no raw newline (serde_json escapes them), so it is one `data:` line.
        sse.push_str(&format!("event: {kind}\ndata: {json}\n\n"));
        Msg {
            seq,
            json: json.into(),
            sse: Bytes::from(sse),
        }
    }
}

/// The agent's own counters, served on `/metrics` as `surgewall_agent_*`.
#[derive(Debug, Default)]
pub(crate) struct AgentStats {
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) stream_clients: AtomicUsize,
    pub(crate) stream_refused: AtomicU64,
    pub(crate) stream_ended: [AtomicU64; 5],
    pub(crate) stream_messages: AtomicU64,
    pub(crate) ring_missed: AtomicU64,
}

impl AgentStats {
    pub(crate) fn ended(&self, why: Ended) -> u64 {
        self.stream_ended[why as usize].load(Ordering::Relaxed)
    }
}

struct Log {
    seq: u64,
    backlog: VecDeque<Arc<Msg>>,
    backlog_bytes: usize,
    recent: VecDeque<Arc<Msg>>,
}

/// Numbers, keeps and broadcasts messages (see the module docs).
pub(crate) struct Hub {
    tx: broadcast::Sender<Arc<Msg>>,
    log: Mutex<Log>,
    pub(crate) config: StreamConfig,
    pub(crate) stats: Arc<AgentStats>,
    stopping: watch::Sender<bool>,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether a message of this type is an event (kept in `recent`), not a snapshot or update.
fn is_event(kind: &str) -> bool {
    !matches!(kind, "snapshot" | "update" | "heartbeat")
}

/// What a client is sent before the live messages.
pub(crate) enum Start {
    /// A snapshot (built by the caller: the catalog's views), with the seq it is current at
    /// and the recent events it carries.
    Snapshot { seq: u64, recent: Vec<Arc<Msg>> },
    /// A resumption: the messages after the client's last id, from the backlog.
    Replay(Vec<Arc<Msg>>),
}

/// A client's place among the admitted ones; leaving (drop) frees it.
pub(crate) struct Admitted(Arc<AgentStats>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.stream_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hub {
    pub(crate) fn new(config: StreamConfig, stats: Arc<AgentStats>) -> Self {
        let (tx, _) = broadcast::channel(config.queue.max(1));
        Hub {
            tx,
            log: Mutex::new(Log {
                seq: 0,
                backlog: VecDeque::new(),
                backlog_bytes: 0,
                recent: VecDeque::new(),
            }),
            config,
            stats,
            stopping: watch::channel(false).0,
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers `body` (adding `type`, `seq` and `at_ms`), keeps it and sends it to every client.
    pub(crate) fn publish(&self, kind: &'static str, mut body: Map<String, Value>) -> u64 {
        let mut log = self.log();
        log.seq += 1;
        let seq = log.seq;
        body.insert("type".into(), kind.into());
        body.insert("seq".into(), seq.into());
        body.insert("at_ms".into(), now_ms().into());
        let msg = Arc::new(Msg::new(Some(seq), kind, Value::Object(body).to_string()));
        log.backlog_bytes += msg.json.len();
        log.backlog.push_back(msg.clone());
        while log.backlog.len() > self.config.backlog
            || (log.backlog_bytes > self.config.backlog_bytes && log.backlog.len() > 1)
        {
            let old = log.backlog.pop_front().expect("not empty");
            log.backlog_bytes -= old.json.len();
        }
        if is_event(kind) {
            log.recent.push_back(msg.clone());
            if log.recent.len() > RECENT {
                log.recent.pop_front();
            }
        }
        // Sent under the log's lock, so that a client joining (also under it) gets every
        // message after its start exactly once. No client is waited on: a full queue makes its
        // slowest reader lag, and that reader is disconnected when it next reads.
        let _ = self.tx.send(msg);
        self.stats.stream_messages.fetch_add(1, Ordering::Relaxed);
        seq
    }

    /// Admits one more client, or `None` at the cap.
    pub(crate) fn admit(&self) -> Option<Admitted> {
        let clients = &self.stats.stream_clients;
        let mut n = clients.load(Ordering::Relaxed);
        loop {
            if n >= self.config.max_clients {
                self.stats.stream_refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match clients.compare_exchange_weak(n, n + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(Admitted(self.stats.clone())),
                Err(now) => n = now,
            }
        }
    }

    /// A client's receiver and start: a replay when `last_id` is still in the backlog, else a
    /// snapshot (after a `gap` when `last_id` was given but is gone).
    pub(crate) fn join(&self, last_id: Option<u64>) -> (broadcast::Receiver<Arc<Msg>>, Start) {
        let log = self.log();
        let rx = self.tx.subscribe();
        if let Some(last) = last_id.filter(|&l| l <= log.seq) {
            let first = log
                .backlog
                .front()
                .and_then(|m| m.seq)
                .unwrap_or(log.seq + 1);
            if last + 1 >= first {
                let after = log.backlog.iter().filter(|m| m.seq > Some(last));
                return (rx, Start::Replay(after.cloned().collect()));
            }
        }
        let recent = log.recent.iter().cloned().collect();
        (
            rx,
            Start::Snapshot {
                seq: log.seq,
                recent,
            },
        )
    }

    /// The oldest seq the backlog can replay from (for a `gap`'s count).
    pub(crate) fn first_kept(&self) -> u64 {
        let log = self.log();
        log.backlog
            .front()
            .and_then(|m| m.seq)
            .unwrap_or(log.seq + 1)
    }

    /// Tells every client the agent stops (an `agent` event), then ends their streams.
    pub(crate) fn stop(&self) {
        let mut body = Map::new();
        body.insert("state".into(), "stopping".into());
        self.publish("agent", body);
        let _ = self.stopping.send(true);
    }

    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(backlog: usize) -> Hub {
        let config = StreamConfig {
            backlog,
            queue: 4,
            ..StreamConfig::default()
        };
        Hub::new(config, Arc::default())
    }

    fn event(h: &Hub) -> u64 {
        h.publish("transition", Map::new())
    }

    #[test]
    fn a_resumption_replays_what_the_backlog_holds_and_else_starts_afresh() {
        let h = hub(3);
        for _ in 0..5 {
            event(&h);
        }
        // Holds 3, 4 and 5.
        let Start::Replay(m) = h.join(Some(3)).1 else {
            panic!("3 is in the backlog")
        };
        assert_eq!(
            m.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [Some(4), Some(5)]
        );
        let Start::Replay(m) = h.join(Some(2)).1 else {
            panic!("2 is the last before the backlog: 3.. replays")
        };
        assert_eq!(m.len(), 3);
        assert!(matches!(h.join(Some(1)).1, Start::Snapshot { seq: 5, .. }));
        assert!(
            matches!(h.join(Some(99)).1, Start::Snapshot { .. }),
            "an id never sent"
        );
        assert!(matches!(h.join(None).1, Start::Snapshot { .. }));
        assert_eq!(h.first_kept(), 3);
    }

    #[test]
    fn a_client_that_falls_a_queue_behind_lags_and_the_publisher_never_waits() {
        let h = hub(16);
        let (mut slow, _) = h.join(None);
        for _ in 0..10 {
            event(&h); // never blocks, though `slow` reads nothing
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(6))
        ));
    }

    #[test]
    fn clients_are_capped_and_leaving_frees_a_place() {
        let h = Hub::new(
            StreamConfig {
                max_clients: 2,
                ..StreamConfig::default()
            },
            Arc::default(),
        );
        let a = h.admit().unwrap();
        let _b = h.admit().unwrap();
        assert!(h.admit().is_none());
        assert_eq!(h.stats.stream_refused.load(Ordering::Relaxed), 1);
        drop(a);
        assert!(h.admit().is_some());
    }

    #[test]
    fn recent_keeps_events_only() {
        let h = hub(16);
        event(&h);
        h.publish("update", Map::new());
        let Start::Snapshot { recent, .. } = h.join(None).1 else {
            panic!()
        };
        assert_eq!(recent.len(), 1);
        assert!(recent[0].json.contains(r#""type":"transition""#));
    }
}
