"""Unit tests of ApiVideoAuth's flow and error mapping, with `responses` as the server."""

from __future__ import annotations

import json
import logging
import pickle
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from requests_apivideo import ApiVideoAuth, ApiVideoAuthError, InvalidApiKeyError
from requests_apivideo.testing import FakeClock

from .helpers import WatchedLock, bearer, calls_to

BASE = "https://ws.api.video"
API_KEY_URL = f"{BASE}/auth/api-key"
REFRESH_URL = f"{BASE}/auth/refresh"
VIDEOS = f"{BASE}/videos"


def token_body(n: int, expires_in: Any = 3600) -> dict[str, Any]:
    return {
        "token_type": "Bearer",
        "expires_in": expires_in,
        "access_token": f"access-{n}",
        "refresh_token": f"refresh-{n}",
    }


def serve_tokens(rsps: responses.RequestsMock) -> None:
    """Answer the first token call with token 1 and a refresh with token 2."""
    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.post(REFRESH_URL, json=token_body(2))


def carrying(n: int) -> Callable[..., tuple[bool, str]]:
    """Match a request that carries the access token ``access-{n}``."""
    return matchers.header_matcher({"Authorization": bearer(f"access-{n}")})


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def auth(key: str, clock: FakeClock) -> ApiVideoAuth:
    return ApiVideoAuth(key, clock=clock)


def sent_headers(rsps: responses.RequestsMock, url: str) -> list[str | bytes | None]:
    return [c.request.headers.get("Authorization") for c in rsps.calls if c.request.url == url]


# -- token lifecycle --------------------------------------------------------------------


def test_first_request_fetches_a_token_and_sends_it_as_bearer(
    rsps: responses.RequestsMock, auth: ApiVideoAuth, key: str
) -> None:
    rsps.post(
        API_KEY_URL, json=token_body(1), match=[matchers.json_params_matcher({"apiKey": key})]
    )
    rsps.get(VIDEOS, json={"data": []}, match=[carrying(1)])

    assert requests.get(VIDEOS, auth=auth).status_code == 200
    assert requests.get(VIDEOS, auth=auth).status_code == 200
    assert calls_to(rsps, API_KEY_URL) == 1
    token_call = rsps.calls[0].request
    assert "Authorization" not in token_call.headers
    assert token_call.headers["Content-Type"] == "application/json"


def test_token_is_refreshed_with_the_refresh_token_before_it_expires(
    rsps: responses.RequestsMock, auth: ApiVideoAuth, clock: FakeClock
) -> None:
    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.post(
        REFRESH_URL,
        json=token_body(2),
        match=[matchers.json_params_matcher({"refreshToken": "refresh-1"})],
    )
    rsps.get(VIDEOS, json={})

    requests.get(VIDEOS, auth=auth)
    clock.advance(3600 - 61)  # just outside the 60 s margin: no refresh yet
    requests.get(VIDEOS, auth=auth)
    assert calls_to(rsps, REFRESH_URL) == 0
    clock.advance(2)  # 59 s left
    requests.get(VIDEOS, auth=auth)
    assert calls_to(rsps, REFRESH_URL) == 1
    assert sent_headers(rsps, VIDEOS) == ["Bearer access-1", "Bearer access-1", "Bearer access-2"]


def test_refresh_margin_is_capped_at_half_the_lifetime_so_short_tokens_cause_no_storm(
    rsps: responses.RequestsMock, auth: ApiVideoAuth, clock: FakeClock
) -> None:
    rsps.post(API_KEY_URL, json=token_body(1, expires_in=20))
    rsps.post(REFRESH_URL, json=token_body(2, expires_in=20))
    rsps.get(VIDEOS, json={})

    for _ in range(19):  # 9.5 s of requests, every half second
        requests.get(VIDEOS, auth=auth)
        clock.advance(0.5)
    assert calls_to(rsps, API_KEY_URL) + calls_to(rsps, REFRESH_URL) == 1
    clock.advance(1)  # 10 s left out of 20: the capped margin is reached
    requests.get(VIDEOS, auth=auth)
    assert calls_to(rsps, REFRESH_URL) == 1


