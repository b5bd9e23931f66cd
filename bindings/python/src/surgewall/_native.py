"""The native layer: the cffi module, the C fast path, status -> exception mapping, fork."""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, NoReturn, Optional

from . import _speedups
from ._ffi import ffi, lib
from .errors import (
    BulkheadFullError,
    CircuitOpenError,
    ClosedError,
    ConfigError,
    InvalidTransitionError,
    Key,
    PermitError,
    RegistryFullError,
    RejectReason,
    SurgewallError,
)

__all__ = ["ffi", "lib", "check", "raise_status", "error_for", "U64_MAX", "ns_to_s", "c_str", "Key"]

U64_MAX = (1 << 64) - 1

OK = 0
INVALID_HANDLE = 101
INVALID_ARG = 102
CLOSED = 211

_REJECT = {
    200: RejectReason.OPEN,
    201: RejectReason.HALF_OPEN_FULL,
    202: RejectReason.FORCED_OPEN,
}


def c_str(p: Any) -> str:
    if p == ffi.NULL:
        return ""
    return str(ffi.string(p).decode("utf-8", "replace"))


def ns_to_s(ns: int) -> float:
    return math.inf if ns == U64_MAX else ns / 1e9


def error_for(
    status: int, retry_after_ns: int = 0, what: str = "", key: Optional[Key] = None
) -> SurgewallError:
    """The exception for a status (also the factory the C fast paths call); ``key`` is the
    key of a keyed breaker's call."""
    if status in _REJECT:
        return CircuitOpenError(
            _REJECT[status], ns_to_s(retry_after_ns), what or None, status, key=key
        )
    if status == -1:
        return ClosedError(f"breaker {what!r} was freed" if what else "the breaker was freed", INVALID_HANDLE)
    message = c_str(lib.surgewall_status_str(status))
    if key is not None:
        what = f"{what} key {key!r}" if what else f"key {key!r}"
    prefix = f"{what}: " if what else ""
    if status == CLOSED:
        return ClosedError(f"{prefix}{message}", status)
    if status == INVALID_HANDLE:
        return ClosedError(f"{prefix}{message} (closed?)", status)
    if status == INVALID_ARG:
        return ConfigError("", f"{prefix}{message}", status)
    if status == 104:
        return ConfigError("", f"{prefix}{message}", status)
    if status == 105:
        return InvalidTransitionError(f"{prefix}{message}", status)
    if status in (106, 107):
        return PermitError(f"{prefix}{message}", status)
    if status in (203, 204):
        return BulkheadFullError(f"{prefix}{message}", status)
    if status == 209:
        return RegistryFullError(f"{prefix}{message}", status, key=key)
    return SurgewallError(f"{prefix}{message} (status {status})", status)


def raise_status(status: int, what: str = "", retry_after_ns: int = 0) -> NoReturn:
    raise error_for(status, retry_after_ns, what)


def check(status: int, what: str = "") -> None:
    if status != OK:
        raise_status(status, what)


def config_error(
    err: Any, fallback_field: str = "", fields: Optional[Mapping[str, str]] = None
) -> ConfigError:
    """Turns an owned surgewall_error into a ConfigError and frees it; ``fields`` maps the
    library's name of a setting to the caller's where they differ (``max_delay`` is a
    backoff's ``backoff.max`` in Python)."""
    try:
        field = c_str(lib.surgewall_error_field(err)) or fallback_field
        if fields is not None:
            field = fields.get(field, field)
        message = c_str(lib.surgewall_error_message(err))
        status = int(lib.surgewall_error_status(err))
    finally:
        lib.surgewall_error_free(err)
    return ConfigError(field, message, status)


def set_config(field: str, status: int) -> None:
    """The status of a configuration setter: a failure names the field."""
    if status != OK:
        raise ConfigError(field, "rejected by the library", status)


@contextmanager
def new_config(
    create: Callable[[Any], int], free: Callable[[Any], Any], ctype: str, what: str
) -> Iterator[Any]:
    """A fresh ``ctype`` configuration handle for the block that fills it; freed if the block
    raises. Hand it to :func:`construct` after the block (the constructor consumes it)."""
    out = ffi.new(f"{ctype} **")
    check(create(out), what)
    cfg = out[0]
    try:
        yield cfg
    except BaseException:
        free(cfg)
        raise


def construct(
    create: Callable[[Any, Any], int],
    ctype: str,
    what: str,
    fields: Optional[Mapping[str, str]] = None,
) -> Any:
    """Calls a constructor ``create(out, err)`` and returns the new ``ctype`` handle; a failure
    raises the ConfigError it reports (naming the field, in the caller's spelling through
    ``fields``) or the status's error."""
    out = ffi.new(f"{ctype} **")
    err = ffi.new("surgewall_error **")
    st = create(out, err)
    if st != OK:
        if err[0] != ffi.NULL:
            raise config_error(err[0], fields=fields)
        raise_status(st, what)
    return out[0]


def _factory(
    status: int, retry_after_ns: int, name: Optional[str], key: Optional[Key]
) -> BaseException:
    return error_for(status, retry_after_ns, name or "", key)


_speedups.set_error_factory(_factory)


def version() -> str:
    return c_str(lib.surgewall_version())


def _check_version() -> None:
    got = int(lib.surgewall_version_number())
    want = int(lib.SURGEWALL_VERSION_NUMBER)
    if got != want:  # pragma: no cover - a broken install
        raise ImportError(f"surgewall: header {want} but library {got}")


_check_version()


def _after_fork_in_child() -> None:
    # Nobody ticks the coarse clock in the child (no thread survives fork): make coarse reads
    # precise again. Event listeners restart themselves (see events.py).
    lib.surgewall_clock_stop_ticking()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def optional_int(v: Optional[int]) -> int:
    return 0 if v is None else v
