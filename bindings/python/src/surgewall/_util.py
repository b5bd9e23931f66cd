"""Argument checks shared by the constructors: clear ConfigErrors naming the field."""

from __future__ import annotations

import math
import weakref
from types import TracebackType
from typing import Any, Callable, Optional, Type, TypeVar

from .errors import ClosedError, ConfigError

I64_MAX = (1 << 63) - 1
U32_MAX = (1 << 32) - 1


def seconds_to_ns(field: str, value: object, allow_zero: bool = True) -> int:
    """Seconds (int or float) as integer nanoseconds, or a ConfigError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"expected seconds as a number, got {type(value).__name__}")
    if math.isnan(value) or math.isinf(value):
        raise ConfigError(field, f"must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(field, f"must be {'>=' if allow_zero else '>'} 0, got {value}")
    ns = round(value * 1_000_000_000)
    if ns > I64_MAX:
        raise ConfigError(field, f"too large: {value}")
    return ns


def count(field: str, value: object, minimum: int = 0, maximum: int = U32_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"expected an int, got {type(value).__name__}")
    if value < minimum or value > maximum:
        raise ConfigError(field, f"must be in [{minimum}, {maximum}], got {value}")
    return value


def ratio(field: str, value: object, low_open: bool = True) -> float:
    """A rate in (0, 1] (or [0, 1] when low_open is False)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"expected a number in (0, 1], got {type(value).__name__}")
    v = float(value)
    if math.isnan(v) or v > 1 or v < 0 or (low_open and v == 0):
        raise ConfigError(field, f"must be in {'(0' if low_open else '[0'}, 1], got {value}")
    return v


def number(field: str, value: object, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"expected a number, got {type(value).__name__}")
    v = float(value)
    if math.isnan(v) or math.isinf(v) or v < minimum:
        raise ConfigError(field, f"must be a finite number >= {minimum}, got {value}")
    return v


def name_bytes(value: object) -> bytes:
    if not isinstance(value, str):
        raise ConfigError("name", f"expected a str, got {type(value).__name__}")
    return value.encode("utf-8")


class Handle:
    """An owned C handle: freed by close() (idempotent), on context exit, or by a finaliser
    as a safety net. Using it after close raises ClosedError."""

    _what = "object"

    def __init__(self, ptr: Any, free: Callable[[Any], Any]) -> None:
        self._ptr: Optional[Any] = ptr
        self._finalizer = weakref.finalize(self, free, ptr)

    @property
    def _h(self) -> Any:
        p = self._ptr
        if p is None:
            raise ClosedError(f"this {self._what} is closed")
        return p

    @property
    def is_closed(self) -> bool:
        return self._ptr is None

    def _release(self) -> None:
        self._ptr = None
        self._finalizer()

    def close(self) -> None:
        """Frees the handle (idempotent)."""
        self._release()


_O = TypeVar("_O", bound="Owned")


class Owned(Handle):
    """A handle whose ``with`` block owns it: ``with Owned(...) as x:`` frees it on exit."""

    def __enter__(self: _O) -> _O:
        return self

    def __exit__(
        self,
        t: Optional[Type[BaseException]],
        v: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()
