"""A controllable clock shared by ApiVideoAuth and the emulators."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..token import Clock

__all__ = ["FakeClock", "readers"]


def readers(
    clock: Clock | Callable[[], float] | None,
) -> tuple[Callable[[], float], Callable[[], float]]:
    """Return the monotonic and wall readings of a clock object, or of a monotonic function."""
    if clock is None:
        return time.monotonic, time.time
    if hasattr(clock, "monotonic") and hasattr(clock, "time"):
        return clock.monotonic, clock.time
    return clock, time.time


class FakeClock:
    """Keep a time that moves only when told to, for ``ApiVideoAuth`` and ``FakeApiVideo``.

    .. code-block:: python

        clock = FakeClock()
        with FakeApiVideo(api_keys=[key], clock=clock) as fake:
            session.auth = ApiVideoAuth(key, base_url=fake.url, clock=clock)
            clock.advance(3600)  # an hour passes for both sides, at once

    Thread-safe. ``mono`` and ``wall`` read and set each clock alone: ``clock.wall += 7200``
    is a wall-clock jump (a machine that slept, an NTP step); the monotonic clock never goes
    back.

    :param monotonic: the first reading of :meth:`monotonic`.
    :param wall: the first reading of :meth:`time`, in seconds since the epoch.
    """

    def __init__(self, monotonic: float = 1000.0, *, wall: float = 1_800_000_000.0) -> None:
        self._lock = threading.Lock()
        self._mono = float(monotonic)
        self._wall = float(wall)

    def __repr__(self) -> str:
        return f"FakeClock({self.mono!r}, wall={self.wall!r})"

    def __getstate__(self) -> tuple[float, float]:
        with self._lock:
            return self._mono, self._wall  # a pickled ApiVideoAuth carries its clock

    def __setstate__(self, state: tuple[float, float]) -> None:
        self._lock = threading.Lock()
        self._mono, self._wall = state

    def monotonic(self) -> float:
        """Return the monotonic reading."""
        with self._lock:
            return self._mono

    def time(self) -> float:
        """Return the wall-clock reading (seconds since the epoch)."""
        with self._lock:
            return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (>= 0), at once."""
        if not 0 <= seconds < math.inf:
            raise ValueError(f"a clock cannot move back or by {seconds!r} seconds")
        with self._lock:
            self._mono += seconds
            self._wall += seconds

    @property
    def mono(self) -> float:
        """The monotonic reading; set it to move the monotonic clock alone (never back)."""
        with self._lock:
            return self._mono

    @mono.setter
    def mono(self, value: float) -> None:
        with self._lock:
            if not self._mono <= value < math.inf:
                raise ValueError(f"a monotonic clock cannot go back or to {value!r}")
            self._mono = float(value)

    @property
    def wall(self) -> float:
        """The wall-clock reading; set it to make the wall clock jump, either way."""
        with self._lock:
            return self._wall

    @wall.setter
    def wall(self, value: float) -> None:
        if not math.isfinite(value):
            raise ValueError(f"a wall clock cannot read {value!r}")
        with self._lock:
            self._wall = float(value)
