"""Test doubles for code that talks to api.video: a local emulator and a controllable clock.

- :class:`FakeApiVideo`: api.video's auth API and a few protected endpoints on 127.0.0.1,
  with knobs (revoke or expire every token, inject faults) and counters;
- :class:`FakeClock`: one clock for ``ApiVideoAuth(clock=)`` and ``FakeApiVideo(clock=)``;
- :func:`mock_apivideo`: the same token endpoints on a ``responses`` mock, in-process;
- :class:`Fault`: an injected answer to a token call; :class:`Recorded`: a request received.
"""

from __future__ import annotations

from ._answers import Fault
from ._clock import FakeClock
from ._fake import FakeApiVideo, Recorded
from ._responses import MockApiVideo, mock_apivideo

__all__ = ["FakeApiVideo", "FakeClock", "Fault", "MockApiVideo", "Recorded", "mock_apivideo"]
