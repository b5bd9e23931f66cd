"""SLO trackers (error budget, multi-window burn rates) and adaptive failure-rate thresholds."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Tuple

from ._native import check, construct, ffi, lib, new_config, set_config
from ._util import Handle, Owned, count, held, name_bytes, number, ratio, seconds_to_ns
from .breaker import Breaker, Outcome
from .clock import MockClock
from .errors import ConfigError


@dataclasses.dataclass(frozen=True)
class BurnWindows:
    """A burn-rate pair: alert when both the ``long`` and the ``short`` window (seconds) burn
    the error budget at ``threshold`` x the sustainable rate."""

    long: float
    short: float
    threshold: float


@dataclasses.dataclass(frozen=True)
class BurnMetrics:
    long_burn: float
    short_burn: float
    long_calls: int
    short_calls: int
    """Calls in the short window; 0 is "no data": the pair stays as it is (no recovery)."""
    threshold: float
    burning: bool


@dataclasses.dataclass(frozen=True)
class SLOMetrics:
    objective: float
    calls: int
    bad: int
    error_rate: float
    budget_allowed: float
    budget_remaining: float
    budget_remaining_fraction: float
    fast: BurnMetrics
    slow: BurnMetrics
    holding_breaker: bool
    burn_bucket: float
    """The burn bucket in force (seconds): a window of L reads the last L to L + burn_bucket."""


def _burn(b: Any) -> BurnMetrics:
    return BurnMetrics(
        float(b.long_burn),
        float(b.short_burn),
        int(b.long_calls),
        int(b.short_calls),
        float(b.threshold),
        bool(b.burning),
    )


def _slo_metrics(m: Any) -> SLOMetrics:
    return SLOMetrics(
        objective=float(m.objective),
        calls=int(m.calls),
        bad=int(m.bad),
        error_rate=float(m.error_rate),
        budget_allowed=float(m.budget_allowed),
        budget_remaining=float(m.budget_remaining),
        budget_remaining_fraction=float(m.budget_remaining_fraction),
        fast=_burn(m.fast),
        slow=_burn(m.slow),
        holding_breaker=bool(m.holding_breaker),
        burn_bucket=int(m.burn_bucket_ns) / 1e9,
    )


class SLO(Owned):
    """An SLO tracker: ``objective`` (e.g. 0.999) over a rolling ``window`` (seconds), error
    budget left, fast and slow burn alerts (events on the ring), and optionally holding a
    linked ``breaker`` open while the fast burn persists (at least ``min_open`` seconds).
    Call ``tick()`` every few seconds (it evaluates and publishes).

    ``burn_bucket`` (seconds) is the burn windows' resolution: by default a tenth of the
    shortest burn window, and a longer one is refused (``ConfigError``), so a window reads its
    length to its length plus one bucket. A pair fires when both windows burn at ``>=`` its
    threshold (compared exactly, in integers), and recovers only on evidence: an empty short
    window leaves it as it is. A held breaker is handed to its probes after ``min_open`` when
    the pair recovered or nothing was called (the probe rule), and held again while the pair
    fires and the calls the probes let through still burn. Given a ``name``, it is listed for the agent
    (:class:`surgewall.Agent`)."""

    _what = "SLO tracker"

    def __init__(
        self,
        objective: float = 0.999,
        *,
        window: Optional[float] = None,
        fast_burn: Optional[BurnWindows] = None,
        slow_burn: Optional[BurnWindows] = None,
        burn_bucket: Optional[float] = None,
        recovery_factor: Optional[float] = None,
        min_calls: Optional[int] = None,
        min_open: Optional[float] = None,
        breaker: Optional[Breaker] = None,
        clock: Optional[MockClock] = None,
        name: Optional[str] = None,
    ) -> None:
        raw_name = None if name is None else name_bytes(name)
        with new_config(
            lib.surgewall_slo_config_new,
            lib.surgewall_slo_config_free,
            "surgewall_slo_config",
            "SLO",
        ) as cfg:
            if raw_name is not None:  # named: the agent lists it
                set_config("name", lib.surgewall_slo_config_set_name(cfg, raw_name, len(raw_name)))
            o = ratio("objective", objective)
            if o >= 1.0:
                raise ConfigError("objective", f"must be in (0, 1), got {objective}")
            set_config("objective", lib.surgewall_slo_config_set_objective(cfg, o))
            if window is not None:
                w = seconds_to_ns("window", window, allow_zero=False)
                set_config("window", lib.surgewall_slo_config_set_window(cfg, w))
            for field, pair, setter in (
                ("fast_burn", fast_burn, lib.surgewall_slo_config_set_fast_burn),
                ("slow_burn", slow_burn, lib.surgewall_slo_config_set_slow_burn),
            ):
                if pair is None:
                    continue
                if not isinstance(pair, BurnWindows):
                    raise ConfigError(field, "expected BurnWindows(long, short, threshold)")
                lo = seconds_to_ns(f"{field}.long", pair.long, allow_zero=False)
                sh = seconds_to_ns(f"{field}.short", pair.short, allow_zero=False)
                th = number(f"{field}.threshold", pair.threshold)
                set_config(field, setter(cfg, lo, sh, th))
            if burn_bucket is not None:
                b = seconds_to_ns("burn_bucket", burn_bucket, allow_zero=False)
                set_config("burn_bucket", lib.surgewall_slo_config_set_burn_bucket(cfg, b))
            if recovery_factor is not None:
                r = ratio("recovery_factor", recovery_factor)
                set_config("recovery_factor", lib.surgewall_slo_config_set_recovery_factor(cfg, r))
            if min_calls is not None:
                n = count("min_calls", min_calls, maximum=(1 << 64) - 1)
                set_config("min_calls", lib.surgewall_slo_config_set_min_calls(cfg, n))
            if min_open is not None:
                m = seconds_to_ns("min_open", min_open)
                set_config("min_open", lib.surgewall_slo_config_set_min_open(cfg, m))
            if breaker is not None:
                if not isinstance(breaker, Breaker):
                    raise ConfigError("breaker", "expected a Breaker")
                set_config(
                    "breaker",
                    breaker._call(lambda h: lib.surgewall_slo_config_set_breaker(cfg, h)),
                )
            if clock is not None:
                if not isinstance(clock, MockClock):
                    raise ConfigError("clock", "expected a MockClock")
                set_config(
                    "clock", clock._call(lambda h: lib.surgewall_slo_config_set_mock_clock(cfg, h))
                )
        ptr = construct(
            lambda out, err: lib.surgewall_slo_new(cfg, out, err), "surgewall_slo", "SLO"
        )
        super().__init__(ptr, lib.surgewall_slo_free)

    @property
    def id(self) -> int:
        """The process-unique id: the ``source`` of this tracker's burn events."""
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_slo_id, out), "SLO.id")
        return int(out[0])

    def record(self, good: bool) -> None:
        """Records a call: ``good`` when it met the objective."""
        check(self._call(lib.surgewall_slo_record, bool(good)), "SLO.record")

    def record_outcome(self, outcome: Outcome) -> None:
        """Records a call by its breaker outcome (IGNORED counts nowhere)."""
        if not isinstance(outcome, Outcome):
            raise TypeError("outcome must be a surgewall.Outcome")
        check(self._call(lib.surgewall_slo_record_outcome, int(outcome)), "SLO.record_outcome")

    def tick(self) -> SLOMetrics:
        """Evaluates the burn rates now (events, linked breaker); returns the snapshot."""
        m = ffi.new("surgewall_slo_stats *")
        check(self._call(lib.surgewall_slo_tick, m), "SLO.tick")
        return _slo_metrics(m)

    def metrics(self) -> SLOMetrics:
        m = ffi.new("surgewall_slo_stats *")
        check(self._call(lib.surgewall_slo_metrics, m), "SLO.metrics")
        return _slo_metrics(m)



