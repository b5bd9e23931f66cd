"""The Python runner of the shared semantic scenarios (bindings/scenarios.txt).

It must agree with the Rust runner (core/tests/scenarios.rs): same file, same verdicts."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import surgewall
from surgewall import Breaker, CountWindow, MockClock, OpenBackoff, Outcome, Recorded, TimeWindow
from surgewall.retry import Backoff

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios.txt"


@dataclasses.dataclass
class Scenario:
    name: str
    lines: List[Tuple[int, List[str]]]


def parse(text: str) -> List[Scenario]:
    out: List[Scenario] = []
    cur: Optional[Scenario] = None
    for n, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "scenario":
            assert cur is None, f"line {n}: scenario inside scenario"
            cur = Scenario(words[1], [])
        elif words[0] == "end":
            assert cur is not None, f"line {n}: end without scenario"
            out.append(cur)
            cur = None
        else:
            assert cur is not None, f"line {n}: command outside a scenario"
            cur.lines.append((n, words))
    assert cur is None, "unterminated scenario"
    return out


def kv(words: List[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for w in words:
        k, _, v = w.partition("=")
        out[k] = v
    return out


def ms(v: str) -> float:
    return int(v) / 1000


def configure(words: List[str], clock: MockClock) -> Breaker:
    o = kv(words)
    window: "TimeWindow | CountWindow" = TimeWindow()
    if "count_window" in o:
        window = CountWindow(calls=int(o["count_window"]))
    if "time_window_ms" in o:
        window = TimeWindow(seconds=ms(o["time_window_ms"]), buckets=int(o["buckets"]))
    kwargs: Dict[str, object] = {"window": window, "clock": clock}
    if "failure_rate" in o:
        kwargs["failure_rate"] = float(o["failure_rate"])
    if "no_failure_rate" in o:
        kwargs["failure_rate"] = None
    if "slow_rate" in o:
        kwargs["slow_call_rate"] = float(o["slow_rate"])
        kwargs["slow_call_duration"] = ms(o["slow_ms"])
    if "consecutive_failures" in o:
        kwargs["consecutive_failures"] = int(o["consecutive_failures"])
    if "minimum_calls" in o:
        kwargs["minimum_calls"] = int(o["minimum_calls"])
    if "open_for_ms" in o:
        kwargs["open_for"] = ms(o["open_for_ms"])
    if "backoff" in o:
        kwargs["open_backoff"] = OpenBackoff(float(o["backoff"]), ms(o["max_open_ms"]), 0.0)
    if "half_open_calls" in o:
        kwargs["half_open_calls"] = int(o["half_open_calls"])
    if "half_open_max_ms" in o:
        kwargs["half_open_max_duration"] = ms(o["half_open_max_ms"])
    return Breaker("scenario", **kwargs)  # type: ignore[arg-type]


OUTCOMES = {"success": Outcome.SUCCESS, "failure": Outcome.FAILURE, "ignored": Outcome.IGNORED}
REASONS = {
    "open": surgewall.RejectReason.OPEN,
    "half_open": surgewall.RejectReason.HALF_OPEN_FULL,
    "forced_open": surgewall.RejectReason.FORCED_OPEN,
}


def metric(m: surgewall.BreakerMetrics, key: str) -> str:
    values = {
        "state": m.state.label,
        "generation": m.generation,
        "successes": m.successes,
        "failures": m.failures,
        "ignored": m.ignored,
        "slow": m.slow_calls,
        "rejected_open": m.rejected_open,
        "rejected_half_open": m.rejected_half_open,
        "late": m.late_results,
        "window_calls": m.window.calls,
        "window_failures": m.window.failures,
        "consecutive_opens": m.consecutive_opens,
        "last_window_calls": m.last_window.calls,
        "last_window_failures": m.last_window.failures,
        "minimum_calls": m.minimum_calls,
        "transitions": sum(m.transitions.values()),
        # math.inf (a forced open without deadline) is never compared: -1 keeps it apart.
        "retry_after_ms": -1 if math.isinf(m.retry_after) else round(m.retry_after * 1000),
    }
    if key not in values:
        raise AssertionError(f"unknown metric {key}")
    return str(values[key])


class Throttled(Exception):
    """A retryable failure, with a server's Retry-After (seconds) when given."""

    def __init__(self, retry_after: Optional[float]) -> None:
        super().__init__("503")
        if retry_after is not None:
            self.retry_after = retry_after


