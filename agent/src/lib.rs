//! # surgewall-agent
//!
//! The background half of surgewall: one OS thread running a tokio current-thread runtime that
//! serves the [catalog](surgewall::catalog)'s policies to Prometheus (`GET /metrics`) and to
//! operators (the admin REST API under `/api/resilience/`), ticks the coarse clock and sweeps
//! keyed registries for idle keys, so a service that starts the agent needs no loop of its own.
//!
//! The agent reads the catalog only: every number it serves is read from the core's counters
//! when it is asked for (nothing is updated on the hot path for it), and every change it makes
//! is a transition a user could call (reset, force open, disable, metrics-only).
//!
//! ```
//! use std::sync::Arc;
//! use surgewall::catalog::Catalog;
//! use surgewall::{Breaker, BreakerConfig};
//! use surgewall_agent::Agent;
//!
//! let payments = Arc::new(Breaker::new("payments", BreakerConfig::default()));
//! Catalog::global().join_breaker(&payments);
//!
//! let agent = Agent::builder().bind("127.0.0.1:0".parse()?).start()?;
//! println!("metrics on http://{}/metrics", agent.local_addr());
//! agent.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
// The OpenAPI document (`openapi.rs`) is one `json!` literal, deeper than the default allows.
#![recursion_limit = "256"]

mod api;
mod dashboard;
mod guard;
pub mod metrics;
mod openapi;
mod server;
mod stream;
mod tls;

pub use tls::{Tls, TlsError};

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use surgewall::catalog::Catalog;
use surgewall::clock;
use tokio::sync::oneshot;

/// The process id of the process whose agent runs (0: none). One agent per process: the
/// coarse clock it ticks is process-wide. A child made by `fork()` inherits the parent's id
/// but not its thread, so an id other than ours means "none here".
static RUNNING: AtomicU32 = AtomicU32::new(0);

/// Why the agent did not start or stop cleanly.
#[derive(Debug)]
pub enum AgentError {
    /// An agent is already running in this process (stop it first).
    AlreadyRunning,
    /// The address could not be bound.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The runtime or its thread could not be created.
    Runtime(std::io::Error),
    /// The agent's thread panicked; the agent is stopped.
    Panicked,
    /// The token from the environment is unusable (says which variable, never the token).
    Token(String),
    /// The certificate or key named by the environment is unusable (says which variable).
    Tls(String),
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::AlreadyRunning => {
                write!(f, "a surgewall agent is already running in this process")
            }
            AgentError::Bind { addr, source } => write!(f, "cannot bind {addr}: {source}"),
            AgentError::Runtime(e) => write!(f, "cannot start the agent's runtime: {e}"),
            AgentError::Panicked => write!(f, "the agent's thread panicked"),
            AgentError::Token(why) => write!(f, "agent token: {why}"),
            AgentError::Tls(why) => write!(f, "agent TLS: {why}"),
        }
    }
}

impl std::error::Error for AgentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AgentError::Bind { source, .. } => Some(source),
            AgentError::Runtime(e) => Some(e),
            _ => None,
        }
    }
}

/// Configures an [`Agent`] (see [`Agent::builder`]).
#[derive(Debug, Clone)]
pub struct AgentBuilder {
    bind: SocketAddr,
    tick: Duration,
    sweep: Duration,
    catalog: &'static Catalog,
    token: Option<guard::Token>,
    limits: server::Limits,
    stream: stream::StreamConfig,
    tls: Option<Tls>,
}

/// The environment variable a token is read from when the builder sets none.
pub const TOKEN_ENV: &str = "SURGEWALL_AGENT_TOKEN";
/// The environment variable naming a file a token is read from (when [`TOKEN_ENV`] is unset).
pub const TOKEN_FILE_ENV: &str = "SURGEWALL_AGENT_TOKEN_FILE";

/// The environment variables naming a PEM certificate chain and its private key: set both and
/// the admin port serves HTTPS (when the builder sets no [`Tls`]), from any language.
pub const TLS_CERT_ENV: &str = "SURGEWALL_AGENT_TLS_CERT";
/// See [`TLS_CERT_ENV`].
pub const TLS_KEY_ENV: &str = "SURGEWALL_AGENT_TLS_KEY";

