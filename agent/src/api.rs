//! The admin REST API: JSON views of the catalog and the transitions an operator may call.
//!
//! Paths (names are percent-decoded path segments, so `/api/users` is `%2Fapi%2Fusers`):
//!
//! ```text
//! GET  /                                                   the dashboard (see `dashboard`)
//! GET  /healthz
//! GET  /metrics                                            Prometheus (see `metrics`)
//! GET  /api/resilience/circuit-breakers                    every breaker
//! GET  /api/resilience/circuit-breakers/{endpoint}         one breaker
//! POST /api/resilience/circuit-breakers/{endpoint}/reset   -> CLOSED, fresh counts
//! POST /api/resilience/circuit-breakers/{endpoint}/open    -> OPEN as a trip would (open wait, backoff)
//! POST /api/resilience/circuit-breakers/{endpoint}/force-open   body {"duration_seconds": 30} (<= a year) or none
//! POST /api/resilience/circuit-breakers/{endpoint}/disable
//! POST /api/resilience/circuit-breakers/{endpoint}/metrics-only
//! GET  /api/resilience/bulkheads                           every bulkhead
//! GET  /api/resilience/bulkheads/{service}                 one bulkhead
//! POST /api/resilience/bulkheads/{service}/reset           its counters start from zero here
//!                                                          (/metrics stays monotonic)
//! GET  /api/resilience/keyed-circuit-breakers              keyed breakers (aggregates)
//! GET  /api/resilience/keyed-circuit-breakers/{name}       one keyed breaker (aggregates)
//! GET  /api/resilience/keyed-circuit-breakers/{name}/keys?state=open&offset=0&limit=100
//! GET  /api/resilience/keyed-circuit-breakers/{name}/keys/{key}
//! POST /api/resilience/keyed-circuit-breakers/{name}/keys/{key}/reset
//! GET  /api/resilience/keyed-bulkheads                     keyed bulkheads (aggregates)
//! GET  /api/resilience/keyed-bulkheads/{name}              one keyed bulkhead (aggregates)
//! GET  /api/resilience/keyed-bulkheads/{name}/keys?busy=true&offset=0&limit=100
//! GET  /api/resilience/keyed-bulkheads/{name}/keys/{key}   calls in flight and limit
//! GET  /api/resilience/retry-budgets
//! GET  /api/resilience/retries                             named retry policies
//! GET  /api/resilience/slos
//! GET  /api/resilience/dashboard/summary                   counts by state, utilisation
//! GET  /api/resilience/openapi.json                        the OpenAPI 3.1 document
//! ```
//!
//! **Named breakers and keys.** `circuit-breakers/{endpoint}` (GET and `reset`) finds the named
//! breaker listed as `endpoint`; when there is none, the first keyed breaker (by listed name)
//! that holds a key written `endpoint`, and the answer then carries `"registry"` and `"key"`.
//! A named breaker always wins; the keyed paths address a key without ambiguity.
//!
//! **Keys** are listed a page at a time (`limit` at most 1,000; `matching` counts every key that
//! passes the filter), so a registry of a million keys is never listed whole.
//!
//! Every request first passes the `Host`, `Origin` and token checks of `guard.rs`.
//!
//! Errors are RFC 9457 problem details (`application/problem+json`): 404 for an unknown name or
//! path, 405 for a method a path does not take, 400 for a body that is not the JSON asked for,
//! 413 for a body over 16 KiB.

use std::time::Duration;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRef, Path, Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use surgewall::breaker::keyed::KeySnapshot;
use surgewall::breaker::Counts;
use surgewall::catalog::{Catalog, KeyedBreakerView, KeyedBulkheadView};
use surgewall::slo::SloTracker;
use surgewall::{
    Breaker, BreakerMetrics, Bulkhead, BulkheadMetrics, RetryBudget, RetryPolicy, State, StopReason,
};

use crate::metrics::{render_with, Format};
use crate::server::Limits;
use crate::stream::client::{self, Live};

type Cat = AxState<&'static Catalog>;

/// What the handlers share: the catalog, the bulkheads' statistics at their last reset, and
/// the live stream.
#[derive(Clone)]
pub(crate) struct App {
    catalog: &'static Catalog,
    resets: Arc<Resets>,
    live: Live,
}

