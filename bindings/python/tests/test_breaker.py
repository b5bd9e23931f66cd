"""Breaker behaviour through every public entry point."""

from __future__ import annotations

import math
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import surgewall
from surgewall import Breaker, CountWindow, MockClock, Outcome, Recorded, State


class Boom(Exception):
    pass


class NotOurs(Exception):
    pass


def fail() -> None:
    raise Boom("boom")


def trip(b: Breaker, n: int = 4) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            b.call(fail)


def test_decorator_passes_arguments_and_result_and_keeps_metadata(breaker: Breaker) -> None:
    @breaker
    def add(a: int, b: int = 0) -> int:
        """Adds."""
        return a + b

    assert add(2, b=3) == 5
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."
    assert add.__wrapped__(1) == 1  # type: ignore[attr-defined]
    assert breaker.metrics().successes == 1


def test_decorated_method_binds_self(breaker: Breaker) -> None:
    class Client:
        def __init__(self) -> None:
            self.n = 7

        @breaker
        def get(self, k: int) -> int:
            return self.n + k

    assert Client().get(1) == 8
    assert breaker.metrics().successes == 1


def test_failures_trip_and_open_rejects_with_retry_after(
    breaker: Breaker, clock: MockClock
) -> None:
    trip(breaker)
    assert breaker.state is State.OPEN
    with pytest.raises(surgewall.CircuitOpenError) as ei:
        breaker.call(lambda: 1)
    assert ei.value.retry_after == pytest.approx(5.0)
    assert ei.value.reason is surgewall.RejectReason.OPEN
    assert ei.value.breaker == "test"
    assert isinstance(ei.value, surgewall.SurgewallError)
    clock.advance(2.0)
    assert breaker.retry_after == pytest.approx(3.0)
    m = breaker.metrics()
    assert (m.failures, m.rejected_open, m.state) == (4, 1, State.OPEN)
    assert m.transitions == {(State.CLOSED, State.OPEN): 1}


def test_half_open_probes_close_it_again(breaker: Breaker, clock: MockClock) -> None:
    trip(breaker)
    clock.advance(5.0)
    assert breaker.call(lambda: "a") == "a"
    assert breaker.state is State.HALF_OPEN
    assert breaker.call(lambda: "b") == "b"
    assert breaker.metrics().state is State.CLOSED


def test_context_manager_records_success_and_failure(breaker: Breaker) -> None:
    with breaker:
        pass
    with pytest.raises(Boom):
        with breaker:
            raise Boom()
    m = breaker.metrics()
    assert (m.successes, m.failures) == (1, 1)


def test_nested_context_managers_record_each_permit(breaker: Breaker) -> None:
    with breaker as outer:
        with breaker as inner:
            assert inner is not outer
        assert inner.done and not outer.done
    assert outer.done
    assert breaker.metrics().successes == 2


def test_explicit_permits(breaker: Breaker) -> None:
    p = breaker.acquire()
    assert p.success() is Recorded.COUNTED
    with pytest.raises(surgewall.PermitError):
        p.failure()
    breaker.acquire().failure()
    breaker.acquire().ignore()
    with breaker.acquire() as p2:
        pass
    assert p2.done
    m = breaker.metrics()
    assert (m.successes, m.failures, m.ignored) == (2, 1, 1)


def test_permit_context_manager_classifies_exceptions(breaker: Breaker) -> None:
    with pytest.raises(Boom):
        with breaker.acquire():
            raise Boom()
    assert breaker.metrics().failures == 1


def test_late_result_after_reset(breaker: Breaker) -> None:
    p = breaker.acquire()
    breaker.reset()
    assert p.failure() is Recorded.LATE
    m = breaker.metrics()
    assert (m.late_results, m.failures) == (1, 0)


def test_try_acquire_returns_none_when_open(breaker: Breaker) -> None:
    breaker.force_open()
    assert breaker.try_acquire() is None
    assert breaker.retry_after == math.inf
    with pytest.raises(surgewall.CircuitOpenError) as ei:
        breaker.acquire()
    assert ei.value.reason is surgewall.RejectReason.FORCED_OPEN
    assert math.isinf(ei.value.retry_after)


def test_manual_transitions(breaker: Breaker, clock: MockClock) -> None:
    breaker.force_open(seconds=2)
    assert breaker.metrics().state is State.FORCED_OPEN
    assert breaker.retry_after == pytest.approx(2.0)
    breaker.half_open()
    assert breaker.metrics().state is State.HALF_OPEN
    breaker.reset()
    assert breaker.metrics().state is State.CLOSED
    with pytest.raises(surgewall.InvalidTransitionError):
        breaker.half_open()
    breaker.disable()
    trip(breaker, 6)
    assert breaker.metrics().state is State.DISABLED
    assert breaker.metrics().failures == 0
    breaker.metrics_only()
    trip(breaker, 6)
    assert breaker.metrics().state is State.METRICS_ONLY
    assert breaker.metrics().failures == 6
    breaker.close()
    assert breaker.metrics().state is State.CLOSED
    assert str(State.HALF_OPEN) == "half_open"