@dataclasses.dataclass
class Policies:
    """The SLO, retry and budget commands' objects (issue 17)."""

    clock: MockClock
    breaker: Breaker
    slo: Optional[surgewall.SLO] = None
    retry: Optional[surgewall.Retry] = None
    budget: Optional[surgewall.RetryBudget] = None
    slept: List[float] = dataclasses.field(default_factory=list)
    bulkhead: Optional[surgewall.Bulkhead] = None
    permits: List[surgewall.BulkheadPermit] = dataclasses.field(default_factory=list)

    def make_slo(self, words: List[str]) -> surgewall.SLO:
        o = kv(words)

        def pair(v: str) -> surgewall.BurnWindows:
            lo, sh, t = v.split("/")
            return surgewall.BurnWindows(ms(lo), ms(sh), float(t))

        return surgewall.SLO(
            float(o["objective"]),
            window=ms(o["window_ms"]),
            fast_burn=pair(o["fast"]),
            slow_burn=pair(o["slow"]),
            burn_bucket=ms(o["burn_bucket_ms"]) if "burn_bucket_ms" in o else None,
            recovery_factor=float(o["recovery"]) if "recovery" in o else None,
            min_open=ms(o["min_open_ms"]) if "min_open_ms" in o else None,
            breaker=self.breaker if "link" in o else None,
            clock=self.clock,
        )

    def make_retry(self, words: List[str]) -> surgewall.Retry:
        """A retry policy from the scenario's keys; a key left out is not passed, so Python's
        default applies (it must be the core's). The retry sleeps on the mock clock by itself
        (issue 16: the clock is enough); ``before_sleep`` notes the delays."""
        o = kv(words)
        kwargs: Dict[str, Any] = {}
        if "max_attempts" in o:
            kwargs["max_attempts"] = int(o["max_attempts"])
        cap = ms(o["max_delay_ms"]) if "max_delay_ms" in o else None
        if "backoff" in o:
            kind, *args = o["backoff"].split(":")
            backoff: Backoff
            if kind == "none":
                backoff = surgewall.NoBackoff()
            elif kind == "constant":
                assert cap is None, "a Constant backoff has no cap to set"
                backoff = surgewall.Constant(ms(args[0]))
            elif kind == "linear":
                backoff = surgewall.Linear(ms(args[0]), ms(args[1]), max=cap)
            else:
                backoff = surgewall.Exponential(ms(args[0]), float(args[1]), max=cap)
            kwargs["backoff"] = backoff
        else:
            assert cap is None, "max_delay_ms needs a backoff"
        if "max_elapsed_ms" in o:
            kwargs["max_elapsed"] = ms(o["max_elapsed_ms"])
        if "max_retry_after_ms" in o:
            kwargs["max_retry_after"] = ms(o["max_retry_after_ms"])
        return surgewall.Retry(
            jitter="none",
            clock=self.clock,
            before_sleep=lambda info: self.slept.append(info.delay),
            **kwargs,
        )

    def step(self, words: List[str], at: str) -> bool:
        """Runs one of the policy commands; False when `words` is not one."""
        cmd, o = words[0], kv(words[1:])
        if cmd == "slo":
            if self.slo is not None:
                self.slo.free()
            self.slo = self.make_slo(words[1:])
        elif cmd == "slo_refused":
            with pytest.raises(surgewall.ConfigError) as ei:
                self.make_slo(words[2:])
            assert ei.value.field == words[1], f"{at}: {ei.value}"
        elif cmd == "record":
            assert self.slo is not None, at
            rounds = next((int(k[1:]) for k in o if k.startswith("x")), 1)
            good, bad = int(o.get("good", 0)), int(o.get("bad", 0))
            for _ in range(rounds):
                for _ in range(good):
                    self.slo.record(True)
                for _ in range(bad):
                    self.slo.record(False)
                if "every_ms" in o:
                    self.clock.advance(ms(o["every_ms"]))
        elif cmd == "tick":
            assert self.slo is not None, at
            self.slo.tick()
        elif cmd == "expect_slo":
            assert self.slo is not None, at
            m = self.slo.metrics()
            values = {
                "fast_long_calls": str(m.fast.long_calls),
                "fast_short_calls": str(m.fast.short_calls),
                "fast_burning": str(m.fast.burning).lower(),
                "slow_burning": str(m.slow.burning).lower(),
                "holding_breaker": str(m.holding_breaker).lower(),
                "burn_bucket_ms": str(round(m.burn_bucket * 1000)),
            }
            for k, v in o.items():
                assert values[k] == v, f"{at}: {k}: got {values[k]}, want {v}"
        elif cmd == "retry":
            if self.retry is not None:
                self.retry.free()
            self.retry = self.make_retry(words[1:])
        elif cmd == "retry_refused":
            with pytest.raises(surgewall.ConfigError) as refused:
                self.make_retry(words[2:])
            assert refused.value.field == words[1], f"{at}: {refused.value}"
        elif cmd == "run_retry":
            assert self.retry is not None, at
            ra = ms(o["retry_after_ms"]) if "retry_after_ms" in o else None
            self.slept.clear()
            before = self.clock.now_ns

            def attempt() -> None:
                raise Throttled(ra)

            with pytest.raises(surgewall.RetryError) as stopped:
                if o.get("guarded") == "true":  # each attempt through the breaker, aware of it
                    surgewall.guard(breaker=self.breaker, retry=self.retry).call(attempt)
                else:
                    self.retry.call(attempt)
            delays = ",".join(str(round(d * 1000)) for d in self.slept)
            assert delays == o["delays"], f"{at}: delays {delays}, want {o['delays']}"
            # The retry slept on the mock clock: exactly the delays it reported passed.
            assert self.clock.now_ns - before == sum(round(d * 1e9) for d in self.slept), at
            reason = stopped.value.reason
            assert reason is not None and reason.name.lower() == o["stop"], f"{at}: {reason}"
        elif cmd == "preview_retry":
            assert self.retry is not None, at
            delays = ",".join(str(round(d * 1000)) for d in self.retry.preview())
            assert delays == o["delays"], f"{at}: delays {delays}, want {o['delays']}"
        elif cmd == "bulkhead":
            if self.bulkhead is not None:
                self.bulkhead.free()
            self.bulkhead = surgewall.Bulkhead(
                "scenario", max_concurrent=int(o["max"]), max_wait=0.0, clock=self.clock
            )
            self.permits.clear()
        elif cmd == "bulkhead_take":
            assert self.bulkhead is not None, at
            if words[1:] == ["->", "full"]:
                with pytest.raises(surgewall.BulkheadFullError):
                    self.bulkhead.acquire(timeout=0)
            else:
                self.permits.append(self.bulkhead.acquire(timeout=0))
        elif cmd == "bulkhead_release":
            assert self.bulkhead is not None, at
            self.permits.pop().release()
        elif cmd == "bulkhead_resize":
            assert self.bulkhead is not None, at
            if words[2:] == ["->", "refused"]:
                with pytest.raises(surgewall.ConfigError) as ce:
                    self.bulkhead.set_max_concurrent(int(words[1]))
                assert ce.value.field == "max_concurrent", f"{at}: {ce.value}"
            else:
                self.bulkhead.set_max_concurrent(int(words[1]))
        elif cmd == "expect_bulkhead":
            assert self.bulkhead is not None, at
            bm = self.bulkhead.metrics()
            got = {
                "active": bm.active,
                "max_concurrent": bm.max_concurrent,
                "accepted": bm.accepted,
                "rejected": bm.rejected,
            }
            for k, v in o.items():
                assert str(got[k]) == v, f"{at}: {k}: got {got[k]}, want {v}"
        elif cmd == "budget":
            if self.budget is not None:
                self.budget.free()
            self.budget = surgewall.RetryBudget(
                float(o["ratio"]), float(o["floor"]), window=int(o["window_s"]), clock=self.clock
            )
        elif cmd == "try_retry":
            assert self.budget is not None, at
            asks = int(words[1][1:])
            granted = sum(self.budget.try_retry() for _ in range(asks))
            assert str(granted) == o["granted"], f"{at}: {granted} granted"
        elif cmd == "threshold_refused":
            t = kv(words[2:])
            with pytest.raises(surgewall.ConfigError) as ce:
                surgewall.ThresholdAdjuster(
                    self.breaker,
                    target_error_rate=float(t["target"]),
                    min_threshold=float(t["min"]),
                    max_threshold=float(t["max"]),
                    step=float(t["step"]),
                )
            assert ce.value.field == words[1], f"{at}: {ce.value}"
        else:
            return False
        return True

    def free(self) -> None:
        for h in (self.slo, self.retry, self.budget, self.bulkhead):
            if h is not None:
                h.free()