impl App {
    pub(crate) fn new(live: Live) -> Self {
        App {
            catalog: live.catalog,
            resets: live.resets.clone(),
            live,
        }
    }
}

impl FromRef<App> for Live {
    fn from_ref(app: &App) -> Self {
        app.live.clone()
    }
}

impl FromRef<App> for &'static Catalog {
    fn from_ref(app: &App) -> Self {
        app.catalog
    }
}

impl FromRef<App> for Arc<Resets> {
    fn from_ref(app: &App) -> Self {
        app.resets.clone()
    }
}

/// A bulkhead's counters when it was last reset through the API, by the address of the
/// bulkhead (the `Weak` keeps that address from going to another bulkhead). The reset is a
/// view: `/metrics` keeps its counters monotonic, as Prometheus needs them.
#[derive(Default)]
pub(crate) struct Resets(Mutex<HashMap<usize, (Weak<Bulkhead>, BulkheadMetrics)>>);

impl Resets {
    fn at_reset(&self, b: &Arc<Bulkhead>) -> Option<BulkheadMetrics> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(Arc::as_ptr(b) as usize)).map(|(_, m)| m.clone())
    }

    fn reset(&self, b: &Arc<Bulkhead>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (w, _)| w.strong_count() > 0);
        map.insert(Arc::as_ptr(b) as usize, (Arc::downgrade(b), b.metrics()));
    }
}

pub(crate) fn router(app: App, policy: crate::guard::Policy, limits: &Limits) -> Router {
    let breaker = "/api/resilience/circuit-breakers/{endpoint}";
    let keyed = "/api/resilience/keyed-circuit-breakers/{name}";
    let keyed_bh = "/api/resilience/keyed-bulkheads/{name}";
    Router::new()
        .route("/", get(crate::dashboard::page))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .route("/api/resilience/ws", get(client::ws))
        .route("/api/resilience/events", get(client::sse))
        .route("/api/resilience/circuit-breakers", get(breakers))
        .route(breaker, get(one_breaker))
        .route(&format!("{breaker}/reset"), post(reset))
        .route(&format!("{breaker}/open"), post(open))
        .route(&format!("{breaker}/force-open"), post(force_open))
        .route(&format!("{breaker}/disable"), post(disable))
        .route(&format!("{breaker}/metrics-only"), post(metrics_only))
        .route("/api/resilience/bulkheads", get(bulkheads))
        .route("/api/resilience/bulkheads/{service}", get(one_bulkhead))
        .route(
            "/api/resilience/bulkheads/{service}/reset",
            post(reset_bulkhead),
        )
        .route(
            "/api/resilience/keyed-circuit-breakers",
            get(keyed_breakers),
        )
        .route(keyed, get(one_keyed_breaker))
        .route(&format!("{keyed}/keys"), get(keyed_keys))
        .route(&format!("{keyed}/keys/{{key}}"), get(keyed_key))
        .route(
            &format!("{keyed}/keys/{{key}}/reset"),
            post(keyed_key_reset),
        )
        .route("/api/resilience/keyed-bulkheads", get(keyed_bulkheads))
        .route(keyed_bh, get(one_keyed_bulkhead))
        .route(&format!("{keyed_bh}/keys"), get(keyed_bulkhead_keys))
        .route(&format!("{keyed_bh}/keys/{{key}}"), get(keyed_bulkhead_key))
        .route("/api/resilience/retry-budgets", get(retry_budgets))
        .route("/api/resilience/retries", get(retries))
        .route("/api/resilience/slos", get(slos))
        .route("/api/resilience/dashboard/summary", get(summary))
        .route(
            "/api/resilience/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such path") })
        .method_not_allowed_fallback(|| async {
            problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "this path does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            crate::server::in_time,
        ))
        .layer(axum::middleware::from_fn_with_state(
            policy,
            crate::guard::check,
        ))
        .with_state(app)
}

