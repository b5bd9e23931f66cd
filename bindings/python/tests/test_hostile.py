"""The package driven as a careless or hostile user would (issue 18): free() racing calls,
copied and dropped permits, interleaved `with` blocks. What could crash or hang runs in a
child process with a time limit."""

from __future__ import annotations

import copy
import gc
import pickle
import subprocess
import sys
import textwrap
from typing import Any, Generator, Iterator, List

import pytest

import surgewall
from surgewall import Breaker, ClosedError, MockClock, Recorded, State


def run_child(code: str, timeout: float = 120.0) -> str:
    """Runs ``code`` in a fresh interpreter; a crash (signal) or hang fails the test."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"child exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# ---- 1. free() never frees a handle a call is inside ----


def test_closing_a_bulkhead_wakes_its_waiters_with_closed_error_and_never_crashes() -> None:
    # 4 threads wait (up to 60 s) for a slot held by the main thread, then the bulkhead is
    # closed under them, 40 rounds: every waiter must be woken at once with ClosedError (a
    # waiter left to its timeout would take the child past its time limit), and the handle
    # is freed only after the last one came out (before: "unaligned tcache chunk" aborts).
    out = run_child(
        """
        import threading, surgewall
        results = []
        for round in range(40):
            b = surgewall.Bulkhead("db", max_concurrent=1, max_wait=60.0)
            b.acquire()
            started = threading.Barrier(5)
            def wait():
                started.wait()
                try:
                    b.acquire()
                    results.append("acquired")
                except surgewall.ClosedError as e:
                    assert isinstance(e, surgewall.SurgewallError)
                    results.append("closed")
            ts = [threading.Thread(target=wait) for _ in range(4)]
            for t in ts:
                t.start()
            started.wait()
            while b.metrics().waiting < 4:
                pass
            b.free()
            for t in ts:
                t.join(30)
                assert not t.is_alive(), "a waiter was not woken by free()"
            try:
                b.try_acquire()
                raise SystemExit("a closed bulkhead admitted a call")
            except surgewall.ClosedError:
                pass
        print(results.count("closed"), results.count("acquired"))
        """,
        timeout=60,
    )
    assert out.split() == ["160", "0"]


def test_freeing_objects_while_other_threads_call_them_never_crashes() -> None:
    # Threads hammer calls that release the GIL (metrics, state, polls, manual transitions)
    # while the main thread frees the objects: each call either completes or raises
    # ClosedError, never touches freed memory.
    run_child(
        """
        import threading, surgewall
        for round in range(30):
            clock = surgewall.MockClock()
            b = surgewall.Breaker("b", clock=clock)
            kb = surgewall.KeyedBreaker("kb", max_keys=100)
            bh = surgewall.Bulkhead("bh", max_concurrent=1, max_wait=0.0)
            kbh = surgewall.KeyedBulkhead(2)
            sub = surgewall.events()
            budget = surgewall.RetryBudget()
            stop = threading.Event()
            def hammer(fn):
                while not stop.is_set():
                    try:
                        fn()
                    except surgewall.ClosedError:
                        return
            calls = [
                b.metrics, lambda: b.state, b.reset, lambda: clock.advance(0.001),
                kb.metrics, kb.snapshot, lambda: kb.call("k", int),
                bh.metrics, lambda: bh.try_acquire() and bh.release(),
                kbh.metrics, lambda: kbh.acquire("k").release(),
                sub.poll, budget.metrics, budget.try_retry,
            ]
            ts = [threading.Thread(target=hammer, args=(f,)) for f in calls]
            for t in ts:
                t.start()
            for o in (b.free, kb.free, bh.free, kbh.free, sub.free, budget.free, clock.free):
                o()
            stop.set()
            for t in ts:
                t.join(30)
                assert not t.is_alive()
        """,
        timeout=120,
    )


def test_a_closed_object_refuses_calls_with_closed_error(clock: MockClock) -> None:
    b = surgewall.Bulkhead("db", max_concurrent=1, clock=clock)
    b.free()
    b.free()  # idempotent
    with pytest.raises(ClosedError):
        b.acquire()
    with pytest.raises(ClosedError):
        b.metrics()


# ---- 2. a permit counts once: no copies ----


def _permits(breaker: Breaker) -> Iterator[Any]:
    kb = surgewall.KeyedBreaker("k", max_keys=10)
    kbh = surgewall.KeyedBulkhead(2)
    yield breaker.acquire()
    yield kb.acquire("a")
    yield kbh.acquire("a")
    kb.free()
    kbh.free()


@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy, pickle.dumps])
def test_permits_cannot_be_copied_or_pickled(breaker: Breaker, how: Any) -> None:
    for p in _permits(breaker):
        with pytest.raises(TypeError, match="cannot be (copied|pickled)"):
            how(p)
    m = breaker.metrics()
    assert (m.successes, m.failures) == (0, 0)


def test_a_copied_permit_never_counts_twice(breaker: Breaker) -> None:
    p = breaker.acquire()
    with pytest.raises(TypeError):
        q = copy.copy(p)
        q.success()
    p.success()
    assert breaker.metrics().successes == 1


# ---- 3. a dropped permit comes back ----


def test_a_dropped_half_open_probe_gives_its_slot_back(clock: MockClock) -> None:
    b = Breaker(
        "probe", consecutive_failures=1, failure_rate=None, open_for=5, half_open_calls=1,
        clock=clock,
    )
    b.acquire().failure()
    clock.advance(5)
    p = b.acquire()  # the single probe
    assert b.state is State.HALF_OPEN
    with pytest.raises(surgewall.CircuitOpenError):
        b.acquire()
    del p
    gc.collect()
    assert b.dropped_permits == 1
    b.acquire().success()  # admitted: the dropped probe was released as ignored
    assert b.metrics().state is State.CLOSED
    assert b.metrics().ignored == 1
    b.free()


def test_a_dropped_keyed_breaker_probe_gives_its_slot_back(clock: MockClock) -> None:
    kb = surgewall.KeyedBreaker(
        "k", consecutive_failures=1, failure_rate=None, open_for=5, half_open_calls=1,
        clock=clock, max_keys=10,
    )
    kb.acquire("a").failure()
    clock.advance(5)
    p = kb.acquire("a")
    with pytest.raises(surgewall.CircuitOpenError):
        kb.acquire("a")
    del p
    gc.collect()
    assert kb.dropped_permits == 1
    kb.acquire("a").success()
    assert kb.state("a") is State.CLOSED
    kb.free()


def test_a_dropped_keyed_bulkhead_slot_is_returned() -> None:
    kbh = surgewall.KeyedBulkhead(1)
    p = kbh.acquire("alice")
    with pytest.raises(surgewall.KeyedBulkheadFullError):
        kbh.acquire("alice")
    del p
    gc.collect()
    assert kbh.active("alice") == 0
    assert kbh.dropped_permits == 1
    kbh.acquire("alice").release()
    assert kbh.dropped_permits == 1  # released permits are not counted
    kbh.free()


# ---- 4. each `with` reports its own permit ----


def test_interleaved_with_blocks_on_one_thread_report_their_own_permits(
    breaker: Breaker,
) -> None:
    got: List[Any] = []

    def gen(fail: bool) -> Iterator[None]:
        with breaker as p:
            got.append(p)
            yield
            if fail:
                raise ValueError("boom")

    a, c = gen(True), gen(False)
    next(a)
    next(c)
    pa, pc = got
    assert pa is not pc
    with pytest.raises(ValueError):
        next(a)  # a's block ends with a failure: a's permit reports it
    assert pa.done and not pc.done
    with pytest.raises(StopIteration):
        next(c)
    assert pc.done
    m = breaker.metrics()
    assert (m.successes, m.failures) == (1, 1)


def test_nested_with_blocks_in_one_frame(breaker: Breaker) -> None:
    with breaker as outer:
        with breaker as inner:
            assert inner is not outer
        assert inner.done and not outer.done
    assert outer.done
    assert breaker.metrics().successes == 2


def test_with_permit_reported_by_hand_is_not_reported_again(breaker: Breaker) -> None:
    with breaker as p:
        assert p.failure() is Recorded.COUNTED
    m = breaker.metrics()
    assert (m.successes, m.failures) == (0, 1)


def test_exit_stack_blocks_end_in_stack_order(breaker: Breaker) -> None:
    # ExitStack enters and exits from its own frames: the latest block of this thread ends.
    import contextlib

    with contextlib.ExitStack() as stack:
        a = stack.enter_context(breaker)
        c = stack.enter_context(breaker)
        assert a is not c
    assert a.done and c.done
    assert breaker.metrics().successes == 2
    assert breaker._held_frames == 0


def test_an_abandoned_generator_reports_its_block_as_ignored(breaker: Breaker) -> None:
    def gen() -> Iterator[int]:
        with breaker:
            yield 1

    g = gen()
    next(g)
    del g  # closed: GeneratorExit ends the block, which counts nowhere
    gc.collect()
    m = breaker.metrics()
    assert (m.successes, m.failures, m.ignored) == (0, 0, 1)
    assert breaker._held_frames == 0


def test_a_permit_kept_after_its_block_is_not_reused(breaker: Breaker) -> None:
    kept = []
    for _ in range(3):
        with breaker as p:
            kept.append(p)
    assert len({id(p) for p in kept}) == 3
    assert all(p.done for p in kept)


def test_interleaved_async_with_blocks_report_their_own_permits(breaker: Breaker) -> None:
    import asyncio

    async def main() -> None:
        first_in = asyncio.Event()
        release_first = asyncio.Event()
        got: List[Any] = []

        async def first() -> None:
            async with breaker as p:
                got.append(p)
                first_in.set()
                await release_first.wait()
                raise ValueError("boom")

        async def second() -> None:
            await first_in.wait()
            async with breaker as p:
                got.append(p)
                release_first.set()
                await asyncio.sleep(0.01)

        results = await asyncio.gather(first(), second(), return_exceptions=True)
        assert isinstance(results[0], ValueError) and results[1] is None
        assert got[0] is not got[1] and all(p.done for p in got)

    asyncio.run(main())
    m = breaker.metrics()
    assert (m.successes, m.failures) == (1, 1)


# ---- 5. decorators guard what they wrap, or refuse it ----


def test_a_decorated_generator_is_guarded_for_its_whole_iteration(breaker: Breaker) -> None:
    @breaker
    def items(fail: bool) -> Generator[int, None, None]:
        yield 1
        if fail:
            raise ValueError("while iterating")
        yield 2

    g = items(True)
    assert breaker.metrics().successes == 0  # nothing recorded at creation
    assert next(g) == 1
    with pytest.raises(ValueError):
        next(g)
    assert list(items(False)) == [1, 2]
    early = items(False)
    next(early)
    early.close()  # stopped early: ignored
    m = breaker.metrics()
    assert (m.successes, m.failures, m.ignored) == (1, 1, 1)


def test_a_decorated_async_generator_is_guarded_for_its_whole_iteration(
    breaker: Breaker,
) -> None:
    import asyncio
    from typing import AsyncIterator

    @breaker
    async def items(fail: bool) -> AsyncIterator[int]:
        yield 1
        if fail:
            raise ValueError("while iterating")
        yield 2

    async def main() -> None:
        assert [x async for x in items(False)] == [1, 2]
        with pytest.raises(ValueError):
            async for _ in items(True):
                pass

    asyncio.run(main())
    m = breaker.metrics()
    assert (m.successes, m.failures) == (1, 1)


def test_a_bulkhead_holds_its_slot_for_a_generators_whole_iteration(clock: MockClock) -> None:
    bh = surgewall.Bulkhead("g", max_concurrent=1, max_wait=0, clock=clock)

    @bh
    def items() -> Iterator[int]:
        yield 1
        yield 2

    g = items()
    assert bh.metrics().active == 0  # not yet started
    next(g)
    assert bh.metrics().active == 1  # the body runs inside the slot
    with pytest.raises(surgewall.BulkheadFullError):
        next(items())
    assert list(g) == [2]
    assert bh.metrics().active == 0
    bh.free()


def test_an_object_with_an_async_call_gets_the_async_wrapper(breaker: Breaker) -> None:
    import asyncio

    class Client:
        async def __call__(self, fail: bool) -> str:
            await asyncio.sleep(0)
            if fail:
                raise ValueError("down")
            return "ok"

    guarded = breaker(Client())
    assert breaker.metrics().successes == 0

    async def main() -> None:
        assert await guarded(False) == "ok"
        with pytest.raises(ValueError):
            await guarded(True)

    asyncio.run(main())
    m = breaker.metrics()
    assert (m.successes, m.failures) == (1, 1)


def test_staticmethods_and_classmethods_bind_as_before(breaker: Breaker) -> None:
    class Api:
        @breaker
        @staticmethod
        def ping(x: int) -> int:
            return x

        @breaker
        @classmethod
        def name(cls) -> str:
            return cls.__name__

    assert Api.ping(1) == 1 and Api().ping(2) == 2
    assert Api.name() == "Api" and Api().name() == "Api"
    m = breaker.metrics()
    assert (m.successes, m.failures) == (4, 0)


def test_decorators_that_cannot_guard_an_iteration_refuse_it(breaker: Breaker) -> None:
    def items() -> Iterator[int]:
        yield 1

    r = surgewall.Retry(max_attempts=2)
    with pytest.raises(TypeError, match="generator function"):
        r(items)
    with pytest.raises(TypeError, match="generator function"):
        surgewall.guard(breaker=breaker)(items)
    with_fallback = Breaker("fb", fallback=lambda e: None)
    with pytest.raises(TypeError, match="fallback"):
        with_fallback(items)
    with_fallback.free()
    r.free()


def test_keyed_breaker_decorate_guards_generators_per_key(clock: MockClock) -> None:
    kb = surgewall.KeyedBreaker("k", max_keys=10, clock=clock)

    @kb.decorate(lambda host: host)
    def lines(host: str) -> Iterator[str]:
        yield host
        raise ConnectionError(host)

    with pytest.raises(ConnectionError):
        list(lines("a"))
    assert kb.metrics().failures == 1
    kb.free()


# ---- 7. what the documentation promises ----


def test_acquire_async_waits_on_the_mock_clock_like_a_blocking_wait(clock: MockClock) -> None:
    import asyncio

    bh = surgewall.Bulkhead("m", max_concurrent=1, max_wait=5.0, clock=clock)
    bh.acquire()

    async def main() -> None:
        waiter = asyncio.ensure_future(bh.acquire_async())
        await asyncio.sleep(0.05)  # real time passes: mock time does not, it still waits
        assert not waiter.done()
        clock.advance(5)
        with pytest.raises(surgewall.BulkheadFullError, match="timed out"):
            await asyncio.wait_for(waiter, 10)

    asyncio.run(main())
    bh.release()
    bh.free()


def test_the_mock_clock_refuses_to_wrap_around() -> None:
    c = MockClock()
    c.advance(9e9)
    c.advance(9e9)
    with pytest.raises(surgewall.ConfigError) as e:
        c.advance(9e9)
    assert e.value.field == "seconds"
    c.free()


def test_reset_makes_outstanding_permits_late(breaker: Breaker) -> None:
    p = breaker.acquire()
    breaker.reset()
    assert p.success() is Recorded.LATE
    assert breaker.metrics().late_results == 1


def test_a_call_holding_a_slot_ends_normally_when_the_bulkhead_is_closed(clock: MockClock) -> None:
    bh = surgewall.Bulkhead("c", max_concurrent=1, clock=clock)

    @bh
    def work() -> str:
        bh.free()  # another thread would do this; the call still returns its result
        return "done"

    assert work() == "done"
    with pytest.raises(ClosedError):
        work()


def test_a_lease_frees_only_after_the_last_call_inside_it() -> None:
    # The protocol under every handle, made deterministic: close() from inside a call (as
    # another thread would while this one is in the library) defers the free to its end.
    from surgewall._speedups import Lease

    freed: List[object] = []
    lease = Lease("handle", freed.append, ClosedError, "this thing is closed")

    def inside(h: object) -> str:
        lease.close()
        assert freed == [] and lease.closed and lease.busy == 1
        with pytest.raises(ClosedError, match="this thing is closed"):
            lease.call(len)  # new calls are refused at once
        return f"used {h}"

    assert lease.call(inside) == "used handle"
    assert freed == ["handle"] and lease.freed and lease.busy == 0
    lease.close()  # idempotent: never a second free
    assert freed == ["handle"]


def test_a_dropped_lease_frees_its_handle_once() -> None:
    from surgewall._speedups import Lease

    freed: List[object] = []
    lease = Lease("h", freed.append, ClosedError, "closed")
    with lease as h:
        assert h == "h"
    del lease
    gc.collect()
    assert freed == ["h"]
