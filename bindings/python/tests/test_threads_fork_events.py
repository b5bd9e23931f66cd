"""Threads on one breaker, os.fork(), events (iterator and callback), lifetime."""

from __future__ import annotations

import gc
import os
import sys
import threading
import weakref
from typing import List

import pytest

import surgewall
from surgewall import Breaker, CountWindow, MockClock, State


class Boom(Exception):
    pass


def test_many_threads_on_one_breaker_lose_no_counts(clock: MockClock) -> None:
    b = Breaker("threads", minimum_calls=1, window=CountWindow(1000), clock=clock)
    b.metrics_only()  # records everything, never trips
    threads, per = 8, 2000
    start = threading.Barrier(threads)

    @b
    def work(i: int) -> int:
        if i % 4 == 0:
            raise Boom()
        return i

    def run() -> None:
        start.wait()
        for i in range(per):
            try:
                work(i)
            except Boom:
                pass
            with b:
                pass

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    m = b.metrics()
    assert m.failures == threads * per // 4
    assert m.successes == threads * per * 3 // 4 + threads * per
    b.free()


def test_half_open_admits_exactly_n_under_threads(clock: MockClock) -> None:
    b = Breaker("probes", half_open_calls=3, clock=clock)
    b.force_open(seconds=1)
    clock.advance(1)
    admitted: List[surgewall.Permit] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def run() -> None:
        start.wait()
        for _ in range(50):
            p = b.try_acquire()
            if p is not None:
                with lock:
                    admitted.append(p)

    ts = [threading.Thread(target=run) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(admitted) == 3
    assert b.state is State.HALF_OPEN
    for p in admitted:
        p.success()
    assert b.metrics().state is State.CLOSED
    b.free()


def test_one_transition_one_event_when_threads_cross_the_threshold(clock: MockClock) -> None:
    b = Breaker("cross", failure_rate=None, consecutive_failures=5, clock=clock)
    sub = surgewall.events()
    start = threading.Barrier(6)

    def run() -> None:
        start.wait()
        for _ in range(20):
            p = b.try_acquire()
            if p is not None:
                p.failure()

    ts = [threading.Thread(target=run) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    mine = [e for e in sub if e.source == b.id]
    assert [(e.from_state, e.to_state) for e in mine] == [(State.CLOSED, State.OPEN)]
    assert mine[0].reason is surgewall.TransitionReason.CONSECUTIVE_FAILURES
    sub.free()
    b.free()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_safe_after_fork(clock: MockClock) -> None:
    b = Breaker("fork", failure_rate=None, consecutive_failures=2, clock=clock)
    listener_seen: List[surgewall.Event] = []
    listener = surgewall.on_event(listener_seen.append, interval=0.001)
    b.call(lambda: None)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            # The child's copy works: acquire, record, trip, events, a new breaker.
            for _ in range(2):
                try:
                    b.call(lambda: (_ for _ in ()).throw(Boom()))
                except Boom:
                    pass
            fresh = Breaker("child")
            ok = (
                b.state is State.OPEN
                and b.metrics().successes == 1
                and fresh.call(lambda: 7) == 7
                and listener.running
            )
            fresh.free()
            code = 0 if ok else 2
        finally:
            os.write(w, b"x")
            os._exit(code)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    # The parent is untouched by the child's failures.
    assert b.state is State.CLOSED
    assert b.metrics().failures == 0
    listener.stop()
    assert not listener.running
    b.free()


def test_event_iterator_and_callback(clock: MockClock) -> None:
    b = Breaker("ev", clock=clock)
    got: List[surgewall.Event] = []
    done = threading.Event()

    def cb(e: surgewall.Event) -> None:
        if e.source == b.id:
            got.append(e)
            if len(got) == 2:
                done.set()

    with surgewall.events() as sub, surgewall.on_event(cb, interval=0.001):
        assert sub.poll() is None or True  # other tests' events may be queued
        list(sub)
        b.force_open()
        b.reset()
        evs = [e for e in sub if e.source == b.id]
        assert [(e.from_state, e.to_state) for e in evs] == [
            (State.CLOSED, State.FORCED_OPEN),
            (State.FORCED_OPEN, State.CLOSED),
        ]
        assert all(e.kind is surgewall.EventKind.TRANSITION for e in evs)
        assert evs[0].reason is surgewall.TransitionReason.MANUAL
        assert evs[1].generation > evs[0].generation
        assert sub.missed == 0
        assert done.wait(10)
    assert [e.to_state for e in got] == [State.FORCED_OPEN, State.CLOSED]
    b.free()


def test_a_subscriber_that_falls_behind_counts_every_event_it_missed(clock: MockClock) -> None:
    b = Breaker("overrun", clock=clock)
    with surgewall.events() as sub:
        for _ in range(2500):  # 5000 transitions on a ring of 4096
            b.force_open()
            b.reset()
        evs = list(sub)
        assert all(e.source == b.id for e in evs)
        assert [e.generation for e in evs] == sorted({e.generation for e in evs})
        missed: int = sub.missed
        assert (len(evs), missed) == (4096, 5000 - 4096)
        # caught up: the next event comes out of the next poll, and nothing more is missed
        b.force_open()
        e = sub.poll()
        assert e is not None and e.to_state is State.FORCED_OPEN
        assert sub.poll() is None
        assert sub.missed == 5000 - 4096
    b.free()


def test_finaliser_frees_unreachable_objects() -> None:
    b = Breaker("gc")
    lib = sys.modules["surgewall._ffi"].lib
    ffi = sys.modules["surgewall._ffi"].ffi
    h = b._h  # the handle's value (generational: using it once freed is reported, not UB)
    out = ffi.new("surgewall_state *")
    assert lib.surgewall_breaker_state(h, out) == 0
    ref = weakref.ref(b)
    del b
    gc.collect()
    assert ref() is None
    assert lib.surgewall_breaker_state(h, out) == 101  # freed with its owner


def test_version_matches_the_header() -> None:
    lib = sys.modules["surgewall._ffi"].lib
    assert lib.surgewall_version_number() == lib.SURGEWALL_VERSION_NUMBER
    assert surgewall.library_version == "%d.%d.%d" % (
        lib.SURGEWALL_VERSION_MAJOR,
        lib.SURGEWALL_VERSION_MINOR,
        lib.SURGEWALL_VERSION_PATCH,
    )
