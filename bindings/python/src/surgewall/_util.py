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


def real(field: str, value: object, expected: str = "a number") -> float:
    """An int or float as a float, or a ConfigError naming ``field``: a bool, another type, or
    an int too large for a float (``10**400``: float() would raise OverflowError). The one
    conversion every numeric setting goes through."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"expected {expected}, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        bits = value.bit_length() if isinstance(value, int) else 0
        raise ConfigError(field, f"too large for a float: an int of {bits} bits") from None


# The largest number of seconds whose nanoseconds fit the library's signed 64-bit durations.
MAX_SECONDS = I64_MAX / 1e9


def seconds_to_ns(field: str, value: object, allow_zero: bool = True) -> int:
    """Seconds (int or float) as integer nanoseconds, or a ConfigError naming ``field``:
    not a number, NaN, infinite, negative (or zero when not allowed), or more nanoseconds
    than a signed 64-bit duration holds (about 292 years)."""
    v = real(field, value, "seconds as a number")
    if math.isnan(v) or math.isinf(v):
        raise ConfigError(field, f"must be finite, got {value}")
    if v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(field, f"must be {'>=' if allow_zero else '>'} 0, got {value}")
    if v > MAX_SECONDS:
        raise ConfigError(field, f"too large: {value} s (at most {MAX_SECONDS:.4g} s)")
    if isinstance(value, int):
        return min(value * 1_000_000_000, I64_MAX)
    return min(round(v * 1_000_000_000), I64_MAX)


def ns_clamped(value: object) -> int:
    """Seconds from user code (an exception's ``retry_after``) as nanoseconds in [0, 2**63),
    -1 when it is not a usable number; never raises."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return -1
    try:
        v = float(value)
    except OverflowError:
        return I64_MAX if value > 0 else -1
    if math.isnan(v) or v < 0:
        return -1
    return I64_MAX if v >= MAX_SECONDS else round(v * 1_000_000_000)


def count(field: str, value: object, minimum: int = 0, maximum: int = U32_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"expected an int, got {type(value).__name__}")
    if value < minimum or value > maximum:
        raise ConfigError(field, f"must be in [{minimum}, {maximum}], got {value}")
    return value


def ratio(field: str, value: object, low_open: bool = True) -> float:
    """A rate in (0, 1] (or [0, 1] when low_open is False)."""
    v = real(field, value, "a number in (0, 1]")
    if math.isnan(v) or v > 1 or v < 0 or (low_open and v == 0):
        raise ConfigError(field, f"must be in {'(0' if low_open else '[0'}, 1], got {value}")
    return v


def number(field: str, value: object, minimum: float = 0.0) -> float:
    v = real(field, value)
    if math.isnan(v) or math.isinf(v) or v < minimum:
        raise ConfigError(field, f"must be a finite number >= {minimum}, got {value}")
    return v


def utf8(field: str, value: object) -> bytes:
    """A str setting as UTF-8, or a ConfigError naming ``field`` (not a str, or a str with
    an unpaired surrogate such as ``"\\ud800"``, which has no UTF-8 form)."""
    if not isinstance(value, str):
        raise ConfigError(field, f"expected a str, got {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ConfigError(field, f"not encodable as UTF-8 ({e.reason} at index {e.start})") from None


def name_bytes(value: object) -> bytes:
    return utf8("name", value)


class Handle:
    """An owned C handle, kept alive while any call on it runs (a :class:`_speedups.Lease`).

    ``free()`` (idempotent; also the end of a ``with`` block for the kinds whose ``with``
    owns them, and garbage collection) refuses new calls at once (they raise :class:`ClosedError`),
    wakes what waits inside the library (``_wake``: a bulkhead's waiters), and frees the
    handle when the last call in flight comes out; a finaliser frees it once the object is
    unreachable. No sequence of Python calls frees a handle while another thread is inside a
    call on it (that would be a use after free in the library)."""

    _what = "object"
    _wake: Optional[Callable[[Any], Any]] = None
    """Called with the handle by free(), before it is freed: wakes waiters in the library."""

    def __init__(self, ptr: Any, free: Callable[[Any], Any]) -> None:
        self._lease = Lease(ptr, free, ClosedError, f"this {self._what} was freed")

    @property
    def _h(self) -> Any:
        """The handle, for a call that cannot run through :meth:`_call` or ``with
        self._lease as h`` (ClosedError once freed)."""
        return self._lease.handle

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(handle, *args)`` with the handle kept alive until it returns."""
        return self._lease.call(fn, *args)  # type: ignore[no-any-return]

    @property
    def freed(self) -> bool:
        """Whether :meth:`free` was called."""
        return self._lease.closed

    def _release(self) -> None:
        self._lease.close(self._wake)

    def free(self) -> None:
        """Frees the handle (idempotent); calls in flight finish first. ``close`` is never a
        free in this package: on a breaker it is the transition to CLOSED."""
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
        self.free()
