//! Prometheus metrics of every policy in a catalog, read from the core's counters at scrape time.
//!
//! Series (all under `surgewall_`; the policy's listed name is the `endpoint` label of breakers
//! and the `service` label of bulkheads, keyed registries and the rest use `name`):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `circuit_breaker_state` (0 closed, 1 open, 2 half-open, 3 forced-open, 4 disabled, 5 metrics-only) | gauge | `endpoint` |
//! | `circuit_breaker_requests_total` | counter | `endpoint`, `outcome` = success, failure, ignored, rejected, late, unexpected |
//! | `circuit_breaker_slow_calls_total` | counter | `endpoint` |
//! | `circuit_breaker_transitions_total` | counter | `endpoint`, `from`, `to` |
//! | `circuit_breaker_failure_rate_threshold` (when that rule is on) | gauge | `endpoint` |
//! | `circuit_breaker_window_calls`, `circuit_breaker_window_failures`, `circuit_breaker_window_minimum_calls` | gauge | `endpoint` |
//! | `circuit_breaker_failure_rate`, `circuit_breaker_slow_call_rate` (only while the window holds enough calls: no series means "not enough data", never a 0 that reads as healthy) | gauge | `endpoint` |
//! | `circuit_breaker_call_duration_seconds` (breakers that time calls) | histogram | `endpoint` |
//! | `bulkhead_active_calls`, `bulkhead_queued_calls`, `bulkhead_max_concurrent_calls` | gauge | `service` |
//! | `bulkhead_requests_total` | counter | `service`, `outcome` = accepted, rejected, timed_out |
//! | `bulkhead_queue_wait_seconds` (callers that had to wait) | histogram | `service` |
//! | `keyed_circuit_breaker_keys`, `keyed_bulkhead_keys` | gauge | `name` |
//! | `keyed_circuit_breaker_evictions_total`, `keyed_bulkhead_evictions_total` | counter | `name` |
//! | `keyed_circuit_breaker_overflow_total`, `keyed_bulkhead_overflow_total` | counter | `name`, `outcome` = routed, rejected |
//! | `keyed_circuit_breaker_transitions_total` | counter | `name`, `from`, `to` |
//! | `retry_budget_requests`, `retry_budget_retries`, `retry_budget_remaining` (in the window) | gauge | `name` |
//! | `retry_budget_grants_total` | counter | `name`, `outcome` = granted, refused |
//! | `retry_operations_total`, `retry_retries_total` (named retry policies) | counter | `name` |
//! | `retry_stops_total` | counter | `name`, `reason` (success, not_retryable, max_attempts, ...) |
//! | `slo_error_budget_remaining_ratio`, `slo_burn_rate` (`window` = fast_long, fast_short, slow_long, slow_short) | gauge | `name` |
//!
//! | `agent_connections`, `agent_stream_clients` (served by the agent only) | gauge | |
//! | `agent_connections_refused_total`, `agent_stream_refused_total`, `agent_stream_messages_total`, `agent_stream_ring_missed_total` | counter | |
//! | `agent_stream_disconnects_total` | counter | `reason` = closed, slow, stalled, protocol, stopping |
//!
//! | `keyed_circuit_breaker_key_state` (keys not CLOSED, at most [`KEY_SERIES`] per registry) | gauge | `name`, `key` |
//! | `keyed_circuit_breaker_keys_not_closed` | gauge | `name` |
//!
//! Keyed registries are exported as aggregates, plus one series per key only for keys that
//! are not CLOSED, at most [`KEY_SERIES`] per registry: the number of series does not grow with
//! the number of keys (a thousand open keys show as 100 series and a count of 1,000).
//!
//! [`render`] writes the OpenMetrics text format (what Prometheus asks for) or the classic
//! Prometheus text format 0.0.4 (for other scrapers and people).

use std::fmt::{self, Write as _};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use surgewall::catalog::Catalog;
use surgewall::histogram::{Durations, BUCKETS_SECONDS};
use surgewall::{State, StopReason};

use crate::stream::{AgentStats, Ended};

/// The exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Text,
}

