"""A second adversarial review (auth hot path, 401 handling, token calls, CLI, testing kit).

Each test here proved a bug; over real loopback HTTP where HTTP is involved.
"""

from __future__ import annotations

import gc
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from requests_apivideo import ApiVideoAuth
from requests_apivideo.testing import FakeApiVideo

pytestmark = pytest.mark.integration


@pytest.fixture
def fake(key: str) -> Iterator[FakeApiVideo]:
    with FakeApiVideo(api_keys=[key]) as server:
        yield server


class _LosesTheReplay(HTTPAdapter):
    """An adapter that, once armed, loses the connection of the request sent after a 401."""

    lose_next_replay = False
    _after_401 = False

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        if self._after_401:
            self._after_401 = False
            raise requests.ConnectionError("connection reset by peer", request=request)
        response = super().send(request, *args, **kwargs)
        if response.status_code == 401 and self.lose_next_replay:
            self.lose_next_replay, self._after_401 = False, True
        return response


def test_a_replay_that_fails_to_send_does_not_mark_the_path_as_refusing(
    fake: FakeApiVideo, key: str
) -> None:
    # A revocation, then the replay's connection is lost: the caller sees the error. The
    # path took no evidence against the new token, so the next revocation is recovered.
    adapter = _LosesTheReplay()
    with requests.Session() as session:
        session.mount(fake.url, adapter)
        session.auth = ApiVideoAuth(key, base_url=fake.url)
        assert session.get(fake.url + "/videos").status_code == 200
        fake.revoke_all()
        adapter.lose_next_replay = True
        with pytest.raises(requests.ConnectionError):
            session.get(fake.url + "/videos")
        assert session.get(fake.url + "/videos").status_code == 200  # the renewed token
        fake.revoke_all()
        assert session.get(fake.url + "/videos").status_code == 200  # recovered at once


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_emulators_on_new_ports_one_after_another_leave_no_socket_each() -> None:
    # A user's suite with the fake_apivideo fixture: a new port per test. Token calls keep
    # their connection, in a private session per base URL; one per dead emulator was kept
    # for good, with its socket: about a thousand tests ran out of file descriptors.
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    gc.collect()
    before = open_files()
    for _ in range(40):
        key = "key_" + secrets.token_hex(12)
        with FakeApiVideo(api_keys=[key]) as fake:
            ApiVideoAuth(key, base_url=fake.url).get_token()
    gc.collect()
    assert open_files() - before < 20