def test_expired_token_whose_refresh_is_rejected_falls_back_to_the_api_key(
    rsps: responses.RequestsMock, auth: ApiVideoAuth, clock: FakeClock
) -> None:
    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.post(REFRESH_URL, status=400, json={"title": "The user credentials were incorrect."})
    rsps.post(API_KEY_URL, json=token_body(2))
    rsps.get(VIDEOS, json={})

    requests.get(VIDEOS, auth=auth)
    clock.advance(3601)
    requests.get(VIDEOS, auth=auth)
    assert calls_to(rsps, REFRESH_URL) == 1
    assert calls_to(rsps, API_KEY_URL) == 2
    assert sent_headers(rsps, VIDEOS)[-1] == "Bearer access-2"


def test_early_refresh_that_fails_keeps_the_valid_token_warns_and_backs_off(
    rsps: responses.RequestsMock,
    auth: ApiVideoAuth,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    key: str,
) -> None:
    auth = ApiVideoAuth(key, clock=clock, session=requests.Session())  # no retries: 1 call each
    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.get(VIDEOS, json={})
    requests.get(VIDEOS, auth=auth)
    rsps.replace(responses.POST, API_KEY_URL, status=503)
    rsps.post(REFRESH_URL, status=503)

    clock.advance(3600 - 50)  # inside the advisory window (60 s), far from the mandatory one
    with caplog.at_level(logging.WARNING, logger="requests_apivideo"):
        assert requests.get(VIDEOS, auth=auth).status_code == 200
    assert "early token refresh failed" in caplog.text
    assert sent_headers(rsps, VIDEOS)[-1] == "Bearer access-1"
    assert calls_to(rsps, REFRESH_URL) == 1  # then the key, once
    assert calls_to(rsps, API_KEY_URL) == 2

    requests.get(VIDEOS, auth=auth)  # backing off: no token call
    assert calls_to(rsps, REFRESH_URL) == 1

    clock.advance(45)  # 5 s left: mandatory window, the failure reaches the caller
    with pytest.raises(ApiVideoAuthError, match="503"):
        requests.get(VIDEOS, auth=auth)


def test_wall_clock_jump_forward_triggers_a_refresh_not_a_failure(
    rsps: responses.RequestsMock, auth: ApiVideoAuth, clock: FakeClock
) -> None:
    serve_tokens(rsps)
    rsps.get(VIDEOS, json={})
    requests.get(VIDEOS, auth=auth)
    clock.wall += 7200  # the machine slept, or NTP stepped: monotonic did not move
    requests.get(VIDEOS, auth=auth)
    assert sent_headers(rsps, VIDEOS) == ["Bearer access-1", "Bearer access-2"]
    clock.wall -= 86400  # a jump back does not make a token look younger than it is
    requests.get(VIDEOS, auth=auth)
    assert calls_to(rsps, REFRESH_URL) == 1


def test_new_instances_with_the_same_key_share_one_token(
    rsps: responses.RequestsMock, key: str, clock: FakeClock
) -> None:
    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.get(VIDEOS, json={})
    for _ in range(5):
        requests.get(VIDEOS, auth=ApiVideoAuth(key, clock=clock))
    assert calls_to(rsps, API_KEY_URL) == 1


def test_get_token_and_invalidate(rsps: responses.RequestsMock, auth: ApiVideoAuth) -> None:
    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.post(API_KEY_URL, json=token_body(2))
    assert auth.get_token() == "access-1"
    assert auth.get_token() == "access-1"
    auth.invalidate()
    assert auth.get_token() == "access-2"
    assert calls_to(rsps, REFRESH_URL) == 0


# -- 401 and replay ---------------------------------------------------------------------


def test_401_renews_once_and_replays_with_the_new_token(
    rsps: responses.RequestsMock, auth: ApiVideoAuth
) -> None:
    serve_tokens(rsps)
    rsps.get(VIDEOS, status=401, match=[carrying(1)])
    rsps.get(VIDEOS, json={"data": []}, match=[carrying(2)])

    response = requests.get(VIDEOS, auth=auth)
    assert response.status_code == 200
    assert [h.status_code for h in response.history] == [401]
    assert response.request.headers["Authorization"] == "Bearer access-2"


def test_a_second_401_is_returned_to_the_caller_without_a_loop(
    rsps: responses.RequestsMock, auth: ApiVideoAuth
) -> None:
    serve_tokens(rsps)
    rsps.get(VIDEOS, status=401)

    response = requests.get(VIDEOS, auth=auth)
    assert response.status_code == 401
    assert len(response.history) == 1
    assert calls_to(rsps, VIDEOS) == 2
    assert calls_to(rsps, REFRESH_URL) == 1


