"""Memory and sockets stay bounded however many one-off keys a process uses."""

from __future__ import annotations

import gc
import io
import json
import os
import tracemalloc

import pytest
import requests
import requests.adapters

from requests_apivideo import ApiVideoAuth
from requests_apivideo.auth import RECENT_SETTINGS, _settings
from requests_apivideo.manager import RECENT, _managers
from requests_apivideo.testing import FakeApiVideo

#: Enough keys to show growth (18 KB a key before the registry was bounded); the
#: state kept is RECENT managers' worth whatever the count, measured at 10,000 too.
KEYS = 1_000


class _TokenAdapter(requests.adapters.BaseAdapter):
    """Answer every token call with a new token, in memory, keeping nothing."""

    def send(
        self, request: requests.PreparedRequest, *args: object, **kwargs: object
    ) -> requests.Response:
        n = os.urandom(8).hex()
        body = {"access_token": "a" + n, "refresh_token": "r" + n, "expires_in": 3600}
        response = requests.Response()
        response.status_code, response.request, response.url = 200, request, request.url or ""
        response.raw = io.BytesIO(json.dumps(body).encode())
        response.raw.read1 = lambda size, decode_content=True: response.raw.read(size)
        return response

    def close(self) -> None:
        pass


def test_one_off_keys_are_released_once_dropped() -> None:
    session = requests.Session()
    session.mount("https://", _TokenAdapter())
    ApiVideoAuth("warm-up-key", session=session).get_token()  # imports, caches
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for n in range(KEYS):
        ApiVideoAuth(f"one-off-key-{n:05d}", session=session).get_token()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    kept = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert kept < 200_000, f"{kept} bytes kept for {KEYS} dropped keys"
    # the RECENT keys made with a session, and those kept by recent argument sets (other tests')
    assert len(_managers) <= RECENT + RECENT_SETTINGS + 1


def test_one_off_keys_with_the_default_settings_keep_only_the_recent_twins() -> None:
    ApiVideoAuth("warm-up-twin-key")  # imports, caches
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for n in range(KEYS):  # each a twin: the default session and store
        ApiVideoAuth(f"one-off-twin-key-{n:05d}")
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    kept = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # RECENT_SETTINGS twins with their managers (about 2.7 KB each), not one per key
    assert kept < 400_000, f"{kept} bytes kept for {KEYS} dropped keys"
    assert len(_settings) == RECENT_SETTINGS


def test_a_key_used_again_soon_after_its_instance_is_gone_reuses_its_token() -> None:
    with FakeApiVideo(api_keys=["k-reused"]) as fake:
        for _ in range(5):  # the README's module-level form: a new instance per call
            requests.get(fake.url + "/videos", auth=ApiVideoAuth("k-reused", base_url=fake.url),
                         timeout=10).raise_for_status()
            gc.collect()
        assert fake.api_key_calls == 1


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_many_keys_do_not_keep_a_socket_each() -> None:
    keys = [f"sock-key-{n}" for n in range(200)]
    with FakeApiVideo(api_keys=keys) as fake:
        ApiVideoAuth("sock-key-0", base_url=fake.url).get_token()
        before = len(os.listdir("/proc/self/fd"))
        for key in keys[1:]:
            ApiVideoAuth(key, base_url=fake.url).get_token()
        gc.collect()
        opened = len(os.listdir("/proc/self/fd")) - before
    assert opened <= 10, f"{opened} descriptors left open by 199 keys"
