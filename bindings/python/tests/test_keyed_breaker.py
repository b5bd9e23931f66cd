"""KeyedBreaker: one library breaker per key, through every public entry point."""

from __future__ import annotations

import asyncio
import faulthandler
import math
import threading
from typing import Iterator, List

import pytest

import surgewall
from surgewall import (
    OVERFLOW_KEY,
    CountWindow,
    EventKind,
    KeyedBreaker,
    MockClock,
    Outcome,
    Recorded,
    State,
)


class Boom(Exception):
    pass


class NotOurs(Exception):
    pass


def fail() -> None:
    raise Boom("boom")


def trip(kb: KeyedBreaker, key: surgewall.Key, n: int = 2) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            kb.call(key, fail)


@pytest.fixture
def kb(clock: MockClock) -> Iterator[KeyedBreaker]:
    """Trips a key after 2 consecutive failures; open 5 s; 1 probe decides."""
    k = KeyedBreaker(
        "hosts",
        consecutive_failures=2,
        failure_rate=None,
        open_for=5.0,
        half_open_calls=1,
        idle_ttl=10,
        clock=clock,
    )
    yield k
    k.free()


# ---- per-key breakers ----


def test_one_failing_key_opens_while_the_others_pass(kb: KeyedBreaker) -> None:
    trip(kb, "bad.example.com")
    with pytest.raises(surgewall.CircuitOpenError) as ei:
        kb.call("bad.example.com", lambda: "never")
    assert ei.value.key == "bad.example.com"
    assert ei.value.reason is surgewall.RejectReason.OPEN
    assert ei.value.retry_after == pytest.approx(5.0)
    assert "'bad.example.com'" in str(ei.value) and "'hosts'" in str(ei.value)
    for host in ("a.example.com", "b.example.com", 7):
        assert kb.call(host, lambda: "ok") == "ok"
    assert kb.state("bad.example.com") is State.OPEN
    assert kb.state("a.example.com") is State.CLOSED
    m = kb.metrics()
    assert (m.keys, m.created, m.failures, m.rejected_open) == (4, 4, 2, 1)
    assert m.transitions == {(State.CLOSED, State.OPEN): 1}


def test_an_open_key_probes_after_open_for_and_closes_on_success(
    kb: KeyedBreaker, clock: MockClock
) -> None:
    kb.call(42, lambda: None)
    first = kb.get(42)
    assert first is not None
    trip(kb, 42)
    clock.advance(5)
    p = kb.acquire(42)  # the one probe
    assert kb.state(42) is State.HALF_OPEN
    assert kb.try_acquire(42) is None  # its probe slot is taken
    with pytest.raises(surgewall.CircuitOpenError) as ei:
        kb.acquire(42)
    assert ei.value.reason is surgewall.RejectReason.HALF_OPEN_FULL
    assert p.success() is Recorded.COUNTED
    assert kb.state(42) is State.CLOSED
    s = kb.get(42)
    # three transitions on from the key's first generation (a fresh key's is its own, not 1)
    assert s is not None and s.generation == first.generation + 3 and s.consecutive_opens == 0


def test_str_bytes_and_int_keys(kb: KeyedBreaker) -> None:
    kb.call("é", lambda: None)
    assert kb.key_of("é") == kb.key_of("é".encode("utf-8"))
    assert kb.key_of(5) == 5
    assert kb.key_of("x") != kb.key_of("y")
    assert kb.key_of("é") in kb.snapshot()
    assert "é" in kb and "é".encode() in kb and "never-used" not in kb
    assert kb.get("never-used") is None and kb.state("never-used") is None
    assert len(kb) == 1  # get and `in` never create a key
    # a str key and the int it hashes to are the same key
    kb.call(kb.key_of("é"), lambda: None)
    assert len(kb) == 1
    assert kb.get("é") == kb.get(kb.key_of("é"))


