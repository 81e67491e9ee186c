"""Constructing ApiVideoAuth: cheap for a base URL seen before, and never less strict (#9)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from requests_apivideo import ApiVideoAuth
from requests_apivideo import auth as auth_module


def count_prepares(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the URL of every ``requests.Request`` prepared from now on."""
    prepared: list[str] = []
    original = requests.Request.prepare

    def prepare(self: requests.Request) -> requests.PreparedRequest:
        prepared.append(str(self.url))
        return original(self)

    monkeypatch.setattr(requests.Request, "prepare", prepare)
    return prepared


def test_a_base_url_seen_before_is_not_spelled_again(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    base_url = "https://construction-seen.example:8443/api/"
    prepared = count_prepares(monkeypatch)
    first = ApiVideoAuth(key, base_url=base_url)
    again = [ApiVideoAuth(key, base_url=base_url) for _ in range(3)]
    assert prepared == ["https://construction-seen.example:8443/api/"]  # once, not four times
    assert {a.base_url for a in again} == {first.base_url}
    assert {(a._prefix, a._special, a._untouched) for a in again} == {
        (first._prefix, first._special, first._untouched)
    }


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("http://construction.example", "clear text"),
        ("https://user:pw@construction.example", "credentials"),
        ("https://construction.example:99999", "port"),
        ("https://construction.example/?x=1", "query"),
    ],
)
def test_a_refused_base_url_is_refused_every_time(key: str, base_url: str, message: str) -> None:
    for _ in range(3):  # a failed check is never remembered as a pass
        with pytest.raises(ValueError, match=message):
            ApiVideoAuth(key, base_url=base_url)


def test_a_refused_spelling_of_an_accepted_url_is_still_refused(key: str) -> None:
    ApiVideoAuth(key, base_url="http://127.0.0.1:8080")
    with pytest.raises(ValueError, match="clear text"):
        ApiVideoAuth(key, base_url="http://127.0.0.2.example:8080")
    with pytest.raises(TypeError, match="base_url must be a str"):
        ApiVideoAuth(key, base_url=b"http://127.0.0.1:8080")  # type: ignore[arg-type]


def test_the_base_url_cache_is_bounded(key: str) -> None:
    for port in range(20000, 20000 + 3 * auth_module._URL_CACHE_SIZE):
        ApiVideoAuth(key, base_url=f"http://127.0.0.1:{port}")
    for cached in (auth_module._normalise_base_url, auth_module._scope):
        info = cached.cache_info()
        assert info.maxsize == auth_module._URL_CACHE_SIZE
        assert info.currsize <= auth_module._URL_CACHE_SIZE


def test_an_evicted_base_url_is_checked_and_spelled_again(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    ApiVideoAuth(key, base_url="https://evicted.example")
    for port in range(21000, 21000 + auth_module._URL_CACHE_SIZE):
        ApiVideoAuth(key, base_url=f"http://127.0.0.1:{port}")
    prepared = count_prepares(monkeypatch)
    assert ApiVideoAuth(key, base_url="https://evicted.example").base_url == (
        "https://evicted.example"
    )
    assert prepared == ["https://evicted.example"]


@pytest.mark.parametrize("kwargs", [{}, {"scheme": "basic"}])
def test_the_basic_header_follows_the_scheme_set_after_construction(
    key: str, kwargs: dict[str, Any]
) -> None:
    auth = ApiVideoAuth(key, **kwargs)
    auth.scheme = "basic"
    prepared = requests.Request("GET", "https://ws.api.video/videos", auth=auth).prepare()
    assert prepared.headers["Authorization"] == requests.auth._basic_auth_str(key, "")