def test_401_after_another_thread_renewed_just_replays(
    rsps: responses.RequestsMock, auth: ApiVideoAuth, key: str, clock: FakeClock
) -> None:
    other = ApiVideoAuth(key, clock=clock)

    def revoked(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        other.invalidate()
        other.get_token()  # another thread renews while this request is in flight
        return 401, {}, ""

    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.post(API_KEY_URL, json=token_body(2))
    rsps.add_callback(responses.GET, VIDEOS, callback=revoked)
    rsps.get(VIDEOS, json={}, match=[carrying(2)])

    assert requests.get(VIDEOS, auth=auth).status_code == 200
    assert calls_to(rsps, API_KEY_URL) == 2  # the first token and the other thread's
    assert calls_to(rsps, REFRESH_URL) == 0


def test_renewal_failure_after_401_raises_a_typed_error(
    rsps: responses.RequestsMock, auth: ApiVideoAuth
) -> None:
    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.get(VIDEOS, status=401)
    rsps.post(REFRESH_URL, status=400)
    rsps.post(API_KEY_URL, status=401, json={"title": "The API key is invalid."})

    with pytest.raises(InvalidApiKeyError) as excinfo:
        requests.get(VIDEOS, auth=auth)
    assert excinfo.value.response is not None
    assert excinfo.value.response.status_code == 401
    assert "The API key is invalid." in str(excinfo.value)


@pytest.mark.parametrize(
    "make_body",
    [
        pytest.param(lambda: b"exact bytes", id="bytes"),
        pytest.param(lambda: "text body", id="str"),
    ],
)
def test_replayable_bodies_are_sent_again_in_full(
    rsps: responses.RequestsMock, auth: ApiVideoAuth, make_body: Any
) -> None:
    received: list[bytes] = []

    def record(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body: Any = request.body  # bytes, str or the file-like object make_body gave
        data = body.read() if hasattr(body, "read") else body
        received.append(data.encode() if isinstance(data, str) else data)
        return (401, {}, "") if len(received) == 1 else (201, {}, "{}")

    serve_tokens(rsps)
    rsps.add_callback(responses.POST, VIDEOS, callback=record)

    assert requests.post(VIDEOS, data=make_body(), auth=auth).status_code == 201
    assert len(received) == 2
    assert received[0] == received[1] != b""


def test_cookies_set_on_the_401_are_sent_on_the_replay(
    rsps: responses.RequestsMock, auth: ApiVideoAuth
) -> None:
    serve_tokens(rsps)
    rsps.get(VIDEOS, status=401, headers={"Set-Cookie": "lb=node7; Path=/"})
    rsps.get(VIDEOS, json={})

    session = requests.Session()
    session.cookies.set("user", "u1", domain="ws.api.video", path="/")
    session.auth = auth
    assert session.get(VIDEOS).status_code == 200
    cookie = rsps.calls[-1].request.headers["Cookie"]
    assert "lb=node7" in cookie
    assert "user=u1" in cookie


def test_user_hooks_see_the_replayed_response(
    rsps: responses.RequestsMock, auth: ApiVideoAuth
) -> None:
    serve_tokens(rsps)
    rsps.get(VIDEOS, status=401)
    rsps.get(VIDEOS, json={})
    seen: list[int] = []

    def hook(r: requests.Response, **kwargs: Any) -> None:
        seen.append(r.status_code)
        r.raise_for_status()

    requests.get(VIDEOS, auth=auth, hooks={"response": hook})
    assert seen == [200]


def test_applying_the_auth_twice_registers_one_replay_per_request(
    rsps: responses.RequestsMock, auth: ApiVideoAuth
) -> None:
    serve_tokens(rsps)
    rsps.get(VIDEOS, status=401)
    prepared = requests.Request("GET", VIDEOS, auth=auth).prepare()
    auth(prepared)
    response = requests.Session().send(prepared)
    assert response.status_code == 401
    assert calls_to(rsps, VIDEOS) == 2


# -- scope ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/videos",
        "http://ws.api.video/videos",  # same host, other scheme: another origin
        "https://ws.api.video:8443/videos",
        "https://ws.api.video.example.com/videos",
        "https://sandbox.api.video/videos",
    ],
)
def test_requests_to_other_origins_pass_untouched(
    rsps: responses.RequestsMock, auth: ApiVideoAuth, url: str
) -> None:
    rsps.get(url, status=401)
    prepared = requests.Request("GET", url, auth=auth).prepare()
    assert "Authorization" not in prepared.headers
    assert prepared.hooks["response"] == []
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://WS.api.video/videos",
        "https://ws.api.video:443/videos",
        "HTTPS://ws.API.video:443/videos?x=1#frag",
    ],
)
def test_origin_ignores_case_and_default_port(
    rsps: responses.RequestsMock, auth: ApiVideoAuth, url: str
) -> None:
    rsps.post(API_KEY_URL, json=token_body(1))
    prepared = requests.Request("GET", url, auth=auth).prepare()
    assert prepared.headers["Authorization"] == "Bearer access-1"


