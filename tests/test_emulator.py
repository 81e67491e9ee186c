"""FakeApiVideo, driven with plain requests and checked against api.video's own schemas."""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from requests_apivideo.testing import FakeApiVideo, FakeClock, Fault, Recorded, _fake

from .helpers import bearer

pytestmark = pytest.mark.integration

KEY = "key-1"
SCHEMAS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "schemas" / "apivideo-auth.json").read_text(encoding="utf-8")
)


def _no_extra_properties(node: Any) -> Any:
    """Return the schema with ``additionalProperties: false`` wherever properties are listed."""
    if isinstance(node, list):
        return [_no_extra_properties(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _no_extra_properties(value) for key, value in node.items()}
    if "properties" in node:
        out.setdefault("additionalProperties", False)
    return out


STRICT_SCHEMAS = _no_extra_properties(SCHEMAS)


def assert_matches(instance: Any, name: str) -> None:
    """Validate against the spec's schema, and check that no undocumented field is sent."""
    for doc in (SCHEMAS, STRICT_SCHEMAS):
        schema = {**doc, "$ref": f"#/$defs/{name}"}
        Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
            instance
        )


@pytest.fixture
def fake() -> Iterator[FakeApiVideo]:
    with FakeApiVideo(api_keys=[KEY, "key-2"]) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def get_token(session: requests.Session, fake: FakeApiVideo, key: str = KEY) -> dict[str, Any]:
    response = session.post(f"{fake.url}/auth/api-key", json={"apiKey": key})
    assert response.status_code == 200, response.text
    return dict(response.json())


def refresh(session: requests.Session, fake: FakeApiVideo, token: str) -> requests.Response:
    return session.post(f"{fake.url}/auth/refresh", json={"refreshToken": token})


def headers_for(token: dict[str, Any]) -> dict[str, str]:
    """Return request headers that carry the access token of the token answer ``token``."""
    return {"Authorization": bearer(token["access_token"])}


def assert_credentials_problem(response: requests.Response, status: int = 400) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert_matches(response.json(), "bad-request")
    assert response.json() == {
        "type": "https://docs.api.video/reference/authentication-invalid-user-credentials",
        "title": "The user credentials were incorrect.",
        "name": "",
        "status": status,
    }


# Token endpoints


