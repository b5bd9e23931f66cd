//! What the stream says: the core's events as JSON messages naming their policies, the
//! catalog's views (a client's snapshot, and every update interval what changed), and the
//! bulkheads' saturation, sampled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use surgewall::catalog::Catalog;
use surgewall::events::{Event, EventKind, Subscription};
use surgewall::State;

use super::{Hub, Msg};
use crate::api::{self, Resets};

/// What a source id names: the collection it is listed in, and its listed name.
#[derive(Clone, Debug)]
struct Source {
    kind: &'static str,
    name: String,
}

/// One view per listed policy, by collection (`circuit_breakers`, ...) then name.
type Views = BTreeMap<&'static str, BTreeMap<String, Value>>;

/// Fields that change with time alone: left out when deciding whether a view changed (the
/// dashboard counts retry-after down itself).
const VOLATILE: [&str; 2] = ["time_in_state_ms", "retry_after_ms"];

/// Events published between two yields of the feed (see [`Feed::drain`]).
const BATCH: usize = 64;

/// The largest keyed breaker whose keys are searched to name a transition's key when its event
/// key is a hash (see `KeyedBreakerView::key_of_event`).
const KEY_SCAN: usize = 10_000;

/// Keys listed with each keyed registry in views: its worst (not CLOSED) or busiest keys.
const TOP_KEYS: usize = 10;

/// Reads the rings and the catalog for the [`Hub`]. Owned by the agent's feed task.
pub(crate) struct Feed {
    catalog: &'static Catalog,
    resets: Arc<Resets>,
    hub: Arc<Hub>,
    events: Subscription,
    missed: u64,
    sources: HashMap<u64, Source>,
    /// Each listed policy's last view, without its volatile fields, as sent.
    last: HashMap<(&'static str, String), Value>,
    saturated: HashSet<String>,
}

impl Feed {
    pub(crate) fn new(catalog: &'static Catalog, resets: Arc<Resets>, hub: Arc<Hub>) -> Self {
        Feed {
            catalog,
            resets,
            hub,
            events: surgewall::breaker::default_events().subscribe(),
            missed: 0,
            sources: HashMap::new(),
            last: HashMap::new(),
            saturated: HashSet::new(),
        }
    }

    /// Publishes every event the ring holds for us, and a `gap` for any it overran. Yields to
    /// the clients' tasks every [`BATCH`] events, so that a burst reaches them in steps no
    /// larger than their queues (the ring, not a client's queue, is what a burst overruns).
    pub(crate) async fn drain(&mut self) {
        let mut refreshed = false;
        let mut n = 0;
        while let Some(e) = self.events.poll() {
            n += 1;
            if n % BATCH == 0 {
                tokio::task::yield_now().await;
            }
            if !refreshed && !self.sources.contains_key(&e.source) {
                self.sources = sources(self.catalog);
                refreshed = true;
            }
            let source = self.sources.get(&e.source).cloned();
            if let Some((kind, body)) = self.event(&e, source) {
                self.hub.publish(kind, body);
            }
        }
        let missed = self.events.missed();
        if missed > self.missed {
            let n = missed - self.missed;
            self.missed = missed;
            self.hub
                .stats
                .ring_missed
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            self.hub.publish("gap", gap(n, "ring_overrun"));
        }
    }

