"""What every decorator of the package shares: find what kind of callable it wraps, and guard
all of it (a generator's whole iteration, a coroutine's whole await) or refuse it at
decoration time with a TypeError that says what to do."""

from __future__ import annotations

import functools
import inspect
from types import TracebackType
from typing import (
    Any,
    AsyncContextManager,
    AsyncIterator,
    Awaitable,
    Callable,
    ContextManager,
    Dict,
    Generator,
    List,
    Optional,
    Tuple,
    Type,
    TypeVar,
    cast,
)

F = TypeVar("F", bound=Callable[..., Any])

Args = Tuple[Any, ...]
Kwargs = Dict[str, Any]


def kind_of(fn: object) -> str:
    """``"sync"``, ``"async"`` (a coroutine function, or an object whose ``__call__`` is
    ``async def``), ``"gen"``, ``"asyncgen"`` (likewise), or ``"descriptor"`` for a
    ``staticmethod`` / ``classmethod`` object. TypeError when ``fn`` is not callable."""
    if isinstance(fn, (staticmethod, classmethod)):
        return "descriptor"
    if not callable(fn):
        raise TypeError(f"expected a callable to decorate, got {fn!r}")
    # inspect unwraps functools.partial and methods; an instance is judged by its __call__.
    probes: List[object] = [fn]
    if not (inspect.isroutine(fn) or inspect.isclass(fn) or isinstance(fn, functools.partial)):
        probes.append(getattr(type(fn), "__call__", None))
    for f in probes:
        if inspect.isasyncgenfunction(f):
            return "asyncgen"
        if inspect.isgeneratorfunction(f):
            return "gen"
        if inspect.iscoroutinefunction(f):
            return "async"
    return "sync"


class _AsyncOf:
    """A sync context manager (a permit: taking it never blocks) as an async one."""

    __slots__ = ("_cm",)

    def __init__(self, cm: ContextManager[Any]) -> None:
        self._cm = cm

    async def __aenter__(self) -> Any:
        return self._cm.__enter__()

    async def __aexit__(
        self,
        t: Optional[Type[BaseException]],
        v: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Optional[bool]:
        return self._cm.__exit__(t, v, tb)


def async_of(cm: ContextManager[Any]) -> AsyncContextManager[Any]:
    return _AsyncOf(cm)


def through(
    call: Callable[..., Any], call_async: Callable[..., Awaitable[Any]]
) -> Tuple[
    Callable[[Callable[..., Any]], Callable[..., Any]],
    Callable[[Callable[..., Any]], Callable[..., Any]],
]:
    """The ``sync`` and ``async_`` wrappers of :func:`decorate` for a policy whose
    ``call(f, *args, **kwargs)`` / ``call_async(...)`` run ``f`` under it."""

    def sync(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return call(f, *args, **kwargs)

        return wrapper

    def async_(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await call_async(f, *args, **kwargs)

        return async_wrapper

    return sync, async_


def decorate(
    fn: F,
    what: str,
    *,
    sync: Callable[[Callable[..., Any]], Callable[..., Any]],
    async_: Callable[[Callable[..., Any]], Callable[..., Any]],
    hold: Optional[Callable[[Args, Kwargs], ContextManager[Any]]] = None,
    hold_async: Optional[Callable[[Args, Kwargs], AsyncContextManager[Any]]] = None,
    refuse_iteration: str = "",
) -> F:
    """Decorates ``fn`` with the policy ``what`` (for messages):

    - a plain callable: ``sync(fn)``; a coroutine function (or an object whose ``__call__``
      is ``async def``): ``async_(fn)``, which guards the whole await;
    - a generator function: each iteration runs inside ``hold(args, kwargs)`` from its first
      ``next()`` to its end (an exception raised while iterating is the call's outcome;
      closing it early, ``GeneratorExit``, is ignored); an async generator function inside
      ``hold_async(args, kwargs)``. Without them, a TypeError saying ``refuse_iteration``;
    - a ``staticmethod`` / ``classmethod`` object: the function inside it is decorated, and
      wrapped again the same way (so it binds as it did).
    """
    kind = kind_of(fn)
    if kind == "descriptor":
        inner = cast(Any, fn).__func__
        return cast(
            F,
            cast(Any, type(fn))(
                decorate(
                    inner,
                    what,
                    sync=sync,
                    async_=async_,
                    hold=hold,
                    hold_async=hold_async,
                    refuse_iteration=refuse_iteration,
                )
            ),
        )
    if kind == "async":
        return cast(F, async_(fn))
    if kind == "sync":
        return cast(F, sync(fn))
    if (kind == "gen" and hold is None) or (kind == "asyncgen" and hold_async is None):
        raise TypeError(
            f"{what} cannot decorate the {'async ' if kind == 'asyncgen' else ''}generator "
            f"function {fn!r}: {refuse_iteration or 'decorate the function that iterates it'}"
        )
    if kind == "gen":
        assert hold is not None
        h = hold

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            with h(args, kwargs):
                return (yield from fn(*args, **kwargs))

        return cast(F, gen_wrapper)

    assert hold_async is not None
    ha = hold_async

    @functools.wraps(fn)
    async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with ha(args, kwargs):
            agen = fn(*args, **kwargs)
            try:
                item = await agen.__anext__()
            except StopAsyncIteration:
                return
            while True:
                try:
                    sent = yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as e:  # thrown in by athrow(): the inner one decides
                    try:
                        item = await agen.athrow(e)
                    except StopAsyncIteration:
                        return
                else:
                    try:
                        item = await agen.asend(sent)
                    except StopAsyncIteration:
                        return

    return cast(F, agen_wrapper)
