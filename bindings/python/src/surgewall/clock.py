"""Time under control: MockClock for tests."""

from __future__ import annotations

from ._native import U64_MAX, check, ffi, lib
from ._util import Owned, seconds_to_ns
from .errors import ConfigError


class MockClock(Owned):
    """A clock that moves only when told. Pass it as ``clock=`` to any constructor, then call
    ``advance(seconds)``. Starts at 1 s. Objects built with it keep their own reference, so
    closing the clock does not stop them.

    Everything built on it measures time with it, bulkhead waits included: a blocking
    ``Bulkhead.acquire`` and ``acquire_async`` both wait until the mock clock passes their
    deadline (a blocking waiter re-reads it every millisecond of real time)."""

    _what = "mock clock"

    def __init__(self) -> None:
        out = ffi.new("surgewall_mock_clock **")
        check(lib.surgewall_mock_clock_new(out), "MockClock")
        super().__init__(out[0], lib.surgewall_mock_clock_free)

    def advance(self, seconds: float) -> None:
        """Moves the clock forward (``seconds`` >= 0, at most about 292 years a call).

        Mock time is nanoseconds in 64 bits: an advance that would take it past 2**64 ns
        (about 584 years from its start) is a :class:`ConfigError`, since the library's
        counter would wrap around and time would run backwards."""
        ns = seconds_to_ns("seconds", seconds)
        if self.now_ns + ns > U64_MAX:
            raise ConfigError(
                "seconds", f"the mock clock would pass 2**64 ns (it is at {self.now_ns} ns)"
            )
        check(self._call(lib.surgewall_mock_clock_advance, ns))

    @property
    def now_ns(self) -> int:
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_mock_clock_now, out))
        return int(out[0])

    def now(self) -> float:
        """The current time in seconds."""
        return self.now_ns / 1e9

