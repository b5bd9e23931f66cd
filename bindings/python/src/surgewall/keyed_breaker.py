"""Keyed breakers: one compact circuit breaker per key (endpoint, host, tenant), in the library."""

from __future__ import annotations

import dataclasses
import functools
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Iterator,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
    cast,
)

from . import _speedups
from ._native import (
    U64_MAX,
    Key,
    check,
    construct,
    error_for,
    ffi,
    lib,
    new_config,
    ns_to_s,
    set_config,
)
from ._decorate import async_of, decorate
from ._defaults import BREAKER as _BREAKER
from ._util import Handle, count, name_bytes, seconds_to_ns, utf8
from .breaker import (
    Breaker,
    CountWindow,
    ExcTypes,
    FallbackPayload,
    OpenBackoff,
    PermitBase,
    State,
    TimeWindow,
    WindowCounts,
    check_policy,
    fallback_of,
    guarded_async,
    rate_of,
    transitions_of,
)
from .clock import MockClock
from .errors import CircuitOpenError, ConfigError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

OVERFLOW_KEY = U64_MAX
"""The int key of the shared overflow breaker (``overflow="shared"``): the ``key`` of its
events, and what :meth:`KeyedBreaker.get` and the manual transitions reach it by. No str or
bytes key hashes to it, and iteration does not list it."""

# What a per-key override may not set: the clock, the fallbacks and the failure policy belong
# to the keyed breaker (the template's, for every key). It may set any template setting.
_WHOLE = ("precise_clock", "include", "exclude", "is_failure", "fallback", "fallback_payload", "clock")


@dataclasses.dataclass(frozen=True)
class KeySnapshot:
    """One key's breaker (times in seconds)."""

    key: int
    """The 64-bit key (see :meth:`KeyedBreaker.key_of`)."""
    state: State
    generation: int
    window: WindowCounts
    """The episode's window: the sliding window (CLOSED, METRICS_ONLY), the probes that
    reported (HALF_OPEN), zero otherwise; rates ``None`` when absent (see WindowCounts)."""
    minimum_calls: int
    consecutive_failures: int
    consecutive_opens: int
    retry_after: float
    """Seconds left of an OPEN or timed FORCED_OPEN wait (``math.inf``: not by itself); 0 in
    every other state, HALF_OPEN included."""


def _snapshot(
    row: Tuple[int, int, int, int, int, int, float, float, int, int, int, int]
) -> KeySnapshot:
    key, state, gen, calls, failures, slow, fr, sr, mc, cf, co, ra = row
    window = WindowCounts(calls, failures, slow, rate_of(fr), rate_of(sr))
    return KeySnapshot(key, State(state), gen, window, mc, cf, co, ns_to_s(ra))


@dataclasses.dataclass(frozen=True)
class KeyedBreakerMetrics:
    """Counters over all keys of a keyed breaker."""

    name: str
    keys: int
    max_keys: int
    created: int
    evicted: int
    overflowed: int
    """New keys routed to the shared overflow breaker."""
    refused_keys: int
    """New keys refused at the cap (:class:`RegistryFullError`)."""
    failures: int
    ignored: int
    rejected_open: int
    rejected_half_open: int
    late_results: int
    unexpected_results: int
    transitions: Dict[Tuple[State, State], int]
    """Counts of the transitions that happened over all keys, by (from, to)."""


