"""Issue 16: one set of defaults (read from the core), a mock clock that drives the retry it is
given to, and names that mean one thing (free vs the CLOSED transition, messages in Python's
words)."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, List

import pytest

import surgewall
from surgewall import MockClock
from surgewall._ffi import ffi, lib


def _c_defaults(ctype: str, fn: Any) -> Any:
    out = ffi.new(f"{ctype} *")
    assert fn(out) == 0
    return out


def _default(cls: Any, name: str) -> Any:
    return inspect.signature(cls).parameters[name].default


# ---- item 6: one set of defaults --------------------------------------------------------


def test_retry_defaults_are_the_cores() -> None:
    c = _c_defaults("surgewall_retry_defaults", lib.surgewall_retry_defaults_get)
    assert _default(surgewall.Retry, "max_attempts") == c.max_attempts == 3
    assert c.backoff == lib.SURGEWALL_BACKOFF_EXPONENTIAL
    backoff = _default(surgewall.Retry, "backoff")
    assert backoff == surgewall.Exponential(c.backoff_initial_ns / 1e9, c.backoff_multiplier)
    assert backoff == surgewall.Exponential(0.1, 2.0, max=None)  # no hidden cap
    assert _default(surgewall.Retry, "jitter") == "full" and c.jitter == lib.SURGEWALL_JITTER_FULL
    assert surgewall.Exponential() == surgewall.Exponential(0.1, 2.0, None)


def test_breaker_bulkhead_and_budget_defaults_are_the_cores() -> None:
    b = _c_defaults("surgewall_breaker_defaults", lib.surgewall_breaker_defaults_get)
    for cls in (surgewall.Breaker, surgewall.KeyedBreaker):
        assert _default(cls, "failure_rate") == b.failure_rate
        assert _default(cls, "minimum_calls") == b.minimum_calls
        assert _default(cls, "open_for") == b.open_for_ns / 1e9
        assert _default(cls, "half_open_calls") == b.half_open_calls
        assert _default(cls, "half_open_max_duration") == b.half_open_max_ns / 1e9
    assert surgewall.TimeWindow() == surgewall.TimeWindow(b.window_ns / 1e9, b.window_buckets)
    h = _c_defaults("surgewall_bulkhead_defaults", lib.surgewall_bulkhead_defaults_get)
    assert _default(surgewall.Bulkhead, "max_concurrent") == h.max_concurrent == 25
    assert _default(surgewall.Bulkhead, "max_wait") == h.max_wait_ns / 1e9 == 0.0
    g = _c_defaults("surgewall_retry_budget_defaults", lib.surgewall_retry_budget_defaults_get)
    assert _default(surgewall.RetryBudget, "ratio") == g.ratio
    assert _default(surgewall.RetryBudget, "min_per_second") == g.min_per_second
    assert _default(surgewall.RetryBudget, "window") == g.window_secs


def test_a_default_bulkhead_admits_the_cores_25_and_never_waits(clock: MockClock) -> None:
    bh = surgewall.Bulkhead("defaults", clock=clock)
    assert all(bh.try_acquire() for _ in range(25))
    assert not bh.try_acquire()
    with pytest.raises(surgewall.BulkheadFullError):
        bh.call(lambda: None)  # a blocking caller does not wait either: max_wait is 0
    assert bh.metrics().active == 25
    bh.free()


def _delays(clock: MockClock, **kwargs: Any) -> List[float]:
    seen: List[float] = []
    r = surgewall.Retry(
        jitter="none", clock=clock, before_sleep=lambda i: seen.append(i.delay), **kwargs
    )

    def fail() -> None:
        raise OSError("down")

    with pytest.raises(surgewall.RetryError):
        r.call(fail)
    r.free()
    return seen


def test_an_explicit_none_max_is_no_cap_and_the_default_has_none(clock: MockClock) -> None:
    # 40 s and 80 s: neither the old 5 s default cap nor a 30 s one.
    assert _delays(clock, max_attempts=3, backoff=surgewall.Exponential(40.0, 2.0)) == [40.0, 80.0]
    assert _delays(
        clock, max_attempts=3, backoff=surgewall.Exponential(40.0, 2.0, max=None)
    ) == [40.0, 80.0]
    assert _delays(clock, max_attempts=3, backoff=surgewall.Linear(40.0, 40.0, max=None)) == [
        40.0,
        80.0,
    ]
    assert _delays(clock, max_attempts=3, backoff=surgewall.Exponential(40.0, 2.0, max=50.0)) == [
        40.0,
        50.0,
    ]
    assert _delays(clock) == [0.1, 0.2]  # every default: 3 attempts, 0.1 doubling


@pytest.mark.parametrize(
    "backoff, field",
    [
        (surgewall.Constant(0.0), "backoff.delay"),
        (surgewall.Exponential(0.0), "backoff.initial"),
        (surgewall.Linear(0.0, 1.0), "backoff.initial"),
        (surgewall.DecorrelatedJitter(0.0), "backoff.base"),
    ],
)
def test_every_backoff_refuses_a_zero_delay(backoff: surgewall.retry.Backoff, field: str) -> None:
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.Retry(backoff=backoff)
    assert ei.value.field == field
    assert "none backoff" in str(ei.value)


def test_no_backoff_retries_without_waiting(clock: MockClock) -> None:
    start = clock.now_ns
    assert _delays(clock, max_attempts=4, backoff=surgewall.NoBackoff()) == [0.0, 0.0, 0.0]
    assert clock.now_ns == start


# ---- item 7: the mock clock drives the retry --------------------------------------------


def test_a_retry_with_a_mock_clock_sleeps_on_it_not_in_real_time(clock: MockClock) -> None:
    r = surgewall.Retry(max_attempts=3, backoff=surgewall.Constant(30.0), jitter="none", clock=clock)
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OSError("transient")
        return "ok"

    start, real = clock.now_ns, time.monotonic()
    assert r.call(flaky) == "ok"
    assert clock.now_ns - start == 60 * 10**9
    assert time.monotonic() - real < 30  # a real sleep would have taken a minute
    r.free()


def test_an_async_retry_with_a_mock_clock_sleeps_on_it(clock: MockClock) -> None:
    r = surgewall.Retry(max_attempts=2, backoff=surgewall.Constant(45.0), jitter="none", clock=clock)

    async def fail() -> None:
        raise OSError("down")

    start = clock.now_ns
    with pytest.raises(surgewall.RetryError):
        asyncio.run(asyncio.wait_for(r.call_async(fail), timeout=20))
    assert clock.now_ns - start == 45 * 10**9
    r.free()


def test_an_explicit_sleep_still_wins_over_the_clock(clock: MockClock) -> None:
    slept: List[float] = []
    r = surgewall.Retry(
        max_attempts=2, backoff=surgewall.Constant(1.0), jitter="none", clock=clock, sleep=slept.append
    )
    start = clock.now_ns
    with pytest.raises(surgewall.RetryError):
        r.call(lambda: 1 / 0)
    assert slept == [1.0] and clock.now_ns == start
    r.free()


# ---- item 9: names that mean one thing --------------------------------------------------


def test_free_frees_and_close_is_only_the_breakers_transition(clock: MockClock) -> None:
    for obj in (
        surgewall.Bulkhead("names", clock=clock),
        surgewall.Retry(clock=clock),
        surgewall.RetryBudget(clock=clock),
        MockClock(),
    ):
        assert not hasattr(obj, "close"), type(obj)
        assert not obj.freed
        obj.free()
        obj.free()  # idempotent
        assert obj.freed
    b = surgewall.Breaker("names", minimum_calls=1, clock=clock)
    b.force_open()
    b.close()  # the transition, not a free
    assert b.state is surgewall.State.CLOSED and not b.freed
    b.free()
    with pytest.raises(surgewall.ClosedError, match="was freed"):
        b.state


def test_reject_reason_values_say_what_they_are() -> None:
    assert surgewall.RejectReason.HALF_OPEN_FULL.value == "half_open_full"
    assert {r.value for r in surgewall.RejectReason} == {"open", "half_open_full", "forced_open"}


def test_messages_name_the_python_field_once(clock: MockClock) -> None:
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.Retry(backoff=surgewall.Exponential(0.1, max=0.0))
    assert ei.value.field == "backoff.max" and "max_delay" not in str(ei.value)
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.Retry(backoff=surgewall.Exponential(0.0))
    text = str(ei.value)
    assert text.startswith("backoff.initial: ") and text.count("backoff.initial") == 1, text
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.Retry(max_elapsed=1.0, attempt_timeout=2.0)
    assert str(ei.value).count("attempt_timeout") == 1 and "invalid" not in str(ei.value)