/// The largest request body taken (413 beyond).
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// An RFC 9457 problem: `type` is `about:blank`, so `title` is the status's own phrase.
pub(crate) fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn metrics(AxState(live): AxState<Live>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let text = render_with(live.catalog, format, Some(&live.hub.stats));
    ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
}

/// `{key: [view of each listed policy]}`, in the catalog's order (by listed name).
fn listing<T: ?Sized>(
    key: &str,
    listed: Vec<(String, Arc<T>)>,
    view: impl Fn(&str, &T) -> Value,
) -> Json<Value> {
    let views: Vec<Value> = listed.iter().map(|(n, p)| view(n, p)).collect();
    Json(json!({ key: views }))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A window's counts and rates; a rate the core reports absent ("not enough data") is null,
/// never a 0 that reads as healthy.
fn counts(c: &Counts, failure_rate: Option<f64>, slow_call_rate: Option<f64>) -> Value {
    json!({
        "calls": c.calls,
        "failures": c.failures,
        "slow": c.slow,
        "failure_rate": failure_rate,
        "slow_call_rate": slow_call_rate,
    })
}

pub(crate) fn breaker_view(name: &str, m: &BreakerMetrics) -> Value {
    json!({
        "name": name,
        "state": m.state.as_str(),
        "generation": m.generation,
        "time_in_state_ms": ms(m.time_in_state),
        // None: admits now. A forced open without a duration reads as "never" (u64::MAX ns):
        // null as well, which the state (forced_open) tells apart.
        "retry_after_ms": m.retry_after.filter(|d| d.as_nanos() < u128::from(u64::MAX)).map(ms),
        "failure_rate_threshold": m.failure_rate_threshold,
        "window": counts(&m.window, m.failure_rate, m.slow_call_rate),
        "last_window": counts(&m.last_window, m.last_failure_rate, m.last_slow_call_rate),
        "minimum_calls": m.minimum_calls,
        "totals": {
            "successes": m.successes,
            "failures": m.failures,
            "slow_calls": m.slow_calls,
            "ignored": m.ignored,
            "rejected_open": m.rejected_open,
            "rejected_half_open": m.rejected_half_open,
            "late_results": m.late_results,
            "unexpected_results": m.unexpected_results,
        },
        "consecutive_failures": m.consecutive_failures,
        "consecutive_opens": m.consecutive_opens,
        "half_open": {"admitted": m.half_open_admitted, "reported": m.half_open_reported},
        "clock": format!("{:?}", m.clock).to_lowercase(),
    })
}

/// A bulkhead's view; its counters count from the last reset through the API, if any.
pub(crate) fn bulkhead_view(name: &str, b: &Arc<Bulkhead>, resets: &Resets) -> Value {
    let m = b.metrics();
    let base = resets.at_reset(b);
    let since = |now: u64, then: fn(&BulkheadMetrics) -> u64| {
        now.saturating_sub(base.as_ref().map_or(0, then))
    };
    let total_wait = m
        .total_wait
        .saturating_sub(base.as_ref().map_or(Duration::ZERO, |b| b.total_wait));
    json!({
        "name": name,
        "active": m.active,
        "queued": m.waiting,
        "max_concurrent": m.max_concurrent,
        "utilisation": m.active as f64 / (m.max_concurrent.max(1)) as f64,
        "accepted": since(m.accepted, |b| b.accepted),
        "rejected": since(m.rejected, |b| b.rejected),
        "timed_out": since(m.timed_out, |b| b.timed_out),
        "waited": since(m.waited, |b| b.waited),
        "total_wait_ms": ms(total_wait),
        "max_wait_ms": ms(m.max_wait),
        "unexpected_releases": since(m.unexpected_releases, |b| b.unexpected_releases),
        "counting_since_reset": base.is_some(),
    })
}

async fn breakers(AxState(catalog): Cat) -> Json<Value> {
    listing("circuit_breakers", catalog.breakers(), |n, b| {
        breaker_view(n, &b.metrics())
    })
}

fn not_found_breaker(name: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        format!("no circuit breaker named {name:?}, and no keyed breaker holds that key"),
    )
}

fn find_breaker(catalog: &Catalog, name: &str) -> Result<Arc<Breaker>, Response> {
    catalog.breaker(name).ok_or_else(|| not_found_breaker(name))
}

