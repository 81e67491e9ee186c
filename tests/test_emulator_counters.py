"""FakeApiVideo's counters that fleet tests assert on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from requests_apivideo.testing import FakeApiVideo, Fault

pytestmark = pytest.mark.integration


@pytest.fixture
def fake() -> Iterator[FakeApiVideo]:
    with FakeApiVideo(api_keys=["key-1"]) as server:
        yield server


def token(fake: FakeApiVideo) -> dict[str, Any]:
    return dict(requests.post(f"{fake.url}/auth/api-key", json={"apiKey": "key-1"}).json())


def refresh(fake: FakeApiVideo, refresh_token: str) -> int:
    answer = requests.post(f"{fake.url}/auth/refresh", json={"refreshToken": refresh_token})
    return answer.status_code


def test_a_spent_refresh_token_presented_again_is_counted(fake: FakeApiVideo) -> None:
    first = token(fake)
    assert refresh(fake, first["refresh_token"]) == 200
    assert fake.refresh_reuses == 0
    assert refresh(fake, first["refresh_token"]) == 400
    assert refresh(fake, first["refresh_token"]) == 400
    assert fake.refresh_reuses == 2
    fake.reset_counters()
    assert fake.refresh_reuses == 0


def test_tokens_never_spent_are_not_counted_as_reuses(fake: FakeApiVideo) -> None:
    first = token(fake)
    fake.fail_token_calls(Fault(503), Fault(0))  # the server never looked at the token
    assert refresh(fake, first["refresh_token"]) == 503
    with pytest.raises(requests.ConnectionError):
        refresh(fake, first["refresh_token"])
    assert refresh(fake, "made-up") == 400
    second = token(fake)
    fake.revoke_all()
    assert refresh(fake, second["refresh_token"]) == 400  # revoked, presented once: no reuse
    assert fake.refresh_reuses == 0
    assert refresh(fake, first["refresh_token"]) == 400  # revoked before it was spent
    assert fake.refresh_reuses == 0


def test_a_token_spent_before_a_revocation_still_counts_after_it(fake: FakeApiVideo) -> None:
    first = token(fake)
    assert refresh(fake, first["refresh_token"]) == 200
    fake.revoke_all()
    assert refresh(fake, first["refresh_token"]) == 400
    assert fake.refresh_reuses == 1
