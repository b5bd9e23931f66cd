"""guard(): fallback, retry, breaker and bulkhead composed in one documented order, and
BreakerRegistry: breakers by key from one template."""

from __future__ import annotations

import threading
from typing import Any, Awaitable, Callable, Dict, Generic, Optional, Tuple, TypeVar, cast

from ._decorate import decorate, through
from .breaker import Breaker, Outcome
from .bulkhead import Bulkhead
from .errors import ConfigError, RegistryFullError
from .retry import Retry

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Guard:
    """A composed policy. For each call, from the outside in::

        fallback( retry( breaker( bulkhead( fn ) ) ) )

    - the **fallback** (``fallback(exc)``) replaces any ``Exception`` that escapes the rest
      (an open breaker, a full bulkhead, retries exhausted, a non-retryable error);
    - **retry** runs attempts on the C ABI's schedule, breaker-aware: it waits for (or stops
      at) an open breaker instead of retrying into it;
    - the **breaker** admits the attempt first, so an open breaker takes no bulkhead slot;
    - the **bulkhead** then takes a slot; a full bulkhead releases the breaker permit as
      ignored (it says nothing about the dependency) and raises :class:`BulkheadFullError`.
    """

    def __init__(
        self,
        breaker: Optional[Breaker] = None,
        bulkhead: Optional[Bulkhead] = None,
        retry: Optional[Retry] = None,
        fallback: Optional[Callable[[Exception], Any]] = None,
    ) -> None:
        if breaker is not None and not isinstance(breaker, Breaker):
            raise ConfigError("breaker", "expected a Breaker")
        if bulkhead is not None and not isinstance(bulkhead, Bulkhead):
            raise ConfigError("bulkhead", "expected a Bulkhead")
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigError("retry", "expected a Retry")
        if fallback is not None and not callable(fallback):
            raise ConfigError("fallback", "must be callable")
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.retry = retry
        self.fallback = fallback

    # ---- sync ----

    def _attempt(self, fn: Callable[..., T], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> T:
        b, bh = self.breaker, self.bulkhead
        if b is None:
            return bh.call(fn, *args, **kwargs) if bh is not None else fn(*args, **kwargs)
        permit = b.acquire()
        if bh is not None:
            try:
                bh.acquire()
            except BaseException:
                permit.ignore()
                raise
        try:
            with permit:
                return fn(*args, **kwargs)
        finally:
            if bh is not None:
                bh.release()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            if self.retry is not None:
                return cast(T, self.retry._run(self._attempt, (fn, args, kwargs), {}, self.breaker))
            return self._attempt(fn, args, kwargs)
        except Exception as e:
            if self.fallback is None:
                raise
            return self.fallback(e)  # type: ignore[no-any-return]

    # ---- async ----

    async def _attempt_async(
        self, fn: Callable[..., Awaitable[T]], args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> T:
        b, bh = self.breaker, self.bulkhead
        permit = b.acquire() if b is not None else None
        if bh is not None:
            try:
                await bh.acquire_async()
            except BaseException:
                if permit is not None:
                    permit.ignore()
                raise
        try:
            if permit is None:
                return await fn(*args, **kwargs)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as e:
                assert b is not None
                permit.record(Outcome(b._core.outcome_of(e)))
                raise
            permit.success()
            return result
        finally:
            if bh is not None:
                bh.release()

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        try:
            if self.retry is not None:
                return cast(
                    T,
                    await self.retry._run_async(
                        self._attempt_async, (fn, args, kwargs), {}, self.breaker
                    ),
                )
            return await self._attempt_async(fn, args, kwargs)
        except Exception as e:
            if self.fallback is None:
                raise
            return self.fallback(e)  # type: ignore[no-any-return]

    def __call__(self, fn: F) -> F:
        """Decorates a function (a coroutine function, or an object whose ``__call__`` is
        ``async def``, for its whole await; a ``staticmethod`` / ``classmethod`` through the
        function inside it). Generator functions are refused: retrying or replacing an
        iteration half consumed has no meaning."""

        sync, async_ = through(self.call, self.call_async)

        return decorate(
            fn,
            "guard()",
            sync=sync,
            async_=async_,
            refuse_iteration="a retry or a fallback cannot take back items already given; "
            "decorate the function that consumes the generator (or use the breaker and the "
            "bulkhead as decorators, which guard a whole iteration)",
        )


def guard(
    *,
    breaker: Optional[Breaker] = None,
    bulkhead: Optional[Bulkhead] = None,
    retry: Optional[Retry] = None,
    fallback: Optional[Callable[[Exception], Any]] = None,
) -> Guard:
    """Composes the policies given (see :class:`Guard` for the order); use the result as a
    decorator (sync or async) or through ``.call(fn, ...)`` / ``.call_async(fn, ...)``."""
    return Guard(breaker=breaker, bulkhead=bulkhead, retry=retry, fallback=fallback)


K = TypeVar("K")


class BreakerRegistry(Generic[K]):
    """Breakers by key (an endpoint, a host), each made on first use by ``template(key)``
    (a callable returning a Breaker, e.g. ``lambda k: Breaker(str(k), **opts)``); exactly
    one breaker per key under races; at most ``max_keys`` keys (then
    :class:`RegistryFullError`). ``free()`` frees them all.

    Each key costs a full library breaker (about a kilobyte: exact windows, a name, its own
    metrics): for a handful of keys. For many keys (users, hosts) use
    :class:`~surgewall.KeyedBreaker`, which keeps compact breakers in the library and evicts
    idle ones."""

    def __init__(
        self, template: Callable[[K], Breaker], *, max_keys: Optional[int] = None
    ) -> None:
        if not callable(template):
            raise ConfigError("template", "must be callable (key -> Breaker)")
        if max_keys is not None and (isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1):
            raise ConfigError("max_keys", f"must be an int >= 1, got {max_keys!r}")
        self._template = template
        self._max_keys = max_keys
        self._breakers: Dict[K, Breaker] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> Breaker:
        b = self._breakers.get(key)
        if b is not None:
            return b
        with self._lock:
            b = self._breakers.get(key)
            if b is not None:
                return b
            if self._max_keys is not None and len(self._breakers) >= self._max_keys:
                raise RegistryFullError(f"registry holds {self._max_keys} keys; {key!r} refused", 209)
            b = self._template(key)
            if not isinstance(b, Breaker):
                raise ConfigError("template", f"returned {b!r}, not a Breaker")
            self._breakers[key] = b
            return b

    __getitem__ = get

    def __contains__(self, key: object) -> bool:
        return key in self._breakers

    def __len__(self) -> int:
        return len(self._breakers)

    def keys(self) -> "list[K]":
        return list(self._breakers)

    def remove(self, key: K) -> bool:
        """Frees and forgets the breaker of ``key``; True when there was one."""
        with self._lock:
            b = self._breakers.pop(key, None)
        if b is None:
            return False
        b.free()
        return True

    def free(self) -> None:
        """Frees every breaker it holds and forgets them."""
        with self._lock:
            breakers, self._breakers = list(self._breakers.values()), {}
        for b in breakers:
            b.free()



__all__ = ["Guard", "guard", "BreakerRegistry"]
