"""A fault matrix: every way the token endpoint or the API can fail, over real loopback HTTP.

Each case checks what the caller sees (a response with at most one replay, or a typed
ApiVideoAuthError in bounded time) and what FakeApiVideo received (token calls, 401s, the
Authorization header of every request).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import urllib3.util.connection

from requests_apivideo import ApiVideoAuth, ApiVideoAuthError, InvalidApiKeyError
from requests_apivideo.testing import FakeApiVideo, FakeClock, Fault

from .helpers import authorization_headers, bearer

pytestmark = pytest.mark.integration

#: Only a guard against hangs: every case here ends well within it.
HANG_GUARD = 30.0
MIB = 1024 * 1024


class ServerClock(FakeClock):
    """The emulator's own clock; with ``step`` set, every reading moves it forward."""

    step = 0.0

    def monotonic(self) -> float:
        self.mono += self.step
        return self.mono


@pytest.fixture
def server_clock() -> ServerClock:
    return ServerClock()


@pytest.fixture
def fake(key: str, server_clock: ServerClock) -> Iterator[FakeApiVideo]:
    # The emulator keeps its own time: the client's clock (the `clock` fixture) moves apart.
    with FakeApiVideo(api_keys=[key], clock=server_clock.monotonic) as server:
        yield server


def assert_token_calls_carry_no_authorization(fake: FakeApiVideo) -> None:
    calls = [r for r in fake.requests if r.path.startswith("/auth/")]
    assert calls, "no token call was recorded"
    assert all("Authorization" not in r.headers for r in calls)


def token_body(**changes: Any) -> str:
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "expires_in": 3600,
        "access_token": "a" * 40,
        "refresh_token": "r" * 40,
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not ...})


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.elapsed = time.monotonic() - self.started
        assert self.elapsed < HANG_GUARD


# -- the first token call ---------------------------------------------------------------


@dataclass(frozen=True)
class FirstCall:
    """A fault on the first token call, and what must come of it."""

    faults: tuple[Fault, ...]
    api_key_calls: int
    error: type[ApiVideoAuthError] | None = None  # None: the request succeeds
    match: str = ""
    status: int | None = None  # the status of exc.response; None: no response at all
    timeout: float = 10.0
    min_elapsed: float = 0.0


HTML = "<!doctype html><p>Bad gateway</p>"

