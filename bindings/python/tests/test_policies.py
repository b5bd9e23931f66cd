"""Bulkheads, keyed bulkheads, retry, budgets, SLO trackers, threshold adjusters, guard()."""

from __future__ import annotations

import threading
from typing import List

import pytest

import surgewall
from surgewall import Breaker, CountWindow, MockClock, State


class Boom(Exception):
    pass


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("429")
        self.retry_after = retry_after


# ---- bulkhead ----


def test_bulkhead_limits_concurrency_and_counts() -> None:
    bh = surgewall.Bulkhead("db", max_concurrent=2, max_wait=0)
    assert bh.try_acquire() and bh.try_acquire()
    assert not bh.try_acquire()
    with pytest.raises(surgewall.BulkheadFullError):
        bh.acquire()
    with pytest.raises(surgewall.BulkheadFullError):
        with bh:
            pass
    m = bh.metrics()
    assert (m.active, m.max_concurrent, m.accepted) == (2, 2, 2)
    assert m.rejected >= 2
    bh.release()
    bh.release()
    assert bh.metrics().active == 0
    bh.free()


def test_bulkhead_decorator_context_and_call_release_on_error() -> None:
    bh = surgewall.Bulkhead("svc", max_concurrent=1, max_wait=0)

    @bh
    def f(x: int) -> int:
        assert bh.metrics().active == 1
        return x

    assert f(3) == 3
    with pytest.raises(Boom):
        bh.call(lambda: (_ for _ in ()).throw(Boom()))
    with bh:
        assert not bh.try_acquire()
    assert bh.metrics().active == 0
    bh.free()


def test_bulkhead_blocking_waiter_gets_a_released_slot() -> None:
    bh = surgewall.Bulkhead("wait", max_concurrent=1, max_wait=10.0)
    bh.acquire()
    got = threading.Event()

    def waiter() -> None:
        with bh:
            got.set()

    t = threading.Thread(target=waiter)
    t.start()
    assert not got.wait(0.05)
    bh.release()
    t.join(10)
    assert got.is_set()
    m = bh.metrics()
    assert (m.active, m.waited, m.accepted) == (0, 1, 2)
    bh.free()


def test_bulkhead_acquire_returns_a_permit_for_with_and_available_counts_free_slots() -> None:
    bh = surgewall.Bulkhead("permits", max_concurrent=2, max_wait=0)
    assert bh.available == 2
    with bh.acquire() as p:
        assert isinstance(p, surgewall.BulkheadPermit) and not p.released
        assert (bh.available, bh.metrics().active) == (1, 1)
    assert p.released and bh.available == 2
    p.release()  # a second release does nothing
    assert bh.metrics().unexpected_releases == 0
    q = bh.acquire()
    with pytest.raises(Boom):
        with q:
            raise Boom()
    assert bh.metrics().active == 0
    bh.acquire()  # the old way still works: acquire(), then bulkhead.release()
    bh.release()
    with pytest.raises(TypeError):
        import copy

        copy.copy(bh.acquire())
    bh.release()
    bh.free()


def test_bulkhead_resize_keeps_permits_and_admits_below_the_new_limit() -> None:
    bh = surgewall.Bulkhead("resized", max_concurrent=3, max_wait=0)
    permits = [bh.acquire() for _ in range(3)]
    assert bh.set_max_concurrent(1) == 3
    assert (bh.max_concurrent, bh.available, bh.metrics().active) == (1, 0, 3)
    permits.pop().release()
    permits.pop().release()
    assert not bh.try_acquire()  # one in flight: at the new limit
    permits.pop().release()
    with bh.acquire():
        assert bh.available == 0
    for bad in (0, -1, 1 << 24, 2.5, True):
        with pytest.raises(surgewall.ConfigError) as ei:
            bh.set_max_concurrent(bad)  # type: ignore[arg-type]
        assert ei.value.field == "max_concurrent"
    assert bh.max_concurrent == 1
    bh.free()


def test_bulkhead_growth_admits_a_blocked_waiter() -> None:
    bh = surgewall.Bulkhead("grow", max_concurrent=1, max_wait=30.0)
    held = bh.acquire()
    got = threading.Event()

    def waiter() -> None:
        with bh.acquire():
            got.set()

    t = threading.Thread(target=waiter)
    t.start()
    while bh.metrics().waiting == 0:
        threading.Event().wait(0.001)
    bh.set_max_concurrent(2)  # the waiter gets the new slot; nobody released
    t.join(30)
    assert got.is_set()
    held.release()
    m = bh.metrics()
    assert (m.active, m.accepted, m.timed_out) == (0, 2, 0)
    bh.free()


