"""Time under control: MockClock for tests."""

from __future__ import annotations

from ._native import check, ffi, lib
from ._util import Owned, seconds_to_ns


class MockClock(Owned):
    """A clock that moves only when told. Pass it as ``clock=`` to any constructor, then call
    ``advance(seconds)``. Starts at 1 s. Objects built with it keep their own reference, so
    closing the clock does not stop them."""

    _what = "mock clock"

    def __init__(self) -> None:
        out = ffi.new("surgewall_mock_clock **")
        check(lib.surgewall_mock_clock_new(out), "MockClock")
        super().__init__(out[0], lib.surgewall_mock_clock_free)

    def advance(self, seconds: float) -> None:
        """Moves the clock forward (``seconds`` >= 0)."""
        check(self._call(lib.surgewall_mock_clock_advance, seconds_to_ns("seconds", seconds)))

    @property
    def now_ns(self) -> int:
        out = ffi.new("uint64_t *")
        check(self._call(lib.surgewall_mock_clock_now, out))
        return int(out[0])

    def now(self) -> float:
        """The current time in seconds."""
        return self.now_ns / 1e9