FIRST_CALLS = {
    # Transient statuses (429/500/502/503/504) are asked again after a short back-off.
    "500-once": FirstCall((Fault(500),), 2),
    "502-once": FirstCall((Fault(502),), 2),
    "503-once": FirstCall((Fault(503),), 2),
    "504-once": FirstCall((Fault(504),), 2),
    "429-with-retry-after-1": FirstCall(
        (Fault(429, headers={"Retry-After": "1"}),), 2, min_elapsed=0.9
    ),
    "429-with-x-ratelimit-retry-after-1": FirstCall(
        (Fault(429, headers={"X-RateLimit-Retry-After": "1"}),), 2, min_elapsed=0.9
    ),
    # One call and two retries, then the status itself; a fourth call would have succeeded.
    "429-that-never-ends": FirstCall((Fault(429),) * 3, 3, ApiVideoAuthError, "answered 429", 429),
    "500-html-page-that-never-ends": FirstCall(
        (Fault(500, body=HTML, headers={"Content-Type": "text/html"}),) * 3,
        3,
        ApiVideoAuthError,
        "answered 500",
        500,
    ),
    "429-with-retry-after-beyond-the-cap": FirstCall(
        (Fault(429, headers={"Retry-After": "3600"}),), 1, ApiVideoAuthError, "answered 429", 429
    ),
    # A lost answer from /auth/api-key is asked for once more (a spare token costs nothing).
    "slower-than-the-timeout-once": FirstCall((Fault(200, delay=1.0),), 2, timeout=0.25),
    "slower-than-the-timeout-twice": FirstCall(
        (Fault(200, delay=1.0),) * 2, 2, ApiVideoAuthError, "timed out", None, timeout=0.25
    ),
    "dropped-connection-once": FirstCall((Fault(0),), 2),
    "dropped-connection-twice": FirstCall(
        (Fault(0),) * 2, 2, ApiVideoAuthError, "/auth/api-key", None
    ),
    "html-page": FirstCall(
        (
            Fault(
                200, body="<!doctype html><p>Bad gateway</p>", headers={"Content-Type": "text/html"}
            ),
        ),
        1,
        ApiVideoAuthError,
        "malformed token",
        200,
    ),
    "empty-body": FirstCall((Fault(200, body=b""),), 1, ApiVideoAuthError, "malformed token", 200),
    "deeply-nested-json": FirstCall(
        (Fault(200, body="[" * 10_000),), 1, ApiVideoAuthError, "malformed token", 200
    ),
    "a-megabyte-of-json": FirstCall(
        (Fault(200, body=token_body(padding="x" * MIB)),), 1, ApiVideoAuthError, "larger", None
    ),
    # A token that an HTTP header cannot carry (not an RFC 6750 b64token) is malformed.
    "access-token-not-latin-1": FirstCall(
        (Fault(200, body=token_body(access_token="tok\u20ac" * 10)),),
        1,
        ApiVideoAuthError,
        "access_token",
        200,
    ),
    "json-array": FirstCall(
        (Fault(200, body="[]"),), 1, ApiVideoAuthError, "not a JSON object", 200
    ),
    "json-without-access-token": FirstCall(
        (Fault(200, body=token_body(access_token=...)),), 1, ApiVideoAuthError, "access_token", 200
    ),
    "json-without-refresh-token": FirstCall(
        (Fault(200, body=token_body(refresh_token=...)),),
        1,
        ApiVideoAuthError,
        "refresh_token",
        200,
    ),
    "access-token-with-a-space": FirstCall(
        (Fault(200, body=token_body(access_token="abc def")),), 1, ApiVideoAuthError, "access", 200
    ),
    "token-type-not-bearer": FirstCall(
        (Fault(200, body=token_body(token_type="MAC")),), 1, ApiVideoAuthError, "token_type", 200
    ),
    "expires-in-as-a-string": FirstCall(
        (Fault(200, body=token_body(expires_in="3600")),), 1, ApiVideoAuthError, "expires_in", 200
    ),
    "expires-in-negative": FirstCall(
        (Fault(200, body=token_body(expires_in=-60)),), 1, ApiVideoAuthError, "expires_in", 200
    ),
    "expires-in-zero": FirstCall(
        (Fault(200, body=token_body(expires_in=0)),), 1, ApiVideoAuthError, "expires_in", 200
    ),
    "expires-in-nan": FirstCall(
        (Fault(200, body=token_body(expires_in=math.nan)),), 1, ApiVideoAuthError, "expires_in", 200
    ),
    "expires-in-true": FirstCall(
        (Fault(200, body=token_body(expires_in=True)),), 1, ApiVideoAuthError, "expires_in", 200
    ),
    "expires-in-missing": FirstCall(
        (Fault(200, body=token_body(expires_in=...)),), 1, ApiVideoAuthError, "expires_in", 200
    ),
    "408": FirstCall((Fault(408),), 1, ApiVideoAuthError, "answered 408", 408),
    "403": FirstCall((Fault(403),), 1, InvalidApiKeyError, "answered 403", 403),
    # Token calls never follow redirects: the key would go wherever Location points.
    "307-back-to-the-token-endpoint": FirstCall(
        (Fault(307, body=b"", headers={"Location": "/auth/api-key"}),),
        1,
        ApiVideoAuthError,
        "answered 307",
        307,
    ),
}


