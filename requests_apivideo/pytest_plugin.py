"""Offer the ``fake_apivideo`` pytest fixture (registered as the ``apivideo`` pytest plugin)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from requests_apivideo.testing import FakeApiVideo

__all__ = ["fake_apivideo"]


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
