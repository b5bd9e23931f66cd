"""Wrong types, NaN, negatives, closed handles: clear exceptions naming the field."""

from __future__ import annotations

import math
from typing import Any, Dict, List

import pytest

import surgewall
from surgewall import Breaker, CountWindow, MockClock, TimeWindow


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"failure_rate": math.nan}, "failure_rate"),
        ({"failure_rate": 0.0}, "failure_rate"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"failure_rate": "half"}, "failure_rate"),
        ({"minimum_calls": -1}, "minimum_calls"),
        ({"minimum_calls": 2.5}, "minimum_calls"),
        ({"minimum_calls": True}, "minimum_calls"),
        ({"open_for": -1.0}, "open_for"),
        ({"open_for": math.nan}, "open_for"),
        ({"open_for": math.inf}, "open_for"),
        ({"open_for": "5s"}, "open_for"),
        ({"half_open_calls": 0}, "half_open_calls"),
        ({"window": TimeWindow(seconds=0)}, "window.seconds"),
        ({"window": TimeWindow(seconds=60, buckets=0)}, "window.buckets"),
        ({"window": CountWindow(calls=0)}, "window.calls"),
        ({"window": 60}, "window"),
        ({"slow_call_rate": 0.5}, "slow_call_rate"),
        ({"slow_call_rate": 0.5, "slow_call_duration": -1}, "slow_call_duration"),
        ({"consecutive_failures": 0}, "consecutive_failures"),
        ({"include": ValueError()}, "include"),
        ({"exclude": (int,)}, "exclude"),
        ({"is_failure": 3}, "is_failure"),
        ({"fallback": "x"}, "fallback"),
        ({"clock": object()}, "clock"),
        ({"open_backoff": surgewall.OpenBackoff(multiplier=0.5)}, "open_backoff.multiplier"),
        ({"open_backoff": surgewall.OpenBackoff(jitter=2.0)}, "open_backoff.jitter"),
        ({"seed": -3}, "seed"),
    ],
)
def test_breaker_config_errors_name_the_field(kwargs: Dict[str, Any], field: str) -> None:
    with pytest.raises(surgewall.ConfigError) as ei:
        Breaker("bad", **kwargs)
    assert ei.value.field == field
    assert isinstance(ei.value, ValueError)
    assert field in str(ei.value)


def test_the_library_rejects_minimum_calls_above_a_count_window() -> None:
    with pytest.raises(surgewall.ConfigError) as ei:
        Breaker("bad", minimum_calls=20, window=CountWindow(calls=10))
    assert ei.value.field == "minimum_calls"
    assert ei.value.status == 104


def test_name_must_be_a_str() -> None:
    with pytest.raises(surgewall.ConfigError) as ei:
        Breaker(b"bytes")  # type: ignore[arg-type]
    assert ei.value.field == "name"


def test_bad_runtime_arguments(breaker: Breaker, clock: MockClock) -> None:
    with pytest.raises(surgewall.ConfigError):
        breaker.force_open(seconds=-1)
    with pytest.raises(surgewall.ConfigError):
        breaker.set_failure_rate_threshold(math.nan)
    with pytest.raises(surgewall.ConfigError):
        clock.advance(-1)
    with pytest.raises(surgewall.ConfigError):
        clock.advance(math.nan)
    with pytest.raises(TypeError):
        breaker.acquire().record(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        breaker.call()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        breaker(42)  # type: ignore[type-var]
    with pytest.raises(surgewall.ConfigError):
        breaker.acquire().success(duration=-0.5)


def test_closed_handles_raise_closed_error() -> None:
    c = MockClock()
    c.free()
    c.free()
    with pytest.raises(surgewall.ClosedError):
        c.advance(1)
    with pytest.raises(surgewall.ClosedError):
        Breaker("x", clock=c)
    s = surgewall.events()
    s.free()
    with pytest.raises(surgewall.ClosedError):
        s.poll()
    bh = surgewall.Bulkhead("b")
    bh.free()
    with pytest.raises(surgewall.ClosedError):
        bh.try_acquire()


def test_a_forged_permit_is_refused(breaker: Breaker) -> None:
    p = breaker.acquire()
    assert p.token >> 40 != 0  # the salt: the top 24 bits, never zero
    # one salt bit off, no salt at all, a zeroed permit
    for token in (p.token ^ (1 << 40), p.token ^ (1 << 63), p.generation, 0):
        with pytest.raises(surgewall.PermitError):
            breaker._record_raw(token, p.start_ns, 0)
    p.ignore()


def test_releasing_an_unacquired_bulkhead_slot_is_an_error() -> None:
    bh = surgewall.Bulkhead("b")
    with pytest.raises(surgewall.SurgewallError):
        bh.release()
    assert bh.metrics().unexpected_releases == 1
    bh.free()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"max_concurrent": "ten"}, "max_concurrent"),
        ({"max_wait": -0.1}, "max_wait"),
        ({"max_wait": math.nan}, "max_wait"),
    ],
)
def test_bulkhead_config_errors(kwargs: Dict[str, Any], field: str) -> None:
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.Bulkhead("b", **kwargs)
    assert ei.value.field == field


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"backoff": surgewall.Exponential(-1)}, "backoff.initial"),
        ({"backoff": surgewall.Exponential(0.1, multiplier=math.nan)}, "backoff.multiplier"),
        ({"backoff": "exp"}, "backoff"),
        ({"jitter": "lots"}, "jitter"),
        ({"max_elapsed": 0}, "max_elapsed"),
        ({"retry_on": 3}, "retry_on"),
        ({"budget": 3}, "budget"),
    ],
)
def test_retry_config_errors(kwargs: Dict[str, Any], field: str) -> None:
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.Retry(**kwargs)
    assert ei.value.field == field


