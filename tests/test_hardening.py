"""Issue 7: the adversary's and the new user's findings, one test (or more) per finding.

Each test here failed before its fix. Where the behaviour involves HTTP the test runs over
real loopback HTTP (FakeApiVideo, or a hand-made server where the emulator cannot misbehave
the way needed); `responses` serves the cases that need a host name of their own.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gzip
import io
import json
import logging
import pickle
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import requests
import responses
from requests.adapters import BaseAdapter, HTTPAdapter

from requests_apivideo import ApiVideoAuth, ApiVideoAuthError, InvalidApiKeyError
from requests_apivideo.testing import FakeApiVideo, FakeClock, Fault

from .helpers import authorization_headers, bearer, raw_server

T = TypeVar("T")

#: Only a guard against hangs: every case here ends well within it.
HANG_GUARD = 30.0

BASE = "https://ws.api.video"
API_KEY_URL = f"{BASE}/auth/api-key"
REFRESH_URL = f"{BASE}/auth/refresh"
VIDEOS = f"{BASE}/videos"


def token_body(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "token_type": "Bearer",
        "expires_in": 3600,
        "access_token": f"access-{n}",
        "refresh_token": f"refresh-{n}",
        **changes,
    }


@pytest.fixture
def fake(key: str, clock: FakeClock) -> Iterator[FakeApiVideo]:
    with FakeApiVideo(api_keys=[key], clock=clock.monotonic) as server:
        yield server


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def within_hang_guard(work: Callable[[], T]) -> T:
    """Run ``work`` in a thread; fail the test (rather than hang the run) if it hangs."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("value", work()))
        except BaseException as exc:
            outcome.append(("error", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD)
    if thread.is_alive():
        pytest.fail(f"hung for {HANG_GUARD:.0f} s")
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value  # type: ignore[no-any-return]


def assert_keeps_no_secret(exc: BaseException, secrets_: list[str]) -> None:
    """Check every place an error can carry a secret to: its text, its response, a pickle of
    it, and the local variables of the frames of its traceback (below the test's own)."""
    places: dict[str, str | bytes] = {"str": str(exc), "repr": repr(exc)}
    response = getattr(exc, "response", None)
    if response is not None:
        places["content"] = response.content
        places["text"] = response.text
        with contextlib.suppress(ValueError):  # not JSON: .content and .text cover it
            places["json"] = json.dumps(response.json())
    places["pickle"] = pickle.dumps(exc)
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if "/tests/" not in frame.f_code.co_filename:
            for name, value in frame.f_locals.items():
                with contextlib.suppress(Exception):  # a half-built object shows nothing
                    places[f"{frame.f_code.co_name}() local {name}"] = repr(value)
        tb = tb.tb_next
    for secret in secrets_:
        for where, text in places.items():
            if isinstance(text, bytes):
                assert secret.encode() not in text, f"a secret in {where}"
            else:
                assert secret not in text, f"a secret in {where}"
    assert exc.__context__ is None and exc.__cause__ is None


# -- 1. no hang on a blocking pool of one connection ------------------------------------


def one_blocking_connection() -> requests.Session:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=1, pool_block=True))
    return session


@pytest.mark.integration
def test_a_401_on_a_session_whose_pool_has_one_blocking_connection_does_not_hang(
    fake: FakeApiVideo, key: str, clock: FakeClock
) -> None:
    # The emulator closes the connection after a token call: saying so keeps the closed
    # socket out of the one-connection pool that the next request uses.
    closing = Fault(200, headers={"Connection": "close"})
    with one_blocking_connection() as session:
        session.auth = auth = ApiVideoAuth(key, base_url=fake.url, clock=clock, session=session)
        fake.fail_token_calls(closing)
        assert session.get(fake.url + "/videos").status_code == 200
        old = bearer(auth.get_token())
        fake.expire_all()
        fake.fail_token_calls(closing)
        # The renewal goes through the same pool: the 401 must have given its connection back.
        response = within_hang_guard(lambda: session.get(fake.url + "/videos"))
    assert response.status_code == 200
    assert [h.status_code for h in response.history] == [401]
    assert authorization_headers(fake) == [old, old, bearer(auth.get_token())]


