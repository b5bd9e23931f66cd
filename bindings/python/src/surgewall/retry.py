"""Retry driven by the C ABI's retry schedule: the library decides whether and how long to
wait (backoff, jitter, max attempts, max elapsed, budget, breaker awareness); Python only
sleeps (``time.sleep`` or ``asyncio.sleep``, both injectable) and classifies exceptions."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
from typing import Any, Awaitable, Callable, List, Optional, Tuple, TypeVar, Union, cast

from . import _defaults
from ._native import check, construct, ffi, lib, new_config, raise_status, set_config
from ._decorate import decorate, through
from ._util import (
    Handle,
    Owned,
    count,
    held,
    name_bytes,
    ns_clamped,
    number,
    ratio,
    seconds_to_ns,
)
from .breaker import Breaker, ExcTypes, _exc_tuple
from .clock import MockClock
from .errors import CircuitOpenError, ConfigError, RetryError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_ATTEMPT_SUCCESS = int(lib.SURGEWALL_ATTEMPT_OUTCOME_SUCCESS)
_ATTEMPT_RETRYABLE = int(lib.SURGEWALL_ATTEMPT_OUTCOME_RETRYABLE)
_ATTEMPT_NOT_RETRYABLE = int(lib.SURGEWALL_ATTEMPT_OUTCOME_NOT_RETRYABLE)
_JITTER = {
    "none": int(lib.SURGEWALL_JITTER_NONE),
    "full": int(lib.SURGEWALL_JITTER_FULL),
    "equal": int(lib.SURGEWALL_JITTER_EQUAL),
}
_RETRY = _defaults.RETRY
_BUDGET = _defaults.RETRY_BUDGET


class StopReason(enum.IntEnum):
    """Why a retry schedule stopped (``surgewall_stop_reason``)."""

    SUCCEEDED = int(lib.SURGEWALL_STOP_REASON_SUCCEEDED)
    NOT_RETRYABLE = int(lib.SURGEWALL_STOP_REASON_NOT_RETRYABLE)
    MAX_ATTEMPTS = int(lib.SURGEWALL_STOP_REASON_MAX_ATTEMPTS)
    MAX_ELAPSED = int(lib.SURGEWALL_STOP_REASON_MAX_ELAPSED)
    BUDGET_EXHAUSTED = int(lib.SURGEWALL_STOP_REASON_BUDGET_EXHAUSTED)
    BREAKER_OPEN = int(lib.SURGEWALL_STOP_REASON_BREAKER_OPEN)
    RETRY_AFTER_TOO_LONG = int(lib.SURGEWALL_STOP_REASON_RETRY_AFTER_TOO_LONG)
    """The exception's ``retry_after`` is longer than ``max_retry_after`` or would overrun
    ``max_elapsed``: a server's Retry-After is never shortened, so the retry stops."""


@dataclasses.dataclass(frozen=True)
class NoBackoff:
    """No wait between attempts: each retry starts at once. The one way to retry without
    waiting: every other backoff's delays are longer than zero (``Constant(0.0)`` is a
    :class:`ConfigError` naming ``backoff.delay``, as ``Exponential(0.0)`` names
    ``backoff.initial``)."""


@dataclasses.dataclass(frozen=True)
class Constant:
    """The same delay (seconds, > 0) before every retry, never capped: ``Constant(60.0)``
    sleeps 60 s."""

    delay: float


@dataclasses.dataclass(frozen=True)
class Linear:
    """``initial + (n - 1) * step`` seconds before the n-th retry (n = 1 the first: ``initial``,
    > 0), capped at ``max`` when given. Left out, ``max`` is the library's default (no cap);
    ``None`` is no cap."""

    initial: float
    step: float
    max: Optional[float] = _RETRY.max_delay


