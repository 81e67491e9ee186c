"""Offer the ``fake_apivideo`` and ``mock_apivideo`` pytest fixtures (the ``apivideo`` plugin)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from requests_apivideo.testing import FakeApiVideo, MockApiVideo
from requests_apivideo.testing import mock_apivideo as _mock_apivideo
from requests_apivideo.testing._responses import _responses

__all__ = ["fake_apivideo", "mock_apivideo"]


@pytest.fixture
def fake_apivideo() -> Iterator[FakeApiVideo]:
    """Yield a started FakeApiVideo that accepts one random API key, ``fake_apivideo.api_key``.

    .. code-block:: python

        def test_lists_videos(fake_apivideo):
            auth = ApiVideoAuth(fake_apivideo.api_key, base_url=fake_apivideo.url)
            assert requests.get(fake_apivideo.url + "/videos", auth=auth).ok
    """
    with FakeApiVideo(api_keys=["test-" + secrets.token_urlsafe(16)]) as fake:
        yield fake


@pytest.fixture
def mock_apivideo() -> Iterator[MockApiVideo]:
    """Yield api.video's token endpoints on responses' default mock, started, for one random key.

    ``responses.add(...)`` and ``@responses.activate`` work alongside; the mock is stopped and
    reset after the test. Needs the ``responses`` package.

    .. code-block:: python

        def test_lists_videos(mock_apivideo):
            mock_apivideo.protect(responses.GET, "https://ws.api.video/videos", json={"data": []})
            auth = ApiVideoAuth(mock_apivideo.api_key)
            assert requests.get("https://ws.api.video/videos", auth=auth).ok
    """
    default = _responses().mock
    handle = _mock_apivideo(default, api_keys=["test-" + secrets.token_urlsafe(16)])
    default.start()
    try:
        yield handle
    finally:
        default.stop(allow_assert=False)
        default.reset()
