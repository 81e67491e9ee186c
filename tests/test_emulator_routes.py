"""The emulator's parts on their own: the token state without HTTP, HEAD on every GET route."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from requests_apivideo.testing import FakeApiVideo, FakeClock, Fault
from requests_apivideo.testing._state import TokenState


@pytest.fixture
def state() -> TokenState:
    return TokenState(["key-1"], token_ttl=10, invalid_key_status=400, clock=FakeClock().monotonic)


def test_token_state_issues_single_use_refresh_tokens_and_counts_reuses(state: TokenState) -> None:
    first = state.exchange(False, "key-1")
    assert first is not None and first["expires_in"] == 10
    assert state.exchange(False, "other-key") is None
    second = state.exchange(True, first["refresh_token"])
    assert second is not None
    assert state.exchange(True, first["refresh_token"]) is None
    assert state.refresh_reuses == 1
    assert state.issued == {first[k] for k in ("access_token", "refresh_token")} | {
        second[k] for k in ("access_token", "refresh_token")
    }


def test_token_state_authorizes_current_bearer_tokens_and_basic_keys() -> None:
    clock = FakeClock()
    state = TokenState(["key-1"], token_ttl=10, invalid_key_status=400, clock=clock.monotonic)
    token = state.exchange(False, "key-1")
    assert token is not None
    assert state.authorize(f"Bearer {token['access_token']}") is None
    assert state.authorize("Basic " + base64.b64encode(b"key-1:").decode()) is None
    clock.advance(10)
    assert state.authorize(f"Bearer {token['access_token']}") == "invalid-access-token"
    assert state.authorize("") == "missing-authorization-header"
    assert state.authorize("Basic !!") == "invalid-api-key"
    assert state.unauthorized == 3


def test_token_state_hands_out_queued_faults_in_order_and_counts_calls(state: TokenState) -> None:
    state.add_faults([Fault(502), Fault(0)])
    assert [state.token_call(refresh=r) for r in (False, True, False)] == [
        Fault(502),
        Fault(0),
        None,
    ]
    assert (state.api_key_calls, state.refresh_calls) == (2, 1)
    state.reset_counters()
    assert (state.api_key_calls, state.refresh_calls) == (0, 0)


def test_importing_the_testing_module_loads_no_http_server_and_no_responses() -> None:
    code = (
        "import sys, requests_apivideo.testing; "
        "print(sorted(m for m in ('http.server', 'responses') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.integration
class TestHead:
    @pytest.fixture
    def fake(self) -> Iterator[FakeApiVideo]:
        with FakeApiVideo(api_keys=["key-1"]) as server:
            yield server

    def test_head_answers_like_get_without_the_body(self, fake: FakeApiVideo) -> None:
        requests.post(f"{fake.url}/videos", json={"title": "t"}, auth=("key-1", ""))
        got = requests.get(f"{fake.url}/videos", auth=("key-1", ""))
        head = requests.head(f"{fake.url}/videos", auth=("key-1", ""))
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["Content-Length"] == got.headers["Content-Length"]
        assert head.headers["Content-Type"] == "application/json"

    @pytest.mark.parametrize(
        ("path", "auth", "status"),
        [
            ("/videos", None, 401),
            ("/redirect?to=/videos", ("key-1", ""), 302),
            ("/nowhere", ("key-1", ""), 404),
            ("/auth/api-key", None, 404),  # POST only
            ("/upload", None, 404),
        ],
    )
    def test_head_goes_where_get_goes(
        self, fake: FakeApiVideo, path: str, auth: tuple[str, str] | None, status: int
    ) -> None:
        assert requests.head(fake.url + path, auth=auth).status_code == status
        assert fake.requests[-1].method == "HEAD"

    def test_the_recorded_issued_tokens_are_the_ones_answered(self, fake: FakeApiVideo) -> None:
        token = requests.post(f"{fake.url}/auth/api-key", json={"apiKey": "key-1"}).json()
        assert fake.issued_tokens == {token["access_token"], token["refresh_token"]}


@pytest.mark.integration
def test_header_names_match_in_any_case_as_http_says() -> None:
    import http.client

    with FakeApiVideo(api_keys=["key-1"]) as fake:
        conn = http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]), timeout=10)
        try:
            conn.request("GET", "/videos", headers={"authorization": "Basic a2V5LTE6"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        finally:
            conn.close()
        assert fake.requests[-1].headers == {
            "Host": fake.url.removeprefix("http://"),
            "Accept-Encoding": "identity",
            "authorization": "Basic a2V5LTE6",
        }
