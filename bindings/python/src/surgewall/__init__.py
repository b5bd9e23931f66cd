"""surgewall: circuit breakers, bulkheads and retry over a lock-free Rust core.

Every policy decision is made by libsurgewall through its C ABI; this package is the Python
face of it (cffi API mode for the whole ABI, a small C extension for the guarded call).
"""

from __future__ import annotations

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

__version__ = "0.1.0"
library_version: str = _version()

__all__ = [
    "Breaker",
    "BreakerMetrics",
    "BulkheadFullError",
    "CircuitOpenError",
    "ClosedError",
    "ConfigError",
    "CountWindow",
    "Event",
    "EventKind",
    "FallbackPayload",
    "InvalidTransitionError",
    "Listener",
    "MockClock",
    "OpenBackoff",
    "Outcome",
    "Permit",
    "PermitError",
    "Recorded",
    "RegistryFullError",
    "RejectReason",
    "RetryError",
    "State",
    "Subscription",
    "SurgewallError",
    "TimeWindow",
    "TransitionReason",
    "WindowCounts",
    "events",
    "library_version",
    "on_event",
]