/// The first keyed breaker (by listed name) holding a key written `key`.
fn find_key(
    catalog: &Catalog,
    key: &str,
) -> Option<(String, Arc<dyn KeyedBreakerView>, KeySnapshot)> {
    catalog
        .keyed_breakers()
        .into_iter()
        .find_map(|(n, k)| Some((n, k.clone(), k.key(key)?)))
}

async fn one_breaker(AxState(catalog): Cat, Path(name): Path<String>) -> Response {
    if let Some(b) = catalog.breaker(&name) {
        return Json(breaker_view(&name, &b.metrics())).into_response();
    }
    match find_key(catalog, &name) {
        Some((registry, _, snapshot)) => {
            Json(key_view(&registry, &name, &snapshot)).into_response()
        }
        None => not_found_breaker(&name),
    }
}

/// Runs a manual transition and answers with the breaker as it is after it.
fn transition(catalog: &Catalog, name: &str, act: impl FnOnce(&Breaker)) -> Response {
    match find_breaker(catalog, name) {
        Ok(b) => {
            act(&b);
            Json(breaker_view(name, &b.metrics())).into_response()
        }
        Err(r) => r,
    }
}

async fn reset(AxState(catalog): Cat, Path(name): Path<String>) -> Response {
    if catalog.breaker(&name).is_none() {
        if let Some((registry, keyed, _)) = find_key(catalog, &name) {
            return reset_key(&registry, &*keyed, &name);
        }
    }
    transition(catalog, &name, Breaker::reset)
}

fn reset_key(registry: &str, keyed: &dyn KeyedBreakerView, key: &str) -> Response {
    match keyed.reset_key(key).then(|| keyed.key(key)).flatten() {
        Some(snapshot) => Json(key_view(registry, key, &snapshot)).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            format!("{registry:?} holds no key {key:?}"),
        ),
    }
}

/// OPEN as a trip would make it (`Breaker::open`): the open wait and its backoff apply, then
/// the breaker probes; unlike `force-open`, which holds it until moved or for a duration.
async fn open(AxState(catalog): Cat, Path(name): Path<String>) -> Response {
    transition(catalog, &name, Breaker::open)
}

async fn disable(AxState(catalog): Cat, Path(name): Path<String>) -> Response {
    transition(catalog, &name, Breaker::disable)
}

async fn metrics_only(AxState(catalog): Cat, Path(name): Path<String>) -> Response {
    transition(catalog, &name, Breaker::metrics_only)
}

/// The longest timed force-open the API takes (a year); longer means "until moved by hand",
/// which is a force-open without a duration.
pub(crate) const MAX_FORCE_OPEN_SECS: f64 = 365.0 * 86_400.0;

/// The body of `force-open`: none, `{}`, or a duration in seconds (positive and finite).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ForceOpen {
    duration_seconds: Option<f64>,
}

async fn force_open(
    AxState(catalog): Cat,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let body = match body {
        // An object only: serde would also read a struct from an array (`[null]`).
        Ok(Json(v @ Value::Object(_))) => match serde_json::from_value::<ForceOpen>(v) {
            Ok(b) => b,
            Err(e) => return problem(StatusCode::BAD_REQUEST, format!("bad body: {e}")),
        },
        Ok(Json(_)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object such as {\"duration_seconds\": 30}",
            )
        }
        // An empty body without a JSON content type means "no duration".
        Err(JsonRejection::MissingJsonContentType(_))
            if headers
                .get(header::CONTENT_LENGTH)
                .map_or(true, |l| l == "0") =>
        {
            ForceOpen::default()
        }
        Err(JsonRejection::BytesRejection(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return problem(StatusCode::PAYLOAD_TOO_LARGE, "the body is over 16 KiB")
        }
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let duration = match body.duration_seconds {
        None => None,
        Some(s) if s > 0.0 && s <= MAX_FORCE_OPEN_SECS => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("duration_seconds must be in (0, {MAX_FORCE_OPEN_SECS}] (a year), not {s}"),
            )
        }
    };
    transition(catalog, &name, |b| b.force_open(duration))
}