class KeyedBreakerPermit(PermitBase):
    """One admitted call on one key. Report it exactly once with ``success()``, ``failure()``
    or ``ignore()``; as a context manager it reports by itself (an exception is classified by
    the keyed breaker's failure policy). Safe to report after the key was evicted (the result
    is then late)."""

    __slots__ = ("token", "start_ns", "_done", "_kb", "key", "slot")

    def __init__(self, kb: "KeyedBreaker", key: Key, token: int, start_ns: int, slot: int) -> None:
        super().__init__(token, start_ns)
        self._kb = kb
        self.key = key
        self.slot = slot

    def _send(self, outcome: int, duration_ns: Optional[int]) -> int:
        core = self._kb._core
        if duration_ns is None:
            return core.record(self.token, self.start_ns, self.slot, outcome)
        return core.record(self.token, self.start_ns, self.slot, outcome, duration_ns)

    def _outcome_of(self, exc: BaseException) -> int:
        return self._kb._core.outcome_of(exc)

    def __del__(self) -> None:
        # I5: a permit dropped without a report is released as ignored, and counted.
        if getattr(self, "_done", True):
            return
        self._done = True
        kb = self._kb
        kb._lease.note_drop()
        try:
            kb._core.record(self.token, self.start_ns, self.slot, 2)  # ignored
        except Exception:  # a freed keyed breaker: nothing to give back to
            pass

    def __copy__(self) -> "KeyedBreakerPermit":
        raise TypeError("KeyedBreakerPermit cannot be copied: a permit reports one admission once")

    def __deepcopy__(self, memo: Any) -> "KeyedBreakerPermit":
        return self.__copy__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(
            "KeyedBreakerPermit cannot be pickled: a permit is valid only in the process and "
            "for the keyed breaker that issued it"
        )

    def __repr__(self) -> str:
        return f"<KeyedBreakerPermit key={self.key!r} done={self._done}>"