/// TLS from the environment: both variables, or neither; one without the other, or files that
/// do not make a TLS server, is an error naming the variable.
fn tls_from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Tls>, AgentError> {
    match (var(TLS_CERT_ENV), var(TLS_KEY_ENV)) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Tls::from_pem_files(&cert, &key)
            .map(Some)
            .map_err(|e| AgentError::Tls(format!("{TLS_CERT_ENV}, {TLS_KEY_ENV}: {e}"))),
        (Some(_), None) => Err(AgentError::Tls(format!(
            "{TLS_CERT_ENV} is set but {TLS_KEY_ENV} is not"
        ))),
        (None, Some(_)) => Err(AgentError::Tls(format!(
            "{TLS_KEY_ENV} is set but {TLS_CERT_ENV} is not"
        ))),
    }
}

/// The token from the environment: `SURGEWALL_AGENT_TOKEN`, else the file that
/// `SURGEWALL_AGENT_TOKEN_FILE` names (surrounding whitespace trimmed). An empty value, or a
/// file that cannot be read, is an error that names the variable (never the token).
fn token_from_env(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<guard::Token>, AgentError> {
    let bad = |what: String| AgentError::Token(what);
    if let Some(t) = var(TOKEN_ENV) {
        if t.trim().is_empty() {
            return Err(bad(format!("{TOKEN_ENV} is set but empty")));
        }
        return Ok(Some(guard::Token::new(&t)));
    }
    let Some(path) = var(TOKEN_FILE_ENV) else {
        return Ok(None);
    };
    let t = std::fs::read_to_string(&path)
        .map_err(|e| bad(format!("{TOKEN_FILE_ENV}: cannot read {path:?}: {e}")))?;
    if t.trim().is_empty() {
        return Err(bad(format!("{TOKEN_FILE_ENV}: {path:?} holds no token")));
    }
    Ok(Some(guard::Token::new(&t)))
}

impl AgentBuilder {
    /// The admin address (default `127.0.0.1:9464`, loopback only; port 0 picks a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// How often the coarse clock is ticked (default 1 ms; coarse reads are that stale at most).
    pub fn tick_interval(mut self, every: Duration) -> Self {
        self.tick = every.max(Duration::from_micros(100));
        self
    }

    /// How often keyed registries are swept for idle keys (default 1 s).
    pub fn sweep_interval(mut self, every: Duration) -> Self {
        self.sweep = every.max(Duration::from_millis(1));
        self
    }

    /// The bearer token changes (POST) need (default: `SURGEWALL_AGENT_TOKEN`, else the file
    /// `SURGEWALL_AGENT_TOKEN_FILE` names, else none). Without a token, changes are allowed on
    /// a loopback bind only. Surrounding whitespace is trimmed; the token is never logged.
    pub fn token(mut self, secret: &str) -> Self {
        self.token = Some(guard::Token::new(secret));
        self
    }

    /// Serves HTTPS instead of HTTP (default: the files `SURGEWALL_AGENT_TLS_CERT` and
    /// `SURGEWALL_AGENT_TLS_KEY` name when both are set, else plain HTTP, fit for loopback only).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connections served at once (default 256; at least 1). Beyond it a connection is
    /// answered `503` and closed.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.limits.max_connections = n.max(1);
        self
    }

    /// How long a client may take to send a request's headers, and may stay idle between
    /// requests (default 10 s): a slow-loris client holds a connection no longer.
    pub fn header_timeout(mut self, d: Duration) -> Self {
        self.limits.header_timeout = d.max(Duration::from_millis(1));
        self
    }

    /// How long reading a request's body and answering may take (default 30 s; `408` beyond).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.limits.request_timeout = d.max(Duration::from_millis(1));
        self
    }

    /// Live-stream clients (WebSocket and SSE together) served at once (default 64); more
    /// are answered `503`.
    pub fn stream_max_clients(mut self, n: usize) -> Self {
        self.stream.max_clients = n;
        self
    }

    /// How many messages a live-stream client may fall behind before it is disconnected as
    /// slow (default 1,024; at least 1).
    pub fn stream_queue(mut self, n: usize) -> Self {
        self.stream.queue = n.max(1);
        self
    }

    /// How long one write to a live-stream client may wait before it is disconnected as
    /// stalled (default 10 s).
    pub fn stream_write_timeout(mut self, d: Duration) -> Self {
        self.stream.write_timeout = d.max(Duration::from_millis(1));
        self
    }

    /// A heartbeat after this long without a message (default 15 s).
    pub fn stream_heartbeat(mut self, d: Duration) -> Self {
        self.stream.heartbeat = d.max(Duration::from_millis(10));
        self
    }

    /// How often the stream sends what changed in the catalog's views and samples bulkheads
    /// for saturation (default 1 s).
    pub fn stream_update_interval(mut self, d: Duration) -> Self {
        self.stream.update_interval = d.max(Duration::from_millis(10));
        self
    }

    /// Messages kept for SSE `Last-Event-ID` resumption (default 1,024, and at most 4 MiB).
    pub fn stream_backlog(mut self, n: usize) -> Self {
        self.stream.backlog = n;
        self
    }

    /// The catalog served (default [`Catalog::global`]).
    pub fn catalog(mut self, catalog: &'static Catalog) -> Self {
        self.catalog = catalog;
        self
    }

    /// Binds the address and starts the agent's thread; returns once it serves.
    pub fn start(self) -> Result<Agent, AgentError> {
        let me = std::process::id();
        let owner = RUNNING.load(Ordering::Acquire);
        if owner == me
            || RUNNING
                .compare_exchange(owner, me, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return Err(AgentError::AlreadyRunning);
        }
        self.spawn(me)
            .inspect_err(|_| RUNNING.store(0, Ordering::Release))
    }

    fn spawn(mut self, pid: u32) -> Result<Agent, AgentError> {
        // Before anything binds: an unusable token fails the start.
        if self.token.is_none() {
            self.token = token_from_env(|v| std::env::var(v).ok())?;
        }
        if self.tls.is_none() {
            self.tls = tls_from_env(|v| std::env::var(v).ok())?;
        }
        let bind_err = |source| AgentError::Bind {
            addr: self.bind,
            source,
        };
        let listener = TcpListener::bind(self.bind).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(AgentError::Runtime)?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("surgewall-agent".into())
            .spawn(move || {
                runtime.block_on(serve(listener, self, stop_rx));
                clock::stop_ticking();
            })
            .map_err(AgentError::Runtime)?;
        Ok(Agent {
            addr,
            pid,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

async fn serve(listener: TcpListener, config: AgentBuilder, stop: oneshot::Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(_) => return,
    };
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let AgentBuilder {
        tick,
        sweep,
        catalog,
        token,
        limits,
        stream,
        tls,
        ..
    } = config;
    let changes = guard::Changes::for_bind(addr, token);
    let policy = guard::Policy {
        hosts: guard::Hosts::for_addr(addr),
        changes: changes.clone(),
        tls: tls.is_some(),
    };
    let stats = Arc::new(stream::AgentStats::default());
    let update_interval = stream.update_interval;
    let hub = Arc::new(stream::Hub::new(stream, stats.clone()));
    let live = stream::client::Live {
        hub: hub.clone(),
        catalog,
        resets: Arc::default(),
        agent: Arc::new(serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "changes": changes.as_str(),
            "heartbeat_ms": hub.config.heartbeat.as_millis() as u64,
        })),
    };
    let mut started = serde_json::Map::new();
    started.insert("state".into(), "started".into());
    hub.publish("agent", started);

    let ticker = tokio::spawn(async move {
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            clock::tick();
        }
    });
    let sweeper = tokio::spawn(async move {
        let mut every = tokio::time::interval(sweep);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            catalog.sweep_keyed();
        }
    });
    let mut feed = stream::feed::Feed::new(catalog, live.resets.clone(), hub.clone());
    let feeder = tokio::spawn(async move {
        let mut poll = tokio::time::interval(FEED_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The first update comes one interval after the start (a client's snapshot is current).
        let first = tokio::time::Instant::now() + update_interval;
        let mut update = tokio::time::interval_at(first, update_interval);
        update.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = poll.tick() => feed.drain().await,
                _ = update.tick() => {
                    feed.drain().await;
                    feed.update();
                }
            }
        }
    });
    let app = api::router(api::App::new(live), policy, &limits);
    let (halt_tx, halt_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(server::serve(listener, app, limits, tls, stats, halt_rx));
    let _ = stop.await;
    feeder.abort();
    hub.stop();
    let _ = halt_tx.send(true);
    let _ = server.await;
    ticker.abort();
    sweeper.abort();
}