async fn bulkheads(AxState(catalog): Cat, AxState(resets): AxState<Arc<Resets>>) -> Json<Value> {
    let views: Vec<Value> = catalog
        .bulkheads()
        .iter()
        .map(|(n, b)| bulkhead_view(n, b, &resets))
        .collect();
    Json(json!({ "bulkheads": views }))
}

async fn one_bulkhead(
    AxState(catalog): Cat,
    AxState(resets): AxState<Arc<Resets>>,
    Path(name): Path<String>,
) -> Response {
    match catalog.bulkhead(&name) {
        Some(b) => Json(bulkhead_view(&name, &b, &resets)).into_response(),
        None => not_found("bulkhead", &name),
    }
}

/// Starts the bulkhead's counters (accepted, rejected, timed out, waits) from zero in the API;
/// calls in flight, waiters and `/metrics` are untouched.
async fn reset_bulkhead(
    AxState(catalog): Cat,
    AxState(resets): AxState<Arc<Resets>>,
    Path(name): Path<String>,
) -> Response {
    match catalog.bulkhead(&name) {
        Some(b) => {
            resets.reset(&b);
            Json(bulkhead_view(&name, &b, &resets)).into_response()
        }
        None => not_found("bulkhead", &name),
    }
}

fn registry_view(s: &surgewall::registry::RegistryStats) -> Value {
    json!({
        "keys": s.keys,
        "max_keys": s.max_keys,
        "created": s.created,
        "evicted": s.evicted,
        "overflow_routed": s.overflowed,
        "overflow_rejected": s.rejected,
    })
}

pub(crate) fn key_view(registry: &str, key: &str, s: &KeySnapshot) -> Value {
    json!({
        "registry": registry,
        "key": key,
        "state": s.state.as_str(),
        "generation": s.generation,
        "window": counts(&s.window, s.failure_rate(), s.slow_call_rate()),
        "minimum_calls": s.minimum_calls,
        "consecutive_failures": s.consecutive_failures,
        "consecutive_opens": s.consecutive_opens,
        "retry_after_ms": s.retry_after.filter(|d| d.as_nanos() < u128::from(u64::MAX)).map(ms),
    })
}

/// The 404 for a policy of kind `what` that is not listed as `name`.
fn not_found(what: &str, name: &str) -> Response {
    problem(StatusCode::NOT_FOUND, format!("no {what} named {name:?}"))
}

fn find_keyed(catalog: &Catalog, name: &str) -> Result<Arc<dyn KeyedBreakerView>, Response> {
    catalog
        .keyed_breaker(name)
        .ok_or_else(|| not_found("keyed circuit breaker", name))
}

async fn one_keyed_breaker(AxState(catalog): Cat, Path(name): Path<String>) -> Response {
    match find_keyed(catalog, &name) {
        Ok(k) => Json(keyed_breaker_view(&name, &*k)).into_response(),
        Err(r) => r,
    }
}

/// The most keys one page holds.
const MAX_PAGE: usize = 1000;

/// The largest offset (2^53 - 1: every JSON number up to it is exact).
pub(crate) const MAX_OFFSET: usize = (1 << 53) - 1;

/// A page's offset (default 0) and limit (default 100), or the 400 that says what is wrong.
fn page_bounds(offset: Option<usize>, limit: Option<usize>) -> Result<(usize, usize), Response> {
    let (offset, limit) = (offset.unwrap_or(0), limit.unwrap_or(100));
    if offset > MAX_OFFSET {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            format!("offset must be at most {MAX_OFFSET}, not {offset}"),
        ));
    }
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            format!("limit must be in 1..={MAX_PAGE}, not {limit}"),
        ));
    }
    Ok((offset, limit))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    state: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn keyed_keys(
    AxState(catalog): Cat,
    Path(name): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => match State::ALL.into_iter().find(|st| st.as_str() == s) {
            Some(st) => Some(st),
            None => {
                let all: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
                return problem(
                    StatusCode::BAD_REQUEST,
                    format!("state must be one of {}, not {s:?}", all.join(", ")),
                );
            }
        },
    };
    let (offset, limit) = match page_bounds(q.offset, q.limit) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let keyed = match find_keyed(catalog, &name) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let page = keyed.page(state, offset, limit);
    let keys: Vec<Value> = page
        .keys
        .iter()
        .map(|(k, s)| key_view(&name, k, s))
        .collect();
    Json(json!({
        "registry": name,
        "matching": page.matching,
        "offset": offset,
        "limit": limit,
        "keys": keys,
    }))
    .into_response()
}