impl Format {
    /// The format a scraper asks for in its `Accept` header.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Renders every policy of `catalog` in `format`: what `GET /metrics` serves, and what a host
/// application with its own `/metrics` endpoint can append to its exposition.
///
/// ```
/// use std::sync::Arc;
/// use surgewall::catalog::Catalog;
/// use surgewall::{Breaker, BreakerConfig};
/// use surgewall_agent::metrics::{render, Format};
///
/// let catalog: &'static Catalog = Box::leak(Box::new(Catalog::new())); // or Catalog::global()
/// let b = Arc::new(Breaker::new("payments", BreakerConfig::default()));
/// catalog.join_breaker(&b);
/// b.acquire()?.success();
/// let text = render(catalog, Format::Text);
/// assert!(text.contains(r#"surgewall_circuit_breaker_requests_total{endpoint="payments",outcome="success"} 1"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn render(catalog: &'static Catalog, format: Format) -> String {
    render_with(catalog, format, None)
}

/// [`render`], and the agent's own series when it serves `/metrics`.
pub(crate) fn render_with(
    catalog: &'static Catalog,
    format: Format,
    agent: Option<&Arc<AgentStats>>,
) -> String {
    let mut registry = Registry::with_prefix("surgewall");
    registry.register_collector(Box::new(CatalogCollector(catalog)));
    if let Some(stats) = agent {
        registry.register_collector(Box::new(AgentCollector(stats.clone())));
    }
    let mut out = String::new();
    // Writing to a String cannot fail, and the collector's own writes only fail with it.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    match format {
        Format::OpenMetrics => out,
        Format::Text => to_text_004(&out),
    }
}

/// OpenMetrics text -> Prometheus text 0.0.4: a counter family's HELP and TYPE name the
/// sample (`x_total`), `# UNIT` lines and `# EOF` do not exist there.
fn to_text_004(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    let mut counters = std::collections::HashSet::new();
    for line in open_metrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|r| r.strip_suffix(" counter"))
        {
            counters.insert(name.to_owned());
        }
    }
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        let _ = writeln!(out, "{}", renamed.as_deref().unwrap_or(line).trim_end());
    }
    out
}

/// The agent's own connections and live stream.
#[derive(Debug)]
struct AgentCollector(Arc<AgentStats>);

impl Collector for AgentCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let s = &*self.0;
        let e = &mut enc;
        let none = || Labels::new();
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed) as f64;
        gauge(
            e,
            "agent_connections",
            "Admin connections open",
            None,
            [(none(), n(&s.connections_open))],
        )?;
        counter(
            e,
            "agent_connections_refused",
            "Admin connections refused at the connection cap",
            None,
            [(none(), n(&s.connections_refused))],
        )?;
        gauge(
            e,
            "agent_stream_clients",
            "Live-stream clients (WebSocket and SSE) connected",
            None,
            [(none(), s.stream_clients.load(Relaxed) as f64)],
        )?;
        counter(
            e,
            "agent_stream_refused",
            "Live-stream clients refused at the client cap",
            None,
            [(none(), n(&s.stream_refused))],
        )?;
        counter(
            e,
            "agent_stream_disconnects",
            "Live-stream clients gone, by reason: closed, slow (fell a queue behind), stalled \
             (a write timed out), protocol, stopping",
            None,
            Ended::ALL.map(|r| (with(none(), "reason", r.as_str()), s.ended(r) as f64)),
        )?;
        counter(
            e,
            "agent_stream_messages",
            "Messages published to the live stream",
            None,
            [(none(), n(&s.stream_messages))],
        )?;
        counter(
            e,
            "agent_stream_ring_missed",
            "Core events the agent never read: the event ring overran it (each a gap message)",
            None,
            [(none(), n(&s.ring_missed))],
        )
    }
}

/// The most per-key series one keyed breaker exports (its keys that are not CLOSED).
pub const KEY_SERIES: usize = 100;

