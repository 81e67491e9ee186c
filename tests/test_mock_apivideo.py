"""mock_apivideo: a user's ``responses`` tests keep passing after the one-line retrofit."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import requests
import responses

from requests_apivideo import ApiVideoAuth, ApiVideoAuthError
from requests_apivideo.testing import FakeClock, Fault, mock_apivideo

VIDEOS = "https://ws.api.video/videos"
PAGE = {"data": [{"videoId": "vi1", "title": "Maths"}], "pagination": {"itemsTotal": 1}}


# The user's script, retrofitted: make_session() gained its one line, session.auth = ...


def make_session(key: str) -> requests.Session:
    session = requests.Session()
    session.auth = ApiVideoAuth(key)  # the one added line
    return session


def list_titles(session: requests.Session) -> list[str]:
    response = session.get(VIDEOS, params={"pageSize": 100})
    response.raise_for_status()
    return [video["title"] for video in response.json()["data"]]


# The user's tests.


@responses.activate
def test_the_retrofitted_script_fails_its_old_test_without_the_helper(key: str) -> None:
    responses.get(VIDEOS, json=PAGE)
    with pytest.raises(ApiVideoAuthError):  # POST /auth/api-key: no mock answers it
        list_titles(make_session(key))


@responses.activate
def test_the_retrofitted_script_passes_its_old_test_with_the_helper(key: str) -> None:
    mock_apivideo(api_keys=[key])  # the helper call
    responses.get(VIDEOS, json=PAGE)  # the test's own mock, unchanged
    assert list_titles(make_session(key)) == ["Maths"]
    assert str(responses.calls[-1].request.headers["Authorization"]).startswith("Bearer ")


@responses.activate
def test_the_retrofitted_script_survives_a_revocation(key: str) -> None:
    api = mock_apivideo(api_keys=[key])
    api.protect(responses.GET, VIDEOS, json=PAGE)
    session = make_session(key)
    assert list_titles(session) == ["Maths"]
    api.revoke_all()
    assert list_titles(session) == ["Maths"]  # 401, refresh refused, key, replayed
    assert (api.api_key_calls, api.refresh_calls, api.unauthorized) == (2, 1, 1)
    assert api.refresh_reuses == 0
    statuses = [getattr(call.response, "status_code", None) for call in responses.calls]
    assert statuses == [200, 200, 401, 400, 200, 200]


@responses.activate
def test_an_expired_token_is_refreshed_with_a_single_use_refresh_token(key: str) -> None:
    api = mock_apivideo(api_keys=[key])
    api.protect(responses.GET, VIDEOS, json=PAGE)
    session = make_session(key)
    list_titles(session)
    api.expire_all()
    list_titles(session)
    assert (api.api_key_calls, api.refresh_calls, api.unauthorized) == (1, 1, 1)


def test_protect_refuses_a_token_that_is_not_current_with_the_api_video_problem(key: str) -> None:
    with responses.RequestsMock() as rsps:
        api = mock_apivideo(rsps, api_keys=[key])
        api.protect(rsps.GET, VIDEOS, json=PAGE)
        api.unauthorized_cookie = "lb=1; Path=/"
        for header in ({}, {"Authorization": "Bearer made-up"}):
            response = requests.get(VIDEOS, headers=header)
            assert response.status_code == 401
            assert response.headers["Content-Type"] == "application/problem+json"
            assert response.headers["Set-Cookie"] == "lb=1; Path=/"
            assert response.json()["title"] == "Unauthorized"
        assert requests.get(VIDEOS, auth=(key, "")).json() == PAGE  # Basic with the key
        assert api.unauthorized == 2


def test_protect_hands_authorized_requests_to_a_callback(key: str) -> None:
    seen: list[object] = []

    def create(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        seen.append(request.body)
        return 201, {"Content-Type": "application/json"}, '{"videoId": "vi2"}'

    with responses.RequestsMock() as rsps:
        api = mock_apivideo(rsps, api_keys=[key])
        api.protect(rsps.POST, VIDEOS, callback=create)
        response = requests.post(VIDEOS, json={"title": "t"}, auth=ApiVideoAuth(key))
        assert (response.status_code, response.json()) == (201, {"videoId": "vi2"})
        assert seen == [b'{"title": "t"}']


def test_a_strict_mock_does_not_require_the_token_endpoints_to_be_called(key: str) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        mock_apivideo(rsps, api_keys=[key])
        rsps.get(VIDEOS, json=PAGE)
        requests.get(VIDEOS, auth=ApiVideoAuth(key))  # one token call, no refresh


def test_other_base_urls_and_a_shared_fake_clock(key: str) -> None:
    clock = FakeClock()
    with responses.RequestsMock() as rsps:
        api = mock_apivideo(
            rsps, base_url="https://sandbox.api.video/", api_keys=[key], token_ttl=60, clock=clock
        )
        url = "https://sandbox.api.video/videos"
        api.protect(rsps.GET, url, json=PAGE)
        auth = ApiVideoAuth(key, sandbox=True, clock=clock)
        assert requests.get(url, auth=auth).status_code == 200
        clock.advance(120)  # expired on both sides: renewed before it is sent, no 401
        assert requests.get(url, auth=auth).status_code == 200
        assert (api.api_key_calls, api.refresh_calls, api.unauthorized) == (1, 1, 0)
        assert api.url == "https://sandbox.api.video"


@pytest.mark.parametrize(
    ("faults", "calls"),
    [
        ([Fault(503)], (2, 0)),  # the auth's Retry, which responses emulates
        ([Fault(200, body="not json")], (1, 0)),
        ([Fault(0)], (1, 0)),
    ],
)
def test_injected_faults_reach_the_auth_as_over_http(
    key: str, faults: list[Fault], calls: tuple[int, int]
) -> None:
    with responses.RequestsMock() as rsps:
        api = mock_apivideo(rsps, api_keys=[key])
        api.fail_token_calls(*faults)
        auth = ApiVideoAuth(key)
        if faults[0].status == 503:
            assert auth.get_token()
        else:
            with pytest.raises(ApiVideoAuthError):
                auth.get_token()
        assert (api.api_key_calls, api.refresh_calls) == calls


def test_the_mock_apivideo_fixture_runs_on_the_default_mock(mock_apivideo: Any) -> None:
    mock_apivideo.protect(responses.GET, VIDEOS, json=PAGE)
    assert list_titles(make_session(mock_apivideo.api_key)) == ["Maths"]
    mock_apivideo.revoke_all()
    assert list_titles(make_session(mock_apivideo.api_key)) == ["Maths"]
    assert mock_apivideo.unauthorized == 1


def test_without_responses_installed_the_error_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['responses'] = None\n"
        "from requests_apivideo.testing import mock_apivideo\n"
        "try:\n    mock_apivideo()\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install responses" in out.stdout, out.stderr


@responses.activate
def test_the_fixture_and_responses_activate_work_together(mock_apivideo: Any) -> None:
    responses.get(VIDEOS, json=PAGE)
    assert list_titles(make_session(mock_apivideo.api_key)) == ["Maths"]
    assert mock_apivideo.api_key_calls == 1
