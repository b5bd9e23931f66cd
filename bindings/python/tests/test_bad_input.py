"""Wrong types, NaN, negatives, closed handles: clear exceptions naming the field."""

from __future__ import annotations

import math
from typing import Any, Dict

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
    c.close()
    c.close()
    with pytest.raises(surgewall.ClosedError):
        c.advance(1)
    with pytest.raises(surgewall.ClosedError):
        Breaker("x", clock=c)
    s = surgewall.events()
    s.close()
    with pytest.raises(surgewall.ClosedError):
        s.poll()
    bh = surgewall.Bulkhead("b")
    bh.close()
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
    bh.close()


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