def test_keyed_bulkhead_limits_each_key_and_globally() -> None:
    kb = surgewall.KeyedBulkhead(2, global_max=3, limits={7: 1})
    a1 = kb.acquire("alice")
    a2 = kb.acquire("alice")
    with pytest.raises(surgewall.KeyedBulkheadFullError) as ei:
        kb.acquire("alice")
    assert ei.value.rejection is surgewall.KeyedRejection.KEY_FULL
    assert kb.active("alice") == 2
    b1 = kb.acquire(7)
    assert kb.try_acquire(7) is None  # its own override: 1
    with pytest.raises(surgewall.KeyedBulkheadFullError) as ei:
        kb.acquire("bob")
    assert ei.value.rejection is surgewall.KeyedRejection.GLOBAL_FULL
    for p in (a1, a2, b1):
        p.release()
    a1.release()  # idempotent
    with kb.acquire("bob") as p:
        assert kb.active("bob") == 1
    snap = kb.snapshot()
    assert snap[kb.key_of("bob")] == (0, 2)
    m = kb.metrics()
    assert (m.global_active, m.global_max, m.per_key_max) == (0, 3, 2)
    assert m.rejected_key == 2 and m.rejected_global == 1
    kb.free()


def test_keyed_bulkhead_limits_by_str_and_int_key() -> None:
    kb = surgewall.KeyedBulkhead(1, limits={"big-tenant": 3, 7: 2})
    held = [kb.acquire("big-tenant") for _ in range(3)]
    assert kb.try_acquire("big-tenant") is None
    two = [kb.acquire(7), kb.acquire(7)]
    assert kb.try_acquire(7) is None
    one = kb.acquire("small-tenant")
    assert kb.try_acquire("small-tenant") is None
    assert kb.snapshot()[kb.key_of("big-tenant")] == (3, 3)
    for p in held + two + [one]:
        p.release()
    kb.free()


def test_keyed_bulkhead_key_cap_and_idle_eviction(clock: MockClock) -> None:
    kb = surgewall.KeyedBulkhead(1, max_keys=2, idle_ttl=10, clock=clock)
    sub = surgewall.events()
    kb.acquire(1).release()
    held = kb.acquire(2)
    with pytest.raises(surgewall.RegistryFullError):
        kb.acquire(3)
    assert kb.sweep() == 0  # a sweep marks idle keys (no clock read on the hot path)
    clock.advance(11)
    assert kb.sweep() == 1  # key 1 goes; key 2 is in use: never evicted
    assert kb.active(2) == 1
    evictions = [e for e in sub if e.kind is surgewall.EventKind.EVICTED]
    assert len(evictions) == 1
    sub.free()
    held.release()
    kb.acquire(3).release()
    assert kb.metrics().evicted == 1
    kb.free()


def test_eviction_events_carry_the_callers_key(clock: MockClock) -> None:
    kb = surgewall.KeyedBulkhead(1, idle_ttl=1, clock=clock)
    sub = surgewall.events()
    kb.acquire(12345).release()
    kb.sweep()
    clock.advance(2)
    assert kb.sweep() == 1
    keys = [e.key for e in sub if e.kind is surgewall.EventKind.EVICTED and e.source == kb.id]
    sub.free()
    kb.free()
    assert keys == [12345]


def test_shared_overflow_routes_new_keys_to_one_entry() -> None:
    kb = surgewall.KeyedBulkhead(1, max_keys=1, overflow="shared")
    kb.acquire(1).release()
    p = kb.acquire(2)
    assert kb.try_acquire(3) is None  # 2 and 3 share the overflow entry
    p.release()
    assert kb.metrics().overflowed >= 2
    kb.free()


# ---- retry ----


def test_retry_until_success_and_metrics() -> None:
    slept: List[float] = []
    r = surgewall.Retry(
        max_attempts=4, backoff=surgewall.Constant(0.5), jitter="none", sleep=slept.append
    )
    calls = 0

    @r
    def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise Boom()
        return calls

    assert flaky() == 3
    assert slept == [0.5, 0.5]
    m = r.metrics()
    assert (m.operations, m.retries, m.stops[surgewall.StopReason.SUCCEEDED]) == (1, 2, 1)
    r.free()