    fn event(
        &self,
        e: &Event,
        source: Option<Source>,
    ) -> Option<(&'static str, Map<String, Value>)> {
        let mut body = Map::new();
        match &source {
            Some(s) => body.insert("name".into(), s.name.clone().into()),
            None => {
                body.insert("source".into(), e.source.into());
                body.insert("name".into(), Value::Null)
            }
        };
        let mut put = |k: &str, v: Value| {
            body.insert(k.into(), v);
        };
        let kind = match e.kind {
            EventKind::Transition {
                from,
                to,
                generation,
                reason,
            } => {
                put("kind", "circuit_breaker".into());
                put("key", Value::Null);
                transition(&mut put, from, to, generation, reason.as_str());
                let retry = source
                    .as_ref()
                    .and_then(|s| self.catalog.breaker(&s.name))
                    .and_then(|b| b.metrics().retry_after);
                put("retry_after_ms", retry_ms(retry));
                "transition"
            }
            EventKind::KeyedTransition {
                key,
                from,
                to,
                generation,
                reason,
            } => {
                put("kind", "keyed_circuit_breaker".into());
                let registry = source
                    .as_ref()
                    .and_then(|s| self.catalog.keyed_breaker(&s.name));
                let text = registry
                    .as_ref()
                    .and_then(|r| r.key_of_event(key, KEY_SCAN));
                put("event_key", key.into());
                transition(&mut put, from, to, generation, reason.as_str());
                let retry = registry
                    .zip(text.as_ref())
                    .and_then(|(r, t)| r.key(t))
                    .and_then(|s| s.retry_after);
                put("key", text.unwrap_or_else(|| key.to_string()).into());
                put("retry_after_ms", retry_ms(retry));
                "transition"
            }
            EventKind::Evicted { key } => {
                // The key is gone: only its event key is left to tell.
                let kind = source.as_ref().map_or("keyed_circuit_breaker", |s| s.kind);
                put("kind", singular(kind).into());
                put("key", key.to_string().into());
                put("event_key", key.into());
                "evicted"
            }
            EventKind::SloBurn { fast, burn_rate }
            | EventKind::SloRecovered { fast, burn_rate } => {
                put("window", if fast { "fast" } else { "slow" }.into());
                put("burn_rate", burn_rate.into());
                if matches!(e.kind, EventKind::SloBurn { .. }) {
                    "slo_burn"
                } else {
                    "slo_recovered"
                }
            }
            EventKind::RetryBudgetExhausted => "retry_budget_exhausted",
            EventKind::ThresholdChanged { old, new } => {
                put("old", old.into());
                put("new", new.into());
                "threshold_changed"
            }
            _ => return None,
        };
        Some((kind, body))
    }

    /// Every update interval: bulkhead saturation, and (when a client listens) what changed.
    pub(crate) fn update(&mut self) {
        self.sample_saturation();
        if self
            .hub
            .stats
            .stream_clients
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            return;
        }
        let views = views(self.catalog, &self.resets);
        let mut body = Map::new();
        let mut removed = Map::new();
        let mut seen = HashSet::new();
        for (coll, rows) in &views {
            let mut changed = Vec::new();
            for (name, view) in rows {
                let key = (*coll, name.clone());
                let stable = without_volatile(view);
                if self.last.get(&key) != Some(&stable) {
                    changed.push(view.clone());
                    self.last.insert(key.clone(), stable);
                }
                seen.insert(key);
            }
            body.insert((*coll).into(), Value::Array(changed));
        }
        self.last.retain(|key, _| {
            let keep = seen.contains(key);
            if !keep {
                let list = removed.entry(key.0).or_insert_with(|| json!([]));
                if let Value::Array(a) = list {
                    a.push(key.1.clone().into());
                }
            }
            keep
        });
        body.insert("removed".into(), Value::Object(removed));
        body.insert("summary".into(), api::summary_view(self.catalog));
        self.hub.publish("update", body);
    }

    fn sample_saturation(&mut self) {
        let mut now = HashSet::new();
        for (name, b) in self.catalog.bulkheads() {
            let m = b.metrics();
            let full = m.max_concurrent > 0 && m.active >= m.max_concurrent;
            let was = self.saturated.contains(&name);
            if full != was {
                let mut body = Map::new();
                body.insert("name".into(), name.clone().into());
                body.insert("active".into(), m.active.into());
                body.insert("max_concurrent".into(), m.max_concurrent.into());
                body.insert("queued".into(), m.waiting.into());
                let kind = if full {
                    "bulkhead_saturated"
                } else {
                    "bulkhead_recovered"
                };
                self.hub.publish(kind, body);
            }
            if full {
                now.insert(name);
            }
        }
        self.saturated = now;
    }
}

