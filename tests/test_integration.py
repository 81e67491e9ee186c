"""ApiVideoAuth over real HTTP on 127.0.0.1, against the FakeApiVideo emulator."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter

from requests_apivideo import ApiVideoAuth, ApiVideoAuthError, InvalidApiKeyError
from requests_apivideo.testing import FakeApiVideo, FakeClock, Fault

from .helpers import WatchedLock, raw_server

pytestmark = pytest.mark.integration

#: Only a guard against hangs: every test here ends well within it.
HANG_GUARD = 30.0


@pytest.fixture
def fake(key: str, clock: FakeClock) -> Iterator[FakeApiVideo]:
    with FakeApiVideo(api_keys=[key], clock=clock.monotonic) as server:
        yield server


def in_threads(n: int, work: Callable[[], int]) -> list[int]:
    """Run ``work`` in ``n`` threads released together; return their results."""
    barrier = threading.Barrier(n)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


# -- a plain script ---------------------------------------------------------------------


def test_a_plain_script_survives_expiry_revocation_and_server_side_expiry(
    fake: FakeApiVideo, session: requests.Session, clock: FakeClock
) -> None:
    videos = fake.url + "/videos"
    assert session.get(videos).status_code == 200
    clock.advance(3600 * 3)  # long past expiry, on both sides
    assert session.get(videos).status_code == 200
    fake.revoke_all()  # refresh tokens too: the key is the way back
    assert session.get(videos).status_code == 200
    fake.expire_all()  # access tokens only: the refresh token is the way back
    assert session.get(videos).status_code == 200
    assert (fake.api_key_calls, fake.refresh_calls) == (2, 3)


def test_per_call_instances_authenticate_once(fake: FakeApiVideo, key: str) -> None:
    for _ in range(10):
        response = requests.get(fake.url + "/videos", auth=ApiVideoAuth(key, base_url=fake.url))
        assert response.status_code == 200
    assert fake.token_calls == 1


# -- concurrency ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 8, 32])
def test_concurrent_first_requests_make_one_token_call(
    fake: FakeApiVideo, session: requests.Session, n: int
) -> None:
    statuses = in_threads(n, lambda: session.get(fake.url + "/videos").status_code)
    assert statuses == [200] * n
    assert fake.token_calls == 1


@pytest.mark.parametrize("n", [2, 32])
def test_concurrent_stale_requests_make_one_refresh(
    fake: FakeApiVideo, session: requests.Session, clock: FakeClock, n: int
) -> None:
    session.get(fake.url + "/videos")
    clock.advance(3600 - 5)  # mandatory window: every thread needs the new token
    statuses = in_threads(n, lambda: session.get(fake.url + "/videos").status_code)
    assert statuses == [200] * n
    assert (fake.api_key_calls, fake.refresh_calls) == (1, 1)


# -- replay -----------------------------------------------------------------------------


def test_multipart_upload_from_a_file_is_replayed_in_full(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    video = session.post(fake.url + "/videos", json={"title": "t"}).json()
    fake.expire_all()
    with tempfile.TemporaryFile() as file:
        file.write(os.urandom(100_000))
        file.seek(0)
        response = session.post(
            f"{fake.url}/videos/{video['videoId']}/source", files={"file": ("a.mp4", file)}
        )
    assert response.status_code == 201
    sizes = [r.body_size for r in fake.requests if r.path.endswith("/source")]
    assert len(sizes) == 2 and sizes[0] == sizes[1] > 100_000
    assert response.headers["X-Received-Sha256"] == fake.requests[-1].body_sha256


def test_replay_uses_the_same_adapter_and_send_arguments(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    sent: list[dict[str, Any]] = []

    class Recording(HTTPAdapter):
        def send(
            self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
        ) -> requests.Response:
            sent.append(kwargs)
            return super().send(request, *args, **kwargs)

    session.mount(fake.url, Recording())
    session.get(fake.url + "/videos")
    fake.expire_all()
    sent.clear()
    response = session.get(fake.url + "/videos", timeout=(3.0, 7.0), stream=True, verify=False)
    assert response.status_code == 200
    assert len(sent) == 2
    assert sent[0] == sent[1]
    assert sent[1]["timeout"] == (3.0, 7.0) and sent[1]["stream"] is True
    assert not response._content_consumed  # still streamed, as asked
    response.close()


@pytest.mark.parametrize(
    ("own", "replayed"),
    [(None, "lb=node7"), ("session=abc", "session=abc; lb=node7")],
    ids=["no-cookie-of-its-own", "a-cookie-header-of-its-own"],
)
def test_cookies_set_on_the_401_are_added_to_the_replay(
    fake: FakeApiVideo, session: requests.Session, own: str | None, replayed: str
) -> None:
    session.get(fake.url + "/videos")
    fake.unauthorized_cookie = "lb=node7; Path=/"
    fake.expire_all()
    headers = {"Cookie": own} if own else {}
    assert session.get(fake.url + "/videos", headers=headers).status_code == 200
    assert fake.requests[-1].headers.get("Cookie") == replayed


# -- what passes untouched --------------------------------------------------------------


def test_delegated_upload_carries_no_bearer_and_needs_no_token(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    upload_token = fake.issue_upload_token()
    response = session.post(f"{fake.url}/upload?token={upload_token}", files={"file": b"data"})
    assert response.status_code == 201
    assert fake.requests[-1].headers.get("Authorization") is None
    assert fake.token_calls == 0


def test_basic_scheme_works_with_no_token_calls(fake: FakeApiVideo, key: str) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url, scheme="basic")
    assert requests.get(fake.url + "/videos", auth=auth).status_code == 200
    assert fake.token_calls == 0
    bad = ApiVideoAuth("wrong-key", base_url=fake.url, scheme="basic")
    assert requests.get(fake.url + "/videos", auth=bad).status_code == 401


# -- token endpoint failures ------------------------------------------------------------


def test_transient_token_failures_are_retried(fake: FakeApiVideo, auth: ApiVideoAuth) -> None:
    fake.fail_token_calls(Fault(503), Fault(429, headers={"Retry-After": "0"}))
    assert auth.get_token()
    assert fake.api_key_calls == 3


def test_a_refresh_that_fails_is_not_sent_again_but_falls_back_to_the_key(
    fake: FakeApiVideo, auth: ApiVideoAuth, clock: FakeClock
) -> None:
    auth.get_token()
    clock.advance(3600)
    fake.fail_token_calls(Fault(502))  # the gateway may have spent the single-use token
    assert auth.get_token()
    assert (fake.api_key_calls, fake.refresh_calls) == (2, 1)


def test_a_retry_after_longer_than_the_cap_is_not_waited_for(
    fake: FakeApiVideo, auth: ApiVideoAuth
) -> None:
    fake.fail_token_calls(Fault(429, headers={"Retry-After": "3600"}))
    started = time.monotonic()
    with pytest.raises(ApiVideoAuthError, match="429") as excinfo:
        auth.get_token()
    assert time.monotonic() - started < HANG_GUARD  # waiting it out would take an hour
    assert not isinstance(excinfo.value, InvalidApiKeyError)
    assert fake.api_key_calls == 1


def test_a_token_call_slower_than_the_timeout_fails_in_bounded_time(
    fake: FakeApiVideo, key: str
) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url, timeout=0.2)
    fake.fail_token_calls(Fault(200, delay=1.0))
    assert auth.get_token()  # one lost answer from /auth/api-key is asked for again
    assert fake.api_key_calls == 2
    auth.invalidate()
    fake.fail_token_calls(Fault(200, delay=1.0), Fault(200, delay=1.0))
    started = time.monotonic()
    with pytest.raises(ApiVideoAuthError, match="timed out"):
        auth.get_token()
    assert time.monotonic() - started < HANG_GUARD  # only a guard against a hang
    assert fake.api_key_calls == 4  # two attempts, no more


def test_debug_logs_of_a_whole_session_carry_no_secret(
    fake: FakeApiVideo,
    session: requests.Session,
    auth: ApiVideoAuth,
    key: str,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets: set[str] = {key}

    def remember() -> None:
        token = auth._manager.token
        assert token is not None
        secrets.update((token.access_token, token.refresh_token))

    with caplog.at_level(logging.DEBUG):
        session.get(fake.url + "/videos")
        remember()
        clock.advance(3590)
        session.get(fake.url + "/videos")
        remember()
        fake.revoke_all()
        session.get(fake.url + "/videos")
        remember()
        fake.expire_all()
        session.post(fake.url + "/videos", data=iter([b"{}"]))
        remember()
    assert len(secrets) == 9
    text = caplog.text
    assert "auth/refresh" in text  # urllib3 and our lines were captured
    for secret in secrets:
        assert secret not in text


def test_threads_waiting_on_a_renewal_that_fails_share_its_error(
    fake: FakeApiVideo, key: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The emulator closes the connection after each token call; saying so keeps urllib3
    # from pooling the closed socket for the next call (which would get RemoteDisconnected).
    closing = {"Connection": "close"}
    auth = ApiVideoAuth(key, base_url=fake.url, clock=clock, session=requests.Session())
    fake.fail_token_calls(Fault(200, headers=closing))
    auth.get_token()
    clock.advance(3600)
    # The refresh, then the key: both fail.
    fake.fail_token_calls(Fault(503, headers=closing), Fault(503, headers=closing))
    lock = WatchedLock(auth._manager.lock)
    monkeypatch.setattr(auth._manager, "lock", lock)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            auth.get_token()
        except ApiVideoAuthError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    with lock:  # held until every thread waits for the renewal
        for thread in threads:
            thread.start()
        assert lock.wait_until_asked(1 + 8)
    for thread in threads:
        thread.join(timeout=60)
    assert len(errors) == 8 and all("answered 503" in str(e) for e in errors)
    assert (fake.api_key_calls, fake.refresh_calls) == (2, 1)  # one renewal, not eight


def test_a_303_from_a_file_upload_to_a_get_is_replayed(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    session.get(fake.url + "/videos")
    with tempfile.TemporaryFile() as file:
        file.write(b"form")
        file.seek(0)
        fake.expire_all()  # the POST gets a 401 and is replayed; then 303 to GET /videos
        response = session.post(
            fake.url + "/redirect", params={"to": "/videos", "status": "303"}, data=file
        )
    assert response.status_code == 200


def count_connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the host:port of every new client connection from now on."""
    connects: list[str] = []
    original = urllib3.connection.HTTPConnection.connect

    def connect(self: urllib3.connection.HTTPConnection) -> None:
        connects.append(f"{self.host}:{self.port}")
        original(self)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", connect)
    return connects