async fn keyed_key(AxState(catalog): Cat, Path((name, key)): Path<(String, String)>) -> Response {
    let keyed = match find_keyed(catalog, &name) {
        Ok(k) => k,
        Err(r) => return r,
    };
    match keyed.key(&key) {
        Some(s) => Json(key_view(&name, &key, &s)).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            format!("{name:?} holds no key {key:?}"),
        ),
    }
}

async fn keyed_key_reset(
    AxState(catalog): Cat,
    Path((name, key)): Path<(String, String)>,
) -> Response {
    match find_keyed(catalog, &name) {
        Ok(k) => reset_key(&name, &*k, &key),
        Err(r) => r,
    }
}

pub(crate) fn keyed_breaker_view(n: &str, k: &(dyn KeyedBreakerView + 'static)) -> Value {
    let m = k.metrics();
    let mut transitions = serde_json::Map::new();
    for from in State::ALL {
        for to in State::ALL {
            let v = m.transitions[from as usize][to as usize];
            if v > 0 {
                transitions.insert(format!("{}->{}", from.as_str(), to.as_str()), v.into());
            }
        }
    }
    json!({
        "name": n,
        "registry": registry_view(&m.registry),
        "rejected_open": m.rejected_open,
        "rejected_half_open": m.rejected_half_open,
        "failures": m.failures,
        "ignored": m.ignored,
        "late_results": m.late_results,
        "transitions": transitions,
    })
}

async fn keyed_breakers(AxState(catalog): Cat) -> Json<Value> {
    listing(
        "keyed_circuit_breakers",
        catalog.keyed_breakers(),
        keyed_breaker_view,
    )
}

pub(crate) fn keyed_bulkhead_view(n: &str, k: &(dyn KeyedBulkheadView + 'static)) -> Value {
    let m = k.metrics();
    json!({
        "name": n,
        "registry": registry_view(&m.registry),
        "per_key_max": m.per_key_max,
        "global_max": m.global_max,
        "global_active": m.global_active,
        "rejected_key": m.rejected_key,
        "rejected_global": m.rejected_global,
    })
}

async fn keyed_bulkheads(AxState(catalog): Cat) -> Json<Value> {
    listing("keyed_bulkheads", catalog.keyed_bulkheads(), |n, k| {
        keyed_bulkhead_view(n, k)
    })
}

fn find_keyed_bulkhead(
    catalog: &Catalog,
    name: &str,
) -> Result<Arc<dyn KeyedBulkheadView>, Response> {
    catalog
        .keyed_bulkhead(name)
        .ok_or_else(|| not_found("keyed bulkhead", name))
}

async fn one_keyed_bulkhead(AxState(catalog): Cat, Path(name): Path<String>) -> Response {
    match find_keyed_bulkhead(catalog, &name) {
        Ok(k) => Json(keyed_bulkhead_view(&name, &*k)).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadQuery {
    busy: Option<bool>,
    offset: Option<usize>,
    limit: Option<usize>,
}

pub(crate) fn load_view(registry: &str, key: &str, active: u64, limit: u32) -> Value {
    json!({"registry": registry, "key": key, "active": active, "limit": limit})
}

async fn keyed_bulkhead_keys(
    AxState(catalog): Cat,
    Path(name): Path<String>,
    query: Result<Query<LoadQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let (offset, limit) = match page_bounds(q.offset, q.limit) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let keyed = match find_keyed_bulkhead(catalog, &name) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let page = keyed.page(q.busy.unwrap_or(false), offset, limit);
    let keys: Vec<Value> = page
        .keys
        .iter()
        .map(|(k, active, max)| load_view(&name, k, *active, *max))
        .collect();
    Json(json!({
        "registry": name,
        "matching": page.matching,
        "offset": offset,
        "limit": limit,
        "keys": keys,
    }))
    .into_response()
}

async fn keyed_bulkhead_key(
    AxState(catalog): Cat,
    Path((name, key)): Path<(String, String)>,
) -> Response {
    let keyed = match find_keyed_bulkhead(catalog, &name) {
        Ok(k) => k,
        Err(r) => return r,
    };
    match keyed.key(&key) {
        Some((active, max)) => Json(load_view(&name, &key, active, max)).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            format!("{name:?} holds no key {key:?}"),
        ),
    }
}

pub(crate) fn retry_budget_view(n: &str, b: &RetryBudget) -> Value {
    let m = b.metrics();
    json!({
        "name": n,
        "requests": m.requests,
        "retries": m.retries,
        "allowed": m.allowed,
        "remaining": m.remaining,
        "granted_total": m.granted_total,
        "refused_total": m.refused_total,
    })
}

async fn retry_budgets(AxState(catalog): Cat) -> Json<Value> {
    listing("retry_budgets", catalog.retry_budgets(), retry_budget_view)
}

fn retry_view(n: &str, p: &RetryPolicy) -> Value {
    let m = p.metrics();
    let stops: serde_json::Map<String, Value> = StopReason::ALL
        .into_iter()
        .map(|r| (r.as_str().to_owned(), m.stopped(r).into()))
        .collect();
    json!({
        "name": n,
        "operations": m.operations,
        "retries": m.retries,
        "stops": stops,
    })
}

async fn retries(AxState(catalog): Cat) -> Json<Value> {
    listing("retries", catalog.retry_policies(), retry_view)
}

pub(crate) fn slo_view(n: &str, s: &SloTracker) -> Value {
    let m = s.metrics();
    let burn = |b: &surgewall::slo::BurnMetrics| {
        json!({
            "long_burn": b.long_burn,
            "short_burn": b.short_burn,
            "threshold": b.threshold,
            "burning": b.burning,
        })
    };
    json!({
        "name": n,
        "objective": m.objective,
        "calls": m.calls,
        "bad": m.bad,
        "error_budget_remaining_ratio": m.budget_remaining_fraction,
        "fast": burn(&m.fast),
        "slow": burn(&m.slow),
        "holding_breaker": m.holding_breaker,
    })
}

async fn slos(AxState(catalog): Cat) -> Json<Value> {
    listing("slos", catalog.slos(), slo_view)
}

async fn summary(AxState(catalog): Cat) -> Json<Value> {
    Json(summary_view(catalog))
}

/// Counts by state, bulkhead utilisation, SLOs burning: the dashboard's cards.
pub(crate) fn summary_view(catalog: &Catalog) -> Value {
    let mut by_state = serde_json::Map::new();
    for s in State::ALL {
        by_state.insert(s.as_str().to_owned(), 0.into());
    }
    let breakers = catalog.breakers();
    for (_, b) in &breakers {
        let entry = by_state.entry(b.state().as_str()).or_insert(0.into());
        *entry = (entry.as_u64().unwrap_or(0) + 1).into();
    }
    let (mut active, mut max) = (0u64, 0u64);
    let bulkheads = catalog.bulkheads();
    for (_, b) in &bulkheads {
        let m = b.metrics();
        active += m.active;
        max += m.max_concurrent;
    }
    let slos = catalog.slos();
    let burning = slos
        .iter()
        .filter(|(_, s)| {
            let m = s.metrics();
            m.fast.burning || m.slow.burning
        })
        .count();
    json!({
        "circuit_breakers": {"total": breakers.len(), "by_state": by_state},
        "bulkheads": {
            "total": bulkheads.len(),
            "active": active,
            "max_concurrent": max,
            "utilisation": if max == 0 { 0.0 } else { active as f64 / max as f64 },
        },
        "keyed_circuit_breakers": catalog.keyed_breakers().len(),
        "keyed_bulkheads": catalog.keyed_bulkheads().len(),
        "slos": {"total": slos.len(), "burning": burning},
        "retry_budgets": catalog.retry_budgets().len(),
        "retries": catalog.retry_policies().len(),
    })
}
