from __future__ import annotations

import secrets

import pytest


class FakeClock:
    """A controllable clock: ``monotonic()`` and ``time()`` move only when told."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_800_000_000.0

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key() -> str:
    """A fresh API key per test, so tests never share token state through the registry."""
    return "key_" + secrets.token_hex(12)