def test_a_manual_open_waits_the_open_wait_then_probes(breaker: Breaker, clock: MockClock) -> None:
    breaker.open()
    m = breaker.metrics()
    assert (m.state, m.consecutive_opens) == (State.OPEN, 1)
    with pytest.raises(surgewall.CircuitOpenError) as ei:
        breaker.acquire()
    assert ei.value.reason is surgewall.RejectReason.OPEN  # not FORCED_OPEN
    assert ei.value.retry_after == pytest.approx(5.0)
    breaker.open()  # already OPEN: a no-op
    assert breaker.metrics().generation == m.generation
    clock.advance(5.0)
    p = breaker.acquire()
    assert breaker.metrics().state is State.HALF_OPEN
    p.success()
    q = breaker.acquire()
    q.success()
    assert breaker.metrics().state is State.CLOSED


def test_a_manual_open_per_key(clock: MockClock) -> None:
    kb = surgewall.KeyedBreaker(
        failure_rate=0.5, minimum_calls=4, open_for=2.0, half_open_calls=1, clock=clock
    )
    kb.open("GET /a")
    with pytest.raises(surgewall.CircuitOpenError) as ei:
        kb.acquire("GET /a")
    assert ei.value.reason is surgewall.RejectReason.OPEN
    assert ei.value.retry_after == pytest.approx(2.0)
    kb.acquire("GET /b").success()  # other keys untouched
    clock.advance(2.0)
    kb.acquire("GET /a").success()
    assert kb.state("GET /a") is State.CLOSED
    kb.free()


def test_exclude_is_ignored_include_limits_and_predicate(clock: MockClock) -> None:
    b = Breaker(
        "policy",
        minimum_calls=2,
        window=CountWindow(10),
        include=(Boom, NotOurs, KeyError),
        exclude=NotOurs,
        is_failure=lambda e: not (isinstance(e, Boom) and "soft" in str(e)),
        clock=clock,
    )
    for exc in (NotOurs(), ValueError(), Boom("soft"), KeyError()):
        with pytest.raises(type(exc)):
            b.call(lambda: (_ for _ in ()).throw(exc))
    m = b.metrics()
    assert (m.failures, m.ignored) == (1, 3)
    b.free()


def test_base_exceptions_are_ignored(breaker: Breaker) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupt)
    assert breaker.metrics().ignored == 1
    assert breaker.metrics().failures == 0


def test_fallback_on_rejection(clock: MockClock) -> None:
    seen: List[surgewall.CircuitOpenError] = []

    def fb(e: surgewall.CircuitOpenError) -> str:
        seen.append(e)
        return "cached"

    b = Breaker("fb", fallback=fb, clock=clock)

    @b
    def get() -> str:
        return "live"

    assert get() == "live"
    b.force_open()
    assert get() == "cached"
    assert b.call(lambda: "live") == "cached"
    assert len(seen) == 2 and seen[0].reason is surgewall.RejectReason.FORCED_OPEN
    b.free()


def test_fallback_payload_round_trips(clock: MockClock) -> None:
    b = Breaker(
        "payload",
        fallback_payload=surgewall.FallbackPayload(b'{"ok":false}', "application/json"),
        clock=clock,
    )
    assert b.fallback_payload == surgewall.FallbackPayload(b'{"ok":false}', "application/json")
    b.free()
    plain = Breaker("plain", clock=clock)
    assert plain.fallback_payload is None
    plain.free()


def test_slow_calls_with_explicit_durations(clock: MockClock) -> None:
    b = Breaker(
        "slow",
        failure_rate=None,
        slow_call_rate=0.5,
        slow_call_duration=0.1,
        minimum_calls=2,
        window=CountWindow(2),
        clock=clock,
    )
    b.acquire().success(duration=0.2)
    b.acquire().success(duration=0.3)
    assert b.state is State.OPEN
    assert b.metrics().slow_calls == 2
    b.free()


def test_slow_calls_timed_by_the_library_on_the_mock_clock(clock: MockClock) -> None:
    b = Breaker(
        "timed",
        failure_rate=None,
        slow_call_rate=1.0,
        slow_call_duration=1.0,
        minimum_calls=1,
        window=CountWindow(1),
        clock=clock,
    )
    b.call(clock.advance, 2.0)
    assert b.state is State.OPEN
    b.free()


def test_consecutive_failures_rule(clock: MockClock) -> None:
    b = Breaker("streak", failure_rate=None, consecutive_failures=3, clock=clock)
    trip(b, 2)
    b.call(lambda: None)
    trip(b, 2)
    assert b.state is State.CLOSED
    trip(b, 1)
    assert b.metrics().state is State.OPEN
    b.free()