@dataclasses.dataclass(frozen=True)
class Exponential:
    """``initial * multiplier**(n - 1)`` seconds before the n-th retry (n = 1 the first:
    ``initial``, > 0), capped at ``max`` when given. Left out, each field is the library's
    default backoff's (so 0.1, 0.2, 0.4, ... with no cap, as the signature shows); ``max=None``
    is no cap."""

    initial: float = _RETRY.backoff_initial
    multiplier: float = _RETRY.backoff_multiplier
    max: Optional[float] = _RETRY.max_delay


@dataclasses.dataclass(frozen=True)
class DecorrelatedJitter:
    """Each delay uniform in [base, 3 x the previous one] (``base`` > 0; left out, the first
    delay of the library's default backoff), capped at ``max`` when given (left out: the
    library's default, no cap; ``None``: no cap)."""

    base: float = _RETRY.backoff_initial
    max: Optional[float] = _RETRY.max_delay


Backoff = Union[NoBackoff, Constant, Linear, Exponential, DecorrelatedJitter]


def _default_backoff() -> Backoff:
    """The library's default backoff as the dataclass that builds it."""
    kind = _RETRY.backoff
    if kind == int(lib.SURGEWALL_BACKOFF_NONE):
        return NoBackoff()
    if kind == int(lib.SURGEWALL_BACKOFF_CONSTANT):
        return Constant(_RETRY.backoff_initial)
    if kind == int(lib.SURGEWALL_BACKOFF_LINEAR):
        return Linear(_RETRY.backoff_initial, _RETRY.backoff_step)
    if kind == int(lib.SURGEWALL_BACKOFF_DECORRELATED):
        return DecorrelatedJitter()
    return Exponential()


_DEFAULT_JITTER = next(name for name, v in _JITTER.items() if v == _RETRY.jitter)


@dataclasses.dataclass(frozen=True)
class RetryBudgetMetrics:
    requests: int
    retries: int
    allowed: float
    remaining: int
    granted_total: int
    refused_total: int


class RetryBudget(Handle):
    """Retries <= ``ratio`` x requests + ``min_per_second`` x ``window`` over the last
    ``window`` seconds (1..60). The floor is one lump per window, not a rate: with no requests,
    ``min_per_second * window`` retries may go out in a single burst, then none until their
    second leaves the window. With ``name``, the process-wide budget of that name (every Retry, in any
    language, naming it shares it; the first configuration wins)."""

    _what = "retry budget"

    def __init__(
        self,
        ratio: float = _BUDGET.ratio,
        min_per_second: float = _BUDGET.min_per_second,
        *,
        window: int = _BUDGET.window,
        name: Optional[str] = None,
        clock: Optional[MockClock] = None,
    ) -> None:
        r = _ratio0("ratio", ratio)
        m = number("min_per_second", min_per_second)
        w = count("window", window, minimum=1, maximum=60)
        create: Callable[[Any, Any], int]
        if name is not None:
            if clock is not None:
                raise ConfigError("clock", "a shared (named) budget uses the real clock")
            raw = name_bytes(name)

            def create(out: Any, err: Any) -> int:
                return int(lib.surgewall_retry_budget_shared(raw, len(raw), r, m, w, out, err))

        else:

            def create(out: Any, err: Any) -> int:
                with held(clock) as c:
                    return int(lib.surgewall_retry_budget_new(r, m, w, c, out, err))

        ptr = construct(create, "surgewall_retry_budget", "RetryBudget")
        super().__init__(ptr, lib.surgewall_retry_budget_free)

    def record_request(self) -> None:
        """Counts a first attempt toward the budget."""
        check(self._call(lib.surgewall_retry_budget_record_request), "record_request")

    def try_retry(self) -> bool:
        """Asks for one retry; True when granted (and counted)."""
        st = self._call(lib.surgewall_retry_budget_try_retry)
        if st == 0:
            return True
        if st == 206:
            return False
        raise_status(st, "try_retry")

    @property
    def id(self) -> int:
        """The process-unique id: the ``source`` of this budget's exhausted events."""
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_retry_budget_id, out), "id")
        return int(out[0])

    def metrics(self) -> RetryBudgetMetrics:
        m = ffi.new("surgewall_retry_budget_stats *")
        check(self._call(lib.surgewall_retry_budget_metrics, m), "metrics")
        return RetryBudgetMetrics(
            int(m.requests),
            int(m.retries),
            float(m.allowed),
            int(m.remaining),
            int(m.granted_total),
            int(m.refused_total),
        )