def test_exactly_one_breaker_per_key_when_threads_race(clock: MockClock) -> None:
    kb = KeyedBreaker("race", minimum_calls=128, clock=clock)
    barrier = threading.Barrier(8)
    errors: List[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for i in range(2000):
                kb.call(f"user-{i % 50}", lambda: None)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    m = kb.metrics()
    assert (m.keys, m.created) == (50, 50)
    # 320 calls a key: a full compact bucket halves itself and keeps at least 128 (an
    # approximate window, see core/src/breaker/keyed.rs), on one breaker per key
    assert all(s.window.calls >= 128 for s in kb)
    kb.free()


def test_iterating_while_other_threads_create_keys_does_not_deadlock() -> None:
    # The iteration must not run Python under a library lock: a thread making a new key
    # holds the GIL while it waits for that lock. (A cffi callback under the library's
    # iteration hangs this test, main thread included: the watchdog ends the run with the
    # stacks instead.)
    faulthandler.dump_traceback_later(120, exit=True)
    kb = KeyedBreaker("iter", max_keys=100_000)
    stop = threading.Event()

    def creator(base: int) -> None:
        i = 0
        while not stop.is_set() and i < 20_000:
            kb.call(base + i, lambda: None)
            i += 1

    threads = [threading.Thread(target=creator, args=(n << 32,), daemon=True) for n in range(2)]
    for t in threads:
        t.start()
    seen = 0
    for _ in range(20):
        seen = max(seen, len(kb.snapshot()))
    stop.set()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a key-making thread is stuck"
    faulthandler.cancel_dump_traceback_later()
    assert len(kb.snapshot()) == kb.metrics().keys >= seen
    kb.free()


# ---- the failure policy, fallback, decorator, permits ----


def test_failure_policy_include_exclude_predicate_and_base_exceptions(clock: MockClock) -> None:
    kb = KeyedBreaker(
        "policy",
        consecutive_failures=1,
        failure_rate=None,
        exclude=NotOurs,
        is_failure=lambda e: "transient" not in str(e),
        clock=clock,
    )
    with pytest.raises(NotOurs):
        kb.call("k", lambda: (_ for _ in ()).throw(NotOurs()))
    with pytest.raises(Boom):
        kb.call("k", lambda: (_ for _ in ()).throw(Boom("transient")))
    with pytest.raises(KeyboardInterrupt):
        kb.call("k", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert kb.state("k") is State.CLOSED
    assert kb.metrics().ignored == 3
    with pytest.raises(Boom):
        kb.call("k", fail)
    assert kb.state("k") is State.OPEN
    kb.free()


def test_fallback_serves_rejections_only(clock: MockClock) -> None:
    kb = KeyedBreaker(
        "fb",
        consecutive_failures=1,
        fallback=lambda e: f"cached for {e.key!r}",
        fallback_payload=surgewall.FallbackPayload(b"{}", "application/json"),
        clock=clock,
    )
    with pytest.raises(Boom):  # the call's own error is not the fallback's business
        kb.call("k", fail)
    assert kb.call("k", lambda: "live") == "cached for 'k'"
    assert kb.fallback_payload == surgewall.FallbackPayload(b"{}", "application/json")
    kb.free()


def test_decorator_picks_the_key_from_the_arguments(kb: KeyedBreaker) -> None:
    calls: List[str] = []

    @kb.decorate(lambda host, path="/": host)
    def fetch(host: str, path: str = "/") -> str:
        """Fetches."""
        calls.append(f"{host}{path}")
        if host == "down":
            raise Boom()
        return "200"

    assert fetch("up", path="/x") == "200"
    assert fetch.__name__ == "fetch" and fetch.__doc__ == "Fetches."
    for _ in range(2):
        with pytest.raises(Boom):
            fetch("down")
    with pytest.raises(surgewall.CircuitOpenError):
        fetch("down")
    assert calls == ["up/x", "down/", "down/"]
    assert kb.state("up") is State.CLOSED

    @kb.decorate("fixed")
    def ping() -> int:
        return 1

    assert ping() == 1 and kb.get("fixed") is not None


def test_permits_report_once_and_context_manager_classifies(kb: KeyedBreaker) -> None:
    p = kb.acquire("k")
    assert p.key == "k" and not p.done
    assert p.failure() is Recorded.COUNTED
    with pytest.raises(surgewall.PermitError):
        p.success()
    with pytest.raises(Boom):
        with kb.acquire("k"):
            raise Boom()
    assert kb.state("k") is State.OPEN
    with pytest.raises(TypeError):
        kb.acquire("other").record(1)  # type: ignore[arg-type]


def test_ignore_gives_a_probe_slot_back(kb: KeyedBreaker, clock: MockClock) -> None:
    trip(kb, "k")
    clock.advance(5)
    p = kb.acquire("k")
    assert kb.try_acquire("k") is None
    p.ignore()
    q = kb.acquire("k")
    q.success()
    assert kb.state("k") is State.CLOSED


def test_slow_calls_by_duration(clock: MockClock) -> None:
    kb = KeyedBreaker(
        "slow",
        failure_rate=None,
        slow_call_rate=0.5,
        slow_call_duration=1.0,
        minimum_calls=2,
        window=CountWindow(calls=4),
        clock=clock,
    )
    kb.acquire("k").success(duration=2.0)
    kb.acquire("k").success(duration=3.0)
    assert kb.state("k") is State.OPEN
    with pytest.raises(surgewall.ConfigError):
        kb.acquire("j").success(duration=-1)
    kb.free()


def test_a_result_after_its_key_was_evicted_is_late(kb: KeyedBreaker, clock: MockClock) -> None:
    kb.call("k", lambda: None)
    stale = kb.acquire("k")
    stale_record = stale.token, stale.start_ns, stale.slot
    stale.ignore()  # the key is idle again
    kb.sweep()
    clock.advance(11)
    assert kb.sweep() == 1
    assert "k" not in kb
    late = surgewall.keyed_breaker.KeyedBreakerPermit(kb, "k", *stale_record)
    assert late.success() is Recorded.LATE
    assert kb.metrics().late_results == 1


# ---- the key cap ----


def test_the_cap_refuses_new_keys_with_a_registry_full_error(clock: MockClock) -> None:
    kb = KeyedBreaker("cap", max_keys=2, clock=clock)
    kb.call("a", lambda: None)
    kb.call("b", lambda: None)
    with pytest.raises(surgewall.RegistryFullError) as ei:
        kb.call("c", lambda: None)
    assert ei.value.key == "c" and "'c'" in str(ei.value)
    assert kb.call("a", lambda: 1) == 1  # held keys still pass
    m = kb.metrics()
    assert (m.keys, m.max_keys, m.refused_keys) == (2, 2, 1)
    kb.free()


def test_shared_overflow_routes_new_keys_to_one_breaker(clock: MockClock) -> None:
    kb = KeyedBreaker(
        "ovf", max_keys=1, overflow="shared", consecutive_failures=2, failure_rate=None, clock=clock
    )
    kb.call("a", lambda: None)
    with pytest.raises(Boom):
        kb.call("b", fail)
    with pytest.raises(Boom):
        kb.call("c", fail)  # b and c share the overflow breaker: it trips
    with pytest.raises(surgewall.CircuitOpenError):
        kb.call("d", lambda: None)
    assert kb.state("a") is State.CLOSED
    assert kb.state(OVERFLOW_KEY) is State.OPEN
    assert OVERFLOW_KEY not in kb.snapshot()
    assert kb.metrics().overflowed >= 3
    kb.reset(OVERFLOW_KEY)
    assert kb.call("e", lambda: 5) == 5
    kb.free()


# ---- eviction and events ----


def test_sweep_evicts_idle_closed_keys_only(kb: KeyedBreaker, clock: MockClock) -> None:
    sub = surgewall.events()
    kb.call("idle", lambda: None)
    trip(kb, "open")
    kb.force_open("forced")
    kb.disable("disabled")
    assert kb.sweep() == 0  # the first look marks them idle
    clock.advance(11)
    assert kb.sweep() == 1
    assert "idle" not in kb
    assert {kb.state(k) for k in ("open", "forced", "disabled")} == {
        State.OPEN,
        State.FORCED_OPEN,
        State.DISABLED,
    }
    evicted = [e.key for e in sub if e.kind is EventKind.EVICTED and e.source == kb.id]
    sub.free()
    assert evicted == [kb.key_of("idle")]
    assert kb.metrics().evicted == 1
    kb.call("idle", lambda: None)  # comes back fresh
    assert kb.metrics().created == 5


def test_transitions_are_published_with_their_key(kb: KeyedBreaker, clock: MockClock) -> None:
    sub = surgewall.events()
    trip(kb, "api")
    clock.advance(5)
    kb.call("api", lambda: None)
    kb.force_open(9)
    events = [e for e in sub if e.source == kb.id and e.kind is EventKind.KEYED_TRANSITION]
    sub.free()
    api = kb.key_of("api")
    assert [(e.key, e.from_state, e.to_state, e.reason) for e in events] == [
        (api, State.CLOSED, State.OPEN, surgewall.TransitionReason.CONSECUTIVE_FAILURES),
        (api, State.OPEN, State.HALF_OPEN, surgewall.TransitionReason.WAIT_OVER),
        (api, State.HALF_OPEN, State.CLOSED, surgewall.TransitionReason.PROBES_SUCCEEDED),
        (9, State.CLOSED, State.FORCED_OPEN, surgewall.TransitionReason.MANUAL),
    ]
    first = events[0].generation
    assert [e.generation for e in events[:3]] == [first, first + 1, first + 2]


# ---- manual transitions ----


def test_manual_transitions(kb: KeyedBreaker, clock: MockClock) -> None:
    kb.force_open("k", seconds=2)
    with pytest.raises(surgewall.CircuitOpenError) as ei:
        kb.call("k", lambda: None)
    assert ei.value.reason is surgewall.RejectReason.FORCED_OPEN
    kb.force_open("forever")
    assert kb.get("forever").retry_after == math.inf  # type: ignore[union-attr]
    clock.advance(2)
    kb.acquire("k").success()  # the forced wait ended: it probed and closed
    assert kb.state("k") is State.CLOSED
    with pytest.raises(surgewall.InvalidTransitionError):
        kb.half_open("k")
    kb.metrics_only("m")
    trip(kb, "m", 5)
    assert kb.state("m") is State.METRICS_ONLY
    kb.close("m")
    assert kb.state("m") is State.CLOSED
    kb.disable("d")
    trip(kb, "d", 5)
    assert kb.state("d") is State.DISABLED
    kb.reset("d")
    assert kb.state("d") is State.CLOSED
    trip(kb, "h")
    kb.half_open("h")
    assert kb.state("h") is State.HALF_OPEN


# ---- asyncio ----


def test_async_calls_and_decorator(kb: KeyedBreaker) -> None:
    @kb.decorate(lambda user: user)
    async def load(user: str) -> str:
        await asyncio.sleep(0)
        if user == "bad":
            raise Boom()
        return user.upper()

    async def main() -> None:
        assert await load("ann") == "ANN"
        for _ in range(2):
            with pytest.raises(Boom):
                await load("bad")
        with pytest.raises(surgewall.CircuitOpenError):
            await load("bad")
        task = asyncio.ensure_future(kb.call_async("slow", asyncio.sleep, 10))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert kb.state("ann") is State.CLOSED and kb.state("bad") is State.OPEN
    assert kb.metrics().ignored == 1  # the cancelled call


def test_async_fallback(clock: MockClock) -> None:
    kb = KeyedBreaker("afb", fallback=lambda e: "cached", clock=clock)
    kb.force_open("k")

    async def live() -> str:
        return "live"

    assert asyncio.run(kb.call_async("k", live)) == "cached"
    assert asyncio.run(kb.call_async("other", live)) == "live"
    kb.free()


# ---- overrides ----


def test_overrides_change_only_what_they_set(clock: MockClock) -> None:
    kb = KeyedBreaker(
        "ovr",
        consecutive_failures=5,
        failure_rate=None,
        open_for=30,
        overrides={"fragile": {"consecutive_failures": 1}, 7: {"open_for": 1}},
        clock=clock,
    )
    trip(kb, "fragile", 1)
    assert kb.state("fragile") is State.OPEN
    assert kb.get("fragile").retry_after == pytest.approx(30)  # type: ignore[union-attr]
    trip(kb, "sturdy", 4)
    assert kb.state("sturdy") is State.CLOSED
    trip(kb, 7, 5)
    assert kb.get(7).retry_after == pytest.approx(1)  # type: ignore[union-attr]
    kb.free()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"overrides": {"a": {"failure_rate": math.nan}}}, "overrides['a'].failure_rate"),
        ({"overrides": {"a": {"clock": None}}}, "overrides['a'].clock"),
        ({"overrides": {"a": {"fallback": None}}}, "overrides['a'].fallback"),
        ({"overrides": {"a": {"colour": "red"}}}, "overrides['a'].colour"),
        ({"overrides": {"a": 3}}, "overrides"),
        ({"overrides": {1.5: {}}}, "overrides"),
        ({"overrides": {-1: {}}}, "overrides"),
        ({"overrides": {"a": {"minimum_calls": 1000}}}, "minimum_calls"),
        ({"minimum_calls": 1000}, "minimum_calls"),
        ({"failure_rate": -0.1}, "failure_rate"),
        ({"open_for": math.inf}, "open_for"),
        ({"max_keys": 0}, "max_keys"),
        ({"overflow": "spill"}, "overflow"),
        ({"overflow": "shared"}, "max_keys"),
        ({"idle_ttl": -1}, "idle_ttl"),
        ({"idle_ttl": math.nan}, "idle_ttl"),
        ({"is_failure": 3}, "is_failure"),
        ({"include": (int,)}, "include"),
    ],
)
def test_bad_configuration_names_the_field(kwargs: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(surgewall.ConfigError) as ei:
        KeyedBreaker("bad", **kwargs)
    assert field in ei.value.field or field in str(ei.value), (ei.value.field, str(ei.value))


def test_an_override_beyond_the_keyed_layout_names_the_key() -> None:
    with pytest.raises(surgewall.ConfigError) as ei:
        KeyedBreaker("bad", overrides={"big": {"window": CountWindow(calls=10_000)}})
    assert "override" in str(ei.value) and "window" in str(ei.value)


# ---- bad input at call time ----


@pytest.mark.parametrize("key", [True, 1.5, None, ["a"], -1, 1 << 64])
def test_bad_keys_are_refused_by_name(kb: KeyedBreaker, key: object) -> None:
    for op in (kb.acquire, kb.get, kb.key_of, kb.force_open):
        with pytest.raises((TypeError, ValueError)) as ei:
            op(key)  # type: ignore[arg-type]
        assert type(key).__name__ in str(ei.value) or repr(key) in str(ei.value)
    assert len(kb) == 0


def test_a_str_that_is_not_utf8_is_refused(kb: KeyedBreaker) -> None:
    with pytest.raises(UnicodeEncodeError):
        kb.call("\ud800", lambda: None)
    assert len(kb) == 0


def test_every_method_of_a_freed_keyed_breaker_raises_closed(clock: MockClock) -> None:
    kb = KeyedBreaker("gone", clock=clock)

    @kb.decorate("k")
    def f() -> int:
        return 1

    p = kb.acquire("k")
    kb.free()
    kb.free()  # idempotent
    assert kb.freed and "freed" in repr(kb)
    for op in (
        lambda: kb.call("k", lambda: None),
        lambda: kb.acquire("k"),
        lambda: kb.get("k"),
        lambda: kb.key_of("k"),
        lambda: kb.snapshot(),
        lambda: kb.sweep(),
        lambda: kb.metrics(),
        lambda: kb.force_open("k"),
        lambda: kb.id,
        lambda: p.success(),
        f,
    ):
        with pytest.raises(surgewall.ClosedError):
            op()


def test_a_call_that_frees_its_keyed_breaker_does_not_crash(clock: MockClock) -> None:
    kb = KeyedBreaker("self-free", clock=clock)

    def free_and_fail() -> None:
        kb.free()
        raise Boom()

    with pytest.raises(Boom):
        kb.call("k", free_and_fail)
    assert kb.freed
    with pytest.raises(surgewall.ClosedError):
        kb.call("k", lambda: None)


def test_the_docstring_examples_run() -> None:
    import doctest

    import surgewall.keyed_breaker

    result = doctest.testmod(surgewall.keyed_breaker)
    assert result.attempted > 0 and result.failed == 0