def test_set_failure_rate_threshold_returns_the_old_one(breaker: Breaker) -> None:
    assert breaker.set_failure_rate_threshold(0.9) == pytest.approx(0.5)
    assert breaker.metrics().failure_rate_threshold == pytest.approx(0.9)


def test_name_id_and_repr(breaker: Breaker) -> None:
    assert breaker.name == "test"
    assert breaker.id > 0
    assert "closed" in repr(breaker)


def test_free_is_idempotent_and_later_use_is_a_clear_error(clock: MockClock) -> None:
    b = Breaker("gone", clock=clock)

    @b
    def f() -> int:
        return 1

    p = b.acquire()
    b.free()
    b.free()
    assert b.freed
    with pytest.raises(surgewall.ClosedError):
        _ = b.state
    with pytest.raises(surgewall.ClosedError):
        f()
    with pytest.raises(surgewall.ClosedError):
        b.call(f)
    with pytest.raises(surgewall.ClosedError):
        p.success()
    assert "freed" in repr(b)


def test_unicode_names(clock: MockClock) -> None:
    b = Breaker("paiement-€-支付", clock=clock)
    assert b.name == "paiement-€-支付"
    b.free()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["s", "f", "i"]), max_size=60), st.integers(1, 8))
def test_no_lost_counts_in_metrics_only(outcomes: List[str], window: int) -> None:
    clock = MockClock()
    b = Breaker("prop", minimum_calls=1, window=CountWindow(window), clock=clock)
    b.metrics_only()
    code = {"s": Outcome.SUCCESS, "f": Outcome.FAILURE, "i": Outcome.IGNORED}
    for o in outcomes:
        b.acquire().record(code[o])
    m = b.metrics()
    assert m.successes == outcomes.count("s")
    assert m.failures == outcomes.count("f")
    assert m.ignored == outcomes.count("i")
    counted = [o for o in outcomes if o != "i"][-window:] if window else []
    assert m.window.calls == len(counted)
    assert m.window.failures == counted.count("f")
    b.free()
    clock.free()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["s", "f", "i"]), max_size=40), st.integers(1, 5))
def test_consecutive_failures_matches_a_model(outcomes: List[str], k: int) -> None:
    clock = MockClock()
    b = Breaker("model", failure_rate=None, consecutive_failures=k, clock=clock)
    streak = 0
    code = {"s": Outcome.SUCCESS, "f": Outcome.FAILURE, "i": Outcome.IGNORED}
    for o in outcomes:
        p = b.try_acquire()
        if streak >= k:
            assert p is None and b.state is State.OPEN
            break
        assert p is not None
        p.record(code[o])
        streak = 0 if o == "s" else streak + (o == "f")
    else:
        assert (b.state is State.OPEN) == (streak >= k)
    b.free()
    clock.free()


def test_what_a_user_reads_back_issue_16(breaker: Breaker, clock: MockClock) -> None:
    # Rates are absent (None) below minimum_calls, not a 0.0 that reads as healthy.
    for _ in range(3):
        breaker.call(lambda: None)
    m = breaker.metrics()
    assert (m.minimum_calls, m.window.calls, m.window.failure_rate) == (4, 3, None)
    assert m.window.slow_rate is None and m.last_window.failure_rate is None
    trip(breaker, 2)  # 2 failures of 5: 40 %, then 3 of 6: 50 % trips
    trip(breaker, 1)
    m = breaker.metrics()
    assert m.state is State.OPEN and m.window.failure_rate is None
    assert (m.last_window.calls, m.last_window.failures) == (6, 3)
    assert m.last_window.failure_rate == pytest.approx(0.5)
    # Half-open: the probes are the window; a full half-open hints a short wait (open_for / 10)
    # while the breaker's own retry_after reads 0.
    clock.advance(5.0)
    p1, p2 = breaker.acquire(), breaker.acquire()
    with pytest.raises(surgewall.CircuitOpenError) as ei:
        breaker.acquire()
    assert ei.value.retry_after == pytest.approx(0.5)
    assert breaker.retry_after == 0.0
    p1.success()
    m = breaker.metrics()
    assert (m.state, m.window.calls, m.window.failure_rate) == (State.HALF_OPEN, 1, 0.0)
    p2.failure()  # 1 of 2 probes failed: back to OPEN, the probes' episode is the last window
    m = breaker.metrics()
    assert m.state is State.OPEN
    assert (m.last_window.calls, m.last_window.failures) == (2, 1)
    # Forcing open a FORCED_OPEN breaker is not a transition; a duration moves the deadline.
    breaker.force_open()
    before = breaker.metrics()
    breaker.force_open()
    breaker.force_open(2.0)
    after = breaker.metrics()
    assert (after.generation, after.transitions) == (before.generation, before.transitions)
    assert breaker.retry_after == pytest.approx(2.0)
