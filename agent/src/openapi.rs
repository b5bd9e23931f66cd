//! The OpenAPI 3.1 document of the admin API, served at `/api/resilience/openapi.json`.
//!
//! Written by hand beside the router (`api.rs`): a test checks that every route the router
//! serves is documented here and nothing else is, and schemathesis checks the responses
//! against these schemas (`make test-agent`).

use serde_json::{json, Value};

/// The document.
pub(crate) fn document() -> Value {
    let problem = json!({"$ref": "#/components/responses/Problem"});
    let name = |what: &str, param: &str| {
        json!({
            "name": param,
            "in": "path",
            "required": true,
            "description": format!("The {what}'s listed name, percent-encoded (`/` is `%2F`)."),
            "schema": {"type": "string"},
        })
    };
    let ok = |schema: &str, description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
        })
    };
    let list = |key: &str, schema: &str| {
        json!({
            "description": format!("Every listed {key}, sorted by name."),
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": [key],
                "properties": {key: {"type": "array", "items": {"$ref": format!("#/components/schemas/{schema}")}}},
            }}},
        })
    };
    let breaker_move = |summary: &str| {
        json!({"post": {
            "summary": summary,
            "parameters": [name("circuit breaker", "endpoint")],
            "responses": {"200": ok("CircuitBreaker", "The breaker after the transition."), "404": problem},
        }})
    };
    let get_list = |summary: &str, key: &str, schema: &str| json!({"get": {"summary": summary, "responses": {"200": list(key, schema)}}});
    let counts = json!({
        "type": "object",
        "required": ["calls", "failures", "slow", "failure_rate", "slow_call_rate"],
        "properties": {
            "calls": {"type": "integer", "minimum": 0},
            "failures": {"type": "integer", "minimum": 0},
            "slow": {"type": "integer", "minimum": 0},
            "failure_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                             "description": "null: not enough data (fewer calls than minimum_calls in closed and metrics_only, no reported probe in half_open, no window in the other states)."},
            "slow_call_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                               "description": "null by the rule of failure_rate."},
        },
    });
    let count = json!({"type": "integer", "minimum": 0});
    let nullable_count = json!({"type": ["integer", "null"], "minimum": 0});
    let registry = json!({
        "type": "object",
        "required": ["keys", "max_keys", "created", "evicted", "overflow_routed", "overflow_rejected"],
        "properties": {
            "keys": count, "max_keys": count, "created": count, "evicted": count,
            "overflow_routed": count, "overflow_rejected": count,
        },
    });
    let burn = json!({
        "type": "object",
        "required": ["long_burn", "short_burn", "threshold", "burning"],
        "properties": {
            "long_burn": {"type": "number"}, "short_burn": {"type": "number"},
            "threshold": {"type": "number"}, "burning": {"type": "boolean"},
        },
    });
    let states = json!([
        "closed",
        "open",
        "half_open",
        "forced_open",
        "disabled",
        "metrics_only"
    ]);
    let key_param = json!({
        "name": "key", "in": "path", "required": true,
        "description": "The key as the service writes it, percent-encoded.",
        "schema": {"type": "string"},
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "surgewall admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The policies of one process, read from its catalog, and the manual transitions an operator may call.",
        },
        "paths": {
            "/": {"get": {"summary": "The dashboard: one self-contained HTML page.", "responses": {"200": {
                "description": "The page (HTML, CSS and JavaScript inline).",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }}}},
            "/healthz": {"get": {"summary": "The agent serves.", "responses": {"200": {
                "description": "Always `{\"status\": \"ok\"}` while the agent runs.",
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["status"],
                    "properties": {"status": {"const": "ok"}},
                }}},
            }}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (OpenMetrics when asked for, else text 0.0.4).", "responses": {"200": {
                "description": "The exposition.",
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                },
            }}}},
            "/api/resilience/circuit-breakers": get_list("Every circuit breaker.", "circuit_breakers", "CircuitBreaker"),
            "/api/resilience/circuit-breakers/{endpoint}": {"get": {
                "summary": "One circuit breaker: the named one, else the first keyed breaker holding that key.",
                "parameters": [name("circuit breaker", "endpoint")],
                "responses": {"200": ok("BreakerOrKey", "The breaker, or the key."), "404": problem},
            }},
            "/api/resilience/circuit-breakers/{endpoint}/reset": {"post": {
                "summary": "Closes the breaker (or the key, as for GET) with fresh counts.",
                "parameters": [name("circuit breaker", "endpoint")],
                "responses": {"200": ok("BreakerOrKey", "The breaker, or the key, after the reset."), "404": problem},
            }},
            "/api/resilience/circuit-breakers/{endpoint}/open": breaker_move("Opens the breaker as a trip would: the open wait and its backoff of consecutive opens apply, then it probes (unlike force-open)."),
            "/api/resilience/circuit-breakers/{endpoint}/disable": breaker_move("Admits every call and records nothing."),
            "/api/resilience/circuit-breakers/{endpoint}/metrics-only": breaker_move("Records every call and never trips."),
            "/api/resilience/circuit-breakers/{endpoint}/force-open": {"post": {
                "summary": "Rejects every call, for a while or until moved by hand.",
                "parameters": [name("circuit breaker", "endpoint")],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"duration_seconds": {
                        "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": crate::api::MAX_FORCE_OPEN_SECS,
                        "description": "How long to reject, at most a year; absent or null: until moved by hand.",
                    }},
                }}}},
                "responses": {
                    "200": ok("CircuitBreaker", "The breaker, forced open."),
                    "400": problem, "404": problem, "413": problem,
                },
            }},
            "/api/resilience/bulkheads": get_list("Every bulkhead.", "bulkheads", "Bulkhead"),
            "/api/resilience/bulkheads/{service}": {"get": {
                "summary": "One bulkhead.",
                "parameters": [name("bulkhead", "service")],
                "responses": {"200": ok("Bulkhead", "The bulkhead."), "404": problem},
            }},
            "/api/resilience/bulkheads/{service}/reset": {"post": {
                "summary": "Starts the bulkhead's counters from zero in this API (calls in flight, waiters and /metrics untouched).",
                "parameters": [name("bulkhead", "service")],
                "responses": {"200": ok("Bulkhead", "The bulkhead after the reset."), "404": problem},
            }},
            "/api/resilience/keyed-circuit-breakers": get_list("Every keyed breaker (aggregates over its keys).", "keyed_circuit_breakers", "KeyedCircuitBreaker"),
            "/api/resilience/keyed-circuit-breakers/{name}": {"get": {
                "summary": "One keyed breaker (aggregates over its keys).",
                "parameters": [name("keyed breaker", "name")],
                "responses": {"200": ok("KeyedCircuitBreaker", "The keyed breaker."), "404": problem},
            }},
            "/api/resilience/keyed-circuit-breakers/{name}/keys": {"get": {
                "summary": "A page of a keyed breaker's keys, optionally in one state.",
                "parameters": [
                    name("keyed breaker", "name"),
                    {"name": "state", "in": "query", "required": false, "schema": {"enum": states}},
                    {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": crate::api::MAX_OFFSET}},
                    {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                ],
                "responses": {"200": ok("KeyPage", "The page."), "400": problem, "404": problem},
            }},
            "/api/resilience/keyed-circuit-breakers/{name}/keys/{key}": {"get": {
                "summary": "One key of a keyed breaker.",
                "parameters": [name("keyed breaker", "name"), key_param.clone()],
                "responses": {"200": ok("KeyedKey", "The key."), "404": problem},
            }},
            "/api/resilience/keyed-circuit-breakers/{name}/keys/{key}/reset": {"post": {
                "summary": "Closes one key with fresh counts (a key not held is not created).",
                "parameters": [name("keyed breaker", "name"), key_param],
                "responses": {"200": ok("KeyedKey", "The key after the reset."), "404": problem},
            }},
            "/api/resilience/keyed-bulkheads/{name}": {"get": {
                "summary": "One keyed bulkhead (aggregates over its keys).",
                "parameters": [name("keyed bulkhead", "name")],
                "responses": {"200": ok("KeyedBulkhead", "The keyed bulkhead."), "404": problem},
            }},
            "/api/resilience/keyed-bulkheads/{name}/keys": {"get": {
                "summary": "A page of a keyed bulkhead's keys, optionally only those with calls in flight.",
                "parameters": [
                    name("keyed bulkhead", "name"),
                    {"name": "busy", "in": "query", "required": false, "schema": {"type": "boolean"}},
                    {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": crate::api::MAX_OFFSET}},
                    {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                ],
                "responses": {"200": ok("KeyLoadPage", "The page."), "400": problem, "404": problem},
            }},
            "/api/resilience/keyed-bulkheads/{name}/keys/{key}": {"get": {
                "summary": "One key of a keyed bulkhead.",
                "parameters": [name("keyed bulkhead", "name"), key_param.clone()],
                "responses": {"200": ok("KeyLoad", "The key."), "404": problem},
            }},
            "/api/resilience/keyed-bulkheads": get_list("Every keyed bulkhead (aggregates over its keys).", "keyed_bulkheads", "KeyedBulkhead"),
            "/api/resilience/retry-budgets": get_list("Every retry budget.", "retry_budgets", "RetryBudget"),
            "/api/resilience/retries": get_list("Every named retry policy.", "retries", "Retry"),
            "/api/resilience/slos": get_list("Every SLO tracker.", "slos", "Slo"),
            "/api/resilience/dashboard/summary": {"get": {
                "summary": "Counts by state and utilisation, for a dashboard's cards.",
                "responses": {"200": ok("Summary", "The summary.")},
            }},
            "/api/resilience/ws": {"get": {
                "summary": "The live stream over WebSocket: a snapshot, then every event and update as JSON text frames (`?last_event_id=` resumes).",
                "parameters": [{"name": "last_event_id", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}}],
                "responses": {
                    "101": {"description": "Switched to WebSocket."},
                    "400": problem, "403": problem, "426": {"description": "Not a WebSocket handshake."},
                    "503": problem,
                },
            }},
            "/api/resilience/events": {"get": {
                "summary": "The live stream as Server-Sent Events (`Last-Event-ID` resumes from a bounded backlog).",
                "parameters": [{"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "integer", "minimum": 0}}],
                "responses": {
                    "200": {"description": "An endless event stream.", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    "400": problem, "503": problem,
                },
            }},
            "/api/resilience/openapi.json": {"get": {
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}},
            }},
        },
        "components": {
            "responses": {"Problem": {
                "description": "An RFC 9457 problem.",
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"},
                        "status": {"type": "integer"}, "detail": {"type": "string"},
                    },
                },
                "Counts": counts,
                "CircuitBreaker": {
                    "type": "object",
                    "required": ["name", "state", "generation", "time_in_state_ms", "retry_after_ms",
                                 "failure_rate_threshold", "window", "last_window", "minimum_calls", "totals",
                                 "consecutive_failures", "consecutive_opens", "half_open", "clock"],
                    "properties": {
                        "name": {"type": "string"},
                        "state": {"enum": states},
                        "generation": count,
                        "time_in_state_ms": {"type": "number", "minimum": 0},
                        "retry_after_ms": {"type": ["number", "null"], "minimum": 0,
                                           "description": "Time left of an open or timed forced_open wait; null in every other state (half_open included: a rejection there carries a short hint), and when forced open until moved by hand."},
                        "failure_rate_threshold": {"type": ["number", "null"]},
                        "window": {"$ref": "#/components/schemas/Counts",
                                   "description": "The episode's window: the sliding window in closed and metrics_only, the probes that reported in half_open, empty otherwise."},
                        "last_window": {"$ref": "#/components/schemas/Counts",
                                        "description": "The window of the last episode that ended (closed, metrics_only or half_open)."},
                        "minimum_calls": {"type": "integer", "minimum": 1,
                                          "description": "Calls a closed or metrics_only window needs before its rates are judged."},
                        "totals": {
                            "type": "object",
                            "required": ["successes", "failures", "slow_calls", "ignored", "rejected_open",
                                         "rejected_half_open", "late_results", "unexpected_results"],
                            "properties": {
                                "successes": count, "failures": count, "slow_calls": count, "ignored": count,
                                "rejected_open": count, "rejected_half_open": count,
                                "late_results": count, "unexpected_results": count,
                            },
                        },
                        "consecutive_failures": count,
                        "consecutive_opens": count,
                        "half_open": {
                            "type": "object", "required": ["admitted", "reported"],
                            "properties": {"admitted": count, "reported": count},
                        },
                        "clock": {"enum": ["coarse", "precise", "mock"]},
                    },
                },
                "Bulkhead": {
                    "type": "object",
                    "required": ["name", "active", "queued", "max_concurrent", "utilisation", "accepted",
                                 "rejected", "timed_out", "waited", "total_wait_ms", "max_wait_ms",
                                 "unexpected_releases", "counting_since_reset"],
                    "properties": {
                        "name": {"type": "string"},
                        "active": count, "queued": count, "max_concurrent": count,
                        "utilisation": {"type": "number", "minimum": 0, "maximum": 1},
                        "accepted": count, "rejected": count, "timed_out": count, "waited": count,
                        "total_wait_ms": {"type": "number", "minimum": 0},
                        "max_wait_ms": {"type": "number", "minimum": 0},
                        "unexpected_releases": count,
                        "counting_since_reset": {"type": "boolean"},
                    },
                },
                "KeyedCircuitBreaker": {
                    "type": "object",
                    "required": ["name", "registry", "rejected_open", "rejected_half_open", "failures",
                                 "ignored", "late_results", "transitions"],
                    "properties": {
                        "name": {"type": "string"},
                        "registry": registry,
                        "rejected_open": count, "rejected_half_open": count, "failures": count,
                        "ignored": count, "late_results": count,
                        "transitions": {"type": "object", "additionalProperties": count,
                                        "description": "Counts by `from->to`, for pairs that happened."},
                    },
                },
                "BreakerOrKey": {"oneOf": [
                    {"$ref": "#/components/schemas/CircuitBreaker"},
                    {"$ref": "#/components/schemas/KeyedKey"},
                ]},
                "KeyedKey": {
                    "type": "object",
                    "required": ["registry", "key", "state", "generation", "window", "minimum_calls",
                                 "consecutive_failures", "consecutive_opens", "retry_after_ms"],
                    "properties": {
                        "registry": {"type": "string"},
                        "key": {"type": "string"},
                        "state": {"enum": states},
                        "generation": count,
                        "window": {"$ref": "#/components/schemas/Counts"},
                        "minimum_calls": {"type": "integer", "minimum": 1},
                        "consecutive_failures": count,
                        "consecutive_opens": count,
                        "retry_after_ms": {"type": ["number", "null"], "minimum": 0},
                    },
                },
                "KeyPage": {
                    "type": "object",
                    "required": ["registry", "matching", "offset", "limit", "keys"],
                    "properties": {
                        "registry": {"type": "string"},
                        "matching": count, "offset": count, "limit": count,
                        "keys": {"type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/KeyedKey"}},
                    },
                },
                "KeyLoad": {
                    "type": "object",
                    "required": ["registry", "key", "active", "limit"],
                    "properties": {
                        "registry": {"type": "string"}, "key": {"type": "string"},
                        "active": count, "limit": count,
                    },
                },
                "KeyLoadPage": {
                    "type": "object",
                    "required": ["registry", "matching", "offset", "limit", "keys"],
                    "properties": {
                        "registry": {"type": "string"},
                        "matching": count, "offset": count, "limit": count,
                        "keys": {"type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/KeyLoad"}},
                    },
                },
                "KeyedBulkhead": {
                    "type": "object",
                    "required": ["name", "registry", "per_key_max", "global_max", "global_active",
                                 "rejected_key", "rejected_global"],
                    "properties": {
                        "name": {"type": "string"},
                        "registry": registry,
                        "per_key_max": count,
                        "global_max": nullable_count,
                        "global_active": nullable_count,
                        "rejected_key": count, "rejected_global": count,
                    },
                },
                "RetryBudget": {
                    "type": "object",
                    "required": ["name", "requests", "retries", "allowed", "remaining", "granted_total", "refused_total"],
                    "properties": {
                        "name": {"type": "string"},
                        "requests": count, "retries": count, "allowed": {"type": "number"},
                        "remaining": count, "granted_total": count, "refused_total": count,
                    },
                },
                "Retry": {
                    "type": "object",
                    "required": ["name", "operations", "retries", "stops"],
                    "properties": {
                        "name": {"type": "string"},
                        "operations": count, "retries": count,
                        "stops": {"type": "object", "additionalProperties": count,
                                  "description": "Operations stopped, by reason."},
                    },
                },
                "Slo": {
                    "type": "object",
                    "required": ["name", "objective", "calls", "bad", "error_budget_remaining_ratio",
                                 "fast", "slow", "holding_breaker"],
                    "properties": {
                        "name": {"type": "string"},
                        "objective": {"type": "number"},
                        "calls": count, "bad": count,
                        "error_budget_remaining_ratio": {"type": "number"},
                        "fast": burn, "slow": burn,
                        "holding_breaker": {"type": "boolean"},
                    },
                },
                "Summary": {
                    "type": "object",
                    "required": ["circuit_breakers", "bulkheads", "keyed_circuit_breakers",
                                 "keyed_bulkheads", "slos", "retry_budgets", "retries"],
                    "properties": {
                        "circuit_breakers": {
                            "type": "object", "required": ["total", "by_state"],
                            "properties": {
                                "total": count,
                                "by_state": {"type": "object", "additionalProperties": count},
                            },
                        },
                        "bulkheads": {
                            "type": "object",
                            "required": ["total", "active", "max_concurrent", "utilisation"],
                            "properties": {
                                "total": count, "active": count, "max_concurrent": count,
                                "utilisation": {"type": "number", "minimum": 0, "maximum": 1},
                            },
                        },
                        "keyed_circuit_breakers": count,
                        "keyed_bulkheads": count,
                        "slos": {
                            "type": "object", "required": ["total", "burning"],
                            "properties": {"total": count, "burning": count},
                        },
                        "retry_budgets": count,
                        "retries": count,
                    },
                },
            },
        },
    })
}