/// Reads the catalog at encode time.
#[derive(Debug)]
struct CatalogCollector(&'static Catalog);

type Labels = Vec<(&'static str, String)>;

fn gauge<V: Into<f64>>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, unit, ConstGauge::new(0.0).metric_type())?;
    for (labels, v) in rows {
        let value = ConstGauge::new(v.into());
        if labels.is_empty() {
            // One sample without labels: `name 1`, not `name{} 1`.
            return value.encode(family);
        }
        value.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter<V: Into<f64>>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    let mut family =
        enc.encode_descriptor(name, help, unit, ConstCounter::new(0.0).metric_type())?;
    for (labels, v) in rows {
        let value = ConstCounter::new(v.into());
        if labels.is_empty() {
            // One sample without labels: `name 1`, not `name{} 1`.
            return value.encode(family);
        }
        value.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// What `f` reads of each listed policy, with its listed name.
fn read<T: ?Sized, M>(listed: Vec<(String, Arc<T>)>, f: impl Fn(&T) -> M) -> Vec<(String, M)> {
    listed.into_iter().map(|(n, p)| (n, f(&p))).collect()
}

/// `labels` and one more.
fn with(mut labels: Labels, key: &'static str, value: &str) -> Labels {
    labels.push((key, value.to_owned()));
    labels
}

/// A histogram read from the core (non-cumulative counts per bucket, as prometheus-client
/// takes them; the encoder accumulates).
struct HistogramValue<'a>(&'a Durations);

impl EncodeMetric for HistogramValue<'_> {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder<'_>) -> fmt::Result {
        let d = self.0;
        let bounds = BUCKETS_SECONDS.iter().copied().chain([f64::MAX]); // f64::MAX: +Inf
        let buckets: Vec<(f64, u64)> = bounds.zip(d.counts.iter().copied()).collect();
        encoder.encode_histogram::<NoLabelSet>(d.sum.as_secs_f64(), d.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn histogram<'a>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, &'a Durations)>,
) -> fmt::Result {
    let mut family =
        enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, d) in rows {
        HistogramValue(d).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A transition matrix as a counter family labelled `from` and `to` (pairs that happened).
fn transitions<'a>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, &'a [[u64; 6]; 6])>,
) -> fmt::Result {
    counter(
        enc,
        name,
        help,
        None,
        rows.into_iter().flat_map(|(labels, t)| {
            State::ALL.into_iter().flat_map(move |from| {
                let labels = labels.clone();
                State::ALL.into_iter().filter_map(move |to| {
                    let n = t[from as usize][to as usize];
                    let l = with(
                        with(labels.clone(), "from", from.as_str()),
                        "to",
                        to.as_str(),
                    );
                    (n > 0).then_some((l, n as f64))
                })
            })
        }),
    )
}

