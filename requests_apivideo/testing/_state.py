"""api.video's credentials as plain state: keys, tokens, faults and counters (no HTTP here)."""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._answers import Fault

__all__ = ["TokenState"]


class TokenState:
    """Hold what api.video knows about credentials; thread-safe.

    API keys, access tokens with their expiry on ``clock()``, single-use refresh tokens
    (and the spent ones, to count reuses), delegated upload tokens, the queue of injected
    token-call faults, and the counters tests assert on.
    """

    def __init__(
        self,
        api_keys: Iterable[str],
        *,
        token_ttl: float,
        invalid_key_status: int,
        clock: Callable[[], float],
    ) -> None:
        self.keys = tuple(api_keys)  # in the order given: keys[0] is "the" key
        self.api_keys: set[str] = set(self.keys)
        self.token_ttl = token_ttl
        self.invalid_key_status = invalid_key_status
        self.clock = clock
        self.lock = threading.Lock()
        self._access: dict[str, float] = {}  # access token -> expiry on clock()
        self._refresh: set[str] = set()
        self._spent: set[str] = set()  # refresh tokens exchanged already
        self._issued: set[str] = set()  # every access and refresh token ever issued
        self._upload: set[str] = set()
        self._faults: list[Fault] = []
        self.api_key_calls = self.refresh_calls = self.unauthorized = self.refresh_reuses = 0

    # Knobs.

    def revoke_all(self) -> None:
        """Invalidate every access token and refresh token issued so far (keys still work)."""
        with self.lock:
            self._access.clear()
            self._refresh.clear()

    def expire_all(self) -> None:
        """Invalidate every access token issued so far; refresh tokens stay valid."""
        with self.lock:
            self._access.clear()

    def add_faults(self, faults: Iterable[Fault]) -> None:
        """Queue faults for the next token calls, in order."""
        with self.lock:
            self._faults.extend(faults)

    def reset_counters(self) -> None:
        """Zero the counters."""
        with self.lock:
            self.api_key_calls = self.refresh_calls = self.unauthorized = self.refresh_reuses = 0

    def issue_upload_token(self) -> str:
        """Return a new delegated upload token."""
        token = random_id("to")
        with self.lock:
            self._upload.add(token)
        return token

    @property
    def issued(self) -> frozenset[str]:
        """Every access and refresh token issued so far."""
        with self.lock:
            return frozenset(self._issued)

    # What the endpoints ask.

    def token_call(self, refresh: bool) -> Fault | None:
        """Count a call to ``/auth/refresh`` or ``/auth/api-key``; return its fault, if queued."""
        with self.lock:
            if refresh:
                self.refresh_calls += 1
            else:
                self.api_key_calls += 1
            return self._faults.pop(0) if self._faults else None

    def exchange(self, refresh: bool, credential: object) -> dict[str, Any] | None:
        """Exchange a key or a refresh token for a new token pair; None if it is not valid."""
        if not isinstance(credential, str):
            return None
        with self.lock:
            if refresh:
                if credential not in self._refresh:
                    self.refresh_reuses += credential in self._spent
                    return None
                self._refresh.remove(credential)  # single use: api.video rotates them
                self._spent.add(credential)
            elif credential not in self.api_keys:
                return None
            access, refresh_token = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
            ttl = self.token_ttl
            self._access[access] = self.clock() + ttl
            self._refresh.add(refresh_token)
            self._issued.update((access, refresh_token))
        expires_in = int(ttl) if float(ttl).is_integer() else ttl
        return {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "access_token": access,
            "refresh_token": refresh_token,
        }

    def authorize(self, header: str) -> str | None:
        """Check an ``Authorization`` header: None if accepted, else why not (counted).

        Accepted: a current Bearer access token, or Basic with an API key as user name.
        """
        if self._accepts(header):
            return None
        with self.lock:
            self.unauthorized += 1
        if not header:
            return "missing-authorization-header"
        if header.lower().startswith("basic "):
            return "invalid-api-key"
        return "invalid-access-token"

    def valid_upload_token(self, token: str) -> bool:
        """Return whether ``token`` is a delegated upload token issued here."""
        with self.lock:
            return token in self._upload

    def _accepts(self, header: str) -> bool:
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        with self.lock:
            if scheme.lower() == "bearer":
                expiry = self._access.get(credential)
                if expiry is not None and self.clock() >= expiry:
                    del self._access[credential]
                    expiry = None
                return expiry is not None
            if scheme.lower() == "basic":
                try:
                    decoded = base64.b64decode(credential, validate=True).decode()
                except ValueError:  # binascii.Error and UnicodeDecodeError
                    return False
                key, colon, _ = decoded.partition(":")
                return bool(colon) and key in self.api_keys
            return False


def random_id(prefix: str) -> str:
    """Return an api.video style identifier such as ``vi`` + 22 letters and digits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(22))
