"""G5: ns per guarded call for surgewall, pybreaker and circuitbreaker, in one run.

Each library guards the same success-path no-op function through its decorator, with the
same failure policy (trip at 5 consecutive failures, 60 s open, failures = Exception), and is
timed with timeit.repeat (min of repeats). Baselines: the bare no-op, a no-op C call, and a
`with` block over a C context manager that does nothing (the floor of `with breaker:`).

The keyed rows guard the same no-op with one breaker per key, cycling through 1000 str keys:
surgewall's KeyedBreaker (compact breakers in the library), a BreakerRegistry (a dict of
full library breakers) and pybreaker breakers in a dict; their baseline draws the key only.

    python bench/compare.py [--number N] [--repeat R]
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import itertools
import sys
import timeit
from typing import Callable, Dict, List, Tuple

import circuitbreaker  # type: ignore[import-untyped]
import pybreaker

import surgewall
from surgewall import _speedups


def noop() -> None:
    return None


_keep: List[object] = []  # breakers whose handles the measured closures use


def setups() -> List[Tuple[str, Callable[[], None]]]:
    sw = surgewall.Breaker(
        "bench", failure_rate=None, consecutive_failures=5, open_for=60.0
    )
    sw_call = sw(noop)

    sw_with_breaker = surgewall.Breaker(
        "bench-with", failure_rate=None, consecutive_failures=5, open_for=60.0
    )

    def sw_with() -> None:
        with sw_with_breaker:
            noop()

    # The floor of any `with` block: a C context manager whose __enter__ / __exit__ do
    # nothing but count (a handle's Lease). CPython makes a bound method for each of the two
    # and calls them: `with breaker:` cannot cost less than this.
    lease = sw_with_breaker._lease

    def with_floor() -> None:
        with lease:
            noop()

    # What plain cffi API mode gives: the same acquire + record, each a cffi call (which
    # releases and re-takes the GIL), in a Python wrapper. Kept to justify the C extension.
    from surgewall._ffi import ffi, lib

    cffi_breaker = surgewall.Breaker(
        "bench-cffi", failure_rate=None, consecutive_failures=5, open_for=60.0
    )
    _keep.append(cffi_breaker)
    handle = cffi_breaker._h
    permit = ffi.new("surgewall_permit *")
    retry_after = ffi.new("uint64_t *")
    acquire, record = lib.surgewall_breaker_acquire, lib.surgewall_breaker_record

    def cffi_call() -> None:
        if acquire(handle, permit, retry_after) != 0:
            raise RuntimeError("rejected")
        try:
            noop()
        except BaseException:
            record(handle, permit[0], 1)
            raise
        record(handle, permit[0], 0)

    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    pb_call = pb(noop)

    cb_call = circuitbreaker.circuit(
        failure_threshold=5, recovery_timeout=60, expected_exception=Exception
    )(noop)

    return [
        ("baseline: bare no-op", noop),
        ("baseline: C no-op (METH_NOARGS)", _speedups.noop),
        ("surgewall @breaker", sw_call),
        ("baseline: `with` a no-op C manager", with_floor),
        ("surgewall `with breaker:`", sw_with),
        ("(cffi API mode wrapper, not shipped)", cffi_call),
        ("pybreaker @breaker", pb_call),
        ("circuitbreaker @circuit", cb_call),
    ]


KEYS = [f"tenant-{i}" for i in range(1000)]


def keyed_setups() -> List[Tuple[str, Callable[[], None]]]:
    opts = dict(failure_rate=None, consecutive_failures=5, open_for=60.0)
    kb = surgewall.KeyedBreaker("bench-keyed", max_keys=len(KEYS), **opts)  # type: ignore[arg-type]
    reg: surgewall.BreakerRegistry[str] = surgewall.BreakerRegistry(
        lambda k: surgewall.Breaker(k, **opts)  # type: ignore[arg-type]
    )
    pbs = {k: pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60) for k in KEYS}
    _keep.extend([kb, reg])
    for k in KEYS:  # every key exists before timing
        kb.call(k, noop)
        reg.get(k).call(noop)
    draw = itertools.cycle(KEYS).__next__

    def baseline() -> None:
        draw()
        noop()

    return [
        ("keyed baseline: draw a key + no-op", baseline),
        ("surgewall KeyedBreaker.call", lambda: kb.call(draw(), noop)),
        ("surgewall BreakerRegistry", lambda: reg.get(draw()).call(noop)),
        ("pybreaker in a dict", lambda: pbs[draw()].call(noop)),
    ]


def measure(fn: Callable[[], None], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e9


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--number", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    print(
        f"surgewall {surgewall.__version__} (lib {surgewall.library_version}), "
        f"pybreaker {md.version('pybreaker')}, circuitbreaker {md.version('circuitbreaker')}, "
        f"Python {sys.version.split()[0]}; "
        f"success path, coarse clock, number={args.number}, min of {args.repeat}"
    )
    ns: Dict[str, float] = {}
    for name, fn in setups():
        ns[name] = measure(fn, args.number, args.repeat)
        print(f"{name:34s} {ns[name]:8.1f} ns/call")
    ours = ns["surgewall @breaker"]
    r_pb = ns["pybreaker @breaker"] / ours
    r_cb = ns["circuitbreaker @circuit"] / ours
    print(f"ratio pybreaker/surgewall      {r_pb:6.1f}x  (G5 >= 8x: {'ok' if r_pb >= 8 else 'MISSED'})")
    print(f"ratio circuitbreaker/surgewall {r_cb:6.1f}x  (G5 >= 4x: {'ok' if r_cb >= 4 else 'MISSED'})")
    with_ns = ns["surgewall `with breaker:`"]
    r_with = with_ns / ours
    print(f"ratio `with breaker:`/@breaker  {r_with:6.1f}x  (G5 <= 2x: {'ok' if r_with <= 2 else 'MISSED'})")
    print(f"`with breaker:` over the `with` floor: {with_ns - ns['baseline: `with` a no-op C manager']:.1f} ns")
    print(f"surgewall overhead over the bare call: {ours - ns['baseline: bare no-op']:.1f} ns")
    for name, fn in keyed_setups():
        ns[name] = measure(fn, args.number, args.repeat)
        print(f"{name:34s} {ns[name]:8.1f} ns/call")
    keyed = ns["surgewall KeyedBreaker.call"]
    print(f"ratio pybreaker-in-a-dict/KeyedBreaker {ns['pybreaker in a dict'] / keyed:6.1f}x")
    print(f"ratio BreakerRegistry/KeyedBreaker     {ns['surgewall BreakerRegistry'] / keyed:6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
