"""The knobs and counters that FakeApiVideo and mock_apivideo share, over one TokenState."""

from __future__ import annotations

from collections.abc import Iterable

from ._answers import Fault
from ._state import TokenState

__all__ = ["TokenKnobs"]


class TokenKnobs:
    """Drive and observe an emulated api.video auth API (its state is ``self._state``)."""

    _state: TokenState

    unauthorized_cookie: str | None = None
    """If set, every 401 from a protected endpoint carries ``Set-Cookie: <this value>``."""

    @property
    def api_key(self) -> str:
        """The first API key given to the constructor (the key the pytest fixture made up)."""
        if not self._state.keys:
            raise LookupError(f"{type(self).__name__} was created without API keys")
        return self._state.keys[0]

    @property
    def api_keys(self) -> set[str]:
        """The keys that ``/auth/api-key`` and Basic auth accept; add or remove at will."""
        return self._state.api_keys

    @api_keys.setter
    def api_keys(self, keys: Iterable[str]) -> None:
        self._state.api_keys = set(keys)

    @property
    def token_ttl(self) -> float:
        """Lifetime in seconds of the access tokens issued from now on."""
        return self._state.token_ttl

    @token_ttl.setter
    def token_ttl(self, seconds: float) -> None:
        self._state.token_ttl = seconds

    @property
    def invalid_key_status(self) -> int:
        """Status of a rejected key or refresh token (api.video documents 400)."""
        return self._state.invalid_key_status

    @invalid_key_status.setter
    def invalid_key_status(self, status: int) -> None:
        self._state.invalid_key_status = status

    @property
    def api_key_calls(self) -> int:
        """Calls received by ``/auth/api-key``, answered or faulted."""
        return self._state.api_key_calls

    @property
    def refresh_calls(self) -> int:
        """Calls received by ``/auth/refresh``, answered or faulted."""
        return self._state.refresh_calls

    @property
    def token_calls(self) -> int:
        """Calls received by ``/auth/api-key`` and ``/auth/refresh`` together."""
        with self._state.lock:
            return self._state.api_key_calls + self._state.refresh_calls

    @property
    def unauthorized(self) -> int:
        """401s answered by protected endpoints (token endpoints and uploads not counted)."""
        return self._state.unauthorized

    @property
    def refresh_reuses(self) -> int:
        """Calls to ``/auth/refresh`` that presented a refresh token already spent (want 0)."""
        return self._state.refresh_reuses

    @property
    def issued_tokens(self) -> frozenset[str]:
        """Every access and refresh token issued so far (to look for them in logs)."""
        return self._state.issued

    def revoke_all(self) -> None:
        """Invalidate every access token and refresh token issued so far (keys still work)."""
        self._state.revoke_all()

    def expire_all(self) -> None:
        """Invalidate every access token issued so far; refresh tokens stay valid."""
        self._state.expire_all()

    def fail_token_calls(self, *faults: Fault) -> None:
        """Answer the next ``len(faults)`` calls to ``/auth/*`` with these faults, in order."""
        self._state.add_faults(faults)

    def reset_counters(self) -> None:
        """Zero the call, 401 and reuse counters."""
        self._state.reset_counters()
