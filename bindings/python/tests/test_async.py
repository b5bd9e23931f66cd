"""asyncio: async decorators, async with, awaiting bulkhead slots, retry sleeps, cancellation."""

from __future__ import annotations

import asyncio
from typing import List

import pytest

import surgewall
from surgewall import Breaker, State


class Boom(Exception):
    pass


def test_async_decorator_records_outcomes(breaker: Breaker) -> None:
    @breaker
    async def ok(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    @breaker
    async def bad() -> None:
        raise Boom()

    async def main() -> None:
        assert await ok(21) == 42
        with pytest.raises(Boom):
            await bad()

    asyncio.run(main())
    m = breaker.metrics()
    assert (m.successes, m.failures) == (1, 1)


def test_async_with_breaker_records_and_rejects(breaker: Breaker) -> None:
    async def main() -> None:
        async with breaker:
            await asyncio.sleep(0)
        with pytest.raises(Boom):
            async with breaker:
                raise Boom()
        breaker.force_open()
        with pytest.raises(surgewall.CircuitOpenError):
            async with breaker:
                pass

    asyncio.run(main())
    m = breaker.metrics()
    assert (m.successes, m.failures, m.rejected_open) == (1, 1, 1)


def test_concurrent_tasks_keep_their_own_permits(breaker: Breaker) -> None:
    async def one(i: int) -> None:
        async with breaker:
            await asyncio.sleep(0.001 * (i % 3))
            if i % 2:
                raise Boom()

    async def main() -> None:
        breaker.metrics_only()
        results = await asyncio.gather(*(one(i) for i in range(20)), return_exceptions=True)
        assert sum(isinstance(r, Boom) for r in results) == 10

    asyncio.run(main())
    m = breaker.metrics()
    assert (m.successes, m.failures) == (10, 10)


def test_a_cancelled_task_counts_as_ignored(breaker: Breaker) -> None:
    started = asyncio.Event

    async def main() -> None:
        ev = started()

        @breaker
        async def slow() -> None:
            ev.set()
            await asyncio.sleep(10)

        t = asyncio.create_task(slow())
        await ev.wait()
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

        async def in_with() -> None:
            async with breaker:
                ev.set()
                await asyncio.sleep(10)

        ev.clear()
        t2 = asyncio.create_task(in_with())
        await ev.wait()
        t2.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t2

    asyncio.run(main())
    m = breaker.metrics()
    assert (m.ignored, m.failures, m.successes) == (2, 0, 0)


def test_a_cancelled_half_open_probe_gives_its_slot_back(
    breaker: Breaker, clock: surgewall.MockClock
) -> None:
    breaker.force_open(seconds=1)
    clock.advance(1)

    async def main() -> None:
        ev = asyncio.Event()

        @breaker
        async def probe() -> None:
            ev.set()
            await asyncio.sleep(10)

        tasks = [asyncio.create_task(probe()) for _ in range(2)]
        await ev.wait()
        await asyncio.sleep(0)
        assert breaker.state is State.HALF_OPEN
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Both slots came back: two fresh probes are admitted and close it.
        await breaker.call_async(asyncio.sleep, 0)
        await breaker.call_async(asyncio.sleep, 0)

    asyncio.run(main())
    assert breaker.state is State.CLOSED


def test_bulkhead_async_waits_without_blocking_the_loop() -> None:
    bh = surgewall.Bulkhead("async", max_concurrent=1, max_wait=5.0)
    order: List[str] = []

    async def main() -> None:
        async def holder() -> None:
            async with bh:
                order.append("hold")
                await asyncio.sleep(0.02)
                order.append("let go")

        async def waiter() -> None:
            await asyncio.sleep(0)
            async with bh:
                order.append("got it")

        async def ticker() -> None:
            # Runs while the waiter waits: the loop is not blocked.
            await asyncio.sleep(0.005)
            order.append("tick")

        await asyncio.gather(holder(), waiter(), ticker())

    asyncio.run(main())
    assert order == ["hold", "tick", "let go", "got it"]
    m = bh.metrics()
    assert (m.active, m.accepted) == (0, 2)
    bh.free()


def test_bulkhead_async_times_out_and_cancelled_waiters_hold_nothing() -> None:
    bh = surgewall.Bulkhead("async2", max_concurrent=1, max_wait=0.01)

    async def main() -> None:
        assert bh.try_acquire()
        with pytest.raises(surgewall.BulkheadFullError):
            await bh.acquire_async()
        t = asyncio.create_task(bh.acquire_async(timeout=5))
        await asyncio.sleep(0.005)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        bh.release()

    asyncio.run(main())
    assert bh.metrics().active == 0
    bh.free()


def test_async_retry_sleeps_with_the_injected_sleep() -> None:
    slept: List[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    r = surgewall.Retry(
        max_attempts=3,
        backoff=surgewall.Constant(0.25),
        jitter="none",
        async_sleep=fake_sleep,
    )
    calls = 0

    @r
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise Boom()
        return "ok"

    assert asyncio.run(flaky()) == "ok"
    assert slept == [0.25, 0.25]
    r.free()