class KeyedBreaker(Handle):
    """One circuit breaker per key (per endpoint, host, tenant), each made on first use from
    the template (the settings :class:`Breaker` takes) or its key's override, and held in the
    library's compact layout: a few dozen bytes per idle key.

    Keys are ``int`` (0 .. 2**64 - 1, used as is), ``str`` or ``bytes`` (hashed by the library
    with a per-instance seed; :meth:`key_of` tells the 64-bit key, which events carry).

    - ``max_keys`` caps the keys held (default 10 000): a new key beyond it raises
      :class:`RegistryFullError` (``overflow="reject"``) or shares one overflow breaker with
      every other key beyond the cap (``overflow="shared"``; it lives under
      :data:`OVERFLOW_KEY`).
    - :meth:`sweep` evicts CLOSED keys idle for ``idle_ttl`` seconds (default 600); OPEN,
      HALF_OPEN and manually set keys are never evicted. Run it periodically.
    - ``overrides`` maps keys to the template settings they change, e.g.
      ``{"payments": {"failure_rate": 0.2}}``; a bad value is a :class:`ConfigError` naming
      the key and the field.
    - The failure policy (``include``, ``exclude``, ``is_failure``), ``fallback``,
      ``fallback_payload`` and ``clock`` are the keyed breaker's, for every key.

    Transitions are published as ``EventKind.KEYED_TRANSITION`` events carrying the key,
    evictions as ``EventKind.EVICTED``, both with ``source == kb.id``.

    >>> import surgewall
    >>> kb = surgewall.KeyedBreaker("hosts", consecutive_failures=2, max_keys=1000)
    >>> kb.call("api.example.com", lambda: "ok")
    'ok'
    >>> kb.force_open("db.example.com")
    >>> kb.state("db.example.com")
    <State.FORCED_OPEN: 3>
    >>> kb.free()

    ``free()`` releases the handle (``close(key)`` is the manual transition of one key to
    CLOSED); a finaliser frees it too once the keyed breaker is unreachable.
    """

    _what = "keyed breaker"

    def __init__(
        self,
        name: str = "keyed",
        *,
        max_keys: Optional[int] = None,
        overflow: str = "reject",
        idle_ttl: Optional[float] = None,
        overrides: Optional[Mapping[Key, Mapping[str, Any]]] = None,
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
        name_bytes(name)
        self._name = name
        include_t, exclude_t = check_policy(include, exclude, is_failure, fallback, clock)
        if overflow not in ("reject", "shared"):
            raise ConfigError("overflow", f"expected 'reject' or 'shared', got {overflow!r}")
        if overflow == "shared" and max_keys is None:
            raise ConfigError("max_keys", "overflow='shared' needs a max_keys to overflow")
        template: Dict[str, Any] = dict(
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
        )
        per_key = [
            (k, {**template, **_override_options(k, o, template)})
            for k, o in (overrides or {}).items()
        ]

        with new_config(
            lib.surgewall_breaker_config_new,
            lib.surgewall_breaker_config_free,
            "surgewall_breaker_config",
            f"KeyedBreaker({name!r})",
        ) as tcfg:
            Breaker._configure(
                tcfg,
                **template,
                precise_clock=precise_clock,
                fallback_payload=fallback_payload,
                clock=clock,
            )
        out = ffi.new("surgewall_keyed_breaker_config **")
        check(lib.surgewall_keyed_breaker_config_new(tcfg, out), f"KeyedBreaker({name!r})")
        kcfg = out[0]
        try:
            raw_name = name_bytes(name)
            set_config("name", lib.surgewall_keyed_breaker_config_set_name(kcfg, raw_name, len(raw_name)))
            for key, options in per_key:
                _set_override(kcfg, key, options)
            if max_keys is not None:
                m = count("max_keys", max_keys, minimum=1, maximum=(1 << 63) - 1)
                set_config(
                    "max_keys",
                    lib.surgewall_keyed_breaker_config_set_max_keys(kcfg, m, overflow == "shared"),
                )
            if idle_ttl is not None:
                t = seconds_to_ns("idle_ttl", idle_ttl, allow_zero=False)
                set_config("idle_ttl", lib.surgewall_keyed_breaker_config_set_idle_ttl(kcfg, t))
        except BaseException:
            lib.surgewall_keyed_breaker_config_free(kcfg)
            raise
        ptr = construct(
            lambda o, err: lib.surgewall_keyed_breaker_new(kcfg, o, err),
            "surgewall_keyed_breaker",
            f"KeyedBreaker({name!r})",
        )
        super().__init__(ptr, lib.surgewall_keyed_breaker_free)
        handle = int(ffi.cast("uintptr_t", ptr))
        self._core = _speedups.KeyedCore(handle, include_t, exclude_t, is_failure, name)
        self._fallback = fallback
        if fallback is None:
            # The guarded call straight into C: the method below costs a Python frame with
            # *args packing, ~200 ns (bench/compare.py); this one behaves the same.
            self.call = self._core.call  # type: ignore[method-assign]

    # ---- identity ----

    @property
    def name(self) -> str:
        """The name given at construction (used in error messages)."""
        return self._name

    @property
    def id(self) -> int:
        """The process-unique id: the ``source`` of this keyed breaker's events."""
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_keyed_breaker_id, out), self._name)
        return int(out[0])

    def key_of(self, key: Key) -> int:
        """The 64-bit key ``key`` maps to here (an int key is itself): the ``key`` of its
        events and of its :class:`KeySnapshot`."""
        return self._core.key_of(key)

    def __repr__(self) -> str:
        if self.freed:
            return f"<KeyedBreaker {self._name!r} freed>"
        return f"<KeyedBreaker {self._name!r} keys={len(self)}>"

    # ---- guarded calls ----

    def call(self, key: Key, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Calls ``fn(*args, **kwargs)`` under ``key``'s breaker (made on first use)."""
        # Reached with a fallback only: without one, __init__ binds `call` to the C call.
        try:
            return cast(T, self._core.call(key, fn, *args, **kwargs))
        except CircuitOpenError as e:
            if self._fallback is None:
                raise
            return cast(T, self._fallback(e))

    async def call_async(
        self, key: Key, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """Awaits ``fn(*args, **kwargs)`` under ``key``'s breaker (cancellation counts as
        ignored)."""
        core = self._core
        return await guarded_async(
            lambda: core.acquire(key), core.record, core.outcome_of, self._fallback, fn, args, kwargs
        )

    def decorate(self, key: Union[Key, Callable[..., Key]]) -> Callable[[F], F]:
        """A decorator guarding each call with one key's breaker: ``key`` is the key, or a
        callable given the call's arguments that returns it::

            @kb.decorate(lambda url, **kw: urllib.parse.urlsplit(url).hostname)
            def fetch(url, timeout=2.0): ...
        """
        key_fn: Optional[Callable[..., Key]] = key if callable(key) else None
        fixed = cast(Key, key)

        def key_for(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Key:
            return key_fn(*args, **kwargs) if key_fn is not None else fixed

        def decorator(fn: F) -> F:
            def sync(f: Callable[..., Any]) -> Callable[..., Any]:
                call = self.call

                @functools.wraps(f)
                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    return call(key_for(args, kwargs), f, *args, **kwargs)

                return wrapper

            def async_(f: Callable[..., Any]) -> Callable[..., Any]:
                @functools.wraps(f)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await self.call_async(key_for(args, kwargs), f, *args, **kwargs)

                return async_wrapper

            iterate = self._fallback is None
            return decorate(
                fn,
                f"keyed breaker {self._name!r}",
                sync=sync,
                async_=async_,
                hold=(lambda a, k: self.acquire(key_for(a, k))) if iterate else None,
                hold_async=(lambda a, k: async_of(self.acquire(key_for(a, k))))
                if iterate
                else None,
                refuse_iteration="a fallback has no items to give in place of the iteration; "
                "decorate the function that consumes the generator instead",
            )

        return decorator

    # ---- permits ----

    def acquire(self, key: Key) -> KeyedBreakerPermit:
        """Asks ``key``'s breaker for a permit; raises :class:`CircuitOpenError` (with
        ``retry_after`` and ``key``) when it refuses, :class:`RegistryFullError` when the key
        is new and the cap refuses it. Report the permit exactly once (or use ``with``)."""
        t, s, slot = self._core.acquire(key)
        return KeyedBreakerPermit(self, key, t, s, slot)

    def try_acquire(self, key: Key) -> Optional[KeyedBreakerPermit]:
        """A permit, or None when ``key``'s breaker refuses."""
        try:
            return self.acquire(key)
        except CircuitOpenError:
            return None

    # ---- keys ----

    def get(self, key: Key) -> Optional[KeySnapshot]:
        """``key``'s breaker, or None when it is not held (never used, or evicted). Never
        creates the key."""
        row = self._core.get(key)
        return None if row is None else _snapshot(row)

    def state(self, key: Key) -> Optional[State]:
        """``key``'s state, or None when it is not held."""
        s = self.get(key)
        return None if s is None else s.state

    def __contains__(self, key: object) -> bool:
        if isinstance(key, bool) or not isinstance(key, (str, bytes, int)):
            return False
        return self._core.get(key) is not None

    def __len__(self) -> int:
        """Keys held now (the shared overflow breaker excluded)."""
        return self.metrics().keys

    def snapshot(self) -> Dict[int, KeySnapshot]:
        """Every key held, by 64-bit key (the shared overflow breaker excluded)."""
        return {row[0]: _snapshot(row) for row in self._core.snapshot()}

    def __iter__(self) -> Iterator[KeySnapshot]:
        """The keys held now (a snapshot taken when iteration starts)."""
        return iter(self.snapshot().values())

    def sweep(self) -> int:
        """Evicts the CLOSED keys idle for longer than ``idle_ttl`` (an idle key goes at the
        first sweep ``idle_ttl`` after the sweep that first saw it idle); returns how many.
        Each eviction is published as an ``EventKind.EVICTED`` event."""
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_keyed_breaker_sweep, out), self._name)
        return int(out[0])

    # ---- manual transitions (they make the key if it is new) ----

    def _op(self, what: str, fn: Callable[..., int], key: Key, *args: Any) -> None:
        k = self._core.key_of(key)
        st = self._call(fn, k, *args)
        if st != 0:
            raise error_for(st, 0, f"{self._name}.{what}", key)

    def force_open(self, key: Key, seconds: Optional[float] = None) -> None:
        """Opens ``key`` by hand, for ``seconds`` (then it probes) or until another manual
        transition. A forced-open key is never evicted."""
        d = -1 if seconds is None else seconds_to_ns("seconds", seconds)
        self._op("force_open", lib.surgewall_keyed_breaker_force_open, key, d)

    def open(self, key: Key) -> None:
        """The manual transition of ``key`` to OPEN, as a trip would make it, unlike
        :meth:`force_open`: the open wait applies with the key's backoff of consecutive opens,
        then the next call on ``key`` starts probing. A no-op when it is OPEN."""
        self._op("open", lib.surgewall_keyed_breaker_open, key)

    def disable(self, key: Key) -> None:
        """Every call on ``key`` passes; nothing is recorded (the key is not evicted)."""
        self._op("disable", lib.surgewall_keyed_breaker_disable, key)

    def metrics_only(self, key: Key) -> None:
        """Every call on ``key`` passes and is recorded; it never trips."""
        self._op("metrics_only", lib.surgewall_keyed_breaker_metrics_only, key)

    def close(self, key: Key) -> None:
        """The manual transition of ``key`` to CLOSED (a no-op when CLOSED). To free the
        keyed breaker use :meth:`free`."""
        self._op("close", lib.surgewall_keyed_breaker_close, key)

    def half_open(self, key: Key) -> None:
        """Starts probing ``key`` now, from OPEN or FORCED_OPEN (InvalidTransitionError from
        CLOSED)."""
        self._op("half_open", lib.surgewall_keyed_breaker_half_open, key)

    def reset(self, key: Key) -> None:
        """A fresh CLOSED episode for ``key`` from any state; ``key``'s permits issued before
        it report ``Recorded.LATE`` (counted in ``late_results``, not in the new window)."""
        self._op("reset", lib.surgewall_keyed_breaker_reset, key)

    # ---- observation ----

    def metrics(self) -> KeyedBreakerMetrics:
        m = ffi.new("surgewall_keyed_breaker_stats *")
        check(self._call(lib.surgewall_keyed_breaker_metrics, m), self._name)
        return KeyedBreakerMetrics(
            name=self._name,
            keys=int(m.keys),
            max_keys=int(m.max_keys),
            created=int(m.created),
            evicted=int(m.evicted),
            overflowed=int(m.overflowed),
            refused_keys=int(m.refused_keys),
            failures=int(m.failures),
            ignored=int(m.ignored),
            rejected_open=int(m.rejected_open),
            rejected_half_open=int(m.rejected_half_open),
            late_results=int(m.late_results),
            unexpected_results=int(m.unexpected_results),
            transitions=transitions_of(m.transitions),
        )

    @property
    def fallback_payload(self) -> Optional[FallbackPayload]:
        """The template's fallback payload, stored in the library."""
        with self._lease as h:  # the payload is read from the keyed breaker's memory
            return fallback_of(lib.surgewall_keyed_breaker_fallback, h, self._name)

    # ---- lifetime ----

    @property
    def dropped_permits(self) -> int:
        """Permits garbage-collected without a report (each was reported as ignored)."""
        return self._lease.drops

    def free(self) -> None:
        """Frees the handle (idempotent). Later use raises :class:`ClosedError`; functions it
        decorated raise it too."""
        core = getattr(self, "_core", None)
        if core is not None:
            core.close()
        self._release()


def _override_options(key: object, options: object, template: Mapping[str, Any]) -> Dict[str, Any]:
    """An override's settings, checked by name: a ConfigError names the key and the field."""
    if isinstance(key, bool) or not isinstance(key, (str, bytes, int)):
        raise ConfigError("overrides", f"keys are str, bytes or int, got {key!r}")
    if not isinstance(options, Mapping):
        raise ConfigError("overrides", f"the override for {key!r} must be a mapping of settings")
    for field in options:
        if field in _WHOLE:
            raise ConfigError(
                f"overrides[{key!r}].{field}",
                "a keyed breaker has one for all keys: set it on the template",
            )
        if field not in template:
            raise ConfigError(f"overrides[{key!r}].{field}", "not a breaker setting")
    return dict(options)


def _set_override(kcfg: Any, key: Key, options: Dict[str, Any]) -> None:
    """Adds ``key``'s override (template settings updated by its own) to ``kcfg``."""
    with new_config(
        lib.surgewall_breaker_config_new,
        lib.surgewall_breaker_config_free,
        "surgewall_breaker_config",
        f"override {key!r}",
    ) as ocfg:
        try:
            Breaker._configure(
                ocfg, **options, precise_clock=False, fallback_payload=None, clock=None
            )
        except ConfigError as e:
            raise ConfigError(f"overrides[{key!r}].{e.field}", str(e).split(": ", 1)[-1]) from None
    if isinstance(key, int):
        k = count("overrides", key, maximum=U64_MAX)
        st = lib.surgewall_keyed_breaker_config_set_override(kcfg, k, ocfg)
    else:
        raw = utf8(f"overrides[{key!r}]", key) if isinstance(key, str) else key
        st = lib.surgewall_keyed_breaker_config_set_override_str(kcfg, raw, len(raw), ocfg)
    set_config(f"overrides[{key!r}]", st)


__all__ = [
    "OVERFLOW_KEY",
    "KeyedBreaker",
    "KeyedBreakerMetrics",
    "KeyedBreakerPermit",
    "KeySnapshot",
]
