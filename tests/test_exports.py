from __future__ import annotations

import requests_apivideo
from requests_apivideo import testing


def test_public_names_are_exactly_the_contract_and_sorted() -> None:
    assert requests_apivideo.__all__ == (
        "AccessToken",
        "ApiVideoAuth",
        "ApiVideoAuthError",
        "FileTokenStore",
        "InvalidApiKeyError",
        "RedisTokenStore",
        "__version__",
    )
    for name in requests_apivideo.__all__:
        assert hasattr(requests_apivideo, name)
    assert "FakeApiVideo" in testing.__all__


def test_version_is_a_release_string() -> None:
    parts = requests_apivideo.__version__.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts)