/// How often the feed reads the event ring: the live stream's added latency, at most.
const FEED_POLL: Duration = Duration::from_millis(2);

/// A running agent. [`Agent::stop`] (or dropping it) stops serving and joins its thread.
#[derive(Debug)]
pub struct Agent {
    addr: SocketAddr,
    /// The process that started it: after `fork()` the child has the handle but no thread.
    pid: u32,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Agent {
    /// A builder with the defaults: `127.0.0.1:9464`, a 1 ms tick, a 1 s sweep, the global catalog.
    pub fn builder() -> AgentBuilder {
        AgentBuilder {
            bind: SocketAddr::from(([127, 0, 0, 1], 9464)),
            tick: Duration::from_millis(1),
            sweep: Duration::from_secs(1),
            catalog: Catalog::global(),
            token: None,
            limits: server::Limits::default(),
            stream: stream::StreamConfig::default(),
            tls: None,
        }
    }

    /// Whether an agent runs in this process now (in a child made by `fork()`, the parent's
    /// agent does not: its thread was not copied).
    pub fn is_running() -> bool {
        RUNNING.load(Ordering::Acquire) == std::process::id()
    }

    /// Whether this handle's agent runs in this process: false in a child made by `fork()`,
    /// where the handle was copied but the thread was not (start a new agent there).
    pub fn is_alive(&self) -> bool {
        self.thread.is_some() && self.pid == std::process::id()
    }

    /// The address it serves on (the port chosen when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving (connections in progress finish), stops ticking and joins the thread.
    /// In a child made by `fork()` there is no thread to stop: the handle is only released.
    pub fn stop(mut self) -> Result<(), AgentError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), AgentError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        if self.pid != std::process::id() {
            // A forked child: the thread exists only in the parent. Joining it here would wait
            // on a thread id that means nothing in this process; the channel and the runtime's
            // memory are left as they are (the parent owns the real ones).
            std::mem::forget(thread);
            std::mem::forget(self.stop.take());
            return Ok(());
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let joined = thread.join();
        RUNNING.store(0, Ordering::Release);
        joined.map_err(|_| AgentError::Panicked)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_comes_from_both_variables_or_neither() {
        assert!(tls_from_env(|_| None).unwrap().is_none());
        let half = |v: &str| (v == TLS_CERT_ENV).then(|| "/x/cert.pem".to_owned());
        let err = tls_from_env(half).unwrap_err().to_string();
        assert!(err.contains(TLS_KEY_ENV) && err.contains("is not"), "{err}");
        let other = |v: &str| (v == TLS_KEY_ENV).then(|| "/x/key.pem".to_owned());
        assert!(tls_from_env(other)
            .unwrap_err()
            .to_string()
            .contains(TLS_CERT_ENV));
        let missing = |v: &str| Some(format!("/nonexistent/{v}.pem"));
        let err = tls_from_env(missing).unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/SURGEWALL_AGENT_TLS_CERT.pem"),
            "{err}"
        );
    }

    #[test]
    fn the_token_comes_from_the_variable_or_the_file_it_names() {
        let none = |_: &str| None;
        assert!(token_from_env(none).unwrap().is_none());
        let direct = |v: &str| (v == TOKEN_ENV).then(|| "abc".to_owned());
        assert!(token_from_env(direct).unwrap().is_some());
        let empty = |v: &str| (v == TOKEN_ENV).then(|| "  ".to_owned());
        let err = token_from_env(empty).unwrap_err().to_string();
        assert!(err.contains(TOKEN_ENV), "{err}");

        let dir = std::env::temp_dir().join(format!("surgewall-token-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let path = dir.display().to_string();
        let file = |v: &str| (v == TOKEN_FILE_ENV).then(|| path.clone());
        assert!(token_from_env(file).unwrap().is_some());
        std::fs::remove_file(&dir).unwrap();
        let err = token_from_env(file).unwrap_err().to_string();
        assert!(
            err.contains(TOKEN_FILE_ENV) && !err.contains("s3cret"),
            "{err}"
        );
    }
}