def run(sc: Scenario) -> None:
    clock = MockClock()
    b: Optional[Breaker] = None
    policies: Optional[Policies] = None
    held: Dict[str, surgewall.Permit] = {}
    for n, words in sc.lines:
        at = f"{sc.name} (line {n})"
        cmd = words[0]
        if cmd == "config":
            b = configure(words[1:], clock)
            policies = Policies(clock, b)
            continue
        assert b is not None and policies is not None, f"{at}: no config"
        if policies.step(words, at):
            continue
        if cmd == "call":
            outcome = OUTCOMES[words[1]]
            opts = kv(words[2:])
            times = next((int(k[1:]) for k in opts if k.startswith("x")), 1)
            for _ in range(times):
                p = b.acquire()
                if "ms" in opts:
                    p.record(outcome, duration=ms(opts["ms"]))
                else:
                    p.record(outcome)
        elif cmd == "reject":
            with pytest.raises(surgewall.CircuitOpenError) as ei:
                b.acquire()
            assert ei.value.reason == REASONS[words[1]], at
            opts = kv(words[2:])
            if "retry_after_ms" in opts:
                assert round(ei.value.retry_after * 1000) == int(opts["retry_after_ms"]), at
        elif cmd == "hold":
            held[words[1]] = b.acquire()
        elif cmd == "release":
            p = held[words[1]]
            want = words[4] if len(words) > 4 else "counted"
            # A permit released twice on purpose (a probe recorded twice): go around the
            # Python-side once-only guard to reach the library's own check.
            got = (
                b._record_raw(p.token, p.start_ns, OUTCOMES[words[2]])
                if p.done
                else p.record(OUTCOMES[words[2]])
            )
            assert got == Recorded(want), f"{at}: {got} != {want}"
        elif cmd == "advance":
            clock.advance(ms(words[1]))
        elif cmd == "force_open":
            b.force_open(ms(words[1]) if len(words) > 1 else None)
        elif cmd == "reset":
            b.reset()
        elif cmd == "disable":
            b.disable()
        elif cmd == "metrics_only":
            b.metrics_only()
        elif cmd == "close":
            b.close()
        elif cmd == "open":
            b.open()
        elif cmd == "half_open":
            refused = len(words) > 2 and words[2] == "refused"
            if refused:
                with pytest.raises(surgewall.InvalidTransitionError):
                    b.half_open()
            else:
                b.half_open()
        elif cmd == "expect":
            m = b.metrics()
            for w in words[1:]:
                k, v = w.split("=", 1)
                rates = {"failure_rate": m.window, "last_failure_rate": m.last_window}
                if k in rates:
                    rate = rates[k].failure_rate
                    if v == "absent":
                        assert rate is None, f"{at}: {k}: got {rate}, want absent"
                    else:
                        assert rate == pytest.approx(float(v), abs=1e-9), f"{at}: {k}: {rate}"
                    continue
                assert metric(m, k) == v, f"{at}: {k}: got {metric(m, k)}, want {v}"
        else:
            raise AssertionError(f"{at}: unknown command {cmd}")
    assert b is not None and policies is not None
    policies.free()
    b.free()
    clock.free()


ALL = parse(SCENARIOS.read_text())


def test_the_file_has_scenarios() -> None:
    assert len(ALL) >= 15
    assert len({s.name for s in ALL}) == len(ALL)


@pytest.mark.parametrize("sc", ALL, ids=[s.name for s in ALL])
def test_scenario(sc: Scenario) -> None:
    run(sc)
