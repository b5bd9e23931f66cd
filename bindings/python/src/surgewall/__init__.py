"""surgewall: circuit breakers, bulkheads and retry over a lock-free Rust core.

Every policy decision is made by libsurgewall through its C ABI; this package is the Python
face of it (cffi API mode for the whole ABI, a small C extension for the guarded call).
"""

from __future__ import annotations

from ._native import Key
from .agent import Agent, AgentError, render_metrics
from ._native import version as _version
from .breaker import (
    Breaker,
    BreakerMetrics,
    CountWindow,
    FallbackPayload,
    OpenBackoff,
    Outcome,
    Permit,
    Recorded,
    State,
    TimeWindow,
    WindowCounts,
)
from .bulkhead import (
    Bulkhead,
    BulkheadMetrics,
    BulkheadPermit,
    KeyedBulkhead,
    KeyedBulkheadFullError,
    KeyedBulkheadMetrics,
    KeyedPermit,
    KeyedRejection,
)
from .clock import MockClock
from .errors import (
    BulkheadFullError,
    CircuitOpenError,
    ClosedError,
    ConfigError,
    InvalidTransitionError,
    PermitError,
    RegistryFullError,
    RejectReason,
    RetryError,
    SurgewallError,
)
from .events import Event, EventKind, Listener, Subscription, TransitionReason, events, on_event
from .guard import BreakerRegistry, Guard, guard
from .keyed_breaker import (
    OVERFLOW_KEY,
    KeyedBreaker,
    KeyedBreakerMetrics,
    KeyedBreakerPermit,
    KeySnapshot,
)
from .retry import (
    AttemptInfo,
    Constant,
    DecorrelatedJitter,
    Exponential,
    Linear,
    NoBackoff,
    Retry,
    RetryBudget,
    RetryBudgetMetrics,
    RetryMetrics,
    StopReason,
)
from .slo import SLO, BurnMetrics, BurnWindows, SLOMetrics, ThresholdAdjuster, ThresholdMetrics

__version__ = "0.1.0"
library_version: str = _version()

__all__ = [
    "Agent",
    "AgentError",
    "AttemptInfo",
    "Breaker",
    "BreakerMetrics",
    "BreakerRegistry",
    "Bulkhead",
    "BulkheadFullError",
    "BulkheadMetrics",
    "BulkheadPermit",
    "BurnMetrics",
    "BurnWindows",
    "CircuitOpenError",
    "ClosedError",
    "ConfigError",
    "Constant",
    "CountWindow",
    "DecorrelatedJitter",
    "Event",
    "EventKind",
    "Exponential",
    "FallbackPayload",
    "Guard",
    "InvalidTransitionError",
    "Key",
    "KeyedBreaker",
    "KeyedBreakerMetrics",
    "KeyedBreakerPermit",
    "KeyedBulkhead",
    "KeyedBulkheadFullError",
    "KeyedBulkheadMetrics",
    "KeyedPermit",
    "KeyedRejection",
    "KeySnapshot",
    "Linear",
    "Listener",
    "MockClock",
    "NoBackoff",
    "OVERFLOW_KEY",
    "OpenBackoff",
    "Outcome",
    "Permit",
    "PermitError",
    "Recorded",
    "RegistryFullError",
    "RejectReason",
    "Retry",
    "RetryBudget",
    "RetryBudgetMetrics",
    "RetryError",
    "RetryMetrics",
    "SLO",
    "SLOMetrics",
    "State",
    "StopReason",
    "Subscription",
    "SurgewallError",
    "ThresholdAdjuster",
    "ThresholdMetrics",
    "TimeWindow",
    "TransitionReason",
    "WindowCounts",
    "events",
    "guard",
    "render_metrics",
    "library_version",
    "on_event",
]