impl Collector for CatalogCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let catalog = self.0;
        let e = &mut enc;

        let breakers: Vec<_> = read(catalog.breakers(), |p| p.metrics());
        let ep = |n: &str| -> Labels { vec![("endpoint", n.to_owned())] };
        gauge(
            e,
            "circuit_breaker_state",
            "State: 0 closed, 1 open, 2 half-open, 3 forced-open, 4 disabled, 5 metrics-only",
            None,
            breakers.iter().map(|(n, m)| (ep(n), m.state as u8)),
        )?;
        counter(
            e,
            "circuit_breaker_requests",
            "Calls by outcome: recorded (success, failure, ignored), rejected, or dropped (late, unexpected)",
            None,
            breakers.iter().flat_map(|(n, m)| {
                [
                    ("success", m.successes),
                    ("failure", m.failures),
                    ("ignored", m.ignored),
                    ("rejected", m.rejected_open + m.rejected_half_open),
                    ("late", m.late_results),
                    ("unexpected", m.unexpected_results),
                ]
                .map(|(o, v)| (with(ep(n), "outcome", o), v as f64))
            }),
        )?;
        counter(
            e,
            "circuit_breaker_slow_calls",
            "Calls at or over the slow-call duration (successes and failures)",
            None,
            breakers.iter().map(|(n, m)| (ep(n), m.slow_calls as f64)),
        )?;
        transitions(
            e,
            "circuit_breaker_transitions",
            "State transitions by from and to",
            breakers.iter().map(|(n, m)| (ep(n), &m.transitions)),
        )?;
        gauge(
            e,
            "circuit_breaker_failure_rate_threshold",
            "The failure-rate threshold in force (a dynamic threshold moves it)",
            None,
            breakers
                .iter()
                .filter_map(|(n, m)| Some((ep(n), m.failure_rate_threshold?))),
        )?;
        gauge(
            e,
            "circuit_breaker_window_calls",
            "Calls in the current window",
            None,
            breakers.iter().map(|(n, m)| (ep(n), m.window.calls as f64)),
        )?;
        gauge(
            e,
            "circuit_breaker_window_failures",
            "Failures in the current window",
            None,
            breakers
                .iter()
                .map(|(n, m)| (ep(n), m.window.failures as f64)),
        )?;
        gauge(
            e,
            "circuit_breaker_window_minimum_calls",
            "Calls a closed window needs before its rates are judged (minimum_calls)",
            None,
            breakers
                .iter()
                .map(|(n, m)| (ep(n), m.minimum_calls as f64)),
        )?;
        // Absent rates ("not enough data") have no sample rather than a misleading 0.
        gauge(
            e,
            "circuit_breaker_failure_rate",
            "Failure rate of the current window (half-open: of the probes that reported); no sample while there is not enough data",
            None,
            breakers
                .iter()
                .filter_map(|(n, m)| Some((ep(n), m.failure_rate?))),
        )?;
        gauge(
            e,
            "circuit_breaker_slow_call_rate",
            "Slow-call rate of the current window; no sample while there is not enough data",
            None,
            breakers
                .iter()
                .filter_map(|(n, m)| Some((ep(n), m.slow_call_rate?))),
        )?;

        histogram(
            e,
            "circuit_breaker_call_duration",
            "How long timed calls took (breakers that time calls)",
            breakers
                .iter()
                .filter_map(|(n, m)| Some((ep(n), m.call_durations.as_ref()?))),
        )?;

        let bulkheads: Vec<_> = read(catalog.bulkheads(), |p| p.metrics());
        let svc = |n: &str| -> Labels { vec![("service", n.to_owned())] };
        gauge(
            e,
            "bulkhead_active_calls",
            "Calls in flight",
            None,
            bulkheads.iter().map(|(n, m)| (svc(n), m.active as f64)),
        )?;
        gauge(
            e,
            "bulkhead_queued_calls",
            "Callers waiting for a slot",
            None,
            bulkheads.iter().map(|(n, m)| (svc(n), m.waiting as f64)),
        )?;
        gauge(
            e,
            "bulkhead_max_concurrent_calls",
            "The limit of calls in flight",
            None,
            bulkheads
                .iter()
                .map(|(n, m)| (svc(n), m.max_concurrent as f64)),
        )?;
        counter(
            e,
            "bulkhead_requests",
            "Calls by outcome: accepted, rejected (full, no wait) or timed_out (waited max_wait)",
            None,
            bulkheads.iter().flat_map(|(n, m)| {
                [
                    ("accepted", m.accepted),
                    ("rejected", m.rejected),
                    ("timed_out", m.timed_out),
                ]
                .map(|(o, v)| (with(svc(n), "outcome", o), v as f64))
            }),
        )?;
        histogram(
            e,
            "bulkhead_queue_wait",
            "How long callers that had to wait waited for a slot (admitted or timed out)",
            bulkheads.iter().map(|(n, m)| (svc(n), &m.wait_durations)),
        )?;

        let name = |n: &str| -> Labels { vec![("name", n.to_owned())] };
        let keyed: Vec<_> = read(catalog.keyed_breakers(), |p| p.metrics());
        let keyed_bulkheads: Vec<_> = read(catalog.keyed_bulkheads(), |p| p.metrics());
        for (kind, stats) in [
            (
                "keyed_circuit_breaker",
                keyed
                    .iter()
                    .map(|(n, m)| (n, m.registry.clone()))
                    .collect::<Vec<_>>(),
            ),
            (
                "keyed_bulkhead",
                keyed_bulkheads
                    .iter()
                    .map(|(n, m)| (n, m.registry.clone()))
                    .collect(),
            ),
        ] {
            gauge(
                e,
                &format!("{kind}_keys"),
                "Keys held",
                None,
                stats.iter().map(|(n, s)| (name(n), s.keys as f64)),
            )?;
            counter(
                e,
                &format!("{kind}_evictions"),
                "Idle keys evicted",
                None,
                stats.iter().map(|(n, s)| (name(n), s.evicted as f64)),
            )?;
            counter(
                e,
                &format!("{kind}_overflow"),
                "New keys beyond the cap: routed to the shared entry, or rejected",
                None,
                stats.iter().flat_map(|(n, s)| {
                    [("routed", s.overflowed), ("rejected", s.rejected)]
                        .map(|(o, v)| (with(name(n), "outcome", o), v as f64))
                }),
            )?;
        }
        transitions(
            e,
            "keyed_circuit_breaker_transitions",
            "State transitions of all keys by from and to",
            keyed.iter().map(|(n, m)| (name(n), &m.transitions)),
        )?;

        // Per key, only the keys that need attention (not CLOSED), at most KEY_SERIES of them
        // per registry: the series stay bounded whatever the number of keys.
        let attention: Vec<_> = catalog
            .keyed_breakers()
            .into_iter()
            .map(|(n, k)| (n, k.page_where(&|s| s != State::Closed, 0, KEY_SERIES)))
            .collect();
        gauge(
            e,
            "keyed_circuit_breaker_key_state",
            "State of a key that is not closed (at most 100 per keyed breaker; see _keys_not_closed)",
            None,
            attention.iter().flat_map(|(n, page)| {
                page.keys.iter().map(move |(key, snap)| {
                    (with(name(n), "key", key), snap.state as u8)
                })
            }),
        )?;
        gauge(
            e,
            "keyed_circuit_breaker_keys_not_closed",
            "Keys not closed (all of them, also those beyond the per-key series)",
            None,
            attention
                .iter()
                .map(|(n, page)| (name(n), page.matching as f64)),
        )?;

        let budgets: Vec<_> = read(catalog.retry_budgets(), |p| p.metrics());
        for (series, help, pick) in [
            ("retry_budget_requests", "First attempts in the window", 0),
            ("retry_budget_retries", "Retries granted in the window", 1),
            (
                "retry_budget_remaining",
                "Retries the budget would grant now",
                2,
            ),
        ] {
            gauge(
                e,
                series,
                help,
                None,
                budgets.iter().map(|(n, m)| {
                    let v = [m.requests, m.retries, m.remaining][pick];
                    (name(n), v as f64)
                }),
            )?;
        }
        counter(
            e,
            "retry_budget_grants",
            "Retries asked of the budget, by outcome",
            None,
            budgets.iter().flat_map(|(n, m)| {
                [("granted", m.granted_total), ("refused", m.refused_total)]
                    .map(|(o, v)| (with(name(n), "outcome", o), v as f64))
            }),
        )?;

        let retries: Vec<_> = read(catalog.retry_policies(), |p| p.metrics());
        counter(
            e,
            "retry_operations",
            "Operations started under the policy (schedules made)",
            None,
            retries.iter().map(|(n, m)| (name(n), m.operations as f64)),
        )?;
        counter(
            e,
            "retry_retries",
            "Retries scheduled",
            None,
            retries.iter().map(|(n, m)| (name(n), m.retries as f64)),
        )?;
        counter(
            e,
            "retry_stops",
            "Operations that stopped, by reason",
            None,
            retries.iter().flat_map(|(n, m)| {
                StopReason::ALL
                    .into_iter()
                    .map(move |r| (with(name(n), "reason", r.as_str()), m.stopped(r) as f64))
            }),
        )?;

        let slos: Vec<_> = read(catalog.slos(), |p| p.metrics());
        gauge(
            e,
            "slo_error_budget_remaining_ratio",
            "Share of the error budget left in the SLO window (negative when overspent)",
            None,
            slos.iter()
                .map(|(n, m)| (name(n), m.budget_remaining_fraction)),
        )?;
        gauge(
            e,
            "slo_burn_rate",
            "Burn rate per window (1.0 spends the budget exactly over the SLO window)",
            None,
            slos.iter().flat_map(|(n, m)| {
                [
                    ("fast_long", m.fast.long_burn),
                    ("fast_short", m.fast.short_burn),
                    ("slow_long", m.slow.long_burn),
                    ("slow_short", m.slow.short_burn),
                ]
                .map(|(w, v)| (with(name(n), "window", w), v))
            }),
        )?;
        Ok(())
    }
}
