"""Argument checks shared by the constructors: clear ConfigErrors naming the field."""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any, Callable, ContextManager, Optional, Type, TypeVar

from contextlib import nullcontext

from ._ffi import ffi
from ._speedups import Lease
from .errors import ClosedError, ConfigError

T = TypeVar("T")

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
    """An owned C handle, kept alive while any call on it runs (a :class:`_speedups.Lease`).

    ``close()`` (idempotent) refuses new calls at once (they raise :class:`ClosedError`),
    wakes what waits inside the library (``_wake``: a bulkhead's waiters), and frees the
    handle when the last call in flight comes out; a finaliser frees it once the object is
    unreachable. No sequence of Python calls frees a handle while another thread is inside a
    call on it (that would be a use after free in the library)."""

    _what = "object"
    _wake: Optional[Callable[[Any], Any]] = None
    """Called with the handle by close(), before it is freed: wakes waiters in the library."""

    def __init__(self, ptr: Any, free: Callable[[Any], Any]) -> None:
        self._lease = Lease(ptr, free, ClosedError, f"this {self._what} is closed")

    @property
    def _h(self) -> Any:
        """The handle, for a call that cannot run through :meth:`_call` or ``with
        self._lease as h`` (ClosedError once closed)."""
        return self._lease.handle

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(handle, *args)`` with the handle kept alive until it returns."""
        return self._lease.call(fn, *args)  # type: ignore[no-any-return]

    @property
    def is_closed(self) -> bool:
        return self._lease.closed

    def _release(self) -> None:
        self._lease.close(self._wake)

    def close(self) -> None:
        """Frees the handle (idempotent); calls in flight finish first."""
        self._release()


def held(obj: Optional[Handle]) -> ContextManager[Any]:
    """``with held(obj) as h:``: ``obj``'s handle kept alive for the block (NULL for None),
    to pass it to a call on another object (a clock to a constructor, a breaker to a retry
    schedule)."""
    return nullcontext(ffi.NULL) if obj is None else obj._lease


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