/// Every listed policy's view, by collection (what a snapshot carries).
pub(crate) fn views(c: &Catalog, resets: &Resets) -> Views {
    let mut v = Views::new();
    let mut put = |coll: &'static str, rows: Vec<(String, Value)>| {
        v.insert(coll, rows.into_iter().collect());
    };
    put(
        "circuit_breakers",
        c.breakers()
            .into_iter()
            .map(|(n, b)| (n.clone(), api::breaker_view(&n, &b.metrics())))
            .collect(),
    );
    put(
        "bulkheads",
        c.bulkheads()
            .into_iter()
            .map(|(n, b)| (n.clone(), api::bulkhead_view(&n, &b, resets)))
            .collect(),
    );
    put(
        "keyed_circuit_breakers",
        c.keyed_breakers()
            .into_iter()
            .map(|(n, k)| {
                let mut view = api::keyed_breaker_view(&n, &*k);
                let page = k.page_where(&|s| s != State::Closed, 0, TOP_KEYS);
                let worst = page.keys.iter().map(|(key, s)| api::key_view(&n, key, s));
                view["worst_keys"] = Value::Array(worst.collect());
                (n, view)
            })
            .collect(),
    );
    put(
        "keyed_bulkheads",
        c.keyed_bulkheads()
            .into_iter()
            .map(|(n, k)| {
                let mut view = api::keyed_bulkhead_view(&n, &*k);
                let mut page = k.page(true, 0, usize::MAX).keys;
                page.sort_by_key(|k| std::cmp::Reverse(k.1));
                page.truncate(TOP_KEYS);
                let busiest = page
                    .iter()
                    .map(|(key, a, m)| api::load_view(&n, key, *a, *m));
                view["busiest_keys"] = Value::Array(busiest.collect());
                (n, view)
            })
            .collect(),
    );
    put(
        "slos",
        c.slos()
            .into_iter()
            .map(|(n, s)| (n.clone(), api::slo_view(&n, &s)))
            .collect(),
    );
    put(
        "retry_budgets",
        c.retry_budgets()
            .into_iter()
            .map(|(n, b)| (n.clone(), api::retry_budget_view(&n, &b)))
            .collect(),
    );
    v
}

/// A client's first message: the catalog now, the agent, and the recent events.
pub(crate) fn snapshot(
    catalog: &Catalog,
    resets: &Resets,
    seq: u64,
    recent: &[Arc<Msg>],
    agent: Value,
) -> Msg {
    let mut body = Map::new();
    body.insert("type".into(), "snapshot".into());
    body.insert("seq".into(), seq.into());
    body.insert("at_ms".into(), super::now_ms().into());
    body.insert("agent".into(), agent);
    body.insert("summary".into(), api::summary_view(catalog));
    for (coll, rows) in views(catalog, resets) {
        body.insert(coll.into(), Value::Array(rows.into_values().collect()));
    }
    let recent = recent
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(&m.json).ok());
    body.insert("recent".into(), Value::Array(recent.collect()));
    Msg::new(Some(seq), "snapshot", Value::Object(body).to_string())
}

/// A `gap` message's body.
pub(crate) fn gap(missed: u64, reason: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("missed".into(), missed.into());
    body.insert("reason".into(), reason.into());
    body
}

fn transition(
    put: &mut impl FnMut(&str, Value),
    from: State,
    to: State,
    generation: u64,
    reason: &str,
) {
    put("from", from.as_str().into());
    put("to", to.as_str().into());
    put("reason", reason.into());
    put("generation", generation.into());
}

/// Milliseconds left, or null (admits now, or "never": a forced open without a duration).
fn retry_ms(d: Option<std::time::Duration>) -> Value {
    d.filter(|d| d.as_nanos() < u128::from(u64::MAX))
        .map_or(Value::Null, |d| (d.as_secs_f64() * 1e3).into())
}

/// `keyed_circuit_breakers` -> `keyed_circuit_breaker`: a collection's name for one member.
fn singular(collection: &str) -> &str {
    collection.strip_suffix('s').unwrap_or(collection)
}

fn without_volatile(view: &Value) -> Value {
    let mut v = view.clone();
    if let Value::Object(m) = &mut v {
        for k in VOLATILE {
            m.remove(k);
        }
    }
    v
}

/// Every listed policy that publishes events, by its id.
fn sources(c: &Catalog) -> HashMap<u64, Source> {
    let mut s = HashMap::new();
    let mut add = |id: u64, kind: &'static str, name: String| {
        s.insert(id, Source { kind, name });
    };
    for (n, b) in c.breakers() {
        add(b.id(), "circuit_breakers", n);
    }
    for (n, k) in c.keyed_breakers() {
        add(k.id(), "keyed_circuit_breakers", n);
    }
    for (n, k) in c.keyed_bulkheads() {
        add(k.id(), "keyed_bulkheads", n);
    }
    for (n, t) in c.slos() {
        add(t.id(), "slos", n);
    }
    for (n, b) in c.retry_budgets() {
        add(b.id(), "retry_budgets", n);
    }
    s
}