def test_a_renewal_reuses_the_connection_of_the_last_token_call(
    fake: FakeApiVideo, session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert session.get(fake.url + "/videos").status_code == 200  # an API-key call first
    connects = count_connects(monkeypatch)
    fake.revoke_all()  # a 401, a rejected refresh, an API-key call, the replay
    assert session.get(fake.url + "/videos").status_code == 200
    assert (fake.api_key_calls, fake.refresh_calls) == (2, 1)
    assert connects == []  # no TCP (or TLS) handshake: Connection: close cost 2 here


def test_renewals_survive_a_server_that_closes_every_connection_unannounced(
    key: str, clock: FakeClock
) -> None:
    issued: list[str] = []

    def answer(connection: socket.socket, request: bytes) -> None:
        issued.append(f"access{len(issued)}")
        body = (
            f'{{"token_type": "Bearer", "expires_in": 3600, "access_token": "{issued[-1]}", '
            f'"refresh_token": "refresh{len(issued)}"}}'
        ).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        connection.sendall(head + body)  # then raw_server closes: no Connection: close said

    with raw_server(answer) as url:
        auth = ApiVideoAuth(key, base_url=url, clock=clock)
        tokens = [auth.get_token()]
        for _ in range(3):
            clock.advance(3600)  # expired: each renewal finds the kept connection closed
            tokens.append(auth.get_token())
    assert len(set(tokens)) == 4
    assert set(tokens) <= set(issued)


def test_an_answer_trickled_a_byte_at_a_time_is_cut_off_near_the_timeout(key: str) -> None:
    def trickle(connection: socket.socket, request: bytes) -> None:
        body = b'{"token_type": "Bearer", "expires_in": 3600, "access_token": "a", "x": "'
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + body)
        for _ in range(5000):  # a byte every 0.05 s: no single read ever times out
            connection.sendall(b"x")
            time.sleep(0.05)

    with raw_server(trickle) as url:
        auth = ApiVideoAuth(key, base_url=url, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ApiVideoAuthError, match="longer than the timeout"):
            auth.get_token()
        # Only a guard against a hang: the whole trickle would take 250 s.
        assert time.monotonic() - started < HANG_GUARD


def test_a_base_url_path_is_spelled_as_requests_sends_it(fake: FakeApiVideo, key: str) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url + "/vé")
    assert auth.base_url == fake.url + "/v%C3%A9"
    token_call = requests.Request("POST", fake.url + "/vé/auth/api-key", auth=auth).prepare()
    assert "Authorization" not in token_call.headers