@pytest.mark.parametrize(
    "path",
    ["/auth/api-key", "/auth/refresh", "/upload?token=to1234"],
)
def test_token_endpoints_and_delegated_uploads_pass_untouched(
    auth: ApiVideoAuth, path: str
) -> None:
    prepared = requests.Request("POST", BASE + path, auth=auth).prepare()
    assert "Authorization" not in prepared.headers
    assert prepared.hooks["response"] == []


# -- basic scheme -----------------------------------------------------------------------


def test_basic_scheme_sends_the_key_and_makes_no_token_calls(
    rsps: responses.RequestsMock, key: str
) -> None:
    rsps.get(VIDEOS, status=401)
    auth = ApiVideoAuth(key, scheme="basic")
    response = requests.get(VIDEOS, auth=auth)
    assert response.status_code == 401  # returned as is
    assert len(rsps.calls) == 1
    assert rsps.calls[0].request.headers["Authorization"] == requests.auth._basic_auth_str(key, "")
    assert (
        requests.Request("GET", "https://x.example/", auth=auth)
        .prepare()
        .headers.get("Authorization")
        is None
    )


# -- errors and secrets -----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>gateway</html>", id="html"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(json.dumps({"refresh_token": "r", "expires_in": 3600}), id="no-access-token"),
        pytest.param(json.dumps(token_body(1, expires_in="3600")), id="expires-in-string"),
        pytest.param(json.dumps(token_body(1, expires_in=0)), id="expires-in-zero"),
        pytest.param(json.dumps(token_body(1, expires_in=-5)), id="expires-in-negative"),
        pytest.param(json.dumps({**token_body(1), "token_type": "MAC"}), id="not-bearer"),
        pytest.param(json.dumps(token_body(1) | {"access_token": "tök"}), id="not-ascii"),
        pytest.param("[" * 20_000 + "]" * 20_000, id="deeply-nested"),
    ],
)
def test_malformed_token_answers_raise_auth_error(
    rsps: responses.RequestsMock, key: str, body: bytes | str
) -> None:
    rsps.post(API_KEY_URL, body=body, content_type="application/json")
    with pytest.raises(ApiVideoAuthError, match="malformed") as excinfo:
        ApiVideoAuth(key).get_token()
    assert not isinstance(excinfo.value, InvalidApiKeyError)
    assert "access-1" not in str(excinfo.value) and "refresh-1" not in str(excinfo.value)


def test_token_calls_do_not_follow_redirects(rsps: responses.RequestsMock, key: str) -> None:
    rsps.post(API_KEY_URL, status=307, headers={"Location": "https://evil.example/collect"})
    rsps.post("https://evil.example/collect", json=token_body(1))
    with pytest.raises(ApiVideoAuthError, match="307"):
        ApiVideoAuth(key).get_token()
    assert len(rsps.calls) == 1


def test_a_user_session_is_used_as_given_for_token_calls(
    rsps: responses.RequestsMock, key: str
) -> None:
    session = requests.Session()
    session.headers["X-Proxy-Tag"] = "corp"
    session.headers["Authorization"] = "Bearer corp-gateway"  # nor this default header
    session.auth = ("someone", "else")  # must not end up on the token call
    adapters = dict(session.adapters)
    rsps.post(API_KEY_URL, json=token_body(1))
    ApiVideoAuth(key, session=session).get_token()
    assert rsps.calls[0].request.headers["X-Proxy-Tag"] == "corp"
    assert "Authorization" not in rsps.calls[0].request.headers
    assert session.adapters == adapters


def test_repr_shows_base_url_and_at_most_four_characters_of_the_key() -> None:
    key = "abcdefghijklmnopqrstuvwxyz123456"
    assert (
        repr(ApiVideoAuth(key)) == "ApiVideoAuth(base_url='https://ws.api.video', api_key='…3456')"
    )
    assert "short" not in repr(ApiVideoAuth("shortkey"))


