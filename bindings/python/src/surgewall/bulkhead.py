"""Bulkheads (a concurrency limit) and keyed bulkheads (a limit per key: tenant, user)."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from types import TracebackType
from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, Tuple, Type, TypeVar, Union, cast

from ._native import check, construct, ffi, lib, new_config, raise_status, set_config
from ._decorate import decorate, through
from ._defaults import BULKHEAD as _BULKHEAD
from ._util import Handle, Owned, count, held, name_bytes, seconds_to_ns, utf8
from .clock import MockClock
from .errors import BulkheadFullError, ClosedError, ConfigError, RegistryFullError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_OK, _FULL, _TIMEOUT, _UNEXPECTED, _REGISTRY_FULL, _CLOSED = 0, 203, 204, 107, 209, 211
_MAX_CONCURRENT_LIMIT = (1 << 24) - 1


@dataclasses.dataclass(frozen=True)
class BulkheadMetrics:
    """A snapshot of a bulkhead (times in seconds)."""

    name: str
    active: int
    waiting: int
    max_concurrent: int
    accepted: int
    rejected: int
    timed_out: int
    waited: int
    total_wait: float
    max_wait: float
    unexpected_releases: int


_S = TypeVar("_S", bound="_Slot")


class _Slot:
    """What a bulkhead's permits share: one slot, given back once by ``release()`` (also at the
    end of a ``with`` block), never copied or pickled."""

    __slots__ = ()

    def release(self) -> None:
        raise NotImplementedError

    def __copy__(self: _S) -> _S:
        raise TypeError(f"{type(self).__name__} cannot be copied: it stands for one slot, released once")

    def __deepcopy__(self: _S, memo: Any) -> _S:
        return self.__copy__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be pickled: it is valid only in this process")

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        t: Optional[Type[BaseException]],
        v: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()


class BulkheadPermit(_Slot):
    """A slot taken by :meth:`Bulkhead.acquire`: give it back with :meth:`release` or by
    leaving its ``with`` block (``with bulkhead.acquire(): ...``). A second ``release()``
    does nothing. It is not released when garbage-collected (``acquire()`` followed by
    ``bulkhead.release()`` keeps working), so hold it in a ``with`` block. It cannot be
    copied or pickled (``TypeError``: it stands for one slot)."""

    __slots__ = ("_bulkhead", "_done")

    def __init__(self, bulkhead: "Bulkhead") -> None:
        self._bulkhead = bulkhead
        self._done = False

    @property
    def released(self) -> bool:
        """Whether :meth:`release` was called."""
        return self._done

    def release(self) -> None:
        """Gives the slot back (once; later calls do nothing)."""
        if self._done:
            return
        self._done = True
        self._bulkhead.release()

    def __repr__(self) -> str:
        return f"<BulkheadPermit {self._bulkhead.name!r}{' released' if self._done else ''}>"


def _check_clock(clock: Optional[MockClock]) -> Optional[MockClock]:
    if clock is not None and not isinstance(clock, MockClock):
        raise ConfigError("clock", f"expected a MockClock, got {type(clock).__name__}")
    return clock


class Bulkhead(Handle):
    """At most ``max_concurrent`` calls in flight. A blocking caller waits up to ``max_wait``
    seconds for a slot (FIFO, the GIL released); an asyncio caller awaits without blocking the
    loop. Full: :class:`BulkheadFullError`. Left out, ``max_concurrent`` and ``max_wait`` are
    the library's defaults (25, and 0: never wait), as the signature shows.

    Use it as a decorator (sync or async), ``with bulkhead:`` / ``async with bulkhead:``,
    ``bulkhead.call(fn, ...)``, or ``try_acquire()`` / ``release()``.

    ``free()`` refuses new calls (:class:`ClosedError`), wakes every thread waiting in
    :meth:`acquire` at once with :class:`ClosedError` (not left to its timeout), and frees
    the handle when the last call inside it has returned. A slot taken before it needs no
    release (``release()`` after it does nothing, so a guarded call still ends normally)."""

    _what = "bulkhead"
    # free() wakes the threads waiting in acquire(): each raises ClosedError.
    _wake = lib.surgewall_bulkhead_close

    def __init__(
        self,
        name: str,
        max_concurrent: int = _BULKHEAD.max_concurrent,
        max_wait: float = _BULKHEAD.max_wait,
        *,
        clock: Optional[MockClock] = None,
    ) -> None:
        raw = name_bytes(name)
        n = count("max_concurrent", max_concurrent, minimum=1)
        w = seconds_to_ns("max_wait", max_wait)
        with held(_check_clock(clock)) as c:
            ptr = construct(
                lambda out, err: lib.surgewall_bulkhead_new(raw, len(raw), n, w, c, out, err),
                "surgewall_bulkhead",
                f"Bulkhead({name!r})",
            )
        super().__init__(ptr, lib.surgewall_bulkhead_free)
        self._name = name
        self._max_wait = max_wait
        self._clock = clock

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<Bulkhead {self._name!r}{' freed' if self.freed else ''}>"

    def try_acquire(self) -> bool:
        """Takes a slot without waiting; True when taken (then call :meth:`release`)."""
        st = self._call(lib.surgewall_bulkhead_try_acquire)
        if st == _OK:
            return True
        if st == _FULL:
            return False
        raise_status(st, self._name)

    def acquire(self, timeout: Optional[float] = None) -> BulkheadPermit:
        """Takes a slot, waiting up to ``timeout`` seconds (default: ``max_wait``), and
        returns it as a :class:`BulkheadPermit`: ``with bulkhead.acquire(): ...`` gives it
        back at the end of the block (so does ``permit.release()`` or ``bulkhead.release()``)."""
        t = -1 if timeout is None else seconds_to_ns("timeout", timeout)
        st = self._call(lib.surgewall_bulkhead_acquire, t)
        if st == _OK:
            return BulkheadPermit(self)
        if st in (_FULL, _TIMEOUT):
            raise BulkheadFullError(
                f"bulkhead {self._name!r} is full"
                + (" (waited and timed out)" if st == _TIMEOUT else ""),
                st,
            )
        if st == _CLOSED:
            raise ClosedError(f"bulkhead {self._name!r} was freed while this call waited", st)
        raise_status(st, self._name)

    async def acquire_async(self, timeout: Optional[float] = None) -> BulkheadPermit:
        """Awaits a slot up to ``timeout`` seconds (default: ``max_wait``) without blocking the
        loop (polls with ``asyncio.sleep``) and returns it as a :class:`BulkheadPermit`
        (``with await bulkhead.acquire_async(): ...``). A cancelled waiter holds no slot.

        The wait is measured on the bulkhead's clock, as a blocking :meth:`acquire` measures
        it: the event loop's time, or the ``MockClock`` given at construction (then it ends
        only when the mock clock is advanced past it). Unlike blocking waiters, async waiters
        are not served in FIFO order: they take a slot when their poll finds one free."""
        if self.try_acquire():
            return BulkheadPermit(self)
        limit = self._max_wait if timeout is None else timeout
        seconds_to_ns("timeout", limit)
        loop = asyncio.get_running_loop()
        clock = self._clock
        now: Callable[[], float] = loop.time if clock is None else clock.now
        deadline = now() + limit
        pause = 0.0005
        while True:
            left = deadline - now()
            if left <= 0:
                raise BulkheadFullError(
                    f"bulkhead {self._name!r} is full (waited and timed out)", _TIMEOUT
                )
            await asyncio.sleep(pause if clock is not None else min(pause, left))
            if self.try_acquire():
                return BulkheadPermit(self)
            pause = min(pause * 2, 0.01)

    def release(self) -> None:
        """Gives a slot back (:class:`SurgewallError` when none was taken). After
        :meth:`free` it does nothing: the slots went with the bulkhead, and a call that
        held one when another thread closed it still ends normally."""
        try:
            st = self._call(lib.surgewall_bulkhead_release)
        except ClosedError:
            return
        if st != _OK:
            raise_status(st, f"bulkhead {self._name!r} release")

    @property
    def max_concurrent(self) -> int:
        """The limit in force now (see :meth:`set_max_concurrent`)."""
        return self.metrics().max_concurrent

    @property
    def available(self) -> int:
        """Slots free now: ``max_concurrent - active``, never below 0 (after a shrink the
        calls in flight may outnumber the new limit for a while)."""
        m = self.metrics()
        return max(0, m.max_concurrent - m.active)

    def set_max_concurrent(self, max_concurrent: int) -> int:
        """Changes the limit live (1..16777215; :class:`ConfigError` otherwise) and returns
        the previous one. Growing admits the threads waiting in :meth:`acquire`, oldest
        first; shrinking leaves the slots held valid, and new calls wait (or are refused)
        until fewer than the new limit are in flight."""
        n = count("max_concurrent", max_concurrent, minimum=1, maximum=_MAX_CONCURRENT_LIMIT)
        old = ffi.new("uint32_t *")
        check(self._call(lib.surgewall_bulkhead_set_max_concurrent, n, old), self._name)
        return int(old[0])

    def metrics(self) -> BulkheadMetrics:
        m = ffi.new("surgewall_bulkhead_stats *")
        check(self._call(lib.surgewall_bulkhead_metrics, m), self._name)
        return BulkheadMetrics(
            name=self._name,
            active=int(m.active),
            waiting=int(m.waiting),
            max_concurrent=int(m.max_concurrent),
            accepted=int(m.accepted),
            rejected=int(m.rejected),
            timed_out=int(m.timed_out),
            waited=int(m.waited),
            total_wait=int(m.total_wait_ns) / 1e9,
            max_wait=int(m.max_wait_ns) / 1e9,
            unexpected_releases=int(m.unexpected_releases),
        )

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.acquire()
        try:
            return fn(*args, **kwargs)
        finally:
            self.release()

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        await self.acquire_async()
        try:
            return await fn(*args, **kwargs)
        finally:
            self.release()

    def __call__(self, fn: F) -> F:
        """Decorates a function so each call holds a slot: a coroutine function (or an
        object whose ``__call__`` is ``async def``) for its whole await, a generator or
        async generator function for its whole iteration (from the first ``next()``), a
        ``staticmethod`` / ``classmethod`` through the function inside it."""

        sync, async_ = through(self.call, self.call_async)

        return decorate(
            fn,
            f"bulkhead {self._name!r}",
            sync=sync,
            async_=async_,
            hold=lambda a, k: self,
            hold_async=lambda a, k: self,
        )

    def __enter__(self) -> "Bulkhead":
        self.acquire()
        return self

    def __exit__(
        self,
        t: Optional[Type[BaseException]],
        v: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    async def __aenter__(self) -> "Bulkhead":
        await self.acquire_async()
        return self

    async def __aexit__(
        self,
        t: Optional[Type[BaseException]],
        v: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()



class KeyedRejection(enum.IntEnum):
    KEY_FULL = 1
    GLOBAL_FULL = 2
    TOO_MANY_KEYS = 3


class KeyedBulkheadFullError(BulkheadFullError):
    """A keyed bulkhead refused: ``rejection`` says whether the key or the global limit is full."""

    rejection: KeyedRejection
    key: Union[str, int]

    def __init__(self, key: Union[str, int], rejection: KeyedRejection, status: int) -> None:
        super().__init__(f"key {key!r}: {rejection.name.lower().replace('_', ' ')}", status)
        self.rejection = rejection
        self.key = key


@dataclasses.dataclass(frozen=True)
class KeyedBulkheadMetrics:
    global_active: int
    global_max: Optional[int]
    per_key_max: int
    rejected_key: int
    rejected_global: int
    unexpected_releases: int
    keys: int
    max_keys: Optional[int]
    created: int
    evicted: int
    overflowed: int
    refused_keys: int


class KeyedPermit(_Slot):
    """A slot of a keyed bulkhead; give it back once with ``release()`` (or use ``with``).

    It cannot be copied or pickled (``TypeError``: it stands for one slot). One
    garbage-collected without a release gives its slot back from its finaliser, counted in
    ``KeyedBulkhead.dropped_permits``."""

    __slots__ = ("_kb", "_permit", "key", "_done")

    def __init__(self, kb: "KeyedBulkhead", permit: Any, key: Union[str, int]) -> None:
        self._kb = kb
        self._permit = permit
        self.key = key
        self._done = False

    def release(self) -> None:
        if self._done:
            return
        self._done = True
        check(self._kb._call(lib.surgewall_keyed_bulkhead_release, self._permit[0]), "release")

    def __del__(self) -> None:
        if getattr(self, "_done", True):
            return
        self._done = True
        try:
            self._kb._lease.note_drop()
            self._kb._call(lib.surgewall_keyed_bulkhead_release, self._permit[0])
        except Exception:  # a closed keyed bulkhead: no slot to give back
            pass



class KeyedBulkhead(Owned):
    """Per-key concurrency limits (per user, per tenant): ``per_key_max`` calls in flight per
    key, optional ``global_max`` across keys, per-key limits in ``limits`` (``{"big-tenant": 50}``),
    a cap ``max_keys`` with ``overflow="reject"`` (RegistryFullError) or ``"shared"`` (new
    keys share one entry), and idle eviction after ``idle_ttl`` seconds on ``sweep()``.
    Keys are ``int`` (0..2**64-2) or ``str`` (hashed by the library). Given a ``name``, it is
    listed for the agent (:class:`surgewall.Agent`)."""

    _what = "keyed bulkhead"

    def __init__(
        self,
        per_key_max: int,
        *,
        global_max: Optional[int] = None,
        limits: Optional[Mapping[Union[str, int], int]] = None,
        max_keys: Optional[int] = None,
        overflow: str = "reject",
        idle_ttl: Optional[float] = None,
        clock: Optional[MockClock] = None,
        name: Optional[str] = None,
    ) -> None:
        n = count("per_key_max", per_key_max, minimum=1)
        raw_name = None if name is None else name_bytes(name)
        if overflow not in ("reject", "shared"):
            raise ConfigError("overflow", f"expected 'reject' or 'shared', got {overflow!r}")
        with new_config(
            lambda out: lib.surgewall_keyed_bulkhead_config_new(n, out),
            lib.surgewall_keyed_bulkhead_config_free,
            "surgewall_keyed_bulkhead_config",
            "KeyedBulkhead",
        ) as cfg:
            if raw_name is not None:  # named: the agent lists it
                set_config(
                    "name", lib.surgewall_keyed_bulkhead_config_set_name(cfg, raw_name, len(raw_name))
                )
            if global_max is not None:
                g = count("global_max", global_max, minimum=1)
                set_config("global_max", lib.surgewall_keyed_bulkhead_config_set_global_max(cfg, g))
            for k, v in (limits or {}).items():
                n_k = count(f"limits[{k!r}]", v, minimum=1)
                if isinstance(k, str):
                    raw = utf8(f"limits[{k!r}]", k)
                    st = lib.surgewall_keyed_bulkhead_config_set_limit_for_str(cfg, raw, len(raw), n_k)
                elif isinstance(k, int) and not isinstance(k, bool):
                    key = count("limits", k, maximum=(1 << 64) - 2)
                    st = lib.surgewall_keyed_bulkhead_config_set_limit_for(cfg, key, n_k)
                else:
                    raise ConfigError("limits", f"keys are str or int, got {k!r}")
                set_config(f"limits[{k!r}]", st)
            if max_keys is not None:
                m = count("max_keys", max_keys, minimum=1, maximum=(1 << 63) - 1)
                set_config(
                    "max_keys",
                    lib.surgewall_keyed_bulkhead_config_set_max_keys(
                        cfg, m, overflow == "shared"
                    ),
                )
            if idle_ttl is not None:
                t = seconds_to_ns("idle_ttl", idle_ttl, allow_zero=False)
                set_config("idle_ttl", lib.surgewall_keyed_bulkhead_config_set_idle_ttl(cfg, t))
            if clock is not None:
                with held(_check_clock(clock)) as c:
                    set_config("clock", lib.surgewall_keyed_bulkhead_config_set_mock_clock(cfg, c))
        ptr = construct(
            lambda out, err: lib.surgewall_keyed_bulkhead_new(cfg, out, err), "surgewall_keyed_bulkhead", "KeyedBulkhead"
        )
        super().__init__(ptr, lib.surgewall_keyed_bulkhead_free)

    @staticmethod
    def _int_key(key: int) -> int:
        return count("key", key, maximum=(1 << 64) - 2)

    def try_acquire(self, key: Union[str, int]) -> Optional[KeyedPermit]:
        """A slot for ``key``, or None when the key (or the global limit) is full.
        Raises :class:`RegistryFullError` when the key is new and the key cap refuses it."""
        try:
            return self.acquire(key)
        except KeyedBulkheadFullError:
            return None

    def acquire(self, key: Union[str, int]) -> KeyedPermit:
        """A slot for ``key`` (no waiting) or :class:`KeyedBulkheadFullError`."""
        permit = ffi.new("surgewall_keyed_permit *")
        rejection = ffi.new("surgewall_keyed_rejection *")
        if isinstance(key, str):
            raw = key.encode("utf-8")
            st = self._call(lib.surgewall_keyed_bulkhead_try_acquire_str, raw, len(raw), permit, rejection
            )
        elif isinstance(key, int) and not isinstance(key, bool):
            st = self._call(lib.surgewall_keyed_bulkhead_try_acquire, self._int_key(key), permit, rejection
            )
        else:
            raise TypeError(f"keys are str or int, got {type(key).__name__}")
        if st == _OK:
            return KeyedPermit(self, permit, key)
        if st == _REGISTRY_FULL:
            raise RegistryFullError(f"key {key!r}: too many keys", st, key=key)
        if st == _FULL:
            raise KeyedBulkheadFullError(key, KeyedRejection(rejection[0]), st)
        raise_status(st, f"key {key!r}")

    def key_of(self, key: Union[str, int]) -> int:
        """The 64-bit key ``key`` maps to (for ``active()`` and eviction events)."""
        if isinstance(key, str):
            raw = key.encode("utf-8")
            out = ffi.new("uint64_t *")
            check(self._call(lib.surgewall_keyed_bulkhead_key_of, raw, len(raw), out), "key_of")
            return int(out[0])
        if isinstance(key, bool) or not isinstance(key, int):
            raise TypeError(f"keys are str or int, got {type(key).__name__}")
        return self._int_key(key)

    def active(self, key: Union[str, int]) -> int:
        """Calls in flight for ``key``."""
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_keyed_bulkhead_active, self.key_of(key), out), "active")
        return int(out[0])

    def sweep(self) -> int:
        """Evicts keys idle for longer than ``idle_ttl``; returns how many."""
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_keyed_bulkhead_sweep, out), "sweep")
        return int(out[0])

    def snapshot(self) -> Dict[int, Tuple[int, int]]:
        """``{key: (active, limit)}`` for every key held."""
        result: Dict[int, Tuple[int, int]] = {}

        def visit(user: Any, key: int, active: int, limit: int) -> None:
            result[int(key)] = (int(active), int(limit))

        cb = ffi.callback("void(void *, uint64_t, uint64_t, uint32_t)", visit)
        check(self._call(lib.surgewall_keyed_bulkhead_for_each, cb, ffi.NULL), "snapshot")
        return result

    @property
    def id(self) -> int:
        """The process-unique id: the ``source`` of this keyed bulkhead's eviction events."""
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_keyed_bulkhead_id, out), "id")
        return int(out[0])

    def metrics(self) -> KeyedBulkheadMetrics:
        m = ffi.new("surgewall_keyed_bulkhead_stats *")
        check(self._call(lib.surgewall_keyed_bulkhead_metrics, m), "metrics")
        return KeyedBulkheadMetrics(
            global_active=int(m.global_active),
            global_max=int(m.global_max) or None,
            per_key_max=int(m.per_key_max),
            rejected_key=int(m.rejected_key),
            rejected_global=int(m.rejected_global),
            unexpected_releases=int(m.unexpected_releases),
            keys=int(m.keys),
            max_keys=int(m.max_keys) or None,
            created=int(m.created),
            evicted=int(m.evicted),
            overflowed=int(m.overflowed),
            refused_keys=int(m.refused_keys),
        )

    @property
    def dropped_permits(self) -> int:
        """Permits garbage-collected without a release (each gave its slot back)."""
        return self._lease.drops

    def call(self, key: Union[str, int], fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.acquire(key):
            return fn(*args, **kwargs)




__all__ = [
    "Bulkhead",
    "BulkheadMetrics",
    "BulkheadPermit",
    "KeyedBulkhead",
    "KeyedBulkheadFullError",
    "KeyedBulkheadMetrics",
    "KeyedPermit",
    "KeyedRejection",
]
