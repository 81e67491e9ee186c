from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import requests

from requests_apivideo import ApiVideoAuth
from requests_apivideo.testing import FakeApiVideo


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


# Modules of integration tests define `fake` (the emulator); these build on it.


@pytest.fixture
def auth(fake: FakeApiVideo, key: str, clock: FakeClock) -> ApiVideoAuth:
    return ApiVideoAuth(key, base_url=fake.url, clock=clock)


@pytest.fixture
def session(auth: ApiVideoAuth) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.auth = auth
        yield s


def authorization_headers(fake: FakeApiVideo, path: str = "/videos") -> list[str | None]:
    """Return the Authorization header of every request the emulator received for ``path``."""
    return [r.headers.get("Authorization") for r in fake.requests if r.path.split("?")[0] == path]
