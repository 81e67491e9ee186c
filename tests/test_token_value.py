"""AccessToken is a small immutable value (#9: a plain class, not a dataclass)."""

from __future__ import annotations

import copy
import pickle

import pytest

from requests_apivideo import AccessToken
from requests_apivideo.token import parse_token


def token(access: str = "secret-access", refresh: str = "secret-refresh") -> AccessToken:
    payload = {"expires_in": 3600, "access_token": access, "refresh_token": refresh}
    return parse_token(payload, sent_at=100.0, sent_at_wall=5000.0)


def test_fields_cannot_be_set_added_or_deleted() -> None:
    t = token()
    with pytest.raises(AttributeError):
        t.access_token = "other"
    with pytest.raises(AttributeError):
        t.extra = 1
    with pytest.raises(AttributeError):
        del t.refresh_token
    assert t.access_token == "secret-access"
    assert not hasattr(t, "__dict__")  # slots: no per-token dict


def test_equal_by_value_and_hashable() -> None:
    assert token() == token()
    assert hash(token()) == hash(token())
    assert token() != token(access="other")
    assert token() != token(refresh="other")
    assert token() != ("secret-access",)
    assert len({token(), token(), token(access="other")}) == 2


def test_keyword_construction_and_copies_keep_every_field() -> None:
    t = AccessToken(
        access_token="a",
        refresh_token="r",
        token_type="Bearer",
        expires_in=10.0,
        expires_at=11.0,
        expires_at_wall=12.0,
    )
    for clone in (copy.copy(t), copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert clone == t
        assert (
            clone.access_token,
            clone.refresh_token,
            clone.token_type,
            clone.expires_in,
            clone.expires_at,
            clone.expires_at_wall,
        ) == (
            "a",
            "r",
            "Bearer",
            10.0,
            11.0,
            12.0,
        )


def test_repr_shows_the_lifetime_and_hides_both_secrets() -> None:
    text = repr(token())
    assert "secret" not in text
    assert text == (
        "AccessToken(token_type='Bearer', expires_in=3600.0, expires_at=3700.0, "
        "expires_at_wall=8600.0)"
    )