def test_retry_gives_up_with_retry_error_carrying_the_last_error() -> None:
    slept: List[float] = []
    seen: List[surgewall.AttemptInfo] = []
    r = surgewall.Retry(
        max_attempts=3,
        backoff=surgewall.Exponential(0.1, multiplier=2.0),
        jitter="none",
        sleep=slept.append,
        before_sleep=seen.append,
    )
    errors = [Boom(str(i)) for i in range(3)]
    it = iter(errors)
    with pytest.raises(surgewall.RetryError) as ei:
        r.call(lambda: (_ for _ in ()).throw(next(it)))
    assert ei.value.last_error is errors[2]
    assert ei.value.__cause__ is errors[2]
    assert ei.value.attempts == 3
    assert ei.value.reason is surgewall.StopReason.MAX_ATTEMPTS
    assert slept == pytest.approx([0.1, 0.2])
    assert [a.attempt for a in seen] == [1, 2]
    r.free()


def test_retry_does_not_retry_excluded_errors_and_reraise_option() -> None:
    r = surgewall.Retry(
        max_attempts=5, retry_on=(Boom,), retry_if=lambda e: "hard" not in str(e), sleep=lambda s: None
    )
    calls = 0

    def hard() -> None:
        nonlocal calls
        calls += 1
        raise Boom("hard")

    with pytest.raises(Boom):
        r.call(hard)
    with pytest.raises(KeyError):
        r.call(lambda: dict[str, int]()["x"])
    assert calls == 1
    rr = surgewall.Retry(max_attempts=2, reraise=True, sleep=lambda s: None)
    with pytest.raises(Boom):
        rr.call(lambda: (_ for _ in ()).throw(Boom("soft")))
    r.free()
    rr.free()


def test_jitter_stays_within_bounds() -> None:
    slept: List[float] = []
    r = surgewall.Retry(
        max_attempts=30, backoff=surgewall.Constant(1.0), jitter="equal", seed=7, sleep=slept.append
    )
    with pytest.raises(surgewall.RetryError):
        r.call(lambda: (_ for _ in ()).throw(Boom()))
    assert len(slept) == 29
    assert all(0.5 <= s <= 1.0 for s in slept)
    r.free()


def test_retry_after_attribute_overrides_the_delay() -> None:
    slept: List[float] = []
    r = surgewall.Retry(max_attempts=2, backoff=surgewall.Constant(0.1), jitter="none", sleep=slept.append)
    with pytest.raises(surgewall.RetryError):
        r.call(lambda: (_ for _ in ()).throw(RateLimited(2.0)))
    assert slept == [2.0]
    r.free()


def test_retry_budget_refuses_beyond_ratio_and_floor(clock: MockClock) -> None:
    budget = surgewall.RetryBudget(ratio=0.0, min_per_second=0.0, window=10, clock=clock)
    r = surgewall.Retry(max_attempts=5, budget=budget, sleep=lambda s: None, clock=clock)
    with pytest.raises(surgewall.RetryError) as ei:
        r.call(lambda: (_ for _ in ()).throw(Boom()))
    assert ei.value.reason is surgewall.StopReason.BUDGET_EXHAUSTED
    assert ei.value.attempts == 1
    assert budget.metrics().refused_total == 1
    b2 = surgewall.RetryBudget(ratio=0.5, min_per_second=0.0, clock=clock)
    for _ in range(4):
        b2.record_request()
    assert [b2.try_retry() for _ in range(3)] == [True, True, False]
    r.free()
    budget.free()
    b2.free()


def test_named_budgets_are_shared() -> None:
    a = surgewall.RetryBudget(ratio=0.0, min_per_second=0.0, name="py-shared-test")
    b = surgewall.RetryBudget(ratio=0.9, min_per_second=100.0, name="py-shared-test")
    assert not b.try_retry()  # the first configuration won
    assert a.metrics().refused_total == 1
    a.free()
    b.free()


def test_retry_never_retries_into_an_open_breaker(clock: MockClock) -> None:
    b = Breaker("dep", clock=clock)
    b.force_open()
    r = surgewall.Retry(max_attempts=5, stop_on_open_breaker=True, sleep=lambda s: None)
    g = surgewall.guard(breaker=b, retry=r)
    with pytest.raises(surgewall.RetryError) as ei:
        g.call(lambda: 1)
    assert ei.value.reason is surgewall.StopReason.BREAKER_OPEN
    assert isinstance(ei.value.last_error, surgewall.CircuitOpenError)
    assert b.metrics().rejected_open == 1
    b.free()
    r.free()


