"""The token value and its rules, without HTTP."""

from __future__ import annotations

import math
from typing import Any

import pytest
import requests
import responses

from requests_apivideo import AccessToken, ApiVideoAuth
from requests_apivideo.endpoint import TokenRetry
from requests_apivideo.manager import _managers
from requests_apivideo.testing import FakeClock
from requests_apivideo.token import MAX_LIFETIME, advisory_margin, parse_token


def parse(**fields: Any) -> AccessToken:
    body = {"token_type": "Bearer", "expires_in": 3600, "access_token": "a", "refresh_token": "r"}
    body.update(fields)
    return parse_token(body, sent_at=100.0, sent_at_wall=5000.0)


def test_expiry_counts_from_when_the_token_call_was_sent() -> None:
    token = parse(expires_in=3599)
    assert (token.expires_at, token.expires_at_wall) == (3699.0, 8599.0)


def test_repr_hides_both_tokens() -> None:
    token = parse(access_token="secret-access", refresh_token="secret-refresh")
    assert "secret" not in repr(token)
    assert "expires_in=3600" in repr(token)


def test_ttl_is_the_smaller_of_the_two_clocks(clock: FakeClock) -> None:
    token = parse_token(
        {"expires_in": 100, "access_token": "a", "refresh_token": "r"},
        sent_at=clock.monotonic(),
        sent_at_wall=clock.time(),
    )
    clock.mono += 10
    assert token.ttl(clock) == 90
    clock.wall += 50  # the monotonic clock stopped while the machine slept
    assert token.ttl(clock) == 50
    clock.wall -= 1000  # the wall clock jumped back: monotonic still counts
    assert token.ttl(clock) == 90
    clock.mono += 90
    assert token.expired(clock)


@pytest.mark.parametrize(
    ("expires_in", "margin", "expected"),
    [(3600, 60, 60), (20, 60, 10), (3600, 0, 0), (1, 60, 0.5)],
)
def test_advisory_margin_is_capped_at_half_the_lifetime(
    expires_in: float, margin: float, expected: float
) -> None:
    assert advisory_margin(parse(expires_in=expires_in), margin) == expected


def test_lifetime_is_capped_and_token_type_normalised() -> None:
    assert parse(expires_in=10**400).expires_in == MAX_LIFETIME
    assert parse(token_type="bearer").token_type == "Bearer"
    assert parse(expires_in=1.5).expires_in == 1.5


@pytest.mark.parametrize(
    "fields",
    [
        {"expires_in": math.nan},
        {"expires_in": True},
        {"expires_in": None},
        {"access_token": ""},
        {"access_token": "two words"},
        {"refresh_token": 5},
        {"token_type": None},
    ],
)
def test_malformed_fields_raise_value_error_naming_the_field(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(fields))):
        parse(**fields)


def test_expiry_is_measured_from_the_send_even_when_the_answer_is_slow(
    clock: FakeClock, key: str
) -> None:
    def slow(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        clock.advance(30)  # the answer took 30 s to arrive
        return 200, {}, '{"expires_in": 100, "access_token": "a1", "refresh_token": "r1"}'

    auth = ApiVideoAuth(key, clock=clock)
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, "https://ws.api.video/auth/api-key", callback=slow)
        auth.get_token()
        token = auth._manager.token
    assert token is not None
    assert token.ttl(clock) == 70


def test_the_registry_is_keyed_by_a_hash_never_the_raw_key(key: str) -> None:
    auth = ApiVideoAuth(key)
    assert auth._manager in _managers.values()
    assert not any(key in repr(name) for name in _managers)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"X-RateLimit-Retry-After": "7"}, 7.0),
        ({"Retry-After": "2", "X-RateLimit-Retry-After": "9"}, 2.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_from_either_header(
    headers: dict[str, str], expected: float | None
) -> None:
    from urllib3.response import HTTPResponse

    response = HTTPResponse(status=429, headers=headers)
    assert TokenRetry().get_retry_after(response) == expected