@dataclasses.dataclass(frozen=True)
class ThresholdMetrics:
    threshold: float
    min_threshold: float
    max_threshold: float
    target_error_rate: float
    last_error_rate: Optional[float]
    """None before a tick had enough calls to measure (distinct from a measured 0.0)."""
    ticks: int
    changes: int


class ThresholdAdjuster(Handle):
    """Adapts ``breaker``'s failure-rate threshold: above ``target_error_rate`` it moves by
    ``step`` toward ``min_threshold`` (more sensitive), below half the target toward
    ``max_threshold``. Evaluated on ``tick()`` (never per call). ``target_error_rate`` may not
    be above ``max_threshold`` (``ConfigError`` naming it)."""

    _what = "threshold adjuster"

    def __init__(
        self,
        breaker: Breaker,
        *,
        target_error_rate: float,
        min_threshold: float,
        max_threshold: float,
        step: float = 0.05,
        min_calls: int = 0,
    ) -> None:
        if not isinstance(breaker, Breaker):
            raise ConfigError("breaker", "expected a Breaker")
        t = ratio("target_error_rate", target_error_rate)
        lo = ratio("min_threshold", min_threshold)
        hi = ratio("max_threshold", max_threshold)
        s = ratio("step", step)
        n = count("min_calls", min_calls, maximum=(1 << 64) - 1)
        with held(breaker) as h:
            ptr = construct(
                lambda out, err: lib.surgewall_threshold_adjuster_new(h, t, lo, hi, s, n, out, err),
                "surgewall_threshold_adjuster",
                "ThresholdAdjuster",
            )
        super().__init__(ptr, lib.surgewall_threshold_adjuster_free)

    def tick(self) -> Optional[Tuple[float, float]]:
        """Evaluates now; ``(old, new)`` when the threshold moved, else None."""
        changed = ffi.new("bool *")
        old = ffi.new("double *")
        new = ffi.new("double *")
        check(self._call(lib.surgewall_threshold_adjuster_tick, changed, old, new), "tick")
        return (float(old[0]), float(new[0])) if changed[0] else None

    def metrics(self) -> ThresholdMetrics:
        m = ffi.new("surgewall_threshold_stats *")
        check(self._call(lib.surgewall_threshold_adjuster_metrics, m), "metrics")
        return ThresholdMetrics(
            float(m.threshold),
            float(m.min_threshold),
            float(m.max_threshold),
            float(m.target_error_rate),
            None if math.isnan(m.last_error_rate) else float(m.last_error_rate),
            int(m.ticks),
            int(m.changes),
        )



__all__ = [
    "BurnMetrics",
    "BurnWindows",
    "SLO",
    "SLOMetrics",
    "ThresholdAdjuster",
    "ThresholdMetrics",
]