# The library's names for settings that Python spells otherwise.
_FIELDS = {"max_delay": "backoff.max"}


def _sleepers(
    clock: Optional[MockClock],
    sleep: Optional[Callable[[float], object]],
    async_sleep: Optional[Callable[[float], Awaitable[object]]],
) -> Tuple[Callable[[float], object], Callable[[float], Awaitable[object]]]:
    """How a retry waits: the given functions, else the mock clock's time (advanced, no real
    wait; the async one still yields to the loop once), else real time."""
    if clock is None:
        return (sleep or time.sleep, async_sleep or asyncio.sleep)

    async def advance_async(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    return (sleep or clock.advance, async_sleep or advance_async)


def _ratio0(field: str, v: object) -> float:
    return ratio(field, v, low_open=False)


@dataclasses.dataclass(frozen=True)
class RetryMetrics:
    operations: int
    retries: int
    stops: "dict[StopReason, int]"


@dataclasses.dataclass(frozen=True)
class AttemptInfo:
    """What ``before_sleep`` receives."""

    attempt: int
    """The attempt that just failed (1-based)."""
    delay: float
    """Seconds until the next attempt."""
    error: BaseException


class Retry(Owned):
    """A retry policy (tenacity-like). ``max_attempts`` counts the first attempt.

    Every argument left out takes the library's default, the same in every language (the
    signature shows them: 3 attempts, ``Exponential(0.1, 2.0)`` with no cap, full jitter).
    With ``clock=MockClock()`` the retry sleeps by advancing that clock (no real time passes)
    unless ``sleep`` / ``async_sleep`` are given.

    An exception is retried when it matches ``retry_on`` (default ``Exception``), not
    ``no_retry_on``, and ``retry_if(exc)`` (when given) is true; anything else is re-raised at
    once. :class:`CircuitOpenError` from a breaker is handed to the schedule, which waits for
    the breaker (the time left of an OPEN wait, or while every half-open probe is out the short
    half-open hint it polls on) or stops (``stop_on_open_breaker=True``). An exception with a
    numeric ``retry_after`` attribute (seconds, a server's Retry-After) replaces the next delay
    and is never shortened: it is slept in full, or the retry stops with
    ``StopReason.RETRY_AFTER_TOO_LONG`` when it is longer than ``max_retry_after`` (if given) or
    would overrun ``max_elapsed``. The backoff's ``max`` caps only the backoff; there is no
    other cap on delays.
    When the schedule stops, :class:`RetryError` is raised with ``last_error`` (and chained),
    or the last error itself with ``reraise=True``.

    Use as ``@retry``, ``retry.call(fn, ...)`` or ``await retry.call_async(fn, ...)``;
    ``breaker=`` makes the schedule breaker-aware (``guard()`` passes it)."""

    _what = "retry policy"

    def __init__(
        self,
        max_attempts: int = _RETRY.max_attempts,
        backoff: Backoff = _default_backoff(),
        jitter: str = _DEFAULT_JITTER,
        *,
        budget: Optional[RetryBudget] = None,
        max_elapsed: Optional[float] = None,
        max_retry_after: Optional[float] = None,
        attempt_timeout: Optional[float] = None,
        stop_on_open_breaker: bool = False,
        retry_on: ExcTypes = (Exception,),
        no_retry_on: ExcTypes = (),
        retry_if: Optional[Callable[[BaseException], bool]] = None,
        before_sleep: Optional[Callable[[AttemptInfo], object]] = None,
        reraise: bool = False,
        seed: Optional[int] = None,
        clock: Optional[MockClock] = None,
        sleep: Optional[Callable[[float], object]] = None,
        async_sleep: Optional[Callable[[float], Awaitable[object]]] = None,
        breaker: Optional[Breaker] = None,
        name: Optional[str] = None,
    ) -> None:
        raw_name = None if name is None else name_bytes(name)
        self._retry_on = _exc_tuple("retry_on", retry_on)
        self._no_retry_on = _exc_tuple("no_retry_on", no_retry_on)
        for field, fn in (
            ("retry_if", retry_if),
            ("before_sleep", before_sleep),
            ("sleep", sleep),
            ("async_sleep", async_sleep),
        ):
            if fn is not None and not callable(fn):
                raise ConfigError(field, "must be callable")
        if clock is not None and not isinstance(clock, MockClock):
            raise ConfigError("clock", "expected a MockClock")
        self._retry_if = retry_if
        self._before_sleep = before_sleep
        self._reraise = bool(reraise)
        self._sleep, self._async_sleep = _sleepers(clock, sleep, async_sleep)
        if breaker is not None and not isinstance(breaker, Breaker):
            raise ConfigError("breaker", "expected a Breaker")
        self._breaker = breaker
        self._budget = budget
        with new_config(
            lib.surgewall_retry_config_new,
            lib.surgewall_retry_config_free,
            "surgewall_retry_config",
            "Retry",
        ) as cfg:
            if raw_name is not None:  # named: the agent lists it
                set_config("name", lib.surgewall_retry_config_set_name(cfg, raw_name, len(raw_name)))
            set_config(
                "max_attempts",
                lib.surgewall_retry_config_set_max_attempts(
                    cfg, count("max_attempts", max_attempts, minimum=1)
                ),
            )
            cap: Optional[float] = None
            if isinstance(backoff, NoBackoff):
                set_config("backoff", lib.surgewall_retry_config_set_backoff_none(cfg))
            elif isinstance(backoff, Constant):
                d = seconds_to_ns("backoff.delay", backoff.delay)
                set_config("backoff", lib.surgewall_retry_config_set_backoff_constant(cfg, d))
            elif isinstance(backoff, Linear):
                i = seconds_to_ns("backoff.initial", backoff.initial)
                s = seconds_to_ns("backoff.step", backoff.step)
                set_config("backoff", lib.surgewall_retry_config_set_backoff_linear(cfg, i, s))
                cap = backoff.max
            elif isinstance(backoff, Exponential):
                i = seconds_to_ns("backoff.initial", backoff.initial)
                m = number("backoff.multiplier", backoff.multiplier, 1.0)
                set_config("backoff", lib.surgewall_retry_config_set_backoff_exponential(cfg, i, m))
                cap = backoff.max
            elif isinstance(backoff, DecorrelatedJitter):
                b = seconds_to_ns("backoff.base", backoff.base)
                set_config("backoff", lib.surgewall_retry_config_set_backoff_decorrelated(cfg, b))
                cap = backoff.max
            else:
                raise ConfigError(
                    "backoff",
                    "expected NoBackoff, Constant, Linear, Exponential or DecorrelatedJitter, "
                    f"got {backoff!r}",
                )
            if cap is not None:
                c = seconds_to_ns("backoff.max", cap, allow_zero=False)
                set_config("backoff.max", lib.surgewall_retry_config_set_max_delay(cfg, c))
            if jitter not in _JITTER:
                raise ConfigError("jitter", f"expected 'none', 'full' or 'equal', got {jitter!r}")
            set_config("jitter", lib.surgewall_retry_config_set_jitter(cfg, _JITTER[jitter]))
            if max_elapsed is not None:
                e = seconds_to_ns("max_elapsed", max_elapsed, allow_zero=False)
                set_config("max_elapsed", lib.surgewall_retry_config_set_max_elapsed(cfg, e))
            if max_retry_after is not None:
                r = seconds_to_ns("max_retry_after", max_retry_after, allow_zero=False)
                set_config(
                    "max_retry_after", lib.surgewall_retry_config_set_max_retry_after(cfg, r)
                )
            if attempt_timeout is not None:
                a = seconds_to_ns("attempt_timeout", attempt_timeout)
                set_config("attempt_timeout", lib.surgewall_retry_config_set_attempt_timeout(cfg, a))
            if not isinstance(stop_on_open_breaker, bool):
                raise ConfigError("stop_on_open_breaker", "expected a bool")
            set_config(
                "stop_on_open_breaker",
                lib.surgewall_retry_config_set_stop_on_open_breaker(cfg, stop_on_open_breaker),
            )
            if budget is not None:
                if not isinstance(budget, RetryBudget):
                    raise ConfigError("budget", "expected a RetryBudget")
                set_config(
                    "budget",
                    budget._call(lambda h: lib.surgewall_retry_config_set_budget(cfg, h)),
                )
            if seed is not None:
                set_config(
                    "seed",
                    lib.surgewall_retry_config_set_seed(cfg, count("seed", seed, maximum=(1 << 64) - 1)),
                )
            if clock is not None:
                set_config(
                    "clock", clock._call(lambda h: lib.surgewall_retry_config_set_mock_clock(cfg, h))
                )
        ptr = construct(
            lambda out, err: lib.surgewall_retry_policy_new(cfg, out, err),
            "surgewall_retry_policy",
            "Retry",
            fields=_FIELDS,
        )
        super().__init__(ptr, lib.surgewall_retry_policy_free)

    # ---- the loop ----

    def _classify(self, e: BaseException) -> int:
        if isinstance(e, CircuitOpenError):
            return _ATTEMPT_RETRYABLE
        if not isinstance(e, self._retry_on) or isinstance(e, self._no_retry_on):
            return _ATTEMPT_NOT_RETRYABLE
        if self._retry_if is not None and not self._retry_if(e):
            return _ATTEMPT_NOT_RETRYABLE
        return _ATTEMPT_RETRYABLE

    def _next(
        self, sched: Any, outcome: int, e: Optional[BaseException], breaker: Optional[Breaker]
    ) -> Tuple[bool, float, Optional[StopReason]]:
        ra = -1
        if e is not None and not isinstance(e, CircuitOpenError):
            ra = ns_clamped(getattr(e, "retry_after", None))
        b = breaker if breaker is not None else self._breaker
        d = ffi.new("surgewall_retry_decision *")
        with held(b) as bptr:
            check(lib.surgewall_retry_schedule_next(sched, outcome, ra, bptr, d), "retry")
        if d.retry:
            return True, int(d.delay_ns) / 1e9, None
        return False, 0.0, StopReason(d.stop_reason)

    def _schedule(self) -> Any:
        out = ffi.new("surgewall_retry_schedule **")
        check(self._call(lib.surgewall_retry_schedule_new, out), "retry")
        return ffi.gc(out[0], lib.surgewall_retry_schedule_free)

    def _stop(self, reason: Optional[StopReason], attempt: int, e: BaseException) -> BaseException:
        reason = reason if reason is not None else StopReason.MAX_ATTEMPTS
        if self._reraise:
            return e
        err = RetryError(
            f"gave up after {attempt} attempt(s): {reason.name.lower()}: {e!r}", e, attempt, reason
        )
        err.__cause__ = e
        return err

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._run(fn, args, kwargs, None)

    def _run(
        self,
        fn: Callable[..., T],
        args: Tuple[Any, ...],
        kwargs: "dict[str, Any]",
        breaker: Optional[Breaker],
    ) -> T:
        sched = self._schedule()
        attempt = 0
        while True:
            attempt += 1
            try:
                result = fn(*args, **kwargs)
            except Exception as e:
                outcome = self._classify(e)
                if outcome == _ATTEMPT_NOT_RETRYABLE:
                    self._next(sched, outcome, e, breaker)
                    raise
                again, delay, reason = self._next(sched, outcome, e, breaker)
                if not again:
                    raise self._stop(reason, attempt, e) from e
                if self._before_sleep is not None:
                    self._before_sleep(AttemptInfo(attempt, delay, e))
                self._sleep(delay)
                continue
            self._next(sched, _ATTEMPT_SUCCESS, None, breaker)
            return result

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return await self._run_async(fn, args, kwargs, None)

    async def _run_async(
        self,
        fn: Callable[..., Awaitable[T]],
        args: Tuple[Any, ...],
        kwargs: "dict[str, Any]",
        breaker: Optional[Breaker],
    ) -> T:
        sched = self._schedule()
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await fn(*args, **kwargs)
            except Exception as e:
                outcome = self._classify(e)
                if outcome == _ATTEMPT_NOT_RETRYABLE:
                    self._next(sched, outcome, e, breaker)
                    raise
                again, delay, reason = self._next(sched, outcome, e, breaker)
                if not again:
                    raise self._stop(reason, attempt, e) from e
                if self._before_sleep is not None:
                    self._before_sleep(AttemptInfo(attempt, delay, e))
                await self._async_sleep(delay)
                continue
            self._next(sched, _ATTEMPT_SUCCESS, None, breaker)
            return result

    def __call__(self, fn: F) -> F:
        """Decorates a function (a coroutine function, or an object whose ``__call__`` is
        ``async def``, awaited again on each attempt; a ``staticmethod`` / ``classmethod``
        through the function inside it). Generator functions are refused."""

        sync, async_ = through(
            lambda f, *a, **k: self._run(f, a, k, None),
            lambda f, *a, **k: self._run_async(f, a, k, None),
        )

        return decorate(
            fn,
            "Retry",
            sync=sync,
            async_=async_,
            refuse_iteration="a retry would start the iteration over after items were "
            "consumed; decorate the function that consumes the generator",
        )

    def preview(self, limit: Optional[int] = None) -> List[float]:
        """The delays (seconds) an operation would sleep between its attempts if every attempt
        failed at once (no ``retry_after``, no breaker), cut by ``max_attempts`` and
        ``max_elapsed``: at most ``limit`` of them when given. With jitter they are the next
        operation's own draws (the very delays under a ``seed``, unless another operation
        starts first). Runs nothing, counts nothing, asks no budget.

        >>> Retry(max_attempts=4, backoff=Exponential(0.1), jitter="none").preview()
        [0.1, 0.2, 0.4]"""
        want = None if limit is None else count("limit", limit)
        cap = 64 if want is None else want
        while True:
            buf = ffi.new("uint64_t[]", max(cap, 1))
            n = ffi.new("size_t *")
            check(self._call(lib.surgewall_retry_policy_preview, buf, cap, n), "preview")
            got = int(n[0])
            if got < cap or want is not None:
                return [int(buf[i]) / 1e9 for i in range(got)]
            cap *= 4  # more to come: ask again for all of them (one call, one preview)

    def metrics(self) -> RetryMetrics:
        m = ffi.new("surgewall_retry_stats *")
        check(self._call(lib.surgewall_retry_policy_metrics, m), "metrics")
        return RetryMetrics(
            int(m.operations), int(m.retries), {r: int(m.stops[int(r)]) for r in StopReason}
        )




__all__ = [
    "AttemptInfo",
    "Backoff",
    "Constant",
    "DecorrelatedJitter",
    "Exponential",
    "Linear",
    "NoBackoff",
    "Retry",
    "RetryBudget",
    "RetryBudgetMetrics",
    "RetryMetrics",
    "StopReason",
]