def test_api_key_call_returns_an_access_token_shaped_like_the_spec(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    payload = {"apiKey": KEY}
    assert_matches(payload, "authenticate-payload")
    response = session.post(f"{fake.url}/auth/api-key", json=payload)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert_matches(body, "access-token")
    assert set(body) == {"token_type", "expires_in", "access_token", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"] != body["refresh_token"]


def test_refresh_call_returns_a_new_token_pair_shaped_like_the_spec(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    first = get_token(session, fake)
    payload = {"refreshToken": first["refresh_token"]}
    assert_matches(payload, "refresh-token-payload")
    response = session.post(f"{fake.url}/auth/refresh", json=payload)
    assert response.status_code == 200
    body = response.json()
    assert_matches(body, "access-token")
    assert set(body) == {"token_type", "expires_in", "access_token", "refresh_token"}
    assert body["access_token"] != first["access_token"]
    assert body["refresh_token"] != first["refresh_token"]


def test_every_configured_key_is_accepted(fake: FakeApiVideo, session: requests.Session) -> None:
    assert get_token(session, fake, "key-2")["token_type"] == "Bearer"
    fake.api_keys.add("added-later")
    assert get_token(session, fake, "added-later")["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"apiKey": "wrong-key"}),
        json.dumps({"apikey": KEY}),
        json.dumps({"apiKey": [KEY]}),
        json.dumps([KEY]),
        "apiKey=key-1",
        "",
    ],
    ids=["unknown key", "misspelt field", "not a string", "not an object", "form", "empty"],
)
def test_bad_api_key_call_gets_the_documented_bad_request(
    fake: FakeApiVideo, session: requests.Session, body: str
) -> None:
    response = session.post(
        f"{fake.url}/auth/api-key", data=body, headers={"Content-Type": "application/json"}
    )
    assert_credentials_problem(response)
    assert "key-1" not in response.text
    assert "wrong-key" not in response.text


def test_invalid_key_status_can_be_401(session: requests.Session) -> None:
    with FakeApiVideo(api_keys=[KEY], invalid_key_status=401) as fake:
        response = session.post(f"{fake.url}/auth/api-key", json={"apiKey": "nope"})
        assert_credentials_problem(response, status=401)
        response = refresh(session, fake, "nope")
        assert_credentials_problem(response, status=401)
        assert fake.unauthorized == 0  # token endpoints are not protected endpoints


def test_refresh_token_is_single_use(fake: FakeApiVideo, session: requests.Session) -> None:
    first = get_token(session, fake)
    second = refresh(session, fake, first["refresh_token"])
    assert second.status_code == 200
    reused = refresh(session, fake, first["refresh_token"])
    assert_credentials_problem(reused)
    assert first["refresh_token"] not in reused.text
    assert refresh(session, fake, second.json()["refresh_token"]).status_code == 200


def test_old_access_token_stays_valid_after_a_refresh(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    first = get_token(session, fake)
    assert refresh(session, fake, first["refresh_token"]).status_code == 200
    assert session.get(f"{fake.url}/videos", headers=headers_for(first)).status_code == 200


def test_unknown_refresh_token_gets_the_documented_bad_request(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    assert_credentials_problem(refresh(session, fake, "def50200-made-up"))
    response = session.post(f"{fake.url}/auth/refresh", json={"refresh_token": "x"})
    assert_credentials_problem(response)


def test_access_token_expiry_uses_the_injected_clock(session: requests.Session) -> None:
    clock = FakeClock()
    with FakeApiVideo(api_keys=[KEY], token_ttl=2.0, clock=clock) as fake:
        token = get_token(session, fake)
        assert token["expires_in"] == 2
        assert isinstance(token["expires_in"], int)
        clock.advance(1.999)
        assert session.get(f"{fake.url}/videos", headers=headers_for(token)).status_code == 200
        clock.advance(0.001)
        assert session.get(f"{fake.url}/videos", headers=headers_for(token)).status_code == 401
        renewed = refresh(session, fake, token["refresh_token"])
        assert renewed.status_code == 200
        renewed_headers = headers_for(renewed.json())
        assert session.get(f"{fake.url}/videos", headers=renewed_headers).status_code == 200


def test_fractional_token_ttl_is_reported_as_is(session: requests.Session) -> None:
    with FakeApiVideo(api_keys=[KEY], token_ttl=2.5) as fake:
        assert get_token(session, fake)["expires_in"] == 2.5


# Knobs


def test_revoke_all_invalidates_access_and_refresh_tokens_but_not_keys(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    token = get_token(session, fake)
    fake.revoke_all()
    assert session.get(f"{fake.url}/videos", headers=headers_for(token)).status_code == 401
    assert_credentials_problem(refresh(session, fake, token["refresh_token"]))
    fresh = get_token(session, fake)
    assert session.get(f"{fake.url}/videos", headers=headers_for(fresh)).status_code == 200


def test_expire_all_invalidates_access_tokens_but_keeps_refresh_tokens(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    token = get_token(session, fake)
    fake.expire_all()
    assert session.get(f"{fake.url}/videos", headers=headers_for(token)).status_code == 401
    renewed = refresh(session, fake, token["refresh_token"])
    assert renewed.status_code == 200
    assert session.get(f"{fake.url}/videos", headers=headers_for(renewed.json())).status_code == 200


def test_injected_faults_answer_the_next_token_calls_in_order(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    fake.fail_token_calls(Fault(), Fault(429, headers={"Retry-After": "1"}))
    first = session.post(f"{fake.url}/auth/api-key", json={"apiKey": KEY})
    assert first.status_code == 503
    assert first.headers["Content-Type"] == "application/problem+json"
    assert first.json()["status"] == 503
    second = session.post(f"{fake.url}/auth/api-key", json={"apiKey": KEY})
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"
    assert_matches(second.json(), "too-many-requests")
    assert second.json()["type"] == "https://docs.api.video/reference/too-many-requests"
    assert get_token(session, fake)["token_type"] == "Bearer"
    assert fake.api_key_calls == 3


def test_injected_faults_apply_to_refresh_calls_too(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    token = get_token(session, fake)
    fake.fail_token_calls(Fault(502))
    assert refresh(session, fake, token["refresh_token"]).status_code == 502
    # The faulted call did not consume the refresh token.
    assert refresh(session, fake, token["refresh_token"]).status_code == 200
    assert fake.refresh_calls == 2


@pytest.mark.parametrize(
    ("body", "headers", "content_type"),
    [
        ("not json", {}, "application/json"),
        (b'{"access_token": "x"}', {}, "application/json"),
        ("<html>oops</html>", {"content-type": "text/html"}, "text/html"),
    ],
)
def test_injected_fault_body_is_sent_verbatim(
    fake: FakeApiVideo,
    session: requests.Session,
    body: str | bytes,
    headers: dict[str, str],
    content_type: str,
) -> None:
    fake.fail_token_calls(Fault(200, body=body, headers=headers))
    response = session.post(f"{fake.url}/auth/api-key", json={"apiKey": KEY})
    assert response.status_code == 200
    assert response.content == (body.encode() if isinstance(body, str) else body)
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Length"] == str(len(response.content))


def test_injected_fault_delay_is_waited_before_answering(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    fake.fail_token_calls(Fault(503, delay=0.05), Fault(200, delay=0.05))
    started = time.monotonic()
    assert session.post(f"{fake.url}/auth/api-key", json={"apiKey": KEY}).status_code == 503
    assert time.monotonic() - started >= 0.05
    started = time.monotonic()
    slow_but_real = get_token(session, fake)  # status 200 without a body: the real answer
    assert time.monotonic() - started >= 0.05
    assert session.get(f"{fake.url}/videos", headers=headers_for(slow_but_real)).status_code == 200


def test_injected_fault_with_status_0_drops_the_connection(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    fake.fail_token_calls(Fault(0))
    with pytest.raises(requests.ConnectionError):
        session.post(f"{fake.url}/auth/api-key", json={"apiKey": KEY})
    assert get_token(session, fake)["token_type"] == "Bearer"
    assert fake.api_key_calls == 2


@pytest.mark.parametrize("kwargs", [{"status": 100}, {"status": -1}, {"delay": -0.1}])
def test_fault_refuses_impossible_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Fault(**kwargs)


def test_counters_count_token_calls_and_401s(fake: FakeApiVideo, session: requests.Session) -> None:
    token = get_token(session, fake)
    refresh(session, fake, token["refresh_token"])
    refresh(session, fake, token["refresh_token"])  # reused: rejected, but still a call
    session.get(f"{fake.url}/videos")
    session.get(f"{fake.url}/videos", headers={"Authorization": "Bearer nope"})
    assert (fake.api_key_calls, fake.refresh_calls, fake.token_calls) == (1, 2, 3)
    assert fake.unauthorized == 2
    assert len(fake.requests) == 5
    fake.reset_counters()
    assert (fake.api_key_calls, fake.refresh_calls, fake.token_calls) == (0, 0, 0)
    assert fake.unauthorized == 0
    assert fake.requests == []


def test_counters_are_exact_under_concurrent_calls(fake: FakeApiVideo) -> None:
    def call() -> None:
        with requests.Session() as s:
            get_token(s, fake)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.api_key_calls == 16
    assert len(fake.requests) == 16


def test_requests_are_recorded_in_order_with_a_copy_of_their_headers(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    session.post(f"{fake.url}/auth/api-key?x=1", json={"apiKey": KEY}, headers={"X-Test": "a"})
    session.get(f"{fake.url}/videos?currentPage=2")
    first, second = fake.requests
    body = json.dumps({"apiKey": KEY}).encode()
    assert first == Recorded(
        "POST", "/auth/api-key?x=1", first.headers, len(body), hashlib.sha256(body).hexdigest()
    )
    assert first.headers["X-Test"] == "a"
    assert (second.method, second.path, second.body_size) == ("GET", "/videos?currentPage=2", 0)
    fake.requests.clear()  # a snapshot: the record itself is untouched
    assert len(fake.requests) == 2


def test_only_the_latest_requests_are_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    # An emulator left serving (the command line's, a benchmark) must not grow without end.
    monkeypatch.setattr(_fake, "MAX_RECORDED", 3)
    with FakeApiVideo(api_keys=[KEY]) as fake, requests.Session() as session:
        for page in range(1, 6):
            session.get(f"{fake.url}/videos?currentPage={page}")
        assert [r.path for r in fake.requests] == [f"/videos?currentPage={n}" for n in (3, 4, 5)]
        assert fake.unauthorized == 5  # the counters still count every request


# Protected endpoints


@pytest.mark.parametrize(
    ("authorization", "kind"),
    [
        (None, "missing-authorization-header"),
        ("Bearer made-up", "invalid-access-token"),
        ("Bearer", "invalid-access-token"),
        ("Token abc", "invalid-access-token"),
        ("Basic a2V5LTE=", "invalid-api-key"),  # "key-1" without the colon
        ("Basic d3Jvbmc6", "invalid-api-key"),  # "wrong:"
        ("Basic !!!", "invalid-api-key"),
    ],
)
def test_protected_endpoints_answer_401_problems_without_valid_credentials(
    fake: FakeApiVideo, session: requests.Session, authorization: str | None, kind: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [("GET", "/videos"), ("POST", "/videos"), ("GET", "/redirect?to=/x")]:
        response = session.request(method, fake.url + path, headers=headers, json={"title": "t"})
        assert response.status_code == 401
        assert response.headers["Content-Type"] == "application/problem+json"
        assert "Set-Cookie" not in response.headers
        problem = response.json()
        assert problem["type"] == f"https://docs.api.video/reference/authentication-{kind}"
        assert (problem["title"], problem["status"]) == ("Unauthorized", 401)
    assert fake.unauthorized == 3
    listing = session.get(f"{fake.url}/videos", auth=(KEY, ""))
    assert listing.json()["data"] == []


def test_basic_auth_with_an_api_key_is_accepted(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    response = session.get(f"{fake.url}/videos", auth=("key-2", ""))
    assert response.status_code == 200
    assert fake.token_calls == 0


def test_unauthorized_cookie_is_set_on_every_401(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    fake.unauthorized_cookie = "AWSALB=sticky; Path=/"
    for _ in range(2):
        response = session.get(f"{fake.url}/videos")
        assert response.status_code == 401
        assert response.headers["Set-Cookie"] == "AWSALB=sticky; Path=/"
    assert session.cookies["AWSALB"] == "sticky"
    assert "Set-Cookie" not in session.get(f"{fake.url}/videos", auth=(KEY, "")).headers


def test_video_list_has_the_spec_shape_and_pages(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    headers = headers_for(get_token(session, fake))
    ids = [
        session.post(f"{fake.url}/videos", json={"title": f"v{i}"}, headers=headers).json()[
            "videoId"
        ]
        for i in range(5)
    ]
    response = session.get(f"{fake.url}/videos?currentPage=2&pageSize=2", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert_matches(body, "videos-list-response")
    assert [video["videoId"] for video in body["data"]] == ids[2:4]
    pagination = body["pagination"]
    assert {k: v for k, v in pagination.items() if k != "links"} == {
        "currentPage": 2,
        "pageSize": 2,
        "pagesTotal": 3,
        "itemsTotal": 5,
        "currentPageItems": 2,
    }
    links = {link["rel"]: link["uri"] for link in pagination["links"]}
    assert links == {
        rel: f"{fake.url}/videos?currentPage={page}&pageSize=2"
        for rel, page in [("self", 2), ("first", 1), ("previous", 1), ("next", 3), ("last", 3)]
    }
    default = session.get(f"{fake.url}/videos?pageSize=oops", headers=headers).json()
    assert_matches(default, "videos-list-response")
    assert default["pagination"]["pageSize"] == 25
    assert [link["rel"] for link in default["pagination"]["links"]] == ["self", "first", "last"]


def test_empty_video_list_has_the_spec_shape(fake: FakeApiVideo, session: requests.Session) -> None:
    body = session.get(f"{fake.url}/videos", auth=(KEY, "")).json()
    assert_matches(body, "videos-list-response")
    assert body["data"] == []
    assert body["pagination"]["itemsTotal"] == 0


def test_created_video_has_the_spec_shape(fake: FakeApiVideo, session: requests.Session) -> None:
    response = session.post(
        f"{fake.url}/videos", json={"title": "Maths video", "tags": ["maths"]}, auth=(KEY, "")
    )
    assert response.status_code == 201
    video = response.json()
    assert_matches(video, "video")
    assert video["title"] == "Maths video"
    assert video["tags"] == ["maths"]
    assert video["videoId"].startswith("vi")
    assert len(video["videoId"]) == 24
    assert video["videoId"][2:].isalnum()


@pytest.mark.parametrize("payload", [{}, {"title": ""}, {"title": 3}, ["title"]])
def test_creating_a_video_without_a_title_is_a_bad_request(
    fake: FakeApiVideo, session: requests.Session, payload: Any
) -> None:
    response = session.post(f"{fake.url}/videos", json=payload, auth=(KEY, ""))
    assert response.status_code == 400
    assert_matches(response.json(), "bad-request")
    assert response.json()["name"] == "title"


@pytest.fixture
def video_id(fake: FakeApiVideo, session: requests.Session) -> str:
    response = session.post(f"{fake.url}/videos", json={"title": "t"}, auth=(KEY, ""))
    return str(response.json()["videoId"])


def test_source_upload_reports_size_and_sha256_of_a_bytes_body(
    fake: FakeApiVideo, session: requests.Session, video_id: str
) -> None:
    data = bytes(range(256)) * 1000
    response = session.post(f"{fake.url}/videos/{video_id}/source", data=data, auth=(KEY, ""))
    assert response.status_code == 201
    assert_matches(response.json(), "video")
    assert response.json()["videoId"] == video_id
    assert response.headers["X-Received-Bytes"] == str(len(data))
    assert response.headers["X-Received-Sha256"] == hashlib.sha256(data).hexdigest()
    assert fake.requests[-1].body_size == len(data)


def test_source_upload_reports_size_and_sha256_of_a_chunked_body(
    fake: FakeApiVideo, session: requests.Session, video_id: str
) -> None:
    parts = [b"a" * 10, b"", b"b" * 70000, b"c"]
    response = session.post(
        f"{fake.url}/videos/{video_id}/source", data=iter(parts), auth=(KEY, "")
    )
    assert response.status_code == 201
    assert fake.requests[-1].headers["Transfer-Encoding"] == "chunked"
    data = b"".join(parts)
    assert response.headers["X-Received-Bytes"] == str(len(data))
    assert response.headers["X-Received-Sha256"] == hashlib.sha256(data).hexdigest()


def test_source_upload_reports_the_raw_multipart_body(
    fake: FakeApiVideo, session: requests.Session, video_id: str
) -> None:
    response = session.post(
        f"{fake.url}/videos/{video_id}/source",
        files={"file": ("clip.mp4", b"\x00" * 1234, "video/mp4")},
        auth=(KEY, ""),
    )
    body = response.request.body
    assert isinstance(body, bytes)
    assert response.headers["X-Received-Bytes"] == str(len(body))
    assert response.headers["X-Received-Sha256"] == hashlib.sha256(body).hexdigest()


def test_source_upload_to_an_unknown_video_is_404(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    response = session.post(f"{fake.url}/videos/viNope/source", data=b"x", auth=(KEY, ""))
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert_matches(response.json(), "not-found")
    assert response.json()["name"] == "videoId"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_redirect_helper_answers_the_requested_redirect(
    fake: FakeApiVideo, session: requests.Session, status: int, method: str
) -> None:
    target = "http://127.0.0.1:1/elsewhere?a=1"
    response = session.request(
        method,
        f"{fake.url}/redirect",
        params={"to": target, "status": str(status)},
        auth=(KEY, ""),
        allow_redirects=False,
    )
    assert response.status_code == status
    assert response.headers["Location"] == target
    assert response.content == b""


def test_redirect_helper_defaults_to_302_and_is_protected(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    url = f"{fake.url}/redirect?to=/videos"
    assert session.get(url, allow_redirects=False).status_code == 401
    response = session.get(url, auth=(KEY, ""))
    assert [r.status_code for r in response.history] == [302]
    assert response.status_code == 200
    assert response.url == f"{fake.url}/videos"


@pytest.mark.parametrize("query", ["", "?to=/x&status=200", "?to=/x&status=abc", "?to=%0d%0aX:1"])
def test_redirect_helper_refuses_bad_parameters(
    fake: FakeApiVideo, session: requests.Session, query: str
) -> None:
    response = session.get(f"{fake.url}/redirect{query}", auth=(KEY, ""), allow_redirects=False)
    assert response.status_code == 400
    assert_matches(response.json(), "bad-request")


def test_upload_token_allows_a_delegated_upload_without_authorization(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    token = fake.issue_upload_token()
    assert token.startswith("to")
    data = b"video bytes"
    response = session.post(f"{fake.url}/upload", params={"token": token}, data=data)
    assert response.status_code == 201
    assert_matches(response.json(), "video")
    assert response.headers["X-Received-Bytes"] == str(len(data))
    assert response.headers["X-Received-Sha256"] == hashlib.sha256(data).hexdigest()
    assert "Authorization" not in fake.requests[-1].headers
    with_auth = session.post(
        f"{fake.url}/upload", params={"token": token}, data=data, auth=(KEY, "")
    )
    assert with_auth.status_code == 201
    assert "Authorization" in fake.requests[-1].headers


@pytest.mark.parametrize("query", ["", "?token=", "?token=toMadeUp"])
def test_delegated_upload_without_a_valid_token_is_401(
    fake: FakeApiVideo, session: requests.Session, query: str
) -> None:
    fake.issue_upload_token()
    response = session.post(f"{fake.url}/upload{query}", data=b"x", auth=(KEY, ""))
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 401
    assert fake.unauthorized == 0  # not a protected endpoint


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("POST", "/videos/vi1/source/extra", 404),
        ("GET", "/auth/api-key", 404),
        ("DELETE", "/videos", 404),
        ("GET", "/upload", 404),
    ],
)
def test_unknown_paths_and_methods_get_404_problems(
    fake: FakeApiVideo, session: requests.Session, method: str, path: str, status: int
) -> None:
    response = session.request(method, fake.url + path, auth=(KEY, ""), data=b"ignored")
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == status


def test_no_response_ever_carries_the_key_or_a_token(
    fake: FakeApiVideo, session: requests.Session
) -> None:
    token = get_token(session, fake)
    seen = []
    fake.fail_token_calls(Fault(401))
    seen.append(refresh(session, fake, token["refresh_token"]))
    seen.append(session.post(f"{fake.url}/auth/api-key", json={"apiKey": "wrong-key"}))
    seen.append(refresh(session, fake, "wrong-refresh"))
    fake.revoke_all()
    seen.append(session.get(f"{fake.url}/videos", headers=headers_for(token)))
    seen.append(session.get(f"{fake.url}/nowhere", headers=headers_for(token)))
    seen.append(session.get(f"{fake.url}/videos", auth=("wrong-key", "")))
    sent = [KEY, "wrong-key", "wrong-refresh", token["access_token"], token["refresh_token"]]
    for response in seen:
        text = response.text + json.dumps(dict(response.headers))
        assert not [secret for secret in sent if secret in text]


# Connections and lifecycle


def test_bodies_are_drained_so_kept_alive_connections_stay_usable(fake: FakeApiVideo) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]))
    try:
        connection.request("POST", "/nowhere", body=b"x" * 5000)
        response = connection.getresponse()
        assert response.status == 404
        response.read()
        connection.request("POST", "/videos", body=iter([b"{}", b"  "]), encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 401
        response.read()
        connection.request("POST", "/auth/api-key", body=json.dumps({"apiKey": KEY}))
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["token_type"] == "Bearer"
    finally:
        connection.close()
    assert [r.body_size for r in fake.requests] == [5000, 4, len(json.dumps({"apiKey": KEY}))]


def test_malformed_chunked_body_is_a_bad_request_that_closes_the_connection(
    fake: FakeApiVideo,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]))
    try:
        connection.putrequest("POST", "/videos")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders(b"zz\r\nhello\r\n0\r\n\r\n")
        response = connection.getresponse()
        assert response.status == 400
        assert response.getheader("Connection") == "close"
        response.read()
    finally:
        connection.close()


def test_stop_closes_kept_alive_connections_and_is_idempotent(session: requests.Session) -> None:
    fake = FakeApiVideo(api_keys=[KEY])
    with pytest.raises(RuntimeError):
        fake.url  # noqa: B018
    fake.start()
    with pytest.raises(RuntimeError):
        fake.start()
    get_token(session, fake)  # leaves a kept-alive connection open
    started = time.monotonic()
    fake.stop()
    fake.stop()
    assert time.monotonic() - started < 1
    with pytest.raises(requests.ConnectionError):
        session.post(f"{fake.url}/auth/api-key", json={"apiKey": KEY})


def test_api_key_is_the_first_key_given() -> None:
    assert FakeApiVideo().api_key == "test-api-key"
    assert FakeApiVideo(iter(["b", "a"])).api_key == "b"
    assert FakeApiVideo(iter(["b", "a"])).api_keys == {"a", "b"}
    with pytest.raises(LookupError):
        FakeApiVideo([]).api_key  # noqa: B018


def test_fake_apivideo_fixture_serves_a_random_key(
    fake_apivideo: FakeApiVideo, session: requests.Session
) -> None:
    assert fake_apivideo.url.startswith("http://127.0.0.1:")
    assert fake_apivideo.api_keys == {fake_apivideo.api_key}
    assert fake_apivideo.api_key != "test-api-key"
    token = get_token(session, fake_apivideo, fake_apivideo.api_key)
    assert session.get(f"{fake_apivideo.url}/videos", headers=headers_for(token)).status_code == 200
