from __future__ import annotations

from typing import Iterator

import pytest

import surgewall


@pytest.fixture
def clock() -> Iterator[surgewall.MockClock]:
    c = surgewall.MockClock()
    yield c
    c.free()


@pytest.fixture
def breaker(clock: surgewall.MockClock) -> Iterator[surgewall.Breaker]:
    """A small count-window breaker on a mock clock: trips at 50 % once 4 calls are in."""
    b = surgewall.Breaker(
        "test",
        failure_rate=0.5,
        minimum_calls=4,
        window=surgewall.CountWindow(calls=10),
        open_for=5.0,
        half_open_calls=2,
        clock=clock,
    )
    yield b
    b.free()
