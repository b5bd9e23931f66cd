"""Issue 17 through the Python API: the SLO's burn windows, evidence and exact thresholds; a
server's Retry-After never shortened; no hidden cap on delays; documented formulas."""

from __future__ import annotations

import math
from typing import List

import pytest

import surgewall
from surgewall import BurnWindows, MockClock
from surgewall.retry import Backoff


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("429")
        self.retry_after = retry_after


def fail_with(e: Exception) -> None:
    raise e


def test_retry_after_beyond_max_elapsed_stops_instead_of_sleeping() -> None:
    # It used to sleep 5 s twice (the Exponential's max) and retry into a one-hour throttle.
    slept: List[float] = []
    r = surgewall.Retry(max_attempts=3, max_elapsed=120, sleep=slept.append)
    with pytest.raises(surgewall.RetryError) as ei:
        r.call(fail_with, RateLimited(3600))
    assert ei.value.reason is surgewall.StopReason.RETRY_AFTER_TOO_LONG
    assert slept == []
    assert r.metrics().stops[surgewall.StopReason.RETRY_AFTER_TOO_LONG] == 1
    r.free()


def test_retry_after_is_slept_in_full_up_to_max_retry_after() -> None:
    slept: List[float] = []
    r = surgewall.Retry(max_attempts=2, max_retry_after=30, sleep=slept.append)
    with pytest.raises(surgewall.RetryError):
        r.call(fail_with, RateLimited(30))
    assert slept == [30.0], "the backoff's max (5 s) does not shorten a Retry-After"
    with pytest.raises(surgewall.RetryError) as ei:
        r.call(fail_with, RateLimited(31))
    assert ei.value.reason is surgewall.StopReason.RETRY_AFTER_TOO_LONG
    with pytest.raises(surgewall.ConfigError) as ce:
        surgewall.Retry(max_retry_after=0)
    assert ce.value.field == "max_retry_after"
    r.free()


def test_constant_is_never_capped_and_the_formulas_match_the_delays() -> None:
    def delays(backoff: Backoff, attempts: int = 4) -> List[float]:
        slept: List[float] = []
        r = surgewall.Retry(attempts, backoff, "none", sleep=slept.append)
        with pytest.raises(surgewall.RetryError):
            r.call(fail_with, RuntimeError("down"))
        r.free()
        return slept

    assert delays(surgewall.Constant(60.0), 2) == [60.0]  # used to sleep 30 s
    # Exponential: initial * multiplier**(n - 1); Linear: initial + (n - 1) * step.
    assert delays(surgewall.Exponential(0.1, 2.0)) == pytest.approx([0.1, 0.2, 0.4])
    assert delays(surgewall.Linear(0.1, 0.2)) == pytest.approx([0.1, 0.3, 0.5])
    assert delays(surgewall.Exponential(0.1, 2.0, max=0.25)) == pytest.approx([0.1, 0.2, 0.25])
    assert delays(surgewall.Exponential(20.0, 2.0)) == [20.0, 40.0, 80.0]  # no hidden 30 s


def test_the_slo_reports_its_burn_bucket_and_keeps_its_windows(clock: MockClock) -> None:
    slo = surgewall.SLO(
        0.99,
        window=300,
        fast_burn=BurnWindows(long=60, short=10, threshold=10),
        slow_burn=BurnWindows(long=300, short=30, threshold=6),
        clock=clock,
    )
    assert slo.metrics().burn_bucket == 1.0
    for t in range(1, 131):
        for _ in range(100):
            slo.record(True)
            clock.advance(0.01)
        m = slo.metrics()
        assert 100 * min(t, 60) <= m.fast.long_calls <= 100 * min(t, 60) + 100, t
    slo.free()
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.SLO(
            0.99,
            window=300,
            fast_burn=BurnWindows(60, 10, 10),
            slow_burn=BurnWindows(300, 30, 6),
            burn_bucket=2.0,
        )
    assert ei.value.field == "burn_bucket"


def test_an_empty_window_is_no_data(clock: MockClock) -> None:
    slo = surgewall.SLO(
        0.99,
        window=120,
        fast_burn=BurnWindows(60, 10, 10),
        slow_burn=BurnWindows(120, 20, 5),
        clock=clock,
    )
    for _ in range(600):
        for i in range(10):
            slo.record(i >= 3)  # 30 % bad
        clock.advance(0.1)
    assert slo.tick().fast.burning
    clock.advance(61)
    m = slo.tick()
    assert m.fast.burning and m.fast.short_calls == 0
    slo.free()


def test_threshold_adjuster_validates_and_reads_none_before_a_measurement(clock: MockClock) -> None:
    b = surgewall.Breaker("adapt17", failure_rate=0.5, minimum_calls=10, clock=clock)
    with pytest.raises(surgewall.ConfigError) as ei:
        surgewall.ThresholdAdjuster(b, target_error_rate=0.7, min_threshold=0.2, max_threshold=0.6)
    assert ei.value.field == "target_error_rate"
    adj = surgewall.ThresholdAdjuster(b, target_error_rate=0.1, min_threshold=0.2, max_threshold=0.6)
    assert adj.metrics().last_error_rate is None
    for _ in range(10):
        b.acquire().record(surgewall.Outcome.SUCCESS)
    adj.tick()
    rate = adj.metrics().last_error_rate
    assert rate is not None and rate == 0.0 and not math.isnan(rate)
    adj.free()
    b.free()
