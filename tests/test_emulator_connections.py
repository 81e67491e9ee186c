"""FakeApiVideo over HTTP/1.1: it says when it closes; stop() never waits out a delay."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable

import pytest
import requests

from requests_apivideo import ApiVideoAuth
from requests_apivideo.testing import FakeApiVideo, Fault

pytestmark = pytest.mark.integration

#: Only a guard against hangs; every wait here ends far sooner when the code is right.
HANG_GUARD = 30.0


def wait_until(predicate: Callable[[], bool], timeout: float = HANG_GUARD) -> bool:
    """Return as soon as ``predicate()`` holds, or False after ``timeout`` seconds."""
    deadline, pause = time.monotonic() + timeout, threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        pause.wait(0.005)
    return True


def connection(fake: FakeApiVideo) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]), timeout=10)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/auth/api-key", {"apiKey": "key-1"}),
        ("POST", "/auth/api-key", {"apiKey": "wrong"}),
        ("GET", "/videos", None),
        ("GET", "/nowhere", None),
    ],
)
def test_an_answer_to_a_request_that_asked_to_close_says_connection_close(
    method: str, path: str, body: dict[str, str] | None
) -> None:
    with FakeApiVideo(api_keys=["key-1"]) as fake:
        conn = connection(fake)
        try:
            data = json.dumps(body) if body is not None else None
            conn.request(method, path, body=data, headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
            assert response.getheader("Connection") == "close"
            assert response.will_close  # what urllib3 looks at before pooling the socket
        finally:
            conn.close()


def test_a_kept_alive_answer_does_not_say_close() -> None:
    with FakeApiVideo(api_keys=["key-1"]) as fake:
        conn = connection(fake)
        try:
            for _ in range(2):
                conn.request("POST", "/auth/api-key", body=json.dumps({"apiKey": "key-1"}))
                response = conn.getresponse()
                response.read()
                assert response.status == 200
                assert response.getheader("Connection") is None
                assert not response.will_close
        finally:
            conn.close()


def test_a_plain_user_session_survives_200_renewals_against_the_emulator(key: str) -> None:
    # Token calls send "Connection: close"; if the answer did not say so, urllib3 would pool
    # the closed socket and a later token call would meet RemoteDisconnected.
    with FakeApiVideo(api_keys=[key]) as fake, requests.Session() as api:
        api.auth = ApiVideoAuth(key, base_url=fake.url, session=requests.Session())
        failures = []
        for i in range(200):
            if i % 2:
                fake.expire_all()  # the 401 path: /auth/refresh, then the replay
            else:
                api.auth.invalidate()  # a fresh start: /auth/api-key
            try:
                response = api.get(f"{fake.url}/videos")
                if response.status_code != 200:
                    failures.append(str(response.status_code))
            except requests.RequestException as exc:
                failures.append(type(exc).__name__)
        assert failures == []
        assert (fake.api_key_calls, fake.refresh_calls) == (100, 100)


def test_stop_does_not_wait_out_a_delayed_fault() -> None:
    before = set(threading.enumerate())
    fake = FakeApiVideo(api_keys=["key-1"]).start()
    fake.fail_token_calls(Fault(200, delay=3600))
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(requests.post(f"{fake.url}/auth/api-key", json={"apiKey": "key-1"}))
        except requests.RequestException as exc:
            outcome.append(exc)

    client = threading.Thread(target=call, daemon=True)
    client.start()
    assert wait_until(lambda: fake.api_key_calls == 1)  # the server is now in the delay
    stopper = threading.Thread(target=fake.stop, daemon=True)
    stopper.start()
    stopper.join(HANG_GUARD)
    assert not stopper.is_alive()
    client.join(HANG_GUARD)
    assert len(outcome) == 1
    # stop() joined the connection's thread: nothing of this server is left running.
    assert [t for t in threading.enumerate() if t not in before] == []
    assert isinstance(outcome[0], requests.ConnectionError)  # dropped, not answered late