@pytest.mark.parametrize("case", FIRST_CALLS.values(), ids=FIRST_CALLS.keys())
def test_a_fault_on_the_first_token_call_ends_in_success_or_a_typed_error(
    fake: FakeApiVideo, key: str, clock: FakeClock, case: FirstCall
) -> None:
    fake.fail_token_calls(*case.faults)
    auth = ApiVideoAuth(key, base_url=fake.url, clock=clock, timeout=case.timeout)
    with requests.Session() as session:
        session.auth = auth
        with Timer() as timer:
            if case.error is None:
                response = session.get(fake.url + "/videos")
            else:
                with pytest.raises(ApiVideoAuthError) as excinfo:
                    session.get(fake.url + "/videos")
        assert timer.elapsed >= case.min_elapsed  # the Retry-After was honoured
        assert (fake.api_key_calls, fake.refresh_calls) == (case.api_key_calls, 0)
        assert_token_calls_carry_no_authorization(fake)
        if case.error is None:
            assert response.status_code == 200 and response.history == []
            assert authorization_headers(fake) == [bearer(auth.get_token())]
            return
        exc = excinfo.value
        assert type(exc) is case.error
        assert case.match in str(exc)
        assert "/auth/api-key" in str(exc) and key not in str(exc) and key not in repr(exc)
        assert (exc.response.status_code if exc.response is not None else None) == case.status
        assert authorization_headers(fake) == []  # no request left without a token
        # The failure poisons nothing: the next request authenticates with one more call.
        assert session.get(fake.url + "/videos").status_code == 200
        assert fake.api_key_calls == case.api_key_calls + 1
        assert authorization_headers(fake) == [bearer(auth.get_token())]