def test_logs_never_carry_the_key_or_a_token(
    rsps: responses.RequestsMock,
    auth: ApiVideoAuth,
    key: str,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def echo(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        # A server that echoes what it was sent, and the key, into its error title.
        title = f"bad {request.body!r} for {key}"
        return 400, {}, json.dumps({"title": title})

    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.add_callback(responses.POST, REFRESH_URL, callback=echo)
    rsps.post(API_KEY_URL, json=token_body(2))
    rsps.get(VIDEOS, status=401)
    rsps.get(VIDEOS, json={})
    rsps.post(VIDEOS, status=401)
    with caplog.at_level(logging.DEBUG):
        requests.get(VIDEOS, auth=auth)
        clock.advance(3590)
        requests.get(VIDEOS, auth=auth)
        requests.post(VIDEOS, data=iter([b"x"]), auth=auth)
    assert caplog.records
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in (key, "access-1", "access-2", "refresh-1", "refresh-2"):
        assert secret not in text


def test_pickle_carries_the_key_but_never_a_token_or_lock(
    rsps: responses.RequestsMock, auth: ApiVideoAuth, key: str
) -> None:
    rsps.post(API_KEY_URL, json=token_body(1))
    auth.get_token()
    data = pickle.dumps(requests.Session().__class__)  # sanity: pickling works at all
    session = requests.Session()
    session.auth = auth
    data = pickle.dumps(session)
    assert b"access-1" not in data and b"refresh-1" not in data
    copy = pickle.loads(data).auth
    assert isinstance(copy, ApiVideoAuth)
    assert repr(copy) == repr(auth)
    assert copy.base_url == auth.base_url


# -- construction -----------------------------------------------------------------------


def test_key_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv("APIVIDEO_API_KEY", key)
    assert ApiVideoAuth()._api_key == key
    monkeypatch.setenv("APIVIDEO_API_KEY", "")
    with pytest.raises(ValueError, match="APIVIDEO_API_KEY"):
        ApiVideoAuth()
    monkeypatch.delenv("APIVIDEO_API_KEY")
    with pytest.raises(ValueError, match="APIVIDEO_API_KEY"):
        ApiVideoAuth()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "https://ws.api.video"),
        ({"sandbox": True}, "https://sandbox.api.video"),
        ({"base_url": "https://proxy.example.com/apivideo/"}, "https://proxy.example.com/apivideo"),
        ({"base_url": "https://WS.api.video:443"}, "https://ws.api.video"),
        ({"base_url": "http://127.0.0.1:8080"}, "http://127.0.0.1:8080"),
        ({"base_url": "http://localhost:8080"}, "http://localhost:8080"),
        ({"base_url": "http://[::1]:8080"}, "http://[::1]:8080"),
        ({"base_url": "http://127.5.6.7"}, "http://127.5.6.7"),
        ({"base_url": "https://bücher.example"}, "https://xn--bcher-kva.example"),
    ],
)
def test_base_url_in_use_is_exposed(key: str, kwargs: dict[str, Any], expected: str) -> None:
    assert ApiVideoAuth(key, **kwargs).base_url == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sandbox": True, "base_url": "https://x.example"}, "not both"),
        ({"base_url": "http://ws.api.video"}, "clear text"),
        ({"base_url": "http://10.0.0.1:8080"}, "clear text"),
        ({"base_url": "ftp://ws.api.video"}, "http"),
        ({"base_url": "https://user:pw@ws.api.video"}, "credentials"),
        ({"base_url": "https://ws.api.video?x=1"}, "query"),
        ({"base_url": "https://ws.api.video:99999"}, "port"),
        ({"base_url": ""}, "host"),
        ({"scheme": "digest"}, "scheme"),
        ({"refresh_margin": -1}, "refresh_margin"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
    ],
)
def test_bad_options_raise_value_error(key: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ApiVideoAuth(key, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"api_key": b"bytes"}, {"timeout": "10"}, {"session": object()}, {"refresh_margin": True}],
)
def test_wrong_types_raise_type_error(key: str, kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("api_key", key)
    with pytest.raises(TypeError):
        ApiVideoAuth(**kwargs)


def test_a_non_ascii_host_matches_the_url_requests_sends(
    rsps: responses.RequestsMock, key: str
) -> None:
    rsps.post("https://xn--bcher-kva.example/auth/api-key", json=token_body(1))
    auth = ApiVideoAuth(key, base_url="https://bücher.example")
    prepared = requests.Request("GET", "https://bücher.example/videos", auth=auth).prepare()
    assert prepared.headers["Authorization"] == "Bearer access-1"


def test_a_user_session_with_raise_for_status_still_gets_a_typed_error(
    rsps: responses.RequestsMock, key: str
) -> None:
    session = requests.Session()
    session.hooks["response"].append(lambda r, **kwargs: r.raise_for_status())
    session.stream = True
    rsps.post(API_KEY_URL, status=400, json={"title": "The user credentials were incorrect."})
    with pytest.raises(InvalidApiKeyError) as excinfo:
        ApiVideoAuth(key, session=session).get_token()
    assert excinfo.value.response is not None and excinfo.value.response.status_code == 400


def test_errors_pickle_without_the_key(rsps: responses.RequestsMock, key: str) -> None:
    rsps.post(API_KEY_URL, status=401, json={"title": "no"})
    with pytest.raises(InvalidApiKeyError) as excinfo:
        ApiVideoAuth(key).get_token()
    assert key.encode() not in pickle.dumps(excinfo.value)
    assert excinfo.value.__context__ is None and excinfo.value.__cause__ is None


def test_an_explicit_cookie_header_survives_the_replay(
    rsps: responses.RequestsMock, auth: ApiVideoAuth
) -> None:
    serve_tokens(rsps)
    rsps.get(VIDEOS, status=401)
    rsps.get(VIDEOS, json={})
    requests.get(VIDEOS, auth=auth, headers={"Cookie": "session=abc"})
    cookies = [c.request.headers.get("Cookie") for c in rsps.calls if c.request.url == VIDEOS]
    assert cookies == ["session=abc"] * 2


def test_in_memory_bodies_of_any_kind_are_replayed(
    rsps: responses.RequestsMock, auth: ApiVideoAuth
) -> None:
    serve_tokens(rsps)
    rsps.post(VIDEOS, status=401)
    rsps.post(VIDEOS, status=201)
    body = bytearray(b"mutable bytes")
    assert requests.post(VIDEOS, data=body, auth=auth).status_code == 201
    sent = rsps.calls[-1].request.body
    assert isinstance(sent, (bytes, bytearray)) and sent == body


def test_server_text_in_a_transport_error_is_scrubbed_of_the_key(
    rsps: responses.RequestsMock, key: str
) -> None:
    # e.g. urllib3 quoting a broken chunk-size line in which a proxy echoed the request
    echo = requests.exceptions.ChunkedEncodingError(
        f"InvalidChunkLength(got {{'apiKey': '{key}'}})"
    )
    rsps.post(API_KEY_URL, body=echo)
    with pytest.raises(ApiVideoAuthError, match="InvalidChunkLength") as excinfo:
        ApiVideoAuth(key).get_token()
    assert key not in str(excinfo.value)
    assert key.encode() not in pickle.dumps(excinfo.value)


def test_a_long_title_is_cut_only_after_the_key_is_scrubbed(
    rsps: responses.RequestsMock, key: str
) -> None:
    rsps.post(API_KEY_URL, status=400, json={"title": "x" * 990 + " " + key + " end"})
    with pytest.raises(InvalidApiKeyError) as excinfo:
        ApiVideoAuth(key).get_token()
    message = str(excinfo.value)
    assert not any(key[i : i + 6] in message for i in range(len(key) - 5))


def test_a_server_that_reissues_the_same_token_gets_one_renewal_not_one_per_thread(
    rsps: responses.RequestsMock, auth: ApiVideoAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.post(REFRESH_URL, json=token_body(1))  # the same token again
    rsps.get(VIDEOS, status=401)
    auth.get_token()
    lock = WatchedLock(auth._manager.lock)
    monkeypatch.setattr(auth._manager, "lock", lock)
    statuses: list[int] = []

    def one() -> None:
        statuses.append(requests.get(VIDEOS, auth=auth).status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    with lock:  # held until all eight threads got their 401 and wait for the renewal
        for thread in threads:
            thread.start()
        assert lock.wait_until_asked(1 + 8)
    for thread in threads:
        thread.join(30)
    assert statuses == [401] * 8  # the same token again: returned, never replayed in a loop
    assert calls_to(rsps, REFRESH_URL) == 1