def test_budget_and_slo_config_errors() -> None:
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.RetryBudget(ratio=-0.1)
    assert ei.value.field == "ratio"
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.RetryBudget(window=0)
    assert ei.value.field == "window"
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.SLO(objective=1.0)
    assert ei.value.field == "objective"
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.KeyedBulkhead(2, overflow="drop")
    assert ei.value.field == "overflow"
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.KeyedBulkhead(2, limits={1.5: 3})  # type: ignore[dict-item]
    assert ei.value.field == "limits"
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.KeyedBulkhead(2, limits={"alice": 0})
    assert ei.value.field == "limits['alice']"


# Issue 18: numbers too large for a float or for 64-bit nanoseconds, and names with no
# UTF-8 form, were OverflowError / UnicodeEncodeError; each is a ConfigError naming the field.
@pytest.mark.parametrize(
    "make, field",
    [
        (lambda c: Breaker("x", open_for=10**400, clock=c), "open_for"),
        (lambda c: Breaker("x", open_for=1e300, clock=c), "open_for"),
        (lambda c: Breaker("x", failure_rate=10**400, clock=c), "failure_rate"),
        (lambda c: Breaker("x", slow_call_rate=0.5, slow_call_duration=1e300), "slow_call_duration"),
        (lambda c: Breaker("x", window=TimeWindow(seconds=10**400)), "window.seconds"),
        (lambda c: Breaker("x", open_backoff=surgewall.OpenBackoff(10**400)), "open_backoff.multiplier"),
        (lambda c: Breaker("\ud800"), "name"),
        (lambda c: Breaker("x", fallback_payload=surgewall.FallbackPayload(b"", "\udfff")), "fallback_payload.content_type"),
        (lambda c: surgewall.KeyedBreaker("\ud800"), "name"),
        (lambda c: surgewall.KeyedBreaker("k", open_for=1e300), "open_for"),
        (lambda c: surgewall.KeyedBreaker("k", idle_ttl=10**400), "idle_ttl"),
        (lambda c: surgewall.RetryBudget(ratio=10**400), "ratio"),
        (lambda c: surgewall.RetryBudget(min_per_second=10**400), "min_per_second"),
        (lambda c: surgewall.RetryBudget(name="\ud800"), "name"),
        (lambda c: surgewall.Bulkhead("b", max_wait=1e300), "max_wait"),
        (lambda c: surgewall.Bulkhead("\ud800"), "name"),
        (lambda c: surgewall.KeyedBulkhead(1, limits={"\ud800": 2}), "limits['\\ud800']"),
        (lambda c: surgewall.Retry(backoff=surgewall.Constant(1e300)), "backoff.delay"),
        (lambda c: surgewall.Retry(max_elapsed=10**400), "max_elapsed"),
        (lambda c: surgewall.SLO(window=1e300), "window"),
        (lambda c: c.advance(1e300), "seconds"),
        (lambda c: c.advance(10**400), "seconds"),
    ],
)
def test_numbers_and_names_out_of_reach_are_config_errors(
    clock: MockClock, make: Any, field: str
) -> None:
    with pytest.raises(surgewall.ConfigError) as e:
        make(clock)
    assert e.value.field == field


def test_manual_and_call_time_durations_out_of_reach_are_config_errors(clock: MockClock) -> None:
    b = Breaker("x", clock=clock)
    for bad in (1e300, 10**400):
        with pytest.raises(surgewall.ConfigError) as e:
            b.force_open(bad)
        assert e.value.field == "seconds"
    bh = surgewall.Bulkhead("b", clock=clock)
    with pytest.raises(surgewall.ConfigError) as e:
        bh.acquire(timeout=1e300)
    assert e.value.field == "timeout"
    assert b.state is surgewall.State.CLOSED
    b.free()
    bh.free()


def test_a_retry_after_out_of_reach_is_clamped_not_raised(clock: MockClock) -> None:
    class Slow(Exception):
        retry_after = 10**400

    slept: List[float] = []
    r = surgewall.Retry(max_attempts=2, jitter="none", sleep=slept.append, clock=clock)
    calls = iter([Slow(), None])

    def flaky() -> str:
        e = next(calls)
        if e is not None:
            raise e
        return "ok"

    assert r.call(flaky) == "ok"
    assert len(slept) == 1 and slept[0] > 0