def test_connection_refused_is_retried_twice_then_a_typed_error(
    key: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeApiVideo(api_keys=[key]) as stopped:
        url = stopped.url
    attempts: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def counting(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        attempts.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    auth = ApiVideoAuth(key, base_url=url, clock=clock, timeout=2)
    with Timer(), pytest.raises(ApiVideoAuthError, match="/auth/api-key") as excinfo:
        requests.get(url + "/videos", auth=auth)
    assert type(excinfo.value) is ApiVideoAuthError
    assert excinfo.value.response is None
    assert key not in str(excinfo.value)
    # Connection errors are retried (nothing reached the server): one try and two retries,
    # and the API request itself was never attempted.
    port = int(url.rsplit(":", 1)[1])
    assert attempts == [("127.0.0.1", port)] * 3


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_rejected_key_raises_invalid_api_key_error_after_exactly_one_call(
    key: str, clock: FakeClock, status: int
) -> None:
    with FakeApiVideo(api_keys=[key], invalid_key_status=status) as fake:
        auth = ApiVideoAuth("not-" + key, base_url=fake.url, clock=clock)
        with requests.Session() as session:
            session.auth = auth
            for attempt in (1, 2):  # each request tries once: no storm, no cached failure
                with Timer(), pytest.raises(InvalidApiKeyError, match=f"answered {status}") as e:
                    session.get(fake.url + "/videos")
                assert isinstance(e.value, requests.RequestException)
                assert f"POST {fake.url}/auth/api-key answered {status}" in str(e.value)
                assert e.value.response is not None and e.value.response.status_code == status
                assert key not in str(e.value)
                assert (fake.api_key_calls, fake.refresh_calls) == (attempt, 0)
        assert authorization_headers(fake) == []
        assert fake.unauthorized == 0


@pytest.mark.parametrize("lifetime", [10**12, math.inf], ids=["1e12", "infinity"])
def test_an_absurd_lifetime_is_accepted_but_capped_at_a_day(
    fake: FakeApiVideo,
    session: requests.Session,
    auth: ApiVideoAuth,
    clock: FakeClock,
    lifetime: float,
) -> None:
    fake.token_ttl = lifetime  # the emulator issues (and honours) this expires_in
    assert session.get(fake.url + "/videos").status_code == 200
    clock.advance(86400 - 61)  # a day less the refresh margin and a second: still fresh
    assert session.get(fake.url + "/videos").status_code == 200
    assert fake.token_calls == 1
    clock.advance(47)  # 14 s left of the capped day: renewal is due
    assert session.get(fake.url + "/videos").status_code == 200
    assert (fake.api_key_calls, fake.refresh_calls) == (1, 1)
    old, new = authorization_headers(fake)[1:]
    assert old != new == bearer(auth.get_token())


# -- a 401 on a request that carried the token ------------------------------------------


@dataclass(frozen=True)
class After401:
    """Something that happens to a token already in use, and what must come of it."""

    prepare: Callable[[FakeApiVideo, ServerClock, str], object]
    refresh_calls: int
    api_key_calls: int
    error: type[ApiVideoAuthError] | None = None
    final_status: int = 200
    timeout: float = 10.0
    faults: tuple[Fault, ...] = ()


def expire_on_the_emulator_clock(fake: FakeApiVideo, server: ServerClock, key: str) -> None:
    server.advance(3601)  # the client's clock does not move: it believes the token fresh


def expire_all(fake: FakeApiVideo, server: ServerClock, key: str) -> None:
    fake.expire_all()


def revoke_all(fake: FakeApiVideo, server: ServerClock, key: str) -> None:
    fake.revoke_all()


def revoke_the_key_too(fake: FakeApiVideo, server: ServerClock, key: str) -> None:
    fake.revoke_all()
    fake.api_keys.discard(key)


def kill_every_token_at_once(fake: FakeApiVideo, server: ServerClock, key: str) -> None:
    # Each reading of the emulator's clock jumps far ahead, so each access token has
    # expired by the time it is first used: every request is answered 401, forever.
    server.step = 10.0**6


AFTER_401 = {
    "server-side-expiry": After401(expire_on_the_emulator_clock, 1, 0),
    "expire-all": After401(expire_all, 1, 0),
    "revocation": After401(revoke_all, 1, 1),
    "refresh-rejected-with-401": After401(expire_all, 1, 1, faults=(Fault(401),)),
    # /auth/refresh is not asked again after an error status or a lost answer (the server
    # may have spent its single-use token): the key is the way back.
    "refresh-answered-500": After401(expire_all, 1, 1, faults=(Fault(500),)),
    "refresh-answered-503-with-retry-after": After401(
        expire_all, 1, 1, faults=(Fault(503, headers={"Retry-After": "1"}),)
    ),
    "refresh-dropped": After401(expire_all, 1, 1, faults=(Fault(0),)),
    "refresh-slower-than-the-timeout": After401(
        expire_all, 1, 1, timeout=0.5, faults=(Fault(200, delay=1.5),)
    ),
    "refresh-and-key-both-fail": After401(
        expire_all, 1, 1, ApiVideoAuthError, faults=(Fault(0), Fault(408))
    ),
    "key-revoked-too": After401(revoke_the_key_too, 1, 1, InvalidApiKeyError),
    "persistent-401": After401(kill_every_token_at_once, 1, 0, final_status=401),
}


@pytest.mark.parametrize("case", AFTER_401.values(), ids=AFTER_401.keys())
def test_a_401_on_a_token_in_use_is_replayed_once_or_ends_in_a_typed_error(
    fake: FakeApiVideo, key: str, clock: FakeClock, server_clock: ServerClock, case: After401
) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url, clock=clock, timeout=case.timeout)
    with requests.Session() as session:
        session.auth = auth
        assert session.get(fake.url + "/videos").status_code == 200
        old = bearer(auth.get_token())
        fake.reset_counters()
        case.prepare(fake, server_clock, key)
        fake.fail_token_calls(*case.faults)
        with Timer():
            if case.error is None:
                response = session.get(fake.url + "/videos")
            else:
                with pytest.raises(ApiVideoAuthError) as excinfo:
                    session.get(fake.url + "/videos")
        assert (fake.refresh_calls, fake.api_key_calls) == (case.refresh_calls, case.api_key_calls)
        assert_token_calls_carry_no_authorization(fake)
        sent = authorization_headers(fake)
        if case.error is not None:
            assert type(excinfo.value) is case.error
            assert key not in str(excinfo.value)
            assert sent == [old]  # nothing replayed without a new token
            assert fake.unauthorized == 1
            return
        # Exactly one replay, with the new token, whatever its answer.
        assert response.status_code == case.final_status
        assert [h.status_code for h in response.history] == [401]
        assert len(sent) == 2 and sent[0] == old != sent[1]
        assert response.request.headers["Authorization"] == sent[1]
        assert fake.unauthorized == (2 if case.final_status == 401 else 1)
        if case.final_status == 200:
            assert sent[1] == bearer(auth.get_token())
            return
        # A persistent 401: the just-renewed token was refused too, so the next 401 on it
        # is returned as it is, with no renewal and no replay (no storm, no loop).
        again = session.get(fake.url + "/videos")
        assert again.status_code == 401 and again.history == []
        assert len(authorization_headers(fake)) == 3
        assert (fake.refresh_calls, fake.api_key_calls) == (1, 0)


@pytest.mark.parametrize(
    ("kill", "calls"),
    [("expire_all", (1, 0)), ("revoke_all", (1, 1))],
    ids=["access-token-dead", "refresh-token-dead-too"],
)
def test_a_64_thread_401_storm_during_a_slow_renewal_makes_one_renewal(
    fake: FakeApiVideo,
    session: requests.Session,
    auth: ApiVideoAuth,
    kill: str,
    calls: tuple[int, int],
) -> None:
    old = bearer(auth.get_token())
    getattr(fake, kill)()
    fake.reset_counters()
    fake.fail_token_calls(Fault(200, delay=0.3))  # a slow refresh: the others pile up meanwhile
    barrier = threading.Barrier(64)
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            response = session.get(fake.url + "/videos")
            results.append((response.status_code, len(response.history)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(64)]
    with Timer():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=HANG_GUARD)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    assert all(status == 200 and replays <= 1 for status, replays in results)
    assert len(results) == 64
    # At most one /auth/refresh, and one /auth/api-key only if the refresh token died too.
    assert (fake.refresh_calls, fake.api_key_calls) == calls
    new = bearer(auth.get_token())
    sent = authorization_headers(fake)
    assert set(sent) <= {old, new}
    assert sent.count(new) == 64  # each thread's final answer came with the new token
    assert sent.count(old) == fake.unauthorized == sum(replays for _, replays in results)


def test_the_replayed_response_reports_its_own_elapsed_time(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    assert session.get(fake.url + "/videos").status_code == 200
    fake.expire_all()
    response = session.get(fake.url + "/videos")
    assert [h.status_code for h in response.history] == [401]
    assert response.elapsed > datetime.timedelta(0)


# -- redirects --------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["302", "307"])
@pytest.mark.parametrize("target", ["another-emulator", "same-emulator-as-localhost"])
def test_a_cross_origin_redirect_answering_401_gets_no_token_and_no_replay(
    fake: FakeApiVideo, session: requests.Session, auth: ApiVideoAuth, target: str, status: str
) -> None:
    old = bearer(auth.get_token())
    fake.reset_counters()
    with FakeApiVideo(api_keys=["other"]) as foreign:
        if target == "another-emulator":
            receiver, to = foreign, foreign.url + "/videos"
        else:  # another origin (host differs) that reaches the very same server
            receiver, to = fake, fake.url.replace("127.0.0.1", "localhost") + "/videos"
        with Timer():
            response = session.get(fake.url + "/redirect", params={"to": to, "status": status})
        assert response.status_code == 401
        assert [h.status_code for h in response.history] == [int(status)]
        assert "Authorization" not in response.request.headers
        hops = [r for r in receiver.requests if r.path == "/videos"]
        assert len(hops) == 1 and "Authorization" not in hops[0].headers
        assert foreign.token_calls == 0
    assert authorization_headers(fake, "/redirect") == [old]  # not replayed
    assert fake.token_calls == 0  # no renewal for a 401 from elsewhere
    assert bearer(auth.get_token()) == old


@pytest.mark.parametrize(("method", "expected"), [("GET", 200), ("POST", 201)])
def test_a_same_origin_redirect_after_a_replay_carries_the_new_token(
    fake: FakeApiVideo, session: requests.Session, auth: ApiVideoAuth, method: str, expected: int
) -> None:
    old = bearer(auth.get_token())
    fake.expire_all()
    fake.reset_counters()
    with Timer():
        response = session.request(
            method,
            fake.url + "/redirect",
            params={"to": "/videos", "status": "307"},
            json={"title": "t"} if method == "POST" else None,
        )
    assert response.status_code == expected
    new = bearer(auth.get_token())
    assert new != old
    assert authorization_headers(fake, "/redirect") == [old, new]
    assert authorization_headers(fake, "/videos") == [new]
    assert (fake.refresh_calls, fake.api_key_calls) == (1, 0)
    if method == "POST":
        bodies = [r.body_size for r in fake.requests if r.path != "/auth/refresh"]
        assert len(set(bodies)) == 1 and bodies[0] > 0  # the body went along every time


# -- bodies -----------------------------------------------------------------------------


@pytest.fixture
def source_url(fake: FakeApiVideo, session: requests.Session) -> str:
    video = session.post(fake.url + "/videos", json={"title": "t"}).json()
    return f"{fake.url}/videos/{video['videoId']}/source"


def test_a_body_that_cannot_be_rewound_is_not_replayed_but_the_token_is_renewed(
    fake: FakeApiVideo,
    session: requests.Session,
    auth: ApiVideoAuth,
    source_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = bearer(auth.get_token())
    path = source_url.removeprefix(fake.url)
    fake.expire_all()
    fake.reset_counters()
    with caplog.at_level(logging.WARNING, logger="requests_apivideo"), Timer():
        response = session.post(source_url, data=(b"x" * 1000 for _ in range(10)))
    assert response.status_code == 401 and response.history == []
    assert "cannot be rewound" in caplog.text
    assert (fake.refresh_calls, fake.api_key_calls) == (1, 0)  # renewed before returning
    retry = session.post(source_url, data=(b"x" * 1000 for _ in range(10)))
    assert retry.status_code == 201 and retry.history == []
    assert retry.headers["X-Received-Bytes"] == "10000"
    assert fake.token_calls == 1  # the caller's own retry needed no token call
    assert authorization_headers(fake, path) == [old, bearer(auth.get_token())]


def test_a_50_mib_file_body_is_replayed_byte_for_byte(
    fake: FakeApiVideo, session: requests.Session, auth: ApiVideoAuth, source_url: str
) -> None:
    old = bearer(auth.get_token())
    path = source_url.removeprefix(fake.url)
    payload = os.urandom(50 * MIB)
    digest = hashlib.sha256(payload).hexdigest()
    fake.expire_all()
    fake.reset_counters()
    with tempfile.TemporaryFile() as file:
        file.write(b"a header the caller skipped|")
        start = file.tell()
        file.write(payload)
        file.seek(start)
        with Timer():
            response = session.post(source_url, data=file)
    assert response.status_code == 201
    assert [h.status_code for h in response.history] == [401]
    assert response.headers["X-Received-Bytes"] == str(len(payload))
    assert response.headers["X-Received-Sha256"] == digest
    received = [r for r in fake.requests if r.path == path]
    assert [(r.body_size, r.body_sha256) for r in received] == [(len(payload), digest)] * 2
    assert authorization_headers(fake, path) == [old, bearer(auth.get_token())]
    assert (fake.refresh_calls, fake.api_key_calls) == (1, 0)


# -- an early refresh that fails ----------------------------------------------------------

# Failures that the token session does not retry: a lost answer from /auth/refresh, then
# /auth/api-key answering 408 or losing its answer twice (it is asked once more).
EARLY_FAILURES = {
    "408": ((Fault(0), Fault(408)), (1, 1)),
    "dropped": ((Fault(0), Fault(0), Fault(0)), (1, 2)),
}


@pytest.mark.parametrize(("faults", "calls"), EARLY_FAILURES.values(), ids=EARLY_FAILURES.keys())
def test_an_early_refresh_that_fails_keeps_the_valid_token_warns_and_backs_off(
    fake: FakeApiVideo,
    session: requests.Session,
    auth: ApiVideoAuth,
    key: str,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    faults: tuple[Fault, ...],
    calls: tuple[int, int],
) -> None:
    videos = fake.url + "/videos"
    assert session.get(videos).status_code == 200
    old = bearer(auth.get_token())
    clock.advance(3600 - 50)  # 50 s left: inside the 60 s margin, far from expiry
    fake.reset_counters()
    fake.fail_token_calls(*faults)  # the refresh, then the fallback to the key
    with caplog.at_level(logging.WARNING, logger="requests_apivideo"), Timer():
        response = session.get(videos)
    assert response.status_code == 200 and response.history == []
    assert authorization_headers(fake) == [old]
    assert (fake.refresh_calls, fake.api_key_calls) == calls
    warnings = [
        r for r in caplog.records if r.name.startswith("requests_apivideo") and r.levelno >= 30
    ]
    assert len(warnings) == 1 and "early token refresh failed" in warnings[0].getMessage()
    assert key not in caplog.text and old.split()[1] not in caplog.text
    # Back off: the very next requests make no token call and keep the old token.
    assert session.get(videos).status_code == 200
    assert fake.token_calls == sum(calls)
    waited = 0
    while fake.token_calls == sum(calls):
        clock.advance(1)
        waited += 1
        assert session.get(videos).status_code == 200
        assert waited < 35, "no second try before the mandatory window"
    assert waited > 1  # there was a back-off
    # The second try, before the mandatory window, renewed the token.
    new = bearer(auth.get_token())
    assert new != old
    assert authorization_headers(fake)[-1] == new
    assert set(authorization_headers(fake)[:-1]) == {old}


def test_a_failed_renewal_reaches_the_caller_once_the_token_is_about_to_expire(
    fake: FakeApiVideo, session: requests.Session, auth: ApiVideoAuth, clock: FakeClock
) -> None:
    videos = fake.url + "/videos"
    assert session.get(videos).status_code == 200
    old = bearer(auth.get_token())
    clock.advance(3600 - 50)
    fake.fail_token_calls(Fault(0), Fault(408))
    assert session.get(videos).status_code == 200  # early failure: swallowed, backing off
    fake.reset_counters()
    clock.advance(40)  # 10 s left: about to expire, even though the back-off has not passed
    fake.fail_token_calls(Fault(0), Fault(408))
    with Timer(), pytest.raises(ApiVideoAuthError, match="answered 408") as excinfo:
        session.get(videos)
    assert type(excinfo.value) is ApiVideoAuthError
    # The early try presented the refresh token and lost the answer: it may be spent, so it
    # is never presented again; the key is asked (twice: once more after a lost answer).
    assert (fake.refresh_calls, fake.api_key_calls) == (0, 2)
    assert authorization_headers(fake) == []  # the request was not sent with a dying token
    assert session.get(videos).status_code == 200  # and the next one renews
    assert fake.token_calls == 3
    assert authorization_headers(fake) == [bearer(auth.get_token())] != [old]
