"""The access token value and the rules for when to renew it (no I/O here)."""

from __future__ import annotations

import math
import re
from typing import NoReturn, Protocol

__all__ = ("MAX_LIFETIME", "AccessToken", "Clock", "advisory_margin", "parse_token")

#: A granted lifetime above this (seconds) is treated as this: a token older than a day
#: is renewed even if the server claimed otherwise (the 401 path would catch it anyway).
MAX_LIFETIME = 86400.0

#: What a bearer token may be made of (RFC 6750's b64token); compiled on first use (by
#: ``re``'s cache), not at import.
_TOKEN68 = r"[A-Za-z0-9\-._~+/]+=*"


class Clock(Protocol):
    """Where the time comes from: the :mod:`time` module, or a test's controllable clock."""

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes back."""

    def time(self) -> float:
        """Return seconds since the epoch (the wall clock, which can jump)."""


class AccessToken:
    """An api.video access token and its refresh token; immutable, and the repr hides both.

    ``expires_at`` is on the :func:`time.monotonic` clock of the process that fetched the
    token, ``expires_at_wall`` on the wall clock; both count from the moment the token
    call was *sent*, so the local idea of expiry is never later than the server's. Two
    tokens are equal when all their fields are.
    """

    __slots__ = (
        "access_token",
        "expires_at",
        "expires_at_wall",
        "expires_in",
        "refresh_token",
        "token_type",
    )

    access_token: str
    refresh_token: str
    token_type: str
    expires_in: float
    expires_at: float
    expires_at_wall: float

    def __init__(
        self,
        access_token: str,
        refresh_token: str,
        token_type: str,
        expires_in: float,
        expires_at: float,
        expires_at_wall: float,
    ) -> None:
        # A plain class rather than a frozen dataclass: importing dataclasses costs more
        # than the rest of this package (#9).
        init = object.__setattr__
        init(self, "access_token", access_token)
        init(self, "refresh_token", refresh_token)
        init(self, "token_type", token_type)
        init(self, "expires_in", expires_in)
        init(self, "expires_at", expires_at)
        init(self, "expires_at_wall", expires_at_wall)

    def _fields(self) -> tuple[str, str, str, float, float, float]:
        return (
            self.access_token,
            self.refresh_token,
            self.token_type,
            self.expires_in,
            self.expires_at,
            self.expires_at_wall,
        )

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"AccessToken is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"AccessToken is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"AccessToken(token_type={self.token_type!r}, expires_in={self.expires_in!r}, "
            f"expires_at={self.expires_at!r}, expires_at_wall={self.expires_at_wall!r})"
        )

    def __reduce__(self) -> tuple[type[AccessToken], tuple[str, str, str, float, float, float]]:
        return (AccessToken, self._fields())

    def ttl(self, clock: Clock) -> float:
        """Return the seconds left, by whichever of the two clocks says less.

        The monotonic clock ignores wall-clock jumps; the wall clock keeps counting while
        the machine sleeps, when the monotonic clock may stop.
        """
        return min(self.expires_at - clock.monotonic(), self.expires_at_wall - clock.time())

    def expired(self, clock: Clock) -> bool:
        """Return whether the token's lifetime is over."""
        return self.ttl(clock) <= 0


def advisory_margin(token: AccessToken, refresh_margin: float) -> float:
    """Return the remaining lifetime below which an early refresh starts.

    Capped at half the token's lifetime, so that short-lived tokens do not cause a
    refresh on every request. A quarter of it is the mandatory window, where callers
    wait for the renewal instead of using the old token.
    """
    return min(refresh_margin, token.expires_in / 2)


def parse_token(payload: object, *, sent_at: float, sent_at_wall: float) -> AccessToken:
    """Build an :class:`AccessToken` from a token endpoint's JSON answer.

    :raises ValueError: the answer is not of api.video's ``access-token`` shape. The
        message names the field, never its value.
    """
    if not isinstance(payload, dict):
        raise ValueError("the answer is not a JSON object")
    values: dict[str, str] = {}
    for name in ("access_token", "refresh_token"):
        value = payload.get(name)
        if not isinstance(value, str) or not re.fullmatch(_TOKEN68, value):
            raise ValueError(f"{name!r} is missing or not a token")
        values[name] = value
    token_type = payload.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise ValueError("'token_type' is not 'Bearer'")
    expires_in = payload.get("expires_in")
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, (int, float))
        or (isinstance(expires_in, float) and math.isnan(expires_in))
        or expires_in <= 0
    ):
        raise ValueError("'expires_in' is missing or not a positive number")
    lifetime = MAX_LIFETIME if expires_in > MAX_LIFETIME else float(expires_in)
    return AccessToken(
        access_token=values["access_token"],
        refresh_token=values["refresh_token"],
        token_type="Bearer",  # noqa: S106 - a scheme name, not a secret
        expires_in=lifetime,
        expires_at=sent_at + lifetime,
        expires_at_wall=sent_at_wall + lifetime,
    )
