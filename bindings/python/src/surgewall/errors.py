"""The exception hierarchy: everything surgewall raises derives from SurgewallError."""

from __future__ import annotations

import enum
import math
from typing import Optional, Union


Key = Union[str, bytes, int]
"""A key of a keyed breaker or bulkhead: an int (used as is) or a byte string (hashed)."""


class SurgewallError(Exception):
    """Base class of every error surgewall raises."""

    status: int

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class RejectReason(enum.Enum):
    """Why a breaker refused a call."""

    OPEN = "open"
    HALF_OPEN_FULL = "half_open_full"
    FORCED_OPEN = "forced_open"


class CircuitOpenError(SurgewallError):
    """The breaker refused the call. ``retry_after`` is in seconds (``math.inf`` while it is
    forced open without an end); ``reason`` says whether it is open, half-open with all probe
    slots taken, or forced open."""

    retry_after: float
    reason: RejectReason
    breaker: Optional[str]
    key: Optional[Key]
    """The key whose breaker refused, for a :class:`KeyedBreaker` (None otherwise)."""

    def __init__(
        self,
        reason: RejectReason,
        retry_after: float,
        breaker: Optional[str] = None,
        status: int = 200,
        *,
        key: Optional[Key] = None,
    ) -> None:
        what = {
            RejectReason.OPEN: "open",
            RejectReason.HALF_OPEN_FULL: "half-open and all probe slots are taken",
            RejectReason.FORCED_OPEN: "forced open",
        }[reason]
        name = f"breaker {breaker!r}" if breaker else "breaker"
        if key is not None:
            name += f" key {key!r}"
        wait = "until reset" if math.isinf(retry_after) else f"retry after {retry_after:.3f}s"
        super().__init__(f"{name} is {what}; {wait}", status)
        self.reason = reason
        self.retry_after = retry_after
        self.breaker = breaker
        self.key = key


class BulkheadFullError(SurgewallError):
    """The bulkhead had no free slot (within ``max_wait`` when waiting)."""


class RetryError(SurgewallError):
    """Retries stopped; ``last_error`` is the exception of the last attempt (also chained as
    ``__cause__``) and ``attempts`` how many were made."""

    last_error: Optional[BaseException]
    attempts: int
    reason: Optional[enum.IntEnum]
    """A surgewall.StopReason: why the schedule stopped."""

    def __init__(
        self,
        message: str,
        last_error: Optional[BaseException],
        attempts: int,
        reason: Optional[enum.IntEnum] = None,
    ) -> None:
        super().__init__(message, 205)
        self.last_error = last_error
        self.attempts = attempts
        self.reason = reason


class ConfigError(SurgewallError, ValueError):
    """A configuration was rejected; ``field`` names the parameter."""

    field: str

    def __init__(self, field: str, message: str, status: int = 104) -> None:
        super().__init__(f"{field}: {message}" if field else message, status)
        self.field = field


class ClosedError(SurgewallError, ValueError):
    """The object was freed (``free()``, or the end of the ``with`` block that owned it) and
    cannot be used any more."""


class InvalidTransitionError(SurgewallError):
    """A manual transition that is not allowed (CLOSED -> HALF_OPEN)."""


class PermitError(SurgewallError):
    """A permit was used twice, forged, or given to a breaker that did not issue it."""


class RegistryFullError(SurgewallError):
    """A keyed registry is at its key cap and refuses new keys; ``key`` is the key refused
    (None when not known)."""

    key: Optional[Key]

    def __init__(
        self, message: str, status: int = 209, *, key: Optional[Key] = None
    ) -> None:
        super().__init__(message, status)
        self.key = key


__all__ = [
    "SurgewallError",
    "RejectReason",
    "CircuitOpenError",
    "BulkheadFullError",
    "RetryError",
    "ConfigError",
    "ClosedError",
    "InvalidTransitionError",
    "PermitError",
    "RegistryFullError",
]
