"""Circuit breakers over the C ABI."""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import sys
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Dict,
    List,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
    cast,
)

from . import _speedups
from ._native import (
    U64_MAX,
    check,
    construct,
    ffi,
    lib,
    new_config,
    ns_to_s,
    raise_status,
    set_config,
)
from ._decorate import decorate
from ._defaults import BREAKER as _BREAKER
from ._util import Handle, count, name_bytes, number, ratio, seconds_to_ns, utf8
from .clock import MockClock
from .errors import CircuitOpenError, ConfigError, PermitError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_SUCCESS, _FAILURE, _IGNORED = 0, 1, 2
# A permit's token is generation ^ salt: the generation is its low 40 bits.
_GENERATION_BITS = (1 << 40) - 1
_LATE, _UNEXPECTED = 207, 107


class State(enum.IntEnum):
    """A breaker state (the values are the C ABI's ``surgewall_state``)."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2
    FORCED_OPEN = 3
    DISABLED = 4
    METRICS_ONLY = 5

    @property
    def label(self) -> str:
        return self.name.lower()

    def __str__(self) -> str:
        return self.name.lower()


class Outcome(enum.IntEnum):
    """How a call ended."""

    SUCCESS = 0
    FAILURE = 1
    IGNORED = 2


class Recorded(enum.Enum):
    """What became of a recorded outcome."""

    COUNTED = "counted"
    """Counted in the window (or the breaker is disabled)."""
    LATE = "late"
    """The breaker moved on since the permit was issued: dropped and counted as late."""
    UNEXPECTED = "unexpected"
    """No outstanding permit explains it (a half-open probe recorded twice)."""


@dataclasses.dataclass(frozen=True)
class TimeWindow:
    """A time-based window of ``seconds`` cut into ``buckets`` buckets (left out: the
    library's default window)."""

    seconds: float = _BREAKER.window_seconds
    buckets: int = _BREAKER.window_buckets


@dataclasses.dataclass(frozen=True)
class CountWindow:
    """A window of the last ``calls`` calls."""

    calls: int = 100


@dataclasses.dataclass(frozen=True)
class OpenBackoff:
    """The open wait grows by ``multiplier`` per consecutive opening up to ``max`` seconds,
    with ``jitter`` (a fraction in [0, 1])."""

    multiplier: float = 2.0
    max: float = 60.0
    jitter: float = 0.0


@dataclasses.dataclass(frozen=True)
class FallbackPayload:
    """A static payload served when the breaker rejects, stored in the core (visible to every
    language sharing the breaker)."""

    body: bytes
    content_type: str = "application/octet-stream"


@dataclasses.dataclass(frozen=True)
class WindowCounts:
    """The counts of a window and its rates.

    A rate is ``None`` ("not enough data", never a 0.0 that could read as healthy) while the
    window holds too few calls to be judged: fewer than ``minimum_calls`` in CLOSED and
    METRICS_ONLY, no reported probe in HALF_OPEN (the probes are the half-open window), and
    always in the states without a window (OPEN, FORCED_OPEN, DISABLED).
    """

    calls: int
    failures: int
    slow: int
    failure_rate: Optional[float]
    slow_rate: Optional[float]


@dataclasses.dataclass(frozen=True)
class BreakerMetrics:
    """A snapshot of everything observable about a breaker (times in seconds)."""

    name: str
    state: State
    generation: int
    time_in_state: float
    window: WindowCounts
    """The episode's window: the sliding window (CLOSED, METRICS_ONLY), the probes that
    reported (HALF_OPEN), empty otherwise."""
    last_window: WindowCounts
    """The window of the last episode that ended (CLOSED, METRICS_ONLY or HALF_OPEN, whatever
    it ended in)."""
    minimum_calls: int
    """Calls a CLOSED or METRICS_ONLY window needs before its rates are judged."""
    failure_rate_threshold: Optional[float]
    successes: int
    failures: int
    slow_calls: int
    ignored: int
    rejected_open: int
    rejected_half_open: int
    late_results: int
    unexpected_results: int
    consecutive_failures: int
    consecutive_opens: int
    half_open_admitted: int
    half_open_reported: int
    retry_after: float
    """Seconds left of an OPEN or timed FORCED_OPEN wait (``math.inf``: forced open without
    deadline); 0 in every other state, HALF_OPEN included."""
    transitions: Dict[Tuple[State, State], int]
    """Counts of the transitions that happened, by (from, to)."""


def rate_of(v: float) -> Optional[float]:
    """A rate from the C ABI: NaN there means absent."""
    return None if math.isnan(v) else v


def _counts(c: Any) -> WindowCounts:
    return WindowCounts(
        int(c.calls),
        int(c.failures),
        int(c.slow),
        rate_of(float(c.failure_rate)),
        rate_of(float(c.slow_rate)),
    )


def transitions_of(matrix: Any) -> Dict[Tuple[State, State], int]:
    """The non-zero cells of a C ``transitions[from][to]`` matrix."""
    return {
        (State(i), State(j)): int(matrix[i][j])
        for i in range(6)
        for j in range(6)
        if matrix[i][j]
    }


def fallback_of(getter: Callable[..., int], handle: Any, what: str) -> Optional[FallbackPayload]:
    """The fallback payload a ``surgewall_*_fallback`` getter reports for ``handle``."""
    body = ffi.new("const uint8_t **")
    body_len = ffi.new("size_t *")
    ct = ffi.new("const uint8_t **")
    ct_len = ffi.new("size_t *")
    check(getter(handle, body, body_len, ct, ct_len), what)
    if body[0] == ffi.NULL and ct[0] == ffi.NULL:
        return None
    b = bytes(ffi.buffer(body[0], body_len[0])) if body_len[0] else b""
    c = bytes(ffi.buffer(ct[0], ct_len[0])).decode("utf-8") if ct_len[0] else ""
    return FallbackPayload(b, c)


def _recorded(status: int) -> Recorded:
    if status == 0:
        return Recorded.COUNTED
    if status == _LATE:
        return Recorded.LATE
    if status == _UNEXPECTED:
        return Recorded.UNEXPECTED
    raise_status(status, "record")


ExcTypes = Union[Type[BaseException], Tuple[Type[BaseException], ...]]


def _exc_tuple(field: str, v: ExcTypes) -> Tuple[Type[BaseException], ...]:
    t = v if isinstance(v, tuple) else (v,)
    for e in t:
        if not (isinstance(e, type) and issubclass(e, BaseException)):
            raise ConfigError(field, f"expected exception types, got {e!r}")
    return t


_P = TypeVar("_P", bound="PermitBase")


class PermitBase:
    """What every breaker permit does: report once, by hand or as a context manager (an
    exception is classified by the issuer's failure policy). Subclasses hold ``token``,
    ``start_ns`` and ``_done`` and say how a report reaches the library (``_send``) and how an
    exception is classified (``_outcome_of``).

    A permit is a one-shot capability: it cannot be copied or pickled (``TypeError``). One
    garbage-collected without a report is reported as ignored by its finaliser (a half-open
    probe slot comes back) and counted (``dropped_permits`` of its breaker)."""

    # The fields live in the subclasses (C fields for Permit, slots for KeyedBreakerPermit);
    # mypy is shown them here.
    if TYPE_CHECKING:
        __slots__: Tuple[str, ...] = ("token", "start_ns", "_done")
    else:
        __slots__ = ()

    def __init__(self, token: int, start_ns: int) -> None:
        # generation ^ salt: the generation in the low 40 bits, the issuer's salt above
        self.token = token
        self.start_ns = start_ns
        self._done = False

    def _send(self, outcome: int, duration_ns: Optional[int]) -> int:
        raise NotImplementedError

    def _outcome_of(self, exc: BaseException) -> int:
        raise NotImplementedError

    @property
    def done(self) -> bool:
        return self._done

    def record(self, outcome: Outcome, duration: Optional[float] = None) -> Recorded:
        """Reports the outcome; ``duration`` (seconds) overrides the breaker's own timing."""
        if self._done:
            raise PermitError("this permit was already recorded")
        if not isinstance(outcome, Outcome):
            raise TypeError(f"outcome must be a surgewall.Outcome, got {outcome!r}")
        d = None if duration is None else seconds_to_ns("duration", duration)
        self._done = True
        return _recorded(self._send(outcome, d))

    def success(self, duration: Optional[float] = None) -> Recorded:
        return self.record(Outcome.SUCCESS, duration)

    def failure(self, duration: Optional[float] = None) -> Recorded:
        return self.record(Outcome.FAILURE, duration)

    def ignore(self) -> Recorded:
        """Releases the permit: counts nowhere, gives a half-open probe slot back."""
        return self.record(Outcome.IGNORED)

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(
        self,
        t: Optional[Type[BaseException]],
        v: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if not self._done:
            self.record(Outcome.SUCCESS if v is None else Outcome(self._outcome_of(v)))


class Permit(PermitBase, _speedups.Permit):
    """One admitted call. Report it exactly once with ``success()``, ``failure()`` or
    ``ignore()``; used as a context manager it reports by itself (an exception is classified
    by the breaker's failure policy).

    Not copyable, not picklable (``TypeError``); dropped unreported, its finaliser reports it
    as ignored and counts it in ``Breaker.dropped_permits``."""

    __slots__ = ()

    def __init__(self, breaker: "Breaker", token: int, start_ns: int) -> None:
        self._core = breaker._core
        super().__init__(token, start_ns)

    def _send(self, outcome: int, duration_ns: Optional[int]) -> int:
        core = self._core
        if duration_ns is None:
            return core.record(self.token, self.start_ns, outcome)
        return core.record_timed(self.token, self.start_ns, outcome, duration_ns)

    def _outcome_of(self, exc: BaseException) -> int:
        return self._core.outcome_of(exc)

    @property
    def generation(self) -> int:
        """The breaker generation the permit was issued under."""
        return self.token & _GENERATION_BITS

    def __repr__(self) -> str:
        return f"<Permit generation={self.generation} done={self._done}>"


async def guarded_async(
    acquire: Callable[[], Tuple[int, ...]],
    record: Callable[..., int],
    outcome_of: Callable[[BaseException], int],
    fallback: Optional[Callable[[CircuitOpenError], Any]],
    fn: Callable[..., Awaitable[T]],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
) -> T:
    """The asyncio guarded call of a breaker core: ``acquire()`` gives the permit's fields,
    ``record(*fields, outcome)`` reports it; a rejection goes to ``fallback`` when given."""
    try:
        ticket = acquire()
    except CircuitOpenError as e:
        if fallback is None:
            raise
        return cast(T, fallback(e))
    try:
        result = await fn(*args, **kwargs)
    except BaseException as e:
        record(*ticket, outcome_of(e))
        raise
    record(*ticket, _SUCCESS)
    return result


def check_policy(
    include: ExcTypes,
    exclude: ExcTypes,
    is_failure: Optional[Callable[[BaseException], bool]],
    fallback: Optional[Callable[[CircuitOpenError], Any]],
    clock: Optional[MockClock],
) -> Tuple[Tuple[Type[BaseException], ...], Tuple[Type[BaseException], ...]]:
    """Checks a breaker's failure policy, fallback and clock; returns (include, exclude) as
    tuples of exception types."""
    include_t = _exc_tuple("include", include)
    exclude_t = _exc_tuple("exclude", exclude)
    if is_failure is not None and not callable(is_failure):
        raise ConfigError("is_failure", "must be callable")
    if fallback is not None and not callable(fallback):
        raise ConfigError("fallback", "must be callable")
    if clock is not None and not isinstance(clock, MockClock):
        raise ConfigError("clock", f"expected a MockClock, got {type(clock).__name__}")
    return include_t, exclude_t


class Breaker(Handle, _speedups.WithBase):
    """A circuit breaker.

    Use it as a decorator (``@breaker``, sync or async), a context manager (``with breaker:``
    / ``async with breaker:``), through ``breaker.call(fn, *args, **kwargs)``, or with explicit
    permits (``permit = breaker.acquire()``). A rejected call raises
    :class:`CircuitOpenError` (or returns ``fallback(exc)`` when a fallback is given).

    Which exceptions are failures: those matching ``include`` (default ``Exception``), not
    matching ``exclude``, for which ``is_failure(exc)`` (when given) is true. Everything
    else, including ``asyncio.CancelledError``, ``KeyboardInterrupt`` and ``SystemExit``, is
    recorded as ignored (the permit is released and nothing is counted).

    Every setting left out takes the library's default, the same in every language (the
    signature shows them: ``failure_rate=0.5``, ``minimum_calls=20``, a 60 s window of 10
    buckets, ``open_for=5.0``, ``half_open_calls=3``, ``half_open_max_duration=60.0``);
    ``failure_rate=None`` turns the failure-rate rule off.

    ``free()`` releases the handle (``close()`` is the manual transition to CLOSED, as in
    pybreaker); a finaliser frees it too once the breaker is unreachable.
    """

    _what = "breaker"

    def __init__(
        self,
        name: str,
        *,
        failure_rate: Optional[float] = _BREAKER.failure_rate,
        minimum_calls: int = _BREAKER.minimum_calls,
        window: Union[TimeWindow, CountWindow] = TimeWindow(),
        open_for: float = _BREAKER.open_for,
        half_open_calls: int = _BREAKER.half_open_calls,
        half_open_max_duration: float = _BREAKER.half_open_max_duration,
        slow_call_rate: Optional[float] = None,
        slow_call_duration: Optional[float] = None,
        time_calls: Optional[bool] = None,
        consecutive_failures: Optional[int] = None,
        open_backoff: Optional[OpenBackoff] = None,
        seed: Optional[int] = None,
        precise_clock: bool = False,
        include: ExcTypes = (Exception,),
        exclude: ExcTypes = (),
        is_failure: Optional[Callable[[BaseException], bool]] = None,
        fallback: Optional[Callable[[CircuitOpenError], Any]] = None,
        fallback_payload: Optional[FallbackPayload] = None,
        clock: Optional[MockClock] = None,
    ) -> None:
        raw_name = name_bytes(name)
        self._name = name
        include_t, exclude_t = check_policy(include, exclude, is_failure, fallback, clock)

        with new_config(
            lib.surgewall_breaker_config_new,
            lib.surgewall_breaker_config_free,
            "surgewall_breaker_config",
            f"Breaker({name!r})",
        ) as cfg:
            self._configure(
                cfg,
                failure_rate=failure_rate,
                minimum_calls=minimum_calls,
                window=window,
                open_for=open_for,
                half_open_calls=half_open_calls,
                half_open_max_duration=half_open_max_duration,
                slow_call_rate=slow_call_rate,
                slow_call_duration=slow_call_duration,
                time_calls=time_calls,
                consecutive_failures=consecutive_failures,
                open_backoff=open_backoff,
                seed=seed,
                precise_clock=precise_clock,
                fallback_payload=fallback_payload,
                clock=clock,
            )
        ptr = construct(
            lambda out, err: lib.surgewall_breaker_new(raw_name, len(raw_name), cfg, out, err),
            "surgewall_breaker",
            f"Breaker({name!r})",
        )
        super().__init__(ptr, lib.surgewall_breaker_free)
        handle = int(ffi.cast("uintptr_t", ptr))
        self._core = _speedups.Core(handle, include_t, exclude_t, is_failure, name)
        self._fallback = fallback
        if fallback is None:
            # The guarded call straight into C: the method below costs a Python frame with
            # *args packing, ~200 ns (bench/compare.py); this one behaves the same.
            self.call = self._core.call  # type: ignore[method-assign]
        # `with breaker as p:` runs in C (_speedups.WithBase): each block gets a fresh
        # Permit, found again at __exit__ by the frame that runs the block.
        self._bind(self._core, Permit)

    @staticmethod
    def _configure(
        cfg: Any,
        *,
        failure_rate: Optional[float],
        minimum_calls: int,
        window: Union[TimeWindow, CountWindow],
        open_for: float,
        half_open_calls: int,
        half_open_max_duration: Optional[float],
        slow_call_rate: Optional[float],
        slow_call_duration: Optional[float],
        time_calls: Optional[bool],
        consecutive_failures: Optional[int],
        open_backoff: Optional[OpenBackoff],
        seed: Optional[int],
        precise_clock: bool,
        fallback_payload: Optional[FallbackPayload],
        clock: Optional[MockClock],
    ) -> None:
        if failure_rate is None:
            set_config("failure_rate", lib.surgewall_breaker_config_disable_failure_rate(cfg))
        else:
            v = ratio("failure_rate", failure_rate)
            set_config("failure_rate", lib.surgewall_breaker_config_set_failure_rate(cfg, v))
        set_config(
            "minimum_calls",
            lib.surgewall_breaker_config_set_minimum_calls(
                cfg, count("minimum_calls", minimum_calls)
            ),
        )
        if isinstance(window, TimeWindow):
            d = seconds_to_ns("window.seconds", window.seconds, allow_zero=False)
            n = count("window.buckets", window.buckets, minimum=1)
            set_config("window", lib.surgewall_breaker_config_set_time_window(cfg, d, n))
        elif isinstance(window, CountWindow):
            n = count("window.calls", window.calls, minimum=1)
            set_config("window", lib.surgewall_breaker_config_set_count_window(cfg, n))
        else:
            raise ConfigError("window", f"expected TimeWindow or CountWindow, got {window!r}")
        set_config(
            "open_for",
            lib.surgewall_breaker_config_set_open_for(cfg, seconds_to_ns("open_for", open_for)),
        )
        set_config(
            "half_open_calls",
            lib.surgewall_breaker_config_set_half_open_calls(
                cfg, count("half_open_calls", half_open_calls, minimum=1)
            ),
        )
        if half_open_max_duration is not None:
            d = seconds_to_ns("half_open_max_duration", half_open_max_duration, allow_zero=False)
            set_config(
                "half_open_max_duration",
                lib.surgewall_breaker_config_set_half_open_max_duration(cfg, d),
            )
        if (slow_call_rate is None) != (slow_call_duration is None):
            raise ConfigError(
                "slow_call_rate", "slow_call_rate and slow_call_duration go together"
            )
        if slow_call_rate is not None and slow_call_duration is not None:
            r = ratio("slow_call_rate", slow_call_rate)
            d = seconds_to_ns("slow_call_duration", slow_call_duration, allow_zero=False)
            set_config("slow_call_rate", lib.surgewall_breaker_config_set_slow_calls(cfg, r, d))
        if time_calls is not None:
            if not isinstance(time_calls, bool):
                raise ConfigError("time_calls", "expected a bool")
            set_config("time_calls", lib.surgewall_breaker_config_set_time_calls(cfg, time_calls))
        if consecutive_failures is not None:
            n = count("consecutive_failures", consecutive_failures, minimum=1)
            set_config(
                "consecutive_failures",
                lib.surgewall_breaker_config_set_consecutive_failures(cfg, n),
            )
        if open_backoff is not None:
            if not isinstance(open_backoff, OpenBackoff):
                raise ConfigError("open_backoff", "expected an OpenBackoff")
            m = number("open_backoff.multiplier", open_backoff.multiplier, 1.0)
            mx = seconds_to_ns("open_backoff.max", open_backoff.max)
            j = ratio("open_backoff.jitter", open_backoff.jitter, low_open=False)
            set_config("open_backoff", lib.surgewall_breaker_config_set_open_backoff(cfg, m, mx, j))
        if seed is not None:
            s = count("seed", seed, maximum=(1 << 64) - 1)
            set_config("seed", lib.surgewall_breaker_config_set_seed(cfg, s))
        if precise_clock:
            set_config("precise_clock", lib.surgewall_breaker_config_set_precise_clock(cfg))
        if fallback_payload is not None:
            if not isinstance(fallback_payload, FallbackPayload) or not isinstance(
                fallback_payload.body, (bytes, bytearray)
            ):
                raise ConfigError("fallback_payload", "expected a FallbackPayload(bytes, str)")
            ct = utf8("fallback_payload.content_type", fallback_payload.content_type)
            body = bytes(fallback_payload.body)
            set_config(
                "fallback_payload",
                lib.surgewall_breaker_config_set_fallback(cfg, ct, len(ct), body, len(body)),
            )
        if clock is not None:
            set_config("clock", clock._call(lambda h: lib.surgewall_breaker_config_set_mock_clock(cfg, h)))

    # ---- identity ----

    @property
    def name(self) -> str:
        return self._name

    @property
    def id(self) -> int:
        """The process-unique id (the ``source`` of this breaker's events)."""
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_breaker_id, out), self._name)
        return int(out[0])

    def __repr__(self) -> str:
        if self.freed:
            return f"<Breaker {self._name!r} freed>"
        return f"<Breaker {self._name!r} {self.state.label}>"

    # ---- guarded calls ----

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Calls ``fn(*args, **kwargs)`` under the breaker."""
        # Reached with a fallback only: without one, __init__ binds `call` to the C call.
        try:
            return cast(T, self._core.call(fn, *args, **kwargs))
        except CircuitOpenError as e:
            if self._fallback is None:
                raise
            return cast(T, self._fallback(e))

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Awaits ``fn(*args, **kwargs)`` under the breaker (cancellation counts as ignored)."""
        core = self._core
        return await guarded_async(
            core.acquire, core.record, core.outcome_of, self._fallback, fn, args, kwargs
        )

    def __call__(self, fn: F) -> F:
        """Decorates a function so each call goes through the breaker: a coroutine function
        (or an object whose ``__call__`` is ``async def``) for its whole await, a generator
        or async generator function for its whole iteration (from the first ``next()``; an
        exception while iterating is the outcome, closing it early is ignored), a
        ``staticmethod`` / ``classmethod`` through the function inside it."""

        def sync(f: Callable[..., Any]) -> Callable[..., Any]:
            if self._fallback is not None:

                @functools.wraps(f)
                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    return self.call(f, *args, **kwargs)

                return wrapper
            guarded = self._core.wrap(f)
            functools.update_wrapper(guarded, f)
            return guarded

        def async_(f: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(f)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.call_async(f, *args, **kwargs)

            return async_wrapper

        iterate = self._fallback is None
        return decorate(
            fn,
            f"breaker {self._name!r}",
            sync=sync,
            async_=async_,
            hold=(lambda a, k: self) if iterate else None,
            hold_async=(lambda a, k: self) if iterate else None,
            refuse_iteration="a fallback has no items to give in place of the iteration; "
            "decorate the function that consumes the generator instead",
        )

    # ---- permits ----

    def acquire(self) -> Permit:
        """Asks for a permit; raises :class:`CircuitOpenError` (with ``retry_after``) when
        rejected. Report the permit exactly once."""
        t, s = self._core.acquire()
        return Permit(self, t, s)

    def try_acquire(self) -> Optional[Permit]:
        """A permit, or None when rejected."""
        try:
            return self.acquire()
        except CircuitOpenError:
            return None

    def _record_raw(
        self, t: int, s: int, outcome: int, duration_ns: Optional[int] = None
    ) -> Recorded:
        """Records for a permit's raw fields (the scenarios runner and forged-permit tests)."""
        return _recorded(Permit(self, t, s)._send(outcome, duration_ns))

    async def __aenter__(self) -> Permit:
        # A coroutine's caller frame is the coroutine that awaits it: the `async with` block.
        return cast(Permit, self._push(sys._getframe(1)))

    async def __aexit__(
        self,
        t: Optional[Type[BaseException]],
        v: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._pop(sys._getframe(1), v)

    @property
    def dropped_permits(self) -> int:
        """Permits garbage-collected without a report (each was reported as ignored)."""
        return self._core.drops

    # ---- state ----

    @property
    def state(self) -> State:
        out = ffi.new("surgewall_state *")
        check(self._call(lib.surgewall_breaker_state, out), self._name)
        return State(out[0])

    @property
    def retry_after(self) -> float:
        """Seconds left of an OPEN or timed FORCED_OPEN wait (``math.inf``: forced open without
        deadline); 0 in every other state. In HALF_OPEN with every probe out, a rejection's
        ``retry_after`` is a short hint instead (a tenth of ``open_for``, 1 ms to 1 s)."""
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_breaker_retry_after, out), self._name)
        return ns_to_s(int(out[0]))

    def metrics(self) -> BreakerMetrics:
        m = ffi.new("surgewall_breaker_stats *")
        check(self._call(lib.surgewall_breaker_metrics, m), self._name)
        transitions = transitions_of(m.transitions)
        thr = float(m.failure_rate_threshold)
        return BreakerMetrics(
            name=self._name,
            state=State(m.state),
            generation=int(m.generation),
            time_in_state=int(m.time_in_state_ns) / 1e9,
            window=_counts(m.window),
            last_window=_counts(m.last_window),
            minimum_calls=int(m.minimum_calls),
            failure_rate_threshold=None if thr < 0 else thr,
            successes=int(m.successes),
            failures=int(m.failures),
            slow_calls=int(m.slow_calls),
            ignored=int(m.ignored),
            rejected_open=int(m.rejected_open),
            rejected_half_open=int(m.rejected_half_open),
            late_results=int(m.late_results),
            unexpected_results=int(m.unexpected_results),
            consecutive_failures=int(m.consecutive_failures),
            consecutive_opens=int(m.consecutive_opens),
            half_open_admitted=int(m.half_open_admitted),
            half_open_reported=int(m.half_open_reported),
            retry_after=ns_to_s(int(m.retry_after_ns)),
            transitions=transitions,
        )

    @property
    def fallback_payload(self) -> Optional[FallbackPayload]:
        with self._lease as h:  # the payload is read from the breaker's memory
            return fallback_of(lib.surgewall_breaker_fallback, h, self._name)

    def set_failure_rate_threshold(self, threshold: float) -> float:
        """Moves the failure-rate threshold (in (0, 1]); returns the previous one."""
        v = ratio("threshold", threshold)
        old = ffi.new("double *")
        check(self._call(lib.surgewall_breaker_set_failure_rate_threshold, v, old), self._name)
        return float(old[0])

    # ---- manual transitions ----

    def force_open(self, seconds: Optional[float] = None) -> None:
        """Opens by hand, for ``seconds`` (then it probes) or until another manual transition."""
        d = -1 if seconds is None else seconds_to_ns("seconds", seconds)
        check(self._call(lib.surgewall_breaker_force_open, d), self._name)

    def open(self) -> None:
        """The manual transition to OPEN, as a trip would make it (resilience4j's
        ``transitionToOpenState``), unlike :meth:`force_open`: rejections say
        ``RejectReason.OPEN``, the open wait applies with its backoff of consecutive opens,
        then the next call starts probing (HALF_OPEN). A no-op when OPEN."""
        check(self._call(lib.surgewall_breaker_open), self._name)

    def disable(self) -> None:
        """Every call passes; nothing is recorded."""
        check(self._call(lib.surgewall_breaker_disable), self._name)

    def metrics_only(self) -> None:
        """Every call passes and is recorded; never trips."""
        check(self._call(lib.surgewall_breaker_metrics_only), self._name)

    def close(self) -> None:
        """The manual transition to CLOSED (a no-op when CLOSED). To free the handle use
        :meth:`free`."""
        check(self._call(lib.surgewall_breaker_close), self._name)

    def half_open(self) -> None:
        """Starts probing now, from OPEN or FORCED_OPEN (InvalidTransitionError from CLOSED)."""
        check(self._call(lib.surgewall_breaker_half_open), self._name)

    def reset(self) -> None:
        """A fresh CLOSED episode from any state (counts cleared, backoff over).

        Permits issued before it (as before any transition) belong to the old generation:
        reporting one returns ``Recorded.LATE`` and counts in ``late_results``, not in the
        new window; half-open probe slots of the old episode do not carry over."""
        check(self._call(lib.surgewall_breaker_reset), self._name)

    # ---- lifetime ----

    def free(self) -> None:
        """Frees the handle (idempotent). Later use raises :class:`ClosedError`; functions it
        decorated raise it too. Calls already inside the library on another thread finish
        first: the handle is freed when the last of them returns, never under one."""
        core = getattr(self, "_core", None)
        if core is not None:
            core.close()
        self._release()


__all__ = [
    "State",
    "Outcome",
    "Recorded",
    "TimeWindow",
    "CountWindow",
    "OpenBackoff",
    "FallbackPayload",
    "WindowCounts",
    "BreakerMetrics",
    "Permit",
    "Breaker",
    "U64_MAX",
]
