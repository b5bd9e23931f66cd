"""Events: transitions, threshold changes, SLO burn, evictions, from the process-wide ring."""

from __future__ import annotations

import dataclasses
import enum
import os
import threading
import weakref
from types import TracebackType
from typing import Callable, Iterator, Optional, Type

from ._native import check, ffi, lib
from ._util import Owned, number
from .breaker import State

_NO_EVENT = 208


class EventKind(enum.IntEnum):
    TRANSITION = 1
    THRESHOLD_CHANGED = 2
    SLO_BURN = 3
    SLO_RECOVERED = 4
    EVICTED = 5
    RETRY_BUDGET_EXHAUSTED = 6
    KEYED_TRANSITION = 7
    """A transition of one key of a KeyedBreaker: ``key`` says which."""


class TransitionReason(enum.IntEnum):
    FAILURE_RATE = 0
    SLOW_CALL_RATE = 1
    CONSECUTIVE_FAILURES = 2
    WAIT_OVER = 3
    PROBES_SUCCEEDED = 4
    PROBES_FAILED = 5
    HALF_OPEN_TIMEOUT = 6
    MANUAL = 7


@dataclasses.dataclass(frozen=True)
class Event:
    """One event. ``source`` is the publisher's id (``Breaker.id``, ``KeyedBreaker.id``, ...);
    ``at_ns`` is in the publisher's clock; ``key`` is the 64-bit key of keyed transitions and
    evictions (``KeyedBreaker.key_of``). Fields a kind does not use are None / 0."""

    source: int
    at_ns: int
    kind: EventKind
    from_state: Optional[State] = None
    to_state: Optional[State] = None
    reason: Optional[TransitionReason] = None
    generation: int = 0
    fast: bool = False
    value_a: float = 0.0
    value_b: float = 0.0
    key: int = 0


def _event(e: "object") -> Event:
    ev = e  # a cffi surgewall_event *
    kind = EventKind(ev.kind)  # type: ignore[attr-defined]
    transition = kind in (EventKind.TRANSITION, EventKind.KEYED_TRANSITION)
    return Event(
        source=int(ev.source),  # type: ignore[attr-defined]
        at_ns=int(ev.at_ns),  # type: ignore[attr-defined]
        kind=kind,
        from_state=State(ev.from_state) if transition else None,  # type: ignore[attr-defined]
        to_state=State(ev.to_state) if transition else None,  # type: ignore[attr-defined]
        reason=TransitionReason(ev.reason) if transition else None,  # type: ignore[attr-defined]
        generation=int(ev.generation),  # type: ignore[attr-defined]
        fast=bool(ev.fast),  # type: ignore[attr-defined]
        value_a=float(ev.value_a),  # type: ignore[attr-defined]
        value_b=float(ev.value_b),  # type: ignore[attr-defined]
        key=int(ev.key),  # type: ignore[attr-defined]
    )


class Subscription(Owned):
    """A reader of the event ring from the moment it was created. Iterating yields the events
    waiting now and stops when there are none (iterate again later for more); ``poll()``
    returns one or None. Poll one subscription from one thread at a time."""

    _what = "subscription"

    def __init__(self) -> None:
        out = ffi.new("surgewall_subscription **")
        check(lib.surgewall_events_subscribe(out), "events")
        super().__init__(out[0], lib.surgewall_subscription_free)
        self._buf = ffi.new("surgewall_event *")

    def poll(self) -> Optional[Event]:
        st = self._call(lib.surgewall_subscription_poll, self._buf)
        if st == _NO_EVENT:
            return None
        check(st, "poll")
        return _event(self._buf)

    def __iter__(self) -> Iterator[Event]:
        while True:
            ev = self.poll()
            if ev is None:
                return
            yield ev

    @property
    def missed(self) -> int:
        """Events this subscription will never deliver: those it skipped because it fell more
        than the ring's 4096 events behind, and those dropped while being published. Every event
        published since the subscription was made is either delivered or counted here: once the
        publishers are done and ``poll()`` returned None, delivered + missed == published."""
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_subscription_missed, out), "missed")
        return int(out[0])


def events() -> Subscription:
    """Subscribes to every event published from now on (see :class:`Subscription`)."""
    return Subscription()


_listeners: "weakref.WeakSet[Listener]" = weakref.WeakSet()


class Listener:
    """Calls ``callback(event)`` from a daemon thread that polls every ``interval`` seconds.
    ``stop()`` joins the thread; after ``os.fork()`` the child gets a fresh thread (and a fresh
    subscription) of its own."""

    def __init__(self, callback: Callable[[Event], object], interval: float = 0.01) -> None:
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._callback = callback
        self._interval = number("interval", interval, 0.0)
        self._stop = threading.Event()
        self._sub = Subscription()
        self._thread: Optional[threading.Thread] = None
        self._start()
        _listeners.add(self)

    def _start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="surgewall-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for ev in self._sub:
                try:
                    self._callback(ev)
                except Exception:  # a callback's bug must not kill the listener
                    import traceback

                    traceback.print_exc()
            self._stop.wait(self._interval)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        self._sub.free()

    def __enter__(self) -> "Listener":
        return self

    def __exit__(
        self,
        t: Optional[Type[BaseException]],
        v: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def _after_fork(self) -> None:
        if self._thread is None:
            return
        # The thread did not survive the fork; the subscription's cursor did (it is memory).
        self._start()


def on_event(callback: Callable[[Event], object], interval: float = 0.01) -> Listener:
    """Runs ``callback`` for every event from now on, on a background thread."""
    return Listener(callback, interval)


def _restart_listeners() -> None:
    for listener in list(_listeners):
        listener._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_listeners)
