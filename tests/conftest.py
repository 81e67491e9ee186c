"""Fixtures only; the helpers the tests share are in helpers.py."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from requests_apivideo import ApiVideoAuth
from requests_apivideo.testing import FakeApiVideo, FakeClock


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


@pytest.fixture(autouse=True)
def _own_cache_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep every test's per-user token store (``"file:"``) out of the real home directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("APIVIDEO_TOKEN_STORE", raising=False)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs of the test's own (to fill up or remount read-only); skip without root."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