@pytest.mark.integration
def test_a_token_call_waits_for_a_busy_blocking_pool_no_longer_than_the_timeout(
    fake: FakeApiVideo, key: str
) -> None:
    with one_blocking_connection() as session:
        auth = ApiVideoAuth(key, base_url=fake.url, session=session, timeout=0.5)
        # Someone holds the pool's only connection: a streamed answer, not read yet.
        with session.get(fake.url + "/videos", stream=True) as held:
            assert held.status_code == 401  # no auth on it: any answer will do
            with pytest.raises(ApiVideoAuthError, match="no free connection"):
                within_hang_guard(auth.get_token)
        assert fake.token_calls == 0
        assert auth.get_token()  # once the connection is back, the token call goes through


# -- 2. no key through a proxy in clear text --------------------------------------------


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[bytes]]]:
    """A "proxy" on 127.0.0.1 that records what reaches it and answers 502."""
    received: list[bytes] = []

    def answer(connection: socket.socket, request: bytes) -> None:
        received.append(request)
        connection.sendall(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )

    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with raw_server(answer) as url:
        yield url, received


@pytest.mark.integration
@pytest.mark.parametrize(
    "where", ["environment", "environment-and-a-session-of-the-caller", "session-proxies"]
)
def test_token_calls_to_a_plain_http_base_url_never_go_through_a_proxy(
    fake: FakeApiVideo,
    key: str,
    proxy: tuple[str, list[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    url, received = proxy
    session: requests.Session | None = None
    if where.startswith("environment"):
        monkeypatch.setenv("HTTP_PROXY", url)
        monkeypatch.setenv("ALL_PROXY", url)
    if where != "environment":
        session = requests.Session()
    if where == "session-proxies":
        assert session is not None
        session.proxies = {"http": url, "all": url, "http://127.0.0.1": url}
    auth = ApiVideoAuth(key, base_url=fake.url, session=session)
    assert auth.get_token()
    assert received == []  # the key went straight to 127.0.0.1, not to the proxy
    assert fake.api_key_calls == 1
    if where == "session-proxies":
        assert session is not None
        assert session.proxies == {"http": url, "all": url, "http://127.0.0.1": url}


# -- 3. errors keep no secret -----------------------------------------------------------


@pytest.mark.integration
def test_a_malformed_200_keeps_the_issued_tokens_nowhere_in_the_error(
    fake: FakeApiVideo, key: str
) -> None:
    access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    answer = {**token_body(0, access_token=access, refresh_token=refresh), "expires_in": "3600"}
    fake.fail_token_calls(Fault(200, body=json.dumps(answer)))
    with pytest.raises(ApiVideoAuthError, match="malformed") as excinfo:
        ApiVideoAuth(key, base_url=fake.url).get_token()
    assert_keeps_no_secret(excinfo.value, [key, access, refresh])
    assert excinfo.value.response is not None
    kept = excinfo.value.response.json()  # the rest of the answer stays readable
    assert kept["expires_in"] == "3600" and kept["access_token"] == "[redacted]"


@pytest.mark.integration
def test_a_rejection_that_echoes_the_key_keeps_it_nowhere_in_the_error(
    fake: FakeApiVideo, key: str
) -> None:
    echo = {"title": "Bad key.", "detail": f"The key {key} is not valid.", "status": 400}
    fake.fail_token_calls(Fault(400, body=json.dumps(echo)))
    with pytest.raises(InvalidApiKeyError) as excinfo:
        ApiVideoAuth(key, base_url=fake.url).get_token()
    assert_keeps_no_secret(excinfo.value, [key])
    assert excinfo.value.response is not None
    assert excinfo.value.response.json()["detail"] == "The key [redacted] is not valid."


@pytest.mark.integration
def test_a_failed_renewal_after_a_401_keeps_no_secret_in_its_traceback(
    fake: FakeApiVideo, session: requests.Session, auth: ApiVideoAuth, key: str
) -> None:
    assert session.get(fake.url + "/videos").status_code == 200
    old = auth.get_token()
    fake.revoke_all()
    fake.api_keys.discard(key)
    with pytest.raises(InvalidApiKeyError) as excinfo:
        session.get(fake.url + "/videos")
    assert_keeps_no_secret(excinfo.value, [key, old])


def test_a_construction_error_keeps_the_key_out_of_its_traceback(key: str) -> None:
    with pytest.raises(ValueError, match="timeout") as excinfo:
        ApiVideoAuth(key, timeout=0)
    assert_keeps_no_secret(excinfo.value, [key])


# -- 4. history shows what was sent -----------------------------------------------------


@pytest.mark.integration
def test_the_401_in_history_shows_the_token_it_was_sent_with(
    fake: FakeApiVideo, session: requests.Session, auth: ApiVideoAuth
) -> None:
    assert session.get(fake.url + "/videos").status_code == 200
    old = bearer(auth.get_token())
    fake.expire_all()
    response = session.get(fake.url + "/videos")
    assert response.status_code == 200
    assert response.history[0].request.headers["Authorization"] == old
    assert response.request.headers["Authorization"] == bearer(auth.get_token()) != old
    assert authorization_headers(fake) == [old, old, bearer(auth.get_token())]


# -- 5. no 401 storm --------------------------------------------------------------------


@pytest.mark.integration
def test_an_endpoint_that_always_answers_401_does_not_renew_the_token_on_every_call(
    fake: FakeApiVideo, session: requests.Session, auth: ApiVideoAuth
) -> None:
    # POST /upload without an upload token is refused whatever the bearer token says.
    assert session.get(fake.url + "/videos").status_code == 200
    fake.reset_counters()
    statuses = [session.post(fake.url + "/upload", data=b"x").status_code for _ in range(20)]
    assert statuses == [401] * 20
    assert fake.token_calls == 1  # one renewal: its replay was refused too, then no more
    # A revocation is still recovered at once on an endpoint that accepts tokens.
    fake.revoke_all()
    fake.reset_counters()
    response = session.get(fake.url + "/videos")
    assert response.status_code == 200 and [h.status_code for h in response.history] == [401]
    assert (fake.refresh_calls, fake.api_key_calls) == (1, 1)


@pytest.mark.integration
def test_a_401_that_was_not_replayed_does_not_stop_a_later_renewal_there(
    fake: FakeApiVideo, session: requests.Session, auth: ApiVideoAuth
) -> None:
    # Found by the property test: the note was left by a 401 that was never replayed.
    assert session.get(fake.url + "/videos").status_code == 200
    fake.expire_all()
    unreplayable = session.post(fake.url + "/videos", data=iter([b'{"title": "t"}']))
    assert unreplayable.status_code == 401 and unreplayable.history == []
    fake.expire_all()  # the renewed token dies too, before it was ever used there
    response = session.post(fake.url + "/videos", json={"title": "t"})
    assert response.status_code == 201 and [h.status_code for h in response.history] == [401]


@pytest.mark.integration
def test_threads_on_an_endpoint_that_always_answers_401_make_one_renewal(
    fake: FakeApiVideo, session: requests.Session, auth: ApiVideoAuth
) -> None:
    assert session.get(fake.url + "/videos").status_code == 200
    fake.reset_counters()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda _: session.post(fake.url + "/upload", data=b"x").status_code, range(40))
        )
    assert statuses == [401] * 40
    # One renewal; a second only if a thread's 401 on the new token came back before the
    # renewing thread had noted it (a window of a few statements).
    assert fake.token_calls <= 2


# -- 6. only RequestExceptions, from any adapter or session -----------------------------


class HandMadeAdapter(BaseAdapter):
    """Answer as WSGI adapters and test doubles do: a Response built by hand.

    200 to the token ``accepted`` wants, 401 otherwise; with ``connection``, the response
    says which adapter sent it, as requests' own adapter does.
    """

    def __init__(
        self, accepted: Callable[[str | bytes | None], bool], connection: bool = False
    ) -> None:
        super().__init__()
        self.accepted = accepted
        self.connection = connection
        self.sent = 0

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self.sent += 1
        response = requests.Response()
        response.status_code = 200 if self.accepted(request.headers.get("Authorization")) else 401
        response.raw = io.BytesIO(b"{}")
        response.url = request.url or ""
        response.request = request
        if self.connection:
            response.connection = self  # type: ignore[assignment]  # it is no HTTPAdapter
        return response

    def close(self) -> None:
        pass


def test_a_401_from_an_adapter_without_connection_is_returned_with_a_warning(
    rsps: responses.RequestsMock, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.post(REFRESH_URL, json=token_body(2))
    with requests.Session() as session:
        session.mount(VIDEOS, HandMadeAdapter(lambda header: header == "Bearer access-2"))
        session.auth = ApiVideoAuth(key)
        with caplog.at_level(logging.WARNING, logger="requests_apivideo"):
            response = session.get(VIDEOS)
        assert response.status_code == 401
        assert "no .connection" in caplog.text
        assert session.get(VIDEOS).status_code == 200  # the token was renewed meanwhile


def test_a_replay_through_an_adapter_that_fails_oddly_raises_a_request_exception(
    rsps: responses.RequestsMock, key: str
) -> None:
    class Odd(HandMadeAdapter):
        def send(
            self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
        ) -> requests.Response:
            if self.sent:
                raise ValueError("an adapter's own bug")
            return super().send(request, *args, **kwargs)

    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.post(REFRESH_URL, json=token_body(2))
    with requests.Session() as session:
        session.mount(VIDEOS, Odd(lambda header: False, connection=True))
        session.auth = ApiVideoAuth(key)
        with pytest.raises(requests.RequestException, match="ValueError: an adapter's own bug"):
            session.get(VIDEOS)


@pytest.mark.integration
def test_a_401_whose_body_cannot_be_decoded_is_still_replayed(key: str) -> None:
    issued: list[str] = []

    def answer(connection: socket.socket, request: bytes) -> None:
        if request.startswith(b"POST /auth/"):
            issued.append(f"tok{len(issued) + 1}")
            body = json.dumps(token_body(0, access_token=issued[-1])).encode()
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        elif b"Bearer tok1\r\n" in request:
            body = b"this is not gzip at all"  # but says it is
            head = b"HTTP/1.1 401 Unauthorized\r\nContent-Encoding: gzip\r\n"
        else:
            body = gzip.compress(b'{"data": []}')
            head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
        length = f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        connection.sendall(head + length + body)

    with raw_server(answer) as url, requests.Session() as session:
        session.auth = ApiVideoAuth(key, base_url=url)
        response = session.get(url + "/videos")
    assert response.status_code == 200 and response.json() == {"data": []}
    assert [h.status_code for h in response.history] == [401]
    assert issued == ["tok1", "tok2"]


class ReadOnly:
    """A response body with ``read`` only, as some adapters hand out."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


@pytest.mark.parametrize("body", [io.BytesIO, ReadOnly], ids=["bytesio", "read-only"])
def test_a_token_session_whose_responses_are_not_urllib3_ones_still_works(
    key: str, body: Callable[[bytes], Any]
) -> None:
    class TokenAdapter(BaseAdapter):
        def send(
            self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
        ) -> requests.Response:
            response = requests.Response()
            response.status_code = 200
            response.raw = body(json.dumps(token_body(1)).encode())
            response.request = request
            return response

        def close(self) -> None:
            pass

    with requests.Session() as session:
        session.mount(BASE + "/auth/", TokenAdapter())
        assert ApiVideoAuth(key, session=session).get_token() == "access-1"


def test_a_session_whose_requests_return_futures_is_refused_at_construction(key: str) -> None:
    class FuturesLike(requests.Session):  # the shape of requests-futures' FuturesSession
        def __init__(self) -> None:
            super().__init__()
            self.executor = concurrent.futures.ThreadPoolExecutor(1)

        def request(self, *args: Any, **kwargs: Any) -> Any:
            return self.executor.submit(super().request, *args, **kwargs)

    with FuturesLike() as session:
        with pytest.raises(TypeError, match="futures"):
            ApiVideoAuth(key, session=session)
        session.executor.shutdown()


# -- 7. a missing token endpoint is not a bad key ---------------------------------------


@pytest.mark.integration
def test_a_base_url_without_a_token_endpoint_is_not_reported_as_a_bad_key(
    fake: FakeApiVideo, key: str
) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url + "/videos")  # a path, not the API's root
    with pytest.raises(ApiVideoAuthError, match="no token endpoint") as excinfo:
        auth.get_token()
    assert type(excinfo.value) is ApiVideoAuthError
    assert excinfo.value.response is not None and excinfo.value.response.status_code == 404
    assert "sandbox" not in str(excinfo.value)


@pytest.mark.parametrize("status", [404, 405])
def test_a_token_endpoint_answering_404_or_405_is_no_invalid_key(
    rsps: responses.RequestsMock, key: str, status: int
) -> None:
    rsps.post(API_KEY_URL, status=status)
    with pytest.raises(ApiVideoAuthError, match="no token endpoint") as excinfo:
        ApiVideoAuth(key).get_token()
    assert not isinstance(excinfo.value, InvalidApiKeyError)


# -- 8. redact what is secret, not what is long ------------------------------------------


@pytest.mark.integration
def test_a_tls_failure_message_keeps_its_host_reason_and_classes(
    fake: FakeApiVideo, key: str
) -> None:
    # https to the emulator's plain-http port: the TLS handshake fails.
    url = fake.url.replace("http://127.0.0.1", "https://localhost")
    with pytest.raises(ApiVideoAuthError) as excinfo:
        ApiVideoAuth(key, base_url=url, timeout=2).get_token()
    message = str(excinfo.value)
    assert "[redacted]" not in message
    assert "HTTPSConnectionPool(host='localhost'" in message and "SSLError" in message
    assert "/auth/api-key" in message


def test_transport_error_text_keeps_long_host_names_and_reason_codes(
    rsps: responses.RequestsMock, key: str
) -> None:
    text = (
        "HTTPSConnectionPool(host='a-rather-long-gateway-name.example.com', port=443): "
        "Max retries exceeded (Caused by SSLError(SSLCertVerificationError(1, "
        "'[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed')))"
    )
    rsps.post(API_KEY_URL, body=requests.exceptions.SSLError(text))
    with pytest.raises(ApiVideoAuthError) as excinfo:
        ApiVideoAuth(key).get_token()
    assert text in str(excinfo.value)


def test_a_short_key_does_not_redact_its_own_marker(rsps: responses.RequestsMock) -> None:
    rsps.post(API_KEY_URL, status=400, json={"title": "Bad key: red."})
    with pytest.raises(InvalidApiKeyError) as excinfo:
        ApiVideoAuth("red").get_token()
    assert "answered 400: Bad key: [redacted]." in str(excinfo.value)


def test_an_unknown_token_in_server_text_is_still_redacted(
    rsps: responses.RequestsMock, key: str
) -> None:
    unknown = "tk_" + secrets.token_hex(16)
    rsps.post(API_KEY_URL, status=400, json={"title": f"Token {unknown} is not a key."})
    with pytest.raises(InvalidApiKeyError) as excinfo:
        ApiVideoAuth(key).get_token()
    assert unknown not in str(excinfo.value)
    assert "Token [redacted] is not a key." in str(excinfo.value)


# -- 9. inputs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 1e10}, {"timeout": 601}, {"refresh_margin": 1e6}, {"refresh_margin": 86401}],
)
def test_absurd_timeouts_and_margins_are_refused(key: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ApiVideoAuth(key, **kwargs)


@pytest.mark.parametrize("kwargs", [{"timeout": 600}, {"refresh_margin": 86400}])
def test_the_largest_timeout_and_margin_are_accepted(key: str, kwargs: dict[str, Any]) -> None:
    ApiVideoAuth(key, **kwargs)


@pytest.mark.integration
def test_a_key_read_from_a_file_with_its_newline_is_accepted(
    fake: FakeApiVideo, key: str, tmp_path: Any
) -> None:
    path = tmp_path / "key"
    path.write_text(key + "\n")
    auth = ApiVideoAuth(path.read_text(), base_url=fake.url)
    assert auth.get_token()
    assert repr(auth).endswith(f"api_key='…{key[-4:]}')")


def test_an_empty_key_variable_is_said_to_be_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIVIDEO_API_KEY", " \n")
    with pytest.raises(ValueError, match="APIVIDEO_API_KEY is empty"):
        ApiVideoAuth()
    monkeypatch.delenv("APIVIDEO_API_KEY")
    with pytest.raises(ValueError, match="APIVIDEO_API_KEY is not set"):
        ApiVideoAuth()


# -- 10. an http -> https upgrade is another origin ---------------------------------------


@pytest.mark.parametrize("replayed", [False, True], ids=["first-answer", "after-a-replay"])
def test_an_upgrade_to_https_on_the_same_host_does_not_carry_the_token(
    rsps: responses.RequestsMock, key: str, replayed: bool
) -> None:
    base = "http://localhost"  # port 80: requests keeps Authorization on an upgrade to 443
    rsps.post(base + "/auth/api-key", json=token_body(1))
    rsps.post(base + "/auth/refresh", json=token_body(2))
    if replayed:
        rsps.get(base + "/videos", status=401)
    rsps.get(base + "/videos", status=301, headers={"Location": "https://localhost/videos"})
    rsps.get("https://localhost/videos", json={})
    response = requests.get(base + "/videos", auth=ApiVideoAuth(key, base_url=base))
    assert response.status_code == 200
    hop = [c.request for c in rsps.calls if c.request.url == "https://localhost/videos"]
    assert len(hop) == 1 and "Authorization" not in hop[0].headers
    sent = "Bearer access-2" if replayed else "Bearer access-1"
    assert response.history[-1].request.headers["Authorization"] == sent  # as it was sent


def test_a_same_origin_redirect_keeps_the_token(rsps: responses.RequestsMock, key: str) -> None:
    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.get(BASE + "/old", status=301, headers={"Location": VIDEOS})
    rsps.get(VIDEOS, json={})
    requests.get(BASE + "/old", auth=ApiVideoAuth(key))
    assert rsps.calls[-1].request.headers["Authorization"] == "Bearer access-1"


# -- 11. no empty Cookie header ---------------------------------------------------------


def test_a_401_cookie_for_another_path_adds_no_empty_cookie_header(
    rsps: responses.RequestsMock, key: str
) -> None:
    rsps.post(API_KEY_URL, json=token_body(1))
    rsps.post(REFRESH_URL, json=token_body(2))
    rsps.get(VIDEOS, status=401, headers={"Set-Cookie": "lb=node7; Path=/elsewhere"})
    rsps.get(VIDEOS, json={})
    assert requests.get(VIDEOS, auth=ApiVideoAuth(key)).status_code == 200
    assert "Cookie" not in rsps.calls[-1].request.headers
