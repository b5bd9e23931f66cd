"""The defaults of every kind, read once from the library (``surgewall_*_defaults_get``): the
core holds each default once, and the constructors' signatures show what it holds, so
``help(surgewall.Retry)`` and the library never disagree. An argument left out takes these
values; an explicit ``None`` where one is allowed means what its docstring says (for a
backoff's ``max``: no cap), never "the default"."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

from ._native import check, ffi, lib


def _seconds(ns: int) -> float:
    return ns / 1e9


def _optional_seconds(ns: int) -> Optional[float]:
    return None if ns < 0 else ns / 1e9


@dataclasses.dataclass(frozen=True)
class RetryDefaults:
    max_attempts: int
    backoff: int
    """A ``surgewall_backoff`` (SURGEWALL_BACKOFF_*)."""
    backoff_initial: float
    backoff_step: float
    backoff_multiplier: float
    jitter: int
    """A ``surgewall_jitter``."""
    max_delay: Optional[float]
    max_retry_after: Optional[float]
    max_elapsed: Optional[float]


@dataclasses.dataclass(frozen=True)
class BreakerDefaults:
    failure_rate: float
    minimum_calls: int
    window_seconds: float
    window_buckets: int
    open_for: float
    half_open_calls: int
    half_open_max_duration: float


@dataclasses.dataclass(frozen=True)
class BulkheadDefaults:
    max_concurrent: int
    max_wait: float


@dataclasses.dataclass(frozen=True)
class RetryBudgetDefaults:
    ratio: float
    min_per_second: float
    window: int


def _read(ctype: str, fn: Callable[[Any], int]) -> Any:
    out = ffi.new(f"{ctype} *")
    check(fn(out), ctype)
    return out


_r = _read("surgewall_retry_defaults", lib.surgewall_retry_defaults_get)
RETRY = RetryDefaults(
    max_attempts=int(_r.max_attempts),
    backoff=int(_r.backoff),
    backoff_initial=_seconds(int(_r.backoff_initial_ns)),
    backoff_step=_seconds(int(_r.backoff_step_ns)),
    backoff_multiplier=float(_r.backoff_multiplier),
    jitter=int(_r.jitter),
    max_delay=_optional_seconds(int(_r.max_delay_ns)),
    max_retry_after=_optional_seconds(int(_r.max_retry_after_ns)),
    max_elapsed=_optional_seconds(int(_r.max_elapsed_ns)),
)

_b = _read("surgewall_breaker_defaults", lib.surgewall_breaker_defaults_get)
BREAKER = BreakerDefaults(
    failure_rate=float(_b.failure_rate),
    minimum_calls=int(_b.minimum_calls),
    window_seconds=_seconds(int(_b.window_ns)),
    window_buckets=int(_b.window_buckets),
    open_for=_seconds(int(_b.open_for_ns)),
    half_open_calls=int(_b.half_open_calls),
    half_open_max_duration=_seconds(int(_b.half_open_max_ns)),
)

_h = _read("surgewall_bulkhead_defaults", lib.surgewall_bulkhead_defaults_get)
BULKHEAD = BulkheadDefaults(
    max_concurrent=int(_h.max_concurrent),
    max_wait=_seconds(int(_h.max_wait_ns)),
)

_g = _read("surgewall_retry_budget_defaults", lib.surgewall_retry_budget_defaults_get)
RETRY_BUDGET = RetryBudgetDefaults(
    ratio=float(_g.ratio),
    min_per_second=float(_g.min_per_second),
    window=int(_g.window_secs),
)

del _r, _b, _h, _g