def test_retry_waits_for_the_breaker_retry_after(clock: MockClock) -> None:
    b = Breaker("dep2", open_for=3.0, half_open_calls=1, clock=clock)
    b.force_open(seconds=3.0)
    slept: List[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock.advance(s)

    r = surgewall.Retry(max_attempts=3, backoff=surgewall.Constant(0.1), jitter="none", sleep=sleep, clock=clock)
    assert surgewall.guard(breaker=b, retry=r).call(lambda: "ok") == "ok"
    assert slept and slept[0] >= 3.0
    assert b.state is State.CLOSED
    b.free()
    r.free()


# ---- guard ----


def test_guard_order_fallback_retry_breaker_bulkhead(clock: MockClock) -> None:
    b = Breaker("g", failure_rate=None, consecutive_failures=2, clock=clock)
    bh = surgewall.Bulkhead("g", max_concurrent=1, max_wait=0)
    r = surgewall.Retry(max_attempts=5, stop_on_open_breaker=True, sleep=lambda s: None)
    fallbacks: List[Exception] = []

    def fb(e: Exception) -> str:
        fallbacks.append(e)
        return "fallback"

    g = surgewall.guard(breaker=b, bulkhead=bh, retry=r, fallback=fb)
    calls = 0

    @g
    def down() -> str:
        nonlocal calls
        calls += 1
        assert bh.metrics().active == 1
        raise Boom()

    assert down() == "fallback"
    assert calls == 2  # the breaker opened on the 2nd failure; retry stopped there
    assert b.state is State.OPEN
    assert isinstance(fallbacks[0], surgewall.RetryError)
    assert bh.metrics().active == 0
    b.free()
    bh.free()
    r.free()


def test_guard_bulkhead_full_releases_the_breaker_permit_as_ignored(clock: MockClock) -> None:
    b = Breaker("g2", clock=clock)
    bh = surgewall.Bulkhead("g2", max_concurrent=1, max_wait=0)
    g = surgewall.guard(breaker=b, bulkhead=bh)
    assert bh.try_acquire()
    with pytest.raises(surgewall.BulkheadFullError):
        g.call(lambda: 1)
    bh.release()
    assert g.call(lambda: 2) == 2
    m = b.metrics()
    assert (m.ignored, m.successes, m.failures) == (1, 1, 0)
    b.free()
    bh.free()


def test_guard_async(clock: MockClock) -> None:
    import asyncio

    b = Breaker("ga", clock=clock)
    bh = surgewall.Bulkhead("ga", max_concurrent=2)
    g = surgewall.guard(breaker=b, bulkhead=bh, fallback=lambda e: "fb")

    @g
    async def f(x: int) -> int:
        return x

    @g
    async def bad() -> int:
        raise Boom()

    async def main() -> None:
        assert await f(5) == 5
        fallback_result: object = await bad()
        assert fallback_result == "fb"

    asyncio.run(main())
    m = b.metrics()
    assert (m.successes, m.failures) == (1, 1)
    b.free()
    bh.free()


def test_breaker_registry_one_per_key_and_cap(clock: MockClock) -> None:
    reg: surgewall.BreakerRegistry[str] = surgewall.BreakerRegistry(
        lambda key: Breaker(key, clock=clock), max_keys=2
    )
    a = reg.get("GET /users")
    assert reg["GET /users"] is a
    reg.get("POST /orders")
    with pytest.raises(surgewall.RegistryFullError):
        reg.get("third")
    assert len(reg) == 2 and "GET /users" in reg
    assert reg.remove("GET /users")
    assert a.freed
    reg.free()
    assert len(reg) == 0


# ---- SLO + thresholds ----


def test_slo_budget_and_fast_burn_holds_the_breaker_open(clock: MockClock) -> None:
    b = Breaker("slo-dep", clock=clock)
    slo = surgewall.SLO(
        objective=0.99,
        window=3600,
        fast_burn=surgewall.BurnWindows(long=300, short=60, threshold=10),
        slow_burn=surgewall.BurnWindows(long=1800, short=300, threshold=6),
        min_calls=10,
        breaker=b,
        clock=clock,
    )
    sub = surgewall.events()
    for _ in range(80):
        slo.record(True)
    for _ in range(20):  # a 20 % error rate burns a 1 % budget 20x
        slo.record_outcome(surgewall.Outcome.FAILURE)
    slo.record_outcome(surgewall.Outcome.IGNORED)
    m = slo.tick()
    assert (m.calls, m.bad) == (100, 20)
    assert m.error_rate == pytest.approx(0.2)
    assert m.budget_remaining < 0
    assert m.fast.burning
    assert m.holding_breaker
    assert b.state is State.FORCED_OPEN
    kinds = [e.kind for e in sub]
    assert surgewall.EventKind.SLO_BURN in kinds
    assert slo.metrics().calls == 100
    sub.free()
    slo.free()
    b.free()


def test_threshold_adjuster_moves_within_bounds(clock: MockClock) -> None:
    b = Breaker("adapt", failure_rate=0.5, minimum_calls=10, window=CountWindow(100), clock=clock)
    b.metrics_only()
    adj = surgewall.ThresholdAdjuster(
        b, target_error_rate=0.05, min_threshold=0.2, max_threshold=0.8, step=0.1, min_calls=10
    )
    for i in range(20):
        b.acquire().record(surgewall.Outcome.FAILURE if i % 4 == 0 else surgewall.Outcome.SUCCESS)
    moved = adj.tick()
    assert moved is not None
    old, new = moved
    assert old == pytest.approx(0.5) and new == pytest.approx(0.4)
    for _ in range(10):
        adj.tick()
    assert adj.metrics().threshold == pytest.approx(0.2)
    assert b.metrics().failure_rate_threshold == pytest.approx(0.2)
    assert adj.metrics().changes >= 3
    assert adj.tick() is None  # at the bound: no further move
    adj.free()
    b.free()


def test_retry_preview_lists_the_delays_and_runs_nothing() -> None:
    r = surgewall.Retry(max_attempts=4, backoff=surgewall.Exponential(0.1), jitter="none")
    assert r.preview() == pytest.approx([0.1, 0.2, 0.4])
    assert r.preview(limit=2) == pytest.approx([0.1, 0.2])
    assert r.metrics().operations == 0
    capped = surgewall.Retry(
        max_attempts=10, backoff=surgewall.Constant(0.1), jitter="none", max_elapsed=0.35
    )
    assert capped.preview() == pytest.approx([0.1, 0.1, 0.1])
    many = surgewall.Retry(max_attempts=500, backoff=surgewall.Constant(0.01), jitter="none")
    assert len(many.preview()) == 499
    # With jitter and a seed: the next operation's own delays.
    seeded = surgewall.Retry(
        max_attempts=5, backoff=surgewall.Exponential(0.1), jitter="full", seed=11
    )
    preview = seeded.preview()
    assert preview == seeded.preview()
    slept: List[float] = []

    def fail() -> None:
        raise Boom()

    seeded_run = surgewall.Retry(
        max_attempts=5,
        backoff=surgewall.Exponential(0.1),
        jitter="full",
        seed=11,
        sleep=slept.append,
    )
    assert seeded_run.preview() == preview
    with pytest.raises(surgewall.RetryError):
        seeded_run.call(fail)
    assert slept == pytest.approx(preview)
    with pytest.raises(surgewall.ConfigError):
        r.preview(limit=-1)
    for p in (r, capped, many, seeded, seeded_run):
        p.free()


def test_linear_and_decorrelated_backoff_delays() -> None:
    slept: List[float] = []
    lin = surgewall.Retry(
        max_attempts=4, backoff=surgewall.Linear(0.1, 0.2), jitter="none", sleep=slept.append
    )
    with pytest.raises(surgewall.RetryError):
        lin.call(lambda: (_ for _ in ()).throw(Boom()))
    assert len(slept) == 3
    assert slept == sorted(slept) and slept[1] - slept[0] == pytest.approx(0.2)
    slept.clear()
    dec = surgewall.Retry(
        max_attempts=20,
        backoff=surgewall.DecorrelatedJitter(0.1, max=1.0),
        seed=3,
        sleep=slept.append,
    )
    with pytest.raises(surgewall.RetryError):
        dec.call(lambda: (_ for _ in ()).throw(Boom()))
    assert len(slept) == 19
    assert all(0.0 <= s <= 1.0 for s in slept)
    lin.free()
    dec.free()


def test_max_elapsed_never_starts_an_attempt_that_would_overrun(clock: MockClock) -> None:
    def sleep(s: float) -> None:
        clock.advance(s)

    r = surgewall.Retry(
        max_attempts=100,
        backoff=surgewall.Constant(1.0),
        jitter="none",
        max_elapsed=3.5,
        clock=clock,
        sleep=sleep,
    )
    with pytest.raises(surgewall.RetryError) as ei:
        r.call(lambda: (_ for _ in ()).throw(Boom()))
    assert ei.value.reason is surgewall.StopReason.MAX_ELAPSED
    assert ei.value.attempts == 4
    r.free()


def test_keyed_call_and_breaker_async_fallback(clock: MockClock) -> None:
    import asyncio

    kb = surgewall.KeyedBulkhead(1)
    assert kb.call("t1", lambda x: x + 1, 1) == 2
    assert kb.active("t1") == 0
    kb.free()
    b = Breaker("af", fallback=lambda e: "cached", clock=clock)

    @b
    async def live() -> str:
        return "live"

    b.force_open()
    assert asyncio.run(live()) == "cached"
    b.free()
